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

from ...progress import check_cancelled, map_threads
from .masks import erode

__all__ = ["refine_correspondences", "refine_all"]


def _bspline_weights(frac: np.ndarray) -> np.ndarray:
    """The four cubic B-spline weights of the coefficients at ``floor - 1 .. floor + 2``, shape ``(n, 4)``."""
    t = frac[:, None]
    return np.hstack([(1.0 - t) ** 3, 4.0 - 6.0 * t ** 2 + 3.0 * t ** 3,
                      1.0 + 3.0 * t + 3.0 * t ** 2 - 3.0 * t ** 3, t ** 3]) / 6.0


def _band(weights: np.ndarray, side: int) -> np.ndarray:
    """``(n, side + 3, side)`` matrices applying each row's four taps ``weights`` ``(n, 4)`` along a window."""
    band = np.zeros((len(weights), side + 3, side), dtype=weights.dtype)
    j = np.arange(side)
    for k in range(4):
        band[:, j + k, j] = weights[:, k:k + 1]
    return band


def _sample_windows(coefs: np.ndarray, pad: int, centres: np.ndarray, radius: int) -> np.ndarray:
    """Cubic-spline values of ``(2 radius + 1)^2`` windows centred on sub-pixel ``centres`` ``(n, 2)`` ``(x, y)``.

    ``coefs``: the image's spline coefficients (:func:`scipy.ndimage.spline_filter`), padded by ``pad`` px
    with their edge values. A window is a whole-pixel grid, so every sample of it shares one sub-pixel
    fraction: the spline is then a separable four-tap filter of the block of coefficients around the window,
    two batched matrix products (the values of :func:`scipy.ndimage.map_coordinates` with ``order=3,
    prefilter=False, mode="nearest"``, at a small fraction of its cost). Returns ``(n, 2 radius + 1,
    2 radius + 1)``, rows first.
    """
    side = 2 * radius + 1
    base = np.floor(centres)
    wx, wy = (_bspline_weights(centres[:, k] - base[:, k]).astype(coefs.dtype) for k in (0, 1))
    blocks = np.lib.stride_tricks.sliding_window_view(coefs, (side + 3, side + 3))
    x0 = np.clip(base[:, 0].astype(np.intp) - radius - 1 + pad, 0, blocks.shape[1] - 1)
    y0 = np.clip(base[:, 1].astype(np.intp) - radius - 1 + pad, 0, blocks.shape[0] - 1)
    patch = blocks[y0, x0]  # (n, side + 3, side + 3)
    return _band(wy, side).transpose(0, 2, 1) @ (patch @ _band(wx, side))


def _window_and_gradients(coef_b: np.ndarray, pad: int, centres: np.ndarray, radius: int) -> np.ndarray:
    """Windows of the view and of its two gradients (central differences), shape ``(n, 3, k)``.

    The spline of ``np.gradient(b)`` is the central difference of the spline of ``b`` (both are linear and
    shift-invariant), so one window a pixel wider gives all three.
    """
    big = _sample_windows(coef_b, pad, centres, radius + 1)
    side = 2 * radius + 1
    out = np.empty((len(centres), 3, side, side), dtype=big.dtype)
    out[:, 0] = big[:, 1:-1, 1:-1]
    np.subtract(big[:, 1:-1, 2:], big[:, 1:-1, :-2], out=out[:, 1])
    np.subtract(big[:, 2:, 1:-1], big[:, :-2, 1:-1], out=out[:, 2])
    out[:, 1:] *= 0.5
    return out.reshape(len(centres), 3, side * side)


def _coefficients(a: np.ndarray, b: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Cubic-spline coefficients of ``a`` and ``b``, padded with their edge values for windows up to ``radius``.

    Single precision: the windows are sampled to 1e-7 of their values, far below the noise the refinement sees.
    Returns ``(coef_a, coef_b, pad)``.
    """
    pad = int(radius) + 4
    coefs = [np.pad(ndimage.spline_filter(np.asarray(image, dtype=np.float64), order=3).astype(np.float32), pad,
                    mode="edge") for image in (a, b)]
    return coefs[0], coefs[1], pad


def _normal_equations(sampled: np.ndarray, wa: np.ndarray, wa_w: np.ndarray, wa_wa: np.ndarray,
                      weight: np.ndarray, resid: np.ndarray):
    """Weighted normal matrix ``(m, 4, 4)`` and ``J^T W r`` ``(m, 4)`` of translation, gain and offset (float64).

    The Jacobian's columns are the view's two gradients (``sampled[:, 1:3]``), ``-wa`` and ``-1``; ``wa_w`` is
    ``wa * weight`` and ``wa_wa`` the weighted ``sum(wa^2)``, which do not change between iterations.
    """
    m = len(wa)
    grads = sampled[:, 1:3]  # (m, 2, k)
    gw = grads * weight
    products = gw @ np.concatenate([grads, wa[:, None], resid[:, None]], axis=1).transpose(0, 2, 1)  # (m, 2, 4)
    products = products.astype(np.float64)
    normal = np.empty((m, 4, 4))
    normal[:, :2, :2] = products[:, :, :2]
    normal[:, :2, 2] = -products[:, :, 2]
    normal[:, :2, 3] = -gw.sum(axis=2, dtype=np.float64)
    normal[:, 2, 2] = wa_wa
    normal[:, 2, 3] = wa_w.sum(axis=1, dtype=np.float64)  # (-wa) . (-1)
    normal[:, 3, 3] = float(weight.sum(dtype=np.float64))
    normal[:, 2:, :2] = normal[:, :2, 2:].transpose(0, 2, 1)
    normal[:, 3, 2] = normal[:, 2, 3]
    rhs = np.empty((m, 4))
    rhs[:, :2] = products[:, :, 3]
    rhs[:, 2] = -np.einsum("mk,mk->m", wa_w, resid, dtype=np.float64)
    rhs[:, 3] = -(resid @ weight)
    return normal, rhs


def refine_correspondences(a: np.ndarray, b: np.ndarray, left, right, *, sigma: float = 4.0,
                           n_iter: int = 12, max_move: float = 1.5, min_correlation: float = 0.5,
                           valid_a: np.ndarray | None = None, valid_b: np.ndarray | None = None,
                           coefficients=None):
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
    coefficients : tuple, optional
        ``_coefficients(a, b, radius)`` when already computed (several calls on one pair).

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
    if coefficients is None or coefficients[2] < radius + 4:
        coefficients = _coefficients(a, b, radius)
    coef_a, coef_b, pad = coefficients
    oy, ox = np.mgrid[-radius:radius + 1, -radius:radius + 1].astype(float)
    weight = np.exp(-(ox ** 2 + oy ** 2) / (2.0 * sigma ** 2)).ravel()
    weight /= weight.sum()
    rows, cols = a.shape
    inside = ((pl[:, 0] - radius >= 0) & (pl[:, 0] + radius <= cols - 1) & (pl[:, 1] - radius >= 0)
              & (pl[:, 1] + radius <= rows - 1))
    weight32 = weight.astype(np.float32)
    win_a = _sample_windows(coef_a, pad, pl, radius).reshape(n, -1)  # (n, k)
    win_a -= (win_a @ weight32)[:, None]
    wa_w = win_a * weight32
    wa_wa = np.einsum("nk,nk->n", wa_w, win_a, dtype=np.float64)
    pos = start.copy()
    gain = np.ones(n)
    offset = np.zeros(n)
    ok = inside.copy()
    active = np.flatnonzero(ok)
    for _ in range(n_iter):
        if len(active) == 0:
            break
        check_cancelled()
        sampled = _window_and_gradients(coef_b, pad, pos[active], radius)
        wa = win_a[active]
        resid = sampled[:, 0] - gain[active, None].astype(np.float32) * wa - offset[active, None].astype(np.float32)
        normal, rhs = _normal_equations(sampled, wa, wa_w[active], wa_wa[active], weight32, resid)
        good = np.abs(np.linalg.det(normal)) > 1e-18
        step = np.zeros((len(active), 4))
        step[good] = np.linalg.solve(normal[good], -rhs[good][..., None])[..., 0]
        step[:, :2] = np.clip(step[:, :2], -0.5, 0.5)
        ok[active[~good]] = False
        pos[active] += step[:, :2]
        gain[active] += step[:, 2]
        offset[active] += step[:, 3]
        active = active[good & (np.abs(step[:, :2]).max(axis=1) > 1e-3)]
    sampled = _window_and_gradients(coef_b, pad, pos, radius)
    wb = sampled[:, 0]
    wb_c = wb - (wb @ weight32)[:, None]
    cov = np.einsum("nk,nk->n", wa_w, wb_c, dtype=np.float64)
    var_b = np.einsum("nk,nk,k->n", wb_c, wb_c, weight32, dtype=np.float64)
    correlation = cov / np.sqrt(np.maximum(wa_wa * var_b, 1e-24))
    # the standard error of the position: residual variance times the inverse of the weighted normal matrix
    resid = wb - gain[:, None].astype(np.float32) * win_a - offset[:, None].astype(np.float32)
    n_eff = 1.0 / float((weight ** 2).sum())
    s2 = np.einsum("nk,nk,k->n", resid, resid, weight32, dtype=np.float64) * n_eff / max(n_eff - 4.0, 1.0)
    normal = _normal_equations(sampled, win_a, wa_w, wa_wa, weight32, resid)[0] * n_eff
    std = np.full(n, np.inf)
    invertible = np.abs(np.linalg.det(normal)) > 1e-18
    if invertible.any():
        inv = np.linalg.inv(normal[invertible])
        std[invertible] = np.sqrt(np.maximum(s2[invertible] * np.linalg.eigvalsh(inv[:, :2, :2])[:, 1], 0.0))
    moved = np.hypot(*(pos - start).T)
    keep = ok & invertible & (moved < max_move) & (correlation >= min_correlation) & (gain > 0)
    for valid, pts in ((valid_a, pl), (valid_b, pos)):
        if valid is not None and keep.any():
            cover = erode(valid, radius, outside=True)
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
    coefficients = _coefficients(a, b, int(np.ceil(2.5 * max(sigma, patch_sigma))))
    jobs = []  # each point is refined on its own: halves of every source, in two threads (numpy releases the GIL)
    for name, window in (("dense", patch_sigma), ("blob", sigma), ("sift", sigma), ("sift-plain", sigma)):
        sel = np.flatnonzero(corr.source == SOURCES.index(name))
        jobs += [(part, window) for part in np.array_split(sel, 2) if len(part)]

    def refine(job):
        part, window = job
        return refine_correspondences(a, b, corr.left[part], corr.right[part], sigma=window,
                                      min_correlation=min_correlation, valid_a=valid_a, valid_b=valid_b,
                                      coefficients=coefficients)

    for (part, _), (right, ok, _, std) in zip(jobs, map_threads(refine, jobs, workers=2)):
        corr.right[part] = right
        corr.sigma[part] = std
        keep[part] = ok
    return corr.subset(keep)
