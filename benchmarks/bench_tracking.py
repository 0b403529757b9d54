"""Tracking accuracy and velocity error of ``stereo-tem track`` on synthetic in-situ series.

Run::

    python benchmarks/bench_tracking.py [--seeds 4] [--frames 8] [--size 128] [--speed 2] [--drift 1.5]
        [--noise-frame K ...] [--bend-contour PX] [--flicker F]

Each series (:func:`napari_stereo_tem.synth.timeseries.make_time_series`) is a
pile-up of 4 dislocations gliding at 0.75-1.5 times ``--speed`` px/frame (one
more appears a third of the way through, one leaves at two thirds), under a
random-walk drift of about ``--drift`` px/frame, with shot noise. The pipeline
(shipped detector, ``flips=1``) runs once per series; the instances are then
linked twice: by the distance between the lines (the default) and, as a
baseline, by the distance between their centroids.

Reported per series and on average: ``detected`` (share of (line, frame) with a
branch within 3 px of the true line), ``link`` (links between consecutive
detections of a true line that keep one track id), ``main track`` (share of a
line's detected frames in its main track), velocity error ``|v - v_true|``
(px/frame, the main track's least-squares velocity) absolute and relative, and
the largest drift error over the frames (px).
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np


def _relinked_by_centroids(result, *, max_distance: float, gap_frames: int):
    from napari_stereo_tem.stereo.tracking import link_instances

    other = copy.copy(result)
    other.instances = [{k: v for k, v in inst.items() if k != "specimen_points"} for inst in result.instances]
    ids = link_instances([i["frame"] for i in other.instances], [i["x"] for i in other.instances],
                         [i["y"] for i in other.instances], max_distance=max_distance, gap_frames=gap_frames)
    for inst, track_id in zip(other.instances, ids):
        inst["track_id"] = int(track_id)
    return other


def main(argv=None) -> int:
    from napari_stereo_tem.evaluation.table import markdown_table
    from napari_stereo_tem.evaluation.tracks import score_tracks
    from napari_stereo_tem.models.store import load_detector
    from napari_stereo_tem.stereo.tracking import track_lines
    from napari_stereo_tem.synth.timeseries import make_time_series, sweep_bend_contour

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--first-seed", type=int, default=100)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--speed", type=float, default=2.0)
    parser.add_argument("--drift", type=float, default=1.5)
    parser.add_argument("--max-distance", type=float, default=10.0)
    parser.add_argument("--noise-frame", type=int, action="append", default=[], metavar="K",
                        help="replace frame K of every series by noise of the same mean and spread (repeatable)")
    parser.add_argument("--bend-contour", type=float, default=0.0, metavar="PX",
                        help="a bend contour sweeping across every series at PX per frame (synth.timeseries."
                             "sweep_bend_contour: half width a tenth of the field, 45 %% darker at its centre)")
    parser.add_argument("--flicker", type=float, default=0.0, metavar="F",
                        help="each frame's brightness scaled by a factor within 1 +- F (with or without a contour)")
    parser.add_argument("--step", type=int, default=1,
                        help="track every n-th frame only (track --frames ::N), scored on those frames; "
                             "velocities stay px per frame of the series (the centroid baseline is left out)")
    args = parser.parse_args(argv)

    model = load_detector()
    rows = []
    t0 = time.perf_counter()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        series = make_time_series(seed, shape=(args.size, args.size), n_frames=args.frames, speed=args.speed,
                                  drift_px=args.drift)
        for k in args.noise_frame:  # the beam blanked for a frame: camera noise only
            frames = series.frames
            frames[k] = np.random.default_rng(seed).normal(frames.mean(), frames.std(), frames[k].shape)
        if args.bend_contour or args.flicker:
            series.frames = sweep_bend_contour(series.frames, seed=seed, speed_px=args.bend_contour,
                                               depth=0.45 if args.bend_contour else 0.0, flicker=args.flicker)
        result = track_lines(series.frames, model, max_distance=args.max_distance,
                             frames=slice(None, None, args.step) if args.step > 1 else None)
        ways = [("lines", result)]
        if args.step == 1:
            ways.append(("centroids", _relinked_by_centroids(result, max_distance=args.max_distance, gap_frames=1)))
        for linking, tracked in ways:
            score = score_tracks(tracked, series)
            rows.append({"seed": seed, "linking": linking, "detected": score["detected"],
                         "link": score["link_accuracy"], "main track": score["frames_in_main_track"],
                         "velocity error (px/frame)": score["velocity_error"],
                         "relative": score["speed_error_rel"], "drift error (px)": score["drift_error"],
                         "tracks": score["n_tracks"], "true lines": score["n_true_lines"]})
    for linking in ("lines", "centroids") if args.step == 1 else ("lines",):
        mine = [r for r in rows if r["linking"] == linking]
        mean = {k: float(np.mean([r[k] for r in mine])) for k in mine[0] if k not in ("seed", "linking")}
        rows.append({"seed": "mean", "linking": linking, **mean})
    print(markdown_table(rows, digits=3))
    print(f"\n{args.seeds} series of {args.frames} frames {args.size}x{args.size}, speed {args.speed} px/frame, "
          f"drift {args.drift} px/frame" + (f", one frame in {args.step} tracked" if args.step > 1 else "")
          + f", {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
