"""``stereo-tem train detector|matcher``: train the networks on synthetic scenes.

The commands that made the shipped weights are in the docstrings of
:mod:`napari_stereo_tem.training.detector` and :mod:`napari_stereo_tem.training.matcher`
(and, exactly, in each weights file's JSON sidecar, keys ``command`` and ``recipe``).
Each target registers itself in :data:`TARGETS` as ``name: (add_arguments, run)``.
"""

from __future__ import annotations

import argparse
import sys

from .finetune_options import add_finetune_arguments, run_finetune

__all__ = ["add_parser", "run", "TARGETS"]


def _add_detector_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=2400, help="optimiser steps (default 2400)")
    parser.add_argument("--batch-size", type=int, default=8, help="crops per step (default 8)")
    parser.add_argument("--crop", type=int, default=160, help="crop side in pixels, a multiple of 8 (default 160)")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights, scenes and augmentation (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default 2e-3)")
    parser.add_argument("--pos-weight", type=float, default=3.0, help="BCE weight of line pixels (default 3)")
    parser.add_argument("--val-every", type=int, default=200, help="validate every N steps (default 200)")
    parser.add_argument("--n-val", type=int, default=8, help="validation images (default 8)")
    parser.add_argument("--pool-size", type=int, default=128, help="scenes held in memory (default 128)")
    parser.add_argument("--classes", type=int, choices=(1, 2), default=2,
                        help="1: dislocation only; 2: also a distractor class (default 2)")
    parser.add_argument("--out", default=None,
                        help="weights path without suffix (default: <user models dir>/detector_trained)")
    parser.add_argument("--checkpoint", default=None, help="where the resumable state goes (default <out>.ckpt.pt)")
    parser.add_argument("--resume", default=None, help="checkpoint (.ckpt.pt) of an earlier run to continue")
    parser.add_argument("--init", default=None, help="model version or weights path to start from (fine-tuning)")
    parser.add_argument("--data", choices=("stereo", "wide", "mixed"), default="stereo",
                        help="training scenes: stereo views (detector_v1), the wide micrograph generator, or "
                             "mixed (80 %% wide, 20 %% stereo) (default stereo)")
    parser.add_argument("--workers", type=int, default=0,
                        help="processes rendering scenes for --data wide/mixed (default 0: in this process)")
    parser.add_argument("--crops-per-scene", type=int, default=4,
                        help="augmented crops cut from each scene for --data wide/mixed (default 4)")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="seconds after which training validates, saves and stops (default: none)")
    parser.add_argument("--base-channels", type=int, default=16,
                        help="width of the UNet's first level for a new model (default 16)")


def _detector_command(args, out) -> str:
    parts = ["stereo-tem", "train", "detector", "--steps", str(args.steps), "--batch-size", str(args.batch_size),
             "--crop", str(args.crop), "--seed", str(args.seed), "--device", str(args.device),
             "--lr", str(args.lr), "--pos-weight", str(args.pos_weight), "--val-every", str(args.val_every),
             "--n-val", str(args.n_val), "--pool-size", str(args.pool_size),
             "--classes", str(args.classes), "--out", str(out)]
    if args.threads:
        parts += ["--threads", str(args.threads)]
    if args.data != "stereo":
        parts += ["--data", args.data, "--workers", str(args.workers), "--crops-per-scene", str(args.crops_per_scene)]
    if args.time_limit:
        parts += ["--time-limit", str(args.time_limit)]
    if args.base_channels != 16:
        parts += ["--base-channels", str(args.base_channels)]
    if args.init:
        parts += ["--init", str(args.init)]
    if args.checkpoint:
        parts += ["--checkpoint", str(args.checkpoint)]
    if args.resume:
        parts += ["--resume", str(args.resume)]
    return " ".join(parts)


def _run_detector(args) -> int:
    from ..progress import drive, text_progress
    from ..training.detector import train_detector
    from ..models.store import user_models_dir

    out = args.out if args.out else str(user_models_dir() / "detector_trained")
    bar = text_progress()
    last = {"val": None}

    def show(report):
        bar(report)
        info = report.info or {}
        if report.stage == "train" and info.get("val_f1") != last["val"] and info.get("val_f1") == info.get("val_f1"):
            last["val"] = info["val_f1"]
            sys.stderr.write(f"\nstep {report.done}: val centreline F1 (2 px) = {info['val_f1']:.4f}\n")

    result = drive(train_detector(out_path=out, steps=args.steps, batch_size=args.batch_size, crop=args.crop,
                                  seed=args.seed, device=args.device, init=args.init, resume=args.resume,
                                  n_threads=args.threads, lr=args.lr, pos_weight=args.pos_weight,
                                  val_every=args.val_every, n_val=args.n_val,
                                  pool_size=args.pool_size, n_classes=args.classes, data=args.data,
                                  workers=args.workers, crops_per_scene=args.crops_per_scene,
                                  base_channels=args.base_channels, time_limit=args.time_limit,
                                  checkpoint_path=args.checkpoint, command=_detector_command(args, out)), show)
    sys.stderr.write("\n")
    print(f"best validation centreline F1 {result['best_val_f1']:.4f}; {_weights_text(result['out_path'])}; "
          f"checkpoint {result['checkpoint']}; {result['wall_s']:.0f} s")
    return 0


def _weights_text(path) -> str:
    """Where the best weights are; a resumed run that never beat the checkpoint's best wrote none."""
    from pathlib import Path

    if Path(path).is_file():
        return f"weights {path}"
    return ("no weights written: this run did not beat the best of the run it resumed, whose weights stay "
            "where that run wrote them")


def _add_matcher_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=2600, help="optimiser steps (default 2600)")
    parser.add_argument("--batch-size", type=int, default=4, help="crop pairs per step (default 4)")
    parser.add_argument("--crop", default="128,192", help="crop ROWS,COLS, multiples of 8 (default 128,192)")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights, scenes and crops (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    parser.add_argument("--g-disp", type=float, default=1.0, help="weight of the smooth-L1 disparity loss (0: off)")
    parser.add_argument("--g-var", type=float, default=0.1, help="weight of the variance loss (0: off)")
    parser.add_argument("--g-warp", type=float, default=1.0, help="weight of the warp loss (0: off)")
    parser.add_argument("--features-from", default=None,
                        help="detector version/path whose UNet gives the (frozen) features; "
                             "default: a UNet trained jointly from scratch")
    parser.add_argument("--max-shift", type=int, default=8, help="random right-window shift in px (default 8)")
    parser.add_argument("--pool-size", type=int, default=16, help="scenes held in memory (default 16)")
    parser.add_argument("--scene-shape", default="512,512", help="ROWS,COLS of the generated scenes (default 512,512)")
    parser.add_argument("--val-every", type=int, default=200, help="validate every N steps (default 200)")
    parser.add_argument("--n-val", type=int, default=3, help="validation pairs (default 3)")
    parser.add_argument("--time-limit", type=float, default=None, help="stop after this many seconds (saved)")
    parser.add_argument("--out", default=None,
                        help="weights path without suffix (default: <user models dir>/matcher_trained)")
    parser.add_argument("--checkpoint", default=None, help="where the resumable state goes (default <out>.ckpt.pt)")
    parser.add_argument("--resume", default=None, help="checkpoint (.ckpt.pt) of an earlier run to continue")


def _run_matcher(args) -> int:
    from ..checks import parse_numbers
    from ..models.store import user_models_dir
    from ..progress import drive, text_progress
    from ..training.matcher import train_matcher

    crop = parse_numbers(args.crop, name="--crop", form="SIZE or ROWS,COLS", count=(1, 2), kind=int, example="128,192")
    if len(crop) == 1:
        crop = crop * 2
    scene_shape = parse_numbers(args.scene_shape, name="--scene-shape", form="ROWS,COLS", count=2, kind=int, example="512,512")
    out = args.out if args.out else str(user_models_dir() / "matcher_trained")
    command = "stereo-tem train matcher " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in sorted(vars(args).items())
        if k not in ("func", "command", "target", "out") and v is not None) + f" --out {out}"
    result = drive(train_matcher(out_path=out, steps=args.steps, batch_size=args.batch_size, crop=crop,
                                 seed=args.seed, device=args.device, lr=args.lr, g_disp=args.g_disp,
                                 g_var=args.g_var, g_warp=args.g_warp, features_from=args.features_from,
                                 max_shift=args.max_shift, val_every=args.val_every, n_val=args.n_val,
                                 pool_size=args.pool_size, scene_shape=scene_shape,
                                 time_limit_s=args.time_limit, resume=args.resume, checkpoint_path=args.checkpoint,
                                 n_threads=args.threads, command=command), text_progress())
    sys.stderr.write("\n")
    print(f"best validation EPE {result['best_epe']:.3f} px; {_weights_text(result['out_path'])}; "
          f"checkpoint {result['checkpoint']}; {result['wall_s']:.0f} s")
    return 0


def _add_postprocess_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("weights", help="detector weights file (.safetensors, its .json sidecar is updated)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the validation images (default 0)")
    parser.add_argument("--n-val", type=int, default=60, help="validation images (default 60)")
    parser.add_argument("--data", default="mixed",
                        help="validation images like the training data: stereo, wide or mixed, or several "
                             "comma-separated (the best mean over them; default mixed)")


def _run_postprocess(args) -> int:
    from ..training.detector import tune_postprocess

    record = tune_postprocess(args.weights, seed=args.seed, n_val=args.n_val, data=args.data)
    print(f"threshold {record['threshold']}, min_size {record['min_size']}: validation F1 "
          f"{record['val_f1_tuned']} (raw 0.5: {record['val_f1_raw_0.5']}); written to the sidecar of {args.weights}")
    return 0


def _add_average_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("base", help="the version fine-tuning started from (name or .safetensors path)")
    parser.add_argument("tuned", help="the fine-tuned version (name or .safetensors path)")
    parser.add_argument("--weight", type=float, required=True,
                        help="share of the fine-tuned weights, 0-1: (1 - W) * BASE + W * TUNED")
    parser.add_argument("--out", required=True, help="weights path to write (.safetensors and its .json)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def _run_average(args) -> int:
    from pathlib import Path

    from ..training.average import average_weights

    command = (f"stereo-tem train average {args.base} {args.tuned} --weight {args.weight} "
               f"--out {Path(args.out).with_suffix('')}")
    out = average_weights(args.base, args.tuned, weight=args.weight, out_path=args.out, command=command,
                          overwrite=args.overwrite)
    print(f"{1 - args.weight:g} x {args.base} + {args.weight:g} x {args.tuned}; {_weights_text(out)}")
    return 0


#: Training targets: name -> (add_arguments(parser), run(args) -> int).
TARGETS = {
    "detector": (_add_detector_arguments, _run_detector),
    "matcher": (_add_matcher_arguments, _run_matcher),
    "detector-postprocess": (_add_postprocess_arguments, _run_postprocess),
    "average": (_add_average_arguments, _run_average),
}


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train the networks on synthetic data",
                                   description="Train a network; see `stereo-tem train TARGET --help`.")
    targets = parser.add_subparsers(dest="target", metavar="TARGET")
    for name, (add_arguments, _) in TARGETS.items():
        helps = {"average": "average the weights of a version and its fine-tuned one (weight-space ensemble)",
                 "detector-postprocess": "choose the detector's threshold and minimum piece size on validation images"}
        sub = targets.add_parser(name, help=helps.get(name, f"train the {name}"))
        add_arguments(sub)
        if name in ("detector", "matcher"):
            add_finetune_arguments(sub, name)  # --from-set DIR --init VERSION --name NAME
    parser.set_defaults(func=run)


def run(args) -> int:
    target = getattr(args, "target", None)
    if target not in TARGETS:
        print(f"stereo-tem train: choose a target: {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    if getattr(args, "from_set", None):
        return run_finetune(args)
    return TARGETS[target][1](args)
