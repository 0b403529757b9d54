"""Refinement, the SGBM baseline and the disparity metrics on hand-made masks with known disparity."""

import numpy as np
import pytest

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.stereo.matching import disparity_metrics, refine_disparity, sgbm_disparity


def _vertical_line(shape, x, width=1):
    m = np.zeros(shape, bool)
    m[:, x:x + width] = True
    return m


def test_refine_snaps_within_three_pixels_pixel_mode():
    left = _vertical_line((10, 40), 10)
    right = _vertical_line((10, 40), 15)  # true disparity +5
    raw = np.full(left.shape, 3.0)  # off by 2: warped to column 13, nearest right pixel 15
    out = refine_disparity(raw, left, right, mode="pixel")
    np.testing.assert_allclose(out[left], 5.0)
    assert np.isnan(out[~left]).all()


def test_refine_drops_pixels_without_candidate():
    left = _vertical_line((10, 40), 10)
    right = _vertical_line((10, 40), 15)
    raw = np.full(left.shape, 1.0)  # warped to 11: right line 4 px away -> dropped
    out = refine_disparity(raw, left, right, mode="pixel")
    assert np.isnan(out).all()
    raw[5, 10] = 2.5  # this one lands 2.5 px away -> kept
    out = refine_disparity(raw, left, right, mode="pixel")
    assert np.isfinite(out).sum() == 1 and out[5, 10] == 5.0


def test_refine_uses_neighbouring_rows_only_nearly():
    left = np.zeros((10, 40), bool)
    right = np.zeros((10, 40), bool)
    left[4, 10] = True
    right[5, 12] = True  # one row down: distance hypot(0, 1) from the warp target
    out = refine_disparity(np.full(left.shape, 2.0), left, right, mode="pixel")
    assert out[4, 10] == 2.0
    right[:] = False
    right[7, 12] = True  # three rows away: not on (or near) the epipolar line
    out = refine_disparity(np.full(left.shape, 2.0), left, right, mode="pixel")
    assert np.isnan(out).all()


def test_refine_centre_mode_is_width_insensitive():
    left = _vertical_line((8, 40), 10, width=3)   # centre 11
    right = _vertical_line((8, 40), 17, width=4)  # centre 18.5 -> disparity 7.5
    raw = np.full(left.shape, 6.0)
    out = refine_disparity(raw, left, right, mode="centre")
    np.testing.assert_allclose(out[left], 7.5)
    # the disparity is measured from the left run's centre: that is where the 3D point belongs
    out, positions = refine_disparity(raw, left, right, mode="centre", return_positions=True)
    np.testing.assert_allclose(positions[left], 11.0)
    assert np.isnan(positions[~left]).all()
    np.testing.assert_allclose((positions + out)[left], 18.5)  # the right run's centre
    _, positions = refine_disparity(raw, left, right, mode="pixel", return_positions=True)
    np.testing.assert_allclose(positions[left], np.nonzero(left)[1])
    with pytest.raises(InputError):
        refine_disparity(raw, left, right, mode="nearest")
    with pytest.raises(InputError):
        refine_disparity(raw[:4], left, right)


def test_sgbm_sign_convention_on_a_shifted_texture():
    rng = np.random.default_rng(1)
    from scipy.ndimage import gaussian_filter

    scene = gaussian_filter(rng.random((96, 160)), 1.5)
    k = 6
    left = scene[:, 20:140]
    right = scene[:, 20 - k:140 - k]  # right(x) = left(x - k): a point at x_left is at x_left + k
    d = sgbm_disparity(left, right, disparity_range=(-16, 16))
    centre = d[20:-20, 40:-40]
    assert np.nanmedian(centre) == pytest.approx(k, abs=0.5)


def test_disparity_metrics_counts():
    truth = np.array([[1.0, 2.0, np.nan, 4.0]])
    pred = np.array([[1.0, 4.5, 9.0, np.nan]])
    m = disparity_metrics(pred, truth)
    assert m["n"] == 2 and m["epe"] == pytest.approx(1.25)
    assert m["gt1"] == pytest.approx(50.0) and m["gt3"] == 0.0 and m["coverage"] == pytest.approx(200 / 3)
    assert disparity_metrics(pred, truth, np.zeros_like(truth, bool))["n"] == 0
