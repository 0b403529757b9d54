"""The 3D line metric: exact values on hand-made line sets."""

import numpy as np
import pytest

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.evaluation import densify_lines, line_set_distance


def _line(n=101):
    y = np.arange(n, dtype=float)
    return np.column_stack([np.full(n, 10.0), y, np.zeros(n)])


def test_identical_sets_score_zero():
    lines = [_line(), _line() + [30.0, 0.0, 5.0]]
    m = line_set_distance(lines, lines)
    assert m["mean"] == pytest.approx(0.0, abs=1e-12)
    assert m["median"] == pytest.approx(0.0, abs=1e-12)
    assert m["depth_mean"] == pytest.approx(0.0, abs=1e-12)
    assert m["depth_offset"] == 0.0


def test_shifted_set_gives_the_hand_computed_distance():
    # A straight line along y moved by (3, 0, 4) across it: every point is 5 px from the other line,
    # and the point nearest in (x, y) is 3 px away (inside the 3 px tolerance) with |dz| = 4.
    truth = [_line()]
    pred = [_line() + [3.0, 0.0, 4.0]]
    m = line_set_distance(pred, truth, spacing=0.25)
    assert m["mean"] == pytest.approx(5.0, abs=1e-9)
    assert m["median"] == pytest.approx(5.0, abs=1e-9)
    assert m["mean_pred_to_true"] == pytest.approx(5.0, abs=1e-9)
    assert m["depth_mean"] == pytest.approx(4.0, abs=1e-9)


def test_partial_line_counts_the_missing_part():
    # Prediction covers y in [0, 50] of a truth y in [0, 100]; true points beyond 50 are y - 50 away.
    truth = [_line(101)]
    pred = [_line(51)]
    m = line_set_distance(pred, truth, spacing=1.0)
    d_tp = np.concatenate([np.zeros(51), np.arange(1, 51, dtype=float)])
    expected = np.concatenate([np.zeros(51), d_tp]).mean()
    assert m["mean_pred_to_true"] == pytest.approx(0.0)
    assert m["mean_true_to_pred"] == pytest.approx(d_tp.mean())
    assert m["mean"] == pytest.approx(expected)


def test_depth_offset_removal():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 200)
    truth = [np.column_stack([20 + 40 * t, 5 + 80 * t, 30 * np.sin(3 * t)])]
    pred = [truth[0] + [0.0, 0.0, 17.5] + rng.normal(0, 0.01, truth[0].shape) * [0, 0, 1]]
    raw = line_set_distance(pred, truth)
    fixed = line_set_distance(pred, truth, remove_depth_offset=True)
    assert raw["depth_mean"] > 10
    assert fixed["depth_offset"] == pytest.approx(-17.5, abs=0.05)
    assert fixed["depth_mean"] < 0.1
    assert fixed["mean"] < 0.1


def test_densify_spacing_and_points():
    pts = densify_lines([np.array([[0.0, 0, 0], [0, 10, 0]]), np.array([[5.0, 5, 5]])], spacing=0.5)
    assert len(pts) == 22  # 20 steps + end point, plus the lone point
    assert np.max(np.diff(pts[:21, 1])) <= 0.5 + 1e-12


def test_empty_prediction_and_bad_input():
    m = line_set_distance([], [_line()])
    assert m["n_pred"] == 0 and np.isinf(m["mean"])
    with pytest.raises(InputError, match="true line set is empty"):
        line_set_distance([_line()], [])
    with pytest.raises(InputError, match=r"\(n, 3\)"):
        line_set_distance([np.zeros((4, 2))], [_line()])


def test_coverage_precision_and_depth_rmse_by_hand():
    # truth y in [0, 100]; prediction: y in [0, 50] at dz = 2 (within 3 px) plus a stray line 20 px away
    truth = [_line(101)]
    pred = [_line(51) + [0.0, 0.0, 2.0], _line(51) + [20.0, 0.0, 0.0]]
    m = line_set_distance(pred, truth, spacing=1.0)
    # true y = 0..50 lie 2 px from the prediction, y = 51 and 52 within 3 px of its end (sqrt(1+4), sqrt(4+4))
    assert m["coverage"] == pytest.approx(53 / 101)
    assert m["precision"] == pytest.approx(0.5)
    assert m["depth_rmse"] == pytest.approx(2.0)
    tight = line_set_distance(pred, truth, spacing=1.0, tolerance=1.5)
    assert tight["coverage"] == 0.0 and tight["precision"] == 0.0
