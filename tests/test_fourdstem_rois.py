"""HyperSpy CircleROIs give exactly what pyxem gives for the same ROI."""

import hyperspy.api as hs
import numpy as np
import pytest
import pyxem as pxm

from napari_stereo_tem.fourdstem import disc_mask, from_circle_roi, roi_mask, virtual_images, virtual_images_from_rois


def _signal(scale, offset, seed=0):
    data = np.random.default_rng(seed).integers(0, 3000, (5, 4, 48, 48)).astype(np.uint16)
    s = pxm.signals.Diffraction2D(data)
    for ax in s.axes_manager.signal_axes:
        ax.scale, ax.offset = scale, offset
    return s


def _random_rois(rng, scale, offset, n):
    rois = []
    for _ in range(n):
        cx, cy = offset + rng.uniform(6, 42, 2) * scale
        r = rng.uniform(1.2, 6.9) * scale
        inner = rng.uniform(0, 0.8) * r if rng.random() < 0.3 else 0.0
        rois.append(hs.roi.CircleROI(cx, cy, r, inner))
    return rois


@pytest.mark.parametrize("scale, offset", [(1.0, 0.0), (0.1, -2.4), (0.0137, 0.021)])
def test_circle_roi_equals_pyxem(scale, offset):
    rng = np.random.default_rng(int(scale * 1000))
    s = _signal(scale, offset)
    rois = _random_rois(rng, scale, offset, 12) + [hs.roi.CircleROI(offset + 24 * scale, offset + 24 * scale,
                                                                     10 * scale)]
    expected = np.stack([s.get_integrated_intensity(r).data for r in rois])
    np.testing.assert_array_equal(s.get_virtual_image(rois).data, expected)
    # exact masks, one pass
    np.testing.assert_allclose(virtual_images_from_rois(s, rois), expected, rtol=1e-6)
    # the discs of from_circle_roi, through the plain disc API
    discs = [from_circle_roi(r, s) for r in rois]
    np.testing.assert_allclose(virtual_images(s.data, discs), expected, rtol=1e-6)
    np.testing.assert_allclose(virtual_images_from_rois(s, rois, exact=False), expected, rtol=1e-6)
    # CircleROIs straight into virtual_images, with the signal as the data
    np.testing.assert_allclose(virtual_images(s, rois, executor="threads"), expected, rtol=1e-6)


def test_lazy_signal_and_the_half_pixel_shift():
    s = _signal(1.0, 0.0).as_lazy()
    roi = hs.roi.CircleROI(20.0, 17.0, 5.0)
    expected = s.get_integrated_intensity(roi).data.compute()
    np.testing.assert_allclose(virtual_images_from_rois(s, roi)[0], expected, rtol=1e-6)
    d = from_circle_roi(roi, s)
    assert (d.cy, d.cx, d.radius) == pytest.approx((17.5001, 20.5001, 5.0))
    # the naive disc (no shift) is a different set of pixels
    assert not np.array_equal(disc_mask((48, 48), 17, 20, 5), roi_mask(roi, s))
