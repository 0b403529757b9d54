"""``stereo-tem reconstruct LEFT RIGHT --angle DEG -o DIR``: 3D dislocation lines from a stereo pair.

Writes ``DIR/lines.csv`` (``line_id,x,y,z``, pixels, one row per point, points
of a line in order), ``DIR/result.json`` (provenance, timings per stage,
rectification figures) and ``DIR/preview.png`` (DESIGN section 5).
"""

from __future__ import annotations


__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "reconstruct", help="3D dislocation lines from a stereo pair",
        description="Rectify, detect, match, refine and triangulate the dislocations of a stereo pair.")
    parser.add_argument("left", help="left view (the -phi/2 view): TIFF, PNG, .dm3/.dm4, .emd, .hspy, .npy, ...")
    parser.add_argument("right", help="right view (the +phi/2 view)")
    parser.add_argument("--angle", type=float, default=None,
                        help="stereo angle in degrees (default: from the files' tilt metadata)")
    parser.add_argument("--pixel-size", type=float, default=None, help="nm per pixel (recorded in result.json)")
    parser.add_argument("--swap", action="store_true", help="exchange the views")
    parser.add_argument("--no-rectify", action="store_true", help="the pair is already rectified")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--detector", default=None, help="detector version or weights path (default detector_v1)")
    parser.add_argument("--matcher", default=None, help="matcher version or weights path (default matcher_v1)")
    parser.add_argument("--disparity-range", default=None, metavar="MIN,MAX",
                        help="signed disparity range in pixels, written --disparity-range=-24,24 (default: the matcher's)")
    parser.add_argument("--no-refine", action="store_true", help="keep the raw matcher disparities")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("-o", "--output", required=True,
                        help="output folder (created if needed; written as a whole, an existing result is refused)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing result in the output folder (as a whole)")
    parser.set_defaults(func=run)


def _parse_range(text):
    from ..checks import InputError

    if text is None:
        return None
    try:
        low, high = (int(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"--disparity-range must be MIN,MAX in whole pixels (e.g. -24,24), got {text!r}") from None
    if low >= high:
        raise InputError(f"--disparity-range needs MIN < MAX, got {text!r}")
    return low, high


def _check_two_files(left: str, right: str) -> None:
    from pathlib import Path

    from ..checks import InputError

    a, b = Path(left), Path(right)
    if a.exists() and b.exists() and a.resolve() == b.resolve():
        raise InputError(f"LEFT and RIGHT are the same file ({left}); give the two views of the pair "
                         "(the depth would come out flat)")


def run(args) -> int:
    from ..atomic import check_output_folder
    from ..progress import drive, end_progress_line, text_progress
    from ..reconstruct import RESULT_FILES, reconstruct_stereo

    check_output_folder(args.output, overwrite=args.overwrite, produces=RESULT_FILES)
    _check_two_files(args.left, args.right)
    work = reconstruct_stereo(args.left, args.right, stereo_angle_deg=args.angle, pixel_size=args.pixel_size,
                              swap=args.swap, rectify=not args.no_rectify, device=args.device,
                              detector=args.detector, matcher=args.matcher,
                              disparity_range=_parse_range(args.disparity_range), refine=not args.no_refine,
                              n_threads=args.threads)
    result = drive(work, text_progress())
    end_progress_line()
    folder = result.save(args.output, overwrite=args.overwrite)
    times = ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items())
    print(f"{len(result.lines)} lines, {sum(len(x) for x in result.lines)} points -> {folder} ({times})")
    return 0
