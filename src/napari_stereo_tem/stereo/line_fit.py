"""One smooth curve per line: disparity measured in the images, a robust spline along the line, its uncertainty.

The matcher gives every left dislocation pixel a disparity, refinement snaps it
to the right view's line (DESIGN 3.5). Both are whole-pixel-ish and every point
counts the same, although a pair carries no depth information where a line runs
along the rows (the epipolar direction). Here, per skeleton branch of the left
view:

1. :func:`image_disparity` measures the disparity from the images themselves: a
   short patch across the line in the left view is correlated with the right view
   along the row around the current estimate; the sub-pixel peak of the normalised
   cross-correlation gives the disparity, its sharpness a standard deviation;
2. :func:`fit_disparity_curve` fits one smooth curve ``d(s)`` along the branch
   (``s`` = arc length): a cubic penalised spline (P-spline) weighted by
   ``1 / std**2``, with the weights of points whose profile runs along the rows cut
   by ``sin**2`` of the line's angle to the rows, refitted with Tukey weights so
   outliers do not pull it; where points are missing or unreliable the curve
   follows from the well-measured parts;
3. the standard deviation of the curve at each point (the spline's posterior,
   scaled by the fit's own residual spread) becomes the depth standard deviation.

A branch with too few reliable points is dropped: it is not triangulated.

Options of :func:`fit_lines` (off by default; figures in docs/benchmarks.md):
:func:`line_disparity_search` chooses each line's whole-pixel disparities for the line
as a whole before step 1 (a stretch matched to a neighbour's partner is pulled back by
the rest of the line), and :func:`line_disparity_map` measures the right view's lines
the same way, so a stretch only the right view's matcher disputes is kept; points whose
disparity is too uncertain, and branches the detector itself is unsure of, can be left out.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import map_coordinates

__all__ = ["fit_lines", "image_disparity", "line_disparity_search", "line_disparity_map", "fit_disparity_curve",
           "line_angle_sine", "arc_length", "line_planes", "true_runs", "MAX_DISPARITY_STD"]

#: The smallest ``|sin|`` of the angle between a line and the rows used in the weights.
MIN_SINE = 0.35

#: Factor on the fitted standard deviations that makes them calibrated: about 68 % of
#: depth errors within one reported standard deviation on held-out validation pairs
#: (``python benchmarks/bench_lines3d.py --split val``).
STD_CALIBRATION = 1.15

#: A limit for ``fit_lines(max_disparity_std=...)``: points whose fitted disparity has a
#: larger (calibrated) standard deviation, in pixels, are not triangulated (stretches
#: along the rows far from any well-measured part; 2 px of disparity is 14 px of depth at
#: 8 degrees). Chosen on validation pairs (``python benchmarks/bench_lines3d.py --split val
#: --max-disparity-std 2``); not the default: on the held-out pairs it trades up to 0.016
#: of coverage for up to 0.013 of precision (docs/benchmarks.md).
MAX_DISPARITY_STD = 2.0


def arc_length(points) -> np.ndarray:
    """Cumulative distance along a polyline ``(n, 2)``, starting at 0."""
    pts = np.asarray(points, dtype=float)
    if len(pts) < 2:
        return np.zeros(len(pts))
    return np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])


def line_angle_sine(points, *, window: int = 3) -> np.ndarray:
    """``|sin|`` of the angle between a polyline ``(n, 2)`` of ``(x, y)`` and the rows, per point.

    1 where the line runs along the columns (across the epipolar direction: depth
    is well defined), 0 where it runs along a row (no depth information).
    """
    pts = np.asarray(points, dtype=float)
    n = len(pts)
    if n < 2:
        return np.ones(n)
    idx = np.arange(n)
    a = pts[np.clip(idx - window, 0, n - 1)]
    b = pts[np.clip(idx + window, 0, n - 1)]
    t = b - a
    norm = np.hypot(t[:, 0], t[:, 1])
    return np.where(norm > 0, np.abs(t[:, 1]) / np.maximum(norm, 1e-12), 1.0)


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
    left = np.asarray(left, dtype=np.float32)
    right = np.asarray(right, dtype=np.float32)
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    d0 = np.asarray(d0, dtype=float)
    n = len(x)
    d = np.full(n, np.nan)
    std = np.full(n, np.nan)
    peak = np.full(n, np.nan)
    ok = np.isfinite(d0) & np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return d, std, peak
    xi, yi, di = x[ok], y[ok], np.round(d0[ok])
    shifts = np.arange(-search - 1, search + 2, dtype=float)  # one more on each side for the parabola
    ncc, na = _row_correlation(left, right, xi, yi, di[:, None] + shifts[None, :], half_height=half_height,
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


def _row_correlation(left, right, x, y, shifts, *, half_height: int = 3, half_width: int = 8,
                     window_px: float | None = 3.0):
    """Normalised cross-correlation of a patch around each left point with the right view shifted along the row.

    ``shifts`` is ``(n, k)``: the disparities tried for each of the ``n`` points. Returns
    the ``(n, k)`` correlations and the ``(n,)`` norms of the left patches (0: flat patch).
    """
    shifts = np.asarray(shifts, dtype=float)
    dy = np.arange(-half_height, half_height + 1, dtype=float)
    dx = np.arange(-half_width, half_width + 1, dtype=float)
    rows = y[:, None, None] + dy[None, :, None] + 0.0 * dx[None, None, :]
    cols = x[:, None, None] + dx[None, None, :] + 0.0 * dy[None, :, None]
    patch_l = map_coordinates(left, [rows.ravel(), cols.ravel()], order=1, mode="nearest").reshape(rows.shape)
    rows_r = np.broadcast_to(rows[:, None], (len(x), shifts.shape[1]) + rows.shape[1:])
    cols_r = cols[:, None] + shifts[:, :, None, None]
    patch_r = map_coordinates(right, [rows_r.ravel(), cols_r.ravel()], order=1,
                              mode="nearest").reshape(cols_r.shape)
    a, b, na, nb = _centred_patches(patch_l, patch_r, dx, window_px)
    return (a[:, None] * b).sum(axis=(2, 3)) / np.maximum(na[:, None] * nb, 1e-9), na


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
    from numpy.lib.stride_tricks import sliding_window_view

    rows, cols = left.shape
    xi = np.round(x).astype(int)
    yi = np.clip(np.round(y).astype(int)[:, None] + np.arange(-half_height, half_height + 1)[None, :], 0, rows - 1)
    dx = np.arange(-half_width, half_width + 1)
    patch_l = left[yi[:, :, None], np.clip(xi[:, None, None] + dx[None, None, :], 0, cols - 1)]
    span = np.arange(int(grid[0]) - half_width, int(grid[-1]) + half_width + 1)
    strip = right[yi[:, :, None], np.clip(xi[:, None, None] + span[None, None, :], 0, cols - 1)]
    patch_r = np.moveaxis(sliding_window_view(strip, len(dx), axis=2), 2, 1)  # (n, len(grid), rows, cols)
    a, b, na, nb = _centred_patches(patch_l, patch_r, dx, window_px)
    return np.einsum("nrc,ngrc->ng", a, b) / np.maximum(na[:, None] * nb, 1e-9)


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
    left = np.asarray(left, dtype=np.float32)
    right = np.asarray(right, dtype=np.float32)
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    d0 = np.asarray(d0, dtype=float)
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


def _bspline_basis(s: np.ndarray, spacing: float) -> np.ndarray:
    """Cubic B-splines on uniform knots that run past both ends of ``s``.

    Uniform (not clamped) knots make a straight line in the coefficients a straight
    line in ``s`` everywhere, ends included, so the second-difference penalty leaves
    a uniformly inclined line alone instead of bending its ends.
    """
    from scipy.interpolate import BSpline

    lo, hi = float(s.min()), float(s.max())
    n_int = max(1, int(np.ceil((hi - lo) / spacing)))
    step = max((hi - lo) / n_int, 1e-9)
    knots = lo + step * np.arange(-3, n_int + 4)
    basis = BSpline.design_matrix(np.clip(s, lo, lo + step * n_int), knots, 3)
    return basis.toarray()


def fit_disparity_curve(s, d, std, *, spacing: float = 8.0, smoothness: float = 2.0, iterations: int = 4,
                        tukey: float = 4.685):
    """A robust, weighted cubic P-spline ``d(s)`` along one line and its standard deviation.

    Parameters
    ----------
    s : array_like, shape (n,)
        Arc length of the points (pixels), increasing.
    d : array_like, shape (n,)
        Measured disparities; NaN where nothing was measured (the curve fills in).
    std : array_like, shape (n,)
        Their standard deviations (relative sizes matter; the common scale is
        estimated from the residuals, never below 1).
    spacing : float
        Knot spacing (pixels).
    smoothness : float
        Weight of the second-difference penalty on the spline coefficients, in
        units of the median data weight per knot interval.
    iterations : int
        Tukey reweighting passes after the first fit.
    tukey : float
        Tukey biweight constant, in robust standard deviations.

    Returns
    -------
    fit : ndarray, shape (n,)
    fit_std : ndarray, shape (n,)
        Standard deviation of ``fit`` (NaN when the line could not be fitted).
    inliers : ndarray of bool, shape (n,)
        Measured points the robust fit kept.
    """
    s = np.asarray(s, dtype=float)
    d = np.asarray(d, dtype=float)
    std = np.asarray(std, dtype=float)
    n = len(s)
    measured = np.isfinite(d) & np.isfinite(std) & (std > 0)
    nan = np.full(n, np.nan)
    if measured.sum() < 4:
        return nan, nan, measured
    basis = _bspline_basis(s, spacing)
    m = basis.shape[1]
    diff = np.diff(np.eye(m), n=2, axis=0)
    penalty = diff.T @ diff
    w0 = np.where(measured, 1.0 / np.where(measured, std, 1.0) ** 2, 0.0)
    per_interval = w0.sum() / max(m - 3, 1)
    lam = smoothness * per_interval
    robust = np.ones(n)
    values = np.where(measured, d, 0.0)
    scale = 1.0
    for it in range(iterations + 1):
        w = w0 * robust
        lhs = basis.T @ (w[:, None] * basis) + lam * penalty + 1e-9 * np.eye(m)
        coef = np.linalg.solve(lhs, basis.T @ (w * values))
        fit = basis @ coef
        z = np.where(measured, (d - fit) / np.where(measured, std, 1.0), 0.0)
        keep = measured & (robust > 0)
        mad = np.median(np.abs(z[keep])) if keep.any() else 0.0
        scale = max(1.0, 1.4826 * mad)
        if it < iterations:
            u = z / (tukey * scale)
            robust = np.where(np.abs(u) < 1, (1 - u ** 2) ** 2, 0.0)
    inliers = measured & (robust > 0)
    if inliers.sum() < 4:
        return nan, nan, inliers
    cov = np.linalg.inv(lhs)  # the last pass's system: its weights are the final robust ones
    fit_var = np.einsum("ij,jk,ik->i", basis, cov, basis) * scale ** 2
    return fit, np.sqrt(np.maximum(fit_var, 0.0)), inliers


def _row_centroid(image, x, rows, half: int = 3) -> np.ndarray:
    """The weighted centre of ``image`` along each row within ``half`` columns of ``x`` (sub-pixel)."""
    image = np.asarray(image, dtype=float)
    cols = np.round(x).astype(int)[:, None] + np.arange(-half, half + 1)[None, :]
    inside = (cols >= 0) & (cols < image.shape[1])
    values = np.where(inside, image[rows[:, None], np.clip(cols, 0, image.shape[1] - 1)], 0.0)
    values = np.maximum(values - values.min(axis=1, keepdims=True), 0.0)
    total = values.sum(axis=1)
    centre = (values * cols).sum(axis=1) / np.maximum(total, 1e-12)
    return np.where(total > 0, centre, x)


def true_runs(keep: np.ndarray, min_length: int):
    """``(start, stop)`` (stop exclusive) of every run of True in ``keep`` at least ``min_length`` long."""
    edges = np.diff(np.concatenate([[0], keep.astype(np.int8), [0]]))
    for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
        if b - a >= min_length:
            yield a, b


def fit_lines(mask_left, left, right, disparity, stereo_angle_deg: float, *, refined=None, positions=None,
              min_points: int = 10, min_branch_length: float = 10.0, max_gap: float = 12.0,
              max_overhang: float = 1.0,
              min_peak: float = 0.5, min_inlier_share: float = 0.5, std_calibration: float = STD_CALIBRATION,
              min_sine: float = MIN_SINE, spacing: float = 8.0, smoothness: float = 2.0, tilts_deg=None,
              disparity_right=None, max_lr_difference: float = 1.5, branches=None, line_search: int = 0,
              line_disparity_right=None, rescue_share: float = 0.3, rescue_sine: float = 0.5,
              max_disparity_std: float | None = None, min_probability: float | None = None, report=None):
    """3D lines with a depth standard deviation per point, one smooth disparity curve per branch.

    Parameters
    ----------
    mask_left : ndarray of bool, shape (rows, cols)
        Left dislocation pixels (their skeleton branches become the lines).
    left, right : ndarray, shape (rows, cols)
        The detector's probabilities of the rectified views (bright ridges on the
        lines): what :func:`image_disparity` correlates, and where the left
        positions are centred when ``positions`` does not give them.
    disparity : ndarray, shape (rows, cols)
        The matcher's disparity (starting point where nothing better is known).
    stereo_angle_deg : float
    refined, positions : ndarray, shape (rows, cols), optional
        Refined disparity and the left column it refers to
        (:func:`~napari_stereo_tem.stereo.matching.refine_disparity` with
        ``return_positions``): the starting point and the left position where known
        (elsewhere the centroid of ``left`` within 3 columns of the skeleton pixel).
    min_points, min_branch_length : int, float
        Shortest piece kept (points) and spur pruning of the skeleton (pixels).
    max_gap : float
        Points farther than this (along the line, pixels) from every reliable
        measurement are not triangulated (the line is split there).
    max_overhang : float
        Beyond the first and the last reliable measurement the curve would be
        extrapolated: only this far (pixels) is kept.
    min_peak : float
        Median correlation peak a branch needs: a line the right view does not show
        (matched on one side only) is dropped.
    min_inlier_share : float
        Share of a branch's points the robust fit must keep.
    std_calibration : float
        Factor on the fitted standard deviations (:data:`STD_CALIBRATION`).
    min_sine, spacing, smoothness : float
        Floor of ``|sin|`` in the weights (:data:`MIN_SINE`); knot spacing and
        smoothness of :func:`fit_disparity_curve`.
    tilts_deg : (float, float), optional
        The views' tilts for the specimen frame (see :func:`~.projection.triangulate_asymmetric`).
    disparity_right : ndarray, shape (rows, cols), optional
        The matcher's disparity seen from the right view (``x_right - x_left`` at each right
        pixel: the matcher run on the mirrored, swapped pair). A left point whose disparity
        ``d`` the right view does not give back at ``x + d`` (within ``max_lr_difference``
        pixels) is not measured: the curve fills it in from its neighbours.
    branches : sequence of ndarray (n, 2), optional
        The left lines to fit, as ordered ``(x, y)`` centrelines, one per
        dislocation: e.g. the instances of
        :func:`~napari_stereo_tem.stereo.instances.line_instances`, so each
        dislocation of a pile-up is matched as a whole, with one disparity curve,
        even where its neighbours touch it. Their sub-pixel columns are used as
        they are (no re-centring on ``left``, which could pull a point towards a
        neighbour). Default: the skeleton branches of ``mask_left``.
    line_search : int
        When > 0, the starting disparities of each line are first replaced by
        :func:`line_disparity_search` with this ``search`` (pixels): the whole line's
        correlation with continuity as the prior, instead of the matcher's per-pixel value.
    line_disparity_right : ndarray, shape (rows, cols), optional
        The right view's own line measurement (:func:`line_disparity_map` on the mirrored,
        swapped pair; NaN off its lines). With ``disparity_right``: on a line the matcher
        confirms from both sides at ``rescue_share`` of its measured points or more, a point
        the matcher's check disputes is kept when this map gives its disparity back (within
        ``max_lr_difference``), the matcher's own left disparity agrees with it as closely,
        and the line is not within ``asin(rescue_sine)`` of the rows (no depth there). Where
        the right view's matcher alone is wrong, a correct stretch is then no longer lost.
    rescue_share, rescue_sine : float
        See ``line_disparity_right``.
    max_disparity_std : float or None
        Points whose fitted disparity's standard deviation (calibrated, pixels) is larger
        are left out (the line is split there), e.g. :data:`MAX_DISPARITY_STD`; ``None``
        (default) keeps all.
    min_probability : float, optional
        A branch whose median ``left`` value (the detector's probability) along its
        centre is lower is not fitted (reason ``"faint"``): on the renderer the networks
        never saw, most such branches are a line's fringe or other false detections
        (``benchmarks/bench_lines3d.py --diagnose``). Default: none dropped.
    report : list, optional
        When given, one dict per branch is appended to it, saying what became of it
        (for diagnosis, e.g. ``benchmarks/bench_lines3d.py --diagnose``): ``x``, ``y``
        (the left positions), ``reason`` (``None`` when fitted, else ``"short"``,
        ``"faint"``, ``"not_in_right"`` or ``"few_inliers"``), ``measured`` (the image gave a
        disparity), ``lr_rejected`` (measured, but the left-right check left it
        out), ``line`` (index of the returned line holding the point, -1 if none),
        ``start`` and ``d`` (the starting and the measured disparity, NaN where none) and
        ``std`` (the fitted disparity's standard deviation, NaN where not fitted).

    Returns
    -------
    lines : list of ndarray, shape (n, 3)
    depth_std : list of ndarray, shape (n,)
        Standard deviation of each point's ``z`` (pixels).
    """
    from ..progress import check_cancelled
    from .projection import triangulate, triangulate_asymmetric
    from .skeleton_graph import skeleton_branches

    disparity = np.asarray(disparity, dtype=float)
    start = disparity if refined is None else np.where(np.isfinite(refined), refined, disparity)
    axis_col = (disparity.shape[1] - 1) / 2.0
    lines, stds = [], []
    given = branches is not None
    if given:
        from ..synth.curves import resample

        rows, cols = disparity.shape
        branches = [resample(np.asarray(b, dtype=float).reshape(-1, 2), 1.0) for b in branches]
        branches = [b[(b[:, 0] >= 0) & (b[:, 0] <= cols - 1) & (b[:, 1] >= 0) & (b[:, 1] <= rows - 1)]
                    for b in branches]
    else:
        branches = skeleton_branches(mask_left, min_branch_length=min_branch_length)
    for branch in branches:
        check_cancelled()  # per line: a cancel does not wait for the whole stage
        entry = {"x": np.asarray(branch[:, 0], dtype=float), "y": np.asarray(branch[:, 1], dtype=float),
                 "reason": None, "measured": np.zeros(len(branch), bool), "lr_rejected": np.zeros(len(branch), bool),
                 "line": np.full(len(branch), -1), "start": np.full(len(branch), np.nan),
                 "d": np.full(len(branch), np.nan), "std": np.full(len(branch), np.nan)}
        if report is not None:
            report.append(entry)
        if len(branch) < min_points:
            entry["reason"] = "short"
            continue
        ij = np.round(branch).astype(int)
        if given:
            x = branch[:, 0].astype(float)
        else:
            x = _row_centroid(left, branch[:, 0].astype(float), ij[:, 1])
            if positions is not None:
                centre = positions[ij[:, 1], ij[:, 0]]
                x = np.where(np.isfinite(centre), centre, x)
        y = branch[:, 1].astype(float)
        entry["x"] = x
        if min_probability and np.median(map_coordinates(left, [y, x], order=1, mode="nearest")) < min_probability:
            entry["reason"] = "faint"
            continue
        d_start = d_first = start[ij[:, 1], ij[:, 0]]
        if line_search:
            d_start = line_disparity_search(left, right, x, y, d_start, search=line_search)
        d_img, sd_img, peak = image_disparity(left, right, x, y, d_start)
        entry.update(measured=np.isfinite(d_img), start=d_first, d=d_img)
        if disparity_right is not None:
            back = map_coordinates(disparity_right, [y, np.nan_to_num(x + d_img, nan=-1.0)], order=1, mode="nearest")
            agree = np.abs(back - d_img) <= max_lr_difference
            if line_disparity_right is not None and agree.sum() >= rescue_share * np.isfinite(d_img).sum():
                # a line the matcher confirms from both sides on a good share of it: a disputed point is kept
                # when the right view's line, measured the same way, gives its disparity back, and the
                # matcher's own left disparity agrees (not on stretches along the rows: no depth there)
                back_lines = _back_disparity(line_disparity_right, x + d_img, y)
                agree |= ((np.abs(back_lines - d_img) <= max_lr_difference)
                          & (np.abs(d_first - d_img) <= max_lr_difference)
                          & (line_angle_sine(branch) >= rescue_sine))
            d_img = np.where(agree, d_img, np.nan)
            entry["lr_rejected"] = entry["measured"] & ~np.isfinite(d_img)
        if not np.isfinite(peak).any() or np.nanmedian(peak) < min_peak:
            entry["reason"] = "not_in_right"
            continue
        sine = np.maximum(line_angle_sine(branch), min_sine)
        sd = sd_img / sine
        s = arc_length(branch)
        fit, fit_sd, inliers = fit_disparity_curve(s, d_img, sd, spacing=spacing, smoothness=smoothness)
        fit_sd = fit_sd * std_calibration
        if inliers.sum() < max(min_points, min_inlier_share * len(branch)):
            entry["reason"] = "few_inliers"
            continue
        kept = s[inliers]  # distance along the line to the nearest kept measurement (s increases)
        j = np.clip(np.searchsorted(kept, s), 1, len(kept) - 1)
        near = np.minimum(np.abs(s - kept[j - 1]), np.abs(s - kept[j]))
        near = np.where((s < kept[0] - max_overhang) | (s > kept[-1] + max_overhang), np.inf, near)
        entry["std"] = fit_sd
        usable = (near <= max_gap) & np.isfinite(fit) & np.isfinite(fit_sd)
        if max_disparity_std is not None:
            usable &= fit_sd <= max_disparity_std
        for a, b in true_runs(usable, min_points):
            if tilts_deg is None:
                pts, z_sd = triangulate(x[a:b], y[a:b], x[a:b] + fit[a:b], stereo_angle_deg, axis_col=axis_col,
                                        disparity_std=fit_sd[a:b])
            else:
                pts, z_sd = triangulate_asymmetric(x[a:b], y[a:b], x[a:b] + fit[a:b], *tilts_deg,
                                                   axis_col=axis_col, disparity_std=fit_sd[a:b])
            entry["line"][a:b] = len(lines)
            lines.append(pts)
            stds.append(np.asarray(z_sd, dtype=float))
    return lines, stds


def line_planes(lines, *, min_extent: float = 2.0) -> list[dict | None]:
    """The plane each 3D line lies in (its glide plane, if it glides), by least squares.

    Returns, per line, ``{"normal": [nx, ny, nz], "rms": r, "point": [x, y, z]}``
    (unit normal with ``nz >= 0``; ``rms`` the points' distance to the plane) or
    ``None`` when the line is too straight to define a plane (its second extent,
    across the line, is under ``min_extent`` pixels).
    """
    out = []
    for line in lines:
        pts = np.asarray(line, dtype=float)
        if len(pts) < 3:
            out.append(None)
            continue
        centre = pts.mean(axis=0)
        _, sv, vt = np.linalg.svd(pts - centre, full_matrices=False)
        extent = sv / np.sqrt(len(pts))
        if extent[1] < min_extent / 2:
            out.append(None)
            continue
        normal = vt[2] if vt[2][2] >= 0 else -vt[2]
        out.append({"normal": normal.tolist(), "rms": float(extent[2]), "point": centre.tolist()})
    return out
