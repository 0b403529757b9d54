"""Does fine-tuning on a few hand-annotated real micrographs help on *other* real micrographs?

Run::

    python benchmarks/bench_real_finetune.py [--steps 300] [--synth-fraction 0.5] [--folds all]

Leave-one-image-out over the annotations in ``tests/data/real_tem``: for every
annotated image, the shipped detector is fine-tuned on the *other* annotated
images (plus synthetic scenes of the wide generator, so that it does not forget
them) and scored on the held-out one, exactly as ``bench_real_detector.py``
scores (``predict_probability`` with contrast and resize decided automatically,
centreline F1 with a 2 px tolerance, ignore regions neutral). The held-out image
is never seen in its fold, so the mean over the folds estimates what fine-tuning
on a handful of real images buys on a real image it has not seen.

Training targets for a real image: the image as the base detector sees it
(its automatic contrast and resize factor), the annotated centrelines drawn
3 px wide at that scale as class 1, a 2 px band around them and the
annotation's ignore regions marked ``MASK_IGNORE`` (no loss), everything else
background.

The synthetic share of each batch comes from the stereo generator the shipped
detector was trained on (``--stereo-share 1``, default) or partly from the wide
generator.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench_real_detector import ANNOTATIONS, IMAGES, detect, lines_mask, read_grey

def real_sample(image: np.ndarray, annotation, model) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(normalised image at the detector's scale, mask, settings)`` of one annotated real image."""
    import cv2

    from napari_stereo_tem.evaluation.real_annotations import rasterise
    from napari_stereo_tem.stereo.detection import choose_settings, normalise_image
    from napari_stereo_tem.synth.micrograph import MASK_IGNORE

    settings = choose_settings(image, model)
    norm = normalise_image(image, contrast=settings.contrast)
    rows, cols = norm.shape
    size = (max(8, round(cols * settings.scale)), max(8, round(rows * settings.scale)))
    if settings.scale != 1.0:
        norm = cv2.resize(norm, size, interpolation=cv2.INTER_AREA)
    _, ignore = rasterise(annotation, image.shape)
    ignore = cv2.resize(ignore.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    lines = np.zeros(norm.shape, np.uint8)
    for line in annotation.dislocations:
        pts = np.round(line * settings.scale).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(lines, [pts], False, 1, thickness=3)
    band = cv2.dilate(lines, np.ones((5, 5), np.uint8)).astype(bool) & ~lines.astype(bool)
    mask = lines.copy()
    mask[band | (ignore & (lines == 0))] = MASK_IGNORE
    multiple = 8
    r8, c8 = norm.shape[0] // multiple * multiple, norm.shape[1] // multiple * multiple
    return norm[:r8, :c8].astype(np.float32), mask[:r8, :c8], settings.as_dict()


def synthetic_pool(n_scenes: int, *, seed: int, size: int = 256, stereo_share: float = 1.0) -> list:
    """Synthetic views of the train split (stereo scenes, and wide-generator micrographs for
    ``stereo_share`` < 1), normalised as at inference."""
    from napari_stereo_tem.training.detector_data import _normalised_views, scene_plan

    pool = []
    for k in range(n_scenes):
        scene_seed, kind = scene_plan(seed, k, stereo_share=stereo_share)
        pool.extend(_normalised_views(scene_seed, kind, size))
    return pool


def finetune(real: list, synth: list, *, steps: int, seed: int, synth_fraction: float, lr: float,
             batch_size: int, crop: int, pos_weight: float, checkpoint: Path):
    """The shipped detector fine-tuned on ``real`` (+ ``synth``); returns the model (eval mode)."""
    import torch

    from napari_stereo_tem.models.store import load_detector
    from napari_stereo_tem.progress import drive
    from napari_stereo_tem.training.detector import detector_batch_loss
    from napari_stereo_tem.training.detector_data import augment_sample
    from napari_stereo_tem.training.loop import Trainer

    torch.manual_seed(seed)
    model = load_detector("default")
    weight = torch.full((model.n_classes, 1, 1), float(pos_weight))
    # real images are drawn in proportion to their area, so a big image is not under-sampled
    areas = np.array([img.size for img, _ in real], dtype=float)
    p_real = areas / areas.sum()

    def batch_loss(step, rng):
        images, masks = [], []
        for _ in range(batch_size):
            if synth and rng.random() < synth_fraction:
                image, mask = synth[int(rng.integers(len(synth)))]
            else:
                image, mask = real[int(rng.choice(len(real), p=p_real))]
            a, b = augment_sample(image, mask, rng, crop=crop, invert_prob=0.0)
            images.append(a)
            masks.append(b)
        return detector_batch_loss(model, np.stack(images), np.stack(masks), weight)

    trainer = Trainer(model, steps=steps, lr=lr, seed=seed, checkpoint=checkpoint,
                      schedule={"max_warmup": 20, "floor": 0.1})
    result = drive(trainer.run(batch_loss, stage="fine-tune detector (real)", n_threads=1))
    if checkpoint.exists():
        checkpoint.unlink()
    model.eval()
    return model, result


def score(model, image, annotation, options=None) -> dict:
    from napari_stereo_tem.evaluation.real_annotations import score_centrelines

    labels, seconds = detect(image, model, contrast="auto", options=dict(options or {}))
    mask = score_centrelines(labels == 1, annotation)
    lines = score_centrelines(lines_mask(labels), annotation)
    return {"precision": mask["precision"], "recall": mask["recall"], "f1": mask["f1"], "f1_lines": lines["f1"],
            "seconds": seconds}


def main() -> None:
    import torch

    from napari_stereo_tem.evaluation.real_annotations import load_annotation
    from napari_stereo_tem.models.store import load_detector

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=6)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--pos-weight", type=float, default=1.5)
    parser.add_argument("--synth-fraction", type=float, default=0.5)
    parser.add_argument("--n-synth", type=int, default=24, help="synthetic scenes held in memory")
    parser.add_argument("--stereo-share", type=float, default=1.0,
                        help="share of the synthetic scenes from the stereo generator (the rest: wide generator)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--folds", default="all", help="'all' or comma-separated image stems to hold out")
    parser.add_argument("--json", type=Path, default=None, help="write the per-fold figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)

    annotations = {a.stem: a for a in map(load_annotation, sorted(ANNOTATIONS.glob("*.json")))}
    images = {stem: read_grey(IMAGES / a.image) for stem, a in annotations.items()}
    base = load_detector("default")
    start = time.perf_counter()
    samples = {stem: real_sample(images[stem], annotations[stem], base) for stem in annotations}
    synth = synthetic_pool(args.n_synth, seed=args.seed, stereo_share=args.stereo_share)
    print(f"{len(samples)} annotated real images, {len(synth)} synthetic views; "
          f"{args.steps} steps x {args.batch_size} crops of {args.crop}, synthetic share {args.synth_fraction}")
    for stem, (norm, mask, settings) in samples.items():
        print(f"  {stem}: {settings['contrast']} x{settings['scale']:.2f} -> {norm.shape[1]}x{norm.shape[0]}, "
              f"line px {int((mask == 1).sum())}")

    folds = sorted(annotations) if args.folds == "all" else args.folds.split(",")
    rows = []
    for held in folds:
        train = [samples[s][:2] for s in sorted(samples) if s != held]
        t0 = time.perf_counter()
        model, _ = finetune(train, synth, steps=args.steps, seed=args.seed, synth_fraction=args.synth_fraction,
                            lr=args.lr, batch_size=args.batch_size, crop=args.crop, pos_weight=args.pos_weight,
                            checkpoint=Path(f"/tmp/real_finetune_{held}.ckpt.pt"))
        before = score(base, images[held], annotations[held])
        after = score(model, images[held], annotations[held])
        settings = samples[held][2]
        fixed = score(model, images[held], annotations[held],
                      {"scale": settings["scale"], "contrast": settings["contrast"]})
        rows.append({"held_out": held, "before": before, "after": after, "after_base_settings": fixed,
                     "train_s": time.perf_counter() - t0})
        print(f"  held out {held}: F1 {before['f1']:.3f} -> {after['f1']:.3f} "
              f"(P {before['precision']:.3f} -> {after['precision']:.3f}, R {before['recall']:.3f} -> "
              f"{after['recall']:.3f}); with the shipped detector's contrast and resize: {fixed['f1']:.3f}; "
              f"{rows[-1]['train_s']:.0f} s", flush=True)

    print("\n| held-out image | F1 shipped | F1 fine-tuned on the others | P | R |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['held_out']} | {r['before']['f1']:.3f} | {r['after']['f1']:.3f} | "
              f"{r['after']['precision']:.3f} | {r['after']['recall']:.3f} |")
    mean_b = float(np.mean([r["before"]["f1"] for r in rows]))
    mean_a = float(np.mean([r["after"]["f1"] for r in rows]))
    print(f"| **mean** ({len(rows)} folds) | {mean_b:.3f} | **{mean_a:.3f}** | | |")
    print(f"total {time.perf_counter() - start:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "folds": rows}, indent=1))


if __name__ == "__main__":
    main()
