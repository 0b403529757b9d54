"""Warm-up in the background when the plugin's first widget opens.

The first reconstruction used to stop the window for many seconds: importing
torch and the pipeline, compiling skan's numba functions, and napari's own
numba-compiled Shapes triangulation (on the UI thread, when the first paths are
added). :func:`start_warm_up` does all of that once, in a daemon thread, as soon
as a widget of the plugin is created, so the user's first click finds it done.
The thread is never waited for: work that needs a warmed part simply gets it
warm (compiling twice is impossible, numba holds a lock).
"""

from __future__ import annotations

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
        Shapes([path], shape_type="path", ndim=3)  # the path meshes' own first use
        Shapes([path[:, 1:]], shape_type="path", ndim=2)
    finally:
        done.set()


def start_warm_up() -> None:
    """Start :func:`warm_up` in a background thread, once per process."""
    if _started.is_set():
        return
    _started.set()
    threading.Thread(target=_quiet_warm_up, name="stereo-tem warm-up", daemon=True).start()


def _quiet_warm_up() -> None:
    try:
        warm_up()
    except Exception:  # noqa: BLE001 - a failed warm-up only means the first use is slower
        pass
