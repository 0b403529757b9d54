"""A dock widget that runs one core progress generator at a time: Run, Cancel and a report line."""

from __future__ import annotations

from magicgui.widgets import Container, Label, PushButton

from .background import BackgroundTask

__all__ = ["TaskWidget"]


class TaskWidget(Container):
    """Base of the widgets whose work is long (reconstruct, particles).

    Subclasses add their inputs followed by :meth:`controls`, and implement
    :meth:`make_work` (return the core generator, or ``None`` after telling the
    user what is missing) and :meth:`show_result` (turn the result into layers).
    """

    def __init__(self, viewer, *, run_text: str, description: str):
        super().__init__(labels=True)
        self._viewer = viewer
        self._description = description
        self._task: BackgroundTask | None = None
        self.run_button = PushButton(text=run_text)
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.report = Label(value="")
        self.report.native.setWordWrap(True)
        self.run_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)

    def controls(self) -> list:
        return [self.run_button, self.cancel_button, self.report]

    def make_work(self):
        raise NotImplementedError

    def show_result(self, result) -> None:
        raise NotImplementedError

    def start(self, *_) -> BackgroundTask | None:
        """Start the work in a worker thread (returns the task, or ``None`` if inputs are missing)."""
        if self._task is not None and self._task.running:
            return self._task
        work = self.make_work()
        if work is None:
            return None
        self.run_button.enabled, self.cancel_button.enabled = False, True
        self.report.value = "running..."
        self._task = BackgroundTask(work, self.show_result, description=self._description,
                                    on_finished=self._finished)
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
            if self._task is not None and self._task.error is not None:
                self.report.value = f"failed: {self._task.error}"
        except RuntimeError as err:  # "wrapped C/C++ object ... has been deleted"
            if "deleted" not in str(err):
                raise
