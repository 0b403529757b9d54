"""Geometry of each line: a smoothing spline, its length, its curvature, and the spacing to its neighbours.

The pile-up measurements of the source study (``../shared/seeds/001``): a
dislocation's length is the length of a smoothing spline through its
centreline (not of the pixel path, which zig-zags and is about 8 % too long on
a diagonal), its curvature comes from the same spline, and the spacing of a
pile-up is the distance between neighbouring, nearly parallel lines.

Works for 2D polylines ``(n, 2)`` of ``(x, y)`` (one image) and 3D ones ``(n, 3)``.
"""

from __future__ import annotations

import numpy as np

from ..checks import InputError

__all__ = ["smooth_line", "line_geometry", "GEOMETRY_COLUMNS"]

#: Columns of :func:`line_geometry`'s rows, in the order the CSV writers use.
GEOMETRY_COLUMNS = ("line_id", "n_points", "length", "chord", "mean_curvature", "max_curvature",
                    "neighbour_spacing")


def smooth_line(points, *, noise_px: float = 0.5, samples_per_px: float = 2.0):
    """A smoothing spline through an ordered polyline: ``(curve, derivative, second derivative)``.

    Parameters
    ----------
    points : array_like, shape (n, 2) or (n, 3)
    noise_px : float
        Expected scatter of the points about the true line (pixels); the spline's
        smoothing is ``n * noise_px**2`` (scipy's ``splprep``).
    samples_per_px : float
        Density of the returned samples along the line.

    Returns
    -------
    curve, d1, d2 : ndarray, shape (m, dim)
        Samples of the spline and of its first and second derivatives with respect
        to the spline parameter; ``None`` each when the line has fewer than 4 distinct points.
    """
    from scipy.interpolate import splev, splprep

    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or pts.shape[1] not in (2, 3):
        raise InputError(f"a line must be an (n, 2) or (n, 3) array of points, got shape {pts.shape}")
    keep = np.concatenate([[True], np.any(np.diff(pts, axis=0) != 0, axis=1)])
    pts = pts[keep]
    if len(pts) < 4:
        return None, None, None
    steps = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    u = np.concatenate([[0.0], np.cumsum(steps)])
    u /= u[-1]
    tck, _ = splprep(pts.T, u=u, s=len(pts) * noise_px ** 2, k=3)
    m = max(8, int(np.ceil(np.sum(steps) * samples_per_px)))
    t = np.linspace(0.0, 1.0, m)
    curve, d1, d2 = (np.column_stack(splev(t, tck, der=k)) for k in (0, 1, 2))
    return curve, d1, d2


def _curvature(d1: np.ndarray, d2: np.ndarray) -> np.ndarray:
    speed = np.linalg.norm(d1, axis=1)
    if d1.shape[1] == 2:
        cross = np.abs(d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0])
    else:
        cross = np.linalg.norm(np.cross(d1, d2), axis=1)
    return cross / np.maximum(speed, 1e-12) ** 3


def _directions(curve: np.ndarray) -> np.ndarray:
    t = np.gradient(curve, axis=0)
    return t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)


def line_geometry(lines, *, noise_px: float = 0.5, max_spacing: float = 60.0,
                  max_angle_deg: float = 20.0) -> list[dict]:
    """Length, curvature and neighbour spacing of every line.

    Parameters
    ----------
    lines : sequence of ndarray, shape (n, 2) or (n, 3)
        Ordered polylines (pixels).
    noise_px : float
        Scatter of the points about the true line (see :func:`smooth_line`).
    max_spacing : float
        Neighbours farther than this (pixels) do not count.
    max_angle_deg : float
        A neighbour counts where it runs within this angle of the line (pile-up
        neighbours are nearly parallel; a crossing line is not a neighbour).

    Returns
    -------
    list of dict
        One per line with the keys of :data:`GEOMETRY_COLUMNS`: ``length`` of the
        spline, ``chord`` (end-to-end distance), ``mean_curvature`` and
        ``max_curvature`` (1/px), ``neighbour_spacing`` (median distance from the
        line to the nearest nearly parallel line, NaN when it has none); lines of
        fewer than 4 points get their polyline length and NaN curvature.
    """
    from scipy.spatial import cKDTree

    samples = []
    rows = []
    for k, line in enumerate(lines):
        pts = np.asarray(line, dtype=float)
        curve, d1, d2 = smooth_line(pts, noise_px=noise_px)
        if curve is None:
            poly = np.sum(np.linalg.norm(np.diff(pts, axis=0), axis=1)) if len(pts) > 1 else 0.0
            rows.append({"line_id": k, "n_points": int(len(pts)), "length": float(poly),
                         "chord": float(np.linalg.norm(pts[-1] - pts[0])) if len(pts) else 0.0,
                         "mean_curvature": float("nan"), "max_curvature": float("nan")})
            samples.append(pts if len(pts) else np.zeros((0, pts.shape[1] if pts.ndim == 2 else 2)))
            continue
        kappa = _curvature(d1, d2)
        length = float(np.sum(np.linalg.norm(np.diff(curve, axis=0), axis=1)))
        inner = slice(len(kappa) // 20, len(kappa) - len(kappa) // 20 or None)  # the spline's ends overshoot
        rows.append({"line_id": k, "n_points": int(len(pts)), "length": length,
                     "chord": float(np.linalg.norm(pts[-1] - pts[0])),
                     "mean_curvature": float(np.mean(kappa[inner])), "max_curvature": float(np.max(kappa[inner]))})
        samples.append(curve)
    # each line's tree and directions made once (not once per pair of lines)
    trees = [cKDTree(curve) if len(curve) >= 2 else None for curve in samples]
    directions = [_directions(curve) if len(curve) >= 2 else None for curve in samples]
    for k, row in enumerate(rows):
        mine = samples[k]
        best = []
        if len(mine) >= 2:
            for j, tree in enumerate(trees):
                if j == k or tree is None:
                    continue
                dist, idx = tree.query(mine, distance_upper_bound=max_spacing)
                found = np.isfinite(dist)
                if not found.any():
                    continue
                cosine = np.abs(np.sum(directions[k][found] * directions[j][idx[found]], axis=1))
                parallel = cosine >= np.cos(np.deg2rad(max_angle_deg))
                if parallel.mean() >= 0.5 and parallel.sum() >= 3:
                    best.append(float(np.median(dist[found][parallel])))
        row["neighbour_spacing"] = min(best) if best else float("nan")
    return rows
