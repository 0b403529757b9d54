"""Progress reporting and cancellation for long work.

Long work in the core is written once, as a generator that yields
:class:`Progress` records and finally *returns* its result. Whoever drives it
decides how to show progress and when to stop:

- the command line calls :func:`drive` with a callback that prints a bar;
- napari runs the generator in a ``thread_worker`` (``yielded`` updates a
  ``napari.utils.progress``; ``quit()`` stops it between two yields);
- tests call :func:`drive` directly.

Cancelling is simply not asking for the next step: :func:`drive` takes a
``should_stop`` callable and closes the generator (raising :class:`Cancelled`)
when it returns true. Inside a long step, a loop calls :func:`check_cancelled`
(per line, per block, per tile): while :func:`drive` (or a front end, with
:func:`cancel_check`) runs the work, it raises :class:`Cancelled` as soon as
``should_stop`` turns true, so cancelling does not wait for the step to end.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["Progress", "Cancelled", "ProgressGenerator", "drive", "text_progress", "end_progress_line",
           "check_cancelled", "cancel_check", "cancel_between_layers", "map_threads", "within_step"]

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    """One progress report: ``done`` of ``total`` steps of ``stage``.

    ``total`` may be 0 when the amount of work is unknown.
    ``info`` carries optional numbers a front end may show (a loss, say).
    """

    done: int
    total: int
    stage: str = ""
    info: dict | None = None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


ProgressGenerator = Generator[Progress, None, T]


def within_step(work: ProgressGenerator[T], done: int, total: int, stage: str,
                info: dict | None = None) -> ProgressGenerator[T]:
    """Run the progress generator ``work`` as one step of a longer stage; return its result.

    Each of its reports is passed on as ``done`` of ``total`` of ``stage``, so the caller's driver
    can still stop it between them, while a front end keeps showing one stage (a bar per frame of
    a series, say, not the stages of each frame's detection one after another). Closed between
    two reports (a cancel), it closes ``work`` too, whose ``finally`` blocks run at once.
    """
    try:
        while True:
            try:
                next(work)
            except StopIteration as finished:
                return finished.value
            yield Progress(done, total, stage, info)
    finally:
        work.close()


class Cancelled(RuntimeError):
    """Raised by :func:`drive` when the caller asked to stop."""


_current = threading.local()


@contextlib.contextmanager
def cancel_check(should_stop: Callable[[], bool] | None) -> Iterator[None]:
    """While the block runs in this thread, :func:`check_cancelled` asks ``should_stop``."""
    previous = getattr(_current, "should_stop", None)
    _current.should_stop = should_stop
    try:
        yield
    finally:
        _current.should_stop = previous


@contextlib.contextmanager
def cancel_between_layers(model) -> Iterator[None]:
    """While the block runs, a torch ``model`` calls :func:`check_cancelled` before each of its layers.

    A forward pass of a network is one long call; with this, a cancel stops it at
    the next layer instead of at its end. The hooks are removed afterwards.
    """
    modules = list(model.modules()) if hasattr(model, "modules") else []
    hooks = [module.register_forward_pre_hook(lambda *_: check_cancelled()) for module in modules]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


def map_threads(fn: Callable[[Any], T], items, *, workers: int = 2) -> list[T]:
    """``[fn(item) for item in items]`` in up to ``workers`` threads (numpy, SciPy and OpenCV release the GIL).

    A cancel asked of the calling thread (:func:`cancel_check`) reaches the workers: each
    stops at its next :func:`check_cancelled`, items not yet started are not started, and
    :class:`Cancelled` is raised here (as is the first error of any item).
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    items = list(items)
    should_stop = getattr(_current, "should_stop", None)

    def one(item):
        with cancel_check(should_stop):
            check_cancelled()
            return fn(item)

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n = max(1, min(int(workers), len(items), cores))
    if n == 1:
        return [one(item) for item in items]
    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(one, item) for item in items]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()  # those not started yet
            raise


def check_cancelled() -> None:
    """Raise :class:`Cancelled` if whoever drives the work in this thread asked to stop.

    Long loops inside one step of a progress generator call this once per unit
    of work (a line, a block); it costs a function call when nobody asks.
    """
    should_stop = getattr(_current, "should_stop", None)
    if should_stop is not None and should_stop():
        raise Cancelled("cancelled")


def drive(
    work: ProgressGenerator[T],
    on_progress: Callable[[Progress], Any] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> T:
    """Run a progress generator to the end and return its result.

    Parameters
    ----------
    work : generator
        Yields :class:`Progress`, returns the result.
    on_progress : callable, optional
        Called with every :class:`Progress`.
    should_stop : callable, optional
        Checked after every step, and inside a step wherever the work calls
        :func:`check_cancelled`; when it returns true the generator is closed
        (its ``finally`` blocks run) and :class:`Cancelled` is raised.
    """
    while True:
        try:
            # a nested drive without its own should_stop leaves the outer one in force
            with cancel_check(should_stop) if should_stop is not None else contextlib.nullcontext():
                report = next(work)
        except StopIteration as stop:
            return stop.value
        if on_progress is not None:
            on_progress(report)
        if should_stop is not None and should_stop():
            work.close()
            raise Cancelled(f"cancelled during {report.stage or 'work'}")


#: Streams on which :func:`text_progress` left a bar without its newline.
_OPEN_LINES: set = set()


def end_progress_line(stream=None) -> None:
    """End a bar that :func:`text_progress` left open on ``stream`` (so a message starts on its own line)."""
    stream = sys.stderr if stream is None else stream
    if id(stream) in _OPEN_LINES:
        _OPEN_LINES.discard(id(stream))
        stream.write("\n")
        stream.flush()


def text_progress(stream=None, width: int = 30) -> Callable[[Progress], None]:
    """A callback for :func:`drive` that draws a one-line bar per stage on ``stream``."""
    stream = sys.stderr if stream is None else stream
    state = {"stage": None, "t0": time.perf_counter()}

    def show(report: Progress) -> None:
        if report.stage != state["stage"]:
            if state["stage"] is not None:
                stream.write("\n")
            state["stage"] = report.stage
            state["t0"] = time.perf_counter()
        elapsed = time.perf_counter() - state["t0"]
        if report.total:
            filled = int(width * min(report.fraction, 1.0))
            bar = "#" * filled + "-" * (width - filled)
            line = f"\r{report.stage:<14} [{bar}] {report.done}/{report.total} {elapsed:5.1f}s"
        else:
            line = f"\r{report.stage:<14} {report.done} {elapsed:5.1f}s"
        if report.info:
            line += " " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                   for k, v in report.info.items())
        stream.write(line)
        stream.flush()
        _OPEN_LINES.add(id(stream))

    return show
