"""Cancel inside a long step: check_cancelled() stops the work where it is, not at the end of the step."""

import time

import numpy as np
import pytest

from napari_stereo_tem.progress import (Cancelled, Progress, cancel_check, check_cancelled, drive, map_threads,
                                        within_step)
from napari_stereo_tem.stereo.pipeline import lines_from_disparity


def _one_long_step(n, done, cleanup):
    try:
        yield Progress(0, 1, "start")
        for i in range(n):  # one step of n units, no yield in between
            check_cancelled()
            done.append(i)
        yield Progress(1, 1, "long step")
        return "finished"
    finally:
        cleanup.append("closed")


def test_drive_stops_inside_a_step():
    done, cleanup, asked = [], [], []

    def should_stop():
        asked.append(1)
        return len(done) >= 5

    with pytest.raises(Cancelled):
        drive(_one_long_step(1000, done, cleanup), should_stop=should_stop)
    assert len(done) == 5 and cleanup == ["closed"]


def test_within_step_reports_the_outer_stage_and_returns_the_result():
    def frames(n, done, cleanup):
        results = []
        for k in range(n):
            results.append((yield from within_step(_one_long_step(3, done, cleanup), k, n, "frames")))
            yield Progress(k + 1, n, "frames")
        return results

    seen = []
    result = drive(frames(2, [], []), on_progress=seen.append)
    assert result == ["finished", "finished"]
    assert {p.stage for p in seen} == {"frames"} and [p.done for p in seen] == [0, 0, 1, 1, 1, 2]
    # a cancel still reaches the inner work
    done, cleanup = [], []
    with pytest.raises(Cancelled):
        drive(frames(3, done, cleanup), on_progress=lambda p: None, should_stop=lambda: len(done) >= 4)
    assert len(done) == 4 and cleanup == ["closed", "closed"]
    # and a cancel between two of its reports closes it at once
    done, cleanup = [], []
    with pytest.raises(Cancelled):
        drive(frames(3, done, cleanup), on_progress=lambda p: None, should_stop=lambda: len(done) == 3)
    assert len(done) == 3 and cleanup == ["closed"]


def test_without_a_driver_check_cancelled_does_nothing():
    done, cleanup = [], []
    assert drive(_one_long_step(50, done, cleanup)) == "finished"
    check_cancelled()  # outside any drive
    assert len(done) == 50


def test_a_nested_drive_keeps_the_outer_should_stop():
    done, cleanup = [], []

    def outer():
        yield Progress(0, 1, "outer")
        return drive(_one_long_step(1000, done, cleanup))  # no should_stop of its own

    with pytest.raises(Cancelled):
        drive(outer(), should_stop=lambda: len(done) >= 3)
    assert len(done) == 3


def test_the_scope_is_restored():
    with cancel_check(lambda: True):
        with pytest.raises(Cancelled):
            check_cancelled()
        with cancel_check(None):
            check_cancelled()
    check_cancelled()


def test_map_threads_keeps_the_order_and_passes_a_cancel_to_its_workers():
    assert map_threads(lambda v: v * v, range(7)) == [v * v for v in range(7)]
    done = []

    def work(k):
        for i in range(10_000):
            check_cancelled()
            done.append((k, i))

    with pytest.raises(Cancelled):
        with cancel_check(lambda: len(done) >= 20):
            map_threads(work, range(4))
    assert len(done) < 200  # every worker stopped at its next check, none ran to its end


def test_map_threads_starts_no_item_after_a_cancel_or_an_error():
    started = []
    stop = []

    def work(k):
        started.append(k)
        for _ in range(200):
            check_cancelled()
            time.sleep(0.001)
        stop.append(1)

    with pytest.raises(Cancelled):
        with cancel_check(lambda: len(started) >= 2):
            map_threads(work, range(40))
    assert len(started) <= 4 and not stop  # the two running stop; the queued ones never start

    started.clear()

    def fails(k):
        started.append(k)
        time.sleep(0.01)
        raise ValueError(f"item {k}")

    with pytest.raises(ValueError, match="item 0"):
        map_threads(fails, range(40))
    assert len(started) < 40


def test_triangulation_stops_per_line():
    mask = np.zeros((64, 64), bool)
    for col in range(4, 60, 8):
        mask[5:60, col] = True  # seven separate lines
    disparity = np.where(mask, 2.0, np.nan)
    assert len(lines_from_disparity(mask, disparity, 8.0)) == 7
    calls = []

    def stop_after_three():
        calls.append(1)
        return len(calls) > 3

    with cancel_check(stop_after_three), pytest.raises(Cancelled):
        lines_from_disparity(mask, disparity, 8.0)
    assert len(calls) == 4  # asked once per line, stopped at the fourth


def test_particle_fits_stop_within_a_block():
    from napari_stereo_tem.particles.refine import fit_single

    rng = np.random.default_rng(0)
    signals = [rng.random((64, 64)) for _ in range(4)]
    points = np.column_stack([rng.uniform(10, 54, 40), rng.uniform(10, 54, 40), np.zeros(40)])
    shift = np.zeros((4, 2))
    calls = []

    def stop_at_second_block():
        calls.append(1)
        return len(calls) > 1

    with cancel_check(stop_at_second_block), pytest.raises(Cancelled):
        fit_single(signals, points, np.full(40, 3.0), shift, chunk=10)
    assert len(calls) == 2


def test_the_matcher_stops_between_layers():
    from napari_stereo_tem.stereo.matching import load_matcher, predict_disparity

    model = load_matcher("default")
    rng = np.random.default_rng(0)
    left, right = rng.random((64, 64)), rng.random((64, 64))
    calls = []

    def stop_at_the_tenth_layer():
        calls.append(1)
        return len(calls) >= 10

    with cancel_check(stop_at_the_tenth_layer), pytest.raises(Cancelled):
        predict_disparity(left, right, model)
    assert len(calls) == 10
    assert all(not m._forward_pre_hooks for m in model.modules())  # no hook left behind
    disparity, _ = predict_disparity(left, right, model)  # and the model still works
    assert disparity.shape == (64, 64)


def test_refinement_stops_within_the_rows():
    from napari_stereo_tem.stereo.matching import refine_disparity

    mask = np.zeros((128, 64), bool)
    mask[:, 20] = True
    calls = []

    def stop_at_the_third_check():
        calls.append(1)
        return len(calls) >= 3

    with cancel_check(stop_at_the_third_check), pytest.raises(Cancelled):
        refine_disparity(np.zeros((128, 64)), mask, mask)
    assert len(calls) == 3


def test_a_reconstruction_stops_inside_detection(cancel_during):
    """The detector's layers check for a cancel too: the detect stage stops inside itself."""
    from napari_stereo_tem.stereo.pipeline import reconstruct_stereo
    from napari_stereo_tem.synth import make_stereo_pair

    sample = make_stereo_pair(9_000_601, shape=(64, 64))
    work = reconstruct_stereo(sample.left, sample.right, stereo_angle_deg=8.0, rectify=False)
    stages, checks = cancel_during(work, "rectify", 3)  # after "rectify", the detect stage runs
    assert stages == ["load", "rectify"] and checks == 3


def test_a_reconstruction_stops_between_loading_the_models(monkeypatch):
    """A cancel during the load stage acts before the next model is loaded, not after the whole stage."""
    import napari_stereo_tem.stereo.pipeline as pipeline
    from napari_stereo_tem.models import store
    from napari_stereo_tem.synth import make_stereo_pair

    sample = make_stereo_pair(9_000_601, shape=(64, 64))
    loaded = []
    monkeypatch.setattr(store, "load_detector", lambda *a, **k: loaded.append("detector"))
    checks = {"n": 0}

    def should_stop():
        checks["n"] += 1
        return checks["n"] >= 2  # the first check passes, the second (after the detector) stops

    with pytest.raises(Cancelled):
        drive(pipeline.reconstruct_stereo(sample.left, sample.right, stereo_angle_deg=8.0, rectify=False),
              should_stop=should_stop)
    assert loaded == ["detector"]
