"""``stereo-tem train detector|matcher --from-set DIR --init VERSION --name NAME``: fine-tuning from the CLI.

Not a subcommand of its own: :mod:`.train` adds these options to each of its
targets and hands a run with ``--from-set`` to :func:`run_finetune`, which
drives the same generators as the napari widget
(:mod:`napari_stereo_tem.training.finetune`). The training options of the
target (``--steps``, ``--batch-size``, ``--crop``, ``--seed``, ``--device``,
``--threads``, ``--lr``) keep their meaning; ``--resume`` continues a
cancelled fine-tuning run from the checkpoint path it printed.

Example (a few hundred steps are enough for a handful of corrections)::

    stereo-tem train detector --from-set ~/my-set --init default --name foil_a \\
        --steps 300 --batch-size 4 --crop 96 --lr 5e-4
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_finetune_arguments", "run_finetune"]


def add_finetune_arguments(parser: argparse.ArgumentParser, target: str) -> None:
    """Add ``--from-set``, ``--name``, ``--synth-fraction`` (and ``--init`` where missing) to a target's parser."""
    group = parser.add_argument_group("fine-tuning on a training set (napari 'Add to training set')")
    example = "--steps 300 --batch-size 4 --crop 96 --lr 5e-4" if target == "detector" else \
        "--steps 200 --batch-size 2 --crop 64,96 --lr 2e-4"
    group.add_argument("--from-set", default=None, metavar="DIR",
                       help="fine-tune on this training-set folder (mixed with synthetic data) instead of "
                            f"training on synthetic data only; e.g. {example}")
    group.add_argument("--name", default=None,
                       help=f"name of the new model version (saved as {target}_NAME in the user model folder)")
    group.add_argument("--synth-fraction", type=float, default=0.5,
                       help="share of each batch drawn from synthetic scenes (default 0.5)")
    if "--init" not in parser._option_string_actions:  # noqa: SLF001 - the target may define it already
        group.add_argument("--init", default="default",
                           help="model version or weights path to start from (default: the version in use)")


def _crop(value, target: str):
    from ..checks import parse_numbers

    parts = parse_numbers(value, name="--crop", form="SIZE or ROWS,COLS", count=(1, 2), kind=int, example="128,192")
    if target == "detector":
        return parts[0]
    return parts * 2 if len(parts) == 1 else parts[:2]


def run_finetune(args) -> int:
    """Run a fine-tuning of ``args.target`` on ``args.from_set`` with a text progress bar."""
    from ..checks import InputError
    from ..progress import drive, text_progress
    from ..training.finetune import finetune_detector, finetune_matcher

    target = args.target
    if not args.name:
        raise InputError("--from-set needs --name NAME for the new model version")
    from pathlib import Path

    if not Path(args.from_set).expanduser().is_dir():
        what = "is a file, not a folder" if Path(args.from_set).exists() else "does not exist"
        raise InputError(f"--from-set {args.from_set} {what}; give the training-set folder that "
                         "'Add to training set' writes (one entry-NNNNNN folder per correction)")
    options = {"name": args.name, "init": args.init or "default", "steps": args.steps,
               "batch_size": args.batch_size, "crop": _crop(args.crop, target), "synth_fraction": args.synth_fraction,
               "lr": args.lr, "seed": args.seed, "device": args.device, "n_threads": args.threads,
               "resume": args.resume or False}
    options["command"] = (f"stereo-tem train {target} --from-set {args.from_set} --init {options['init']} "
                          f"--name {args.name} --steps {args.steps} --batch-size {args.batch_size} "
                          f"--crop {args.crop} --synth-fraction {args.synth_fraction} --lr {args.lr} "
                          f"--seed {args.seed} --device {args.device}")
    train = finetune_detector if target == "detector" else finetune_matcher
    try:
        result = drive(train(args.from_set, **options), text_progress())
    except KeyboardInterrupt:
        from ..training.finetune import checkpoint_path, version_name

        ckpt = checkpoint_path(version_name(args.name, target))
        sys.stderr.write(f"\ninterrupted; continue with the same command and --resume {ckpt}\n")
        return 130
    sys.stderr.write("\n")
    losses = result["losses"]
    print(f"saved model version {result['version']} ({result['path']}); {result['steps']} steps, "
          f"loss {losses[0]:.4f} -> {losses[-1]:.4f}; {result['wall_s']:.0f} s")
    return 0
