"""The tomography baseline on a tiny specimen."""

import numpy as np
import pytest

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.evaluation.tomography import (compare_tomography, lines_from_volume, reconstruct_volume,
                                                     series_indices)


def test_series_indices_take_the_ends_and_regular_steps():
    assert series_indices(2).tolist() == [0, 44]
    assert len(series_indices(45)) == 45
    assert series_indices(4).tolist() == [0, 15, 29, 44]
    with pytest.raises(InputError):
        series_indices(1)


def test_wbp_recovers_a_point_at_the_right_depth():
    # A vertical line at x = 30, z = 8 in a 33-column volume (axis at 16): its projection
    # at tilt a is x = 16 + 14 cos a + 8 sin a, the project's convention.
    from napari_stereo_tem.stereo.projection import project_points

    tilts = np.linspace(-48, 50, 45)
    rows, cols = 6, 33
    views = np.zeros((len(tilts), rows, cols))
    for k, a in enumerate(tilts):
        x = project_points(np.array([[30.0, 0.0, 8.0]]), a, axis_col=16.0)[0, 0]
        views[k] = np.exp(-0.5 * (np.arange(cols) - x) ** 2)[None, :]
    vol, z = reconstruct_volume(views, tilts, method="wbp")
    y, kz, kx = np.unravel_index(np.argmax(vol), vol.shape)
    assert kx == 30 and z[kz] == 8.0
    lines = lines_from_volume(vol, z, smooth=0.0, min_branch_length=1)
    pts = np.vstack(lines)
    assert np.allclose(pts[:, 0], 30, atol=0.5) and np.allclose(pts[:, 2], 8, atol=0.6)


def test_wbp_from_45_views_beats_2_views_on_a_tiny_specimen():
    res = compare_tomography(9_000_123, shape=(48, 49), n_views=(2, 45), methods=("wbp",), pipeline=False,
                             foil_thickness=30.0)
    by = {(r["method"], r["n_views"]): r for r in res["rows"]}
    assert by[("wbp", 45)]["mean"] < by[("wbp", 2)]["mean"]
    assert np.isfinite(by[("stereo (truth disparity)", 2)]["mean"])


def test_even_width_is_refused():
    with pytest.raises(InputError, match="odd"):
        compare_tomography(1, shape=(32, 32), n_views=(2,), pipeline=False)
