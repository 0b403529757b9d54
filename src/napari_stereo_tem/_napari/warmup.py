"""Warm-up in the background when the plugin's first widget opens.

The first reconstruction used to stop the window for many seconds: importing
torch and the pipeline, and napari's own numba-compiled Shapes triangulation
(on the UI thread, when the first paths are added); the fine-tuning dock's
first opening imported matplotlib. :func:`start_warm_up` does all of that once, in a daemon thread, when
a widget or sample of the plugin has opened and the user then pauses for a second (importing torch
holds the interpreter for a moment, felt by whatever the user does then), so the user's first run
finds it done.
The thread is never waited for: work that needs a warmed part simply gets it
warm (compiling twice is impossible, numba holds a lock).

At its end the objects alive then (modules, compiled code: what lives as long
as the process) are moved out of the garbage collector's sight
(``gc.freeze()``). napari calls ``gc.collect()`` on the UI thread every time a
layer is removed; with torch loaded that took 0.5 s a call here, and a rerun of
Reconstruct replaces six layers.
"""

from __future__ import annotations

import gc
import os
import threading

import numpy as np

__all__ = ["start_warm_up", "warm_up"]

_started = threading.Event()
#: Set when the warm-up has ended (for benchmarks and tests that want to wait).
done = threading.Event()


def warm_up() -> None:
    """Import the heavy modules and run the compiled functions once, on tiny inputs."""
    try:
        import torch  # noqa: F401 - the import itself is the cost

        from ..stereo import pipeline  # noqa: F401
        from ..stereo.skeleton_graph import skeleton_branches

        mask = np.zeros((12, 12), bool)
        mask[2:10, 5] = True
        mask[5, 5:10] = True
        skeleton_branches(mask)  # skan's numba functions
        from napari.layers.shapes import _accelerated_triangulate_dispatch as triangulate

        triangulate.warmup_numba_cache()  # what napari would compile on the UI thread
        from napari.layers import Shapes

        path = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [2.0, 3.0, 5.0]])
        # each kind of shape the docks add compiles its own meshes on first use: paths (3D lines, 2D
        # projections), lines (the crystal axes, 3D: 5-8 s on the UI thread in a fresh install) and
        # ellipses (the direct beam's circle)
        Shapes([path], shape_type="path", ndim=3)
        Shapes([path[:, 1:]], shape_type="path", ndim=2)
        Shapes([path[:2]], shape_type="line", ndim=3)
        Shapes([np.array([[0.0, 0.0], [0.0, 4.0], [4.0, 4.0], [4.0, 0.0]])], shape_type="ellipse")
        import matplotlib.backends.backend_qtagg  # noqa: F401 - the docks' plots (loss, g(r))
        import matplotlib.figure  # noqa: F401
        gc.collect()
        gc.freeze()  # what is alive now lives as long as the process: stop rescanning it
    finally:
        done.set()


def start_warm_up() -> None:
    """Start :func:`warm_up` in a background thread, once per process.

    ``NAPARI_STEREO_TEM_NO_WARMUP=1`` leaves it out (to measure what it saves).
    """
    if _started.is_set() or os.environ.get("NAPARI_STEREO_TEM_NO_WARMUP"):
        return
    _started.set()

    def start():
        threading.Thread(target=_quiet_warm_up, name="stereo-tem warm-up", daemon=True).start()

    # Called from a sample or a dock being built: start once the UI has finished that
    # (a timer fires only when the event loop runs) and the user has paused.
    from qtpy.QtCore import QThread
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    if app is not None and QThread.currentThread() is app.thread():
        from qtpy.QtCore import QTimer

        # the pause counts from the event loop's next turn: not while napari adds a sample's layers
        QTimer.singleShot(0, lambda: _when_idle(app, start))
    else:
        start()


#: The warm-up starts once the user has given no input (click, key, wheel, mouse move) for this
#: long, and after ``IDLE_MAX_MS`` at the latest: importing torch holds the interpreter for about
#: 0.4 s (more on a loaded machine), which whatever the user does meanwhile would feel.
IDLE_MS = 1000
IDLE_MAX_MS = 10_000


def _when_idle(app, then) -> None:
    from qtpy.QtCore import QEvent, QObject, QTimer

    user_input = {QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonRelease, QEvent.Type.MouseMove,
                  QEvent.Type.KeyPress, QEvent.Type.Wheel}

    class Idle(QObject):
        def __init__(self):
            super().__init__(app)  # kept alive by the application until it fires
            self.quiet = QTimer(self)
            self.quiet.setSingleShot(True)
            self.quiet.setInterval(IDLE_MS)
            self.quiet.timeout.connect(self.fire)
            self.latest = QTimer(self)
            self.latest.setSingleShot(True)
            self.latest.setInterval(IDLE_MAX_MS)
            self.latest.timeout.connect(self.fire)
            self.fired = False
            app.installEventFilter(self)
            self.quiet.start()
            self.latest.start()

        def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
            if event.type() in user_input:
                self.quiet.start()  # again from zero
            return False

        def fire(self):
            if self.fired:
                return
            self.fired = True
            app.removeEventFilter(self)
            self.quiet.stop()
            self.latest.stop()
            then()
            self.deleteLater()

    Idle()


def _quiet_warm_up() -> None:
    try:
        warm_up()
    except Exception:  # noqa: BLE001 - a failed warm-up only means the first use is slower
        pass
