"""``stereo-tem track`` on real micrographs made into drifting series: drift error, static lines, speed.

No real in-situ series with known motion ships with the project, so each real micrograph in
``../shared/realdata/tem_images`` becomes a series of its own: ``--frames`` copies shifted by a
random walk of about ``--drift`` px per frame (sub-pixel, cubic interpolation, edges reflected), each
with its own Gaussian noise (``--noise`` grey levels). The dislocations do not move, so what the
tracker reports beyond the drift is its own error.

Per image it prints the largest drift error over the frames (px), the median speed of the tracks
seen in three frames or more (px/frame, least squares over the track's steps as ``track.json``
gives it; truth 0), their count, and the seconds of each stage. ``--overlay`` burns a video
overlay into every frame, fixed in the frame (black side frames, a title bar whose time stamp
changes from frame to frame, a scale bar), as in frames grabbed from a microscope's video;
``--bend-contour PX`` sweeps a bend contour across the frames at PX per frame (half width a tenth of
the side, 45 % darker at its centre), as a foil bending under strain shows.

Run::

    python benchmarks/bench_tracking_real.py [--frames 6] [--drift 3] [--noise 6] [--overlay] [--bend-contour PX]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO.parent / "shared" / "realdata" / "tem_images"


def drifting_series(image: np.ndarray, *, frames: int, drift: float, noise: float, seed: int):
    """``(stack uint8 (frames, rows, cols), true drift (frames, 2))`` of ``image`` moved by a random walk."""
    import cv2

    rng = np.random.default_rng(seed)
    steps = np.vstack([np.zeros(2), rng.normal(0.0, drift, (frames - 1, 2))])
    truth = np.cumsum(steps, axis=0)
    stack = []
    for dx, dy in truth:
        moved = cv2.warpAffine(image.astype(np.float32), np.float32([[1, 0, dx], [0, 1, dy]]), image.shape[::-1],
                               flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        stack.append(np.clip(moved + rng.normal(0.0, noise, moved.shape), 0, 255).astype(np.uint8))
    return np.stack(stack), truth


def main(argv=None) -> int:
    import cv2

    from napari_stereo_tem.models.store import load_detector
    from napari_stereo_tem.progress import drive
    from napari_stereo_tem.stereo.tracking import iter_track_lines, track_summary

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--drift", type=float, default=3.0, help="px per frame (standard deviation of each step)")
    parser.add_argument("--noise", type=float, default=6.0, help="grey levels of noise added to every frame")
    parser.add_argument("--overlay", action="store_true",
                        help="burn a video overlay with a changing time stamp into every frame")
    parser.add_argument("--bend-contour", type=float, default=0.0, metavar="PX",
                        help="a bend contour sweeping across the frames at PX per frame, as a strained foil shows "
                             "(synth.timeseries.sweep_bend_contour)")
    args = parser.parse_args(argv)
    paths = sorted(IMAGES.glob("*.jpg"))
    if not paths:
        raise SystemExit(f"no images in {IMAGES}: is ../shared/realdata beside the repository?")
    model = load_detector()
    print("| image | size | drift error max (px) | tracks (3+ frames) | median speed (px/frame) | detect s | "
          "drift s | link s |\n|---|---|---|---|---|---|---|---|")
    errors = []
    for k, path in enumerate(paths):
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        stack, truth = drifting_series(image, frames=args.frames, drift=args.drift, noise=args.noise, seed=k)
        if args.bend_contour:
            from napari_stereo_tem.synth.timeseries import sweep_bend_contour

            stack = np.clip(sweep_bend_contour(stack, seed=k, speed_px=args.bend_contour), 0, 255).astype(np.uint8)
        if args.overlay:
            from napari_stereo_tem.synth.misalign import burn_overlay

            stack = np.stack([burn_overlay(frame, text=f"00:0{j // 10}:{j % 10}0.{3 * j % 10}  x40000  200 kV",
                                           seed=k, levels=(0.0, 255.0))[0].astype(np.uint8)
                              for j, frame in enumerate(stack.astype(np.float32))])
        result = drive(iter_track_lines(stack, model))
        error = float(np.abs(result.drift - truth).max())
        errors.append(error)
        # the tracks' least-squares speed as track.json gives it (the lines' steps across themselves)
        speeds = [t["speed"] for t in track_summary(result) if t["n_frames"] >= 3]
        s = result.seconds
        print(f"| {path.stem} | {image.shape[1]}x{image.shape[0]} | {error:.3f} | {len(speeds)} | "
              f"{np.median(speeds) if speeds else float('nan'):.3f} | {s['detect']:.1f} | {s['drift']:.1f} | "
              f"{s['link']:.1f} |", flush=True)
    print(f"\n{len(paths)} images, {args.frames} frames each, drift steps of {args.drift:g} px, noise {args.noise:g}"
          f"{', a video overlay burned in' if args.overlay else ''}"
          f"{f', a bend contour sweeping at {args.bend_contour:g} px/frame' if args.bend_contour else ''}; "
          f"largest drift error {max(errors):.3f} px")
    return 0


if __name__ == "__main__":
    t0 = time.perf_counter()
    code = main()
    print(f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    sys.exit(code)
