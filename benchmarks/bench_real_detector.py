"""The dislocation detector on real micrographs, scored against hand-annotated centrelines.

Run::

    python benchmarks/bench_real_detector.py [--weights default|VERSION|PATH] [--tag NAME]
        [--contrast auto] [--overlays DIR] [--detect-option key=value ...] [--downscale 1]

For every annotation in ``tests/data/real_tem`` (images in ``../shared/realdata/tem_images``)
the detector runs as a user runs it::

    prob = predict_probability(image, model, contrast=..., all_classes=True)
    labels = probability_to_labels(prob, **label_settings(model))
    lines = skeleton_polylines(labels == 1)

and :func:`napari_stereo_tem.evaluation.real_annotations.score_centrelines`
scores class 1 (``mask``: the class-1 pixels, skeletonised by the metric;
``lines``: the pruned skeleton polylines a user gets) with a 2 px tolerance;
predictions inside the annotation's ignore regions count neither way. It
prints one row per image (precision, recall and F1 of the mask, F1 of the
lines, seconds of detection) and the means.

``--overlays DIR`` saves, for every image in the image folder (annotated or
not), ``real_<stem>_<tag>.png``: the image in grey, the predicted class-1
skeleton in red, class 2 in blue, the annotated centrelines in green and the
ignore regions' outlines in dark yellow. ``--detect-option key=value`` (repeatable)
is passed to ``predict_probability`` as a keyword (``threshold`` and ``min_size``
to ``probability_to_labels`` instead) (values read as JSON when they
parse, else as text), so options added to the detector can be benchmarked.
``--downscale 2`` is a diagnostic (not what a user does): detection on the image
shrunk twofold, labels enlarged back; it shows how much of the score is a
matter of scale.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ANNOTATIONS = REPO / "tests" / "data" / "real_tem"
IMAGES = REPO.parent / "shared" / "realdata" / "tem_images"
MAX_OVERLAY_WIDTH = 1024


def parse_options(pairs: list[str]) -> dict:
    """``["key=value", ...]`` -> keyword arguments; values are JSON when they parse, else strings."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--detect-option needs key=value, got {pair!r}")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def read_grey(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise SystemExit(f"cannot read {path}: is ../shared/realdata beside the repository?")
    return image


def detect(image: np.ndarray, model, *, contrast: str, options: dict, downscale: float = 1.0
           ) -> tuple[np.ndarray, float]:
    """Labels (0 background, 1 dislocation, 2 distractor) as a user gets them, and the seconds taken.

    ``downscale`` > 1 (a diagnostic, not what a user does) shrinks the image
    by that factor before detection and enlarges the labels back (nearest).
    """
    import cv2

    from napari_stereo_tem.stereo.detection import label_settings, predict_probability, probability_to_labels

    label_keys = ("threshold", "min_size")  # these go to probability_to_labels
    label_options = {**label_settings(model), **{k: v for k, v in options.items() if k in label_keys}}
    options = {k: v for k, v in options.items() if k not in label_keys}
    kwargs = {"contrast": contrast, "all_classes": getattr(model, "n_classes", 1) > 1, **options}
    start = time.perf_counter()
    small = image
    if downscale != 1.0:
        small = cv2.resize(image, None, fx=1 / downscale, fy=1 / downscale, interpolation=cv2.INTER_AREA)
    prob = predict_probability(small, model, **kwargs)
    labels = probability_to_labels(prob, **label_options)
    if downscale != 1.0:
        labels = cv2.resize(labels, image.shape[::-1], interpolation=cv2.INTER_NEAREST)
    return labels, time.perf_counter() - start


def lines_mask(labels: np.ndarray) -> np.ndarray:
    """The class-1 skeleton polylines (spurs pruned) drawn as 1-px lines."""
    import cv2

    from napari_stereo_tem.stereo.detection import skeleton_polylines

    out = np.zeros(labels.shape, np.uint8)
    for line in skeleton_polylines(labels == 1):
        cv2.polylines(out, [np.round(line).astype(np.int32).reshape(-1, 1, 2)], False, 1, thickness=1)
    return out.astype(bool)


def overlay(image: np.ndarray, labels: np.ndarray, annotation=None) -> np.ndarray:
    """An RGB picture: image grey, class-1 skeleton red, class-2 skeleton blue, annotation green."""
    import cv2
    from skimage.morphology import skeletonize

    from napari_stereo_tem.evaluation.real_annotations import rasterise

    grey = cv2.normalize(image, None, 40, 230, cv2.NORM_MINMAX).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    if annotation is not None:
        true, ignore = rasterise(annotation, image.shape)
        edge = ignore & ~cv2.erode(ignore.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        rgb[edge] = (150, 130, 0)
        rgb[cv2.dilate(true.astype(np.uint8), np.ones((2, 2), np.uint8)).astype(bool)] = (0, 200, 0)
    rgb[skeletonize(labels == 2)] = (40, 90, 255)
    rgb[skeletonize(labels == 1)] = (255, 0, 0)
    if rgb.shape[1] > MAX_OVERLAY_WIDTH:
        scale = MAX_OVERLAY_WIDTH / rgb.shape[1]
        rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return rgb


def contrast_used(image: np.ndarray, contrast: str) -> str:
    """What ``contrast="auto"`` decides for ``image`` (the name otherwise)."""
    from napari_stereo_tem.stereo.detection import normalise_image

    if contrast != "auto":
        return contrast
    same = np.array_equal(normalise_image(image, contrast="auto"), normalise_image(image, contrast="bright_field"))
    return "auto:bright" if same else "auto:DARK"


def run(model, *, contrast: str, options: dict, tag: str, overlays: Path | None, annotations: Path,
        images: Path, downscale: float = 1.0) -> list[dict]:
    """Score every annotated image; save overlays of every image when ``overlays`` is given."""
    import cv2

    from napari_stereo_tem.evaluation.real_annotations import load_annotation, score_centrelines

    by_stem = {a.stem: a for a in map(load_annotation, sorted(annotations.glob("*.json")))}
    if not by_stem:
        raise SystemExit(f"no annotation files in {annotations}")
    stems = sorted(by_stem)
    if overlays is not None:
        overlays.mkdir(parents=True, exist_ok=True)
        stems = sorted(set(stems) | {p.stem for p in images.glob("*.jpg")})
    rows = []
    for stem in stems:
        annotation = by_stem.get(stem)
        image = read_grey(images / (annotation.image if annotation else f"{stem}.jpg"))
        labels, seconds = detect(image, model, contrast=contrast, options=options, downscale=downscale)
        if overlays is not None:
            path = overlays / f"real_{stem}_{tag}.png"
            cv2.imwrite(str(path), cv2.cvtColor(overlay(image, labels, annotation), cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if annotation is None:
            continue
        mask = score_centrelines(labels == 1, annotation)
        lines = score_centrelines(lines_mask(labels), annotation)
        rows.append({"image": stem, "contrast": contrast_used(image, options.get("contrast", contrast)), "precision": mask["precision"],
                     "recall": mask["recall"], "f1": mask["f1"], "f1_lines": lines["f1"],
                     "class2_share": float(np.mean(labels == 2)), "seconds": seconds})
    return rows


def print_table(rows: list[dict], *, title: str) -> None:
    print(f"\n{title}\n")
    print("| image | contrast | precision | recall | F1 | F1 lines | class-2 px % | s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['image']} | {r['contrast']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | "
              f"{r['f1_lines']:.3f} | {100 * r['class2_share']:.1f} | {r['seconds']:.1f} |")
    mean = {k: float(np.mean([r[k] for r in rows])) for k in
            ("precision", "recall", "f1", "f1_lines", "class2_share", "seconds")}
    print(f"| **mean** ({len(rows)} images) | | {mean['precision']:.3f} | {mean['recall']:.3f} | "
          f"**{mean['f1']:.3f}** | {mean['f1_lines']:.3f} | {100 * mean['class2_share']:.1f} | {mean['seconds']:.1f} |")


def main(argv=None) -> None:
    import torch

    from napari_stereo_tem.models.store import load_detector

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="default", help="detector version name or weights path")
    parser.add_argument("--tag", default=None, help="name in the overlay files (default: the version)")
    parser.add_argument("--contrast", default="auto", choices=("auto", "bright_field", "dark_field"))
    parser.add_argument("--overlays", type=Path, default=None, help="folder for real_<stem>_<tag>.png")
    parser.add_argument("--detect-option", action="append", default=[], metavar="KEY=VALUE",
                        help="extra keyword for predict_probability (repeatable)")
    parser.add_argument("--annotations", type=Path, default=ANNOTATIONS)
    parser.add_argument("--images", type=Path, default=IMAGES)
    parser.add_argument("--downscale", type=float, default=1.0,
                        help="diagnostic: shrink images by this factor before detection (1: as a user runs it)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    model = load_detector(args.weights)
    tag = args.tag or model.version
    options = parse_options(args.detect_option)
    rows = run(model, contrast=args.contrast, options=options, tag=tag, overlays=args.overlays,
               annotations=args.annotations, images=args.images, downscale=args.downscale)
    print_table(rows, title=f"detector {model.version} (tag {tag}), contrast={args.contrast}, options={options}, "
                            f"downscale={args.downscale}, "
                            f"2 px tolerance, ignore regions neutral")
    if args.json is not None:
        args.json.write_text(json.dumps({"version": model.version, "tag": tag, "contrast": args.contrast,
                                         "options": options, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
