"""``stereo-tem reconstruct-views DATASET (--disc CY,CX,R ... | --ring N ...) --convergence-mrad A -o DIR``.

3D dislocation lines fused from three or more virtual detectors on one 4D-STEM
dataset (:func:`napari_stereo_tem.fourdstem.multiview.reconstruct_views`, the call
the virtual-detector dock's "Reconstruct from all discs" makes). Writes
``DIR/lines.csv`` (``line_id,x,y,z,depth_std``, scan pixels, ``z`` along the beam)
and ``DIR/result.json`` (discs and their view shifts, calibration, every pair's
stereo angle, epipolar direction and measurements, per-line summary), as a whole.
"""

from __future__ import annotations

__all__ = ["add_parser", "run"]

#: What the command writes (an existing folder holding only these may be replaced with --overwrite).
PRODUCES = ("lines.csv", "result.json")


def add_parser(subparsers) -> None:
    from .calibration_options import add_calibration_options
    from .detect import add_detector_options

    parser = subparsers.add_parser(
        "reconstruct-views", help="3D lines fused from three or more virtual detectors (4D-STEM)",
        description="Reconstruct 3D dislocation lines from N >= 3 virtual detectors (discs) on one 4D-STEM "
                    "dataset: the N virtual images in one pass, lines detected in every view, every useful "
                    "pair matched along its own epipolar direction, the depths fused by least squares.")
    parser.add_argument("dataset", help="4D-STEM dataset: .mib, .blo, .hspy, .zspy, .emd, .h5, .npy "
                                        "(scan_y, scan_x, det_y, det_x), .zarr, ...")
    parser.add_argument("--disc", action="append", default=None, metavar="CY,CX,R",
                        help="a disc in detector pixels; repeat (at least 3)")
    parser.add_argument("--ring", type=int, default=None, metavar="N",
                        help="instead of --disc: N discs evenly spaced on a ring around the direct beam")
    parser.add_argument("--ring-radius", type=float, default=None, metavar="PX",
                        help="distance of the ring's disc centres from the direct-beam centre, detector pixels "
                             "(default: two thirds of the direct beam's radius)")
    parser.add_argument("--disc-radius", type=float, default=None, metavar="PX",
                        help="radius of the ring's discs (default: a quarter of the direct beam's radius)")
    parser.add_argument("--ring-start", type=float, default=0.0, metavar="DEG",
                        help="direction of the ring's first disc from the centre (degrees from +x towards +y)")
    add_calibration_options(parser, convergence_help="convergence semi-angle in mrad (needed: calibrates each "
                                                     "view's direction)")
    parser.add_argument("--scan-rotation", type=float, default=0.0,
                        help="scan-to-diffraction rotation in degrees")
    parser.add_argument("--scan-shape", default=None, metavar="SY,SX", help="reshape a stack of frames to this scan")
    parser.add_argument("--reference", type=int, default=None,
                        help="view whose lines are reconstructed (default: the one with the most line length)")
    parser.add_argument("--min-baseline-fraction", type=float, default=0.3,
                        help="pairs whose baseline is below this share of the largest are not matched (default 0.3)")
    parser.add_argument("--executor", default="inline",
                        help="inline, threads, or a dask scheduler address: where the pass over the data runs")
    add_detector_options(parser, flips=4, when="decided on view 0")
    parser.add_argument("--threshold", type=float, default=None,
                        help="detection probability threshold (default: the model's recommended one)")
    parser.add_argument("--matcher", default=None, help="matcher version or weights path (default: selected)")
    parser.add_argument("-o", "--output", required=True, help="output folder (written as a whole)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing result folder")
    parser.set_defaults(func=run)


def _discs(args, direct):
    from ..checks import InputError, parse_numbers
    from ..fourdstem.views_geometry import ring_of_discs

    if args.disc and args.ring is not None:
        raise InputError("give either --disc (repeated) or --ring N with --ring-radius and --disc-radius, not both")
    if args.ring is not None:
        return ring_of_discs(args.ring, centre=direct, ring_radius=args.ring_radius, disc_radius=args.disc_radius,
                             start_deg=args.ring_start)
    if not args.disc:
        raise InputError("give the discs: --disc CY,CX,R three times or more, or --ring N (optionally with "
                         "--ring-radius PX and --disc-radius PX)")
    return [parse_numbers(text, name="--disc", form="CY,CX,R", count=(3,)) for text in args.disc]


def run(args) -> int:
    import sys

    from ..atomic import check_output_folder
    from ..checks import InputError, parse_numbers
    from ..fourdstem import open_4dstem
    from ..fourdstem.multiview import reconstruct_views
    from ..fourdstem.views_geometry import check_view_discs
    from ..progress import end_progress_line, text_progress
    from .calibration_options import calibration_from_args
    from .detect import CONTRASTS, parse_scale

    if args.convergence_mrad is None:
        raise InputError("--convergence-mrad is needed: with the direct disc it gives each view's direction "
                         "(mrad per detector pixel)")
    if args.ring is None and args.disc and len(args.disc) < 3:  # refused before reading anything
        check_view_discs([parse_numbers(t, name="--disc", form="CY,CX,R", count=(3,)) for t in args.disc])
    check_output_folder(args.output, overwrite=args.overwrite, produces=PRODUCES)
    scale = parse_scale(args.scale)
    scan_shape = None
    if args.scan_shape:
        scan_shape = tuple(int(v) for v in parse_numbers(args.scan_shape, name="--scan-shape", form="SY,SX",
                                                         count=(2,)))
    ds = open_4dstem(args.dataset, scan_shape=scan_shape)
    calibration = calibration_from_args(args, ds)
    if calibration.refused:
        raise InputError(calibration.refused)
    discs = check_view_discs(_discs(args, calibration.direct), ds.detector_shape)
    result = reconstruct_views(
        ds, discs, direct=calibration.direct, mrad_per_px=calibration.mrad_per_px,
        scan_rotation_deg=args.scan_rotation, reference=args.reference, detector=args.detector,
        matcher=args.matcher, device=args.device, contrast=CONTRASTS[args.contrast], detect_scale=scale,
        threshold=args.threshold, flips=args.flips, min_baseline_fraction=args.min_baseline_fraction,
        executor=args.executor, provenance={"dataset": str(args.dataset), "calibration": calibration.to_dict()},
        on_progress=text_progress())
    end_progress_line()
    result.save(args.output, overwrite=args.overwrite)
    angles = ", ".join(f"{p['pair'][0]}-{p['pair'][1]}: {p['stereo_angle_deg']:.2f} deg" for p in result.pairs)
    print(f"{len(result.lines)} lines from {len(discs)} views (reference view {result.reference}; pairs {angles}) "
          f"-> {args.output}", file=sys.stdout)
    for hint in result.hints():
        print(f"WARNING (multi-view): no line was reconstructed: {hint}", file=sys.stderr)
    return 0
