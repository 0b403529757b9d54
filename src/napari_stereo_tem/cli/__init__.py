"""The ``stereo-tem`` command line.

Each subcommand lives in its own module of this package, which provides
``add_parser(subparsers)`` (registering the subcommand and setting
``func=run`` as the default) and ``run(args) -> int``. The modules are listed
in :data:`SUBCOMMANDS`; the heavy imports happen inside ``run`` so that
``stereo-tem --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__
from ..checks import InputError

__all__ = ["main", "build_parser", "SUBCOMMANDS"]

#: Subcommand modules, in the order ``--help`` lists them.
SUBCOMMANDS: tuple[str, ...] = ("train", "reconstruct", "detect", "virtual", "views", "synth", "particles",
                                 "evaluate", "track", "rank")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stereo-tem",
        description="3D models of dislocations and nanoparticles from 2D electron-microscopy data.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"{__name__}.{name}")
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (InputError, ValueError, FileNotFoundError, OSError) as err:
        # Input problems get one clear line, not a traceback, on a line of its own.
        from ..progress import end_progress_line

        end_progress_line()
        print(f"stereo-tem {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
