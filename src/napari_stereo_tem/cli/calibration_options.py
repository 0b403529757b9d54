"""The detector calibration of the 4D-STEM commands (``virtual``, ``reconstruct-views``, ``particles --4dstem``).

Not a subcommand of its own: each of those commands declares ``--convergence-mrad``,
``--direct-disc`` (and ``virtual`` and ``reconstruct-views`` ``--vacuum``) with
:func:`add_calibration_options` and calls :func:`calibration_from_args`, so that
the three find the direct disc the same way: given, on a vacuum reference, or on
the dataset's mean pattern.
"""

from __future__ import annotations

__all__ = ["add_calibration_options", "calibration_from_args"]


def add_calibration_options(parser, *, convergence_help: str, vacuum: bool = True) -> None:
    """Declare ``--convergence-mrad``, ``--direct-disc`` and (with ``vacuum``) ``--vacuum`` on ``parser``.

    ``parser`` may be an argument group; ``convergence_help`` says what the command needs the
    convergence semi-angle for.
    """
    parser.add_argument("--convergence-mrad", type=float, default=None, help=convergence_help)
    parser.add_argument("--direct-disc", default=None, metavar="CY,CX,R",
                        help="the direct-beam disc (default: found on the mean pattern"
                             + (", or on --vacuum)" if vacuum else ")"))
    if vacuum:
        parser.add_argument("--vacuum", default=None,
                            help="vacuum reference (dataset or one pattern) to find the direct disc on")


def calibration_from_args(args, dataset):
    """The :class:`~napari_stereo_tem.fourdstem.Calibration` that a command's options ask for.

    ``--direct-disc CY,CX,R`` is taken as given; otherwise the direct disc is fitted on
    ``--vacuum`` (when the command has it and it is given) or on the mean pattern of
    ``dataset`` (one pass over the data, with a progress line). ``mrad/px`` follows from
    ``--convergence-mrad`` when it is given. A refused fit is returned as such
    (``calibration.refused``): each command says what it means for its own output.
    """
    from ..checks import parse_numbers
    from ..fourdstem import calibrate, iter_patterns, open_pattern
    from ..progress import drive, end_progress_line, text_progress

    if args.direct_disc:
        direct = parse_numbers(args.direct_disc, name="--direct-disc", form="CY,CX,R", count=(3,))
        return calibrate(direct=direct, convergence_mrad=args.convergence_mrad)
    vacuum = getattr(args, "vacuum", None)
    if vacuum:
        return calibrate(open_pattern(vacuum, executor=args.executor), convergence_mrad=args.convergence_mrad,
                         found_on=f"vacuum {vacuum}")
    mean, _ = drive(iter_patterns(dataset, executor=args.executor), text_progress())
    end_progress_line()
    return calibrate(mean, convergence_mrad=args.convergence_mrad)
