"""Stereo on real micrographs: each real image made a pair with a known disparity field.

The detector and the matcher were trained on drawn lines. Here the lines, loops, dots, bend contours
and noise are those of real micrographs (``../shared/realdata/tem_images``). Each image (shrunk to
``--size`` px) is the left view; the right view is the same image moved along the rows by a smooth
disparity field ``d(x, y)`` (a tilted plane and a few broad bumps, spanning ``--span`` px), as a
specimen whose depth varies smoothly would show it. Both views are smoothed by 0.7 px (so the image's
own noise is not shared exactly) and get their own shot noise; ``--contrast`` also gives each view its
own bend contours, gain, gamma and illumination (``synth.misalign.vary_contrast``), ``--misalign``
turns and shifts the pair (a tilt axis anywhere, shifts up to a tenth of the field) so that
rectification must find it.

The pair goes through ``reconstruct_stereo`` as a user runs it (automatic contrast and resize, the
shipped networks; ``rectify`` only with ``--misalign``). Each output 3D point is projected into the
left view's raw frame and its disparity ``2 sin(phi/2) z`` compared with ``d`` there, after one offset
per pair (the depth origin is the pair's median disparity). Printed per image: lines and points, the
share of points within 0.42 px of disparity (3 px of depth at 8 degrees) and within 1 px, the median
and RMS disparity error, and for ``--misalign`` the axis error.

Run::

    python benchmarks/bench_real_pseudo_stereo.py [--size 512] [--span 12] [--contrast] [--misalign]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO.parent / "shared" / "realdata" / "tem_images"
ANGLE = 8.0


def disparity_field(shape, seed: int, span: float) -> np.ndarray:
    """A smooth field of ``x_right - x_left`` (px): a tilted plane and three broad bumps, scaled to ``span``."""
    rng = np.random.default_rng(seed)
    rows, cols = shape
    yy, xx = np.mgrid[:rows, :cols].astype(float)
    x, y = xx / cols - 0.5, yy / rows - 0.5
    field = rng.normal() * x + rng.normal() * y
    for _ in range(3):
        cx, cy, width = rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4), rng.uniform(0.15, 0.35)
        field += rng.normal() * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * width ** 2))
    field -= field.min()
    return (span * field / max(field.max(), 1e-9) - span / 2).astype(np.float32)


def pseudo_pair(image: np.ndarray, disparity: np.ndarray, seed: int, *, dose: float = 300.0):
    """``(left, right)``: ``right(x + d(x, y), y) = left(x, y)``, each smoothed and with its own shot noise."""
    import cv2
    from scipy import ndimage

    base = ndimage.gaussian_filter(image.astype(np.float64), 0.7)
    base = (base - base.min()) / max(np.ptp(base), 1e-9) * 0.8 + 0.1
    rows, cols = base.shape
    yy, xx = np.mgrid[:rows, :cols].astype(np.float32)
    # backward map: the right view's pixel x shows the left's x - d (d smooth: d at x stands for d at x - d)
    source = xx - ndimage.map_coordinates(disparity, [yy, xx - disparity], order=1, mode="nearest")
    right = cv2.remap(base.astype(np.float32), source, yy, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    rng = np.random.default_rng(seed)
    return tuple(rng.poisson(np.clip(v, 0, None) * dose).astype(np.float32) / dose for v in (base, right))


def score(result, truth: np.ndarray, to_raw, overlay=None) -> dict:
    """Disparity errors of the output points (after one offset), projected into the left view's raw frame."""
    from napari_stereo_tem.stereo.projection import disparity_from_depth, project_points

    if not result.lines:
        return {"lines": 0, "points": 0}
    cols = result.left.shape[1]
    pts = np.vstack(result.lines)
    left_xy = project_points(pts, -ANGLE / 2.0, axis_col=(cols - 1) / 2.0)
    raw = to_raw(left_xy)
    rows_t, cols_t = truth.shape
    inside = (raw[:, 0] >= 0) & (raw[:, 0] <= cols_t - 1) & (raw[:, 1] >= 0) & (raw[:, 1] <= rows_t - 1)
    from scipy import ndimage

    want = ndimage.map_coordinates(truth, [raw[inside, 1], raw[inside, 0]], order=1)
    got = disparity_from_depth(pts[inside, 2], ANGLE)
    err = got - want
    err -= np.median(err)
    if overlay is not None:  # the rectified left view, each output point coloured by its disparity error
        import cv2

        view = result.left
        grey = np.clip(255 * (view - np.percentile(view, 1)) / max(np.ptp(np.percentile(view, [1, 99])), 1e-9),
                       0, 255).astype(np.uint8)
        rgb = np.repeat(grey[..., None], 3, axis=2)
        colours = np.where(np.abs(err)[:, None] <= 0.42, [0, 200, 0], np.where(np.abs(err)[:, None] <= 1.0,
                                                                               [230, 200, 0], [230, 0, 0]))
        xy = np.round(left_xy[inside]).astype(int)
        ok = (xy[:, 0] >= 0) & (xy[:, 0] < cols) & (xy[:, 1] >= 0) & (xy[:, 1] < rgb.shape[0])
        rgb[xy[ok, 1], xy[ok, 0]] = colours[ok]
        cv2.imwrite(str(overlay), rgb[..., ::-1])
    return {"lines": len(result.lines), "points": int(inside.sum()), "within_042": float(np.mean(np.abs(err) <= 0.42)),
            "within_1": float(np.mean(np.abs(err) <= 1.0)), "median": float(np.median(np.abs(err))),
            "rms": float(np.sqrt(np.mean(err ** 2)))}


def main(argv=None) -> int:
    import cv2

    from napari_stereo_tem.checks import InputError
    from napari_stereo_tem.models.store import load_detector
    from napari_stereo_tem.progress import drive
    from napari_stereo_tem.stereo.matching import load_matcher
    from napari_stereo_tem.stereo.pipeline import reconstruct_stereo
    from napari_stereo_tem.synth.misalign import misalign_pair, vary_contrast

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--span", type=float, default=12.0, help="disparity span (px) of the field")
    parser.add_argument("--contrast", action="store_true", help="each view its own bend contours, gain, gamma")
    parser.add_argument("--misalign", action="store_true", help="turn and shift the pair; rectification finds it")
    parser.add_argument("--shift-fraction", type=float, default=0.1,
                        help="with --misalign: largest shift of each component, as a fraction of the field")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overlays", type=Path, default=None,
                        help="save each pair's rectified left view with its points coloured by disparity error "
                             "(green within 0.42 px, yellow within 1 px, red beyond) as PNG here")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="reconstruct_stereo keyword (number or word)")
    args = parser.parse_args(argv)
    options = {}
    for item in args.option:
        key, value = item.split("=", 1)
        try:
            options[key] = float(value)
        except ValueError:
            options[key] = {"true": True, "false": False}.get(value.lower(), value)
    paths = sorted(IMAGES.glob("*.jpg"))
    if not paths:
        raise SystemExit(f"no images in {IMAGES}: is ../shared/realdata beside the repository?")
    detector, matcher = load_detector(), load_matcher()
    print(f"real micrographs as pairs: {args.size} px, disparity span {args.span} px, stereo angle {ANGLE} deg"
          + (", contrast changed per view" if args.contrast else "") + (", misaligned" if args.misalign else ""))
    print("| image | lines | points | within 0.42 px | within 1 px | median px | RMS px | axis error deg | s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows_out = []
    for k, path in enumerate(paths):
        seed = args.seed * 1000 + k
        grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).astype(np.float32)
        side = min(grey.shape)
        grey = grey[:side, :side]
        big = int(round((1.05 + 2 * args.shift_fraction) * args.size)) if args.misalign else args.size
        image = cv2.resize(grey, (big, big), interpolation=cv2.INTER_AREA)
        truth = disparity_field(image.shape, seed, args.span)
        left, right = pseudo_pair(image, truth, seed)
        to_raw = lambda p: p  # noqa: E731 (no rectification: the rectified frame is the raw one)
        theta = 0.0
        if args.misalign:
            rng = np.random.default_rng(seed)
            theta = float(90.0 - rng.uniform(0.0, 180.0))
            shift = rng.uniform(-args.shift_fraction, args.shift_fraction, size=2) * args.size
            left, right, mis = misalign_pair(left, right, theta_deg=theta, translation=shift,
                                             out_shape=(args.size, args.size))
        if args.contrast:
            left, right = vary_contrast(left, seed=2 * seed), vary_contrast(right, seed=2 * seed + 1)
        start = time.perf_counter()
        try:
            result = drive(reconstruct_stereo(left, right, stereo_angle_deg=ANGLE, rectify=args.misalign,
                                                 detector=detector, matcher=matcher, **options))
        except InputError as err:
            print(f"| {path.stem} | refused: {str(err)[:400]} |")
            rows_out.append(None)
            continue
        seconds = time.perf_counter() - start
        axis_err = float("nan")
        if args.misalign:
            rect = result.rectification
            affine = np.asarray(rect["affine_left"], float)
            inverse = np.linalg.inv(np.vstack([affine, [0, 0, 1]]))[:2]
            ideal_origin = np.asarray(mis.origin, float)

            def to_raw(p, inverse=inverse):  # rectified -> raw left -> the ideal (truth) frame
                from napari_stereo_tem.synth.misalign import _ideal_from_raw

                raw = p @ inverse[:, :2].T + inverse[:, 2]
                return _ideal_from_raw(raw + ideal_origin, mis)

            axis_err = (rect["theta_deg"] - theta + 90.0) % 180.0 - 90.0
            print(f"  {path.stem}: axis {rect['theta_deg']:.3f} +- {rect['theta_std_deg']:.3f}, true {theta:.3f}; "
                  f"{rect['n_inliers']} inliers, warnings: {len(rect['warnings'])}")
        overlay = None
        if args.overlays is not None:
            args.overlays.mkdir(parents=True, exist_ok=True)
            overlay = args.overlays / f"pseudo_{path.stem}{'_contrast' if args.contrast else ''}" \
                f"{'_misaligned' if args.misalign else ''}.png"
        row = score(result, truth, to_raw, overlay)
        rows_out.append(row)
        if not row["points"]:
            print(f"| {path.stem} | 0 | 0 | | | | | | {seconds:.1f} |")
            continue
        print(f"| {path.stem} | {row['lines']} | {row['points']} | {row['within_042']:.3f} | {row['within_1']:.3f} | "
              f"{row['median']:.2f} | {row['rms']:.2f} | {axis_err:.3f} | {seconds:.1f} |")
    done = [r for r in rows_out if r and r["points"]]
    if done:
        print(f"| **mean** ({len(done)} of {len(rows_out)}) | | | {np.mean([r['within_042'] for r in done]):.3f} | "
              f"{np.mean([r['within_1'] for r in done]):.3f} | {np.mean([r['median'] for r in done]):.2f} | "
              f"{np.mean([r['rms'] for r in done]):.2f} | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
