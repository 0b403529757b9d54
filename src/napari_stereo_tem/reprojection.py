"""Re-projection of a 3D model into other tilts, and its distance to what those views show.

The paper's validation (thesis 3.8.1): lines reconstructed from one pair are
projected into views that were *not* used, and compared with the dislocations
segmented or annotated there. Projection is :func:`projection.project_points`
(DESIGN section 2), so the re-projected lines are in that view's pixels.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from .checks import InputError
from .projection import project_points

__all__ = ["reproject_lines", "reprojection_error", "distance_to_lines"]


def _as_lines(lines, *, dims: tuple[int, ...], name: str) -> list[np.ndarray]:
    if isinstance(lines, np.ndarray) and lines.ndim == 2:
        lines = [lines]
    out = []
    for i, line in enumerate(lines):
        arr = np.asarray(line, dtype=float)
        if arr.ndim != 2 or arr.shape[1] not in dims:
            raise InputError(f"{name}[{i}] must have shape (n, {' or '.join(map(str, dims))}), got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{name}[{i}] holds NaN or inf; drop those points first")
        out.append(arr)
    return out


def reproject_lines(lines_3d, tilt_deg: float, *, axis_col: float) -> list[np.ndarray]:
    """Project 3D polylines into the view at ``tilt_deg``.

    Parameters
    ----------
    lines_3d : sequence of ndarray, each shape (n_i, 3)
        ``(x, y, z)`` points in pixels (DESIGN section 2); one array is one line.
    tilt_deg : float
        Tilt of the view about the vertical axis through ``axis_col``.
    axis_col : float
        Column of the tilt axis.

    Returns
    -------
    list of ndarray, each shape (n_i, 2)
        ``(x, y)`` image coordinates.
    """
    return [project_points(line, tilt_deg, axis_col=axis_col) for line in _as_lines(lines_3d, dims=(3,),
                                                                                      name="lines_3d")]


def _densify(line: np.ndarray, spacing: float) -> np.ndarray:
    if len(line) == 1:
        return line
    seg = np.diff(line, axis=0)
    n = np.maximum(np.ceil(np.hypot(seg[:, 0], seg[:, 1]) / spacing).astype(int), 1)
    parts = [line[i] + np.outer(np.arange(n[i]) / n[i], seg[i]) for i in range(len(seg))]
    return np.vstack(parts + [line[-1:]])


def distance_to_lines(points_xy, lines_2d, *, spacing: float = 0.05) -> np.ndarray:
    """Distance of each point ``(n, 2)`` to the nearest of the 2D polylines ``lines_2d``.

    The polylines are resampled every ``spacing`` pixels, so distances are exact to
    within ``spacing / 2``.
    """
    pts = np.asarray(points_xy, dtype=float).reshape(-1, 2)
    lines = _as_lines(lines_2d, dims=(2,), name="lines")
    if not lines or not any(len(line) for line in lines):
        raise InputError("the reference line set is empty")
    tree = cKDTree(np.vstack([_densify(line, spacing) for line in lines if len(line)]))
    dist, _ = tree.query(pts)
    return dist


def reprojection_error(lines_3d, tilt_deg: float, mask_or_lines, *, axis_col: float) -> dict:
    """Distance of re-projected 3D lines to a mask or to a line set of the view at ``tilt_deg``.

    Parameters
    ----------
    lines_3d : sequence of ndarray, each shape (n_i, 3)
        The 3D model, ``(x, y, z)`` pixels.
    tilt_deg : float
        Tilt of the comparison view.
    mask_or_lines : ndarray (rows, cols) of bool, or sequence of ndarray
        A dislocation mask of that view (nonzero = dislocation), or polylines in it:
        ``(m_j, 2)`` arrays of ``(x, y)`` pixels, or ``(m_j, 3)`` 3D lines (e.g.
        ground truth), which are projected at the same tilt first.
    axis_col : float
        Column of the tilt axis.

    Returns
    -------
    dict
        ``mean``, ``median``, ``max`` distance in pixels over the re-projected
        points that fall inside the image (all points for a line set),
        ``n_points`` used and ``n_outside`` (points off the mask's image).
    """
    projected = reproject_lines(lines_3d, tilt_deg, axis_col=axis_col)
    pts = np.vstack(projected) if projected else np.zeros((0, 2))
    if len(pts) == 0:
        raise InputError("the 3D model holds no points to re-project")
    n_outside = 0
    if isinstance(mask_or_lines, np.ndarray) and mask_or_lines.ndim == 2 and mask_or_lines.shape[1] not in (2, 3):
        mask = mask_or_lines != 0
        if not mask.any():
            raise InputError("the comparison mask is empty; segment the view first")
        rows, cols = mask.shape
        inside = (pts[:, 0] >= 0) & (pts[:, 0] <= cols - 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= rows - 1)
        n_outside = int((~inside).sum())
        field = ndimage.distance_transform_edt(~mask)
        dist = ndimage.map_coordinates(field, [pts[inside, 1], pts[inside, 0]], order=1)
    else:
        refs = mask_or_lines
        if isinstance(refs, np.ndarray) and refs.ndim == 2:
            refs = [refs]
        refs = [np.asarray(r, dtype=float) for r in refs]
        refs = [project_points(r, tilt_deg, axis_col=axis_col) if r.ndim == 2 and r.shape[1] == 3 else r
                for r in refs]
        dist = distance_to_lines(pts, refs)
    if len(dist) == 0:
        raise InputError("no re-projected point falls inside the comparison image; check the tilt and axis column")
    return {"mean": float(np.mean(dist)), "median": float(np.median(dist)), "max": float(np.max(dist)),
            "n_points": int(len(dist)), "n_outside": n_outside}
