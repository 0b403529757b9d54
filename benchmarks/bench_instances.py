"""Single dislocations inside pile-ups: instance precision/recall at IoU 0.5 and seed 001's length error.

Run::

    python benchmarks/bench_instances.py [--seeds 5] [--spacings 3,5,8,12] [--size 192] [--lines 6]
                                         [--first-seed 9100000] [--flips 1] [--option key=value ...]
                                         [--figures DIR] [--real-dir ../shared/realdata/tem_images]
                                         [--weights default|VERSION|PATH]

``--figures DIR`` saves ``instances_pileups.png`` (the first seed of each
spacing: found instances of both methods, green where matched, red where not)
and, with ``--real-dir``, ``instances_real.png`` (the images of that folder,
each dislocation instance in its own colour).

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
count as false instances for both methods in ``precision``; ``on traces``
counts the unmatched found lines lying mostly (> 50 % of their band) within
2 px of a slip trace, and ``precision w/o traces`` leaves them out.
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


def _figures(args, model, spacings, options) -> None:
    from pathlib import Path

    from matplotlib.figure import Figure

    from napari_stereo_tem.evaluation.instances import score_instances
    from napari_stereo_tem.images import read_image
    from napari_stereo_tem.stereo.detect import detect_lines
    from napari_stereo_tem.stereo.instances import line_instances, skeleton_instances
    from napari_stereo_tem.synth.pileups import make_pileup

    out = Path(args.figures)
    out.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(3.2 * len(spacings), 6.6), layout="constrained")
    axes = figure.subplots(2, len(spacings), squeeze=False)
    for col, spacing in enumerate(spacings):
        pile = make_pileup(args.first_seed, shape=(args.size, args.size), n_lines=args.lines, spacing=spacing)
        detection = detect_lines(pile.image, model, flips=args.flips)
        found = {"ridges": line_instances(detection.probability[0], threshold=detection.settings["threshold"],
                                          scale=detection.settings["scale"], **options),
                 "skeleton": skeleton_instances(detection.labels == 1)}
        for row, (method, result) in enumerate(found.items()):
            score = score_instances(result.lines, pile.curves, pile.image.shape)
            matched = {i for i, _, _ in score["pairs"]}
            ax = axes[row, col]
            ax.imshow(pile.image, cmap="gray")
            for i, line in enumerate(result.lines):
                ax.plot(line[:, 0], line[:, 1], color="lime" if i in matched else "red", lw=1.0)
            ax.set_title(f"{spacing:g} px, {method}: {score['matched']}/{score['n_true']} lines, "
                         f"{score['n_found']} found", fontsize=8)
            ax.set_axis_off()
    figure.savefig(out / "instances_pileups.png", dpi=80)
    if not args.real_dir:
        return
    paths = sorted(p for p in Path(args.real_dir).iterdir() if p.suffix.lower() in (".jpg", ".png", ".tif"))
    n_cols = min(3, len(paths))
    n_rows = -(-len(paths) // n_cols)
    figure = Figure(figsize=(5.0 * n_cols, 5.3 * n_rows), layout="constrained")
    axes = figure.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax in axes[len(paths):]:
        ax.set_axis_off()
    rng = np.random.default_rng(1)
    for ax, path in zip(axes, paths):
        image = read_image(str(path)).data
        detection = detect_lines(image, model, flips=args.flips)
        found = line_instances(detection.probability[0], threshold=detection.settings["threshold"],
                               scale=detection.settings["scale"], **options)
        colours = rng.uniform(0.15, 1.0, (found.n_instances + 1, 3))
        ax.imshow(image, cmap="gray")
        ax.imshow(np.dstack([colours[found.labels], 0.55 * (found.labels > 0)]))
        for k, line in enumerate(found.lines):
            ax.plot(line[:, 0], line[:, 1], color=colours[k + 1], lw=0.7)
        ax.set_title(f"{path.name}: {found.n_instances} instances", fontsize=10)
        ax.set_axis_off()
    figure.savefig(out / "instances_real.png", dpi=100)


def main(argv=None) -> int:
    import torch
    from scipy import ndimage

    from napari_stereo_tem.evaluation.instances import line_bands, score_instances
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
    parser.add_argument("--figures", default=None, help="folder for the PNG figures")
    parser.add_argument("--real-dir", default=None, help="folder of real images for instances_real.png")
    parser.add_argument("--weights", default="default",
                        help="detector version or weights path (default: the selected version)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    options = dict(_parse_option(text) for text in args.option)

    model = load_detector(args.weights)
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
                                              **{"scale": detection.settings["scale"], **options,
                                                 "threshold": threshold})}
            seconds["ridges"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            found["skeleton"] = skeleton_instances(detection.labels == 1)
            seconds["skeleton"] += time.perf_counter() - t0
            traces = ndimage.binary_dilation(pile.mask == 2, iterations=2)
            for method, result in found.items():
                score = score_instances(result.lines, pile.curves, pile.image.shape)
                # found lines lying mostly on a slip trace (the detector's class 0 fires on parts of them)
                on_trace = [float(np.mean(traces[band])) > 0.5 if band.any() else False
                            for band in line_bands(result.lines, pile.image.shape)]
                matched_ids = {i for i, _, _ in score["pairs"]}
                score["n_trace"] = sum(t and i not in matched_ids for i, t in enumerate(on_trace))
                pooled[method].append(score)
        for method, scores in pooled.items():
            n_found = sum(s["n_found"] for s in scores)
            n_true = sum(s["n_true"] for s in scores)
            matched = sum(s["matched"] for s in scores)
            errors = [e for s in scores for e in s["length_errors"]]
            n_trace = sum(s["n_trace"] for s in scores)
            rows.append({"spacing (px)": spacing, "method": method, "true": n_true, "found": n_found,
                         "matched": matched, "precision": matched / max(n_found, 1),
                         "recall": matched / max(n_true, 1), "F1": 2 * matched / max(n_found + n_true, 1),
                         "on traces": n_trace, "precision w/o traces": matched / max(n_found - n_trace, 1),
                         "length error (median)": float(np.median(errors)) if errors else float("nan"),
                         "length error (mean)": float(np.mean(errors)) if errors else float("nan"),
                         "ms per image": 1000 * seconds[method] / args.seeds})
    if args.figures:
        _figures(args, model, spacings, options)
    print(markdown_table(rows, digits=3))
    print(f"\n{args.seeds} pile-ups per spacing (seeds {args.first_seed}..{args.first_seed + args.seeds - 1}), "
          f"{args.lines} lines, {args.size}x{args.size} px, detector {getattr(model, 'version', args.weights)} "
          f"flips={args.flips}, options {options}; "
          f"{time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
