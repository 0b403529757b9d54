"""Stereo geometry of two virtual detectors, checked against known numbers and the 4D-STEM generator."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.synth import fourdstem
from napari_stereo_tem.fourdstem import (
    Disc,
    epipolar_direction_deg,
    estimate_scan_rotation_deg,
    find_direct_beam,
    mean_pattern,
    mirror_disc,
    mrad_per_px,
    open_4dstem,
    pair_stereo_angles,
    rotate_image,
    rotation_to_horizontal_deg,
    stereo_angle_deg,
)


def test_stereo_angle_thesis_numbers():
    # discs on opposite edges of the direct disc: 2 x semi-angle (thesis 4.4: 60 mrad -> 6.88 deg, 70 -> 8 deg)
    r = 30.0
    for semi, expected in [(60, 6.88), (70, 8.02)]:
        scale = mrad_per_px(semi, (128, 128, r))
        assert stereo_angle_deg((128, 128 - r, 5), (128, 128 + r, 5), scale) == pytest.approx(expected, abs=0.01)
    pairs = pair_stereo_angles([(0, 0, 1), (0, 10, 1), (10, 0, 1)], 1.0)
    assert [p["pair"] for p in pairs] == [[0, 1], [0, 2], [1, 2]]
    assert pairs[2]["stereo_angle_deg"] == pytest.approx(np.rad2deg(np.hypot(10, 10) * 1e-3))
    with pytest.raises(InputError):
        stereo_angle_deg((0, 0, 1), (0, 1, 1), 0)


def test_epipolar_direction_and_rotation():
    assert epipolar_direction_deg((5, 5, 1), (5, 9, 1)) == pytest.approx(0)
    assert epipolar_direction_deg((5, 5, 1), (9, 5, 1)) == pytest.approx(90)  # +y is down the rows
    assert epipolar_direction_deg((5, 5, 1), (5, 1, 1)) == pytest.approx(180)
    assert epipolar_direction_deg((5, 5, 1), (5, 9, 1), scan_rotation_deg=-30) == pytest.approx(-30)
    assert rotation_to_horizontal_deg((0, 0, 1), (3, 3, 1), scan_rotation_deg=10) == pytest.approx(-55)
    with pytest.raises(InputError, match="share a centre"):
        epipolar_direction_deg((1, 1, 1), (1, 1, 2))


def test_rotate_image_makes_the_epipolar_direction_horizontal():
    img = np.zeros((101, 101))
    e = epipolar_direction_deg((40, 40, 4), (52, 47, 4), scan_rotation_deg=12.0)
    t = np.deg2rad(e)
    for s in np.linspace(-35, 35, 141):
        img[int(round(50 + s * np.sin(t))), int(round(50 + s * np.cos(t)))] = 1
    out = rotate_image(img, rotation_to_horizontal_deg((40, 40, 4), (52, 47, 4), scan_rotation_deg=12.0))
    ys, xs = np.nonzero(out > 0.3)
    assert ys.max() - ys.min() <= 2 and xs.max() - xs.min() > 60


def test_mirror_disc():
    c = (100.0, 100.0)
    assert mirror_disc((90, 120, 5), c, 0) == Disc(110, 120, 5)  # across the horizontal line
    assert mirror_disc((90, 120, 5), c, 90) == Disc(90, 80, 5)
    m = mirror_disc((90, 120, 5), c, None)
    assert (m.cy, m.cx) == (110, 80)
    m = mirror_disc(Disc(100, 130, 4, 1), Disc(100, 100, 30), 45)
    assert (m.cy, m.cx, m.radius, m.inner_radius) == pytest.approx((130, 100, 4, 1))
    # same excitation error: the component along the mirror axis is kept
    a = 33.0
    d = mirror_disc((80, 130, 5), c, a)
    u = np.array([np.sin(np.deg2rad(a)), np.cos(np.deg2rad(a))])
    assert np.dot([80 - 100, 130 - 100], u) == pytest.approx(np.dot([d.cy - 100, d.cx - 100], u))


@pytest.mark.parametrize("rotation", [0.0, 25.0, -63.0])
def test_estimate_scan_rotation_from_a_known_shift(rotation):
    rng = np.random.default_rng(7)
    base = ndi.gaussian_filter(rng.normal(size=(96, 96)), 2.0)
    k1, k2 = (50, 50, 5), (44, 58, 5)  # k2 - k1 points at atan2(-6, 8) on the detector
    e = np.deg2rad(epipolar_direction_deg(k1, k2, scan_rotation_deg=rotation))
    moved = ndi.shift(base, (2.5 * np.sin(e), 2.5 * np.cos(e)), order=3, mode="wrap")
    assert estimate_scan_rotation_deg(base, moved, k1, k2) == pytest.approx(rotation, abs=1.0)


def test_disparities_run_along_the_epipolar_direction_of_the_generator():
    rng = np.random.default_rng(0)
    pts = np.column_stack([rng.uniform(0, 64, 20), rng.uniform(0, 64, 20), rng.uniform(-20, 20, 20)])
    k1, k2 = (-3.0, -5.0), (4.0, 6.0)
    for rotation in (0.0, 40.0):
        a = fourdstem.project_from_direction(pts, k1, 3.0, centre_xy=(32, 32), scan_rotation_deg=rotation)
        b = fourdstem.project_from_direction(pts, k2, 3.0, centre_xy=(32, 32), scan_rotation_deg=rotation)
        e = np.deg2rad(epipolar_direction_deg((*k1, 1), (*k2, 1), scan_rotation_deg=rotation))
        d = b - a  # (x, y)
        across = -d[:, 0] * np.sin(e) + d[:, 1] * np.cos(e)
        along = d[:, 0] * np.cos(e) + d[:, 1] * np.sin(e)
        assert np.abs(across).max() < 0.05 * np.abs(along).max()
        assert np.corrcoef(along, pts[:, 2])[0, 1] > 0.99  # deeper points move further towards +(k2 - k1)


def test_stereo_angle_from_found_disc_matches_generator():
    sample = fourdstem.simulate_4dstem(seed=3, scan_shape=(32, 32), detector_shape=(40, 40), disc_radius_px=10.0,
                                       convergence_mrad=80.0)
    ds = open_4dstem(sample.data)
    direct = find_direct_beam(mean_pattern(ds))
    assert np.hypot(direct.cy - sample.centre[0], direct.cx - sample.centre[1]) < 0.1
    assert direct.radius == pytest.approx(sample.radius, rel=0.01)
    scale = mrad_per_px(80.0, direct)
    for off1, off2 in [((0, -6), (0, 6)), ((-5, -2), (4, 3)), ((0, 0), (7, 0))]:
        k1 = (direct.cy + off1[0], direct.cx + off1[1])
        k2 = (direct.cy + off2[0], direct.cx + off2[1])
        ours = stereo_angle_deg((*k1, 3), (*k2, 3), scale)
        truth = fourdstem.stereo_angle_deg(np.subtract(k1, sample.centre), np.subtract(k2, sample.centre),
                                           sample.mrad_per_px)
        assert ours == pytest.approx(truth, rel=0.01)


def test_scan_rotation_is_refused_when_the_half_images_disagree():
    from napari_stereo_tem.checks import InputError
    from napari_stereo_tem.fourdstem import estimate_scan_rotation

    rng = np.random.default_rng(3)
    base = ndi.gaussian_filter(rng.normal(size=(96, 96)), 2.0)
    k1, k2 = (50, 50, 5), (44, 58, 5)
    # one shift everywhere: the halves agree, the spread is small
    e = np.deg2rad(epipolar_direction_deg(k1, k2, scan_rotation_deg=25.0))
    moved = ndi.shift(base, (2.5 * np.sin(e), 2.5 * np.cos(e)), order=3, mode="wrap")
    rotation, spread = estimate_scan_rotation(base, moved, k1, k2)
    assert rotation == pytest.approx(25.0, abs=1.0) and spread < 1.0
    # the top half shifted one way, the bottom half another: no single direction, refused
    other = ndi.shift(base, (2.5 * np.cos(e), -2.5 * np.sin(e)), order=3, mode="wrap")
    mixed = np.vstack([moved[:48], other[48:]])
    with pytest.raises(InputError, match="not determined"):
        estimate_scan_rotation(base, mixed, k1, k2)
