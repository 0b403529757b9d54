"""Line width, line contrast and noise of real micrographs, beside those of the detector's training generator.

Run::

    python benchmarks/bench_line_statistics.py [--n-synth 200]

For every hand-annotated real image (``tests/data/real_tem``, images in
``../shared/realdata/tem_images``) the intensity profile across each annotated
centreline is sampled every 4 px of line and fitted with a Gaussian dip
``b - a exp(-d^2 / 2 s^2)``; a profile counts when the fit converges with
``0.3 < s < 15``. Reported per image: the median and 10-90 % range of the
line sigma ``s`` (px) and of the contrast ``a / b``, and the noise (the
standard deviation of the image minus its 3 px Gaussian blur, relative to
the mean intensity). The same figures are then given for the wide micrograph
generator (the drawn sigma and contrast of every line group; the noise
measured the same way), so one can see whether real images fall inside it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _profiles(image: np.ndarray, line: np.ndarray, *, half: int = 14, step: float = 4.0):
    """Profiles across ``line`` (x, y) every ``step`` px: array (n, 2 half + 1)."""
    from scipy.ndimage import map_coordinates

    from napari_stereo_tem.synth.curves import resample

    dense = resample(line, step)
    if len(dense) < 3:
        return np.zeros((0, 2 * half + 1))
    tangent = np.gradient(dense, axis=0)
    tangent /= np.maximum(np.hypot(*tangent.T)[:, None], 1e-9)
    normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
    offsets = np.arange(-half, half + 1, dtype=float)
    xs = dense[:, 0, None] + offsets[None] * normal[:, 0, None]
    ys = dense[:, 1, None] + offsets[None] * normal[:, 1, None]
    return map_coordinates(image, [ys, xs], order=1, mode="nearest")


def _fit(profile: np.ndarray):
    from scipy.optimize import curve_fit

    d = np.arange(len(profile)) - len(profile) // 2

    def model(x, b, a, s, c):
        return b - a * np.exp(-0.5 * ((x - c) / s) ** 2)

    b0 = float(np.median(np.r_[profile[:4], profile[-4:]]))
    try:
        p, _ = curve_fit(model, d, profile, p0=(b0, max(b0 - profile.min(), 1e-3), 2.0, 0.0), maxfev=2000)
    except (RuntimeError, ValueError):
        return None
    b, a, s, c = p
    s = abs(s)
    if not (0.3 < s < 15 and a > 0 and b > 0 and abs(c) < 4):
        return None
    return s, a / b


def _noise(image: np.ndarray) -> float:
    from scipy.ndimage import gaussian_filter

    image = image.astype(float)
    return float(np.std(image - gaussian_filter(image, 3.0)) / max(image.mean(), 1e-9))


def _summary(values) -> str:
    v = np.asarray(values, float)
    if not len(v):
        return "n/a"
    lo, med, hi = np.percentile(v, [10, 50, 90])
    return f"{med:6.2f} ({lo:.2f}-{hi:.2f})"


def real_statistics() -> list[dict]:
    import cv2

    from napari_stereo_tem.evaluation.real_annotations import load_annotation

    rows = []
    for path in sorted((REPO / "tests" / "data" / "real_tem").glob("*.json")):
        ann = load_annotation(path)
        image = cv2.imread(str(REPO / ann.source / ann.image), cv2.IMREAD_GRAYSCALE).astype(float)
        fits = [f for line in ann.dislocations for prof in _profiles(image, line) if (f := _fit(prof))]
        rows.append({"image": path.stem, "n": len(fits), "sigma": [f[0] for f in fits],
                     "contrast": [f[1] for f in fits], "noise": _noise(image)})
    return rows


def synthetic_statistics(n: int) -> dict:
    from napari_stereo_tem.synth.micrograph import make_micrograph
    from napari_stereo_tem.synth.seeds import TEST_SEEDS

    sigma, contrast, noise = [], [], []
    for seed in TEST_SEEDS[900_000: 900_000 + n]:
        micro = make_micrograph(seed, shape=(256, 256))
        for group in micro.params["groups"]:
            sigma.append(group["sigma"])
            contrast.append(group["contrast"])
        noise.append(_noise(micro.image))
    return {"sigma": sigma, "contrast": contrast, "noise": noise}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-synth", type=int, default=200)
    args = parser.parse_args()
    print("median (10-90 %) of fitted line profiles along the annotated centrelines:")
    print(f"{'image':<32} {'profiles':>8}  {'sigma px':>20}  {'contrast':>20}  noise")
    for row in real_statistics():
        print(f"{row['image']:<32} {row['n']:>8}  {_summary(row['sigma']):>20}  {_summary(row['contrast']):>20}  "
              f"{row['noise']:.3f}")
    synth = synthetic_statistics(args.n_synth)
    print(f"{'wide generator (drawn, per group)':<32} {len(synth['sigma']):>8}  {_summary(synth['sigma']):>20}  "
          f"{_summary(synth['contrast']):>20}  {_summary(synth['noise'])}")
    print("generator ranges: sigma 0.6-4.5 px (x0.8-1.25 per group), contrast 0.03-0.8, dose 30-30000 counts/px")


if __name__ == "__main__":
    main()
