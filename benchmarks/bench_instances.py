"""Single dislocations inside pile-ups: instance precision/recall at IoU 0.5 and seed 001's length error.

Run::

    python benchmarks/bench_instances.py [--seeds 5] [--spacings 3,5,8,12] [--size 192] [--lines 6]
                                         [--first-seed 9100000] [--flips 1] [--option key=value ...]

Each case is a synthetic pile-up (:func:`napari_stereo_tem.synth.pileups.make_pileup`,
held-out test seeds): ``--lines`` nearly parallel dislocations ``spacing`` px
apart between two slip traces, Gaussian line width sigma 0.9-1.3 px, shot noise.
The shipped detector gives the probability map once per case; two ways of
turning it into instances are scored on the same map:

- ``ridges``: :func:`napari_stereo_tem.stereo.instances.line_instances` (sub-pixel
  ridges across the structure-tensor normal, linked by orientation);
- ``skeleton``: the previous instances, one per skeleton branch of the
  thresholded map of at least 8 px (:func:`~napari_stereo_tem.stereo.instances.skeleton_instances`).

Scores (:func:`napari_stereo_tem.evaluation.instances.score_instances`): every
found and true line becomes a band of the pixels within 1.5 px of its
centreline; found and true lines are paired one-to-one (Hungarian on the band
IoU) and a pair counts at IoU >= 0.5. ``precision`` = pairs / found lines,
``recall`` = pairs / true lines (pooled over the seeds), ``length error`` =
median over the pairs of ``|L_found - L_true| / L_true`` with ``L`` the
smoothing-spline length (seed 001's metric). Found lines include the
detector's pieces of slip traces (it calls parts of them dislocation); they
count as false instances for both methods.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _parse_option(text: str):
    key, _, value = text.partition("=")
    try:
        return key, float(value)
    except ValueError:
        return key, value


def main(argv=None) -> int:
    import torch

    from napari_stereo_tem.evaluation.instances import score_instances
    from napari_stereo_tem.evaluation.table import markdown_table
    from napari_stereo_tem.models.store import load_detector
    from napari_stereo_tem.stereo.detect import detect_lines
    from napari_stereo_tem.stereo.detection import normalise_image
    from napari_stereo_tem.stereo.instances import line_instances, skeleton_instances
    from napari_stereo_tem.synth.pileups import make_pileup

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=9_100_000)
    parser.add_argument("--spacings", default="3,5,8,12")
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--lines", type=int, default=6)
    parser.add_argument("--flips", type=int, default=1)
    parser.add_argument("--option", action="append", default=[], help="key=value for line_instances")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    options = dict(_parse_option(text) for text in args.option)

    model = load_detector()
    spacings = [float(v) for v in args.spacings.split(",")]
    rows = []
    t_start = time.perf_counter()
    for spacing in spacings:
        pooled = {"ridges": [], "skeleton": []}
        seconds = {"ridges": 0.0, "skeleton": 0.0}
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            pile = make_pileup(seed, shape=(args.size, args.size), n_lines=args.lines, spacing=spacing)
            detection = detect_lines(pile.image, model, flips=args.flips)
            threshold = float(options.get("threshold", detection.settings["threshold"]))
            image = normalise_image(pile.image, contrast=detection.settings["contrast"])
            t0 = time.perf_counter()
            found = {"ridges": line_instances(detection.probability[0], image=image,
                                              **{**options, "threshold": threshold})}
            seconds["ridges"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            found["skeleton"] = skeleton_instances(detection.labels == 1)
            seconds["skeleton"] += time.perf_counter() - t0
            for method, result in found.items():
                pooled[method].append(score_instances(result.lines, pile.curves, pile.image.shape))
        for method, scores in pooled.items():
            n_found = sum(s["n_found"] for s in scores)
            n_true = sum(s["n_true"] for s in scores)
            matched = sum(s["matched"] for s in scores)
            errors = [e for s in scores for e in s["length_errors"]]
            rows.append({"spacing (px)": spacing, "method": method, "true": n_true, "found": n_found,
                         "matched": matched, "precision": matched / max(n_found, 1),
                         "recall": matched / max(n_true, 1), "F1": 2 * matched / max(n_found + n_true, 1),
                         "length error (median)": float(np.median(errors)) if errors else float("nan"),
                         "length error (mean)": float(np.mean(errors)) if errors else float("nan"),
                         "ms per image": 1000 * seconds[method] / args.seeds})
    print(markdown_table(rows, digits=3))
    print(f"\n{args.seeds} pile-ups per spacing (seeds {args.first_seed}..{args.first_seed + args.seeds - 1}), "
          f"{args.lines} lines, {args.size}x{args.size} px, detector flips={args.flips}, options {options}; "
          f"{time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
