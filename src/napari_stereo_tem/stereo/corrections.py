"""Correcting the matcher by hand: link a left line to its right partner, move a line in depth.

The user edits the segmentation and the 2D polylines with napari's own tools;
these functions turn the two corrections that need geometry into 3D lines
(DESIGN 3.9), always through :mod:`napari_stereo_tem.stereo.projection`:

- :func:`link_lines`: a polyline in the left view and its partner in the right
  view give, on every row both cross, the disparity ``d = x_right - x_left``
  and so a 3D line (:func:`~napari_stereo_tem.stereo.projection.triangulate`);
- :func:`shift_line_depth`: move a 3D line by ``dz`` along the beam, keeping
  where it is seen in the left view (or in the mid view);
- :func:`replace_or_add_line`: a linked line takes the place of the 3D line
  the left view sees at the same place, or is added;
- :func:`disparity_labels`: the corrected 3D lines drawn as a disparity map on
  the left view (NaN elsewhere), the "disparity labels where known" of a
  training-set entry.

Polylines are ``(n, 2)`` arrays of ``(x, y)`` image points; 3D lines ``(n, 3)``
of ``(x, y, z)``.
"""

from __future__ import annotations

import numpy as np

from ..checks import InputError, check_stereo_angle
from .projection import disparity_from_depth, project_points, triangulate

__all__ = ["row_crossings", "link_lines", "shift_line_depth", "disparity_labels", "line_disparity",
           "replace_or_add_line"]


def _polyline(points, name: str) -> np.ndarray:
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 2:
        raise InputError(f"{name} must be a polyline of at least 2 (x, y) points, got shape {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise InputError(f"{name} holds NaN or infinite coordinates")
    return pts


def row_crossings(polyline) -> tuple[np.ndarray, np.ndarray]:
    """Where a polyline crosses each whole row it spans, in order along the line.

    Parameters
    ----------
    polyline : array_like, shape (n, 2)
        ``(x, y)`` vertices.

    Returns
    -------
    rows : ndarray of int, shape (k,)
        Each row once (the first crossing along the line).
    x : ndarray of float, shape (k,)
        The column where the line crosses that row (the mean of the crossings
        of one segment run that lies along the row).
    """
    pts = _polyline(polyline, "polyline")
    rows, cols, seen = [], [], set()
    for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:]):
        lo, hi = sorted((y0, y1))
        ys = np.arange(np.ceil(lo), np.floor(hi) + 1)
        if y1 < y0:
            ys = ys[::-1]
        for y in ys:
            if y in seen:
                continue
            if y1 == y0:  # segment along the row: its middle
                x = 0.5 * (x0 + x1)
            else:
                x = x0 + (x1 - x0) * (y - y0) / (y1 - y0)
            seen.add(y)
            rows.append(int(y))
            cols.append(float(x))
    return np.asarray(rows, dtype=int), np.asarray(cols, dtype=float)


def link_lines(left_polyline, right_polyline, stereo_angle_deg: float, *, axis_col: float = 0.0,
               min_rows: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """A 3D line from a left polyline and its right partner, matched row by row.

    Parameters
    ----------
    left_polyline, right_polyline : array_like, shape (n, 2) and (m, 2)
        ``(x, y)`` vertices in the rectified left and right views.
    stereo_angle_deg : float
    axis_col : float
        Column of the tilt axis (``(cols - 1) / 2`` for a rectified pair).
    min_rows : int
        Fewest rows the two lines must share.

    Returns
    -------
    line : ndarray, shape (k, 3)
        ``(x, y, z)`` on every row both lines cross, in the left line's order.
    matches : ndarray, shape (k, 3)
        ``(x_left, y, disparity)`` of the same rows.
    """
    check_stereo_angle(stereo_angle_deg)
    rows_l, x_l = row_crossings(_polyline(left_polyline, "left polyline"))
    rows_r, x_r = row_crossings(_polyline(right_polyline, "right polyline"))
    common, i_l, i_r = np.intersect1d(rows_l, rows_r, return_indices=True)
    if len(common) < min_rows:
        raise InputError(
            f"the left line (rows {rows_l.min()}-{rows_l.max()}) and the right line (rows "
            f"{rows_r.min()}-{rows_r.max()}) share {len(common)} row(s); partners in a rectified pair "
            f"lie on the same rows: pick the right partner or rectify the pair")
    order = np.argsort(i_l)
    i_l, i_r = i_l[order], i_r[order]
    xl, xr, y = x_l[i_l], x_r[i_r], rows_l[i_l].astype(float)
    line = triangulate(xl, y, xr, stereo_angle_deg, axis_col=axis_col)
    return line, np.column_stack([xl, y, xr - xl])


def shift_line_depth(line_xyz, dz: float, *, stereo_angle_deg: float | None = None,
                     keep: str = "left") -> np.ndarray:
    """Move a 3D line by ``dz`` along the beam.

    Parameters
    ----------
    line_xyz : array_like, shape (n, 3)
    dz : float
        Depth change (pixels, or the line's unit).
    stereo_angle_deg : float, optional
        Needed when ``keep`` is ``"left"`` or ``"right"``.
    keep : {"left", "right", "mid"}
        Which view still sees the line where it was: ``"left"`` (the view the
        lines were detected in; the disparity changes by ``2 sin(phi/2) dz``),
        ``"right"``, or ``"mid"`` (a pure shift along z).

    Returns
    -------
    ndarray, shape (n, 3)
    """
    line = np.asarray(line_xyz, dtype=float)
    if line.ndim != 2 or line.shape[1] != 3:
        raise InputError(f"a 3D line must have shape (n, 3) as (x, y, z), got {line.shape}")
    if not np.isfinite(dz):
        raise InputError(f"depth shift must be finite, got {dz}")
    out = line.copy()
    out[:, 2] += dz
    if keep == "mid":
        return out
    if keep not in ("left", "right"):
        raise InputError(f"keep must be 'left', 'right' or 'mid', got {keep!r}")
    if stereo_angle_deg is None:
        raise InputError("keeping the left or right view fixed needs the stereo angle")
    half = np.deg2rad(check_stereo_angle(stereo_angle_deg)) / 2.0
    # a view at tilt a sees x' = c + (X - c) cos a + Z sin a: keep x' by moving X by -tan(a) dz
    tilt = -half if keep == "left" else half
    out[:, 0] -= np.tan(tilt) * dz
    return out


def line_disparity(line_xyz, stereo_angle_deg: float, *, axis_col: float = 0.0) -> np.ndarray:
    """Where a 3D line is seen in the left view and its disparity: ``(x_left, y, d)`` rows, shape (n, 3)."""
    phi = check_stereo_angle(stereo_angle_deg)
    line = np.asarray(line_xyz, dtype=float)
    xy = project_points(line, -phi / 2.0, axis_col=axis_col)
    return np.column_stack([xy, disparity_from_depth(line[:, 2], phi)])


def replace_or_add_line(lines_xyz, line_xyz, stereo_angle_deg: float, *, axis_col: float = 0.0,
                        max_distance: float = 3.0) -> tuple[list[np.ndarray], int | None]:
    """Put a corrected 3D line among the others: it replaces the one seen at the same place.

    The left view is what the user linked in, so "the same place" is there: the
    line replaced is the one whose left-view points lie closest to the new line's
    (median distance), if that is within ``max_distance`` pixels; otherwise the new
    line is added at the end.

    Returns
    -------
    lines : list of ndarray, shape (n, 3)
        A new list (the input is not changed).
    replaced : int or None
        Index of the line replaced, ``None`` when the line was added.
    """
    line = np.asarray(line_xyz, dtype=float)
    lines = [np.asarray(old, dtype=float) for old in lines_xyz]
    seen = line_disparity(line, stereo_angle_deg, axis_col=axis_col)[:, :2]
    best, best_dist = None, float(max_distance)
    for k, old in enumerate(lines):
        old_xy = line_disparity(old, stereo_angle_deg, axis_col=axis_col)[:, :2]
        dist = float(np.median(np.min(np.linalg.norm(seen[:, None] - old_xy[None], axis=2), axis=1)))
        if dist < best_dist:
            best, best_dist = k, dist
    if best is None:
        return lines + [line], None
    lines[best] = line
    return lines, best


def disparity_labels(shape, lines_xyz, stereo_angle_deg: float, *, axis_col: float = 0.0,
                     mask=None, half_width: int = 1) -> np.ndarray:
    """Draw corrected 3D lines as known disparities on the left view.

    Parameters
    ----------
    shape : (rows, cols)
    lines_xyz : list of ndarray, shape (n, 3)
        The lines whose depth the user fixed (linked or shifted).
    stereo_angle_deg : float
    axis_col : float
    mask : ndarray of int, shape (rows, cols), optional
        When given, only its dislocation pixels (label 1) within ``half_width``
        columns of a line get the line's disparity (the corrected mask's own
        width); otherwise the line's pixels and ``half_width`` columns around.
    half_width : int

    Returns
    -------
    ndarray, float32, shape (rows, cols)
        ``x_right - x_left`` on known pixels, NaN elsewhere.
    """
    rows, cols = (int(shape[0]), int(shape[1]))
    out = np.full((rows, cols), np.nan, np.float32)
    for line in lines_xyz:
        line = np.asarray(line, dtype=float)
        if len(line) < 2:
            continue
        xyd = line_disparity(line, stereo_angle_deg, axis_col=axis_col)
        # densify to about half a pixel so every row and column the line passes gets a value
        steps = np.maximum(1, np.ceil(2 * np.hypot(*np.diff(xyd[:, :2], axis=0).T)).astype(int))
        dense = [xyd[:1]]
        for a, b, n in zip(xyd[:-1], xyd[1:], steps):
            t = (np.arange(1, n + 1) / n)[:, None]
            dense.append(a + (b - a) * t)
        pts = np.concatenate(dense)
        for x, y, d in pts:
            r, c = int(round(y)), int(round(x))
            if not (0 <= r < rows):
                continue
            lo, hi = max(0, c - half_width), min(cols, c + half_width + 1)
            if lo >= hi:
                continue
            window = out[r, lo:hi]
            if mask is not None:
                keep = np.asarray(mask)[r, lo:hi] == 1
                window[keep] = d
            else:
                window[:] = d
    return out
