"""Work that napari makes us do on the UI thread, done in a thread while the window keeps drawing.

napari calls a sample's function on the UI thread and adds its layers when it
returns: whatever the function computes (imports, a synthetic scene) stops the
window meanwhile. :func:`call_answering` runs such work in a thread and, on the
UI thread, lets Qt repaint and run its timers until it ends. User input (clicks,
keys) waits in Qt's queue until then, so nothing the user does can run inside
the caller (open a second sample, close the viewer) before it has finished.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

__all__ = ["call_answering"]

#: How long one turn of the event loop may run Qt's events before the thread is checked again (ms).
_TURN_MS = 10


def call_answering(function: Callable, *args, **kwargs):
    """``function(*args, **kwargs)`` in a thread, the window repainting meanwhile; returns its value.

    Its exception, if any, is raised here. Called outside Qt's UI thread, or with
    ``NAPARI_STEREO_TEM_SYNC=1`` (debugging), it simply calls ``function``.
    """
    from qtpy.QtCore import QEventLoop, QThread
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    if os.environ.get("NAPARI_STEREO_TEM_SYNC") or app is None or QThread.currentThread() is not app.thread():
        return function(*args, **kwargs)
    outcome = {}

    def work():
        try:
            outcome["value"] = function(*args, **kwargs)
        except BaseException as err:  # noqa: BLE001 - raised again in the caller's thread
            outcome["error"] = err

    thread = threading.Thread(target=work, name="stereo-tem answering", daemon=True)
    thread.start()
    flags = QEventLoop.ProcessEventsFlag.AllEvents | QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents
    while thread.is_alive():
        app.processEvents(flags, _TURN_MS)
        thread.join(0.003)  # the thread has the interpreter meanwhile
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
