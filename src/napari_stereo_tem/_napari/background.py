"""Running a core progress generator off the UI thread, with a progress bar and cancel.

Core long work is a generator yielding :class:`~napari_stereo_tem.progress.Progress`
and returning its result (see ``progress.py``). :class:`BackgroundTask` runs one in a
napari ``thread_worker``, mirrors its reports in a ``napari.utils.progress`` bar, and
stops it between two steps when :meth:`BackgroundTask.cancel` is called. Errors
reach the user as notifications. Setting ``NAPARI_STEREO_TEM_SYNC=1`` runs the
work in the calling thread instead (for debugging).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable

from napari.qt.threading import thread_worker
from qtpy.QtCore import QTimer
from napari.utils import progress as napari_progress
from napari.utils.notifications import show_error, show_info

from ..checks import InputError
from ..progress import Cancelled, Progress, cancel_check, drive
from .notify import show_error_in

__all__ = ["BackgroundTask"]


class _Failure:
    def __init__(self, error: Exception):
        self.error = error


_CANCELLED = object()


def _forward(work, should_stop, prepare=None):
    # A generator of our own around the core one: the worker thread only talks
    # to this wrapper, and errors come back as a value that the UI thread turns
    # into a notification (napari's own relay would show a traceback). While it
    # runs, the core's check_cancelled() sees the task's cancel flag, so a long
    # step stops inside itself instead of at its end. A cancel seen between two
    # steps closes the core generator here, so its clean-up (a checkpoint
    # written, say) runs in the worker thread, not in the UI thread.
    while True:
        if should_stop():
            work.close()
            return _CANCELLED
        with cancel_check(should_stop):  # only while a step runs: the pooled thread is left clean
            try:
                report = next(work)
            except StopIteration as stop:
                # What turns the result into layers (meshes, colours) is done here too,
                # so the UI thread only adds ready layers.
                return stop.value if prepare is None else prepare(stop.value)
            except Cancelled:
                return _CANCELLED
            except Exception as err:  # noqa: BLE001 - every failure must reach the user
                return _Failure(err)
        yield report


class BackgroundTask:
    """One run of a core progress generator in a worker thread.

    Parameters
    ----------
    work : generator
        Yields ``Progress`` and returns the result.
    on_result : callable
        Called in the UI thread with the result when the work ends normally. If it
        returns a generator, each of its steps runs in its own turn of the event
        loop (say, one layer added per turn, so the window answers between them);
        the task is finished after the last.
    description : str
        Shown beside the progress bar.
    on_progress : callable, optional
        Also called in the UI thread with every ``Progress`` (e.g. a loss plot).
    on_finished : callable, optional
        Called in the UI thread whatever the outcome (done, cancelled, failed).
    in_worker : callable, optional
        Applied to the result in the worker thread; ``on_result`` gets what it returns.
        Used to build layers (their meshes and colours) off the UI thread.
    show_bar : bool
        Also show napari's own progress bar (in its activity dock); a widget with its
        own progress panel may leave it out.
    error_panel : optional
        Where a failure's whole message is shown (anything with a ``value``, e.g. the
        dock's report); the toast is then short. Without it the toast has it all.
    """

    def __init__(self, work, on_result: Callable, *, description: str = "",
                 on_progress: Callable[[Progress], None] | None = None,
                 on_finished: Callable[[], None] | None = None,
                 in_worker: Callable | None = None, show_bar: bool = True, error_panel=None):
        self._work = work
        self._in_worker = in_worker
        self._show_bar = show_bar
        self._error_panel = error_panel
        self._on_result = on_result
        self._on_progress = on_progress
        self._on_finished = on_finished
        self._description = description
        self._bar = None
        self.worker = None
        self.cancelled = False
        self.finished = False  # set in the UI thread once the work has ended, whatever the outcome
        self.error: Exception | None = None
        self._ui_steps = None
        self._worker_done = False

    # -- public ---------------------------------------------------------------
    def start(self) -> BackgroundTask:
        if os.environ.get("NAPARI_STEREO_TEM_SYNC"):
            self._run_synchronously()
            return self
        if self._show_bar:
            self._bar = napari_progress(total=0, desc=self._description)
        worker = thread_worker(_forward, start_thread=False)(self._work, lambda: self.cancelled, self._in_worker)
        worker.yielded.connect(self._show)
        worker.returned.connect(self._returned)
        worker.aborted.connect(self._aborted)
        worker.finished.connect(self._finished)
        self.worker = worker
        worker.start()
        return self

    def cancel(self) -> None:
        """Ask the work to stop: inside its current step where it checks, else before its next one.

        The worker itself closes the work (see ``_forward``); napari's ``quit()``
        would leave the closing, and the work's clean-up, to the UI thread.
        """
        self.cancelled = True

    @property
    def running(self) -> bool:
        return self.worker is not None and self.worker.is_running

    # -- slots (UI thread) ----------------------------------------------------
    def _show(self, report: Progress) -> None:
        # Called in order for every report; napari's bar may process events
        # while it redraws, so user callbacks come first and the bar last.
        if self._on_progress is not None:
            self._on_progress(report)
        bar = self._bar
        if bar is None:
            return
        if report.total and bar.total != report.total:
            bar.total = report.total
        if report.done != bar.n:
            bar.update(report.done - bar.n)
        description = f"{self._description}: {report.stage}" if report.stage else self._description
        if description != bar.desc:
            bar.set_description(description)

    def _returned(self, result) -> None:
        if result is _CANCELLED:
            return  # told in _finished
        if isinstance(result, _Failure):
            self._errored(result.error)
        elif not self.cancelled:
            steps = self._on_result(result)
            if inspect.isgenerator(steps):
                self._ui_steps = steps
                QTimer.singleShot(0, self._next_ui_step)

    def _next_ui_step(self) -> None:
        try:
            next(self._ui_steps)
        except StopIteration:
            self._ui_steps = None
        except Exception as err:  # noqa: BLE001 - every failure must reach the user
            self._ui_steps = None
            self._errored(err)
        else:
            QTimer.singleShot(0, self._next_ui_step)
            return
        if self._worker_done:
            self._finished()

    def _errored(self, err: Exception) -> None:
        self.error = err
        if isinstance(err, InputError):
            message = str(err)
        else:
            message = f"{self._description or 'the task'} failed: {type(err).__name__}: {err}"
        if self._error_panel is None:
            show_error(message)
        else:
            show_error_in(message, self._error_panel)

    def _aborted(self) -> None:
        self._work.close()  # runs the core generator's clean-up

    def _finished(self) -> None:
        # Cancelled between two steps (napari aborts the worker) or inside one
        # (check_cancelled ended the work): either way the user hears it once.
        self._worker_done = True
        if self._ui_steps is not None:
            return  # the result is still being shown, a step per turn of the event loop
        if self.cancelled:
            show_info(f"{self._description or 'task'} cancelled")
        self.finished = True
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._on_finished is not None:
            self._on_finished()

    def _run_synchronously(self) -> None:
        try:
            result = drive(self._work, on_progress=self._on_progress)
            if self._in_worker is not None:
                result = self._in_worker(result)
        except Exception as err:  # noqa: BLE001 - as in the threaded path
            self._errored(err)
        else:
            steps = self._on_result(result)
            if inspect.isgenerator(steps):
                for _ in steps:
                    pass
        finally:
            self.finished = True
            if self._on_finished is not None:
                self._on_finished()
