"""Accuracy of ``rectify_pair`` on synthetic misaligned pairs (issue 4's figures).

Each ideal pair is misaligned by :func:`napari_stereo_tem.synth.misalign.misalign_pair`
with ``theta`` uniform in [-3, 3] degrees and ``t`` uniform in [-40, 40]^2 px, then
rectified. Figures per pair:

* ``|theta error|`` in degrees;
* error of the shift across the disparity direction, ``|t_hat . n - t . n|`` with
  ``n = (-sin theta, cos theta)`` (the part of ``t`` along ``u`` is the free depth origin);
* median ``|y_right - y_left|`` of the *true* correspondences mapped through the
  estimated rectification (grid points of the ideal pair, or dislocation pixels);
* the spread (std) of ``rectified disparity - true disparity`` (must be a constant offset).

Sources: ``textured`` (``synth.misalign.textured_pair``: a textured specimen with a
smooth depth field, disparities about +-8 px, light Gaussian noise) and
``dislocations`` (``synth.make_stereo_pair``: dislocation scenes, noise-free unless ``--noisy``).

Run:  python benchmarks/bench_rectification.py [--n 50] [--source textured|dislocations|both] [--noisy]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.rectification import rectify_pair
from napari_stereo_tem.synth.misalign import misalign_pair, textured_pair


def _ideal(source: str, seed: int, size: int, noisy: bool):
    if source == "textured":
        left, right, disparity = textured_pair(seed, shape=(size, size), noise_std=0.05)
        return left, right, disparity
    from napari_stereo_tem.synth import make_stereo_pair

    sample = make_stereo_pair(seed, shape=(size, size), dose=None if noisy else 0)
    return sample.left, sample.right, sample.disparity_left


def _score(source: str, seed: int, size: int, rng: np.random.Generator, noisy: bool) -> dict:
    left, right, disparity = _ideal(source, seed, size, noisy)
    theta = float(rng.uniform(-3, 3))
    t = rng.uniform(-40, 40, size=2)
    raw_l, raw_r, truth = misalign_pair(left, right, theta_deg=theta, translation=t, seed=seed)
    start = time.perf_counter()
    try:
        rect = rectify_pair(raw_l, raw_r)
    except InputError as err:
        return {"failed": str(err)}
    seconds = time.perf_counter() - start
    th = np.deg2rad(rect.theta_deg)
    t_perp = float(np.dot(rect.translation, [-np.sin(th), np.cos(th)]))
    step = 4 if source == "textured" else 1
    pl, pr, d = truth.correspondences(disparity, step=step, margin=48)
    inside = np.all((pl >= 0) & (pl <= size - 1) & (pr >= 0) & (pr <= size - 1), axis=1)
    ql, qr = rect.map_points(pl[inside], view="left"), rect.map_points(pr[inside], view="right")
    return {
        "theta_err": abs(rect.theta_deg - theta),
        "perp_err": abs(t_perp - truth.perpendicular_shift),
        "dy": float(np.median(np.abs(qr[:, 1] - ql[:, 1]))),
        "disp_spread": float(np.std(qr[:, 0] - ql[:, 0] - d[inside])),
        "n_inliers": rect.n_inliers,
        "warned": bool(rect.warnings),
        "seconds": seconds,
    }


def run(source: str, n: int, size: int, noisy: bool = False) -> None:
    rng = np.random.default_rng(2024)
    seeds = range(10_000, 10_000 + n)
    rows = [_score(source, s, size, rng, noisy) for s in seeds]
    ok = [r for r in rows if "failed" not in r]
    noise = " (Poisson, dose drawn in 30..3000 e/px)" if noisy and source == "dislocations" else ""
    print(f"\n== {source}{noise}: {n} pairs of {size}x{size}, theta in [-3, 3] deg, |t| components <= 40 px ==")
    print(f"rectified: {len(ok)}/{n}; with a warning: {sum(r['warned'] for r in ok)}")
    for r in rows:
        if "failed" in r:
            print("  failed:", r["failed"][:110])
    if not ok:
        return

    def fig(key):
        v = np.array([r[key] for r in ok])
        return f"median {np.median(v):.4f}  p90 {np.percentile(v, 90):.4f}  max {v.max():.4f}"

    print(f"|theta error| (deg)             {fig('theta_err')}")
    print(f"shift across the axis err (px)  {fig('perp_err')}")
    print(f"residual vertical disparity of true correspondences (px)  {fig('dy')}")
    print(f"std of rectified minus true disparity (px)  {fig('disp_spread')}")
    print(f"inliers                         {fig('n_inliers')}")
    print(f"seconds per rectification       {fig('seconds')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--source", choices=("textured", "dislocations", "both"), default="both")
    parser.add_argument("--noisy", action="store_true",
                        help="dislocation pairs with the generator's random Poisson dose instead of noise-free")
    args = parser.parse_args()
    for source in ("textured", "dislocations") if args.source == "both" else (args.source,):
        run(source, args.n, args.size, args.noisy)


if __name__ == "__main__":
    main()
