"""How often the detector's automatic settings read an image the right way round (bright or dark lines).

:func:`napari_stereo_tem.stereo.detection.choose_settings` decides the polarity and the resize factor
before every detection. This counts its right polarity decisions on images whose polarity is known:

- ``real``: the five real micrographs in ``../shared/realdata/tem_images`` (bright field, dark lines);
- ``micrograph``: the wide micrograph generator (``make_micrograph``; lines of either polarity,
  widths 0.6-4.5 px, slip traces, boundaries), 384 px, scenes with at least 200 line pixels;
- ``stereo``: left views of the stereo generator, alternately bright and dark field;
- ``fringedW``: left views of the fringed renderer (:mod:`napari_stereo_tem.synth.fringed`; dark core,
  faint bright fringe, bend contour) with lines ``W`` times wider, and every other one inverted
  (bright lines with a dark fringe).

Run::

    python benchmarks/bench_contrast.py [--split test|val]

It prints the right decisions per kind and, for each wrong one, the kind, the true polarity, the
factor chosen and the measured ridge sigma.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO.parent / "shared" / "realdata" / "tem_images"
WIDTHS = (1.0, 1.5, 2.0)


def images(split: str):
    """``(kind, true polarity, image)`` for every image of the benchmark."""
    import cv2

    from napari_stereo_tem.synth import make_stereo_pair
    from napari_stereo_tem.synth.fringed import fringed_views
    from napari_stereo_tem.synth.micrograph import make_micrograph
    from napari_stereo_tem.synth.seeds import draw_seeds

    base = 5_000_000 if split == "val" else 9_000_000
    for path in sorted(IMAGES.glob("*.jpg")):
        yield "real", "bright_field", cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    for i in range(40):
        micro = make_micrograph(base + 7000 + i, shape=(384, 384))
        if (micro.mask == 1).sum() > 200:
            yield "micrograph", "dark_field" if micro.bright_lines else "bright_field", micro.image
    for i in range(8):
        sample = make_stereo_pair(base + 8000 + i, shape=(384, 384), dark_field=bool(i % 2))
        if (sample.mask_left == 1).sum() > 50:
            yield "stereo", "dark_field" if i % 2 else "bright_field", sample.left
    samples = []
    for seed in draw_seeds(split, 28, seed=21):
        sample = make_stereo_pair(int(seed), shape=(384, 384), stereo_angle_deg=8.0)
        if sample.lines_3d and (sample.mask_left == 1).sum() > 50:
            samples.append(sample)
            if len(samples) == 6:
                break
    for width in WIDTHS:
        for k, sample in enumerate(samples):
            image = fringed_views(sample, 8.0, seed=8000 + k, width_scale=width)[0]
            yield f"fringed{width:g}", "bright_field", image
            if k % 2:
                yield f"fringed{width:g}", "dark_field", image.max() - image


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="test", choices=["test", "val"])
    args = parser.parse_args(argv)
    from napari_stereo_tem.models.store import load_detector
    from napari_stereo_tem.stereo.detection import choose_settings

    detector = load_detector()
    right, total, wrong = defaultdict(int), defaultdict(int), []
    t0 = time.perf_counter()
    for kind, truth, image in images(args.split):
        settings = choose_settings(image, detector)
        total[kind] += 1
        right[kind] += settings.contrast == truth
        if settings.contrast != truth:
            wrong.append(f"{kind} {truth}: read as {settings.contrast} at factor {settings.scale:g} "
                         f"(ridge sigma {np.nan_to_num(settings.ridge_sigma or 0):.2f} px)")
    print(f"Polarity read right by choose_settings ({detector.version}, {args.split} seeds):\n")
    print("| kind | right |\n|---|---|")
    for kind in total:
        print(f"| {kind} | {right[kind]} / {total[kind]} |")
    print(f"| **all** | **{sum(right.values())} / {sum(total.values())}** |\n")
    for line in wrong:
        print(f"- wrong: {line}")
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
