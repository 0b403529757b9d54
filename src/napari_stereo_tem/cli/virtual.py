"""``stereo-tem virtual DATASET --disc CY,CX,R [--disc ...] [--convergence-mrad A] -o DIR``.

Writes ``DIR/virtual_00.tif``, ``virtual_01.tif``, ... (float32, one per disc,
in the order given) and ``DIR/detectors.json`` (discs, calibration, stereo
angle in degrees for every pair), DESIGN section 5. A disc holds the detector
pixels whose centres satisfy ``(ky - CY)^2 + (kx - CX)^2 <= R^2``.
"""

from __future__ import annotations


__all__ = ["add_parser", "run"]

#: What the command writes (an existing folder holding only these may be replaced with --overwrite).
PRODUCES = ("virtual_*.tif", "detectors.json")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "virtual", help="virtual images of discs on a 4D-STEM dataset",
        description="Virtual images of several detector discs, computed in one pass over a 4D-STEM dataset, "
                    "with the calibration and the stereo angle of every pair of discs.")
    parser.add_argument("dataset", help="4D-STEM dataset: .mib, .blo, .hspy, .zspy, .emd, .h5, .npy "
                                        "(scan_y, scan_x, det_y, det_x), .zarr, ...")
    parser.add_argument("--disc", action="append", required=True, metavar="CY,CX,R",
                        help="a disc in detector pixels (pixel centres at integers); CY,CX,R,R_INNER for an "
                             "annulus; repeat for more discs")
    parser.add_argument("--convergence-mrad", type=float, default=None,
                        help="convergence semi-angle in mrad: calibrates mrad/px with the direct disc")
    parser.add_argument("--direct-disc", default=None, metavar="CY,CX,R",
                        help="the direct-beam disc (default: found on the mean pattern, or on --vacuum)")
    parser.add_argument("--vacuum", default=None, help="vacuum reference (dataset or one pattern) to find "
                                                       "the direct disc on")
    parser.add_argument("--scan-rotation", type=float, default=0.0,
                        help="scan-to-diffraction rotation in degrees (for the epipolar directions)")
    parser.add_argument("--scan-shape", default=None, metavar="SY,SX",
                        help="reshape a stack of frames to this scan")
    parser.add_argument("--executor", default="inline",
                        help="inline, threads, or a dask scheduler address (tcp://host:8786)")
    parser.add_argument("-o", "--output", required=True,
                        help="output folder (created if needed; written as a whole, an existing result is refused)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing result in the output folder (as a whole)")
    parser.set_defaults(func=run)


def _numbers(text: str, what: str, counts=(3, 4)) -> list[float]:
    from ..checks import InputError

    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in counts:
        raise InputError(f"{what} must be {'CY,CX,R' if 3 in counts else 'SY,SX'} numbers separated by "
                         f"commas, got {text!r}")
    return values


def run(args) -> int:
    import json
    import time
    from pathlib import Path

    import numpy as np
    import tifffile

    from ..atomic import check_output_folder, result_folder
    from ..fourdstem import (
        Disc,
        as_disc,
        epipolar_direction_deg,
        find_direct_beam,
        iter_virtual_images,
        mean_pattern,
        mrad_per_px,
        open_4dstem,
        open_pattern,
        rotation_to_horizontal_deg,
        stereo_angle_deg,
    )
    from ..progress import drive, end_progress_line, text_progress

    discs = [as_disc(_numbers(text, "--disc")) for text in args.disc]
    check_output_folder(args.output, overwrite=args.overwrite, produces=PRODUCES)
    scan_shape = None
    if args.scan_shape:
        scan_shape = tuple(int(v) for v in _numbers(args.scan_shape, "--scan-shape", counts=(2,)))
    ds = open_4dstem(args.dataset, scan_shape=scan_shape)
    t0 = time.perf_counter()
    images = drive(iter_virtual_images(ds, discs, executor=args.executor), text_progress())
    end_progress_line()
    seconds = time.perf_counter() - t0

    calibration = None
    if args.convergence_mrad is not None or args.direct_disc or args.vacuum:
        if args.direct_disc:
            direct, found_on = as_disc(_numbers(args.direct_disc, "--direct-disc")), "given"
        elif args.vacuum:
            direct, found_on = find_direct_beam(open_pattern(args.vacuum)), f"vacuum {args.vacuum}"
        else:
            direct, found_on = find_direct_beam(mean_pattern(ds)), "mean pattern"
        calibration = {"direct_beam": direct.to_dict(), "direct_beam_from": found_on}
        if args.convergence_mrad is not None:
            calibration["convergence_mrad"] = float(args.convergence_mrad)
            calibration["mrad_per_px"] = mrad_per_px(args.convergence_mrad, direct)
    scale = calibration.get("mrad_per_px") if calibration else None

    out = Path(args.output)
    entries = [{**disc.to_dict(), "file": f"virtual_{i:02d}.tif"} for i, disc in enumerate(discs)]
    pairs = []
    for i in range(len(discs)):
        for j in range(i + 1, len(discs)):
            same = isinstance(discs[i], Disc) and discs[i].centre == discs[j].centre
            pairs.append({
                "pair": [i, j],
                "stereo_angle_deg": None if scale is None else stereo_angle_deg(discs[i], discs[j], scale),
                "epipolar_direction_deg": None if same else
                epipolar_direction_deg(discs[i], discs[j], scan_rotation_deg=args.scan_rotation),
                "rotation_to_horizontal_deg": None if same else
                rotation_to_horizontal_deg(discs[i], discs[j], scan_rotation_deg=args.scan_rotation),
            })
    record = {
        "dataset": {k: ds.metadata.get(k) for k in ("source", "reader", "shape", "dtype")},
        "pixel_convention": "disc holds detector pixels with (ky-CY)^2+(kx-CX)^2 <= R^2, pixel centres at integers",
        "discs": entries,
        "calibration": calibration,
        "scan_rotation_deg": args.scan_rotation,
        "pairs": pairs,
        "executor": str(args.executor),
        "seconds": round(seconds, 3),
    }
    if scale is None:
        record["note"] = "stereo angles need --convergence-mrad"
    with result_folder(out, overwrite=args.overwrite, produces=PRODUCES) as tmp:
        for entry, image in zip(entries, images):
            tifffile.imwrite(tmp / entry["file"], np.asarray(image, dtype=np.float32))
        (tmp / "detectors.json").write_text(json.dumps(record, indent=2))
    angles = ", ".join(f"{p['pair'][0]}-{p['pair'][1]}: {p['stereo_angle_deg']:.2f} deg"
                       for p in pairs if p["stereo_angle_deg"] is not None)
    print(f"{len(discs)} virtual image(s) {images.shape[1]}x{images.shape[2]} in {seconds:.2f}s -> {out}"
          + (f" ({angles})" if angles else ""))
    return 0
