"""Shared fixtures."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


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
def wait_finished(qtbot):
    """``wait_finished(task, timeout_ms)`` waits for a ``BackgroundTask`` to end.

    It waits on the task's own flag, set in the UI thread by a slot connected
    before the worker started: a signal connected after ``start()`` can be
    missed when the work ends at once.
    """

    def wait(task, timeout=120_000):
        qtbot.waitUntil(lambda: task.finished, timeout=timeout)
        return task

    return wait
