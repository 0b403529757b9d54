"""Detection on real micrographs turned in their frame: black corners, the same lines.

Aligned tilt series and drift-corrected stacks are exported rotated, with flat black corners.
Each real micrograph in ``../shared/realdata/tem_images`` is turned by 10 and 25 degrees about its
centre (bilinear, black outside) and detected as a user would (``detect_lines``, automatic contrast
and resize). Per image and angle it prints:

- ``found``: share of the centreline of the lines found in the unturned image (turned the same
  way) that the turned image's lines cover within 2 px, away from the corners (10 px inside);
- ``at the corners``: centreline px found within 10 px of the field's edge or outside it, less
  what the unturned image's lines give there (the corners' edges drawn as lines).

Run::

    python benchmarks/bench_real_rotated.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO.parent / "shared" / "realdata" / "tem_images"
ANGLES = (10.0, 25.0)


def main() -> int:
    import cv2
    from skimage.morphology import skeletonize

    from napari_stereo_tem.models.store import load_detector
    from napari_stereo_tem.stereo.detect import detect_lines

    paths = sorted(IMAGES.glob("*.jpg"))
    if not paths:
        raise SystemExit(f"no images in {IMAGES}: is ../shared/realdata beside the repository?")
    model = load_detector()
    t0 = time.perf_counter()
    print("| image | angle | factor as is / turned | found | at the corners (px) |\n|---|---|---|---|---|")
    found_all, corners_all = [], 0
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        rows, cols = image.shape
        plain = detect_lines(image, model)
        for angle in ANGLES:
            turn = cv2.getRotationMatrix2D(((cols - 1) / 2, (rows - 1) / 2), angle, 1.0)
            turned = cv2.warpAffine(image, turn, (cols, rows), flags=cv2.INTER_LINEAR, borderValue=0)
            field = cv2.warpAffine(np.ones_like(image), turn, (cols, rows), borderValue=0).astype(bool)
            inner = cv2.erode(field.astype(np.uint8), np.ones((21, 21), np.uint8)).astype(bool)
            result = detect_lines(turned, model)
            expected = cv2.warpAffine((plain.labels == 1).astype(np.uint8), turn, (cols, rows),
                                      flags=cv2.INTER_NEAREST).astype(bool)
            want, got = skeletonize(expected), skeletonize(result.labels == 1)
            near_got = cv2.dilate((got & inner).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
            found = float((near_got & want & inner).sum() / max((want & inner).sum(), 1))
            corners = int((got & ~inner).sum() - (want & ~inner & field).sum())
            found_all.append(found)
            corners_all += corners
            print(f"| {path.stem} | {angle:g} | {plain.settings['scale']:g} / {result.settings['scale']:g} | "
                  f"{found:.3f} | {corners} |", flush=True)
    print(f"\nmean found {np.mean(found_all):.3f}; centreline px at the corners beyond the lines there: {corners_all} "
          f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
