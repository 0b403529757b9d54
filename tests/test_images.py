"""Reading images and stereo pairs, and the checks on bad input."""

import numpy as np
import pytest
import tifffile

from napari_stereo_tem.checks import InputError, check_image, check_pair, check_stereo_angle
from napari_stereo_tem.images import read_image, read_stereo_pair


def _texture(seed, shape=(64, 80)):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def test_read_pair_from_tiffs(tmp_path):
    left, right = _texture(0), _texture(1)
    tifffile.imwrite(tmp_path / "l.tif", left)
    tifffile.imwrite(tmp_path / "r.tif", right)
    pair = read_stereo_pair(tmp_path / "l.tif", tmp_path / "r.tif", stereo_angle_deg=8)
    np.testing.assert_array_equal(pair.left, left)
    np.testing.assert_array_equal(pair.right, right)
    assert pair.stereo_angle_deg == 8
    swapped = read_stereo_pair(tmp_path / "l.tif", tmp_path / "r.tif", stereo_angle_deg=8, swap=True)
    np.testing.assert_array_equal(swapped.left, right)
    assert swapped.names == ("r", "l")


def test_read_png_and_npy(tmp_path):
    import imageio.v3 as iio

    image = (np.arange(64 * 64).reshape(64, 64) % 251).astype(np.uint8)
    iio.imwrite(tmp_path / "a.png", image)
    np.save(tmp_path / "a.npy", image)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png").data, image)
    np.testing.assert_array_equal(read_image(tmp_path / "a.npy").data, image)


def test_hyperspy_file_gives_pixel_size_and_tilt(tmp_path):
    import hyperspy.api as hs

    signal = hs.signals.Signal2D(_texture(2))
    for axis in signal.axes_manager.signal_axes:
        axis.scale, axis.units = 0.5, "nm"
    signal.metadata.set_item("Acquisition_instrument.TEM.Stage.tilt_alpha", -4.0)
    signal.save(tmp_path / "l.hspy")
    signal.metadata.set_item("Acquisition_instrument.TEM.Stage.tilt_alpha", 4.0)
    signal.data = _texture(3)  # the other view (identical views are refused)
    signal.save(tmp_path / "r.hspy")
    pair = read_stereo_pair(tmp_path / "l.hspy", tmp_path / "r.hspy")
    assert pair.stereo_angle_deg == pytest.approx(8.0)
    assert pair.pixel_size_nm == pytest.approx(0.5)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((32, 32)), "constant"),
        (np.ones((4, 32, 32)), "2-D"),
        (np.full((32, 32), np.nan), "NaN"),
        (np.ones((3, 3)), "too small"),
        (np.zeros((32, 32, 3)), "RGB"),
    ],
)
def test_check_image_names_the_problem(bad, message):
    with pytest.raises(InputError, match=message):
        check_image(bad)


@pytest.mark.parametrize("suffix", [".tif", ".png"])
def test_rgb_files_are_read_as_grey_levels(tmp_path, suffix):
    """Micrographs exported in colour (equal channels, or not) come back as the mean of their colours."""
    import imageio.v3 as iio

    from napari_stereo_tem.images import grey_levels, read_image

    grey = np.random.default_rng(0).integers(0, 200, (40, 48)).astype(np.uint8)
    rgb = np.stack([grey, grey + 10, grey + 20], axis=-1).astype(np.uint8)
    path = tmp_path / f"rgb{suffix}"
    iio.imwrite(path, rgb)
    image = read_image(path)
    assert image.data.shape == (40, 48)
    np.testing.assert_allclose(image.data, grey + 10.0)
    rgba = np.concatenate([rgb, np.full((40, 48, 1), 255, np.uint8)], axis=-1)
    np.testing.assert_allclose(grey_levels(rgba), grey + 10.0)
    assert grey_levels(grey) is grey or np.array_equal(grey_levels(grey), grey)


def test_one_frame_stacks_and_grey_alpha_are_one_image(tmp_path):
    """A single frame saved as a one-frame stack, or grey with alpha, is read as that image; a real stack is refused."""
    import imageio.v3 as iio
    import tifffile

    from napari_stereo_tem.images import read_image

    grey = np.random.default_rng(1).integers(0, 200, (40, 48)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "one.tif", grey[None])
    np.testing.assert_array_equal(read_image(tmp_path / "one.tif").data, grey)
    tifffile.imwrite(tmp_path / "channel.tif", grey[..., None], photometric="minisblack")
    np.testing.assert_array_equal(read_image(tmp_path / "channel.tif").data, grey)
    alpha = np.stack([grey.astype(np.uint8), np.full((40, 48), 255, np.uint8)], axis=-1)
    iio.imwrite(tmp_path / "grey_alpha.png", alpha)
    np.testing.assert_array_equal(read_image(tmp_path / "grey_alpha.png").data, grey.astype(np.uint8))
    tifffile.imwrite(tmp_path / "stack.tif", np.stack([grey, grey + 1, grey + 2]))
    with pytest.raises(InputError, match=r"stack of 3 frames.*--series.*track"):
        read_image(tmp_path / "stack.tif")


def test_nan_corners_are_a_frame_nan_inside_is_refused(tmp_path):
    """Aligned stacks saved as float mark the corners outside the field NaN: read, set flat; a NaN hole is not."""
    image = np.random.default_rng(0).normal(100.0, 5.0, (64, 64)).astype(np.float32)
    cornered = image.copy()
    cornered[:10, :10] = np.nan
    cornered[-6:, 30:] = np.inf
    tifffile.imwrite(tmp_path / "corners.tif", cornered)
    read = read_image(tmp_path / "corners.tif").data
    assert np.isfinite(read).all() and np.array_equal(read[20:40, 20:40], image[20:40, 20:40])
    assert np.unique(read[:10, :10]).size == 1  # one flat value: a frame for detection
    holed = image.copy()
    holed[30:33, 30:33] = np.nan
    tifffile.imwrite(tmp_path / "hole.tif", holed)
    with pytest.raises(InputError, match="NaN"):
        read_image(tmp_path / "hole.tif")


def test_pair_and_angle_checks(tmp_path):
    with pytest.raises(InputError, match="differ in shape"):
        check_pair(_texture(0, (32, 32)), _texture(1, (32, 40)))
    for angle in (0, float("nan"), 120):
        with pytest.raises(InputError):
            check_stereo_angle(angle)
    with pytest.raises(InputError, match="no such file"):
        read_image(tmp_path / "missing.tif")
    tifffile.imwrite(tmp_path / "l.tif", _texture(0))
    tifffile.imwrite(tmp_path / "r.tif", _texture(1))
    with pytest.raises(InputError, match="stereo angle is not recorded"):
        read_stereo_pair(tmp_path / "l.tif", tmp_path / "r.tif")
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(InputError, match="could not read"):
        read_image(tmp_path / "broken.tif")
