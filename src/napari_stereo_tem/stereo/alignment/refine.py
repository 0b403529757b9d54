"""Sub-pixel refinement and verification of correspondences (Lucas-Kanade with a photometric gain).

Correspondences from the finders in :mod:`.matches` are only as precise as
their detector: a blob's parabolic peak, a keypoint's scale-space position, a
patch's correlation peak. The tilt-axis angle is fixed by how the displacements
spread along the epipolar direction, so its error scales with the error of each
displacement across that direction. Each correspondence is therefore refined
here on the band-passed views: a Gaussian-weighted window around the left point
is found in the right view by Gauss-Newton (Lucas-Kanade) over the translation,
a gain and an offset (the contrast of the same feature changes between tilts).
The weighted correlation of the window after the last step verifies the pair:
a blob paired with the wrong partner, or a keypoint on moving contrast, does not
correlate and is dropped.

Content at another depth inside the window moves along the epipolar direction
only, so it shifts the refined displacement along that direction (the depth,
which the tilt-axis fit does not need precisely), not across it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["refine_correspondences", "refine_all"]


def _sample(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cubic-spline values of a pre-filtered image at ``(x, y)`` (arrays of one shape)."""
    return ndimage.map_coordinates(image, [y.ravel(), x.ravel()], order=3, prefilter=False,
                                   mode="nearest").reshape(x.shape)


def refine_correspondences(a: np.ndarray, b: np.ndarray, left, right, *, sigma: float = 4.0,
                           n_iter: int = 12, max_move: float = 1.5, min_correlation: float = 0.5,
                           valid_a: np.ndarray | None = None, valid_b: np.ndarray | None = None):
    """Refine ``right`` to a fraction of a pixel and verify each pair.

    Parameters
    ----------
    a, b : ndarray, shape (rows, cols)
        Band-passed left and right views (:func:`~.masks.bandpass`).
    left, right : array_like, shape (n, 2)
        Corresponding ``(x, y)`` points; ``left`` stays fixed.
    sigma : float
        Standard deviation (px) of the Gaussian window.
    n_iter : int
        Gauss-Newton steps.
    max_move : float
        Pairs whose refinement moves the right point further than this (px) are dropped.
    min_correlation : float
        Pairs whose weighted window correlation after refinement is lower are dropped.
    valid_a, valid_b : ndarray of bool, optional
        Usable pixels; windows that reach masked pixels are dropped.

    Returns
    -------
    right : ndarray, shape (n, 2)
        Refined right points.
    keep : ndarray of bool, shape (n,)
        Pairs that converged, stayed close and correlate.
    correlation : ndarray, shape (n,)
        Weighted correlation of each window after refinement.
    std_px : ndarray, shape (n,)
        Standard error of each refined position along its least precise direction (px).
    """
    pl = np.asarray(left, dtype=float).reshape(-1, 2)
    start = np.asarray(right, dtype=float).reshape(-1, 2)
    n = len(pl)
    if n == 0:
        return start.copy(), np.zeros(0, bool), np.zeros(0), np.zeros(0)
    radius = int(np.ceil(2.5 * sigma))
    oy, ox = np.mgrid[-radius:radius + 1, -radius:radius + 1].astype(float)
    weight = np.exp(-(ox ** 2 + oy ** 2) / (2.0 * sigma ** 2)).ravel()
    weight /= weight.sum()
    ox, oy = ox.ravel(), oy.ravel()
    rows, cols = a.shape
    inside = ((pl[:, 0] - radius >= 0) & (pl[:, 0] + radius <= cols - 1) & (pl[:, 1] - radius >= 0)
              & (pl[:, 1] + radius <= rows - 1))
    coef_a = ndimage.spline_filter(np.asarray(a, dtype=np.float64), order=3)
    coef_b = ndimage.spline_filter(np.asarray(b, dtype=np.float64), order=3)
    gy, gx = np.gradient(np.asarray(b, dtype=np.float64))
    coef_gx, coef_gy = ndimage.spline_filter(gx, order=3), ndimage.spline_filter(gy, order=3)
    win_a = _sample(coef_a, pl[:, :1] + ox, pl[:, 1:] + oy)  # (n, k)
    mean_a = win_a @ weight
    win_a = win_a - mean_a[:, None]
    pos = start.copy()
    gain = np.ones(n)
    offset = np.zeros(n)
    ok = inside.copy()
    active = np.flatnonzero(ok)
    for _ in range(n_iter):
        if len(active) == 0:
            break
        xs, ys = pos[active, :1] + ox, pos[active, 1:] + oy
        wb, bx, by = _sample(coef_b, xs, ys), _sample(coef_gx, xs, ys), _sample(coef_gy, xs, ys)
        wa = win_a[active]
        resid = wb - gain[active, None] * wa - offset[active, None]
        jac = np.stack([bx, by, -wa, -np.ones_like(wa)], axis=2)  # (m, k, 4)
        jw = jac * weight[None, :, None]
        jw_t = jw.transpose(0, 2, 1)
        normal = jw_t @ jac  # (m, 4, 4): batched matrix products, faster than einsum here
        rhs = -(jw_t @ resid[..., None])[..., 0]
        good = np.abs(np.linalg.det(normal)) > 1e-18
        step = np.zeros((len(active), 4))
        step[good] = np.linalg.solve(normal[good], rhs[good][..., None])[..., 0]
        step[:, :2] = np.clip(step[:, :2], -0.5, 0.5)
        ok[active[~good]] = False
        pos[active] += step[:, :2]
        gain[active] += step[:, 2]
        offset[active] += step[:, 3]
        active = active[good & (np.abs(step[:, :2]).max(axis=1) > 1e-3)]
    xs, ys = pos[:, :1] + ox, pos[:, 1:] + oy
    wb = _sample(coef_b, xs, ys)
    wb_c = wb - (wb @ weight)[:, None]
    cov = (win_a * wb_c) @ weight
    var_a, var_b = (win_a ** 2) @ weight, (wb_c ** 2) @ weight
    correlation = cov / np.sqrt(np.maximum(var_a * var_b, 1e-24))
    # the standard error of the position: residual variance times the inverse of the weighted normal matrix
    bx, by = _sample(coef_gx, xs, ys), _sample(coef_gy, xs, ys)
    resid = wb - gain[:, None] * win_a - offset[:, None]
    n_eff = 1.0 / float((weight ** 2).sum())
    s2 = (resid ** 2) @ weight * n_eff / max(n_eff - 4.0, 1.0)
    jac = np.stack([bx, by, -win_a, -np.ones_like(win_a)], axis=2)
    normal = ((jac * weight[None, :, None]).transpose(0, 2, 1) @ jac) * n_eff
    std = np.full(n, np.inf)
    invertible = np.abs(np.linalg.det(normal)) > 1e-18
    if invertible.any():
        inv = np.linalg.inv(normal[invertible])
        std[invertible] = np.sqrt(np.maximum(s2[invertible] * np.linalg.eigvalsh(inv[:, :2, :2])[:, 1], 0.0))
    moved = np.hypot(*(pos - start).T)
    keep = ok & invertible & (moved < max_move) & (correlation >= min_correlation) & (gain > 0)
    for valid, pts in ((valid_a, pl), (valid_b, pos)):
        if valid is not None and keep.any():
            cover = ndimage.minimum_filter(np.asarray(valid, np.uint8), size=2 * radius + 1) > 0
            ix = np.clip(np.round(pts[:, 0]).astype(int), 0, cols - 1)
            iy = np.clip(np.round(pts[:, 1]).astype(int), 0, rows - 1)
            keep &= cover[iy, ix]
    return pos, keep, correlation, std


def refine_all(a: np.ndarray, b: np.ndarray, corr, valid_a: np.ndarray, valid_b: np.ndarray, *,
               sigma: float = 4.0, patch_sigma: float = 8.0, min_correlation: float = 0.5):
    """Refine and verify the keypoint and blob correspondences (:class:`~.matches.Correspondences`).

    Keypoints and blobs are refined on the band-passed views in a window of
    ``sigma`` px. Pairs that do not converge or correlate less than
    ``min_correlation`` are dropped; the others carry their standard error in
    ``sigma``. Dense patches (already refined by ECC) are refined again in a wider
    window of ``patch_sigma`` px, which gives them a standard error of their own
    on the same scale. Correspondences from guide images and clicked points pass
    unchanged.
    """
    from .matches import SOURCES

    corr = corr.subset(np.arange(len(corr)))
    keep = np.ones(len(corr), bool)
    for name, window in (("dense", patch_sigma), ("blob", sigma), ("sift", sigma), ("sift-plain", sigma)):
        sel = np.flatnonzero(corr.source == SOURCES.index(name))
        if len(sel) == 0:
            continue
        right, ok, corr_coef, std = refine_correspondences(a, b, corr.left[sel], corr.right[sel], sigma=window,
                                                           min_correlation=min_correlation, valid_a=valid_a,
                                                           valid_b=valid_b)
        corr.right[sel] = right
        corr.sigma[sel] = std
        keep[sel] = ok
    return corr.subset(keep)
