"""``stereo-tem particles A B C D --beta DEG [--azimuths 0,90,180,270] [--pixel-size NM] -o DIR``."""

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
    p.add_argument("views", nargs="+", metavar="VIEW", help="the views A B C D (TIFF, PNG, .npy, microscope files)")
    p.add_argument("--beta", type=float, required=True, metavar="DEG",
                   help="view angle: a particle at height Z shifts by Z sin(beta) in each view")
    p.add_argument("--azimuths", type=_floats, default=[0.0, 90.0, 180.0, 270.0], metavar="LIST",
                   help="shift direction of each view in degrees from +x towards +y (default 0,90,180,270)")
    p.add_argument("--pixel-size", type=float, default=None, metavar="NM", help="nm per pixel (g(r) in nm)")
    p.add_argument("--method", choices=["auto", "log", "hough", "threshold"], default="auto",
                   help="detector (default auto: LoG with a noise-based threshold)")
    p.add_argument("--sigma", type=float, default=None, help="Gaussian denoising in pixels (default 1)")
    p.add_argument("--threshold", type=float, default=None,
                   help="manual detection threshold (noise standard deviations for log/threshold)")
    p.add_argument("--radius-range", type=_floats, default=[2.0, 10.0], metavar="MIN,MAX",
                   help="particle radii to look for, pixels (default 2,10)")
    p.add_argument("--polarity", choices=["dark", "bright", "auto"], default="dark",
                   help="particles darker (bright field, default) or brighter than the background")
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
    from pathlib import Path

    import numpy as np

    from ..checks import InputError
    from ..atomic import check_output_folder
    from ..particles.pipeline import RESULT_FILES, reconstruct_particles_iter, write_particle_result
    from ..progress import drive, end_progress_line, text_progress

    if len(args.radius_range) != 2:
        raise InputError(f"--radius-range needs MIN,MAX, got {args.radius_range}")
    check_output_folder(args.output, overwrite=args.overwrite, produces=RESULT_FILES)
    seen = {}
    for view in args.views:
        key = Path(view).resolve() if Path(view).exists() else view
        if key in seen:
            raise InputError(f"{seen[key]} and {view} are the same file; give the four different views A B C D "
                             "(the heights would come out flat)")
        seen[key] = view
    work = reconstruct_particles_iter(
        args.views, beta_deg=args.beta, azimuths_deg=args.azimuths, pixel_size=args.pixel_size,
        method=args.method, sigma=args.sigma, threshold=args.threshold, radius_range=tuple(args.radius_range),
        polarity=args.polarity, tolerance=args.tolerance, max_shift_px=args.max_shift, refine=args.refine,
        r_max=args.r_max,
        n_bins=args.bins)
    result = drive(work, text_progress())
    end_progress_line()
    paths = write_particle_result(result, args.output, overwrite=args.overwrite)
    counts = result.reconstruction.counts
    print(f"detected per view {counts['detected_per_view']}, matched in all views {counts['matched_all_views']}, "
          f"in three views {counts['matched_three_views']}; wrote {paths['points'].parent}")
    floor = result.reconstruction.params.get("refinement", {}).get("localisation_floor_px")
    std = result.reconstruction.std
    if floor and std is not None and len(std):
        median = np.nanmedian(std, axis=0)
        print(f"precision: median std x {median[0]:.2g}, y {median[1]:.2g}, z {median[2]:.2g} px; an isolated "
              f"particle at this noise and beta: x {floor['x']:.2g}, y {floor['y']:.2g}, z {floor['z']:.2g} px")
    return 0
