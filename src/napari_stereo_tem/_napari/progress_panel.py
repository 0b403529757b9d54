"""Progress shown inside a dock widget: the stage running now, n of N, and the time so far.

The core's progress generators report a stage when it has *finished*
(``Progress(k, N, name)``). Given the ordered stage names of the work, the
panel names the stage that runs next, so a long step is shown while it runs
instead of the one before it; without them it shows what the report says.
"""

from __future__ import annotations

import time

from magicgui.widgets import Label, ProgressBar

__all__ = ["ProgressPanel", "running_stage"]


def running_stage(report, stages=None) -> tuple[str, int, int]:
    """``(stage running now, its number from 1, number of stages)`` after ``report``.

    With ``stages`` (the names in order), a report of the finished stage ``k`` means
    stage ``k + 1`` runs now; after the last one, the result is being shown.
    Otherwise the report's own stage (with the step it names in ``info["step"]``, if any) and
    ``done``/``total`` are returned.
    """
    if stages and report.stage in stages:
        k = list(stages).index(report.stage) + 1
        if k < len(stages):
            return stages[k], k + 1, len(stages)
        return "showing the result", len(stages), len(stages)
    step = (report.info or {}).get("step")
    stage = report.stage or "working"
    return (f"{stage}: {step}" if step else stage), int(report.done), int(report.total)


class ProgressPanel:
    """A line of text and a bar, for a dock widget's own progress (see the module docstring).

    ``widgets`` go into the dock; :meth:`start`, :meth:`update` and :meth:`finish`
    are called from the UI thread.
    """

    def __init__(self):
        from qtpy.QtCore import QTimer

        self.label = Label(value="")
        self.label.native.setWordWrap(True)
        self.bar = ProgressBar(value=0, min=0, max=1, visible=False)
        self._timer = QTimer()
        self._timer.setInterval(250)
        self._timer.timeout.connect(self._refresh)
        self._t0 = None
        self._stages = None
        self._describe = None
        self._now = ("", 0, 0)

    @property
    def widgets(self) -> list:
        return [self.label, self.bar]

    @property
    def text(self) -> str:
        return self.label.value

    def start(self, stages=None, first: str = "starting", describe=None) -> None:
        """Start the clock; ``describe(report) -> (stage, n, N)`` replaces :func:`running_stage` when given."""
        self._t0 = time.perf_counter()
        self._describe = describe
        self._stages = list(stages) if stages else None
        self._now = (self._stages[0], 1, len(self._stages)) if self._stages else (first, 0, 0)
        self.bar.max, self.bar.value = max(1, self._now[2]), 0
        self.bar.visible = True
        self._timer.start()
        self._refresh()

    def update(self, report) -> None:
        if self._t0 is None:
            return
        self._now = self._describe(report) if self._describe else running_stage(report, self._stages)
        stage, n, total = self._now
        try:
            if total:
                self.bar.max = total
                self.bar.value = max(0, min(total, n - 1 if self._stages else n))
        except RuntimeError as err:  # a report queued before the dock was closed and its widgets deleted
            self._timer.stop()
            if "deleted" not in str(err):
                raise
            return
        self._refresh()

    def finish(self, outcome: str) -> None:
        """Stop the clock and say how it ended (``"done"``, ``"cancelled"``, ``"failed"``)."""
        self._timer.stop()
        elapsed = 0.0 if self._t0 is None else time.perf_counter() - self._t0
        self._t0 = None
        try:
            self.bar.visible = False
            self.label.value = f"{outcome} after {elapsed:.1f} s"
        except RuntimeError as err:  # the dock was closed and Qt deleted its widgets
            if "deleted" not in str(err):
                raise

    def _refresh(self) -> None:
        if self._t0 is None:
            return
        stage, n, total = self._now
        count = f" ({n} of {total})" if total else ""
        try:
            self.label.value = f"running: {stage}{count}, {time.perf_counter() - self._t0:.1f} s"
        except RuntimeError as err:
            self._timer.stop()
            if "deleted" not in str(err):
                raise
