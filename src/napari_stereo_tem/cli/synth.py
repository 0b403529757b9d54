"""``stereo-tem synth stereo|4dstem|4dstem-particles|particles|dataset --seed N [...] -o DIR``: synthetic data.

- ``stereo``: ``DIR/left.tif``, ``right.tif``, ``mask_left.tif``, ``mask_right.tif``,
  ``disparity_left.tif``, ``disparity_right.tif``, ``lines_3d.csv``, ``params.json``.
- ``4dstem``: ``DIR/data.npy`` (or ``data.zarr``, ``data.zspy``), shape ``(scan_y, scan_x, det_y, det_x)``,
  ``DIR/params.json`` (disc centre, radius, mrad per pixel, every parameter),
  ``DIR/lines_3d.csv`` (``line_id,x,y,z`` in scan pixels).
- ``4dstem-particles``: ``DIR/data.npy``, a 4D-STEM scan of hard-sphere particles
  (:mod:`napari_stereo_tem.synth.fourdstem_particles`), ``DIR/params.json`` and
  ``DIR/truth.csv`` (``x,y,z,radius`` in scan pixels).
- ``particles``: the four views and their truth, as written by
  ``napari_stereo_tem.synth.particles``.
- ``dataset``: a training set of ``-n`` stereo scenes with train/val/test splits
  (layout in ``DIR/README.md``).
"""

from __future__ import annotations

__all__ = ["add_parser", "run"]


def _pair(text: str, what: str, cast=int):
    from ..checks import parse_numbers

    return parse_numbers(text, name=what, count=2, kind=cast, example="512,512")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "synth", help="synthetic stereo pairs, 4D-STEM datasets, particle sets, training sets (with truth)",
        description="Write synthetic data and all of its ground truth (DESIGN 3.8). The same seed gives the "
                    "same bytes.")
    parser.add_argument("kind", choices=["stereo", "4dstem", "4dstem-particles", "particles", "dataset"])
    parser.add_argument("--seed", type=int, default=0, help="seed (see napari_stereo_tem.synth.seeds for splits)")
    parser.add_argument("-o", "--output", required=True, help="output folder (created if needed)")
    parser.add_argument("--shape", default="512,512", metavar="ROWS,COLS", help="image shape (stereo, particles)")
    parser.add_argument("--dose", type=float, default=None,
                        help="electrons per pixel for Poisson noise (stereo: default random 100-5000, 0 = none; "
                             "4dstem: per disc pixel, default 200)")
    stereo = parser.add_argument_group("stereo / dataset")
    stereo.add_argument("--angle", type=float, default=8.0, help="stereo angle in degrees (views at -/+ half)")
    stereo.add_argument("--tilts", default=None, metavar="LEFT,RIGHT", help="explicit (asymmetric) tilts, degrees")
    stereo.add_argument("--dark-field", action="store_true", help="bright lines on a dark background")
    stereo.add_argument("--background", default="perlin",
                        help="perlin, plain, or an image file used as a real background patch")
    stereo.add_argument("--groups", type=int, default=None, help="number of dislocation groups (pile-ups)")
    stereo.add_argument("--loops", action="store_true", help="add dislocation loops")
    stereo.add_argument("--no-distractors", action="store_true", help="no slip traces or grain boundaries")
    stereo.add_argument("--thickness", type=float, default=None, help="foil thickness in pixels")
    stereo.add_argument("-n", "--n-scenes", type=int, default=100, help="dataset: number of scenes")
    stereo.add_argument("--splits", default="0.8,0.1,0.1", help="dataset: train,val,test fractions")
    four = parser.add_argument_group("4dstem, 4dstem-particles")
    four.add_argument("--scan", default=None, metavar="SY,SX", help="scan shape (default 32,32; particles 96,96)")
    four.add_argument("--detector", default="32,32", metavar="DY,DX", help="detector shape")
    four.add_argument("--radius", type=float, default=None,
                      help="direct-disc radius, detector pixels (default 8; particles 12)")
    four.add_argument("--convergence-mrad", type=float, default=None,
                      help="convergence semi-angle, mrad (default 20; particles 70)")
    four.add_argument("--scan-rotation", type=float, default=0.0, help="detector-to-scan rotation, degrees")
    four.add_argument("--format", choices=["npy", "zarr", "zspy"], default="npy", help="4D array format")
    parts = parser.add_argument_group("particles")
    parts.add_argument("--n-particles", type=int, default=100)
    parts.add_argument("--beta", type=float, default=2.0, help="view tilt beta, degrees")
    parts.add_argument("--azimuths", default="0,90,180,270", help="azimuths psi_k of the four views, degrees")
    parser.set_defaults(func=run)


def _background(text: str):
    from pathlib import Path

    from ..checks import InputError

    if text in ("perlin", "plain"):
        return text
    path = Path(text)
    if not path.exists():
        raise InputError(f"--background must be perlin, plain or an image file; {text!r} does not exist")
    import imageio.v3 as iio
    import numpy as np

    image = np.asarray(iio.imread(path), dtype=float)
    return image.mean(axis=-1) if image.ndim == 3 else image


def _stereo_options(args) -> dict:
    options = {"shape": _pair(args.shape, "--shape"), "stereo_angle_deg": args.angle,
               "dark_field": args.dark_field, "background": _background(args.background), "dose": args.dose,
               "n_groups": args.groups, "loops": args.loops, "distractors": not args.no_distractors,
               "foil_thickness": args.thickness}
    if args.tilts is not None:
        options["tilts_deg"] = _pair(args.tilts, "--tilts", float)
    return options


def run(args) -> int:
    import sys
    from pathlib import Path

    from ..checks import parse_numbers
    from ..progress import end_progress_line, text_progress
    from ..stereo.lines_io import write_lines_csv

    out = Path(args.output)
    if args.kind == "stereo":
        from ..synth.stereo import make_stereo_pair

        sample = make_stereo_pair(args.seed, **_stereo_options(args))
        sample.save(out)
        print(f"wrote a {sample.left.shape[0]}x{sample.left.shape[1]} stereo pair "
              f"({len(sample.lines_3d)} lines, stereo angle {sample.stereo_angle_deg:g} deg) to {out}")
    elif args.kind == "4dstem":
        from ..progress import text_progress
        from ..synth.fourdstem import simulate_4dstem

        show = text_progress()
        out.mkdir(parents=True, exist_ok=True)
        sample = simulate_4dstem(
            seed=args.seed, scan_shape=_pair(args.scan or "32,32", "--scan"),
            detector_shape=_pair(args.detector, "--detector"), disc_radius_px=args.radius or 8.0,
            convergence_mrad=args.convergence_mrad or 20.0,
            dose=200.0 if args.dose is None else (None if args.dose <= 0 else args.dose),
            scan_rotation_deg=args.scan_rotation, path=out / f"data.{args.format}",
            foil_thickness=args.thickness, n_groups=args.groups, loops=args.loops,
            progress=show)
        sys.stderr.write("\n")
        (out / f"data.{args.format}.json").replace(out / "params.json")
        write_lines_csv(out / "lines_3d.csv", sample.lines_3d, decimals=6)
        print(f"wrote a {tuple(sample.data.shape)} 4D-STEM dataset to {out / f'data.{args.format}'} "
              f"(disc at {sample.centre[0]:.2f},{sample.centre[1]:.2f} r={sample.radius:g}, "
              f"{sample.mrad_per_px:.3g} mrad/px)")
    elif args.kind == "4dstem-particles":
        from ..synth.fourdstem_particles import simulate_4dstem_particles

        out.mkdir(parents=True, exist_ok=True)
        sample = simulate_4dstem_particles(
            seed=args.seed, n_particles=args.n_particles, scan_shape=_pair(args.scan or "96,96", "--scan"),
            detector_shape=_pair(args.detector, "--detector"), disc_radius_px=args.radius or 12.0,
            convergence_mrad=args.convergence_mrad or 70.0,
            dose=20.0 if args.dose is None else (None if args.dose <= 0 else args.dose),
            scan_rotation_deg=args.scan_rotation, slab_thickness_px=args.thickness or 60.0,
            path=out / "data.npy", progress=text_progress())
        end_progress_line()
        (out / "data.npy.json").replace(out / "params.json")
        (out / "data.npy.truth.csv").replace(out / "truth.csv")
        print(f"wrote a {tuple(sample.data.shape)} 4D-STEM scan of {len(sample.positions)} particles to "
              f"{out / 'data.npy'} (disc at {sample.centre[0]:.2f},{sample.centre[1]:.2f} r={sample.radius:g}, "
              f"{sample.mrad_per_px:.3g} mrad/px; truth in truth.csv)")
    elif args.kind == "particles":
        from ..synth.particles import simulate_particle_views

        azimuths = parse_numbers(args.azimuths, name="--azimuths", example="0,90,180,270")
        sample = simulate_particle_views(args.n_particles, seed=args.seed, beta_deg=args.beta,
                                         azimuths_deg=azimuths, shape=_pair(args.shape, "--shape"))
        sample.save(out)
        print(f"wrote a {args.n_particles}-particle four-view set to {out}")
    else:
        from ..progress import drive, text_progress
        from ..synth.dataset import build_training_set

        splits = parse_numbers(args.splits, name="--splits", count=3, example="0.8,0.1,0.1")
        drive(build_training_set(out, args.n_scenes, seed=args.seed, splits=splits, **_stereo_options(args)),
              text_progress())
        sys.stderr.write("\n")
        print(f"wrote {args.n_scenes} scenes to {out} (layout in {out / 'README.md'})")
    return 0
