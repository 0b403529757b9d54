"""Synthetic 4D-STEM: virtual detectors see the lines at the disparity the stereo angle predicts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.stereo.projection import project_points
from napari_stereo_tem.synth.fourdstem import simulate_4dstem, stereo_angle_deg

SCAN, DET, R, CONV = (48, 48), (24, 24), 8.0, 30.0


def _virtual(data, centre, radius):
    ky, kx = np.mgrid[0:data.shape[2], 0:data.shape[3]]
    disc = (ky - centre[0]) ** 2 + (kx - centre[1]) ** 2 <= radius ** 2
    return np.asarray(data, dtype=np.float64)[:, :, disc].sum(axis=-1)


def _best_fraction(image, x1, x2, y):
    """Fraction lambda in [-1, 2] of the way from x1 to x2 where the image is darkest along the lines."""
    fractions = np.linspace(-1.0, 2.0, 121)
    means = [ndimage.map_coordinates(image, [y, x1 + f * (x2 - x1)], order=1).mean() for f in fractions]
    return fractions[int(np.argmin(means))]


@pytest.mark.parametrize("rotation", [0.0, 90.0])
def test_virtual_pair_shows_lines_at_predicted_disparity(rotation):
    s = simulate_4dstem(seed=9_000_100, scan_shape=SCAN, detector_shape=DET, disc_radius_px=R,
                        convergence_mrad=CONV, dose=None, foil_thickness=60.0, n_groups=2,
                        scan_rotation_deg=rotation)
    cy, cx = s.centre
    k = 6.0
    # Discs along the detector's x; with the scan rotation the epipolar direction turns with it.
    v1, v2 = _virtual(s.data, (cy, cx - k), 2.5), _virtual(s.data, (cy, cx + k), 2.5)
    phi = stereo_angle_deg((0, -k), (0, k), s.mrad_per_px)
    assert phi == pytest.approx(np.rad2deg(2 * k * CONV / R * 1e-3))
    pts = np.concatenate(s.lines_3d)
    if rotation == 90.0:  # turn the scene so the epipolar direction (scan +y) becomes +x
        pts = np.column_stack([pts[:, 1], (SCAN[1] - 1) - pts[:, 0], pts[:, 2]])
        v1, v2 = np.rot90(v1, 1), np.rot90(v2, 1)
    x1 = project_points(pts, -phi / 2, axis_col=(SCAN[1] - 1) / 2)
    x2 = project_points(pts, +phi / 2, axis_col=(SCAN[1] - 1) / 2)
    inside = (x1[:, 0] > 3) & (x1[:, 0] < SCAN[1] - 4) & (x1[:, 1] > 3) & (x1[:, 1] < SCAN[0] - 4)
    assert inside.sum() > 50
    x1, x2 = x1[inside], x2[inside]
    assert np.abs(x2[:, 0] - x1[:, 0]).max() > 0.8  # the test can tell the views apart
    assert _best_fraction(v1, x1[:, 0], x2[:, 0], x1[:, 1]) == pytest.approx(0.0, abs=0.15)
    assert _best_fraction(v2, x1[:, 0], x2[:, 0], x1[:, 1]) == pytest.approx(1.0, abs=0.15)


def test_npy_zarr_and_zspy_equal_in_memory(tmp_path):
    kwargs = dict(seed=9_000_101, scan_shape=(20, 24), detector_shape=(16, 16), disc_radius_px=5.0, dose=100.0)
    ref = simulate_4dstem(**kwargs)
    assert ref.data.dtype == np.uint16 and ref.data.shape == (20, 24, 16, 16)
    mm = simulate_4dstem(path=tmp_path / "d.npy", **kwargs)
    assert isinstance(mm.data, np.memmap) and mm.data.shape == ref.data.shape
    assert np.array_equal(mm.data, ref.data)
    assert np.array_equal(np.load(tmp_path / "d.npy", mmap_mode="r"), ref.data)
    zz = simulate_4dstem(path=tmp_path / "d.zarr", **kwargs)
    assert np.array_equal(zz.data[:], ref.data)
    hs = simulate_4dstem(path=tmp_path / "d.zspy", **kwargs)
    assert np.array_equal(np.asarray(hs.data), ref.data)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["d.npy", "d.npy.json", "d.zarr", "d.zarr.json", "d.zspy", "d.zspy.json"])
    assert (tmp_path / "d.npy.json").exists()
    # The direct disc is bright, the outside dim.
    mean = ref.data.mean(axis=(0, 1))
    cy, cx = (int(round(v)) for v in ref.centre)
    assert mean[cy, cx] > 20 * mean[0, 0]


def test_bad_input_is_refused(tmp_path):
    with pytest.raises(InputError):
        simulate_4dstem(seed=0, disc_radius_px=40.0)
    with pytest.raises(InputError):
        simulate_4dstem(seed=0, path=tmp_path / "x.tif")
