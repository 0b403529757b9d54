"""Orthographic projection at a tilt, and triangulation back to 3D.

Conventions (DESIGN section 2): ``x`` = column, ``y`` = row, ``z`` along the
beam (into the image), all in pixels. A view at tilt ``alpha`` is the specimen
rotated by ``alpha`` about the vertical axis through column ``c`` (the tilt
axis); a positive rotation moves a point with positive depth towards ``+x``::

    x_view = c + (X - c) cos(alpha) + Z sin(alpha),   y_view = Y

A symmetric stereo pair has the left view at ``-phi/2`` and the right at
``+phi/2``, so the disparity ``d = x_right - x_left = 2 Z sin(phi/2)``.
"""

from __future__ import annotations

import numpy as np

from ..checks import InputError, check_stereo_angle

__all__ = [
    "rotation_matrix",
    "project_points",
    "triangulate",
    "triangulate_asymmetric",
    "depth_from_disparity",
    "disparity_from_depth",
]



def rotation_matrix(angle_deg: float) -> np.ndarray:
    """The 2x2 matrix turning image vectors ``(x, y)`` by ``angle_deg`` from ``+x`` towards ``+y``.

    The one rotation of the tilt geometry: a misaligned pair's tilt axis at ``theta``
    (:mod:`napari_stereo_tem.synth.misalign`) and its undoing by rectification,
    ``rotation_matrix(-theta)``.
    """
    a = np.deg2rad(float(angle_deg))
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])

def _as_points(points) -> np.ndarray:
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise InputError(f"3D points must have shape (n, 3) as (x, y, z), got {pts.shape}")
    return pts


def project_points(points_xyz, tilt_deg: float, *, axis_col: float = 0.0) -> np.ndarray:
    """Project 3D points ``(n, 3)`` as ``(x, y, z)`` into a view at ``tilt_deg``.

    Returns ``(n, 2)`` image coordinates ``(x, y)``.
    """
    pts = _as_points(points_xyz)
    a = np.deg2rad(tilt_deg)
    x = axis_col + (pts[:, 0] - axis_col) * np.cos(a) + pts[:, 2] * np.sin(a)
    return np.column_stack([x, pts[:, 1]])


def disparity_from_depth(z, stereo_angle_deg: float):
    """Disparity ``x_right - x_left`` of a point at depth ``z`` in a symmetric pair."""
    return 2.0 * np.sin(np.deg2rad(stereo_angle_deg) / 2.0) * np.asarray(z, dtype=float)


def depth_from_disparity(disparity, stereo_angle_deg: float):
    """Depth ``Z = d / (2 sin(phi/2))`` of a disparity in a symmetric pair."""
    phi = check_stereo_angle(stereo_angle_deg)
    return np.asarray(disparity, dtype=float) / (2.0 * np.sin(np.deg2rad(phi) / 2.0))


def triangulate(x_left, y, x_right, stereo_angle_deg: float, *, axis_col: float = 0.0,
                pixel_size: float | None = None, disparity_std=None):
    """Triangulate matched points of a symmetric pair (left ``-phi/2``, right ``+phi/2``).

    Parameters
    ----------
    x_left, y, x_right : array_like
        Columns in the left and right view and the shared row, in pixels.
    stereo_angle_deg : float
        The stereo angle ``phi``.
    axis_col : float
        Column ``c`` of the tilt axis.
    pixel_size : float, optional
        When given, the returned coordinates are multiplied by it (e.g. nm).
    disparity_std : array_like, optional
        Standard deviation of each disparity (e.g. the matcher's softmax
        spread); when given, the depth standard deviation is returned too.

    Returns
    -------
    points : ndarray, shape (n, 3)
        ``(X, Y, Z)``.
    z_std : ndarray, shape (n,)
        Only when ``disparity_std`` is given.
    """
    phi = np.deg2rad(check_stereo_angle(stereo_angle_deg))
    return triangulate_asymmetric(x_left, y, x_right, -np.rad2deg(phi) / 2, np.rad2deg(phi) / 2,
                                  axis_col=axis_col, pixel_size=pixel_size, disparity_std=disparity_std)


def triangulate_asymmetric(x1, y, x2, tilt1_deg: float, tilt2_deg: float, *, axis_col: float = 0.0,
                           pixel_size: float | None = None, disparity_std=None):
    """Triangulate matched points seen at two arbitrary tilts about the same axis.

    Solves ``x_k - c = (X - c) cos(a_k) + Z sin(a_k)`` for ``k = 1, 2``.
    With ``tilt1 = -phi/2`` and ``tilt2 = +phi/2`` this is :func:`triangulate`.
    See :func:`triangulate` for the parameters and returns.
    """
    a1, a2 = np.deg2rad(float(tilt1_deg)), np.deg2rad(float(tilt2_deg))
    det = np.sin(a2 - a1)
    if not np.isfinite(det) or abs(det) < 1e-9:
        raise InputError(f"tilts {tilt1_deg} and {tilt2_deg} degrees are equal: the views give no depth")
    u1 = np.asarray(x1, dtype=float) - axis_col
    u2 = np.asarray(x2, dtype=float) - axis_col
    y = np.asarray(y, dtype=float)
    if not (u1.shape == u2.shape == y.shape):
        raise InputError(f"x1, y and x2 must have one shape, got {u1.shape}, {y.shape}, {u2.shape}")
    x_centred = (u1 * np.sin(a2) - u2 * np.sin(a1)) / det
    z = (u2 * np.cos(a1) - u1 * np.cos(a2)) / det
    points = np.column_stack([np.ravel(x_centred + axis_col), np.ravel(y), np.ravel(z)])
    scale = 1.0 if pixel_size is None else float(pixel_size)
    points = points * scale
    if disparity_std is None:
        return points
    # Z moves by cos(a1)/sin(a2 - a1) per pixel of x2 at fixed x1.
    z_std = np.abs(np.cos(a1) / det) * np.ravel(np.asarray(disparity_std, dtype=float)) * scale
    return points, z_std
