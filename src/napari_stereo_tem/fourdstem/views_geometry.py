"""Geometry of three or more virtual detectors on one 4D-STEM dataset (DESIGN 3.12).

A detector pixel at ``k`` (relative to the direct-beam centre) sees the specimen
along a ray tilted by ``theta = |k| * mrad_per_px`` towards ``k``: a point at
depth ``Z`` appears in that view at ``(x, y) + Z * s`` with the **view shift**
``s = sin(theta) * k / |k|`` turned into the scan frame by the scan rotation
(:mod:`napari_stereo_tem.synth.fourdstem` renders exactly this). A disc's virtual
image is the sum over its pixels, so its shift is the mean ``s`` of the disc's
pixels that lie in the bright-field (direct) disc.

Two views ``i`` and ``j`` form a pair whose disparities run along
``e_ij = (s_j - s_i) / |s_j - s_i|`` (the epipolar direction) with
``d_ij = Z * b_ij``, ``b_ij = |s_j - s_i|`` (disparity pixels per depth pixel).
A line running along ``e_ij`` carries no depth in that pair; another pair, with
another direction, measures it.

Angles in the plane are degrees from ``+x`` (columns) towards ``+y`` (rows).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from ..checks import InputError
from .masks import Disc, as_disc, disc_mask

__all__ = ["ring_of_discs", "check_view_discs", "view_shifts", "view_pairs", "rotate_points", "fuse_depths",
           "MIN_VIEWS"]

#: Fewest discs a multi-view reconstruction takes (two are a stereo pair: ``stereo-tem reconstruct``).
MIN_VIEWS = 3


def ring_of_discs(n: int, *, centre, ring_radius: float | None = None, disc_radius: float | None = None,
                  start_deg: float = 0.0) -> list[Disc]:
    """``n`` discs evenly spaced on a ring around the direct beam.

    Parameters
    ----------
    n : int
        Number of discs (at least 1; a reconstruction needs :data:`MIN_VIEWS`).
    centre : (cy, cx) or Disc
        Ring centre in detector pixels (usually the direct-beam centre).
    ring_radius : float, optional
        Distance of the disc centres from ``centre``, pixels. Default, when ``centre``
        is the direct beam's :class:`Disc`: two thirds of its radius.
    disc_radius : float, optional
        Radius of every disc, pixels. Default, when ``centre`` is a :class:`Disc`: a
        quarter of its radius.
    start_deg : float
        Direction of the first disc from ``centre`` (from ``+x`` towards ``+y``);
        disc ``k`` lies at ``start_deg + 360 k / n``.

    Returns
    -------
    list of Disc
    """
    if isinstance(centre, Disc):
        cy, cx = centre.cy, centre.cx
        ring_radius = 2.0 * centre.radius / 3.0 if ring_radius is None else ring_radius
        disc_radius = centre.radius / 4.0 if disc_radius is None else disc_radius
    else:
        try:
            cy, cx = (float(v) for v in centre[:2])
        except (TypeError, ValueError):
            raise InputError(f"the ring centre must be (cy, cx) in detector pixels, got {centre!r}") from None
        if ring_radius is None or disc_radius is None:
            raise InputError("a ring around a point needs its ring radius and disc radius (detector pixels)")
    try:
        n = int(n)
    except (TypeError, ValueError):
        raise InputError(f"the number of discs on the ring must be a whole number, got {n!r}") from None
    if n < 1:
        raise InputError(f"a ring needs at least one disc, got {n}")
    if not (np.isfinite(ring_radius) and ring_radius > 0):
        raise InputError(f"the ring radius must be a positive number of detector pixels, got {ring_radius!r}")
    if not (np.isfinite(disc_radius) and disc_radius > 0):
        raise InputError(f"the disc radius must be a positive number of detector pixels, got {disc_radius!r}")
    angles = np.deg2rad(float(start_deg) + 360.0 * np.arange(n) / n)
    return [Disc(float(cy + ring_radius * np.sin(a)) + 0.0, float(cx + ring_radius * np.cos(a)) + 0.0,
                 float(disc_radius)) for a in angles]


def check_view_discs(discs, detector_shape=None) -> list[Disc]:
    """The discs of a multi-view reconstruction, checked: at least three, distinct, on the detector.

    Raises
    ------
    InputError
        Fewer than :data:`MIN_VIEWS` discs, two discs with one centre, a disc that
        reaches past the detector's edge (``detector_shape`` given), or discs all on
        one straight line (their pairs would share one epipolar direction).
    """
    discs = [as_disc(d) for d in discs]
    if len(discs) < MIN_VIEWS:
        raise InputError(f"multi-view reconstruction needs at least {MIN_VIEWS} discs, got {len(discs)}; "
                         "for two discs make a stereo pair (stereo-tem virtual --pair, then stereo-tem reconstruct)")
    if detector_shape is not None:
        ny, nx = (int(v) for v in detector_shape[-2:])
        for k, d in enumerate(discs):
            if d.cy - d.radius < -0.5 or d.cx - d.radius < -0.5 or d.cy + d.radius > ny - 0.5 \
                    or d.cx + d.radius > nx - 0.5:
                raise InputError(f"disc {k} (centre {d.cy:g}, {d.cx:g}, radius {d.radius:g}) reaches outside the "
                                 f"{ny} x {nx} detector; move it inwards or make it smaller")
    for i, j in combinations(range(len(discs)), 2):
        if np.hypot(discs[i].cy - discs[j].cy, discs[i].cx - discs[j].cx) < 1e-6:
            raise InputError(f"discs {i} and {j} share a centre: they see the specimen from one direction; move one")
    centres = np.array([[d.cx, d.cy] for d in discs])
    spread = np.linalg.svd(centres - centres.mean(axis=0), compute_uv=False)
    if spread[1] < 1e-6 * max(spread[0], 1e-12) + 1e-9:
        raise InputError("all discs lie on one straight line: every pair has the same epipolar direction, so lines "
                         "along it get no depth; move a disc off that line (a ring of discs, for example)")
    return discs


def view_shifts(discs, *, direct, mrad_per_px: float, scan_rotation_deg: float = 0.0,
                detector_shape=None) -> np.ndarray:
    """The view shift ``s_k`` of every disc: a point at depth ``Z`` is seen at ``(x, y) + Z s_k``.

    Parameters
    ----------
    discs : sequence of Disc or (cy, cx, r)
    direct : Disc or (cy, cx, r)
        The direct (bright-field) disc; ``k`` is measured from its centre.
    mrad_per_px : float
        Detector calibration.
    scan_rotation_deg : float
        Turns a detector direction into the scan frame.
    detector_shape : (det_y, det_x), optional
        With it, ``s_k`` is the mean over the disc's pixels inside the direct disc
        (what the virtual image sums); without it, ``s`` of the disc's centre.

    Returns
    -------
    ndarray, shape (n, 2)
        ``(sx, sy)`` per disc, dimensionless (scan pixels of shift per pixel of depth).
    """
    direct = as_disc(direct)
    scale = float(mrad_per_px)
    if not (np.isfinite(scale) and scale > 0):
        raise InputError(f"mrad_per_px must be positive (calibrate with the convergence semi-angle), "
                         f"got {mrad_per_px!r}")
    rot = np.deg2rad(float(scan_rotation_deg))
    out = []
    for disc in (as_disc(d) for d in discs):
        ky, kx = np.array([disc.cy]), np.array([disc.cx])
        if detector_shape is not None:
            inside = disc_mask(detector_shape, disc.cy, disc.cx, disc.radius, inner_radius=disc.inner_radius) \
                & disc_mask(detector_shape, direct.cy, direct.cx, direct.radius)
            if inside.any():
                ky, kx = (v.astype(float) for v in np.nonzero(inside))
        dy, dx = ky - direct.cy, kx - direct.cx
        norm = np.hypot(dx, dy)
        sine = np.sin(norm * scale * 1e-3) / np.maximum(norm, 1e-12)
        sx, sy = dx * sine, dy * sine
        out.append([float(np.mean(sx * np.cos(rot) - sy * np.sin(rot))),
                    float(np.mean(sx * np.sin(rot) + sy * np.cos(rot)))])
    return np.asarray(out, dtype=float).reshape(-1, 2)


def view_pairs(shifts, *, min_baseline_fraction: float = 0.3) -> list[dict]:
    """The useful pairs of views: their epipolar direction, rotation to horizontal and baseline.

    A pair whose baseline ``b_ij = |s_j - s_i|`` is below ``min_baseline_fraction``
    of the largest baseline adds little depth information and is left out.

    Returns
    -------
    list of dict
        ``pair`` ``[i, j]``, ``baseline`` (``b_ij``, disparity px per depth px),
        ``stereo_angle_deg`` (``2 asin(b_ij / 2)``), ``epipolar_direction_deg`` (of
        ``s_j - s_i``) and ``rotation_deg`` (to pass to
        :func:`~napari_stereo_tem.fourdstem.stereo.rotate_image` so that the pair's
        disparities run along ``+x``).
    """
    shifts = np.asarray(shifts, dtype=float)
    pairs = []
    for i, j in combinations(range(len(shifts)), 2):
        delta = shifts[j] - shifts[i]
        b = float(np.hypot(*delta))
        direction = float(np.rad2deg(np.arctan2(delta[1], delta[0])))
        pairs.append({"pair": [i, j], "baseline": b,
                      "stereo_angle_deg": float(np.rad2deg(2 * np.arcsin(min(b / 2.0, 1.0)))),
                      "epipolar_direction_deg": direction, "rotation_deg": -direction})
    if not pairs:
        return []
    largest = max(p["baseline"] for p in pairs)
    if largest <= 0:
        raise InputError("the discs see the specimen from one direction (no baseline): place them apart")
    return [p for p in pairs if p["baseline"] >= float(min_baseline_fraction) * largest]


def rotate_points(points_xy, angle_deg: float, shape) -> np.ndarray:
    """Where points ``(n, 2)`` as ``(x, y)`` go in an image ``shape`` turned by :func:`~.stereo.rotate_image`."""
    pts = np.asarray(points_xy, dtype=float).reshape(-1, 2)
    rows, cols = shape[-2:]
    centre = np.array([(cols - 1) / 2.0, (rows - 1) / 2.0])
    a = np.deg2rad(float(angle_deg))
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (pts - centre) @ rot.T + centre


def fuse_depths(disparities, disparity_std, baselines, *, max_sigma: float = 3.0, min_error: float = 0.25):
    """Depth of each point by weighted least squares over the pairs that measured it, outliers rejected.

    Each pair ``p`` measures ``d_p = Z * b_p + noise`` (standard deviation
    ``std_p``). ``Z`` minimises ``sum_p ((d_p - Z b_p) / std_p)^2``; a pair whose
    depth ``d_p / b_p`` lies more than ``max_sigma`` of its own depth standard
    deviation (and more than ``min_error`` disparity px) from the fused depth of
    the other pairs is dropped, one at a time, worst first.

    Parameters
    ----------
    disparities, disparity_std : array_like, shape (n_pairs, n_points)
        NaN where a pair did not measure the point.
    baselines : array_like, shape (n_pairs,)

    Returns
    -------
    z, z_std : ndarray, shape (n_points,)
        NaN where no pair measured the point.
    used : ndarray of bool, shape (n_pairs, n_points)
        The measurements kept.
    """
    d = np.atleast_2d(np.asarray(disparities, dtype=float))
    sd = np.atleast_2d(np.asarray(disparity_std, dtype=float))
    b = np.asarray(baselines, dtype=float).reshape(-1, 1)
    if d.shape != sd.shape or d.shape[0] != len(b):
        raise InputError(f"disparities {d.shape}, their std {sd.shape} and {len(b)} baselines do not fit together")
    used = np.isfinite(d) & np.isfinite(sd) & (sd > 0) & (b > 0)

    def solve(mask):
        w = np.where(mask, (b / np.where(mask, sd, 1.0)) ** 2, 0.0)
        total = w.sum(axis=0)
        z = np.where(total > 0, (w * np.where(mask, d / b, 0.0)).sum(axis=0) / np.maximum(total, 1e-300), np.nan)
        return z, np.where(total > 0, 1.0 / np.sqrt(np.maximum(total, 1e-300)), np.nan)

    for _ in range(d.shape[0] - 1):
        if not (used.sum(axis=0) >= 3).any():
            break
        z, _ = solve(used)
        excess = np.abs(np.where(used, d - z * b, 0.0))
        score = np.where(used & (excess > min_error), excess / np.where(used, sd, 1.0), 0.0)
        score[:, used.sum(axis=0) < 3] = 0.0  # two disagreeing pairs cannot tell which one is wrong
        worst = np.argmax(score, axis=0)
        drop = score[worst, np.arange(d.shape[1])] > max_sigma
        if not drop.any():
            break
        used[worst[drop], np.flatnonzero(drop)] = False
    z, z_std = solve(used)
    return z, z_std, used
