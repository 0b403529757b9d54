"""Accuracy of the 3D lines: coverage, precision, depth error and the calibration of their uncertainty.

Held-out synthetic pairs (``TEST_SEEDS``, already rectified, so rectification is
skipped and the true depth origin is kept up to one global offset) at 4, 8 and 12
degrees, reconstructed with the shipped networks. Per angle, over all pairs:

- ``coverage``: share of the true lines (densified every 0.5 px) with a
  reconstructed point within 3 px in 3D, after removing one global depth offset
  per pair; ``precision``: share of reconstructed points within 3 px of a true line;
- ``depth RMSE`` and ``depth mean``: ``z - z_true`` of reconstructed points against
  the true point nearest in ``(x, y)`` (within 3 px), offset removed; ``disparity``:
  the same error in disparity pixels (``2 sin(phi/2) |dz|``);
- ``within 1 std``: share of those points whose ``|dz|`` is at most the depth
  standard deviation the pipeline reports for the point (about 0.68 if calibrated).

``--line-model`` compares the line models of :func:`napari_stereo_tem.stereo.pipeline.reconstruct_stereo`.
``--renderer foreign`` draws the views anew from the same 3D truth with a rendering the
networks never saw (:func:`foreign_views`): lines with a dark core and a faint bright
fringe, a bend contour that moves between the views, another background and shot noise.

``--line-search``, ``--max-disparity-std`` and ``--min-line-probability`` run the
reconstruction with those options of :func:`~napari_stereo_tem.stereo.pipeline.reconstruct_stereo`.

``--diagnose`` says instead where the figures are lost, at the first of ``--angles``: for
every true point without a reconstructed point within 3 px, why (not detected in the left
view, detected but its branch dropped and by which check, reconstructed at the wrong
depth: matched to a neighbouring line or not); for every reconstructed point farther than
3 px from the truth and for the squared depth error, which kind of point carries it (false
detection, wrong partner, stretch along the rows, line end, elsewhere) (:func:`diagnose_pair`).

Run::

    python benchmarks/bench_lines3d.py --n 4 --size 384
    python benchmarks/bench_lines3d.py --n 4 --size 384 --line-model legacy
    python benchmarks/bench_lines3d.py --n 5 --size 384 --split val --angles 8 --diagnose
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

ANGLES = (4, 8, 12)


def pairs(n, angle, size, *, seed=21, split="test", kind="default"):
    """``n`` generated pairs with at least one line in view."""
    from napari_stereo_tem.synth import make_stereo_pair
    from napari_stereo_tem.synth.seeds import draw_seeds

    found = 0
    for s in draw_seeds(split, 4 * n + 4, seed=seed):
        sample = make_stereo_pair(int(s), shape=(size, size), stereo_angle_deg=float(angle))
        if sample.lines_3d and (sample.mask_left == 1).sum() > 50:
            found += 1
            yield sample
            if found == n:
                return


def foreign_views(sample, angle, *, seed: int, dose: float = 300.0, width_scale: float = 1.0,
                  contrast_scale: float = 1.0, oscillation: float = 0.0):
    """The pair drawn again from its 3D truth (:func:`napari_stereo_tem.synth.fringed.fringed_views`)."""
    from napari_stereo_tem.synth.fringed import fringed_views

    return fringed_views(sample, angle, seed=seed, dose=dose, width_scale=width_scale, contrast_scale=contrast_scale,
                         oscillation=oscillation)


def point_errors(lines, stds, truth, *, offset: float, xy_tolerance: float = 3.0):
    """``(dz, std)`` of every reconstructed point whose nearest true point in ``(x, y)`` is close enough."""
    from scipy.spatial import cKDTree

    from napari_stereo_tem.evaluation import densify_lines

    true = densify_lines(truth, spacing=0.5)
    tree = cKDTree(true[:, :2])
    dz, sd = [], []
    for line, std in zip(lines, stds):
        dist, j = tree.query(line[:, :2])
        near = dist <= xy_tolerance
        dz.append(line[near, 2] + offset - true[j[near], 2])
        sd.append(np.asarray(std, float)[near])
    if not dz:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(dz), np.concatenate(sd)


def score(*, n, size, angles=ANGLES, line_model=None, threads=2, split="test", seed=21, renderer="own",
          line_search=False, max_disparity_std=None, min_line_probability=None, detector="default", extra=None,
          width_scale=1.0, contrast_scale=1.0, dose=300.0,
          oscillation=0.0):
    from napari_stereo_tem.evaluation import line_set_distance
    from napari_stereo_tem.models.store import load_detector
    from napari_stereo_tem.stereo.matching import load_matcher
    from napari_stereo_tem.stereo.pipeline import reconstruct

    det, matcher = load_detector(detector), load_matcher()
    options = {} if line_model is None else {"line_model": line_model}
    if line_search:
        options["line_search"] = True
    if max_disparity_std is not None:
        options["max_disparity_std"] = max_disparity_std
    if min_line_probability is not None:
        options["min_line_probability"] = min_line_probability
    options.update(extra or {})
    rows = {}
    for angle in angles:
        acc = {"coverage": [], "precision": [], "dz": [], "std": [], "seconds": [], "triangulate": []}
        for k, sample in enumerate(pairs(n, angle, size, seed=seed, split=split)):
            left, right = sample.left, sample.right
            if renderer == "foreign":
                left, right = foreign_views(sample, float(angle), seed=1000 * int(angle) + k,
                                            width_scale=width_scale, contrast_scale=contrast_scale, dose=dose,
                                            oscillation=oscillation)
            t0 = time.perf_counter()
            rec = reconstruct(left, right, stereo_angle_deg=float(angle), rectify=False,
                              detector=det, matcher=matcher, n_threads=threads, **options)
            acc["seconds"].append(time.perf_counter() - t0)
            acc["triangulate"].append(rec.timings["triangulate"])
            m = line_set_distance(rec.lines, sample.lines_3d, remove_depth_offset=True)
            acc["coverage"].append(m["coverage"])
            acc["precision"].append(m["precision"] if m["n_pred"] else 0.0)
            stds = getattr(rec, "line_depth_std", None) or [np.full(len(line), np.nan) for line in rec.lines]
            dz, sd = point_errors(rec.lines, stds, sample.lines_3d, offset=m["depth_offset"])
            acc["dz"].append(dz)
            acc["std"].append(sd)
        dz, sd = np.concatenate(acc["dz"]), np.concatenate(acc["std"])
        k = 2 * np.sin(np.deg2rad(angle) / 2)
        rows[str(angle)] = {
            "pairs": len(acc["coverage"]), "coverage": float(np.mean(acc["coverage"])),
            "precision": float(np.mean(acc["precision"])),
            "depth_rmse": float(np.sqrt(np.mean(dz ** 2))) if len(dz) else float("nan"),
            "depth_mean": float(np.mean(np.abs(dz))) if len(dz) else float("nan"),
            "disparity_mean": float(np.mean(np.abs(dz)) * k) if len(dz) else float("nan"),
            "within_1_std": float(np.mean(np.abs(dz) <= sd)) if np.isfinite(sd).any() else float("nan"),
            "median_std": float(np.nanmedian(sd)) if np.isfinite(sd).any() else float("nan"),
            "seconds_per_pair": float(np.mean(acc["seconds"])),
            "triangulate_seconds_per_pair": float(np.mean(acc["triangulate"]))}
        print(f"  {angle:>2} deg: {json.dumps({k: round(v, 3) for k, v in rows[str(angle)].items()})}",
              file=sys.stderr, flush=True)
    return rows


COVERAGE_CAUSES = (
    ("outside", "d: outside the left view"),
    ("not_detected", "a: not detected in the left view (no dislocation pixel within 2.5 px)"),
    ("distractor", "b: detected as the distractor class"),
    ("no_branch", "b: detected, but on no skeleton branch (spur or fragment pruned)"),
    ("short", "b: branch shorter than the minimum"),
    ("not_in_right", "b: right view does not show it (median correlation peak)"),
    ("lr_check", "b: too few points left after the left-right check"),
    ("few_inliers", "b: too few points kept by the robust fit (not the left-right check)"),
    ("gap_lr", "b: fitted branch, this stretch cut (left-right check left it unmeasured)"),
    ("uncertain", "b: fitted branch, this stretch cut (disparity standard deviation over the limit)"),
    ("gap", "b: fitted branch, this stretch cut (no measurement / end overhang)"),
    ("wrong_partner", "c: reconstructed at the wrong depth, matched to a neighbouring line"),
    ("wrong_depth", "c: reconstructed at the wrong depth, same line (off by > 3 px in 3D)"),
)

POINT_CAUSES = (
    ("false_line", "no true line within 2.5 px in the left view (false detection)"),
    ("wrong_partner", "on a true line, matched to a neighbouring line in the right view"),
    ("row_parallel", "on a true line, same partner, line within 20 deg of the rows"),
    ("line_end", "on a true line, same partner, within 5 px of a line's end"),
    ("other", "on a true line, same partner, elsewhere"),
)


def _lines_with_ids(lines, *, spacing=0.5):
    from napari_stereo_tem.evaluation import densify_lines

    parts = [densify_lines([line], spacing=spacing) for line in lines]
    ids = np.concatenate([np.full(len(p), k) for k, p in enumerate(parts)]) if parts else np.zeros(0, int)
    return (np.vstack(parts) if parts else np.zeros((0, 3))), ids


def _fit_report(rec, sample_angle, matcher, *, line_search=False, max_disparity_std=None):
    """``fit_lines`` run again on the reconstruction's own maps, with its report of every branch."""
    from napari_stereo_tem.stereo.line_fit import fit_lines
    from napari_stereo_tem.stereo.matching import predict_disparity, refine_disparity

    mask_left, mask_right = rec.labels_left == 1, rec.labels_right == 1
    refined, positions = refine_disparity(rec.disparity, mask_left, mask_right, max_distance=3.0, mode="centre",
                                          weights_left=rec.prob_left, weights_right=rec.prob_right,
                                          return_positions=True)
    mirrored, _ = predict_disparity(rec.right[:, ::-1].copy(), rec.left[:, ::-1].copy(), matcher)
    options = {"max_disparity_std": max_disparity_std}
    if line_search:
        from napari_stereo_tem.stereo.line_fit import line_disparity_map

        options |= {"line_search": 8, "line_disparity_right": line_disparity_map(
            mask_right[:, ::-1], rec.prob_right[:, ::-1], rec.prob_left[:, ::-1], mirrored)[:, ::-1]}
    report = []
    lines, _ = fit_lines(mask_left, rec.prob_left, rec.prob_right, rec.disparity, sample_angle, refined=refined,
                         positions=positions, min_points=10, min_branch_length=10.0,
                         disparity_right=mirrored[:, ::-1], report=report, **options)
    if len(lines) != len(rec.lines):
        raise RuntimeError("the diagnosis does not reproduce the reconstruction's lines")
    return report


def diagnose_pair(rec, sample, angle, report, *, tolerance=3.0, near_px=2.5, max_disparity_std=None):
    """Why each uncovered true point, each imprecise point and each squared depth error is lost.

    Returns ``(coverage_causes, matcher_off, point_causes, depth_sq_causes, line_sq, n_true, n_pred)``:
    counts of the uncovered densified true points per cause of :data:`COVERAGE_CAUSES` (and of
    those, where the matcher's starting disparity was off by more than 3 px), counts of the
    reconstructed points farther than ``tolerance`` from the truth per cause of
    :data:`POINT_CAUSES`, the sum of squared depth errors per cause of
    :data:`POINT_CAUSES` (points within 3 px of the truth in ``(x, y)``), and the
    squared depth error summed per reconstructed line, and the numbers of true and
    reconstructed points.
    """
    from scipy.ndimage import distance_transform_edt
    from scipy.spatial import cKDTree

    from napari_stereo_tem.evaluation import line_set_distance
    from napari_stereo_tem.stereo.line_fit import line_angle_sine
    from napari_stereo_tem.stereo.projection import project_points

    rows, cols = rec.labels_left.shape
    axis = (cols - 1) / 2.0
    half = angle / 2.0
    m = line_set_distance(rec.lines, sample.lines_3d, remove_depth_offset=True)
    offset = m["depth_offset"]
    true, true_id = _lines_with_ids(sample.lines_3d)
    true_left = project_points(true, -half, axis_col=axis)
    true_right = project_points(true, half, axis_col=axis)
    tree_left, tree_right = cKDTree(true_left), cKDTree(true_right)

    # every fitted branch point with its fate, and the reconstructed points by line
    bx = np.concatenate([e["x"] for e in report]) if report else np.zeros(0)
    by = np.concatenate([e["y"] for e in report]) if report else np.zeros(0)
    fate = []
    for e in report:
        n = len(e["x"])
        if e["reason"] == "few_inliers":
            share = e["lr_rejected"].sum() / max(e["measured"].sum(), 1)
            fate += ["lr_check" if share > 0.3 else "few_inliers"] * n
        elif e["reason"] is not None:
            fate += [e["reason"]] * n
        else:
            limit = np.inf if max_disparity_std is None else max_disparity_std
            fate += ["fitted" if k >= 0 else ("uncertain" if sd > limit else "gap_lr" if lr else "gap")
                     for k, lr, sd in zip(e["line"], e["lr_rejected"], e["std"])]
    fate = np.array(fate, dtype=object)
    tree_branch = cKDTree(np.column_stack([bx, by])) if len(bx) else None

    start = np.concatenate([e["start"] for e in report]) if report else np.zeros(0)
    true_disparity = true_right[:, 0] - true_left[:, 0]
    coverage = {k: 0 for k, _ in COVERAGE_CAUSES}
    matcher_off = {k: 0 for k, _ in COVERAGE_CAUSES}  # of those: the matcher's disparity off by > 3 px
    pred = np.vstack(rec.lines) + [0.0, 0.0, offset] if rec.lines else np.zeros((0, 3))
    covered = (cKDTree(pred).query(true)[0] <= tolerance) if len(pred) else np.zeros(len(true), bool)
    dist_1 = distance_transform_edt(rec.labels_left != 1)
    dist_2 = distance_transform_edt(rec.labels_left != 2)

    def partner(points_raw):
        """Per reconstructed point: on a true line in the left view, and seen on another one in the right?"""
        xl = project_points(points_raw, -half, axis_col=axis)
        xr = project_points(points_raw, half, axis_col=axis)
        dl, jl = tree_left.query(xl)
        dr, jr = tree_right.query(xr)
        on_line = dl <= near_px
        wrong = on_line & (true_id[jr] != true_id[jl]) & (dr <= 2.0)
        return on_line, wrong

    raw_pred = pred - [0.0, 0.0, offset]
    wrong_pred = partner(raw_pred)[1] if len(pred) else np.zeros(0, bool)
    tree_pred_xy = cKDTree(pred[:, :2]) if len(pred) else None
    for k in np.flatnonzero(~covered):
        x, y = true_left[k]
        if not (0 <= x <= cols - 1 and 0 <= y <= rows - 1):
            coverage["outside"] += 1
            continue
        i, j = int(round(y)), int(round(x))
        if dist_1[i, j] > near_px:
            coverage["distractor" if dist_2[i, j] <= near_px else "not_detected"] += 1
            continue
        near = np.asarray(tree_branch.query_ball_point([x, y], near_px) if tree_branch is not None else [], int)
        if not len(near):
            coverage["no_branch"] += 1
            continue
        fitted = near[fate[near] == "fitted"]
        candidates = fitted if len(fitted) else near
        nearest = candidates[np.argmin(np.hypot(bx[candidates] - x, by[candidates] - y))]
        if len(fitted):  # the line is there: its depth is wrong; seen on another line in the right view?
            d, j = tree_pred_xy.query(true[k, :2])
            cause = "wrong_partner" if d <= tolerance and wrong_pred[j] else "wrong_depth"
        else:
            cause = fate[nearest]
        coverage[cause] += 1
        matcher_off[cause] += int(not abs(start[nearest] - true_disparity[k]) <= 3.0)

    # reconstructed points: imprecise ones and the squared depth error, by cause
    points = {k: 0 for k, _ in POINT_CAUSES}
    depth_sq = {k: 0.0 for k, _ in POINT_CAUSES}
    line_sq = []
    tree_true_xy = cKDTree(true[:, :2])
    tree_true = cKDTree(true)
    for line in rec.lines:
        raw = np.asarray(line, float)
        shifted = raw + [0.0, 0.0, offset]
        on_line, wrong = partner(raw)
        sine = line_angle_sine(raw[:, :2])
        s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(raw[:, :2], axis=0).T))])
        end = np.minimum(s, s[-1] - s) < 5.0
        cause = np.where(~on_line, "false_line", np.where(wrong, "wrong_partner", np.where(
            sine < np.sin(np.deg2rad(20)), "row_parallel", np.where(end, "line_end", "other"))))
        far = tree_true.query(shifted)[0] > tolerance
        for c in cause[far]:
            points[c] += 1
        dxy, j = tree_true_xy.query(shifted[:, :2])
        near = dxy <= 3.0
        dz2 = (shifted[near, 2] - true[j[near], 2]) ** 2
        for c, v in zip(cause[near], dz2):
            depth_sq[c] += float(v)
        line_sq.append(float(dz2.sum()))
    return coverage, matcher_off, points, depth_sq, line_sq, len(true), sum(len(line) for line in rec.lines)


def diagnose(*, n, size, angle, threads=1, split="val", seed=21, renderer="own", line_search=False,
             max_disparity_std=None, detector="default", width_scale=1.0, contrast_scale=1.0, dose=300.0,
             oscillation=0.0):
    """Print where coverage, precision and the squared depth error are lost over ``n`` pairs (:func:`diagnose_pair`)."""
    from napari_stereo_tem.models.store import load_detector
    from napari_stereo_tem.stereo.matching import load_matcher
    from napari_stereo_tem.stereo.pipeline import reconstruct

    det, matcher = load_detector(detector), load_matcher()
    total_cov = {k: 0 for k, _ in COVERAGE_CAUSES}
    total_off = {k: 0 for k, _ in COVERAGE_CAUSES}
    total_pts = {k: 0 for k, _ in POINT_CAUSES}
    total_sq = {k: 0.0 for k, _ in POINT_CAUSES}
    lines_sq, n_true, n_pred = [], 0, 0
    for k, sample in enumerate(pairs(n, angle, size, seed=seed, split=split)):
        left, right = sample.left, sample.right
        if renderer == "foreign":
            left, right = foreign_views(sample, float(angle), seed=1000 * int(angle) + k,
                                            width_scale=width_scale, contrast_scale=contrast_scale, dose=dose,
                                            oscillation=oscillation)
        rec = reconstruct(left, right, stereo_angle_deg=float(angle), rectify=False, detector=det, matcher=matcher,
                          n_threads=threads, line_search=line_search, max_disparity_std=max_disparity_std)
        report = _fit_report(rec, float(angle), matcher, line_search=line_search, max_disparity_std=max_disparity_std)
        cov, off, pts, sq, per_line, nt, npred = diagnose_pair(rec, sample, float(angle), report,
                                                               max_disparity_std=max_disparity_std)
        for key in total_cov:
            total_cov[key] += cov[key]
            total_off[key] += off[key]
        for key in total_pts:
            total_pts[key] += pts[key]
            total_sq[key] += sq[key]
        lines_sq += per_line
        n_true, n_pred = n_true + nt, n_pred + npred
        print(f"  pair {k}: uncovered {sum(cov.values()) / nt:.3f}, imprecise {sum(pts.values()) / max(npred, 1):.3f}",
              file=sys.stderr, flush=True)
    print(f"Where the 3D lines lose, {n} pairs ({split} seeds, {renderer} renderer) at {angle} deg, {size}x{size}\n")
    print(f"Coverage lost: share of all {n_true} true points (densified every 0.5 px) without a reconstructed point "
          "within 3 px\n")
    print("| cause | share of true points | of which the matcher was off by > 3 px |\n|---|---|---|")
    for key, text in COVERAGE_CAUSES:
        print(f"| {text} | {total_cov[key] / n_true:.3f} | {total_off[key] / n_true:.3f} |")
    print(f"| **all uncovered** | **{sum(total_cov.values()) / n_true:.3f}** | "
          f"{sum(total_off.values()) / n_true:.3f} |\n")
    print(f"Precision lost: share of all {n_pred} reconstructed points farther than 3 px from the truth\n")
    print("| cause | share of points | share of squared depth error (points within 3 px in x, y) |\n|---|---|---|")
    sq_total = max(sum(total_sq.values()), 1e-12)
    for key, text in POINT_CAUSES:
        print(f"| {text} | {total_pts[key] / max(n_pred, 1):.3f} | {total_sq[key] / sq_total:.3f} |")
    print(f"| **all** | **{sum(total_pts.values()) / max(n_pred, 1):.3f}** | 1 |\n")
    ordered = np.sort(np.asarray(lines_sq))[::-1]
    if len(ordered):
        top = max(1, int(np.ceil(0.05 * len(ordered))))
        share = ordered[:top].sum() / max(ordered.sum(), 1e-12)
        print(f"The worst {top} of {len(ordered)} lines (5 %) carry {share:.2f} of the squared depth error.")


def _option(text: str):
    """``KEY=VALUE`` -> ``(key, value)`` with the value as a number or bool where it reads as one."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise SystemExit(f"--option wants KEY=VALUE, got {text!r}")
    if value.lower() in ("true", "false"):
        return key, value.lower() == "true"
    try:
        return key, float(value) if any(c in value for c in ".e") else int(value)
    except ValueError:
        return key, value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4, help="pairs per angle")
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--line-model", default=None, help="line model of the reconstruction (default: its default)")
    parser.add_argument("--split", default="test", choices=["test", "val"],
                        help="seed range (val: for calibrating the uncertainty without touching the test seeds)")
    parser.add_argument("--renderer", default="own", choices=["own", "foreign"],
                        help="own: the project's generator; foreign: the same truth drawn another way")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--angles", default=None, help="comma-separated stereo angles (default 4,8,12)")
    parser.add_argument("--line-search", action="store_true",
                        help="reconstruct with line_search=True (the line-level disparity search)")
    parser.add_argument("--max-disparity-std", type=float, default=None,
                        help="reconstruct with this max_disparity_std (px)")
    parser.add_argument("--min-line-probability", type=float, default=None,
                        help="reconstruct with this min_line_probability")
    parser.add_argument("--detector", default="default",
                        help="detector weights: a version name or a .safetensors path (default: the selected one)")
    parser.add_argument("--width-scale", type=float, default=1.0,
                        help="foreign renderer: lines this many times wider (a higher magnification)")
    parser.add_argument("--contrast-scale", type=float, default=1.0,
                        help="foreign renderer: the lines' contrast times this (fainter lines below 1)")
    parser.add_argument("--dose", type=float, default=300.0,
                        help="foreign renderer: counts per pixel of the shot noise (default 300; lower is noisier)")
    parser.add_argument("--oscillation", type=float, default=0.0,
                        help="foreign renderer: the line contrast oscillates with depth by this much (0-1; dotted "
                             "or zig-zag images of inclined dislocations)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="another keyword of reconstruct_stereo (a number, true/false or text); repeatable")
    parser.add_argument("--diagnose", action="store_true",
                        help="say where coverage, precision and depth error are lost (first angle of --angles)")
    args = parser.parse_args(argv)
    angles = ANGLES if args.angles is None else tuple(int(a) for a in args.angles.split(","))
    extra = dict(_option(text) for text in args.option)
    t0 = time.perf_counter()
    if args.diagnose:
        diagnose(n=args.n, size=args.size, angle=angles[0], threads=args.threads, split=args.split,
                 renderer=args.renderer, line_search=args.line_search, max_disparity_std=args.max_disparity_std,
                 detector=args.detector, width_scale=args.width_scale,
                 contrast_scale=args.contrast_scale, dose=args.dose,
                 oscillation=args.oscillation)
        print(f"\n({time.perf_counter() - t0:.0f} s)")
        return 0
    rows = score(n=args.n, size=args.size, angles=angles, line_model=args.line_model, threads=args.threads,
                 split=args.split, renderer=args.renderer, line_search=args.line_search,
                 max_disparity_std=args.max_disparity_std, min_line_probability=args.min_line_probability,
                 detector=args.detector, extra=extra, width_scale=args.width_scale,
                 contrast_scale=args.contrast_scale, dose=args.dose,
                 oscillation=args.oscillation)
    print(f"3D lines on held-out pairs ({args.split} seeds, {args.renderer} renderer), {args.n} pairs of "
          f"{args.size}x{args.size} per angle, line model {args.line_model or 'default'}"
          f"{', line search' if args.line_search else ''}"
          f"{f', disparity std limit {args.max_disparity_std:g} px' if args.max_disparity_std else ''}"
          f"{f', min line probability {args.min_line_probability:g}' if args.min_line_probability else ''}"
          f"{'' if args.detector == 'default' else f', detector {args.detector}'}"
          f"{''.join(f', {k}={v}' for k, v in extra.items())}"
          f"{'' if args.width_scale == 1.0 else f', lines {args.width_scale:g}x wider'}"
          f"{'' if args.contrast_scale == 1.0 else f', line contrast x{args.contrast_scale:g}'}"
          f"{'' if args.dose == 300.0 else f', dose {args.dose:g} counts/px'}"
          f"{'' if not args.oscillation else f', contrast oscillating by {args.oscillation:g} with depth'}"
          "; 3 px tolerance, one depth "
          "offset per pair removed\n")
    print("| angle | coverage | precision | depth RMSE (px) | depth mean (px) | disparity error (px) "
          "| within 1 std | median std (px) | s/pair | triangulate s/pair |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for angle, r in rows.items():
        print(f"| {angle} deg | {r['coverage']:.3f} | {r['precision']:.3f} | {r['depth_rmse']:.2f} | "
              f"{r['depth_mean']:.2f} | {r['disparity_mean']:.3f} | {r['within_1_std']:.2f} | "
              f"{r['median_std']:.2f} | {r['seconds_per_pair']:.1f} | {r['triangulate_seconds_per_pair']:.2f} |")
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"args": vars(args), "rows": rows}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
