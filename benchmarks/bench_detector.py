"""Accuracy and speed of the dislocation detector on held-out synthetic images.

Run::

    python benchmarks/bench_detector.py [--version default] [--n-test 100] [--n-plain 20] [--size 256]

Prints, for images made from ``TEST_SEEDS`` (never used in training):

- centreline precision/recall/F1 with a 2 px tolerance and clDice (raw
  threshold 0.5, and the post-processing stored in the weights' metadata,
  tuned on VAL_SEEDS) on the
  standard (Perlin background) images, on images with a plain background
  (bend contours and shot noise only), and on dark-field images;
- the same on images of the wide micrograph generator
  (:mod:`napari_stereo_tem.synth.micrograph`, seeds of ``TEST_SEEDS``;
  pixels too faint to call count neither way);
- the time of ``predict_probability`` on a 512x512 image with 1 and 2 CPU
  threads, with the contrast and resize factor decided automatically (the
  default) and given (on a shared machine, 2 threads suffer when another
  process holds a core: compare with 1 thread).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def _stereo_left(seed, size, **synth_kwargs):
    from napari_stereo_tem.synth import make_stereo_pair

    pair = make_stereo_pair(int(seed), shape=(size, size), **synth_kwargs)
    return pair.left, pair.mask_left


def _micrograph(seed, size):
    from napari_stereo_tem.synth.micrograph import make_micrograph

    micro = make_micrograph(int(seed), shape=(size, size))
    return micro.image, micro.mask


def evaluate(model, seeds, *, size, settings, source=_stereo_left, **synth_kwargs) -> list[dict]:
    """Scores of each post-processing setting ``(threshold, min_size)`` on the images of ``seeds``."""
    from napari_stereo_tem.stereo.detection import predict_probability, probability_to_labels
    from napari_stereo_tem.evaluation.metrics import centreline_scores, cl_dice
    from napari_stereo_tem.training.detector import faint_zone

    acc = [{"f1": [], "cl": [], "tp_pred": 0, "n_pred": 0, "tp_true": 0, "n_true": 0} for _ in settings]
    for seed in seeds:
        image, mask = source(seed, size, **synth_kwargs)
        prob = predict_probability(image, model)
        true = mask == 1
        ignore = faint_zone(mask)
        for a, (threshold, min_size) in zip(acc, settings):
            pred = probability_to_labels(prob, threshold=threshold, min_size=min_size) == 1
            scores = centreline_scores(pred, true, tolerance=2.0, ignore=ignore)
            a["f1"].append(scores["f1"])
            a["cl"].append(cl_dice(pred & ~ignore, true))
            for key in ("tp_pred", "n_pred", "tp_true", "n_true"):
                a[key] += scores[key]
    out = []
    for a in acc:
        precision = a["tp_pred"] / max(a["n_pred"], 1)
        recall = a["tp_true"] / max(a["n_true"], 1)
        out.append({"n": len(a["f1"]), "f1_mean": float(np.mean(a["f1"])), "f1_median": float(np.median(a["f1"])),
                    "f1_pooled": 2 * precision * recall / max(precision + recall, 1e-12),
                    "precision_pooled": precision, "recall_pooled": recall,
                    "cldice_mean": float(np.mean(a["cl"]))})
    return out


def time_inference(model, *, size=512, threads=2, repeats=5, **options) -> float:
    from napari_stereo_tem.stereo.detection import predict_probability
    from napari_stereo_tem.synth.micrograph import make_micrograph

    image = make_micrograph(9_999_999, shape=(size, size)).image
    predict_probability(image, model, n_threads=threads, **options)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        predict_probability(image, model, n_threads=threads, **options)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    from napari_stereo_tem.synth.seeds import TEST_SEEDS
    from napari_stereo_tem.models.store import load_detector

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", default="default")
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--n-plain", type=int, default=20)
    parser.add_argument("--n-dark", type=int, default=20)
    parser.add_argument("--n-wide", type=int, default=50)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    model = load_detector(args.version)
    meta = model.metadata
    print(f"model {model.version}: {meta.get('command')}")
    averaged = meta.get("averaged")
    if averaged:  # stereo-tem train average: the two trained parents
        print(f"  weights averaged: {1 - averaged['weight_of_tuned']:g} x {averaged['base']} + "
              f"{averaged['weight_of_tuned']:g} x {averaged['tuned']}")
    for name, record in ([("base", averaged["base_metadata"]), ("fine-tuned", averaged["tuned_metadata"])]
                         if averaged else [("", meta)]):
        print(f"  {name + ' ' if name else ''}trained {record.get('steps')} steps, {record.get('wall_s', 0):.0f} s "
              f"on {record.get('device')} ({record.get('torch_threads')} thread(s)); validation F1 "
              f"{record.get('metric')}")
    if meta.get("wall_note"):
        print(f"  {meta['wall_note']}")
    post = meta.get("postprocess", {})
    settings = [(0.5, 0)]
    if post:
        settings.append((float(post["threshold"]), int(post["min_size"])))
    sets = [("standard (Perlin)", list(TEST_SEEDS[: args.n_test]), {}),
            ("plain background", list(TEST_SEEDS[500_000: 500_000 + args.n_plain]), {"background": "plain"})]
    if args.n_dark:
        sets.append(("dark field", list(TEST_SEEDS[700_000: 700_000 + args.n_dark]), {"dark_field": True}))
    if args.n_wide:
        sets.append(("wide generator", list(TEST_SEEDS[800_000: 800_000 + args.n_wide]), {"source": _micrograph}))
    print(f"held-out synthetic images from TEST_SEEDS ({args.size}x{args.size}, left view, tolerance 2 px):")
    for name, seeds, kwargs in sets:
        for (threshold, min_size), r in zip(settings, evaluate(model, seeds, size=args.size, settings=settings,
                                                               **kwargs)):
            print(f"  {name:<18} threshold {threshold:.2f} min_size {min_size:<3} n={r['n']:<4} "
                  f"F1 mean {r['f1_mean']:.3f} (median {r['f1_median']:.3f}, pooled {r['f1_pooled']:.3f}: "
                  f"P {r['precision_pooled']:.3f} R {r['recall_pooled']:.3f})  clDice mean {r['cldice_mean']:.3f}")
    for threads in (1, 2):
        for label, options in (("contrast and resize decided", {}),
                               ("contrast and resize given", {"contrast": "bright_field", "scale": None})):
            seconds = time_inference(model, threads=threads, **options)
            print(f"inference 512x512 (predict_probability, {label}) on {threads} CPU thread(s): "
                  f"{seconds:.3f} s (median of 5)")
    seconds = time_inference(model, size=2048, threads=1, repeats=1, contrast="bright_field", scale=None)
    print(f"inference 2048x2048 (tiles of 512, overlap 64) on 1 CPU thread: {seconds:.2f} s")


if __name__ == "__main__":
    main()
