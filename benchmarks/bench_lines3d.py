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

Run::

    python benchmarks/bench_lines3d.py --n 4 --size 384
    python benchmarks/bench_lines3d.py --n 4 --size 384 --line-model legacy
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


def foreign_views(sample, angle, *, seed: int, dose: float = 300.0):
    """The pair drawn again from its 3D truth with another line profile, a bend contour and shot noise.

    Each view projects the true lines at ``-phi/2`` / ``+phi/2`` about the central column
    (the pipeline's frame). A line pixel at distance ``r`` from the projected line is
    ``1 - c exp(-r^2 / 2 s^2) + f exp(-(r - 2.5 s)^2 / 2)`` (contrast ``c`` 0.35-0.6, width
    ``s`` 1.2-2.2 px, fringe ``f`` 0.1-0.2), times a background with a dark bend contour
    (a broad band along a random direction that moves 15-30 px between the views) and a
    smooth mottle; Poisson noise at ``dose`` counts per pixel.
    """
    from scipy.ndimage import gaussian_filter
    from scipy.spatial import cKDTree

    from napari_stereo_tem.evaluation import densify_lines
    from napari_stereo_tem.stereo.projection import project_points

    rng = np.random.default_rng(seed)
    rows, cols = sample.left.shape
    axis_col = (cols - 1) / 2.0
    yy, xx = np.mgrid[:rows, :cols].astype(float)
    contrast, width, fringe = rng.uniform(0.35, 0.6), rng.uniform(1.2, 2.2), rng.uniform(0.1, 0.2)
    direction = rng.uniform(0, np.pi)
    offset, move = rng.uniform(-0.3, 0.3) * rows, rng.uniform(15, 30)
    mottle = gaussian_filter(rng.normal(0, 1, (rows, cols)), 12)
    mottle = 0.08 * mottle / (np.abs(mottle).max() + 1e-9)
    views = []
    for k, tilt in enumerate((-angle / 2.0, angle / 2.0)):
        pts = densify_lines([np.column_stack([project_points(line, tilt, axis_col=axis_col), np.zeros(len(line))])
                             for line in sample.lines_3d], spacing=0.3)
        r = cKDTree(pts[:, :2]).query(np.column_stack([xx.ravel(), yy.ravel()]), distance_upper_bound=12)[0]
        r = np.minimum(r, 12).reshape(rows, cols)
        line = 1 - contrast * np.exp(-r ** 2 / (2 * width ** 2)) + fringe * np.exp(-(r - 2.5 * width) ** 2 / 2)
        across = (xx - cols / 2) * np.cos(direction) + (yy - rows / 2) * np.sin(direction) - offset - k * move
        background = (1 - 0.45 * np.exp(-across ** 2 / (2 * 18.0 ** 2))) * (1 + mottle)
        views.append(rng.poisson(np.clip(line * background, 0, None) * dose).astype(np.float32) / dose)
    return views


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


def score(*, n, size, angles=ANGLES, line_model=None, threads=2, split="test", seed=21, renderer="own"):
    from napari_stereo_tem.evaluation import line_set_distance
    from napari_stereo_tem.models.store import load_detector
    from napari_stereo_tem.stereo.matching import load_matcher
    from napari_stereo_tem.stereo.pipeline import reconstruct

    det, matcher = load_detector(), load_matcher()
    options = {} if line_model is None else {"line_model": line_model}
    rows = {}
    for angle in angles:
        acc = {"coverage": [], "precision": [], "dz": [], "std": [], "seconds": []}
        for k, sample in enumerate(pairs(n, angle, size, seed=seed, split=split)):
            left, right = sample.left, sample.right
            if renderer == "foreign":
                left, right = foreign_views(sample, float(angle), seed=1000 * int(angle) + k)
            t0 = time.perf_counter()
            rec = reconstruct(left, right, stereo_angle_deg=float(angle), rectify=False,
                              detector=det, matcher=matcher, n_threads=threads, **options)
            acc["seconds"].append(time.perf_counter() - t0)
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
            "seconds_per_pair": float(np.mean(acc["seconds"]))}
        print(f"  {angle:>2} deg: {json.dumps({k: round(v, 3) for k, v in rows[str(angle)].items()})}",
              file=sys.stderr, flush=True)
    return rows


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
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    rows = score(n=args.n, size=args.size, line_model=args.line_model, threads=args.threads, split=args.split,
                 renderer=args.renderer)
    print(f"3D lines on held-out pairs ({args.split} seeds, {args.renderer} renderer), {args.n} pairs of "
          f"{args.size}x{args.size} per angle, line model {args.line_model or 'default'}; 3 px tolerance, one depth "
          "offset per pair removed\n")
    print("| angle | coverage | precision | depth RMSE (px) | depth mean (px) | disparity error (px) "
          "| within 1 std | median std (px) | s/pair |")
    print("|---|---|---|---|---|---|---|---|---|")
    for angle, r in rows.items():
        print(f"| {angle} deg | {r['coverage']:.3f} | {r['precision']:.3f} | {r['depth_rmse']:.2f} | "
              f"{r['depth_mean']:.2f} | {r['disparity_mean']:.3f} | {r['within_1_std']:.2f} | "
              f"{r['median_std']:.2f} | {r['seconds_per_pair']:.1f} |")
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"args": vars(args), "rows": rows}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
