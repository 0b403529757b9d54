"""``stereo-tem rank-detectors DATASET (--sweep CY,CX --radii R,R,... | --disc CY,CX,R ...) [--label L] -o DIR``.

Ranks candidate virtual detectors by the topological distance of their segmentation
from a reference (a label of the scan, or the consensus of the candidates; thesis
chapter 5, :mod:`napari_stereo_tem.fourdstem.ranking`). Writes ``DIR/ranking.csv``
(``rank,name,cy,cx,radius,distance``, best first), ``DIR/ranking.json`` (every term,
the reference used, the parameters), ``DIR/reference.tif`` and ``DIR/labels.tif``
(the detector's labels per candidate, in the order given).
"""

from __future__ import annotations

__all__ = ["add_parser", "run"]

#: What the command writes (an existing folder holding only these may be replaced with --overwrite).
PRODUCES = ("ranking.csv", "ranking.json", "reference.tif", "labels.tif")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "rank-detectors", help="rank virtual detectors by the topological score of their segmentation",
        description="Virtual images of candidate discs (a radius sweep, or discs you list) in one pass, the line "
                    "detector on each, and the persistent homology of every segmentation (dilation, density, height "
                    "and radial filtrations; H0 and H1) compared with a reference: a label of the scan (--label) or "
                    "the consensus of the candidates. Prints the ranking, best first, and which disc to use.")
    p.add_argument("dataset", help="4D-STEM dataset (.npy, .mib, .hspy, .zspy, .emd, ...)")
    p.add_argument("--sweep", default=None, metavar="CY,CX", help="centre of a radius sweep, detector pixels")
    p.add_argument("--radii", default="2,3,4,6", metavar="LIST", help="radii of the sweep (default 2,3,4,6)")
    p.add_argument("--disc", action="append", default=None, metavar="CY,CX,R",
                   help="a candidate disc instead of a sweep (repeat, two or more)")
    p.add_argument("--label", default=None, metavar="IMAGE",
                   help="reference label of the scan (non-zero = line), e.g. drawn on a virtual image; default: the "
                        "consensus of the candidates' segmentations")
    p.add_argument("--contrast", choices=["auto", "bright_field", "dark_field"], default="auto",
                   help="line contrast for the detector (default: decided on the strongest image)")
    p.add_argument("--flips", type=int, choices=[1, 2, 4], default=1,
                   help="mirrored copies averaged by the detector (default 1)")
    p.add_argument("--weights", default="default", metavar="default|equal|FAMILY=W,...",
                   help="weight of each filtration family (dilation, density, height, radial) in the distance: "
                        "default (dilation only, chosen on synthetic sweeps), equal (all 30 terms alike), or e.g. "
                        "dilation=1,radial=0.5 (families not named weigh 1)")
    p.add_argument("--executor", default="inline", help="inline, threads, or a dask scheduler address")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="output folder (written as a whole; an existing result is refused)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing result in the output folder")
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    import numpy as np
    import tifffile

    from ..atomic import check_output_folder, result_folder
    from ..checks import InputError, parse_numbers
    from ..fourdstem import as_disc, open_4dstem
    from ..fourdstem.ranking import iter_rank_detectors, sweep_discs
    from ..progress import drive, end_progress_line, text_progress

    if bool(args.sweep) == bool(args.disc):
        raise InputError("give the candidates: --sweep CY,CX with --radii, or two or more --disc CY,CX,R")
    if args.sweep:
        centre = parse_numbers(args.sweep, name="--sweep", count=2, form="CY,CX")
        discs = sweep_discs(centre, parse_numbers(args.radii, name="--radii", example="2,3,4,6"))
    else:
        discs = [as_disc(parse_numbers(text, name="--disc", count=3, form="CY,CX,R")) for text in args.disc]
    weights = _weights(args.weights)
    check_output_folder(args.output, overwrite=args.overwrite, produces=PRODUCES)
    reference = None
    if args.label:
        from ..images import as_image

        reference = np.asarray(as_image(args.label, name=args.label).data) > 0
    dataset = open_4dstem(args.dataset)
    work = iter_rank_detectors(dataset, discs, reference=reference, contrast=args.contrast, flips=args.flips,
                               executor=args.executor, device=args.device, weights=weights)
    ranking = drive(work, text_progress())
    end_progress_line()
    rows = ["rank,name,cy,cx,radius,distance"]
    for row in ranking.ranking:
        d = row["disc"]
        rows.append(f"{row['rank']},\"{row['name']}\",{d['cy']:.4f},{d['cx']:.4f},{d['radius']:.4f},"
                    f"{row['distance']:.6f}")
    record = {"dataset": str(dataset.metadata.get("source", args.dataset)), "reference": ranking.reference_kind,
              "ranking": ranking.ranking, "params": ranking.params,
              "score": "weighted mean over filtrations (dilation, density, 4 heights, 9 radial centres) and H0/H1 of "
                       "W1(A, R) / (W1(A, empty) + W1(R, empty)); 0 = the reference's topology, lower is better",
              "weights": args.weights}
    with result_folder(args.output, overwrite=args.overwrite, produces=PRODUCES) as tmp:
        (tmp / "ranking.csv").write_text("\n".join(rows) + "\n")
        (tmp / "ranking.json").write_text(json.dumps(record, indent=2, default=str))
        tifffile.imwrite(tmp / "reference.tif", ranking.reference.astype(np.uint8))
        tifffile.imwrite(tmp / "labels.tif", ranking.labels)
    print(ranking.summary())
    return 0


def _weights(text: str):
    """``default`` -> None, ``equal`` -> "equal", ``dilation=1,radial=0.5`` -> a mapping."""
    from ..checks import InputError
    from ..evaluation.topology import FILTRATIONS

    text = text.strip()
    if text in ("default", "equal"):
        return None if text == "default" else "equal"
    weights = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in FILTRATIONS or not value.strip():
            raise InputError(f"--weights {text!r}: give default, equal, or FAMILY=W pairs with FAMILY one of "
                             f"{', '.join(FILTRATIONS)} (e.g. dilation=1,radial=0.5)")
        try:
            weights[name] = float(value)
        except ValueError:
            raise InputError(f"--weights {text!r}: {value!r} is not a number") from None
    return weights
