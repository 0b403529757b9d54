"""Large camera images of wide lines: reconstructed shrunk, given back in the image's own pixels."""

import numpy as np
import pytest

from napari_stereo_tem.stereo.pipeline import reconstruct, working_scale


@pytest.mark.parametrize("shape, detect_scale, expected", [
    ((1024, 1024), 0.35, 1.0),      # not large: as is
    ((4096, 4096), 1.0, 1.0),       # large, thin lines: as is
    ((4096, 4096), 0.09, 0.25),     # wide lines: shrunk, but kept at 1024 px a side
    ((2048, 3000), 0.7, 0.7),       # at the detector's factor
])
def test_working_scale(shape, detect_scale, expected):
    assert working_scale(shape, detect_scale) == pytest.approx(expected)


def test_a_large_pair_of_wide_lines_is_reconstructed_in_its_own_pixels():
    """A stereo view enlarged six times (2304 px, lines about 10 px of sigma) and the same view moved
    by 9 px along the rows: every point lies at the one depth 9 / (2 sin 4 deg) = 64.5 px, and the
    lines and maps come back at the full size."""
    import cv2
    from scipy import ndimage

    from napari_stereo_tem.synth import make_stereo_pair

    view = make_stereo_pair(4321, shape=(384, 384)).left
    left = cv2.resize(view, (2304, 2304), interpolation=cv2.INTER_CUBIC)
    right = ndimage.shift(left, (0, 9), order=1, mode="nearest")
    result = reconstruct(left, right, stereo_angle_deg=8.0, rectify=False)
    assert result.provenance["parameters"]["working_scale"] < 1.0
    assert len(result.lines) >= 25  # the 384 px view itself gives 26; matched at full size, 20
    points = np.vstack(result.lines)
    assert points[:, 0].max() > 1500 and points[:, 1].max() > 1500  # the image's own pixels
    expected = 9.0 / (2 * np.sin(np.deg2rad(4.0)))
    assert abs(np.median(points[:, 2]) - expected) < 2.0
    assert np.median(np.abs(points[:, 2] - expected)) < 1.0
    for name in ("left", "prob_left", "labels_left", "disparity", "disparity_refined"):
        assert getattr(result, name).shape == left.shape, name
    kept = np.isfinite(result.disparity_refined)
    assert abs(np.median(result.disparity_refined[kept]) - 9.0) < 0.5  # disparities in full-size pixels
