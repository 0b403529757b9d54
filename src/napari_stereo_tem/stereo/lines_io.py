"""Reading and writing 3D polylines (``lines.csv``) and result records (``result.json``).

``lines.csv`` (DESIGN 5): header exactly ``line_id,x,y,z``; one row per 3D
point; the points of a line are consecutive and in order along the line;
pixels, in the frame of DESIGN section 2 (rectified left view, ``z`` along the
beam). Writes are atomic: a failure leaves an earlier file as it was.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_bytes
from ..checks import InputError

__all__ = ["LINES_HEADER", "write_lines_csv", "read_lines_csv", "write_json", "read_json"]

#: The header line of ``lines.csv``.
LINES_HEADER = "line_id,x,y,z"


def write_lines_csv(path, lines, *, decimals: int = 4) -> Path:
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
    """
    lines = [np.asarray(line, dtype=float) for line in lines]
    ndim = lines[0].shape[-1] if lines and lines[0].ndim == 2 else 3
    out = [(LINES_HEADER if ndim == 3 else "line_id,x,y") + "\n"]
    for k, pts in enumerate(lines):
        if pts.ndim != 2 or pts.shape[1] != ndim or ndim not in (2, 3):
            raise InputError(f"line {k} must have shape (n, {ndim}) like the first line (n, 2 or 3), got {pts.shape}")
        out.extend(f"{k}," + ",".join(f"{v:.{decimals}f}" for v in point) + "\n" for point in pts)
    return atomic_write_bytes(path, "".join(out).encode())


def read_lines_csv(path) -> list[np.ndarray]:
    """Read a ``lines.csv``; returns one ``(n, 3)`` array per ``line_id``, in file order."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    with open(path) as handle:
        header = handle.readline().strip()
        body = handle.read()
    if header != LINES_HEADER:
        raise InputError(f"{path} is not a lines file: its header is {header!r}, expected {LINES_HEADER!r}")
    if not body.strip():
        return []
    try:
        table = np.loadtxt(io.StringIO(body), delimiter=",", ndmin=2)
    except ValueError as err:
        raise InputError(f"{path} has a row that is not four numbers: {err}") from None
    if table.shape[1] != 4:
        raise InputError(f"{path} rows must hold line_id,x,y,z; found {table.shape[1]} columns")
    ids = table[:, 0].astype(int)
    order = list(dict.fromkeys(ids.tolist()))
    return [table[ids == k, 1:] for k in order]


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
