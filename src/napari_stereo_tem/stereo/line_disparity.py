"""Disparity measured from the images along a line: the row correlation that :mod:`.line_fit` fits.

- :func:`image_disparity`: each point's disparity at the sub-pixel peak of the
  normalised cross-correlation of a short patch (Gaussian-weighted across the
  line) with the right view shifted along the row, searched a few pixels around a
  starting value, with a standard deviation from the peak's sharpness;
- :func:`line_disparity_search`: whole-pixel disparities chosen for a line as a
  whole (a Viterbi path through the same correlations, continuity as the prior);
- :func:`line_disparity_map`: that search on every skeleton branch of a mask.

:mod:`.line_fit` re-exports the public names.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import map_coordinates

__all__ = ["image_disparity", "line_disparity_search", "line_disparity_map"]


def _line_inputs(left, right, x, y, d0):
    """The two views as float32 arrays, the points and their starting disparities as float arrays."""
    return (np.asarray(left, dtype=np.float32), np.asarray(right, dtype=np.float32),
            np.asarray(x, dtype=float), np.asarray(y, dtype=float), np.asarray(d0, dtype=float))


def image_disparity(left, right, x, y, d0, *, half_height: int = 3, half_width: int = 8, search: int = 2,
                    window_px: float | None = 3.0):
    """Sub-pixel disparity of points from the images: correlation of short patches along the rows.

    Parameters
    ----------
    left, right : ndarray, shape (rows, cols)
        The rectified views, or the detector's probability maps of them (any scale:
        the correlation is normalised). The probabilities measure better (median error
        0.12 px against 0.14 px on held-out synthetic pairs) and do not depend on how
        the contrast changes with tilt.
    x, y : array_like, shape (n,)
        Points in the left view (sub-pixel columns allowed).
    d0 : array_like, shape (n,)
        Starting disparities ``x_right - x_left``; NaN: not measured.
    half_height, half_width : int
        The patch is ``2 * half_height + 1`` rows by ``2 * half_width + 1`` columns.
    search : int
        Whole-pixel shifts tried on either side of ``d0``.
    window_px : float or None
        Gaussian weight across the patch (standard deviation, pixels): the line in the
        middle counts, a neighbour a few pixels away (a pile-up) hardly does.

    Returns
    -------
    d : ndarray, shape (n,)
        Disparity at the correlation's sub-pixel peak; NaN where the peak lies at the
        edge of the search, the patch is flat, or ``d0`` is NaN.
    std : ndarray, shape (n,)
        A standard deviation (pixels) from the peak's sharpness and height, up to one
        common scale (:func:`fit_disparity_curve` estimates that scale from the residuals).
    peak : ndarray, shape (n,)
        The normalised cross-correlation at the peak (1 = identical patches).
    """
    left, right, x, y, d0 = _line_inputs(left, right, x, y, d0)
    n = len(x)
    d = np.full(n, np.nan)
    std = np.full(n, np.nan)
    peak = np.full(n, np.nan)
    ok = np.isfinite(d0) & np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return d, std, peak
    xi, yi, di = x[ok], y[ok], np.round(d0[ok])
    shifts = np.arange(-search - 1, search + 2, dtype=float)  # one more on each side for the parabola
    ncc, na = _row_correlation(left, right, xi, yi, di + shifts[0], len(shifts), half_height=half_height,
                               half_width=half_width, window_px=window_px)
    k = np.argmax(ncc[:, 1:-1], axis=1) + 1
    idx = np.arange(len(k))
    cm, c0, cp = ncc[idx, k - 1], ncc[idx, k], ncc[idx, k + 1]
    curvature = cm - 2 * c0 + cp
    inside = (k > 1) & (k < len(shifts) - 2) & (curvature < -1e-6) & (na > 1e-6)
    offset = np.where(inside, 0.5 * (cm - cp) / np.where(inside, curvature, -1.0), 0.0)
    di_out = di + shifts[k] + np.clip(offset, -0.5, 0.5)
    # A sharp, high peak is a precise one: variance ~ (1 - peak) / sharpness.
    sd = np.sqrt(np.maximum(1.0 - c0, 0.02) / np.maximum(-curvature, 1e-3))
    d[ok] = np.where(inside, di_out, np.nan)
    std[ok] = np.where(inside, sd, np.nan)
    peak[ok] = c0
    return d, std, peak


def _row_correlation(left, right, x, y, first, n_shifts: int, *, half_height: int = 3, half_width: int = 8,
                     window_px: float | None = 3.0):
    """Normalised cross-correlation of a patch around each left point with the right view shifted along the row.

    Point ``i`` is tried at the disparities ``first[i] + 0, 1, ..., n_shifts - 1``. The right
    view is sampled once per point along a strip as wide as all its shifted patches
    together, and the patches are windows of that strip. Returns the ``(n, n_shifts)``
    correlations and the ``(n,)`` norms of the left patches (0: flat patch).
    """
    first = np.asarray(first, dtype=float)
    dy = np.arange(-half_height, half_height + 1, dtype=float)
    dx = np.arange(-half_width, half_width + 1, dtype=float)
    rows = y[:, None, None] + dy[None, :, None] + 0.0 * dx[None, None, :]
    cols = x[:, None, None] + dx[None, None, :] + 0.0 * dy[None, :, None]
    patch_l = map_coordinates(left, [rows.ravel(), cols.ravel()], order=1, mode="nearest").reshape(rows.shape)
    span = np.arange(-half_width, half_width + n_shifts, dtype=float)
    rows_r = y[:, None, None] + dy[None, :, None] + 0.0 * span[None, None, :]
    cols_r = (x + first)[:, None, None] + span[None, None, :] + 0.0 * dy[None, :, None]
    strip = map_coordinates(right, [rows_r.ravel(), cols_r.ravel()], order=1, mode="nearest").reshape(rows_r.shape)
    return _strip_correlation(patch_l, strip, dx, window_px)


def _strip_correlation(patch_l, strip, dx, window_px):
    """Correlation of each left patch with every window of its right strip, and the left patches' norms.

    ``patch_l`` is ``(n, rows, cols)``, ``strip`` ``(n, rows, cols + k - 1)``: the right
    view along the row, as wide as ``k`` shifted patches together. Returns the ``(n, k)``
    correlations and the ``(n,)`` norms.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    patch_r = np.moveaxis(sliding_window_view(strip, len(dx), axis=2), 2, 1)  # (n, k, rows, cols)
    a, b, na, nb = _centred_patches(patch_l, patch_r, dx, window_px)
    return np.einsum("nrc,ngrc->ng", a, b) / np.maximum(na[:, None] * nb, 1e-9), na


def _centred_patches(patch_l, patch_r, dx, window_px):
    """The correlation's patches weighted across the line (Gaussian in ``dx``), centred, and their norms.

    ``patch_l`` is ``(n, rows, cols)``, ``patch_r`` ``(n, k, rows, cols)`` (``k`` shifts);
    returns ``a``, ``b`` and the norms ``(n,)`` and ``(n, k)``.
    """
    if window_px:
        weight = np.exp(-0.5 * (np.asarray(dx, dtype=float) / float(window_px)) ** 2)
        patch_l = patch_l * weight
        patch_r = patch_r * weight
    a = patch_l - patch_l.mean(axis=(1, 2), keepdims=True)
    b = patch_r - patch_r.mean(axis=(2, 3), keepdims=True)
    return a, b, np.sqrt((a ** 2).sum(axis=(1, 2))), np.sqrt((b ** 2).sum(axis=(2, 3)))


def _grid_correlation(left, right, x, y, grid, *, half_height: int = 3, half_width: int = 8,
                      window_px: float | None = 3.0) -> np.ndarray:
    """:func:`_row_correlation` at whole pixels: points rounded, the same disparities ``grid`` for all.

    Plain indexing and sliding windows instead of interpolation (several times faster).
    Returns the ``(n, len(grid))`` correlations.
    """
    rows, cols = left.shape
    xi = np.round(x).astype(int)
    yi = np.clip(np.round(y).astype(int)[:, None] + np.arange(-half_height, half_height + 1)[None, :], 0, rows - 1)
    dx = np.arange(-half_width, half_width + 1)
    patch_l = left[yi[:, :, None], np.clip(xi[:, None, None] + dx[None, None, :], 0, cols - 1)]
    span = np.arange(int(grid[0]) - half_width, int(grid[-1]) + half_width + 1)
    strip = right[yi[:, :, None], np.clip(xi[:, None, None] + span[None, None, :], 0, cols - 1)]
    return _strip_correlation(patch_l, strip, dx, window_px)[0]


def line_disparity_search(left, right, x, y, d0, *, search: int = 8, step_cost: float = 0.1,
                          jump_cost: float = 3.0, prior_cost: float = 0.01, subpixel: bool = False):
    """Whole-pixel disparities along one line, chosen for the line as a whole (dynamic programming).

    The matcher's disparity can be off by a few pixels, or by a pile-up's line spacing
    (the neighbour's partner), over a stretch of a line; a search of a pixel or two
    around it cannot leave that stretch. Here every point's patch is correlated with
    the right view (:func:`image_disparity`'s correlation, at whole pixels) at every
    whole-pixel disparity of a range around the starting values, and one path through
    these correlations is chosen along the line (a Viterbi pass): it maximises the
    summed correlation, pays ``step_cost`` for each pixel the disparity changes between
    neighbouring points, ``jump_cost`` for each change larger than one pixel, and
    ``prior_cost`` per pixel it strays from ``d0`` (at most ``search`` pixels' worth).
    The range runs ``search`` pixels beyond the 5th and 95th percentiles of ``d0``. A
    line is continuous, so a stretch where the matcher jumped to another partner is
    pulled back by the rest of the line. The costs were chosen on validation pairs
    (``python benchmarks/bench_lines3d.py --split val --line-search``).

    Parameters
    ----------
    left, right : ndarray, shape (rows, cols)
        The views or the detector's probabilities (as :func:`image_disparity`).
    x, y : array_like, shape (n,)
        The line's left points, in order along it (about one pixel apart).
    d0 : array_like, shape (n,)
        The starting disparities; NaN where none (the path crosses them freely).
    search, step_cost, jump_cost, prior_cost
        As above.
    subpixel : bool
        Refine each chosen disparity by the parabola through its correlation and its
        two neighbours' (within half a pixel).

    Returns
    -------
    ndarray, shape (n,)
        Disparities along the path, whole pixels unless ``subpixel`` (all NaN when no
        ``d0`` is finite).
    """
    left, right, x, y, d0 = _line_inputs(left, right, x, y, d0)
    n = len(x)
    if n == 0 or not np.isfinite(d0).any():
        return np.full(n, np.nan)
    lo = int(np.round(np.nanpercentile(d0, 5)) - search)  # percentiles: a wild start does not widen the grid
    hi = int(np.round(np.nanpercentile(d0, 95)) + search)
    grid = np.arange(lo, hi + 1, dtype=float)
    ncc = _grid_correlation(left, right, x, y, grid)
    prior = np.where(np.isfinite(d0)[:, None], np.minimum(np.abs(grid[None, :] - d0[:, None]), search), 0.0)
    unary = -ncc + prior_cost * prior
    # transition cost between disparities k and j of consecutive points
    step = np.abs(grid[:, None] - grid[None, :])
    transition = step_cost * step + jump_cost * (step > 1)
    total = unary[0].copy()
    back = np.zeros((n, len(grid)), dtype=np.int64)
    for i in range(1, n):
        options = total[:, None] + transition
        back[i] = np.argmin(options, axis=0)
        total = options[back[i], np.arange(len(grid))] + unary[i]
    path = np.empty(n, dtype=np.int64)
    path[-1] = int(np.argmin(total))
    for i in range(n - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    if not subpixel:
        return grid[path]
    # the correlation's parabola around the chosen disparity (not at the grid's ends)
    k = np.clip(path, 1, len(grid) - 2)
    idx = np.arange(n)
    cm, c0, cp = ncc[idx, k - 1], ncc[idx, k], ncc[idx, k + 1]
    curvature = cm - 2 * c0 + cp
    good = (k == path) & (curvature < -1e-6)
    offset = np.clip(0.5 * (cm - cp) / np.where(good, curvature, -1.0), -0.5, 0.5)
    return np.where(good, grid[path] + offset, grid[path])


def line_disparity_map(mask, left, right, start, *, search: int = 8,
                       min_branch_length: float = 10.0) -> np.ndarray:
    """Disparity measured along every skeleton branch of ``mask`` (:func:`line_disparity_search`, then sub-pixel).

    Returns a ``(rows, cols)`` map, NaN off the skeleton and where nothing was measured.
    Called on the mirrored, swapped pair it gives the right view's own measurement, which
    :func:`fit_lines` checks the left one against.
    """
    from .skeleton_graph import skeleton_branches

    out = np.full(np.shape(mask), np.nan)
    for branch in skeleton_branches(mask, min_branch_length=min_branch_length):
        ij = np.round(branch).astype(int)
        out[ij[:, 1], ij[:, 0]] = line_disparity_search(left, right, branch[:, 0], branch[:, 1],
                                                        np.asarray(start, dtype=float)[ij[:, 1], ij[:, 0]],
                                                        search=search, subpixel=True)
    return out


def _back_disparity(disparity_right, x, y, *, reach: int = 1):
    """The right view's disparity at ``(x, y)``: the measured value nearest along the row within ``reach`` px."""
    rows, cols = disparity_right.shape
    yi = np.clip(np.round(y).astype(int), 0, rows - 1)
    best = np.full(len(x), np.nan)
    best_dist = np.full(len(x), np.inf)
    for step in range(-reach - 1, reach + 2):
        xi = np.floor(np.nan_to_num(x, nan=-10.0)).astype(int) + step
        inside = (xi >= 0) & (xi < cols)
        value = np.where(inside, disparity_right[yi, np.clip(xi, 0, cols - 1)], np.nan)
        dist = np.abs(xi - x)
        better = np.isfinite(value) & (dist <= reach + 0.5) & (dist < best_dist)
        best = np.where(better, value, best)
        best_dist = np.where(better, dist, best_dist)
    return best
