"""Triangulation against synthetic truth and a case worked out by hand (DESIGN section 2)."""

import numpy as np
import pytest

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.stereo.projection import (depth_from_disparity, disparity_from_depth, project_points,
                                          triangulate, triangulate_asymmetric)


def _random_points(seed, n=200, size=512.0, depth=80.0):
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(0, size, n), rng.uniform(0, size, n), rng.uniform(-depth, depth, n)])


@pytest.mark.parametrize("phi", [1.4, 4.0, 8.0, 20.0])
def test_symmetric_triangulation_recovers_truth(phi):
    pts = _random_points(1)
    c = 255.5
    left = project_points(pts, -phi / 2, axis_col=c)
    right = project_points(pts, phi / 2, axis_col=c)
    np.testing.assert_allclose(left[:, 1], right[:, 1])  # same row
    back = triangulate(left[:, 0], left[:, 1], right[:, 0], phi, axis_col=c)
    np.testing.assert_allclose(back, pts, atol=1e-6, rtol=0)
    # disparity x_right - x_left = 2 Z sin(phi/2), and the two helpers invert each other
    d = right[:, 0] - left[:, 0]
    np.testing.assert_allclose(d, disparity_from_depth(pts[:, 2], phi), atol=1e-9)
    np.testing.assert_allclose(depth_from_disparity(d, phi), pts[:, 2], atol=1e-6)


@pytest.mark.parametrize("tilts", [(40.62, 11.11), (-30.0, 5.0), (2.0, 10.0), (-44.0, 8.0)])
def test_asymmetric_triangulation_recovers_truth(tilts):
    pts = _random_points(2)
    c = 300.0
    v1 = project_points(pts, tilts[0], axis_col=c)
    v2 = project_points(pts, tilts[1], axis_col=c)
    back = triangulate_asymmetric(v1[:, 0], v1[:, 1], v2[:, 0], *tilts, axis_col=c)
    np.testing.assert_allclose(back, pts, atol=1e-6, rtol=0)


def test_asymmetric_case_by_hand():
    # Tilts 40.62 and 11.11 degrees about the axis at column c = 0. From tables:
    #   cos 40.62 = 0.7590441, sin 40.62 = 0.6510392, cos 11.11 = 0.9812590, sin 11.11 = 0.1926932
    #   det = sin(11.11 - 40.62) = sin(-29.51) = -0.4925755
    # The point X = 100, Z = 50 is seen at
    #   x1 = 100 * 0.7590441 + 50 * 0.6510392 = 75.90441 + 32.55196 = 108.45637
    #   x2 = 100 * 0.9812590 + 50 * 0.1926932 = 98.12590 +  9.63466 = 107.76056
    v = project_points([[100.0, 7.0, 50.0]], 40.62, axis_col=0.0)
    np.testing.assert_allclose(v[0], [108.45637, 7.0], atol=1e-4)
    v = project_points([[100.0, 7.0, 50.0]], 11.11, axis_col=0.0)
    np.testing.assert_allclose(v[0], [107.76056, 7.0], atol=1e-4)
    back = triangulate_asymmetric([108.45637], [7.0], [107.76056], 40.62, 11.11)
    np.testing.assert_allclose(back[0], [100.0, 7.0, 50.0], atol=1e-3)
    # The other way round: x1 = 120, x2 = 110 (Cramer's rule)
    #   X = (x1 sin a2 - x2 sin a1) / det = (23.123188 - 71.614313) / -0.4925755 = 98.44406
    #   Z = (x2 cos a1 - x1 cos a2) / det = (83.494851 - 117.751086) / -0.4925755 = 69.54515
    back = triangulate_asymmetric([120.0], [3.0], [110.0], 40.62, 11.11)
    np.testing.assert_allclose(back[0], [98.44406, 3.0, 69.54515], atol=1e-4)
    # depth spread: dZ/dx2 = cos a1 / det = 0.7590441 / -0.4925755 = -1.540970
    _, z_std = triangulate_asymmetric([120.0], [3.0], [110.0], 40.62, 11.11, disparity_std=[0.5])
    np.testing.assert_allclose(z_std, [0.5 * 1.540970], atol=1e-5)


def test_symmetric_is_asymmetric_special_case_with_pixel_size_and_std():
    pts = _random_points(3, n=20)
    left = project_points(pts, -4.0, axis_col=10.0)
    right = project_points(pts, 4.0, axis_col=10.0)
    a, sa = triangulate(left[:, 0], left[:, 1], right[:, 0], 8.0, axis_col=10.0, pixel_size=2.5,
                        disparity_std=np.full(20, 0.4))
    b = triangulate_asymmetric(left[:, 0], left[:, 1], right[:, 0], -4.0, 4.0, axis_col=10.0)
    np.testing.assert_allclose(a, b * 2.5, atol=1e-9)
    np.testing.assert_allclose(a, pts * 2.5, atol=1e-5)
    # Z = d / (2 sin 4 deg) at fixed x_left, so sigma_Z = 0.4 / (2 sin 4 deg) pixels, times 2.5 nm
    np.testing.assert_allclose(sa, 2.5 * 0.4 / (2 * np.sin(np.deg2rad(4.0))), rtol=1e-9)


def test_equal_tilts_and_bad_angles_are_refused():
    with pytest.raises(InputError, match="equal"):
        triangulate_asymmetric([1.0], [1.0], [2.0], 5.0, 5.0)
    with pytest.raises(InputError):
        triangulate([1.0], [1.0], [2.0], 0.0)
    with pytest.raises(InputError):
        project_points(np.zeros((4, 2)), 3.0)
