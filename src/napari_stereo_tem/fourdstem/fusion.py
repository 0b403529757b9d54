"""Fusion of N detected views into 3D lines: the ``match`` and ``fuse`` stages of :mod:`.multiview`.

3. ``match``: the **reference view** (the one with the most line length, unless
   given) gives the lines: the skeleton branches of its dislocation mask, cut at
   sharp corners and without their ends at junctions (where two lines at two depths
   share the patch). For every useful pair that holds the reference, both views are
   rotated so that the pair's disparities run along ``+x``; the learned matcher and
   the snap refinement give a starting disparity, and the correlation of short
   patches along the row (:func:`~napari_stereo_tem.stereo.line_fit.image_disparity`,
   on the normalised views: their intensity follows a line's sub-pixel position, the
   detector's probabilities hardly do) measures it per line point with a standard
   deviation, twice (the second view moved by half a pixel, against the pull of the
   peak towards whole pixels). Patches that reach the scan's edge are not used. A
   first fused depth then places every point in every other view, and the remaining
   useful pairs measure it there;
4. ``fuse``: per point, the depth by weighted least squares over all pairs
   (:func:`~.views_geometry.fuse_depths`, outlier pairs rejected; a fifth of the pairs
   must agree, :func:`confirming_pairs`), where a pair's weight falls with ``sin**2``
   of the line's angle to its epipolar direction (a segment along one pair's direction
   is measured by the others); along each line a robust smooth curve
   (:func:`~napari_stereo_tem.stereo.line_fit.fit_disparity_curve`) gives the depth and
   its standard deviation. The lines are then checked against the reconstructions from
   the other views as references (:func:`iter_fuse_views`, ``cross_check``).

Frame of the points: as in :mod:`.multiview`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..checks import InputError
from ..progress import Progress, ProgressGenerator, check_cancelled
from .views_geometry import fuse_depths, rotate_points, view_pairs

__all__ = ["DetectedViews", "iter_fuse_views", "confirming_pairs", "STD_CALIBRATION", "MAX_CORNER_DEG",
           "CROSS_CHECK_PX", "PATCH_HALF_WIDTH", "MEASURE_ON"]

#: Factor on the depth standard deviations of the robust curve along each line: its residual
#: scale is never taken below 1 (:func:`~napari_stereo_tem.stereo.line_fit.fit_disparity_curve`),
#: several times too large for the fused measurements. Set on validation seeds
#: (``python benchmarks/bench_multiview.py --datasets 4 --first-seed 5000100``: the 68th percentile
#: of ``|dz| / depth_std`` was 0.205 with a factor 1.5) so that about 68 % of depth errors lie
#: within one reported standard deviation.
STD_CALIBRATION = 0.3
#: A reference view's skeleton path is cut where it turns by more than this over 5 px (degrees).
MAX_CORNER_DEG = 45.0
#: A stretch of the reference's lines is kept where another view's reconstruction is this close (3D, px).
CROSS_CHECK_PX = 2.0
#: Half the length (px, along a pair's epipolar direction) of the correlation patch and its search:
#: points nearer the scan's edge than this are not measured by that pair.
PATCH_HALF_WIDTH = 11

#: What the correlation along each pair's rows compares: the normalised views (``"images"``,
#: linear in the lines' sub-pixel positions) or the detector's probabilities.
MEASURE_ON = ("images", "probability")


@dataclass
class DetectedViews:
    """The N virtual images and what the detector found in each: ``(n_views, rows, cols)`` arrays."""

    images: np.ndarray
    normalised: np.ndarray
    probability: np.ndarray
    labels: np.ndarray
    settings: dict = field(default_factory=dict)


def _normal_centres(prob: np.ndarray, branch: np.ndarray, half: int = 3) -> np.ndarray:
    """Sub-pixel places of the skeleton points: probability-weighted centre across the line."""
    from scipy.ndimage import map_coordinates

    n = len(branch)
    idx = np.arange(n)
    t = branch[np.clip(idx + 2, 0, n - 1)] - branch[np.clip(idx - 2, 0, n - 1)]
    t = t / np.maximum(np.hypot(t[:, 0], t[:, 1]), 1e-9)[:, None]
    normal = np.column_stack([-t[:, 1], t[:, 0]])
    steps = np.arange(-half, half + 1, dtype=float)
    pts = branch[:, None, :] + steps[None, :, None] * normal[:, None, :]
    values = map_coordinates(prob, [pts[..., 1].ravel(), pts[..., 0].ravel()], order=1, mode="nearest")
    values = values.reshape(n, len(steps))
    values = np.maximum(values - values.min(axis=1, keepdims=True), 0.0)
    total = values.sum(axis=1)
    offset = np.where(total > 0, (values * steps).sum(axis=1) / np.maximum(total, 1e-12), 0.0)
    return branch + np.clip(offset, -1.5, 1.5)[:, None] * normal


class _PairMeasure:
    """One ordered pair ``(i, j)`` of views, rotated so that its disparities run along ``+x``."""

    def __init__(self, views: DetectedViews, shifts, i: int, j: int, *, measure_on: str = "images"):
        from scipy import ndimage as ndi

        from .stereo import rotate_image

        delta = shifts[j] - shifts[i]
        self.i, self.j = i, j
        self.baseline = float(np.hypot(*delta))
        self.rotation = -float(np.rad2deg(np.arctan2(delta[1], delta[0])))
        self.shape = views.probability.shape[1:]
        source = views.normalised if measure_on == "images" else views.probability
        self.prob = [rotate_image(source[k], self.rotation) for k in (i, j)]
        # the second view moved by half a pixel along the rows: see :meth:`measure`
        self.half = ndi.shift(self.prob[1], (0.0, -0.5), order=3, mode="nearest")
        self._views = views

    def starting_disparity(self, matcher):
        """The matcher's disparity, snapped to the other view's lines where it can be (rotated frame)."""
        from ..stereo.matching import predict_disparity, refine_disparity
        from .stereo import rotate_image

        norm = [rotate_image(self._views.normalised[k], self.rotation) for k in (self.i, self.j)]
        masks = [rotate_image((self._views.labels[k] == 1).astype(np.float32), self.rotation) > 0.5
                 for k in (self.i, self.j)]
        disparity, _ = predict_disparity(norm[0], norm[1], matcher)
        refined = refine_disparity(disparity, masks[0], masks[1], weights_left=self.prob[0],
                                   weights_right=self.prob[1])
        return np.where(np.isfinite(refined), refined, disparity)

    def patch_inside(self, xy, *, half_width: int = PATCH_HALF_WIDTH, half_height: int = 3) -> np.ndarray:
        """Whether the correlation patches around points ``xy`` (scan frame) lie inside the scan.

        A line cut by the scan's edge ends there in every view, whatever its depth: a
        patch that reaches the edge would measure that end, not the line. The patch runs
        ``half_width`` px (its half width and the search) along the pair's epipolar
        direction and ``half_height`` px across it.
        """
        a = -np.deg2rad(self.rotation)
        e, n = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
        rows, cols = self.shape
        xy = np.asarray(xy, dtype=float)
        ok = np.ones(len(xy), dtype=bool)
        for u in (-half_width, half_width):
            for v in (-half_height, half_height):
                corner = xy + u * e + v * n
                ok &= (corner[:, 0] >= 0) & (corner[:, 0] <= cols - 1)
                ok &= (corner[:, 1] >= 0) & (corner[:, 1] <= rows - 1)
        return ok

    def measure(self, xy_i, d0, *, min_sine: float, min_peak: float):
        """Disparity ``x_j - x_i`` at points ``xy_i`` (scan frame, in view i), its std scaled by the line angle."""
        from ..stereo.line_fit import image_disparity, line_angle_sine

        q = rotate_points(xy_i, self.rotation, self.shape)
        inside = self.patch_inside(xy_i)
        start = np.where(inside, d0, np.nan)
        d, sd, peak = image_disparity(self.prob[0], self.prob[1], q[:, 0], q[:, 1], start)
        # The sub-pixel peak of a correlation sampled at whole shifts leans towards whole
        # disparities (an error periodic in d, here up to a few hundredths of a pixel: a
        # pixel of depth at 3 degrees). Measured again with the second view half a pixel
        # further, the error has the opposite sign; the mean of the two cancels it.
        d_half, sd_half, _ = image_disparity(self.prob[0], self.half, q[:, 0], q[:, 1], start - 0.5)
        both = np.isfinite(d) & np.isfinite(d_half)
        d = np.where(both, 0.5 * (d + d_half + 0.5), d)
        sd = np.where(both, 0.5 * (sd + sd_half), sd)
        sine = np.maximum(line_angle_sine(q), min_sine)
        bad = ~inside | ~(peak >= min_peak)
        return np.where(bad, np.nan, d), np.where(bad, np.nan, sd / sine)


def _line_depth(s, z, z_std, *, spacing, smoothness, max_gap, min_points):
    """Robust smooth depth along one line and its std; runs of points near kept measurements."""
    from ..stereo.line_fit import fit_disparity_curve, true_runs

    fit, fit_sd, inliers = fit_disparity_curve(s, z, z_std, spacing=spacing, smoothness=smoothness)
    if inliers.sum() < min_points:
        return []
    kept = s[inliers]
    j = np.clip(np.searchsorted(kept, s), 1, max(len(kept) - 1, 1))
    near = np.minimum(np.abs(s - kept[j - 1]), np.abs(s - kept[np.minimum(j, len(kept) - 1)]))
    near = np.where((s < kept[0] - 1.0) | (s > kept[-1] + 1.0), np.inf, near)
    ok = (near <= max_gap) & np.isfinite(fit) & np.isfinite(fit_sd)
    return [(a, b, fit, fit_sd) for a, b in true_runs(ok, min_points)]


def iter_fuse_views(views: DetectedViews, shifts, *, matcher, pairs=None, reference: int | None = None,
                    min_baseline_fraction: float = 0.3, min_line_points: int = 10, min_sine: float = 0.1,
                    min_peak: float = 0.5, max_gap: float = 6.0, spacing: float = 8.0, smoothness: float = 2.0,
                    junction_trim: float = 5.0, max_corner_deg: float = MAX_CORNER_DEG, measure_on: str = "images",
                    min_pairs: int | None = None, cross_check: float = CROSS_CHECK_PX,
                    std_calibration: float = STD_CALIBRATION) -> ProgressGenerator[tuple]:
    """Match the useful pairs of detected views and fuse them into 3D lines (stages ``match`` and ``fuse``).

    ``pairs`` (``[(i, j), ...]``) restricts the pairs used (default: every useful
    pair of :func:`~.views_geometry.view_pairs`); ``reference`` is the view whose
    lines are reconstructed (default: the one with the most line length among the
    views of those pairs). A point keeps its depth only where at least ``min_pairs``
    pairs agree on it (default :func:`confirming_pairs`); elsewhere its line's curve
    fills in over gaps up to ``max_gap`` px. The reference view's skeleton paths are
    cut where they turn by more than ``max_corner_deg`` over 5 px.

    ``cross_check`` (px; 0: off): the lines are reconstructed once more from each
    other view of the pairs as the reference, and a stretch of the reference's lines
    is kept only where one of those reconstructions has a point within this 3D
    distance (:func:`_confirmed`). Where two lines overlap in the reference view, one
    skeleton path runs along both and gets one depth; a view that sees them apart
    does not confirm it. Costs one fusion per view. Views whose own reconstruction
    gives no line are left out of the check (and with none left, nothing is checked).

    Returns ``(lines, depth_std, n_pairs, pair_records, reference)``.
    """
    from ..stereo.line_fit import arc_length
    from ..stereo.skeleton_graph import skeleton_branches

    if measure_on not in MEASURE_ON:
        raise InputError(f"measure_on must be one of {MEASURE_ON}, got {measure_on!r}")
    shifts = np.asarray(shifts, dtype=float)
    n_views = len(views.images)
    geometry = {tuple(p["pair"]): p for p in view_pairs(shifts, min_baseline_fraction=0.0)}
    if pairs is None:
        chosen = [tuple(p["pair"]) for p in view_pairs(shifts, min_baseline_fraction=min_baseline_fraction)]
    else:
        chosen = [tuple(sorted(int(v) for v in p)) for p in pairs]
        if not chosen or any(p not in geometry for p in chosen):
            raise InputError(f"pairs must be pairs of different views among 0..{n_views - 1}, got {pairs!r}")
    used_views = sorted({v for p in chosen for v in p})
    branches = {k: skeleton_branches(views.labels[k] == 1, min_branch_length=float(min_line_points))
                for k in used_views}
    if reference is None:
        lengths = {k: sum(float(arc_length(b)[-1]) for b in branches[k] if len(b) > 1) for k in used_views}
        reference = max(used_views, key=lambda k: lengths[k])
    reference = int(reference)
    if reference not in used_views:
        raise InputError(f"the reference view {reference} is in none of the pairs {chosen}")
    checkers = [k for k in used_views if k != reference] if cross_check > 0 else []
    total = len(chosen) * (1 + len(checkers)) + 1
    options = dict(min_line_points=min_line_points, min_sine=min_sine, min_peak=min_peak, max_gap=max_gap,
                   spacing=spacing, smoothness=smoothness, junction_trim=junction_trim,
                   max_corner_deg=max_corner_deg, measure_on=measure_on, min_pairs=min_pairs,
                   std_calibration=std_calibration)
    lines, stds, n_used, records = yield from _iter_fuse_from(views, shifts, chosen, geometry, branches[reference],
                                                             reference, matcher, step=0, total=total, **options)
    others = []
    for c, k in enumerate(checkers, start=1):
        found = yield from _iter_fuse_from(views, shifts, chosen, geometry, branches[k], k, matcher,
                                           step=c * len(chosen), total=total, **options)
        if found[0]:
            others.append(found[0])
    if others:  # no other view gave lines (its detection failed, say): nothing to check against
        keep = _confirmed(lines, others, tolerance=cross_check, min_points=max(2, min_line_points // 2))
        runs = [(k, a, b) for k, line_runs in enumerate(keep) for a, b in line_runs]
        lines, stds, n_used = ([values[k][a:b] for k, a, b in runs] for values in (lines, stds, n_used))
    yield Progress(total, total, "fuse")
    return lines, stds, n_used, records, reference


def _confirmed(lines, others, *, tolerance: float, min_points: int) -> list:
    """Per line, the runs ``(start, stop)`` of points within ``tolerance`` (3D) of a point of another reconstruction."""
    from scipy.spatial import cKDTree

    from ..evaluation import densify_lines
    from ..stereo.line_fit import true_runs

    trees = [cKDTree(densify_lines(o, spacing=0.5)) for o in others if o]
    out = []
    for line in lines:
        near = np.zeros(len(line), dtype=bool)
        for tree in trees:
            near |= tree.query(np.asarray(line, dtype=float))[0] <= tolerance
        out.append(list(true_runs(near, min_points)))
    return out


def _iter_fuse_from(views, shifts, chosen, geometry, branches, reference, matcher, *, step, total,
                    min_line_points, min_sine, min_peak, max_gap, spacing, smoothness, junction_trim,
                    max_corner_deg, measure_on, min_pairs, std_calibration) -> ProgressGenerator[tuple]:
    """The lines of one reference view, fused over the chosen pairs: ``(lines, depth_std, n_pairs, records)``."""
    from ..stereo.line_fit import arc_length
    from ..stereo.skeleton_graph import split_at_corners

    star = [p for p in chosen if reference in p]
    others = [p for p in chosen if reference not in p]
    # a corner is most often a path running from one line onto another; its ends are trimmed as junctions
    pieces = [piece for b in branches for piece in split_at_corners(b.astype(float), max_turn_deg=max_corner_deg)]
    lines_xy = [_normal_centres(views.probability[reference], b)
                for b in _trim_junctions(pieces, junction_trim) if len(b) >= min_line_points]
    counts = np.cumsum([0] + [len(b) for b in lines_xy])
    all_xy = np.concatenate(lines_xy) if lines_xy else np.zeros((0, 2))
    order = star + others
    d_all = np.full((len(order), len(all_xy)), np.nan)
    sd_all = np.full_like(d_all, np.nan)
    b_all = np.zeros(len(order))
    for p, (a, b) in enumerate(star):  # pairs with the reference: from the matcher
        check_cancelled()
        other = b if a == reference else a
        m = _PairMeasure(views, shifts, reference, other, measure_on=measure_on)
        start = m.starting_disparity(matcher)
        q = np.round(rotate_points(all_xy, m.rotation, m.shape)).astype(int)
        rows, cols = m.shape
        inside = (q[:, 0] >= 0) & (q[:, 0] < cols) & (q[:, 1] >= 0) & (q[:, 1] < rows)
        d0 = np.full(len(all_xy), np.nan)
        d0[inside] = start[q[inside, 1], q[inside, 0]]
        d_all[p], sd_all[p] = _measure_by_line(m, all_xy, d0, counts, min_sine, min_peak)
        b_all[p] = m.baseline
        yield Progress(step + p + 1, total, "match")
    z0, _, _ = fuse_depths(d_all[:len(star)], sd_all[:len(star)], b_all[:len(star)])
    z0 = _fill_along_lines(z0, counts)
    for p, (a, b) in enumerate(others, start=len(star)):  # the remaining pairs, where the first depth puts the point
        check_cancelled()
        m = _PairMeasure(views, shifts, a, b, measure_on=measure_on)
        xy_a = all_xy + z0[:, None] * (shifts[a] - shifts[reference])[None, :]
        d_all[p], sd_all[p] = _measure_by_line(m, xy_a, z0 * m.baseline, counts, min_sine, min_peak)
        b_all[p] = m.baseline
        yield Progress(step + p + 1, total, "match")

    z, z_sd, used = fuse_depths(d_all, sd_all, b_all)
    # a depth that only one or two of many pairs found is most often a wrong match at a crossing
    few = used.sum(axis=0) < (confirming_pairs(len(order)) if min_pairs is None else min_pairs)
    z, z_sd = np.where(few, np.nan, z), np.where(few, np.nan, z_sd)
    lines, stds, n_used = [], [], []
    for k in range(len(lines_xy)):
        check_cancelled()
        sl = slice(counts[k], counts[k + 1])
        xy = all_xy[sl]
        s = arc_length(xy)
        for a, b, fit, fit_sd in _line_depth(s, z[sl], z_sd[sl], spacing=spacing, smoothness=smoothness,
                                             max_gap=max_gap, min_points=min_line_points):
            depth = fit[a:b]
            lines.append(np.column_stack([xy[a:b] - depth[:, None] * shifts[reference][None, :], depth]))
            stds.append(fit_sd[a:b] * std_calibration)
            n_used.append(used[:, sl][:, a:b].sum(axis=0).astype(int))
    records = []
    for p, (i, j) in enumerate(order):
        g = geometry[tuple(sorted((i, j)))]
        measured = np.isfinite(d_all[p])
        records.append({**g, "role": "with reference" if p < len(star) else "placed by first depth",
                        "measured_points": int(measured.sum()), "kept_points": int(used[p].sum())})
    return lines, stds, n_used, records


def confirming_pairs(n_pairs: int) -> int:
    """How many pairs must agree on a point's depth when ``n_pairs`` pairs were matched: a fifth of them.

    One of 3 (every point a pair measured), two of 6 (4 discs), three of 15 (6 discs).
    Chosen on validation scans (``benchmarks/bench_multiview.py --first-seed 5000100``):
    the points that only one pair of 6, or one or two of 15, kept carried 80-86 % of
    the squared depth error of the fused lines (wrong matches where lines cross or
    touch, found by one pair by chance); with 3 pairs, the points one pair kept are
    mostly where the other two could not measure (near the scan's edge) and are
    worth keeping (depth RMSE 1.9 px against 0.9 px).
    """
    return max(1, int(np.ceil(n_pairs / 5)))


def _trim_junctions(branches, trim: float) -> list:
    """Branches without their points within ``trim`` px of a junction (an end shared with another branch).

    Where lines cross or meet in a view, the patch around the junction holds two lines
    at two depths and no pair can say which is which.
    """
    from ..stereo.line_fit import true_runs

    if trim <= 0 or not branches:
        return list(branches)
    ends = np.array([p for b in branches if len(b) for p in (b[0], b[-1])], dtype=float)
    _, index, counts = np.unique(np.round(ends).astype(int), axis=0, return_inverse=True, return_counts=True)
    junctions = ends[counts[index.ravel()] > 1]
    if not len(junctions):
        return list(branches)
    out = []
    for b in branches:
        dist = np.min(np.hypot(*(b[:, None, :] - junctions[None, :, :]).transpose(2, 0, 1)), axis=1)
        # a branch passing near another one's junction loses points in its middle: split it there
        out.extend(b[start:stop] for start, stop in true_runs(dist > trim, 1))
    return out


def _measure_by_line(m: _PairMeasure, xy, d0, counts, min_sine, min_peak):
    """:meth:`_PairMeasure.measure` line by line (the line angle is a per-line quantity)."""
    d = np.full(len(xy), np.nan)
    sd = np.full(len(xy), np.nan)
    for k in range(len(counts) - 1):
        sl = slice(counts[k], counts[k + 1])
        d[sl], sd[sl] = m.measure(xy[sl], d0[sl], min_sine=min_sine, min_peak=min_peak)
    return d, sd


def _fill_along_lines(z, counts):
    """Points without a first depth take the nearest measured one on their line (0 on an unmeasured line)."""
    out = np.array(z, dtype=float)
    for k in range(len(counts) - 1):
        part = out[counts[k]:counts[k + 1]]
        ok = np.isfinite(part)
        if not ok.any():
            part[:] = 0.0
        elif not ok.all():
            idx = np.arange(len(part))
            part[~ok] = np.interp(idx[~ok], idx[ok], part[ok])
    return out
