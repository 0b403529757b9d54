"""``stereo-tem reconstruct LEFT RIGHT --angle DEG -o DIR``: 3D dislocation lines from a stereo pair.

Writes ``DIR/lines.csv`` (``line_id,x,y,z``, pixels, one row per point, points
of a line in order), ``DIR/result.json`` (provenance, timings per stage,
rectification figures) and ``DIR/preview.png`` (DESIGN section 5).

``stereo-tem reconstruct --pairs LIST --angle DEG -o DIR`` runs many pairs in
one process (start-up and model loading paid once), writing ``DIR/NAME/`` per
pair (:mod:`napari_stereo_tem.stereo.pair_list`); a pair that fails is reported and
the others go on.

``stereo-tem reconstruct --series STACK --angle STEP -o DIR`` (or ``--tilts`` with one
tilt per view) takes a tilt series in tilt order: one tilt axis is fitted to all its
adjacent pairs (:func:`napari_stereo_tem.stereo.alignment.align_series`; or
``--tilt-axis``), each pair is reconstructed with it into ``DIR/views_KK-LL/``, and
``DIR/series.json`` holds the common axis, each pair's own axis, shift and figures.
"""

from __future__ import annotations


__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "reconstruct", help="3D dislocation lines from a stereo pair",
        description="Rectify, detect, match, refine and triangulate the dislocations of a stereo pair.")
    parser.add_argument("left", nargs="?",
                        help="left view (the -phi/2 view): TIFF, PNG, .dm3/.dm4, .emd, .hspy, .npy, ...")
    parser.add_argument("right", nargs="?", help="right view (the +phi/2 view)")
    parser.add_argument("--pairs", default=None, metavar="LIST",
                        help="many pairs in one run instead of LEFT RIGHT: a text file of 'LEFT RIGHT [NAME]' "
                             "lines, or a folder of pair folders (left.* and right.* each); writes DIR/NAME/")
    parser.add_argument("--series", default=None, metavar="STACK",
                        help="a tilt series instead of LEFT RIGHT: a TIFF or MRC stack (.mrc, .st, .ali), a "
                             "microscope file (.dm4, .emd, ...), a .npy or a folder of images; the tilts from --angle "
                             "(the series in tilt order), --tilts or STACK.rawtlt / STACK.tlt beside it (then in any "
                             "order: the views are sorted by tilt); one tilt axis for all adjacent pairs (or "
                             "--tilt-axis), each pair reconstructed into DIR/views_KK-LL/, DIR/series.json beside")
    parser.add_argument("--signal", default=None, metavar="N|TITLE",
                        help="with --series: which stack of a microscope file that holds several (number from 0 or "
                             "title; default the first)")
    angles = parser.add_mutually_exclusive_group()
    angles.add_argument("--angle", type=float, default=None,
                        help="stereo angle in degrees (default: from the files' tilt metadata); with --series the "
                             "tilt step between adjacent views")
    angles.add_argument("--tilts", default=None, metavar="A,B",
                        help="the tilts of the left and right view in degrees, for asymmetric pairs, written "
                             "--tilts=-3,9.5 (the stereo angle is B - A); with --series one tilt per view")
    parser.add_argument("--frame", choices=("mean", "specimen"), default="mean",
                        help="frame of the 3D points: 'mean' (z along the beam at the mean tilt, default) or "
                             "'specimen' (z along the foil normal at zero tilt; needs --tilts)")
    parser.add_argument("--tilt-axis", type=float, default=None, metavar="DEG",
                        help="known tilt-axis angle off the image's vertical, degrees (e.g. from the microscope's "
                             "calibration); default: found from the images")
    parser.add_argument("--shift", default=None, metavar="DX,DY",
                        help="known shift in pixels of a zero-depth feature from the left to the right view, "
                             "written --shift=-14,9; default: found from the images")
    parser.add_argument("--points", default=None, metavar="CSV",
                        help="corresponding points clicked in both views: a CSV with columns "
                             "x_left,y_left,x_right,y_right (at least 3 rows); the rectification fits them only")
    parser.add_argument("--rectify-anyway", action="store_true",
                        help="go on with loud warnings when the rectification is not sure (default: refuse)")
    parser.add_argument("--pixel-size", type=float, default=None, help="nm per pixel (recorded in result.json)")
    parser.add_argument("--swap", action="store_true", help="exchange the views")
    parser.add_argument("--no-rectify", action="store_true", help="the pair is already rectified")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--detector", default=None, help="detector version or weights path (default: selected)")
    parser.add_argument("--contrast", choices=("auto", "bright", "dark"), default="auto",
                        help="bright field (dark lines), dark field (bright lines), or auto (default)")
    parser.add_argument("--detect-scale", default="auto", metavar="auto|none|F",
                        help="resize factor for detection: auto (default: lines made as wide as in training), "
                             "none, or a number such as 0.5")
    parser.add_argument("--matcher", default=None, help="matcher version or weights path (default matcher_v1)")
    parser.add_argument("--disparity-range", default=None, metavar="MIN,MAX",
                        help="signed disparity range in pixels, written --disparity-range=-24,24 "
                             "(default: the matcher's)")
    parser.add_argument("--no-refine", action="store_true", help="keep the raw matcher disparities")
    parser.add_argument("--line-model", choices=("fit", "legacy"), default="fit",
                        help="fit (default): disparity measured in the images along each line, one robust smooth "
                             "curve per line, a depth standard deviation per point (column depth_std of lines.csv); "
                             "legacy: the refined disparities smoothed, no uncertainty")
    parser.add_argument("--no-lr-check", action="store_true",
                        help="keep points whose disparity the matcher run from the right view does not confirm "
                             "(by default they are left out and the line's curve fills them in)")
    parser.add_argument("--line-instances", action="store_true",
                        help="with --line-model fit: one disparity curve per dislocation instance of the left view "
                             "(lines of a pile-up kept apart, cut where they cross) instead of per skeleton branch")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("-o", "--output", required=True,
                        help="output folder (created if needed; written as a whole, an existing result is refused)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing result in the output folder (as a whole)")
    parser.set_defaults(func=run)


def _parse_range(text):
    from ..checks import InputError, parse_numbers

    values = parse_numbers(text, name="--disparity-range", form="MIN,MAX in pixels", count=2, kind=int,
                           example="-24,24")
    if values is None:
        return None
    low, high = values
    if low >= high:
        raise InputError(f"--disparity-range needs MIN < MAX, got {text!r}")
    return low, high


def _parse_pair(text, option: str, example: str):
    from ..checks import parse_numbers

    return parse_numbers(text, name=option, count=2, example=f"{option}={example}")


def _read_points(path):
    """``(left, right)`` ``(n, 2)`` arrays from a CSV of ``x_left,y_left,x_right,y_right``."""
    import numpy as np

    from ..checks import InputError

    if path is None:
        return None
    try:
        table = np.genfromtxt(path, delimiter=",", names=True)
        left = np.column_stack([table["x_left"], table["y_left"]])
        right = np.column_stack([table["x_right"], table["y_right"]])
    except (OSError, ValueError) as err:
        raise InputError(f"--points {path}: cannot read a CSV with columns x_left,y_left,x_right,y_right ({err})") \
            from None
    return left, right


def _print_rectification(report) -> None:
    import sys

    if not report:
        return
    for line in report.get("summary", "").splitlines():
        print(line, file=sys.stderr if line.startswith("WARNING") else sys.stdout)


def _check_two_files(left: str, right: str) -> None:
    from pathlib import Path

    from ..checks import InputError

    a, b = Path(left), Path(right)
    if a.exists() and b.exists() and a.resolve() == b.resolve():
        raise InputError(f"LEFT and RIGHT are the same file ({left}); give the two views of the pair "
                         "(the depth would come out flat)")


def _options(args, *, detector, matcher) -> dict:
    """``reconstruct_stereo`` keywords from the command's options that a single pair and a series share."""
    from .detect import CONTRASTS, parse_scale

    return dict(pixel_size=args.pixel_size, swap=args.swap, device=args.device, detector=detector, matcher=matcher,
                disparity_range=_parse_range(args.disparity_range), refine=not args.no_refine,
                n_threads=args.threads, frame=args.frame, contrast=CONTRASTS[args.contrast],
                detect_scale=parse_scale(args.detect_scale, "--detect-scale"), line_model=args.line_model,
                lr_check=not args.no_lr_check, line_instances=args.line_instances)


def _work(args, left, right, *, detector, matcher):
    from ..stereo.pipeline import reconstruct_stereo

    return reconstruct_stereo(left, right, stereo_angle_deg=args.angle, rectify=not args.no_rectify,
                              tilts_deg=_parse_pair(args.tilts, "--tilts", "-3,9.5"), tilt_axis_deg=args.tilt_axis,
                              shift=_parse_pair(args.shift, "--shift", "-14,9"),
                              manual_points=_read_points(args.points), strict_rectify=not args.rectify_anyway,
                              **_options(args, detector=detector, matcher=matcher))


def _pairs(args) -> list:
    """``[(output folder, left, right), ...]``, every output folder checked before any work."""
    from pathlib import Path

    from ..atomic import check_output_folder
    from ..checks import InputError
    from ..stereo.pair_list import read_pair_list
    from ..stereo.pipeline import RESULT_FILES

    if args.pairs is None:
        if not (args.left and args.right):
            raise InputError("give the two views LEFT RIGHT, --pairs LIST for many pairs, or --series STACK for a "
                             "tilt series")
        pairs = [(Path(args.output), args.left, args.right)]
    else:
        if args.left or args.right:
            raise InputError("give either LEFT RIGHT or --pairs LIST, not both")
        pairs = [(Path(args.output) / name, left, right) for name, left, right in read_pair_list(args.pairs)]
        check_output_folder(args.output, overwrite=True)  # a folder (it may hold earlier pairs' results)
    for out, left, right in pairs:
        check_output_folder(out, overwrite=args.overwrite, produces=RESULT_FILES)
        _check_two_files(str(left), str(right))
    return pairs


def _load_models(args):
    """The detector and matcher loaded once, for a run of many pairs."""
    from ..models.store import load_detector
    from ..stereo.matching import load_matcher

    return (load_detector(args.detector or "default", device=args.device),
            load_matcher(args.matcher or "default", device=args.device))


def _series_tilts(args, n_views: int) -> tuple[list, list | None, str]:
    """``(tilts, order, source)``: each view's tilt (degrees), from ``--tilts``, ``--angle`` or the tilt file beside
    the stack (``.rawtlt``/``.tlt``); the views' indices in increasing tilt when the tilts are not in that order
    (``None`` when they are); where the tilts came from."""
    from ..checks import InputError, parse_numbers
    from ..stereo.series import read_tilt_file, series_tilts, tilt_file_beside, tilts_in_order

    if args.tilts is not None or (args.angle is None and tilt_file_beside(args.series) is not None):
        if args.tilts is not None:
            tilts, source = parse_numbers(args.tilts, name="--tilts", count=n_views,
                                          example="--tilts=" + ",".join(str(8 * k - 8) for k in range(n_views)),
                                          form=f"one tilt per view of the series ({n_views})"), "--tilts"
        else:
            path = tilt_file_beside(args.series)
            tilts, source = read_tilt_file(path, n_views), path.name
        tilts, order = tilts_in_order(n_views, tilts)
        return tilts, None if order == sorted(order) else order, source
    if args.angle is None:
        raise InputError("a tilt series needs --angle STEP (degrees between adjacent views), --tilts with one "
                         "tilt per view, or a tilt file beside the stack (STACK.rawtlt or STACK.tlt)")
    if not args.angle > 0:
        raise InputError(f"--angle with --series is the tilt step between adjacent views; got {args.angle}")
    return series_tilts(n_views, step_deg=args.angle), None, "--angle"


def _run_series(args) -> int:
    """A tilt series: one tilt axis for every adjacent pair, each pair reconstructed with it (module notes)."""
    import sys
    import time
    from pathlib import Path

    from ..atomic import check_output_files, check_output_folder
    from ..checks import InputError
    from ..progress import drive, end_progress_line, text_progress
    from ..stereo.frame_stack import read_stack
    from ..stereo.lines_io import write_json
    from ..stereo.pipeline import RESULT_FILES
    from ..stereo.series import pair_name, reconstruct_series

    if args.left or args.right or args.pairs is not None:
        raise InputError("give one of LEFT RIGHT, --pairs LIST or --series STACK")
    if args.shift is not None or args.points is not None:
        raise InputError("--shift and --points belong to one pair; with --series each pair's shift is fitted")
    if args.no_rectify:
        raise InputError("--no-rectify cannot be used with --series: the series is aligned to find its tilt axis")
    frames = read_stack(args.series, name="--series", what="a tilt series", signal=args.signal)
    tilts, order, tilt_source = _series_tilts(args, len(frames))
    if order is not None:  # e.g. a dose-symmetric acquisition: the views put in tilt order
        frames = frames[order]
        print(f"tilts from {tilt_source}, the views put in tilt order (stack indices {order})")
    elif tilt_source != "--angle":
        print(f"tilts from {tilt_source}: {', '.join(f'{t:g}' for t in tilts)} deg")
    out = Path(args.output)
    check_output_folder(out, overwrite=True)  # a folder (it may hold earlier results)
    for k in range(len(frames) - 1):
        check_output_folder(out / pair_name(k), overwrite=args.overwrite, produces=RESULT_FILES)
    check_output_files(out, ["series.json"], overwrite=args.overwrite)
    detector, matcher = _load_models(args)
    t0 = time.perf_counter()
    series = drive(reconstruct_series(frames, tilts_deg=tilts, tilt_axis_deg=args.tilt_axis,
                                      strict_rectify=not args.rectify_anyway,
                                      **_options(args, detector=detector, matcher=matcher)), text_progress())
    end_progress_line()
    if series.alignment is not None:
        print(series.alignment.summary())
    record = series.record()
    failed = []
    for k, (result, entry) in enumerate(zip(series.results, record["pairs"])):
        if result is None:
            print(f"stereo-tem reconstruct: {entry['folder']}: error: {entry['error']}", file=sys.stderr)
            failed.append(entry["folder"])
            continue
        folder = result.save(out / entry["folder"], overwrite=args.overwrite)
        for warning in entry["warnings"]:
            print(f"WARNING ({entry['folder']}): {warning}", file=sys.stderr)
        print(f"{entry['folder']} (tilts {tilts[k]:g} and {tilts[k + 1]:g} deg): {entry['n_lines']} lines, "
              f"{entry['n_points']} points -> {folder}")
    record.update(series=str(args.series), tilts_from=tilt_source,
                  stack_index_of_view=list(range(len(frames))) if order is None else order,
                  shape=list(frames.shape[1:]), frame=args.frame,
                  seconds=round(time.perf_counter() - t0, 3),
                  created_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    write_json(out / "series.json", record)
    n_pairs = len(record["pairs"])
    print(f"tilt series: {n_pairs - len(failed)} of {n_pairs} pairs reconstructed with the tilt axis "
          f"{series.tilt_axis_deg:.3f} deg -> {out} (series.json)")
    if failed:
        print(f"stereo-tem reconstruct: {len(failed)} of {n_pairs} pairs failed: {', '.join(failed)}",
              file=sys.stderr)
    return 1 if failed else 0


def run(args) -> int:
    import sys

    from ..checks import InputError
    from ..progress import drive, end_progress_line, text_progress

    if args.series is not None:
        return _run_series(args)
    if args.signal is not None:
        raise InputError("--signal chooses the stack of a --series file; for a pair give the two images")
    pairs = _pairs(args)
    detector, matcher = args.detector, args.matcher
    if args.pairs is not None:  # load the models once for all pairs
        detector, matcher = _load_models(args)
    failed = []
    for k, (out, left, right) in enumerate(pairs):
        if len(pairs) > 1:
            print(f"[{k + 1}/{len(pairs)}] {out.name}: {left} {right}", file=sys.stderr)
        try:
            result = drive(_work(args, left, right, detector=detector, matcher=matcher), text_progress())
            end_progress_line()
            folder = result.save(out, overwrite=args.overwrite)
        except InputError as err:
            if args.pairs is None:
                raise
            end_progress_line()
            print(f"stereo-tem reconstruct: {out.name}: error: {err}", file=sys.stderr)
            failed.append(out.name)
            continue
        _print_rectification(result.rectification)
        if result.provenance.get("camera_defects", {}).get("note"):
            print(result.provenance["camera_defects"]["note"])
        times = ", ".join(f"{stage} {seconds:.2f}s" for stage, seconds in result.timings.items())
        print(f"{len(result.lines)} lines, {sum(len(x) for x in result.lines)} points -> {folder} ({times})")
    if failed:
        print(f"stereo-tem reconstruct: {len(failed)} of {len(pairs)} pairs failed: {', '.join(failed)}",
              file=sys.stderr)
    return 1 if failed else 0
