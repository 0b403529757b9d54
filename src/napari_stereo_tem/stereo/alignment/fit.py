"""Robust fit of the tilt geometry ``Delta_q = d_q u - t`` to correspondences (DESIGN 3.3).

Every correct correspondence's displacement ``Delta_q = right_q - left_q`` lies
on one straight line of direction ``u = (cos theta, sin theta)`` in displacement
space; its offset across ``u`` is the part of ``-t`` across ``u``. The line is
found by MSAC over pairs of correspondences with no limit on ``theta``, then
refined by total least squares with Tukey's biweight. ``theta`` is reported in
``(-90, 90]`` degrees: the axis is a line, and which way along it the depth grows
is the instrument's convention (``swap`` exchanges the views).

The fit says when it cannot be trusted: too few inliers, correspondences
concentrated in a small part of the field, too little depth (disparity) spread to
fix the direction, or a second direction that explains the data almost as well.
The standard error of the angle is the largest of four: the analytic one, a
bootstrap over the correspondences, a jackknife that leaves out one region of
the field at a time (errors alike within a region), and the bias that a smooth
error field could cause when the disparities themselves change smoothly over the
field (one inclined surface: dislocation images whose only texture is the foil's).
Up to 0.25 px of row error at a disparity of 32 px the angle is accepted, up to
1 px with a loud warning, beyond that refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...progress import check_cancelled

__all__ = ["EpipolarFit", "fit_epipolar", "normalise_theta", "axis_std_limits"]


def normalise_theta(theta_deg: float) -> float:
    """The same axis direction with the angle in ``(-90, 90]`` degrees."""
    theta = (float(theta_deg) + 90.0) % 180.0 - 90.0
    return 90.0 if theta == -90.0 else theta


def _unit(theta_deg: float) -> tuple[np.ndarray, np.ndarray]:
    th = np.deg2rad(theta_deg)
    u = np.array([np.cos(th), np.sin(th)])
    return u, np.array([-u[1], u[0]])


@dataclass
class EpipolarFit:
    """The fitted (or given) geometry and how much it can be trusted.

    Attributes
    ----------
    theta_deg : float
        Direction of the displacement line, ``(-90, 90]`` degrees from ``+x`` towards ``+y``.
    theta_std_deg : float
        Its standard error (NaN when given).
    t_perp : float
        Component of ``t`` across ``u``: ``t . (-sin theta, cos theta)``.
    inliers : ndarray of bool, shape (n,)
    residual_px : float
        Median ``|residual|`` of the inliers across ``u`` (the vertical disparity left after rectification).
    disparity_span_px : float
        5-95 percentile range of the inliers' displacement along ``u`` (their depth spread).
    coverage : float
        Area of the convex hull of the inliers (left view) over the usable area, 0-1.
    ambiguity : float
        Inliers of the best rival geometry (one whose inliers are mostly other
        correspondences) over the best's (0-1; 1 = undecided).
    theta_given, shift_given : bool
    problems : list of str
        Reasons to refuse the result (empty when it can be trusted).
    warnings : list of str
        Reasons for doubt that do not refuse it.
    """

    theta_deg: float
    theta_std_deg: float
    t_perp: float
    inliers: np.ndarray
    residual_px: float = float("nan")
    disparity_span_px: float = float("nan")
    coverage: float = float("nan")
    ambiguity: float = float("nan")
    theta_given: bool = False
    shift_given: bool = False
    problems: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    @property
    def n_inliers(self) -> int:
        return int(np.sum(self.inliers))


def _robust_line(points: np.ndarray, *, through_origin: bool = False, n_iter: int = 10, sigma=None):
    """Line through 2D points by total least squares re-weighted with Tukey's biweight: (point, direction).

    ``sigma`` (per point) is the expected scatter of each point across the line
    (e.g. per correspondence source); points are weighted by ``1 / sigma^2``.
    """
    prior = np.ones(len(points)) if sigma is None else 1.0 / np.maximum(np.asarray(sigma, float), 1e-3) ** 2
    scale_i = np.ones(len(points)) if sigma is None else np.asarray(sigma, float)
    weights = prior.copy()
    mean = np.zeros(2)
    direction = np.array([1.0, 0.0])
    for it in range(n_iter + 1):
        if weights.sum() <= 0 or np.count_nonzero(weights) < 2:
            break
        mean = np.zeros(2) if through_origin else (weights[:, None] * points).sum(axis=0) / weights.sum()
        centred = (points - mean) * np.sqrt(weights)[:, None]
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        direction = vt[0]
        if it == n_iter:
            break
        resid = ((points - mean) @ np.array([-direction[1], direction[0]])) / scale_i
        scale = max(1.4826 * np.median(np.abs(resid - np.median(resid))), 0.02 / float(np.median(scale_i)))
        r = resid / (4.685 * scale)
        weights = prior * np.where(np.abs(r) < 1, (1 - r ** 2) ** 2, 0.0)
    return mean, direction


def _group_sigma(resid: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Robust scatter of the residuals of each group, per point."""
    sigma = np.empty(len(resid))
    for g in np.unique(groups):
        sel = groups == g
        sigma[sel] = max(1.4826 * float(np.median(np.abs(resid[sel] - np.median(resid[sel])))), 0.02) \
            if sel.sum() >= 5 else max(1.4826 * float(np.median(np.abs(resid - np.median(resid)))), 0.02)
    return sigma


def _point_sigma(resid: np.ndarray, groups: np.ndarray, point_sigma) -> np.ndarray:
    """Expected scatter of each point across the line.

    Without ``point_sigma`` the robust scatter of each source; with it, the given
    per-point standard errors scaled by one robust factor (their normalised
    residuals' MAD), so that their ratios weight the points and the factor keeps
    the standard error of the fit honest.
    """
    by_group = _group_sigma(resid, groups)
    if point_sigma is None:
        return by_group
    ps = np.asarray(point_sigma, float)
    known = np.isfinite(ps) & (ps > 0)
    if known.sum() < 5:
        return by_group
    z = resid[known] / ps[known]
    scale = 1.4826 * float(np.median(np.abs(z - np.median(z))))
    out = by_group.copy()  # points without an error of their own keep their source's scatter
    out[known] = np.maximum(ps[known] * max(scale, 0.5), 0.01)
    return out


def _combine_sources(points, sigma, groups, theta_deg: float, *, through_origin: bool, min_points: int = 15):
    """The direction from each source on its own, combined with a random-effects weighting.

    Sources can be precise but biased (patches that straddle features at several
    depths, keypoints on moving contrast); when their directions disagree by more
    than their own errors allow, the spread between them (``tau``) is added to each
    source's error (DerSimonian-Laird), so no biased source dominates and the
    reported error includes the disagreement. Returns ``(theta, std)`` in degrees,
    or ``None`` with fewer than two usable sources.
    """
    thetas, variances = [], []
    for g in np.unique(groups):
        sel = groups == g
        if sel.sum() < min_points:
            continue
        _, d = _robust_line(points[sel], through_origin=through_origin, n_iter=3, sigma=sigma[sel])
        angle = theta_deg + ((np.degrees(np.arctan2(d[1], d[0])) - theta_deg + 90.0) % 180.0 - 90.0)
        u = np.array([np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))])
        w = 1.0 / sigma[sel] ** 2
        along = points[sel] @ u
        centre = 0.0 if through_origin else float((w * along).sum() / w.sum())
        leverage = float((w * (along - centre) ** 2).sum())
        if leverage <= 0:
            continue
        thetas.append(angle)
        variances.append(float(np.degrees(1.0 / np.sqrt(leverage))) ** 2)
    if len(thetas) < 2:
        return None
    thetas, variances = np.asarray(thetas), np.asarray(variances)
    w = 1.0 / variances
    mean = float((w * thetas).sum() / w.sum())
    q = float((w * (thetas - mean) ** 2).sum())
    tau2 = max(0.0, (q - (len(thetas) - 1)) / max(w.sum() - (w ** 2).sum() / w.sum(), 1e-12))
    w_star = 1.0 / (variances + tau2)
    return normalise_theta(float((w_star * thetas).sum() / w_star.sum())), float(1.0 / np.sqrt(w_star.sum()))


def _bootstrap_theta_std(points: np.ndarray, sigma: np.ndarray, through_origin: bool, rng, n: int = 40) -> float:
    """Standard deviation (degrees, about the axis' 180-degree period) of the direction over bootstrap resamples."""
    angles = []
    for _ in range(n):
        check_cancelled()
        pick = rng.integers(0, len(points), len(points))
        _, d = _robust_line(points[pick], through_origin=through_origin, n_iter=3, sigma=sigma[pick])
        angles.append(np.degrees(np.arctan2(d[1], d[0])))
    angles = np.asarray(angles)
    ref = angles[0]
    wrapped = (angles - ref + 90.0) % 180.0 - 90.0
    return float(np.std(wrapped))


def _block_jackknife_theta_std(points: np.ndarray, sigma: np.ndarray, positions: np.ndarray, through_origin: bool,
                               *, blocks: int = 3, min_points: int = 5) -> float:
    """Standard deviation (degrees) of the direction over leave-one-region-out fits.

    The field is cut into ``blocks x blocks`` regions by the quantiles of the
    points' positions; the direction is fitted once without each region.
    Unlike resampling single points, this sees errors that are alike within a
    region and differ between regions (contrast that moves with a bend contour,
    a region whose depths are all alike): the angle then changes with the region
    left out.
    """
    if len(points) < 4 * min_points:
        return 0.0
    edges_x = np.quantile(positions[:, 0], np.linspace(0, 1, blocks + 1)[1:-1])
    edges_y = np.quantile(positions[:, 1], np.linspace(0, 1, blocks + 1)[1:-1])
    block = np.searchsorted(edges_x, positions[:, 0]) * blocks + np.searchsorted(edges_y, positions[:, 1])
    angles = []
    for b in np.unique(block):
        out = block == b
        if out.sum() < min_points or (~out).sum() < 2 * min_points:
            continue
        _, d = _robust_line(points[~out], through_origin=through_origin, n_iter=3, sigma=sigma[~out])
        angles.append(np.degrees(np.arctan2(d[1], d[0])))
    if len(angles) < 3:
        return 0.0
    angles = np.asarray(angles)
    wrapped = (angles - angles[0] + 90.0) % 180.0 - 90.0
    k = len(wrapped)
    return float(np.sqrt((k - 1) / k * np.sum((wrapped - wrapped.mean()) ** 2)))


def _surface_theta_std(along: np.ndarray, across: np.ndarray, positions: np.ndarray, weights: np.ndarray, *,
                       blocks: int = 4) -> float:
    """Error of the angle (degrees) that a smooth error field across the epipolar direction can cause.

    When the disparities change smoothly over the field (one inclined surface),
    an error across the epipolar direction that also changes smoothly over the
    field (contrast moving with a bend contour, a small rotation or magnification
    change between the exposures) is indistinguishable from a turn of the axis.
    Its part that is affine in the position cannot be seen in the residuals; its
    size is taken to be that of the part that can (the spread of the residuals'
    means over ``blocks x blocks`` regions, less their noise), and the bias it
    would cause is ``size * sd(affine part of the disparities) / var(disparities)``.
    """
    n = len(along)
    if n < 4 * blocks * blocks:
        return 0.0
    w = weights / weights.sum()
    design = np.column_stack([np.ones(n), positions - positions.mean(axis=0)])
    sw = np.sqrt(w)[:, None]
    coef, *_ = np.linalg.lstsq(design * sw, along * sw[:, 0], rcond=None)
    fitted = design @ coef
    mean_along = float((w * along).sum())
    var_along = float((w * (along - mean_along) ** 2).sum())
    sd_affine = float(np.sqrt((w * (fitted - mean_along) ** 2).sum()))
    if var_along <= 0:
        return float("inf")
    resid = across - float((w * across).sum())
    noise = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
    edges_x = np.quantile(positions[:, 0], np.linspace(0, 1, blocks + 1)[1:-1])
    edges_y = np.quantile(positions[:, 1], np.linspace(0, 1, blocks + 1)[1:-1])
    block = np.searchsorted(edges_x, positions[:, 0]) * blocks + np.searchsorted(edges_y, positions[:, 1])
    total, count = 0.0, 0
    for b in np.unique(block):
        sel = block == b
        k = int(sel.sum())
        if k < 4:
            continue
        total += k * (float(np.mean(resid[sel])) ** 2 - noise ** 2 / k)
        count += k
    size = float(np.sqrt(max(total / max(count, 1), 0.0)))
    return float(np.degrees(size * sd_affine / var_along))


def _best_line(disp: np.ndarray, threshold: float, rng: np.random.Generator, n_iter: int, anchor=None) -> np.ndarray:
    """Inlier mask of the MSAC line hypothesis with the lowest truncated cost.

    Without ``anchor`` a hypothesis is the line through two displacements; with
    ``anchor`` (a point the line must pass through, e.g. ``-t`` when the shift is
    known) it is the line through the anchor and one displacement.
    """
    n = len(disp)
    if n < 2:
        return np.zeros(n, dtype=bool)
    if anchor is None:
        i, j = rng.integers(0, n, n_iter), rng.integers(0, n, n_iter)
        base = disp[i]
        vec = disp[j] - base
    else:
        base = np.broadcast_to(np.asarray(anchor, float), (n_iter, 2))
        vec = disp[rng.integers(0, n, n_iter)] - base
    length = np.hypot(vec[:, 0], vec[:, 1])
    ok = length > 3.0 * threshold  # two nearly equal displacements give no direction
    base, vec, length = base[ok], vec[ok], length[ok]
    if len(vec) == 0:  # all displacements alike (no depth): those near their median, the direction undetermined
        centre = np.median(disp, axis=0)
        return np.hypot(*(disp - centre).T) < threshold
    normals = np.column_stack([-vec[:, 1], vec[:, 0]]) / length[:, None]
    costs = np.empty(len(vec))
    for s in range(0, len(vec), 256):
        check_cancelled()
        dist = np.abs((disp[None, :, 0] - base[s:s + 256, None, 0]) * normals[s:s + 256, None, 0]
                      + (disp[None, :, 1] - base[s:s + 256, None, 1]) * normals[s:s + 256, None, 1])
        costs[s:s + 256] = np.minimum(dist, threshold).sum(axis=1)
    k = int(np.argmin(costs))
    return np.abs((disp - base[k]) @ normals[k]) < threshold


def _msac(disp: np.ndarray, threshold: float, rng: np.random.Generator, n_iter: int, anchor=None):
    """Best line hypothesis: (inlier mask, inliers of the best rival line among the remaining correspondences)."""
    best = _best_line(disp, threshold, rng, n_iter, anchor=anchor)
    rest = ~best
    rival = float(_best_line(disp[rest], threshold, rng, n_iter // 2, anchor=anchor).sum()) if rest.sum() >= 2 else 0.0
    return best, rival


def _densest_offset(across: np.ndarray, threshold: float) -> np.ndarray:
    """Inliers of a known direction: the densest window of width ``2 threshold`` of the offsets across it."""
    ordered = np.sort(across)
    counts = np.searchsorted(ordered, ordered + threshold) - np.searchsorted(ordered, ordered - threshold)
    centre = ordered[int(np.argmax(counts))]
    for _ in range(3):
        inliers = np.abs(across - centre) < threshold
        centre = np.median(across[inliers])
    return np.abs(across - centre) < threshold


def _coverage(points: np.ndarray, usable_area: float) -> float:
    from scipy.spatial import ConvexHull, QhullError

    if len(points) < 3 or usable_area <= 0:
        return 0.0
    try:
        return float(min(ConvexHull(points).volume / usable_area, 1.0))
    except QhullError:  # collinear
        return 0.0


def axis_std_limits(span_px: float, *, max_theta_std_deg: float | None = None, max_row_error_px: float = 1.0,
                    warn_row_error_px: float = 0.25, disparity_reach_px: float = 32.0, min_reach_px: float = 12.0,
                    noise_px: float | None = None) -> tuple[float, float, float]:
    """``(reach, refuse_above, warn_loudly_above)``: how far rows are judged (px) and the two limits (degrees)
    on the standard error of the axis angle (see :func:`fit_epipolar`'s parameters of the same names).

    Rows are judged at a disparity of ``disparity_reach_px`` (or half the matched disparities' span, if
    larger). When the span is known well, at least ten times the correspondences' scatter across the
    axis (``noise_px``), they are judged at the span itself instead, twice as far from the depth origin
    (their median) as the disparities reach, and at least ``min_reach_px``: a shallow specimen's rows
    stay aligned under an axis error that a deep one's would not. Below that ratio the linear error of
    the angle is no longer trusted (a span of one noise width gave an axis 93 degrees off, claimed +- 3.7).
    """
    known = noise_px is not None and np.isfinite(noise_px) and span_px >= 10.0 * noise_px
    far = max(float(disparity_reach_px), span_px / 2.0)
    reach = max(float(min_reach_px), min(float(span_px), far)) if known else far
    limit = float(np.degrees(np.arctan(max_row_error_px / reach))) if max_theta_std_deg is None \
        else float(max_theta_std_deg)
    return reach, limit, float(np.degrees(np.arctan(warn_row_error_px / reach)))


def fit_epipolar(left_pts, right_pts, *, theta_deg: float | None = None, shift=None, threshold_px: float = 1.0,
                 robust: bool = True, usable_area: float | None = None, min_inliers: int = 20,
                 max_theta_std_deg: float | None = None, max_row_error_px: float = 1.0,
                 warn_row_error_px: float = 0.25, disparity_reach_px: float = 32.0, warn_theta_std_deg: float = 0.05,
                 min_coverage: float = 0.04,
                 warn_coverage: float = 0.15, max_ambiguity: float = 0.6, n_iter: int = 3000, groups=None,
                 point_sigma=None, seed: int = 0) -> EpipolarFit:
    """Fit ``right - left = d u - t`` to correspondences; say when the fit cannot be trusted.

    Parameters
    ----------
    left_pts, right_pts : array_like, shape (n, 2)
        Corresponding ``(x, y)`` points of the two views.
    theta_deg : float, optional
        Known tilt-axis angle (the fit then finds only the shift across it).
    shift : (float, float), optional
        Known ``t = (t_x, t_y)`` (the fit then finds only the direction through ``-t``).
    threshold_px : float
        Largest distance of an inlier's displacement from the model line.
    robust : bool
        False: every correspondence is an inlier (points clicked by the user).
    usable_area : float, optional
        Unmasked area (px^2) for the coverage figure; default the points' bounding box.
    min_inliers : int
        Fewest inliers accepted.
    max_theta_std_deg : float, optional
        Refuse when the standard error of the fitted angle exceeds this (too little
        depth spread to fix the direction). Default: the angle whose error would
        move rows by ``max_row_error_px`` at a disparity of ``disparity_reach_px``
        (or half the matched disparity span, if larger): what matters downstream is
        that the matcher, searching that far, finds partners on the same row or
        nearly (lines are a few pixels wide).
    max_row_error_px, disparity_reach_px : float
        See ``max_theta_std_deg`` (defaults: 1 px at 32 px, i.e. 1.8 degrees).
    warn_row_error_px : float
        A loud warning (the angle is poorly determined) when the standard error
        would move rows by more than this at the same reach (default 0.25 px, 0.45 degrees).
    warn_theta_std_deg : float
        Warn when the standard error of the fitted angle exceeds this.
    min_coverage, warn_coverage : float
        Refuse / warn when the inliers' convex hull covers less of the usable area.
    max_ambiguity : float
        Refuse when a rival geometry fitted to the remaining correspondences has this share of the best
        one's inliers (warn from half of it).
    n_iter : int
        MSAC hypotheses.
    groups : array_like of int, shape (n,), optional
        Source of each correspondence; each source gets its own scatter
        (weights ``1 / sigma^2``), so precise dense matches count more than keypoints.
    point_sigma : array_like, shape (n,), optional
        Standard error of each correspondence's displacement (px, e.g. from
        :func:`~.refine.refine_correspondences`); weights the points instead of
        the per-source scatter (one robust factor scales them).
    seed : int

    Returns
    -------
    EpipolarFit
    """
    pl = np.asarray(left_pts, dtype=float).reshape(-1, 2)
    pr = np.asarray(right_pts, dtype=float).reshape(-1, 2)
    disp = pr - pl
    n = len(disp)
    groups = np.zeros(n, dtype=int) if groups is None else np.asarray(groups).reshape(n)
    psig = None if point_sigma is None else np.asarray(point_sigma, float).reshape(n)
    rng = np.random.default_rng(seed)
    problems, warnings = [], []
    t_known = None if shift is None else np.asarray(shift, dtype=float).reshape(2)
    ambiguity = float("nan")
    theta_std = float("nan")
    one_surface = False
    if n < 2:
        fit = EpipolarFit(float(theta_deg or 0.0), float("nan"), 0.0, np.zeros(n, bool),
                          theta_given=theta_deg is not None, shift_given=shift is not None)
        fit.problems.append(f"only {n} correspondence(s) between the views")
        return fit
    if theta_deg is not None:
        theta = normalise_theta(theta_deg)
        u, nrm = _unit(theta)
        if t_known is not None:
            inliers = np.abs((disp + t_known) @ nrm) < threshold_px if robust else np.ones(n, bool)
        else:
            inliers = _densest_offset(disp @ nrm, threshold_px) if robust else np.ones(n, bool)
    else:
        anchor = None if t_known is None else -t_known
        if robust:
            inliers, rival = _msac(disp, threshold_px, rng, n_iter, anchor=anchor)
        else:
            inliers, rival = np.ones(n, bool), 0.0
        theta, sigma_pts = 0.0, None
        for _ in range(4):
            if inliers.sum() < 2:
                break
            pts = disp[inliers] if anchor is None else disp[inliers] - anchor
            mean, direction = _robust_line(pts, through_origin=anchor is not None, n_iter=10 if robust else 0,
                                           sigma=sigma_pts)
            theta = normalise_theta(np.degrees(np.arctan2(direction[1], direction[0])))
            u, nrm = _unit(theta)
            origin = mean if anchor is None else mean + anchor
            if not robust:
                break
            resid_all = (disp - origin) @ nrm
            inliers = np.abs(resid_all) < threshold_px
            sigma_pts = _point_sigma(resid_all[inliers], groups[inliers], None if psig is None else psig[inliers])
        u, nrm = _unit(theta)
        if theta_deg is None and inliers.sum() >= (5 if robust else 3):
            pts = disp[inliers] if anchor is None else disp[inliers] - anchor
            origin = np.zeros(2) if anchor is None else anchor
            across_in = (disp[inliers] - origin) @ nrm
            if robust:
                sig = _point_sigma(across_in - np.median(across_in), groups[inliers],
                                   None if psig is None else psig[inliers])
            else:  # a few clicked points: their RMS scatter, and no better than a tenth of a pixel
                dof = max(len(across_in) - (1 if anchor is not None else 2), 1)
                rms = float(np.sqrt(np.sum((across_in - across_in.mean()) ** 2) / dof))
                sig = np.full(len(across_in), max(rms, 0.1))
            w = 1.0 / sig ** 2
            along_w = pts @ u
            centre = 0.0 if anchor is not None else float((w * along_w).sum() / w.sum())
            leverage = float((w * (along_w - centre) ** 2).sum())
            analytic = float(np.degrees(1.0 / np.sqrt(leverage))) if leverage > 0 else float("inf")
            boot = _bootstrap_theta_std(pts, sig, anchor is not None, rng) if robust else 0.0
            regions = _block_jackknife_theta_std(pts, sig, pl[inliers], anchor is not None) if robust else 0.0
            surface = _surface_theta_std(along_w, across_in, pl[inliers], w) if robust else 0.0
            theta_std = max(analytic, boot, regions, surface)
            one_surface = surface > max(analytic, boot, regions)
            if robust:
                combined = _combine_sources(pts, sig, groups[inliers], theta, through_origin=anchor is not None)
                if combined is not None:
                    theta, theta_std = combined[0], max(theta_std, combined[1])
                    u, nrm = _unit(theta)
        if robust and inliers.sum() >= 2:
            ambiguity = float(rival / inliers.sum())
    inl = disp[inliers]
    if len(inl) == 0:
        fit = EpipolarFit(theta, float("nan"), 0.0, inliers, theta_given=theta_deg is not None,
                          shift_given=shift is not None)
        fit.problems.append("no correspondence fits one tilt geometry")
        return fit
    across = inl @ nrm
    along = inl @ u
    t_perp = float(np.dot(t_known, nrm)) if t_known is not None else -float(np.median(across))
    resid = across + t_perp
    if theta_deg is None and not np.isfinite(theta_std):
        theta_std = float("inf")
    span = float(np.subtract(*np.percentile(along, [95, 5]))) if len(along) else 0.0
    area = usable_area if usable_area else float(np.prod(np.ptp(np.vstack([pl, pr]), axis=0)) or 1.0)
    coverage = _coverage(pl[inliers], area)
    n_in = int(inliers.sum())
    if n_in < min_inliers:
        problems.append(f"only {n_in} of {n} correspondences fit one tilt geometry (at least {min_inliers} needed)")
    noise = 1.4826 * float(np.median(np.abs(resid - np.median(resid)))) if len(resid) else float("nan")
    reach, limit, loud = axis_std_limits(span, max_theta_std_deg=max_theta_std_deg, max_row_error_px=max_row_error_px,
                                         warn_row_error_px=warn_row_error_px, disparity_reach_px=disparity_reach_px,
                                         noise_px=noise)
    if theta_deg is None and (not np.isfinite(theta_std) or theta_std > limit):
        problems.append(f"the tilt-axis angle is not determined ({theta:.2f} +- {theta_std:.2f} degrees; rows would "
                        f"be off by {reach * np.tan(np.deg2rad(min(theta_std, 89.0))):.2f} px at a disparity of "
                        f"{reach:.0f} px): too few consistent points, or too little depth among them ({n_in} "
                        f"points, disparities {span:.1f} px apart)"
                        + ("; their disparities change smoothly over the field, as on one inclined surface, "
                           "so an error that changes smoothly across the field cannot be told from a turn of the axis"
                           if one_surface else ""))
    elif theta_deg is None and theta_std > loud:
        warnings.append(f"the tilt-axis angle is POORLY DETERMINED ({theta:.2f} +- {theta_std:.2f} degrees; rows may "
                        f"be off by {reach * np.tan(np.deg2rad(theta_std)):.2f} px at a disparity of {reach:.0f} px): "
                        f"the matched points span little depth (disparities {span:.1f} px apart); give the tilt axis "
                        "if the microscope's calibration knows it")
    elif theta_deg is None and theta_std > warn_theta_std_deg:
        warnings.append(f"the tilt-axis angle is uncertain ({theta:.2f} +- {theta_std:.2f} degrees): the matched "
                        f"points span little depth (disparities {span:.1f} px apart)")
    if robust and coverage < min_coverage:
        problems.append(f"the correspondences cover only {100 * coverage:.1f} % of the field (a small part of the "
                        "image, e.g. an overlay or one feature)")
    elif robust and coverage < warn_coverage:
        warnings.append(f"the correspondences cover only {100 * coverage:.0f} % of the field")
    if np.isfinite(ambiguity) and max_ambiguity / 2 <= ambiguity < max_ambiguity:
        warnings.append(f"a second geometry fits {100 * ambiguity:.0f} % as many correspondences as the best "
                        "(moving contrast such as bend contours, or two regions that moved differently)")
    if np.isfinite(ambiguity) and ambiguity >= max_ambiguity:
        problems.append(f"the correspondences disagree: another geometry, with mostly other correspondences, "
                        f"fits {100 * ambiguity:.0f} % as many of them as the best ({theta:.1f} degrees)")
    if not robust and n_in >= 3 and np.median(np.abs(resid)) > 2.0:
        warnings.append(f"the given points disagree by {np.median(np.abs(resid)):.1f} px across the epipolar "
                        "direction; check the clicked pairs")
    return EpipolarFit(theta, theta_std, t_perp, inliers, residual_px=float(np.median(np.abs(resid))),
                       disparity_span_px=span, coverage=coverage, ambiguity=ambiguity,
                       theta_given=theta_deg is not None, shift_given=shift is not None,
                       problems=problems, warnings=warnings)
