"""Re-projection of 3D lines into other tilts and its distance to masks and line sets."""

import numpy as np
import pytest

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.stereo.projection import project_points
from napari_stereo_tem.stereo.reprojection import distance_to_lines, reproject_lines, reprojection_error


def _helix(n=200):
    s = np.linspace(0, 1, n)
    return np.column_stack([100 + 60 * s, 40 + 120 * s, 30 * np.sin(6 * s)])


def test_reproject_matches_project_points():
    lines = [_helix(), _helix(50) + [20, 0, -5]]
    out = reproject_lines(lines, 44.0, axis_col=128.0)
    assert [o.shape for o in out] == [(200, 2), (50, 2)]
    np.testing.assert_allclose(out[1], project_points(lines[1], 44.0, axis_col=128.0))
    # at zero tilt the projection drops z
    np.testing.assert_allclose(reproject_lines(lines, 0.0, axis_col=3.0)[0], lines[0][:, :2])


def test_error_against_a_rendered_mask_is_small_and_grows_with_depth_error():
    line = _helix(400)
    tilt = -6.39
    proj = project_points(line, tilt, axis_col=128.0)
    mask = np.zeros((256, 256), dtype=bool)
    mask[np.round(proj[:, 1]).astype(int), np.round(proj[:, 0]).astype(int)] = True
    good = reprojection_error([line], tilt, mask, axis_col=128.0)
    assert good["median"] < 0.5 and good["max"] <= 1.0 and good["n_outside"] == 0
    wrong = line + [0, 0, 40.0]  # 40 px too deep: shifted by 40 sin(6.39 deg) = 4.45 px in that view
    bad = reprojection_error([wrong], tilt, mask, axis_col=128.0)
    assert 3.0 < bad["median"] < 5.0


def test_error_against_lines_is_exact():
    # points (5, y) against the vertical line x = 2: distance 3 everywhere
    pts = np.column_stack([np.full(11, 5.0), np.linspace(0, 10, 11), np.zeros(11)])
    ref = [np.array([[2.0, -5.0], [2.0, 20.0]])]
    err = reprojection_error([pts], 0.0, ref, axis_col=0.0)
    assert err == pytest.approx({"mean": 3.0, "median": 3.0, "max": 3.0, "n_points": 11, "n_outside": 0})
    # 3D reference lines are projected at the same tilt: the model against itself is zero
    err = reprojection_error([_helix()], 30.0, [_helix()], axis_col=50.0)
    assert err["max"] < 1e-9
    d = distance_to_lines([[0.0, 1.0], [3.0, 4.0]], [np.array([[0.0, 0.0], [10.0, 0.0]])])
    np.testing.assert_allclose(d, [1.0, 4.0], atol=0.03)


def test_bad_inputs():
    with pytest.raises(InputError, match="empty"):
        reprojection_error([_helix()], 5.0, np.zeros((64, 64), bool), axis_col=0.0)
    with pytest.raises(InputError, match="shape"):
        reproject_lines([np.zeros((5, 2))], 5.0, axis_col=0.0)
    with pytest.raises(InputError, match="inside"):
        reprojection_error([_helix() + 1000], 5.0, np.ones((64, 64), bool), axis_col=0.0)
