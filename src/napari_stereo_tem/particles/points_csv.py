"""The one reader and writer of particle tables (``points.csv``, ``points_three_view.csv``, ``truth.csv``).

Columns ``x,y,z,radius`` (pixels; DESIGN section 5), then, where the fit gave them,
``std_x,std_y,std_z`` (standard deviations, pixels). New columns are only ever
added at the end, so a reader of the first four keeps working.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..checks import InputError

__all__ = ["POINT_COLUMNS", "STD_COLUMNS", "write_points_csv", "read_points_csv"]

POINT_COLUMNS = ("x", "y", "z", "radius")
STD_COLUMNS = ("std_x", "std_y", "std_z")


def write_points_csv(path, points, radii, *, std=None) -> Path:
    """Write particles as ``x,y,z,radius[,std_x,std_y,std_z]`` (9 significant digits; NaN as ``nan``).

    Parameters
    ----------
    points : array_like, shape (n, 3)
    radii : array_like, shape (n,)
    std : array_like, shape (n, 3), optional
        Standard deviations of ``x, y, z``; the three columns are written when given.
    """
    pts = np.asarray(points, float).reshape(-1, 3)
    columns = [pts, np.asarray(radii, float).reshape(-1, 1)]
    header = list(POINT_COLUMNS)
    if std is not None:
        columns.append(np.asarray(std, float).reshape(-1, 3))
        header += STD_COLUMNS
    table = np.hstack(columns)
    lines = [",".join(header)] + [",".join(f"{v:.9g}" for v in row) for row in table]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


def read_points_csv(path) -> dict:
    """Read a particle table; returns ``{column: ndarray}`` for every column of its header."""
    path = Path(path)
    try:
        with path.open() as handle:
            header = handle.readline().strip().split(",")
    except OSError as err:
        raise InputError(f"cannot read the particle table {path}: {err}") from None
    if tuple(header[:4]) != POINT_COLUMNS:
        raise InputError(f"{path} does not start with the columns x,y,z,radius (found {','.join(header)})")
    table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2).reshape(-1, len(header))
    return {name: table[:, k] for k, name in enumerate(header)}
