"""``stereo-tem evaluate DIR [--kind stereo|particles] [--run] [-o OUT]``: figures against ground truth.

``DIR`` is a case or a folder of cases written by ``stereo-tem synth stereo|particles``
(or a user's labelled pairs in the same layout); predictions are read from
``<case>/pred`` (or ``--predictions P/<case>``), as written by ``stereo-tem
reconstruct`` / ``stereo-tem particles``, or made with ``--run``. Writes
``OUT/evaluation.md`` and ``OUT/evaluation.csv``: one row per case and a mean row
per kind (see :mod:`napari_stereo_tem.evaluation.cases` for the figures).
"""

from __future__ import annotations

import sys

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score reconstructions against ground truth (segmentation, disparity, 3D, particles)",
        description="Score a folder of cases with truth: segmentation P/R/F1 (2 px) and clDice, disparity EPE and "
                    ">1/3/5 px, 3D line distance and depth error, re-projection error, particle recall/precision/"
                    "3D error and g(r). Writes OUT/evaluation.md and OUT/evaluation.csv.")
    parser.add_argument("directory", metavar="DIR", help="a case folder, or a folder of case folders")
    parser.add_argument("--kind", choices=["stereo", "particles"], default=None, help="only cases of this kind")
    parser.add_argument("--predictions", default=None, metavar="P",
                        help="folder of predictions, one sub-folder per case name (default <case>/pred)")
    parser.add_argument("--run", action="store_true",
                        help="run the pipeline on each case first (writes into --predictions, default DIR/predictions)")
    parser.add_argument("--angle", type=float, default=None, help="stereo angle for cases without params.json")
    parser.add_argument("--tolerance", type=float, default=2.0, help="segmentation tolerance, px (default 2)")
    parser.add_argument("--reproject-tilt", type=float, default=30.0,
                        help="unseen tilt of the re-projection error, degrees (default 30)")
    parser.add_argument("--keep-depth-origin", action="store_true",
                        help="do not remove the global depth offset before the 3D figures")
    parser.add_argument("--rectify", action="store_true", help="--run: rectify the pairs (generated pairs need not)")
    parser.add_argument("--device", default="cpu", help="--run: cpu or cuda")
    parser.add_argument("--detector", default=None, help="--run: detector version or weights path (default shipped)")
    parser.add_argument("--matcher", default=None, help="--run: matcher version or weights path (default shipped)")
    parser.add_argument("--threads", type=int, default=None, help="--run: torch CPU threads")
    parser.add_argument("-o", "--output", default=None, metavar="OUT", help="output folder (default DIR)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing tables in OUT and, with --run, existing predictions")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..evaluation.cases import evaluate_directory_iter
    from ..evaluation.table import mean_row, write_tables
    from ..atomic import check_output_files
    from ..progress import drive, end_progress_line, text_progress

    out = args.output or args.directory
    check_output_files(out, ["evaluation.md", "evaluation.csv"], overwrite=args.overwrite)
    rows = drive(evaluate_directory_iter(
        args.directory, kind=args.kind, predictions=args.predictions, run=args.run, angle=args.angle,
        tolerance=args.tolerance, reproject_tilt=args.reproject_tilt,
        remove_depth_offset=not args.keep_depth_origin, device=args.device, n_threads=args.threads,
        rectify=args.rectify, detector=args.detector, matcher=args.matcher, overwrite=args.overwrite),
        text_progress())
    end_progress_line()
    table = []
    for kind in ("stereo", "particles"):
        group = [r for r in rows if r["kind"] == kind]
        scored = [r for r in group if "error" not in r]
        table += group
        if len(scored) > 1:
            table.append({**mean_row(scored), "kind": kind})
    paths = write_tables(table, out, title=f"Evaluation of {args.directory}", overwrite=args.overwrite,
                         option="-o")
    failed = [r for r in rows if "error" in r]
    for r in failed:
        print(f"{r['case']}: {r['error']}", file=sys.stderr)
    print(f"{len(rows) - len(failed)} of {len(rows)} cases scored; wrote {paths['markdown']} and {paths['csv']}")
    return 1 if len(failed) == len(rows) else 0
