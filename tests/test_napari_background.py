"""Core generators run off the UI thread: result, progress, errors and cancel."""

import time

import pytest

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.progress import Progress


def _counting(n, delay=0.0, cleanup=None):
    try:
        for i in range(n):
            time.sleep(delay)
            yield Progress(i + 1, n, "counting")
        return n * 10
    finally:
        if cleanup is not None:
            cleanup.append("closed")


def _failing():
    yield Progress(0, 1, "checking")
    raise InputError("the left view is constant")


@pytest.fixture
def task_cls(make_napari_viewer):
    make_napari_viewer()  # a running QApplication and napari's notification manager
    from napari_stereo_tem._napari.background import BackgroundTask

    return BackgroundTask


def test_result_and_progress(task_cls, wait_finished):
    results, reports = [], []
    task = task_cls(_counting(5), results.append, description="count", on_progress=reports.append)
    wait_finished(task.start())
    assert results == [50]
    assert [r.done for r in reports] == [1, 2, 3, 4, 5]


def test_cancel_stops_within_a_second(task_cls, qtbot, wait_finished):
    results, cleanup = [], []
    task = task_cls(_counting(1000, delay=0.05, cleanup=cleanup), results.append, description="long")
    task.start()
    qtbot.wait(200)
    t0 = time.perf_counter()
    task.cancel()
    wait_finished(task)
    assert time.perf_counter() - t0 < 1.0
    assert results == []
    qtbot.waitUntil(lambda: cleanup == ["closed"], timeout=60_000)


def test_input_error_becomes_a_notification(task_cls, wait_finished, monkeypatch):
    messages = []
    monkeypatch.setattr("napari_stereo_tem._napari.background.show_error", messages.append)
    task = task_cls(_failing(), lambda r: None, description="reconstruct")
    wait_finished(task.start())
    assert messages == ["the left view is constant"]


def _one_long_step(done, cleanup):
    from napari_stereo_tem.progress import check_cancelled

    try:
        yield Progress(0, 1, "start")
        for i in range(2000):  # 20 s in one step, no yield in between
            check_cancelled()
            time.sleep(0.01)
            done.append(i)
        yield Progress(1, 1, "long step")
        return "finished"
    finally:
        cleanup.append("closed")


def test_cancel_stops_inside_a_long_step(task_cls, qtbot, wait_finished, monkeypatch):
    infos, errors = [], []
    monkeypatch.setattr("napari_stereo_tem._napari.background.show_info", infos.append)
    monkeypatch.setattr("napari_stereo_tem._napari.background.show_error", errors.append)
    results, done, cleanup = [], [], []
    task = task_cls(_one_long_step(done, cleanup), results.append, description="long")
    task.start()
    qtbot.waitUntil(lambda: len(done) > 5, timeout=60_000)  # inside the step
    task.cancel()
    n_at_cancel = len(done)
    wait_finished(task)
    assert results == [] and errors == [] and cleanup == ["closed"]
    assert len(done) < n_at_cancel + 100  # stopped within the step (1 s of units at most), not after 2000
    assert infos == ["long cancelled"]


def test_a_result_shown_step_by_step_ends_the_task_after_its_last_step(task_cls, qtbot, wait_finished):
    shown = []

    def show(result):
        for k in range(3):
            shown.append((k, task.finished))  # the task is not finished while the result is shown
            yield

    finished_calls = []
    task = task_cls(_counting(2), show, description="steps", on_finished=lambda: finished_calls.append(list(shown)))
    wait_finished(task.start())
    assert shown == [(0, False), (1, False), (2, False)]
    assert finished_calls == [shown]  # on_finished came after every step


def test_in_worker_prepares_the_result_off_the_ui_thread(task_cls, wait_finished):
    import threading

    ui = threading.get_ident()
    results = []
    task = task_cls(_counting(2), results.append, in_worker=lambda value: (value, threading.get_ident()))
    wait_finished(task.start())
    assert results[0][0] == 20 and results[0][1] != ui


def test_warm_up_imports_and_freezes_what_lives_long():
    import gc
    import sys

    from napari_stereo_tem._napari import warmup

    warmup.warm_up()
    assert warmup.done.is_set() and "torch" in sys.modules
    assert gc.get_freeze_count() > 0


def test_warm_up_compiles_the_meshes_of_every_kind_of_shape_the_docks_add():
    """napari compiles a Shapes kind's mesh functions on its first use, on the UI thread (5-8 s for the
    crystal axes' 3D lines in a fresh install): after the warm-up, none of the kinds the docks add
    (3D and 2D paths, 3D lines, ellipses) compiles anything."""
    import numpy as np
    from napari.layers import Shapes
    from napari.layers.shapes import _accelerated_triangulate_numba as compiled

    from napari_stereo_tem._napari import warmup

    def signatures():
        return {name: len(f.signatures) for name, f in vars(compiled).items() if hasattr(f, "signatures")}

    warmup.warm_up()
    before = signatures()
    path = np.array([[0.0, 1.0, 2.0], [3.0, 5.0, 4.0], [6.0, 6.0, 9.0], [7.0, 2.0, 1.0]])
    Shapes([path], shape_type="path", ndim=3)
    Shapes([path[:, 1:]], shape_type="path", ndim=2)
    Shapes([path[:2], path[2:]], shape_type="line", ndim=3)
    Shapes([np.array([[10.0, 10.0], [10.0, 30.0], [30.0, 30.0], [30.0, 10.0]])], shape_type="ellipse")
    assert signatures() == before


def test_call_answering_runs_in_a_thread_while_qt_timers_run(make_napari_viewer):
    """Work napari makes us do on the UI thread (a sample) runs in a thread; the window's timers keep running."""
    import threading

    from qtpy.QtCore import QTimer

    from napari_stereo_tem._napari.responsive import call_answering

    make_napari_viewer()
    ticks, threads = [], []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start()

    def work(x, *, y):
        threads.append(threading.get_ident())
        time.sleep(0.3)  # the time the UI thread would have been stopped
        return x + y

    try:
        assert call_answering(work, 1, y=2) == 3
    finally:
        timer.stop()
    assert threads and threads[0] != threading.get_ident()
    assert len(ticks) >= 3  # the timer ticked while the work ran


def test_call_answering_raises_the_work_s_error(make_napari_viewer):
    from napari_stereo_tem._napari.responsive import call_answering

    make_napari_viewer()

    def bad():
        raise InputError("the file is truncated")

    with pytest.raises(InputError, match="truncated"):
        call_answering(bad)


def test_warm_up_waits_for_a_pause_in_user_input(make_napari_viewer, qtbot, monkeypatch):
    """Importing torch holds the interpreter: the warm-up starts when the user pauses, not mid-action."""
    from qtpy.QtCore import QEvent, Qt
    from qtpy.QtGui import QKeyEvent
    from qtpy.QtWidgets import QApplication

    from napari_stereo_tem._napari import warmup

    viewer = make_napari_viewer()
    monkeypatch.setattr(warmup, "IDLE_MS", 1500)
    started = []
    warmup._when_idle(QApplication.instance(), lambda: started.append(time.perf_counter()))
    target = viewer.window._qt_window
    for _ in range(10):  # a second of typing
        QApplication.sendEvent(target, QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_A, Qt.KeyboardModifier.NoModifier))
        qtbot.wait(100)
    assert started == []
    last_key = time.perf_counter()
    qtbot.waitUntil(lambda: bool(started), timeout=60_000)
    assert started[0] - last_key > 1.0  # a pause, counted from the last key
