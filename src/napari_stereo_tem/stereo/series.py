"""3D dislocation lines from a tilt series: one tilt axis for all adjacent pairs, each pair reconstructed with it.

Every image of a tilt series is taken with one goniometer at one magnification, so
every adjacent pair has the same tilt axis in the image. :func:`reconstruct_series`
finds it from all pairs together (:func:`~.alignment.align_series`; or takes the
known one), then reconstructs each adjacent pair ``(k, k + 1)`` with it
(:func:`~.pipeline.reconstruct_stereo`), the tilts of its two views giving its
stereo angle (asymmetric steps allowed). A pair that fails is recorded and the
others go on.

Typical use::

    frames = read_stack("tilts.mrc")                         # (n, rows, cols)
    series = drive(reconstruct_series(frames, tilts_deg=[-12, 0, 12]))
    series.tilt_axis_deg, series.results[0].lines
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..checks import InputError
from ..progress import Progress, ProgressGenerator, within_step

__all__ = ["SeriesReconstruction", "reconstruct_series", "series_tilts", "pair_name", "tilt_file_beside",
           "read_tilt_file", "tilt_order", "tilts_in_order"]

#: Files of one tilt per line that tomography software writes beside a stack (IMOD, SerialEM), in the order tried.
TILT_FILE_SUFFIXES = (".rawtlt", ".tlt")


def pair_name(k: int) -> str:
    """Name of the adjacent pair ``(k, k + 1)``: ``views_KK-LL``."""
    return f"views_{k:02d}-{k + 1:02d}"


def tilt_file_beside(stack) -> Path | None:
    """The tilt file written beside a stack (``tilts.rawtlt`` or ``tilts.tlt`` for ``tilts.mrc``), if there is one."""
    stack = Path(stack)
    for suffix in TILT_FILE_SUFFIXES:
        candidate = stack.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def read_tilt_file(path, n_views: int) -> list[float]:
    """The tilts (degrees) of a ``.rawtlt``/``.tlt`` file: one number per line, in the stack's order."""
    path = Path(path)
    tilts = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            tilts.append(float(line.split()[0]))
        except ValueError:
            raise InputError(f"{path.name} line {number}: {line.strip()[:40]!r} is not a tilt in degrees (a tilt "
                             "file holds one number per line)") from None
    if len(tilts) != n_views:
        raise InputError(f"{path.name} holds {len(tilts)} tilts but the stack has {n_views} views; give --tilts "
                         "or --angle instead, or the matching tilt file")
    return tilts


def tilt_order(tilts_deg) -> list[int]:
    """The views' indices in increasing tilt (a stack saved in the order of acquisition, e.g. dose-symmetric)."""
    tilts = [float(t) for t in tilts_deg]
    order = sorted(range(len(tilts)), key=tilts.__getitem__)
    same = [tilts[order[k]] for k in range(len(order) - 1) if tilts[order[k]] == tilts[order[k + 1]]]
    if same:
        raise InputError(f"two views have the same tilt ({same[0]:g} degrees): a series needs one view per tilt")
    return order


def tilts_in_order(n_views: int, tilts_deg) -> tuple[list[float], list[int]]:
    """One tilt per view in any order -> the tilts increasing (:func:`series_tilts`) and the views' indices in
    that order (:func:`tilt_order`)."""
    order = tilt_order(tilts_deg)
    return series_tilts(n_views, tilts_deg=[float(tilts_deg[k]) for k in order]), order


def series_tilts(n_views: int, *, step_deg: float | None = None, tilts_deg=None) -> list[float]:
    """The tilt of each view (degrees, increasing): the given ones, or ``step_deg`` apart about zero."""
    if tilts_deg is not None:
        tilts = [float(t) for t in tilts_deg]
        if len(tilts) != n_views:
            raise InputError(f"give one tilt per view of the series ({n_views}), got {len(tilts)}")
    elif step_deg is not None:
        if not float(step_deg) > 0:
            raise InputError(f"the tilt step between adjacent views must be positive, got {step_deg}")
        tilts = [float(step_deg) * (k - (n_views - 1) / 2.0) for k in range(n_views)]
    else:
        raise InputError("a tilt series needs the tilt step between adjacent views or one tilt per view")
    if any(b <= a for a, b in zip(tilts[:-1], tilts[1:])):
        raise InputError(f"the tilts must increase from view to view (the series in tilt order), got {tilts}")
    return tilts


@dataclass
class SeriesReconstruction:
    """The common tilt axis of a series and the reconstruction of each adjacent pair with it.

    Attributes
    ----------
    tilts_deg : list of float
        The tilt of each view.
    tilt_axis_deg : float
        The axis every pair was reconstructed with (degrees off the vertical).
    alignment : SeriesAlignment or None
        How the axis was found (``None`` when it was given).
    results : list
        Per adjacent pair, its :class:`~.pipeline.StereoReconstruction`, or ``None`` where it failed.
    errors : list
        Per adjacent pair, the reason it failed (``None`` where it did not).
    """

    tilts_deg: list
    tilt_axis_deg: float
    alignment: object | None
    results: list = field(default_factory=list)
    errors: list = field(default_factory=list)

    def record(self) -> dict:
        """The JSON record (``series.json``): the common axis and each pair's own axis, shift and lines."""
        align = self.alignment
        pairs = []
        for k, (result, error) in enumerate(zip(self.results, self.errors)):
            entry = {"views": [k, k + 1], "folder": pair_name(k), "tilts_deg": self.tilts_deg[k:k + 2],
                     "own_tilt_axis_deg": None if align is None else align.pair_theta_deg[k],
                     "own_tilt_axis_std_deg": None if align is None else align.pair_theta_std_deg[k]}
            if result is None:
                entry["error"] = error
            else:
                rect = result.rectification or {}
                entry.update(shift_px=rect.get("shift_px"), n_inliers=rect.get("n_inliers"),
                             residual_vertical_px=rect.get("residual_vertical_px"), n_lines=len(result.lines),
                             n_points=int(sum(len(line) for line in result.lines)),
                             warnings=list(rect.get("warnings", [])))
            pairs.append(entry)
        return {"n_views": len(self.tilts_deg), "tilts_deg": self.tilts_deg, "tilt_axis_deg": self.tilt_axis_deg,
                "tilt_axis_std_deg": None if align is None else align.theta_std_deg,
                "tilt_axis_given": align is None, "chi2": None if align is None else align.chi2,
                "warnings": [] if align is None else list(align.warnings), "pairs": pairs}


def reconstruct_series(frames, *, tilts_deg, tilt_axis_deg: float | None = None, strict_rectify: bool = True,
                       **options) -> ProgressGenerator[SeriesReconstruction]:
    """Reconstruct every adjacent pair of a tilt series with one tilt axis; a progress generator.

    Parameters
    ----------
    frames : sequence of array_like, each shape (rows, cols)
        The series in tilt order (e.g. :func:`~.frame_stack.read_stack`).
    tilts_deg : sequence of float
        The tilt of each view, increasing (:func:`series_tilts`).
    tilt_axis_deg : float, optional
        The known axis; default found from all pairs together (:func:`~.alignment.align_series`).
    strict_rectify : bool
        Refuse a series whose common axis cannot be trusted (default); False goes on with warnings.
    **options
        Passed to :func:`~.pipeline.reconstruct_stereo` for every pair (not the angle, tilts,
        axis, shift or clicked points: those belong to the series or to one pair).

    Returns
    -------
    SeriesReconstruction

    Raises
    ------
    InputError
        Fewer than two views, tilts that do not fit the views, options that belong to one pair,
        or no common axis (when it is to be found).
    """
    from .alignment import align_series
    from .pipeline import reconstruct_stereo

    frames = list(frames)
    if len(frames) < 2:
        raise InputError(f"a tilt series needs at least two views, got {len(frames)}")
    tilts = series_tilts(len(frames), tilts_deg=tilts_deg)
    fixed = sorted(set(options) & {"stereo_angle_deg", "tilts_deg", "shift", "manual_points", "rectify"})
    if fixed:
        raise InputError(f"{', '.join(fixed)} cannot be given for a series (they belong to one pair, or the "
                         "series sets them)")
    n_pairs = len(frames) - 1
    total = n_pairs + (0 if tilt_axis_deg is not None else 1)
    alignment = None
    if tilt_axis_deg is None:
        yield Progress(0, total, "align the series")
        alignment = align_series(frames, strict=strict_rectify)
        axis = float(alignment.theta_deg)
        yield Progress(1, total, "align the series")
    else:
        axis = float(tilt_axis_deg)
    series = SeriesReconstruction(tilts, axis, alignment)
    for k in range(n_pairs):
        done = total - n_pairs + k
        work = reconstruct_stereo(frames[k], frames[k + 1], stereo_angle_deg=None, tilts_deg=tilts[k:k + 2],
                                  tilt_axis_deg=axis, strict_rectify=strict_rectify, **options)
        try:
            result = yield from within_step(work, done, total, f"reconstruct {pair_name(k)}")
        except InputError as err:
            series.results.append(None)
            series.errors.append(str(err))
        else:
            series.results.append(result)
            series.errors.append(None)
        yield Progress(done + 1, total, f"reconstruct {pair_name(k)}")
    if not any(r is not None for r in series.results):
        raise InputError("no pair of the series could be reconstructed: "
                         + " | ".join(f"{pair_name(k)}: {e}" for k, e in enumerate(series.errors)))
    return series

