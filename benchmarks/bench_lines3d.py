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


def score(*, n, size, angles=ANGLES, line_model=None, threads=2, split="test", seed=21):
    from napari_stereo_tem.evaluation import line_set_distance
    from napari_stereo_tem.models.store import load_detector
    from napari_stereo_tem.stereo.matching import load_matcher
    from napari_stereo_tem.stereo.pipeline import reconstruct

    det, matcher = load_detector(), load_matcher()
    options = {} if line_model is None else {"line_model": line_model}
    rows = {}
    for angle in angles:
        acc = {"coverage": [], "precision": [], "dz": [], "std": [], "seconds": []}
        for sample in pairs(n, angle, size, seed=seed, split=split):
            t0 = time.perf_counter()
            rec = reconstruct(sample.left, sample.right, stereo_angle_deg=float(angle), rectify=False,
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
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    rows = score(n=args.n, size=args.size, line_model=args.line_model, threads=args.threads, split=args.split)
    print(f"3D lines on held-out pairs ({args.split} seeds), {args.n} pairs of {args.size}x{args.size} per angle, "
          f"line model {args.line_model or 'default'}; 3 px tolerance, one depth offset per pair removed\n")
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
