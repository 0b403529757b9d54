"""``stereo-tem detect IMAGE... -o DIR``: dislocations in single images.

Per image ``STEM`` (the file name without its suffix) the folder gets
``STEM_probability.tif`` (float32, one page per class: dislocation, then
distractor), ``STEM_labels.tif`` (uint8: 1 dislocation, 2 distractor),
``STEM_lines.csv`` (``line_id,x,y``, pixels, points of a branch in order),
``STEM_instances.tif`` (int32: one id per dislocation, 0 elsewhere; lines of a
pile-up kept apart, :func:`~napari_stereo_tem.stereo.instances.line_instances`),
``STEM_instances.csv`` (``line_id,x,y``: the centreline of instance ``line_id + 1``) and
one ``detect.json`` with the settings of every image (contrast and resize
factor as decided, the model, timings). The folder is written as a whole.
"""

from __future__ import annotations

__all__ = ["add_parser", "run", "parse_scale", "add_detector_options", "CONTRASTS"]

#: ``--contrast`` choices -> the core's names (shared with ``reconstruct``).
CONTRASTS = {"auto": "auto", "bright": "bright_field", "dark": "dark_field"}

#: What the command writes (an existing folder holding only these may be replaced with --overwrite).
PRODUCES = ("*_probability.tif", "*_labels.tif", "*_lines.csv", "*_geometry.csv", "*_instances.tif",
            "*_instances.csv", "detect.json")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "detect", help="dislocation probability, labels and polylines of single images",
        description="Detect dislocations in one or more images (TIFF, PNG, JPEG, .dm3/.dm4, .emd, ...). "
                    "The contrast (bright/dark field) and the resize factor that makes the lines look as "
                    "wide as in training are decided per image unless given.")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    add_detector_options(parser, flips=4)
    parser.add_argument("--threshold", type=float, default=None,
                        help="probability threshold (default: the model's recommended one)")
    parser.add_argument("-o", "--output", required=True, help="output folder (written as a whole)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing result folder (only one holding this command's files)")
    parser.set_defaults(func=run)


def add_detector_options(parser, *, flips: int, when: str = "") -> None:
    """The detector's options of every command that detects lines: contrast, scale, flips, weights, device.

    ``flips`` is the default of ``--flips``; ``when`` says when the automatic choices
    are made (e.g. "decided on the first frame").
    """
    decided = f"; {when}" if when else ""
    parser.add_argument("--contrast", choices=("auto", "bright", "dark"), default="auto",
                        help=f"bright field (dark lines), dark field (bright lines) or auto (default{decided})")
    parser.add_argument("--scale", default="auto", metavar="auto|none|F",
                        help=f"resize factor before detection: auto (default{decided}), none, or a number such as "
                             "0.5 (lines twice as wide as the detector expects)")
    parser.add_argument("--flips", type=int, choices=(1, 2, 4), default=flips,
                        help=f"average the detector over this many mirrored copies (default {flips}; 1 is the "
                             "fastest)")
    parser.add_argument("--detector", default=None, help="detector version or weights path (default: selected)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")


def parse_scale(text: str, option: str = "--scale"):
    """``auto`` -> ``"auto"``, ``none`` -> ``None``, a number -> float (the core's ``scale`` argument)."""
    from ..checks import InputError

    if text.lower() == "auto":
        return "auto"
    if text.lower() in ("none", "1", "1.0"):
        return None
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{option} must be auto, none or a number such as 0.5, got {text!r}") from None


def _stems(paths) -> list[str]:
    from pathlib import Path

    from ..checks import InputError

    stems = [Path(p).stem for p in paths]
    seen = {}
    for path, stem in zip(paths, stems):
        if stem in seen:
            raise InputError(f"{seen[stem]} and {path} would both write {stem}_*; rename one of them")
        seen[stem] = path
    return stems


def run(args) -> int:
    import sys
    import time
    from pathlib import Path

    import numpy as np
    import tifffile

    from ..atomic import check_output_folder, result_folder
    from ..checks import InputError
    from ..images import read_image
    from ..models.store import load_detector
    from ..progress import drive, end_progress_line, text_progress
    from ..evaluation.table import csv_text
    from ..stereo.detect import iter_detect_lines
    from ..stereo.detection import ignored_share
    from ..stereo.instances import line_instances
    from ..stereo.line_geometry import GEOMETRY_COLUMNS, line_geometry
    from ..stereo.lines_io import write_json, write_lines_csv

    scale = parse_scale(args.scale)
    contrast = CONTRASTS[args.contrast]
    stems = _stems(args.images)
    for path in args.images:
        if not Path(path).is_file():
            raise InputError(f"image {path} does not exist")
    check_output_folder(args.output, overwrite=args.overwrite, produces=PRODUCES)
    model = load_detector(args.detector or "default", device=args.device)
    meta = getattr(model, "metadata", {}) or {}
    record = {"detector": {"version": getattr(model, "version", None), "command": meta.get("command")},
              "images": [],
              "labels": {"0": "background", "1": "dislocation", "2": "distractor"},
              "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with result_folder(args.output, overwrite=args.overwrite, produces=PRODUCES) as tmp:
        for k, (path, stem) in enumerate(zip(args.images, stems)):
            if len(stems) > 1:
                print(f"[{k + 1}/{len(stems)}] {path}", file=sys.stderr)
            image = read_image(path)
            result = drive(iter_detect_lines(image.data, model, contrast=contrast, scale=scale, flips=args.flips,
                                             threshold=args.threshold), text_progress())
            end_progress_line()
            tifffile.imwrite(tmp / f"{stem}_probability.tif", result.probability.astype(np.float32))
            tifffile.imwrite(tmp / f"{stem}_labels.tif", result.labels.astype(np.uint8))
            flat = [np.asarray(line).reshape(-1, 2) for line in result.lines]
            write_lines_csv(tmp / f"{stem}_lines.csv", flat)
            (tmp / f"{stem}_geometry.csv").write_text(csv_text(line_geometry(flat), cols=list(GEOMETRY_COLUMNS)))
            found = line_instances(result.probability[0], threshold=result.settings["threshold"],
                                   scale=result.settings["scale"])
            tifffile.imwrite(tmp / f"{stem}_instances.tif", found.labels.astype(np.int32))
            write_lines_csv(tmp / f"{stem}_instances.csv", found.lines)
            record["images"].append({"image": str(path), "stem": stem, "shape": list(result.labels.shape),
                                     "settings": result.settings, "seconds": round(result.seconds, 3),
                                     "n_lines": len(result.lines), "n_instances": found.n_instances,
                                     "dislocation_px": int((result.labels == 1).sum()),
                                     "distractor_px": int((result.labels == 2).sum())})
            s = result.settings
            note = ignored_share(s)
            print(f"{path}: {len(result.lines)} line branches, {found.n_instances} dislocation instances, "
                  f"{s['contrast'].replace('_', ' ')}, "
                  f"resized x{s['scale']:g} for detection"
                  + (f", {note}" if note else "") + f", {result.seconds:.2f} s")
        write_json(tmp / "detect.json", record)
    print(f"-> {args.output}")
    return 0
