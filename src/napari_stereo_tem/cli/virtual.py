"""``stereo-tem virtual DATASET --disc CY,CX,R [--disc ...] [--convergence-mrad A] -o DIR``.

Writes ``DIR/virtual_00.tif``, ``virtual_01.tif``, ... (float32, one per disc,
in the order given) and ``DIR/detectors.json`` (discs, calibration, stereo
angle in degrees for every pair), DESIGN section 5. A disc holds the detector
pixels whose centres satisfy ``(ky - CY)^2 + (kx - CX)^2 <= R^2``. With
``--pair I,J`` also ``DIR/left.tif`` and ``DIR/right.tif``: the stereo pair of
discs I and J, rotated so that disparities run along +x (the same core call as
the napari widget's "Use as stereo pair").
"""

from __future__ import annotations


__all__ = ["add_parser", "run"]

#: What the command writes (an existing folder holding only these may be replaced with --overwrite).
PRODUCES = ("virtual_*.tif", "detectors.json", "left.tif", "right.tif")


def add_parser(subparsers) -> None:
    from .calibration_options import add_calibration_options

    parser = subparsers.add_parser(
        "virtual", help="virtual images of discs on a 4D-STEM dataset",
        description="Virtual images of several detector discs, computed in one pass over a 4D-STEM dataset, "
                    "with the calibration and the stereo angle of every pair of discs.")
    parser.add_argument("dataset", help="4D-STEM dataset: .mib, .blo, .hspy, .zspy, .emd, .h5, .npy "
                                        "(scan_y, scan_x, det_y, det_x), .zarr, ...")
    parser.add_argument("--disc", action="append", required=True, metavar="CY,CX,R",
                        help="a disc in detector pixels (pixel centres at integers); CY,CX,R,R_INNER for an "
                             "annulus; repeat for more discs")
    add_calibration_options(parser, convergence_help="convergence semi-angle in mrad: calibrates mrad/px with "
                                                     "the direct disc")
    parser.add_argument("--scan-rotation", type=float, default=0.0,
                        help="scan-to-diffraction rotation in degrees (for the epipolar directions)")
    parser.add_argument("--scan-shape", default=None, metavar="SY,SX",
                        help="reshape a stack of frames to this scan")
    parser.add_argument("--executor", default="inline",
                        help="inline, threads, or a dask scheduler address (tcp://host:8786): where the mean "
                             "pattern, the beam centres and the virtual images are computed")
    parser.add_argument("--descan", action="store_true",
                        help="measure the direct-beam centre at every scan position and move the discs with it "
                             "(sub-pixel, inside the same pass)")
    parser.add_argument("--pair", default=None, metavar="I,J",
                        help="also write left.tif/right.tif: discs I and J as a stereo pair, rotated so that "
                             "disparities are horizontal (needs the calibration)")
    parser.add_argument("-o", "--output", required=True,
                        help="output folder (created if needed; written as a whole, an existing result is refused)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing result in the output folder (as a whole)")
    parser.set_defaults(func=run)


def _numbers(text: str, what: str, counts=(3, 4)) -> list[float]:
    from ..checks import parse_numbers

    form = "CY,CX,R[,R_INNER]" if 3 in counts else ("I,J" if what == "--pair" else "SY,SX")
    return list(parse_numbers(text, name=what, form=form, count=counts) or ())


def run(args) -> int:
    import json
    import sys
    import time
    from pathlib import Path

    import numpy as np
    import tifffile

    from ..atomic import check_output_folder, result_folder
    from ..checks import InputError
    from ..fourdstem import as_disc, compose_stereo_pair, iter_beam_centres, iter_virtual_images, open_4dstem, pair_geometry
    from ..progress import drive, end_progress_line, text_progress
    from .calibration_options import calibration_from_args

    discs = [as_disc(_numbers(text, "--disc")) for text in args.disc]
    pair = None
    if args.pair:
        pair = [int(v) for v in _numbers(args.pair, "--pair", counts=(2,))]
        if not all(0 <= v < len(discs) for v in pair) or pair[0] == pair[1]:
            raise InputError(f"--pair {args.pair}: give two different disc numbers between 0 and {len(discs) - 1}")
    check_output_folder(args.output, overwrite=args.overwrite, produces=PRODUCES)
    scan_shape = None
    if args.scan_shape:
        scan_shape = tuple(int(v) for v in _numbers(args.scan_shape, "--scan-shape", counts=(2,)))
    ds = open_4dstem(args.dataset, scan_shape=scan_shape)
    decision = ds.metadata.get("axes_decision")
    if decision:
        print(f"axes: {decision['text']}")

    calibration = None
    if args.convergence_mrad is not None or args.direct_disc or args.vacuum or args.descan:
        calibration = calibration_from_args(args, ds)
        if calibration.refused:
            print(f"WARNING: {calibration.refused}. No stereo angle is computed.", file=sys.stderr)
    scale = calibration.mrad_per_px if calibration else None

    centres = None
    if args.descan:
        if calibration is None or calibration.refused:
            raise InputError("--descan needs the direct beam; it was not found clearly (give --direct-disc)")
        centres = drive(iter_beam_centres(ds, direct=calibration.direct, executor=args.executor), text_progress())
        end_progress_line()
    t0 = time.perf_counter()
    images = drive(iter_virtual_images(ds, discs, executor=args.executor, descan=centres), text_progress())
    end_progress_line()
    seconds = time.perf_counter() - t0
    stereo = None
    if pair is not None:
        stereo = compose_stereo_pair(images[pair[0]], images[pair[1]], discs[pair[0]], discs[pair[1]],
                                     mrad_per_px=scale, scan_rotation_deg=args.scan_rotation,
                                     provenance={"source": str(ds.metadata.get("source", "")), "pair": pair})

    out = Path(args.output)
    entries = [{**disc.to_dict(), "file": f"virtual_{i:02d}.tif"} for i, disc in enumerate(discs)]
    pairs = pair_geometry(discs, mrad_per_px=scale, scan_rotation_deg=args.scan_rotation)
    record = {
        "dataset": {k: ds.metadata.get(k) for k in ("source", "reader", "shape", "dtype", "axes_decision")},
        "pixel_convention": "disc holds detector pixels with (ky-CY)^2+(kx-CX)^2 <= R^2, pixel centres at integers",
        "discs": entries,
        "calibration": None if calibration is None else calibration.to_dict(),
        "scan_rotation_deg": args.scan_rotation,
        "pairs": pairs,
        "descan": None if centres is None else {"reference": "median beam centre", "subpixel": True},
        "executor": str(args.executor),
        "seconds": round(seconds, 3),
    }
    if stereo is not None:
        record["stereo_pair"] = {**stereo.metadata, "files": ["left.tif", "right.tif"]}
    if scale is None:
        record["note"] = calibration.refused if calibration is not None and calibration.refused else \
            "stereo angles need --convergence-mrad"
    with result_folder(out, overwrite=args.overwrite, produces=PRODUCES) as tmp:
        for entry, image in zip(entries, images):
            tifffile.imwrite(tmp / entry["file"], np.asarray(image, dtype=np.float32))
        if stereo is not None:
            tifffile.imwrite(tmp / "left.tif", stereo.left.astype(np.float32))
            tifffile.imwrite(tmp / "right.tif", stereo.right.astype(np.float32))
        (tmp / "detectors.json").write_text(json.dumps(record, indent=2))
    angles = ", ".join(f"{p['pair'][0]}-{p['pair'][1]}: {p['stereo_angle_deg']:.2f} deg"
                       for p in pairs if p["stereo_angle_deg"] is not None)
    print(f"{len(discs)} virtual image(s) {images.shape[1]}x{images.shape[2]} in {seconds:.2f}s -> {out}"
          + (f" ({angles})" if angles else ""))
    return 0
