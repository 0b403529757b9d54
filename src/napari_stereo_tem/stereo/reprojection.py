"""Re-projection of a 3D model into other tilts, and its distance to what those views show.

The paper's validation (thesis 3.8.1): lines reconstructed from one pair are
projected into views that were *not* used, and compared with the dislocations
segmented or annotated there. Projection is :func:`projection.project_points`
(DESIGN section 2), so the re-projected lines are in that view's pixels.

A third view is a raw image: its tilt axis and shift are not those of the
reconstruction's frame. :func:`align_view` fits them with the same alignment as
the pair (:func:`~napari_stereo_tem.stereo.rectification.rectify_pair`, against the
rectified left view) and gives the affine from the frame to the view's pixels;
:func:`fit_depth_offset` then fixes the one thing no image alignment can (the
shift along the epipolar direction, i.e. the depth origin) from the view's mask.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from ..checks import InputError
from .projection import project_points

__all__ = ["reproject_lines", "reprojection_error", "distance_to_lines", "align_view", "fit_depth_offset",
           "apply_affine"]


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


def apply_affine(points_xy, affine) -> np.ndarray:
    """``(n, 2)`` ``(x, y)`` points through a ``2x3`` affine."""
    pts = np.asarray(points_xy, dtype=float).reshape(-1, 2)
    affine = np.asarray(affine, dtype=float)
    return pts @ affine[:, :2].T + affine[:, 2]


def align_view(reference, view, *, reference_to_frame=None, **options):
    """Align a raw view of another tilt to a reconstruction's frame.

    Parameters
    ----------
    reference : array_like, shape (rows, cols)
        A raw view of the reconstructed pair (its left view), taken like ``view``
        (same magnification, so the same tilt-axis angle in the image).
    view : array_like, shape (rows, cols)
        The raw image of the other tilt.
    reference_to_frame : array_like, shape (2, 3), optional
        The pair's rectifying affine of ``reference`` (``Rectification.affine_left``,
        recorded as ``rectification.affine_left`` in the result); default identity
        (``reference`` is the frame itself).
    **options
        Passed to :func:`~napari_stereo_tem.stereo.rectification.rectify_pair` (``theta_deg``,
        ``shift``, ``points_left``/``points_right`` clicked in reference/view, ``strict``, ...).

    Returns
    -------
    frame_to_view : ndarray, shape (2, 3)
        Affine from the frame's ``(x, y)`` to the view's raw pixels, for a point at
        the depth origin of the view's own fit (move along ``direction`` for others).
    direction : ndarray, shape (2,)
        The view's epipolar direction in its raw pixels.
    rectification : Rectification
        The fit of ``view`` against ``reference`` (its tilt axis should agree with the
        pair's: one microscope, one axis).
    """
    from .rectification import rectify_pair

    rect = rectify_pair(reference, view, **options)
    a_l = np.vstack([rect.affine_left, [0.0, 0.0, 1.0]])
    a_r = np.vstack([rect.affine_right, [0.0, 0.0, 1.0]])
    ref_to_view = np.linalg.inv(a_r) @ a_l  # a zero-disparity partner: A_R p_view = A_L p_reference
    to_frame = np.eye(3) if reference_to_frame is None else np.vstack([np.asarray(reference_to_frame, float),
                                                                        [0.0, 0.0, 1.0]])
    frame_to_view = ref_to_view @ np.linalg.inv(to_frame)
    th = np.deg2rad(rect.theta_deg)
    return frame_to_view[:2], np.array([np.cos(th), np.sin(th)]), rect


def fit_depth_offset(points_view, mask, *, direction=(1.0, 0.0), max_offset_px: float = 40.0,
                     step_px: float = 0.25) -> tuple[float, float]:
    """Offset along ``direction`` that brings projected points closest to a mask: ``(offset, mean distance)``.

    The depth origin of a stereo model is free, so a model projected into a third
    view is right up to a shift along that view's epipolar direction; this finds
    it from the view's dislocation mask (a 1D search of the mean distance).
    """
    pts = np.asarray(points_view, dtype=float).reshape(-1, 2)
    mask = np.asarray(mask) != 0
    if not mask.any() or len(pts) == 0:
        raise InputError("fitting the depth offset needs projected points and a non-empty mask of the view")
    field = ndimage.distance_transform_edt(~mask)
    rows, cols = mask.shape
    direction = np.asarray(direction, dtype=float) / np.hypot(*direction)
    best = (0.0, np.inf)
    for offset in np.arange(-max_offset_px, max_offset_px + step_px / 2, step_px):
        moved = pts + offset * direction
        inside = (moved[:, 0] >= 0) & (moved[:, 0] <= cols - 1) & (moved[:, 1] >= 0) & (moved[:, 1] <= rows - 1)
        if inside.sum() < 0.5 * len(pts):
            continue
        dist = float(np.mean(ndimage.map_coordinates(field, [moved[inside, 1], moved[inside, 0]], order=1)))
        if dist < best[1]:
            best = (float(offset), dist)
    return best
