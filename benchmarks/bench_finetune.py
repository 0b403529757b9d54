"""Fine-tuning the shipped detector on a few corrected images of a "new material".

Run::

    python benchmarks/bench_finetune.py [--steps 300] [--n-set 4] [--n-test 8] [--dose 15] [--threads 1]

The "material" is synthetic images at a very low dose (``--dose`` electrons per
pixel), where the shipped detector is weak. ``--n-set`` such images (train
seeds) are "corrected" (their true masks stand for the user's corrections) and
added to a training set in a temporary folder; the detector is fine-tuned on
that set mixed half and half with ordinary synthetic scenes. Prints, before and
after: the centreline F1 (2 px) on ``--n-test`` held-out images (``TEST_SEEDS``)
of the new material and of ordinary images (to see that nothing is forgotten),
the loss at the start and the end, and the time per step.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch


def f1_on(model, seeds, **style) -> float:
    from napari_stereo_tem.stereo.detection import predict_probability
    from napari_stereo_tem.evaluation.metrics import centreline_scores
    from napari_stereo_tem.synth import make_stereo_pair

    scores = []
    for seed in seeds:
        pair = make_stereo_pair(int(seed), shape=(256, 256), **style)
        prob = predict_probability(pair.left, model)
        scores.append(centreline_scores(prob >= 0.5, pair.mask_left == 1)["f1"])
    return float(np.mean(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--n-set", type=int, default=4)
    parser.add_argument("--n-test", type=int, default=8)
    parser.add_argument("--dose", type=float, default=15.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--init", default="default")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["NAPARI_STEREO_TEM_MODELS"] = os.path.join(tmp, "models")  # keep the user's folder clean
        from napari_stereo_tem.progress import drive
        from napari_stereo_tem.synth import make_stereo_pair
        from napari_stereo_tem.synth.seeds import draw_seeds
        from napari_stereo_tem.training.finetune import finetune_detector
        from napari_stereo_tem.models.training_set import add_entry
        from napari_stereo_tem.models.store import load_detector

        style = {"dose": args.dose}
        set_dir = os.path.join(tmp, "set")
        for seed in draw_seeds("train", args.n_set, seed=99):
            pair = make_stereo_pair(int(seed), shape=(256, 256), **style)
            add_entry(set_dir, pair.left, pair.mask_left, right=pair.right, mask_right=pair.mask_right,
                      source=f"synthetic seed {seed}, dose {args.dose}")
        test_seeds = draw_seeds("test", args.n_test, seed=5)
        before = load_detector(args.init)
        f1_new_0, f1_std_0 = f1_on(before, test_seeds, **style), f1_on(before, test_seeds)
        t0 = time.perf_counter()
        times = []

        def tick(report):
            if report.stage.startswith("fine-tune"):
                times.append(time.perf_counter())

        result = drive(finetune_detector(set_dir, name="bench", init=args.init, steps=args.steps,
                                         synth_fraction=0.5, n_threads=args.threads), tick)
        wall = time.perf_counter() - t0
        after = load_detector(result["version"])
        f1_new_1, f1_std_1 = f1_on(after, test_seeds, **style), f1_on(after, test_seeds)
    losses = result["losses"]
    per_step = np.diff(times).mean() if len(times) > 1 else float("nan")
    print(f"fine-tune detector ({args.init}) on {args.n_set} corrected dose-{args.dose:g} images + synthetic, "
          f"{args.steps} steps, batch 4, crop 96, {args.threads} thread(s)")
    print(f"loss (mean of first/last 20 steps): {np.mean(losses[:20]):.4f} -> {np.mean(losses[-20:]):.4f}")
    print(f"centreline F1 (2 px), {args.n_test} held-out dose-{args.dose:g} images: {f1_new_0:.3f} -> {f1_new_1:.3f}")
    print(f"centreline F1 (2 px), {args.n_test} held-out ordinary images:      {f1_std_0:.3f} -> {f1_std_1:.3f}")
    print(f"time per step {per_step * 1e3:.0f} ms; whole run {wall:.1f} s (incl. synthetic scenes and saving)")


if __name__ == "__main__":
    main()
