"""Reading and writing 3D polylines (``lines.csv``) and result records (``result.json``).

``lines.csv`` (DESIGN 5): header ``line_id,x,y,z``; one row per 3D point; the
points of a line are consecutive and in order along the line; pixels, in the
frame of DESIGN section 2 (rectified left view, ``z`` along the beam). Columns
after ``z`` carry per-point values (the reconstruction writes ``depth_std``, the
standard deviation of ``z``); readers that use the first four columns are not
affected. Writes are atomic: a failure leaves an earlier file as it was.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_bytes
from ..checks import InputError

__all__ = ["LINES_HEADER", "write_lines_csv", "read_lines_csv", "read_lines_table", "write_json", "read_json"]

#: The header line of ``lines.csv``.
LINES_HEADER = "line_id,x,y,z"


def write_lines_csv(path, lines, *, decimals: int = 4, columns: dict | None = None) -> Path:
    """Write polylines to ``path`` as ``line_id,x,y,z`` rows (or ``line_id,x,y`` for 2D lines).

    The one writer of line tables: results (``lines.csv``, the ``detect`` command's
    2D lines) and the generators' ground truth (``lines_3d.csv``, ``decimals=6``).

    Parameters
    ----------
    path : str or Path
    lines : list of ndarray, shape (n, 3) or (n, 2)
        ``(x, y, z)`` (or ``(x, y)``) points of each line in order; ``line_id`` is the list index.
        All lines have the same number of coordinates.
    decimals : int
        Digits after the decimal point.
    columns : dict of str to list of ndarray, optional
        More per-point values, one array per line (e.g. ``{"depth_std": stds}``),
        written as columns after the coordinates.
    """
    lines = [np.asarray(line, dtype=float) for line in lines]
    ndim = lines[0].shape[-1] if lines and lines[0].ndim == 2 else 3
    columns = {name: [np.asarray(v, dtype=float).ravel() for v in values] for name, values in (columns or {}).items()}
    for name, values in columns.items():
        if len(values) != len(lines) or any(len(v) != len(line) for v, line in zip(values, lines)):
            raise InputError(f"column {name!r} must hold one value per point of every line")
    out = [",".join([LINES_HEADER if ndim == 3 else "line_id,x,y", *columns]) + "\n"]
    for k, pts in enumerate(lines):
        if pts.ndim != 2 or pts.shape[1] != ndim or ndim not in (2, 3):
            raise InputError(f"line {k} must have shape (n, {ndim}) like the first line (n, 2 or 3), got {pts.shape}")
        table = np.column_stack([pts, *(values[k] for values in columns.values())])
        out.extend(f"{k}," + ",".join(f"{v:.{decimals}f}" for v in row) + "\n" for row in table)
    return atomic_write_bytes(path, "".join(out).encode())


def read_lines_csv(path) -> list[np.ndarray]:
    """Read a ``lines.csv``; returns one ``(n, 3)`` array per ``line_id``, in file order."""
    return read_lines_table(path)[0]


def read_lines_table(path) -> tuple[list[np.ndarray], dict]:
    """Read a ``lines.csv`` with its extra columns: ``(lines, {name: [values per line]})``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    with open(path) as handle:
        header = handle.readline().strip()
        body = handle.read()
    names = header.split(",")
    if names[:4] != LINES_HEADER.split(","):
        raise InputError(f"{path} is not a lines file: its header is {header!r}, expected {LINES_HEADER!r} "
                         "(and optional columns after z)")
    extra = names[4:]
    if not body.strip():
        return [], {name: [] for name in extra}
    try:
        table = np.loadtxt(io.StringIO(body), delimiter=",", ndmin=2)
    except ValueError as err:
        raise InputError(f"{path} has a row that is not {len(names)} numbers: {err}") from None
    if table.shape[1] != len(names):
        raise InputError(f"{path} rows must hold {header}; found {table.shape[1]} columns")
    ids = table[:, 0].astype(int)
    order = list(dict.fromkeys(ids.tolist()))
    lines = [table[ids == k, 1:4] for k in order]
    return lines, {name: [table[ids == k, 4 + j] for k in order] for j, name in enumerate(extra)}


def _clean(value):
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if np.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path, record: dict) -> Path:
    """Write ``record`` as indented JSON (NaN/inf become null, numpy types plain); atomic."""
    text = json.dumps(_clean(record), indent=2, sort_keys=True, allow_nan=False)
    return atomic_write_bytes(path, (text + "\n").encode())


def read_json(path) -> dict:
    """Read a JSON record written by :func:`write_json`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    return json.loads(path.read_text())
