"""Dock widget: browse the training set, fine-tune a network on it, choose the model version in use.

- Browser: the entries of a training-set folder; "Remove" moves the selected
  entries to the set's ``.trash/`` and "Restore" brings one back
  (:mod:`napari_stereo_tem.models.training_set`).
- Fine-tune: detector or matcher, from a version, on the set mixed with
  synthetic data (:mod:`napari_stereo_tem.training.finetune`), in a worker
  thread with a progress line, a live loss plot and cancel. A cancelled run
  leaves a checkpoint, listed under "cancelled runs": choosing one fills in its
  name and ticks "resume", which continues it (the plot starts from the losses
  the checkpoint holds). The result is a new named version in the user's model folder.
- Models in use: the versions ``load_detector()``/``load_matcher()`` load by
  default (:func:`napari_stereo_tem.models.store.select_version`).
"""

from __future__ import annotations

from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import (
    CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, Label, LineEdit, PushButton, Select, SpinBox,
)
from napari.utils.notifications import show_error, show_info

from ..checks import InputError
from ..training.finetune import checkpoint_path, finetune_detector, finetune_matcher
from ..models.training_set import list_entries, list_trash, remove_entry, restore_entry
from ..models.store import list_versions, select_version, selected_version, user_models_dir
from .background import BackgroundTask
from .plot import FigureWidget
from .progress_panel import ProgressPanel
from .task_widget import report_box, worker_threads

__all__ = ["FinetuneWidget", "LossPlot", "SHIPPED"]

#: Selector entry meaning "the version shipped with the package".
SHIPPED = "shipped default"


class LossPlot(FigureWidget):
    """A live plot of the training loss."""

    #: While a run reports losses, the plot is redrawn at most once per this many ms: a redraw
    #: takes the UI thread for tens of ms (more on a loaded machine), a step can take less.
    REDRAW_MS = 500

    def __init__(self, parent=None):
        from qtpy.QtCore import QTimer

        super().__init__(parent, figsize=(4, 2.5), min_height=200)
        self.steps: list[int] = []
        self.losses: list[float] = []
        self._redraw = QTimer(self)
        self._redraw.setSingleShot(True)
        self._redraw.setInterval(self.REDRAW_MS)
        self._redraw.timeout.connect(self.draw)
        self.clear()

    def clear(self, losses=()) -> None:
        """Start a new plot, with the ``losses`` of steps 1, 2, ... already done (a resumed run)."""
        from matplotlib.ticker import MaxNLocator

        self.steps = list(range(1, len(losses) + 1))
        self.losses = [float(v) for v in losses]
        self.axes.clear()
        (self.line,) = self.axes.plot(self.steps, self.losses, "-", lw=1.2)
        self.axes.set_xlabel("step")
        self.axes.set_ylabel("loss")
        self.axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
        if self.steps:
            self.axes.relim()
            self.axes.autoscale_view()
        self.canvas.draw_idle()

    def add(self, step: int, loss: float) -> None:
        """One more step's loss; the plot shows it at its next redraw (within ``REDRAW_MS``)."""
        self.steps.append(int(step))
        self.losses.append(float(loss))
        self.line.set_data(self.steps, self.losses)
        if not self._redraw.isActive():
            self._redraw.start()

    def draw(self) -> None:
        """Redraw now with every loss so far (a pending throttled redraw is dropped)."""
        self._redraw.stop()
        self.axes.relim()
        self.axes.autoscale_view()
        self.canvas.draw_idle()


def _versions(kind: str) -> list[str]:
    return list_versions(kind)


def cancelled_runs(kind: str) -> list[str]:
    """Versions of ``kind`` whose fine-tuning was cancelled and can be resumed (a checkpoint, no model yet)."""
    folder = user_models_dir()
    if not folder.is_dir():
        return []
    return sorted(path.name[: -len(".ckpt.pt")] for path in folder.glob(f"{kind}*.ckpt.pt"))


def _checkpoint_losses(version: str) -> list[float]:
    from ..training.schedule import read_checkpoint

    path = checkpoint_path(version)
    return [float(v) for v in read_checkpoint(path).get("losses", [])] if path.is_file() else []


class FinetuneWidget(Container):
    """Training-set browser, fine-tuning with progress and cancel, and the model-version selector."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self._viewer = viewer
        self._task: BackgroundTask | None = None
        self.result: dict | None = None
        self.set_dir = FileEdit(mode="d", label="training set", value=str(Path.home() / "stereo-tem-training-set"))
        self.entries = Select(choices=[], label="entries", allow_multiple=True)
        self.refresh_button = PushButton(text="Refresh")
        self.remove_button = PushButton(text="Remove selected (to .trash)")
        self.trash = ComboBox(choices=[], label="removed", nullable=True)
        self.restore_button = PushButton(text="Restore")
        self.target = ComboBox(choices=["detector", "matcher"], value="detector", label="network")
        self.init = ComboBox(choices=self._init_choices, label="start from")
        self.name = LineEdit(value="finetuned", label="new version name")
        self.steps = SpinBox(value=200, min=1, max=100000, label="steps")
        self.synth_fraction = FloatSpinBox(value=0.5, min=0.0, max=1.0, step=0.05, label="synthetic share")
        self.resume = CheckBox(value=False, text="resume a cancelled run of this name")
        self.cancelled_runs = ComboBox(choices=self._cancelled_choices, label="cancelled runs", nullable=True,
                                       tooltip="runs stopped with Cancel (their checkpoint is kept): choose one "
                                               "to resume it")
        self.start_button = PushButton(text="Fine-tune")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressPanel()
        self.status = report_box(max_lines=6)
        self.use_detector = ComboBox(choices=self._detector_choices, label="detector in use")
        self.use_matcher = ComboBox(choices=self._matcher_choices, label="matcher in use")
        self.use_button = PushButton(text="Use these versions")
        self.extend([self.set_dir, self.entries, self.refresh_button, self.remove_button, self.trash,
                     self.restore_button, self.target, self.init, self.name, self.steps, self.synth_fraction,
                     self.cancelled_runs, self.resume, self.start_button, self.cancel_button,
                     *self.progress.widgets, self.status])
        self.loss_plot = LossPlot()
        self.native.layout().addWidget(self.loss_plot)
        selector = Container(widgets=[self.use_detector, self.use_matcher, self.use_button], labels=True)
        self.native.layout().addWidget(selector.native)
        self._selector = selector
        self.set_dir.changed.connect(self.refresh)
        self.refresh_button.changed.connect(self.refresh)
        self.remove_button.changed.connect(self.remove_selected)
        self.restore_button.changed.connect(self.restore)
        self.target.changed.connect(lambda *_: (self.init.reset_choices(), self.cancelled_runs.reset_choices()))
        self.cancelled_runs.changed.connect(self._choose_cancelled)
        self.start_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)
        self.use_button.changed.connect(self.use_versions)
        self.refresh()

    # -- choices ----------------------------------------------------------------
    def _init_choices(self, *_):
        return ["default", *_versions(self.target.value if hasattr(self, "target") else "detector")]

    def _cancelled_choices(self, *_):
        return cancelled_runs(self.target.value if hasattr(self, "target") else "detector")

    def _choose_cancelled(self, *_) -> None:
        version = self.cancelled_runs.value
        if version:
            self.name.value = version
            self.resume.value = True

    @staticmethod
    def _detector_choices(*_):
        return [SHIPPED, *_versions("detector")]

    @staticmethod
    def _matcher_choices(*_):
        return [SHIPPED, *_versions("matcher")]

    def refresh(self, *_) -> None:
        """Re-read the set folder and the model versions."""
        folder = self.set_dir.value
        entries = list_entries(folder)
        self.entries.choices = [(e.describe(), e.name) for e in entries]
        self.trash.choices = [e.name for e in list_trash(folder)]
        for widget in (self.init, self.use_detector, self.use_matcher, self.cancelled_runs):
            widget.reset_choices()
        self.use_detector.value = selected_version("detector") or SHIPPED
        self.use_matcher.value = selected_version("matcher") or SHIPPED
        self.status.value = f"{len(entries)} entries in {folder}"

    # -- browser ----------------------------------------------------------------
    def remove_selected(self, *_) -> list:
        names = list(self.entries.value)
        if not names:
            show_error("select the entries to remove")
            return []
        moved = [remove_entry(self.set_dir.value, name) for name in names]
        self.refresh()
        show_info(f"moved {len(moved)} entr{'y' if len(moved) == 1 else 'ies'} to {moved[0].parent}; "
                  "'Restore' brings them back")
        return moved

    def restore(self, *_) -> Path | None:
        name = self.trash.value
        if not name:
            show_error("choose a removed entry to restore")
            return None
        path = restore_entry(self.set_dir.value, name)
        self.refresh()
        return path

    # -- fine-tuning --------------------------------------------------------------
    def start(self, *_) -> BackgroundTask | None:
        """Start fine-tuning in a worker thread (returns the task)."""
        if self._task is not None and self._task.running:
            return self._task
        train = finetune_detector if self.target.value == "detector" else finetune_matcher
        work = train(self.set_dir.value, name=self.name.value, init=self.init.value, steps=self.steps.value,
                     synth_fraction=self.synth_fraction.value, resume=self.resume.value, n_threads=worker_threads())
        self._version = self._version_name()
        earlier = []
        if self.resume.value and self._version is not None:
            try:
                earlier = _checkpoint_losses(self._version)
            except Exception:  # noqa: BLE001 - an unreadable checkpoint is reported by the run itself
                earlier = []
        self.loss_plot.clear(earlier)  # a resumed run keeps the losses it had
        self.start_button.enabled, self.cancel_button.enabled = False, True
        self.status.value = f"resuming from step {len(earlier)}" if earlier else ""
        self.progress.start(first="preparing the data")
        self._task = BackgroundTask(work, self._done, description=f"fine-tune {self.target.value}",
                                    on_progress=self._progress, on_finished=self._finished, show_bar=False)
        return self._task.start()

    def _version_name(self) -> str | None:
        from ..training.finetune import version_name

        try:
            return version_name(self.name.value, self.target.value)
        except InputError:
            return None

    def _progress(self, report) -> None:
        if self._task is not None and self._task.cancelled:
            return  # reports still queued when Cancel was pressed must not hide the message
        self.progress.update(report)
        info = report.info or {}
        if "loss" in info:
            self.loss_plot.add(report.done, info["loss"])
            self.status.value = f"step {report.done} of {report.total}, loss {info['loss']:.4f}"

    def cancel(self, *_) -> None:
        if self._task is not None:
            self._task.cancel()
            self.status.value = "cancelling..."

    def _finished(self) -> None:
        self.loss_plot.draw()  # the last losses, not left to the throttle
        self.start_button.enabled, self.cancel_button.enabled = True, False
        task = self._task
        if task is not None and task.error is not None:
            self.progress.finish("failed")
            self.status.value = f"failed: {task.error}"
        elif task is not None and task.cancelled:
            self.progress.finish("cancelled")
            self.cancelled_runs.reset_choices()
            version = self._version
            if version is not None and checkpoint_path(version).is_file():
                self.cancelled_runs.value = version  # also fills in the name and ticks 'resume'
                steps = self.loss_plot.steps[-1] if self.loss_plot.steps else 0
                self.status.value = (f"cancelled at step {steps}; its checkpoint is kept as '{version}' under "
                                     "'cancelled runs': Fine-tune with 'resume' ticked continues it")
            else:
                self.status.value = "cancelled before the first checkpoint: nothing was kept"
        else:
            self.progress.finish("done")

    def _done(self, result: dict) -> None:
        self.result = result
        self.refresh()
        losses = result["losses"]
        self.status.value = (f"saved {result['version']} ({result['steps']} steps, loss "
                             f"{np.mean(losses[:5]):.4f} -> {np.mean(losses[-5:]):.4f}); choose it below to use it")

    # -- selector -----------------------------------------------------------------
    def use_versions(self, *_) -> None:
        """Make the chosen versions the ones the pipeline loads by default."""
        try:
            for kind, widget in (("detector", self.use_detector), ("matcher", self.use_matcher)):
                select_version(kind, None if widget.value in (SHIPPED, None) else widget.value)
        except InputError as err:
            show_error(str(err))
            return
        show_info(f"pipeline uses detector: {self.use_detector.value}, matcher: {self.use_matcher.value}")
