"""``stereo-tem track STACK -o DIR``: dislocations tracked through an in-situ time series.

``STACK`` is a multi-page TIFF, a video (imageio, or OpenCV), a ``.npy`` of
``(n_frames, rows, cols)`` or a folder of images (in the order of their names).
The folder gets ``tracks.csv`` (``track_id,frame,x,y,length,velocity_x,velocity_y``:
centroid in the first frame's coordinates, drift removed, spline length, px and
px/frame; where the pixel size is known, from the file or ``--pixel-size``, also
``length_nm``, and with the frame interval also ``velocity_x_nm_s,velocity_y_nm_s``),
``drift.csv`` (``frame,dx,dy``: where a specimen point of frame 0 lies in
frame ``k``, minus where it lies in frame 0), ``track.json`` (settings, counts,
per-track summary, timings) and ``tracks.png`` (speed and length over time of
the twelve tracks seen in most frames, of those seen in three frames or more). The folder is written as a whole.
"""

from __future__ import annotations

__all__ = ["add_parser", "run"]

#: What the command writes (an existing folder holding only these may be replaced with --overwrite).
PRODUCES = ("tracks.csv", "drift.csv", "track.json", "tracks.png")


def add_parser(subparsers) -> None:
    from .detect import add_detector_options

    parser = subparsers.add_parser(
        "track", help="track dislocations through an in-situ time series",
        description="Drift correction, dislocation detection in every frame, and tracks of the line "
                    "branches (position, velocity and length over time).")
    parser.add_argument("stack", metavar="STACK", help="TIFF stack, video, .npy or folder of images")
    parser.add_argument("--max-distance", type=float, default=10.0, metavar="PX",
                        help="largest move of a line between two linked frames, drift removed (default 10 px)")
    parser.add_argument("--gap-frames", type=int, default=1, metavar="N",
                        help="frames a line may be missed and still be linked (default 1; 0: none)")
    parser.add_argument("--min-length", type=float, default=8.0, metavar="PX",
                        help="shorter line branches are not tracked (default 8 px)")
    parser.add_argument("--instances", choices=("ridges", "skeleton"), default="ridges",
                        help="how a frame's dislocations become lines: ridges of the probability map, one per "
                             "dislocation even inside pile-ups (default), or skeleton branches")
    parser.add_argument("--frames", default=None, metavar="START:STOP[:STEP]",
                        help="only these frames (from 0, STOP not included), e.g. ::5 for every fifth frame of a "
                             "long video; the others are not read. Frame numbers and velocities stay those of "
                             "STACK (px per frame of STACK); --max-distance and --gap-frames count between the "
                             "frames taken")
    parser.add_argument("--signal", default=None, metavar="N|TITLE",
                        help="which movie of a microscope file that holds several (a Velox .emd records one per "
                             "detector): its number from 0 or its title, e.g. HAADF (default: the first)")
    parser.add_argument("--pixel-size", type=float, default=None, metavar="NM",
                        help="nm per pixel (default: from a microscope movie's file); with it tracks.csv also "
                             "gives lengths in nm")
    parser.add_argument("--frame-interval", type=float, default=None, metavar="S",
                        help="seconds between frames of STACK, 1/fps (default: from a microscope movie's file); "
                             "with the pixel size tracks.csv also gives velocities in nm/s")
    add_detector_options(parser, flips=1, when="decided on the first frame")
    parser.add_argument("-o", "--output", required=True, help="output folder (written as a whole)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing result folder (only one holding this command's files)")
    parser.set_defaults(func=run)


def _plot(rows: list[dict], path, *, min_frames: int = 3, max_tracks: int = 12, physical: bool = False) -> None:
    """Speed and length over time (:func:`~napari_stereo_tem.stereo.track_plot.draw_tracks`) saved to ``path``."""
    from matplotlib.figure import Figure  # drawn by its own canvas: no backend chosen for the process

    from ..stereo.track_plot import draw_tracks

    figure = Figure(figsize=(9, 3.5), layout="constrained")
    draw_tracks(figure, rows, physical=physical, min_frames=min_frames, max_tracks=max_tracks)
    figure.savefig(path, dpi=100)


def run(args) -> int:
    import time
    from pathlib import Path

    import numpy as np

    from ..atomic import atomic_write_text, check_output_folder, result_folder
    from ..checks import InputError
    from ..evaluation.table import csv_text
    from ..models.store import load_detector
    from ..progress import drive, end_progress_line, text_progress
    from ..stereo.frame_stack import parse_frames, stack_info
    from ..stereo.lines_io import write_json
    from ..stereo.tracking import (TRACK_COLUMNS, in_physical_units, iter_track_lines, median_speed, track_rows,
                                   track_summary)
    from .detect import CONTRASTS, parse_scale

    if args.max_distance <= 0:
        raise InputError(f"--max-distance must be a positive number of pixels, got {args.max_distance}")
    if args.gap_frames < 0:
        raise InputError(f"--gap-frames must be 0 or more, got {args.gap_frames}")
    for option, value in (("--pixel-size", args.pixel_size), ("--frame-interval", args.frame_interval)):
        if value is not None and not (np.isfinite(value) and value > 0):
            raise InputError(f"{option} must be a positive number, got {value}")
    scale = parse_scale(args.scale)
    check_output_folder(args.output, overwrite=args.overwrite, produces=PRODUCES)
    selection = parse_frames(args.frames)
    if not Path(args.stack).exists():
        raise InputError(f"STACK {args.stack} does not exist; give a TIFF or MRC stack, a video, a microscope movie "
                         "(.dm4, .emd, ...) or a folder of images")
    info = stack_info(args.stack, signal=args.signal, name="STACK")  # a movie's title, pixel size and frame time
    calibration = {key: info[key] for key in ("pixel_size_nm", "frame_interval_s")}
    model = load_detector(args.detector or "default", device=args.device)
    given = {"pixel_size_nm": args.pixel_size, "frame_interval_s": args.frame_interval}
    calibration_from = {k: ("given" if given[k] is not None else "file" if v is not None else None)
                        for k, v in calibration.items()}
    calibration.update({k: v for k, v in given.items() if v is not None})
    t0 = time.perf_counter()
    result = drive(iter_track_lines(args.stack, model, max_distance=args.max_distance, gap_frames=args.gap_frames,
                                    min_length=args.min_length, contrast=CONTRASTS[args.contrast], scale=scale,
                                    flips=args.flips, device=args.device, instances=args.instances,
                                    frames=selection, name="STACK", signal=args.signal),
                   text_progress())
    end_progress_line()
    rows, physical = in_physical_units(track_rows(result), **calibration)
    summary, _ = in_physical_units(track_summary(result), **calibration)
    drift_rows = [{"frame": int(k), "dx": float(d[0]), "dy": float(d[1])}
                  for k, d in zip(result.frame_numbers, result.drift)]
    n_long, speed, speed_nm_s = median_speed(summary)
    record = {"stack": str(args.stack), "n_frames": result.n_frames, "shape": list(result.shape),
              "n_instances": len(result.instances), "n_tracks": result.n_tracks,
              "n_tracks_3_frames_or_more": n_long, "settings": result.settings,
              "signal": {"title": info["title"], "others": list(info["others"])},
              "detector": {"version": getattr(model, "version", None)}, "calibration": calibration,
              "calibration_from": calibration_from,
              "seconds": {**result.seconds, "total": round(time.perf_counter() - t0, 3)},
              "tracks": summary,
              "columns": {"x, y": "centroid in the first frame's coordinates, drift removed (px)",
                          "length": "spline length (px)", "velocity_x, velocity_y": "px/frame, drift removed",
                          "dx, dy": "drift of frame k relative to the first frame tracked (px)",
                          "frame": "the frame's number in STACK (from 0)",
                          **({"length_nm": "spline length (nm)"} if "length_nm" in physical else {}),
                          **({"velocity_x_nm_s, velocity_y_nm_s": "nm/s, drift removed"}
                             if "velocity_x_nm_s" in physical else {})},
              "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with result_folder(args.output, overwrite=args.overwrite, produces=PRODUCES) as tmp:
        atomic_write_text(tmp / "tracks.csv", csv_text(rows, cols=list(TRACK_COLUMNS) + physical))
        atomic_write_text(tmp / "drift.csv", csv_text(drift_rows, cols=["frame", "dx", "dy"]))
        write_json(tmp / "track.json", record)
        _plot(rows, tmp / "tracks.png", physical="velocity_x_nm_s" in physical)
    total_drift = float(((result.drift[-1] ** 2).sum()) ** 0.5)
    median = f"{speed:.2f} px/frame" if speed is not None else "n/a"
    if speed_nm_s is not None:
        sources = sorted({calibration_from["pixel_size_nm"], calibration_from["frame_interval_s"]})
        median += f" ({speed_nm_s:.3g} nm/s: {calibration['pixel_size_nm']:.4g} nm/px, " \
                  f"{calibration['frame_interval_s']:.4g} s/frame " \
                  + " and ".join({"file": "from the file", "given": "given"}[k] for k in sources) + ")"
    skipped = result.settings.get("skipped_frames") or []
    if skipped:
        listed = ", ".join(f"{s['frame']} ({s['why']})" for s in skipped[:10]) + (", ..." if len(skipped) > 10 else "")
        print(f"skipped {len(skipped)} frame(s) that show nothing new of the specimen (a blanked beam, a dropped, "
              f"noise or repeated frame): {listed}")
    if info["others"]:
        print(f"{args.stack} holds {len(info['others']) + 1} movies: tracked '{info['title']}' (the others: "
              + ", ".join(f"'{t}'" for t in info["others"]) + "); --signal N|TITLE chooses another")
    print(f"{args.stack}: {result.n_frames} frames, {result.n_tracks} tracks ({n_long} over >= 3 frames), "
          f"median speed {median}, drift {total_drift:.1f} px in all -> {args.output}")
    return 0
