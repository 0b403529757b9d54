"""One smooth curve per line: disparity measured in the images, a robust spline along the line, its uncertainty.

The matcher gives every left dislocation pixel a disparity, refinement snaps it
to the right view's line (DESIGN 3.5). Both are whole-pixel-ish and every point
counts the same, although a pair carries no depth information where a line runs
along the rows (the epipolar direction). Here, per skeleton branch of the left
view:

1. :func:`image_disparity` (in :mod:`.line_disparity`, re-exported here) measures
   the disparity from the images themselves: a short patch across the line in the
   left view is correlated with the right view along the row around the current
   estimate; the sub-pixel peak of the normalised cross-correlation gives the
   disparity, its sharpness a standard deviation;
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

from .line_disparity import _back_disparity, image_disparity, line_disparity_map, line_disparity_search

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
              max_overhang: float = 1.0, max_corner_deg: float = 0.0,
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
    max_corner_deg : float
        Skeleton branches are cut where their direction turns by more than this over
        5 px (:func:`~napari_stereo_tem.stereo.skeleton_graph.split_at_corners`; 0, the
        default: not cut). 45 degrees helped on validation pairs
        (``benchmarks/bench_lines3d.py --split val``: precision +0.005-0.010, depth RMSE at
        8 degrees 2.20 -> 2.05 px) but not on the held-out ones (at 12 degrees depth RMSE
        2.77 -> 3.08 px, and 1.17 -> 1.85 px on the foreign rendering): a cut piece loses
        the depth its line's well-measured part would give it.
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
    from .skeleton_graph import skeleton_branches, split_at_corners

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
        if max_corner_deg:
            # a corner is most often the path running from one line onto another: each fitted on its own
            branches = [np.round(piece).astype(int) for b in branches
                        for piece in split_at_corners(b.astype(float), max_turn_deg=max_corner_deg)]
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
