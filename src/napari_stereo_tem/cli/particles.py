"""``stereo-tem particles A B C D --beta DEG[,DEG...] [--azimuths 0,90,180,270] [--pixel-size NM] -o DIR``.

Or from one 4D-STEM scan: ``stereo-tem particles --4dstem DATASET --quadrants OFFSET[,R]
--convergence-mrad A -o DIR`` (four virtual discs around the direct beam; beta and the
azimuths come from their positions, :mod:`napari_stereo_tem.fourdstem.quadrants`).
"""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]


def _floats(text: str) -> list[float]:
    from ..checks import InputError, parse_numbers

    try:
        return list(parse_numbers(text, name="the value") or ())
    except InputError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_parser(subparsers) -> None:
    from .calibration_options import add_calibration_options

    p = subparsers.add_parser(
        "particles",
        help="3D nanoparticle positions and g(r) from four detector views",
        description="Detect particles in each view, match them along the detector directions, fit them to all "
                    "views at once (touching particles together; particles merged with a neighbour in one view "
                    "found in the residuals; pairs merged in every view split), and write DIR/points.csv "
                    "(x,y,z,radius,std_x,std_y,std_z, pixels; std = standard deviation from the fit), DIR/rdf.csv "
                    "(r,g), DIR/points_three_view.csv, DIR/particles.json (counts, the expected localisation floor "
                    "for the noise and beta of these views) and DIR/rdf.png.",
    )
    p.add_argument("views", nargs="*", metavar="VIEW",
                   help="the views A B C D (TIFF, PNG, .npy, microscope files), or one file holding them as a stack "
                        "of frames in that order")
    p.add_argument("--beta", type=_floats, default=None, metavar="DEG[,DEG...]",
                   help="view angle: a particle at height Z shifts by Z sin(beta) in each view (needed with views); "
                        "one for all views, or one per view in the order of the views")
    scan = p.add_argument_group("from one 4D-STEM scan (instead of the views, --beta and --azimuths)")
    scan.add_argument("--4dstem", dest="fourdstem", default=None, metavar="DATASET",
                      help="a 4D-STEM dataset (.npy, .mib, .hspy, ...): four virtual discs make the four views")
    scan.add_argument("--quadrants", default=None, metavar="OFFSET[,R]",
                      help="four discs at OFFSET detector pixels around the direct beam, of radius R (default "
                           "OFFSET / 2); beta = OFFSET * mrad/px")
    scan.add_argument("--disc", action="append", default=None, metavar="CY,CX,R",
                      help="a disc instead of --quadrants (repeat: three or more; discs at different distances from "
                           "the beam give every view its own beta)")
    scan.add_argument("--quadrant-azimuth", type=float, default=0.0, metavar="DEG",
                      help="direction of the first quadrant disc on the detector, from +kx towards +ky (default 0)")
    add_calibration_options(scan, convergence_help="convergence semi-angle in mrad (calibrates mrad/px with the "
                                                   "direct disc; required)", vacuum=False)
    scan.add_argument("--scan-rotation", type=float, default=0.0, metavar="DEG",
                      help="scan-to-diffraction rotation in degrees (turns the disc directions into the image)")
    scan.add_argument("--executor", default="inline", help="inline, threads, or a dask scheduler address")
    p.add_argument("--azimuths", type=_floats, default=[0.0, 90.0, 180.0, 270.0], metavar="LIST",
                   help="shift direction of each view in degrees from +x towards +y (default 0,90,180,270)")
    p.add_argument("--pixel-size", type=float, default=None, metavar="NM", help="nm per pixel (g(r) in nm)")
    p.add_argument("--method", choices=["auto", "log", "hough", "threshold"], default="auto",
                   help="detector (default auto: LoG with a noise-based threshold)")
    p.add_argument("--sigma", type=float, default=None, help="Gaussian denoising in pixels (default 1)")
    p.add_argument("--threshold", type=float, default=None,
                   help="manual detection threshold (noise standard deviations for log/threshold)")
    p.add_argument("--radius-range", type=_floats, default=None, metavar="MIN,MAX",
                   help="particle radii to look for, pixels (default 2,10, or about the particles' own radius "
                        "when the views show clearly larger ones)")
    p.add_argument("--polarity", choices=["dark", "bright", "auto"], default="auto",
                   help="particles darker (bright field) or brighter (dark field, HAADF) than the background; "
                        "default auto: decided from the views")
    p.add_argument("--tolerance", type=float, default=1.5, help="matching tolerance in pixels (default 1.5)")
    p.add_argument("--max-shift", type=float, default=8.0,
                   help="largest shift of a particle between views and its mean position, pixels (default 8)")
    p.add_argument("--no-refine", dest="refine", action="store_false",
                   help="keep the matched positions, without standard deviations (default: fit the particles to "
                        "all views at once, search the residuals for missed ones, split points that are two "
                        "particles merged in every view)")
    p.add_argument("--r-max", type=float, default=None, help="g(r) range in pixels (default 8 median radii)")
    p.add_argument("--bins", type=int, default=None, help="g(r) bins (default one per pixel)")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="output folder (written as a whole; an existing result is refused)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing result in the output folder (as a whole)")
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from ..checks import InputError
    from ..atomic import check_output_folder
    from ..particles.detection import DEFAULT_RADIUS_RANGE
    from ..particles.pipeline import RESULT_FILES, write_particle_result

    if args.radius_range is not None and len(args.radius_range) != 2:
        raise InputError(f"--radius-range needs MIN,MAX, got {args.radius_range}")
    check_output_folder(args.output, overwrite=args.overwrite, produces=RESULT_FILES)
    options = dict(pixel_size=args.pixel_size, method=args.method, sigma=args.sigma, threshold=args.threshold,
                   radius_range=None if args.radius_range is None else tuple(args.radius_range),
                   polarity=args.polarity, tolerance=args.tolerance,
                   max_shift_px=args.max_shift, refine=args.refine, r_max=args.r_max, n_bins=args.bins)
    if args.fourdstem is not None:
        result = _from_scan(args, options)
    else:
        result = _from_views(args, options)
    paths = write_particle_result(result, args.output, overwrite=args.overwrite)
    counts = result.reconstruction.counts
    detection = result.params.get("detection", {})
    read_as = {"dark": "darker", "bright": "brighter"}.get(detection.get("polarity"), "?")
    decided = " (decided from the views; --polarity to set it)" if detection.get("polarity_asked") == "auto" else ""
    if detection.get("radius_range_asked") is None and detection.get("radius_range") is not None \
            and tuple(detection["radius_range"]) != DEFAULT_RADIUS_RANGE:
        low, high = detection["radius_range"]
        print(f"particles larger than the default radii: looked for radii of {low:.1f}-{high:.1f} px (from the "
              "views; --radius-range to set it)")
    print(f"particles {read_as} than the background{decided}; detected per view {counts['detected_per_view']}, "
          f"matched in all views {counts['matched_all_views']}, in three views {counts['matched_three_views']}; "
          f"wrote {paths['points'].parent}")
    floor = result.reconstruction.params.get("refinement", {}).get("localisation_floor_px")
    std = result.reconstruction.std
    if floor and std is not None and len(std):
        median = np.nanmedian(std, axis=0)
        print(f"precision: median std x {median[0]:.2g}, y {median[1]:.2g}, z {median[2]:.2g} px; an isolated "
              f"particle at this noise and beta: x {floor['x']:.2g}, y {floor['y']:.2g}, z {floor['z']:.2g} px")
    return 0


def _from_views(args, options):
    from pathlib import Path

    from ..checks import InputError
    from ..particles.pipeline import reconstruct_particles_iter
    from ..progress import drive, end_progress_line, text_progress

    if not args.views:
        raise InputError("give the four views A B C D, or a 4D-STEM scan with --4dstem DATASET --quadrants OFFSET")
    if args.beta is None:
        raise InputError("--beta DEG is needed with views (the view angle of the detector segments)")
    if args.quadrants or args.disc or args.direct_disc or args.convergence_mrad is not None:
        raise InputError("--quadrants, --disc, --direct-disc and --convergence-mrad belong with --4dstem DATASET")
    seen = {}
    for view in args.views:
        key = Path(view).resolve() if Path(view).exists() else view
        if key in seen:
            raise InputError(f"{seen[key]} and {view} are the same file; give the four different views A B C D "
                             "(the heights would come out flat)")
        seen[key] = view
    views = args.views
    if len(views) == 1:  # one file holding the views as frames (a segmented detector's export)
        from ..stereo.frame_stack import read_stack

        views = read_stack(views[0], name="VIEW", what="the detector views")
        print(f"{args.views[0]}: {len(views)} views, taken as " + ", ".join("ABCDEFGH"[:len(views)]))
    beta = args.beta[0] if len(args.beta) == 1 else args.beta
    result = drive(reconstruct_particles_iter(views, beta_deg=beta, azimuths_deg=args.azimuths, **options),
                   text_progress())
    end_progress_line()
    return result


def _from_scan(args, options):
    import sys

    from ..checks import InputError, parse_numbers
    from ..fourdstem import open_4dstem
    from ..fourdstem.quadrants import iter_particles_from_4dstem, quadrant_discs
    from ..particles.geometry import format_beta
    from ..progress import drive, end_progress_line, text_progress
    from .calibration_options import calibration_from_args

    if args.views:
        raise InputError(f"give either the views ({' '.join(args.views)}) or --4dstem DATASET, not both")
    if args.beta is not None:
        raise InputError("--beta is computed from the disc positions with --4dstem; leave it out")
    if bool(args.quadrants) == bool(args.disc):
        raise InputError("with --4dstem give the discs: --quadrants OFFSET[,R] (four around the direct beam) or "
                         "three or more --disc CY,CX,R")
    if args.convergence_mrad is None:
        raise InputError("--convergence-mrad A is needed: the view angle beta comes from the disc positions in mrad")
    ds = open_4dstem(args.fourdstem)
    calibration = calibration_from_args(args, ds)
    if calibration.refused:
        raise InputError(f"{calibration.refused}; give --direct-disc CY,CX,R")
    direct = calibration.direct
    if args.quadrants:
        values = parse_numbers(args.quadrants, name="--quadrants", count=(1, 2), form="OFFSET[,R]")
        offset = values[0]
        radius = values[1] if len(values) > 1 else offset / 2.0
        discs = quadrant_discs(direct, offset, radius, first_azimuth_deg=args.quadrant_azimuth)
    else:
        discs = [parse_numbers(text, name="--disc", count=3, form="CY,CX,R") for text in args.disc]
    work = iter_particles_from_4dstem(ds, discs, direct, mrad_per_px=calibration.mrad_per_px,
                                      scan_rotation_deg=args.scan_rotation, executor=args.executor, **options)
    scan = drive(work, text_progress())
    end_progress_line()
    scan.result.params["calibration"] = calibration.to_dict()
    print(f"direct beam ({direct.cy:.2f}, {direct.cx:.2f}) r {direct.radius:.2f} px, "
          f"{calibration.mrad_per_px:.4g} mrad/px; {len(discs)} discs: {format_beta(scan.beta_deg)}, azimuths "
          + ", ".join(f"{a:.1f}" for a in scan.azimuths_deg) + " deg", file=sys.stderr)
    return scan.result
