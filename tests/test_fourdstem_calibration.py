"""Direct-beam and diffracted-disc finding, mean/max patterns, descan correction."""

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.fourdstem import (
    beam_centres,
    correct_descan,
    find_diffracted_discs,
    find_direct_beam,
    max_pattern,
    mean_pattern,
    mrad_per_px,
    open_4dstem,
    open_pattern,
)

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason="../shared/realdata not present")

# Si [110] CBED, 200 kV, CL 380 mm: centres checked by eye on the pattern (rows, cols):
# the four {111} discs and the two {220} discs around the direct disc.
SI110_DIRECT = (131.0, 120.9, 17.0)
SI110_DISCS = [(95.5, 174.9), (165.3, 68.0), (171.2, 173.4), (92.2, 69.5), (135.4, 226.0), (125.3, 15.0)]


def _disc_pattern(shape, cy, cx, r, *, level=100.0, background=2.0, blur=1.0, seed=0, poisson=True):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    # supersampled disc edge, then the detector's blur and shot noise
    sub = np.zeros(shape)
    for dy in np.linspace(-0.375, 0.375, 4):
        for dx in np.linspace(-0.375, 0.375, 4):
            sub += ((yy + dy - cy) ** 2 + (xx + dx - cx) ** 2 <= r * r)
    img = background + level * ndi.gaussian_filter(sub / 16, blur)
    return np.random.default_rng(seed).poisson(img).astype(float) if poisson else img


@pytest.mark.parametrize("cy, cx, r", [(60.3, 71.8, 12.4), (40.0, 40.0, 25.0), (100.6, 30.2, 6.3)])
def test_direct_beam_subpixel(cy, cx, r):
    d = find_direct_beam(_disc_pattern((128, 128), cy, cx, r, level=400))
    assert abs(d.cy - cy) < 0.15 and abs(d.cx - cx) < 0.15
    assert abs(d.radius - r) < 0.3


def test_direct_beam_ignores_hot_pixels_and_dimmer_discs():
    p = _disc_pattern((128, 128), 64.2, 63.7, 10, level=400)
    p += _disc_pattern((128, 128), 64, 100, 10, level=60, background=0, seed=1)
    p[5, 5] = p[120, 7] = 10**5
    d = find_direct_beam(p)
    assert abs(d.cy - 64.2) < 0.2 and abs(d.cx - 63.7) < 0.2 and abs(d.radius - 10) < 0.3


def test_flat_pattern_is_refused():
    with pytest.raises(InputError, match="flat"):
        find_direct_beam(np.full((32, 32), 7.0))
    with pytest.raises(InputError, match="2D"):
        find_direct_beam(np.zeros((2, 32, 32)))


@needs_real
def test_si110_cbed_direct_and_six_diffracted_discs():
    p = open_pattern(REAL / "CL_380mm_Si110_200kV.mib")
    d = find_direct_beam(p)
    assert abs(d.cy - SI110_DIRECT[0]) < 1 and abs(d.cx - SI110_DIRECT[1]) < 1 and abs(d.radius - SI110_DIRECT[2]) < 1.5
    found = find_diffracted_discs(p, d, max_discs=6)
    assert len(found) == 6
    for cy, cx in SI110_DISCS:
        dist = min(np.hypot(f.cy - cy, f.cx - cx) for f in found)
        assert dist < 2.0, (cy, cx, found)
    # Friedel pairs: the six discs sit symmetrically about the direct disc
    centres = np.array([[f.cy, f.cx] for f in found])
    mirrored = 2 * np.array([d.cy, d.cx]) - centres
    assert max(np.min(np.hypot(*(centres - m).T)) for m in mirrored) < 3.0


@needs_real
def test_single_mib_direct_beam():
    d = find_direct_beam(open_pattern(REAL / "SingleMIB.mib"))
    assert abs(d.cy - 137.1) < 1 and abs(d.cx - 121.3) < 1 and 32 < d.radius < 36


def test_mean_and_max_patterns_are_cached():
    data = np.random.default_rng(0).integers(0, 100, (5, 4, 16, 16), dtype=np.uint16)
    ds = open_4dstem(data)
    mean = mean_pattern(ds)
    np.testing.assert_allclose(mean, data.mean(axis=(0, 1)))
    np.testing.assert_array_equal(max_pattern(ds), data.max(axis=(0, 1)))
    assert mean_pattern(ds) is mean  # second call reads nothing


def test_mrad_per_px():
    assert mrad_per_px(60, (0, 0, 30)) == pytest.approx(2.0)
    with pytest.raises(InputError):
        mrad_per_px(-1, (0, 0, 30))


def test_descan_correction_recovers_known_shifts():
    rng = np.random.default_rng(3)
    sy, sx, k = 4, 5, 48
    shifts = rng.integers(-4, 5, (sy, sx, 2))
    data = np.zeros((sy, sx, k, k), np.uint16)
    for iy in range(sy):
        for ix in range(sx):
            data[iy, ix] = _disc_pattern((k, k), 24 + shifts[iy, ix, 0], 23 + shifts[iy, ix, 1], 7,
                                         level=300, seed=iy * sx + ix)
    centres = beam_centres(data)
    np.testing.assert_allclose(centres - centres.mean(axis=(0, 1)), shifts - shifts.mean(axis=(0, 1)), atol=0.3)
    fixed = correct_descan(data, centres, reference=(24, 23)).compute()
    again = beam_centres(fixed, direct=(24, 23, 7))
    assert np.abs(again - [24, 23]).max() < 0.6


@needs_real
def test_hot_and_dead_detector_pixels_do_not_hide_the_direct_beam():
    """Ten hot pixels (twenty times the brightest count) made the real Si CBED pattern's disc "unclear"
    (contrast 3.6 x the noise); hot and dead pixels are now replaced by their neighbours' median before
    the fit, and the disc and the six diffracted discs are found where they are without them."""
    from napari_stereo_tem.fourdstem.calibration import without_bad_pixels
    from napari_stereo_tem.fourdstem.masks import disc_mask

    clean = open_pattern(REAL / "CL_380mm_Si110_200kV.mib")
    direct = find_direct_beam(clean)
    rng = np.random.default_rng(1)
    damaged = clean.copy()
    damaged.flat[rng.choice(damaged.size, 10, replace=False)] = 20 * clean.max()       # hot
    inside = np.argwhere(disc_mask(clean.shape, direct.cy, direct.cx, 0.8 * direct.radius))
    for y, x in inside[rng.choice(len(inside), 15, replace=False)]:
        damaged[y, x] = 0.0                                                              # dead
    repaired = without_bad_pixels(damaged)
    changed = repaired != damaged
    assert changed.sum() >= 22 and np.abs(repaired - clean)[changed].max() < 0.5 * clean.max()  # (24 of 25)
    assert (without_bad_pixels(clean) != clean).sum() <= 2     # the recorded pattern itself: (almost) nothing
    found = find_direct_beam(damaged)
    assert np.hypot(found.cy - direct.cy, found.cx - direct.cx) < 0.05 and abs(found.radius - direct.radius) < 0.05
    discs = find_diffracted_discs(damaged, found, max_discs=6)
    for cy, cx in SI110_DISCS:
        assert min(np.hypot(f.cy - cy, f.cx - cx) for f in discs) < 2.0
