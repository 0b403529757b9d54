"""Defective camera columns and rows (``napari_stereo_tem.camera_defects``): found, missed, and what they cost.

1. **Found and false alarms**: ``--n`` wide-generator micrographs and ``--pairs`` stereo pairs of the
   project's generator, and the five real micrographs in ``../shared/realdata/tem_images``: how many
   are reported to hold a defect as they are (false alarms), and, with one column or row made
   defective at random in each, the share found (that one and nothing else) per kind: dimmed to
   0.85 or 0.7 of its level, dead (the darkest level), hot (the brightest), brighter by 5 % of the
   range, dimmed to 0.7 from a random row on (a column failing part-way).
2. **What a defect costs** with and without the repair (``--no-repair`` is the same run with the
   repair switched off, as before it existed): the bundled stereo pair with column 301 dimmed to 0.55
   in both views (lines in all, lines along the column), or with 3000 hot pixels at the same places in
   both views (a camera's own; the tilt axis found, 0 is right), and synthetic drifting series with a column
   and a row dimmed to 0.6 (largest drift error against the truth, tracked instances along them);
   "dimmed" here is a lower gain (the counts times 0.55 or 0.6).

Run::

    python benchmarks/bench_camera_defects.py [--n 120] [--pairs 10] [--no-repair]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO.parent / "shared" / "realdata" / "tem_images"
KINDS = ("dim 0.85", "dim 0.7", "dead", "hot", "bright +5 %", "dim 0.7 part-way", "100 hot pixels")


def _damaged(image: np.ndarray, kind: str, rng) -> tuple[np.ndarray, int, int]:
    """``(image with one defect, axis (0: a column, 1: a row), index)``."""
    out = image.copy()
    low, high = np.percentile(out, [1, 99])
    axis = int(rng.integers(2))
    index = int(rng.integers(5, out.shape[1 - axis] - 5))
    start = int(rng.integers(0, out.shape[axis] // 2)) if "part-way" in kind else 0
    where = (slice(start, None), index) if axis == 0 else (index, slice(start, None))
    values = out[where]
    if kind.startswith("dim"):
        gain = float(kind.split()[1])
        values = low + (values - low) * gain
    elif kind == "dead":
        values = np.full_like(values, low)
    elif kind == "hot":
        values = np.full_like(values, high)
    elif kind == "100 hot pixels":   # not a line: scattered pixels, the axis and index only name the image
        out.flat[rng.choice(out.size, 100, replace=False)] = high + 0.5 * (high - low)
        return out, axis, index
    else:
        values = values + 0.05 * (high - low)
    out[where] = values
    return out, axis, index


def found_and_false_alarms(n: int, pairs: int) -> None:
    import imageio.v3 as iio

    from napari_stereo_tem.camera_defects import find_camera_defects
    from napari_stereo_tem.images import grey_levels
    from napari_stereo_tem.synth.micrograph import make_micrograph
    from napari_stereo_tem.synth.stereo import make_stereo_pair

    images = [("generated micrograph", make_micrograph(70000 + s, shape=(384, 384)).image) for s in range(n)]
    for s in range(pairs):
        pair = make_stereo_pair(80000 + s, shape=(384, 384))
        images += [("stereo view", pair.left), ("stereo view", pair.right)]
    images += [("real micrograph", grey_levels(iio.imread(p))) for p in sorted(IMAGES.glob("*.jpg"))]
    rng = np.random.default_rng(1)
    alarms, hits, seconds = {}, {kind: [] for kind in KINDS}, []
    for source, image in images:
        image = np.asarray(image, np.float32)
        t0 = time.perf_counter()
        alarms.setdefault(source, []).append(find_camera_defects(image))
        seconds.append(time.perf_counter() - t0)
        if source == "real micrograph":
            continue
        for kind in KINDS:
            damaged, axis, index = _damaged(image, kind, rng)
            found = find_camera_defects(damaged)
            if kind == "100 hot pixels":     # the share of them found
                hits[kind].append(min(len(found.pixels), 100) / 100.0)
                continue
            along = found.columns if axis == 0 else found.rows
            hits[kind].append(len(found.columns) + len(found.rows) == 1 and along[0][0] == index)
    print("| images | count | reported to hold a defect (false alarms) | of which single pixels only |\n"
          "|---|---:|---:|---:|")
    for source, flags in alarms.items():
        print(f"| {source} | {len(flags)} | {sum(bool(f) for f in flags)} | "
              f"{sum(bool(f) and not (f.columns or f.rows) for f in flags)} |")
    size = np.median([image.size for _, image in images])
    print(f"\n{1e3 * np.mean(seconds):.1f} ms per image (median size {size:.0f} px)\n")
    print("| defect | found (a column or row: that one only; pixels: the share of them) |\n|---|---:|")
    for kind, flags in hits.items():
        print(f"| {kind} | {np.mean(flags):.3f} (of {len(flags)} images) |")


def _switch_off() -> None:
    """The repair as before it existed: nothing is ever found."""
    from napari_stereo_tem import camera_defects
    from napari_stereo_tem.stereo import detect, pipeline, tracking

    def nothing(image, **_):
        return image, camera_defects.CameraDefects()

    detect.repair_camera_defects = pipeline.repair_camera_defects = nothing
    tracking.find_camera_defects = lambda image, **_: camera_defects.CameraDefects()


def what_a_defect_costs() -> None:
    import tifffile

    from napari_stereo_tem.stereo.pipeline import reconstruct
    from napari_stereo_tem.stereo.tracking import track_lines
    from napari_stereo_tem.synth.timeseries import make_time_series

    def dimmed(image, *, column=None, row=None, gain):
        """One column or row of lower gain (its counts times ``gain``)."""
        out = np.array(image, np.float32)
        where = (slice(None), column) if column is not None else (row, slice(None))
        out[where] = out[where] * gain
        return out

    from napari_stereo_tem.checks import InputError

    def hot(image, n=3000):
        out = np.array(image, np.float32)
        out.flat[np.random.default_rng(0).choice(out.size, n, replace=False)] = 3.0 * out.max()
        return out

    sample = REPO / "sample_data" / "stereo"
    print("\n| bundled stereo pair | lines | lines along column 301 | tilt axis (deg) | s |\n|---|---:|---:|---:|---:|")
    for name, damage in (("as shipped", lambda v: v), ("column 301 dimmed to 0.55 in both views",
                                                       lambda v: dimmed(v, column=301, gain=0.55)),
                         ("3000 hot pixels, the same in both views", hot)):
        views = [damage(tifffile.imread(sample / f"{side}.tif").astype(np.float32)) for side in ("left", "right")]
        t0 = time.perf_counter()
        try:
            result = reconstruct(*views, stereo_angle_deg=8.0)
        except InputError as err:
            print(f"| {name} | refused: {str(err)[:90]}... | | | {time.perf_counter() - t0:.1f} |")
            continue
        along = sum(np.all(np.abs(np.asarray(line)[:, 0] - 301) < 3) for line in result.lines)
        print(f"| {name} | {len(result.lines)} | {along} | {result.rectification['theta_deg']:.2f} | "
              f"{time.perf_counter() - t0:.1f} |")
    print("\n| drifting series (7 frames, 256 px) | largest drift error px, clean | with a dim column and row "
          "| instances along them |\n|---|---:|---:|---:|")
    for seed in (3, 4, 5):
        series = make_time_series(seed, shape=(256, 256), n_frames=7)
        frames = np.stack([dimmed(dimmed(f, column=101, gain=0.6), row=170, gain=0.6) for f in series.frames])
        clean = track_lines(series.frames, max_distance=10.0)
        damaged = track_lines(frames, max_distance=10.0)
        along = sum(np.mean(np.abs(i["points"][:, 0] - 101) < 2) > 0.5
                    or np.mean(np.abs(i["points"][:, 1] - 170) < 2) > 0.5 for i in damaged.instances)
        print(f"| seed {seed} | {np.abs(clean.drift - series.drift).max():.2f} | "
              f"{np.abs(damaged.drift - series.drift).max():.2f} | {along} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=120, help="generated micrographs")
    parser.add_argument("--pairs", type=int, default=10, help="generated stereo pairs (two views each)")
    parser.add_argument("--no-repair", action="store_true", help="part 2 with the repair switched off")
    args = parser.parse_args()
    t0 = time.perf_counter()
    if not args.no_repair:
        found_and_false_alarms(args.n, args.pairs)
    else:
        _switch_off()
    what_a_defect_costs()
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
