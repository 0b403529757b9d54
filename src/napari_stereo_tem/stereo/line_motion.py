"""How far one line lies from, and moved to, another: the costs and steps of line tracking.

A gliding dislocation moves across its own direction; where its detected
branch begins and ends changes from frame to frame (a junction with a slip
trace, a faint stretch), so its centroid jitters along the line by several
pixels. Comparing the curves themselves avoids that: the distance between two
lines is a median over their points (robust to a stretch gained or lost at an
end), and the step between two frames is the median of the nearest-point
vectors from the shorter line to the longer one (the motion across the line,
which is what a line's position can tell).
"""

from __future__ import annotations

import numpy as np

__all__ = ["curve_distance", "curve_displacement"]


def _dense(points, spacing: float = 1.0) -> np.ndarray:
    from ..synth.curves import resample

    return resample(np.asarray(points, float).reshape(-1, 2), spacing)


def _nearest_vectors(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For the points of ``a`` whose nearest point of ``b`` is not one of ``b``'s ends, the vectors to it."""
    from scipy.spatial import cKDTree

    _, index = cKDTree(b).query(a)
    inner = (index > 0) & (index < len(b) - 1)
    if inner.sum() < max(3, len(a) // 4):     # hardly any overlap: use every point
        inner = np.ones(len(a), bool)
    return b[index[inner]] - a[inner]


def curve_distance(a, b) -> float:
    """Symmetric median distance between two lines (px).

    The mean of the median distance from the points of ``a`` to ``b`` and from
    those of ``b`` to ``a``: a few pixels for one line in two frames even where
    its branch gained or lost a stretch at an end (the median ignores it), but
    large between a line and a short fragment lying along it (most of the line
    is far from the fragment).

    Parameters
    ----------
    a, b : array_like, shape (n, 2)
        Polylines of ``(x, y)``.
    """
    from scipy.spatial import cKDTree

    a, b = _dense(a), _dense(b)
    return 0.5 * float(np.median(cKDTree(b).query(a)[0]) + np.median(cKDTree(a).query(b)[0]))


def curve_displacement(a, b) -> np.ndarray:
    """How far line ``a`` moved to become line ``b``: ``(dx, dy)``, the median nearest-point vector.

    Measured from the shorter line to the longer one (and turned round when
    ``b`` is the shorter), so a branch that lost or gained a stretch at its end
    does not count as motion.
    """
    a, b = _dense(a), _dense(b)
    if len(a) <= len(b):
        return np.median(_nearest_vectors(a, b), axis=0)
    return -np.median(_nearest_vectors(b, a), axis=0)
