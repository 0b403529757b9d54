"""Shared fixtures."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


#: Ceiling of every wait on a background task: generous, so that a busy machine never
#: fails a test by being slow (the wait ends as soon as the task does).
WAIT_CEILING_MS = 600_000


@pytest.fixture(scope="session", autouse=True)
def _session_models_dir(tmp_path_factory):
    """Tests never read or write the user's own models folder (nor its ``selected_versions.json``)."""
    previous = os.environ.get("NAPARI_STEREO_TEM_MODELS")
    os.environ["NAPARI_STEREO_TEM_MODELS"] = str(tmp_path_factory.mktemp("session-models"))
    yield
    if previous is None:
        os.environ.pop("NAPARI_STEREO_TEM_MODELS", None)
    else:
        os.environ["NAPARI_STEREO_TEM_MODELS"] = previous


@pytest.fixture(autouse=True)
def _isolated_models_dir(tmp_path_factory, monkeypatch):
    """Each test starts with an empty models folder of its own (a test may set another one)."""
    monkeypatch.setenv("NAPARI_STEREO_TEM_MODELS", str(tmp_path_factory.mktemp("models")))


@pytest.fixture(scope="session")
def realdata_dir() -> Path:
    """The real detector files of ``../shared/realdata`` (CI has ``shared/`` beside the clone)."""
    path = SHARED / "realdata"
    if not path.is_dir():
        pytest.fail(f"{path} is missing: clone the project beside its shared/ folder")
    return path


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return REPO / "sample_data"


@pytest.fixture
def fourdstem_dock(make_napari_viewer, monkeypatch):
    """``(viewer, dock)``: the virtual-detector dock on the 4D-STEM sample, mean pattern computed.

    Background work runs inline (``NAPARI_STEREO_TEM_SYNC``), so the tests are deterministic.
    """
    monkeypatch.setenv("NAPARI_STEREO_TEM_SYNC", "1")
    viewer = make_napari_viewer()
    viewer.open_sample("napari-stereo-tem", "fourdstem")
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Virtual detectors")
    widget.reset_choices()
    widget.compute_mean_pattern()
    return viewer, widget


@pytest.fixture
def wait_finished(qtbot):
    """``wait_finished(task, timeout_ms)`` waits for a ``BackgroundTask`` to end.

    It waits on the task's own flag, set in the UI thread by a slot connected
    before the worker started: a signal connected after ``start()`` can be
    missed when the work ends at once.
    """

    def wait(task, timeout=WAIT_CEILING_MS):
        qtbot.waitUntil(lambda: task.finished, timeout=timeout)
        return task

    return wait


@pytest.fixture
def cancel_during():
    """``cancel_during(work, stage, at_check)``: drive a progress generator and ask it to stop inside a stage.

    Once the report of ``stage`` arrives (the next stage has begun), every call of the
    cancel check is counted and the ``at_check``-th asks to stop. Asserts that the work
    raised ``Cancelled``; returns the stages reported and the number of checks made.
    """
    from napari_stereo_tem.progress import Cancelled, drive

    def run(work, stage: str, at_check: int):
        stages, state = [], {"armed": False, "checks": 0}

        def on_progress(report):
            stages.append(report.stage)
            state["armed"] = report.stage == stage

        def should_stop():
            if state["armed"]:
                state["checks"] += 1
            return state["checks"] >= at_check

        with pytest.raises(Cancelled):
            drive(work, on_progress, should_stop)
        return stages, state["checks"]

    return run
