"""A dock widget that runs one core progress generator at a time: Run, Cancel, progress and a report."""

from __future__ import annotations

from magicgui.widgets import Container, Label, PushButton, TextEdit

from .background import BackgroundTask
from .progress_panel import ProgressPanel
from .warmup import start_warm_up

__all__ = ["TaskWidget", "wrapping_label", "report_box", "worker_threads", "in_worker"]


def wrapping_label(value: str = "") -> Label:
    """A label whose text wraps at the dock's width and never widens the dock (long words are clipped)."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QSizePolicy

    label = Label(value=value)
    native = label.native
    native.setWordWrap(True)
    native.setTextFormat(Qt.TextFormat.PlainText)
    native.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
    native.setMinimumWidth(0)
    return label


def worker_threads() -> int:
    """Torch threads for work started from a dock: every core but one, which stays with the window."""
    import os

    return max(1, (os.cpu_count() or 2) - 1)


def in_worker(work: str, *args, **kwargs):
    """The core progress generator ``work`` (``"module:function"`` under the package) run with
    :func:`worker_threads` torch threads; imported (torch with it) in the worker thread, not the window's."""
    import importlib

    import torch

    module, name = work.split(":")
    function = getattr(importlib.import_module(f"napari_stereo_tem.{module}"), name)
    previous = torch.get_num_threads()
    torch.set_num_threads(worker_threads())
    try:
        return (yield from function(*args, **kwargs))
    finally:
        torch.set_num_threads(previous)


def report_box(value: str = "", *, max_lines: int = 14) -> TextEdit:
    """A read-only text box for results and messages: wraps at the dock's width, never widens it.

    It is as tall as its text up to ``max_lines`` lines (then it scrolls), and
    hidden while empty. ``value`` is the plain text.
    """
    from qtpy.QtWidgets import QFrame, QSizePolicy

    box = TextEdit(value=value)
    box.read_only = True
    native = box.native
    native.setFrameShape(QFrame.Shape.NoFrame)
    native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
    native.setMinimumWidth(0)
    line = native.fontMetrics().lineSpacing()

    def fit(*_):
        document = native.document()
        document.setTextWidth(native.viewport().width())
        height = int(document.size().height()) + 6
        native.setFixedHeight(max(line + 6, min(height, max_lines * line + 6)))
        box.visible = bool(box.value)

    native.document().contentsChanged.connect(fit)
    native.resizeEvent = _after(native.resizeEvent, fit)
    box.visible = bool(value)
    return box


def _after(method, then):
    def run(event):
        method(event)
        then()

    return run


class TaskWidget(Container):
    """Base of the widgets whose work is long (reconstruct, detect, particles).

    Subclasses add their inputs followed by :meth:`controls`, and implement
    :meth:`make_work` (return the core generator, or ``None`` after telling the
    user what is missing) and :meth:`show_result` (turn the result into layers).
    ``stages`` (the core's stage names in order) lets the progress line name the
    stage running now; :meth:`prepare_result`, when a subclass defines it, runs in
    the worker thread on the result (build layers there, add them in
    :meth:`show_result`).
    """

    stages: tuple[str, ...] | None = None
    #: ``(report) -> (stage running now, n, N)``, for work whose reports need more than ``stages``.
    describe_progress = None
    #: Start the plugin's warm-up (torch, the stereo pipeline, compiled functions) when the dock opens;
    #: a dock that needs none of it says False, so the warm-up does not compete with its first run.
    warm_up = True

    def __init__(self, viewer, *, run_text: str, description: str):
        super().__init__(labels=True)
        if self.warm_up:
            start_warm_up()  # imports and compiled functions, in the background, before the first click
        self._viewer = viewer
        self._description = description
        self._task: BackgroundTask | None = None
        self.run_button = PushButton(text=run_text)
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressPanel()
        self.report = report_box()
        self.run_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)

    def controls(self) -> list:
        buttons = Container(widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False)
        buttons.margins = (0, 0, 0, 0)
        return [buttons, *self.progress.widgets, self.report]

    def make_work(self):
        raise NotImplementedError

    def show_result(self, result) -> None:
        raise NotImplementedError

    prepare_result = None

    def start(self, *_) -> BackgroundTask | None:
        """Start the work in a worker thread (returns the task, or ``None`` if inputs are missing)."""
        if self._task is not None and self._task.running:
            return self._task
        work = self.make_work()
        if work is None:
            return None
        self.run_button.enabled, self.cancel_button.enabled = False, True
        self.report.value = ""
        self.progress.start(self.stages, describe=self.describe_progress)
        self._task = BackgroundTask(work, self.show_result, description=self._description,
                                    on_progress=self.progress.update, on_finished=self._finished,
                                    in_worker=self.prepare_result, show_bar=False, error_panel=self.report)
        return self._task.start()

    def cancel(self, *_) -> None:
        if self._task is not None:
            self._task.cancel()
            self.report.value = "cancelled"

    def _finished(self) -> None:
        # The worker's finished signal is queued: it can arrive after the dock (and
        # its Qt buttons) was closed and deleted, and then there is nothing to update.
        try:
            self.run_button.enabled, self.cancel_button.enabled = True, False
            task = self._task
            if task is not None and task.error is not None:
                self.progress.finish("failed")
                self.report.value = f"failed: {task.error}"  # the whole message, where the toast points
            else:
                self.progress.finish("cancelled" if task is not None and task.cancelled else "done")
        except RuntimeError as err:  # "wrapped C/C++ object ... has been deleted"
            if "deleted" not in str(err):
                raise
