"""Drag-and-drop: real detector files and microscope images open through the plugin's reader."""

from pathlib import Path

import numpy as np
import pytest


def test_real_mib_opens_lazily_as_4d(make_napari_viewer, realdata_dir):
    import dask.array as da

    viewer = make_napari_viewer()
    layers = viewer.open(str(realdata_dir / "001_4x2_6bit.mib"), plugin="napari-stereo-tem")
    assert len(layers) == 1
    layer = layers[0]
    assert layer.ndim == 4 and layer.data.shape == (2, 4, 256, 256)
    assert isinstance(layer.data, da.Array)
    assert layer.metadata["kind"] == "4D-STEM"


def test_non_square_mib_and_blockfile(make_napari_viewer, realdata_dir):
    viewer = make_napari_viewer()
    roi = viewer.open(str(realdata_dir / "002_4x2_6bit_roi128.mib"), plugin="napari-stereo-tem")[0]
    assert roi.data.shape == (2, 4, 128, 256)
    blo = viewer.open(str(realdata_dir / "test1.blo"), plugin="napari-stereo-tem")[0]
    assert blo.data.shape == (3, 2, 144, 144)


def test_single_frame_is_a_2d_pattern(make_napari_viewer, realdata_dir):
    viewer = make_napari_viewer()
    layer = viewer.open(str(realdata_dir / "SingleMIB.mib"), plugin="napari-stereo-tem")[0]
    assert layer.ndim == 2 and layer.data.shape == (256, 256)


def test_hspy_image_has_pixel_size(make_napari_viewer, tmp_path):
    import hyperspy.api as hs

    signal = hs.signals.Signal2D(np.random.default_rng(0).random((32, 48)))
    for axis in signal.axes_manager.signal_axes:
        axis.scale, axis.units = 0.25, "nm"
    signal.save(tmp_path / "micrograph.hspy")
    viewer = make_napari_viewer()
    layer = viewer.open(str(tmp_path / "micrograph.hspy"), plugin="napari-stereo-tem")[0]
    assert layer.data.shape == (32, 48)
    assert tuple(layer.scale) == pytest.approx((0.25, 0.25))


def test_a_movie_opens_as_a_lazy_stack_and_a_4d_scan_still_as_4d(make_napari_viewer, tmp_path):
    """An in-situ movie (one axis of frames) becomes a 3D image layer, read only where napari shows it;
    a HyperSpy file holding a 4D-STEM scan still opens as 4D."""
    import dask.array as da
    import hyperspy.api as hs

    movie = hs.signals.Signal2D(np.random.default_rng(0).random((6, 32, 48)).astype(np.float32))
    movie.axes_manager[0].scale, movie.axes_manager[0].units = 0.1, "s"
    for axis in movie.axes_manager.signal_axes:
        axis.scale, axis.units = 0.25, "nm"
    movie.save(tmp_path / "in_situ.hspy")
    hs.signals.Signal2D(np.zeros((3, 4, 16, 16), np.float32)).save(tmp_path / "scan.hspy")
    viewer = make_napari_viewer()
    layer = viewer.open(str(tmp_path / "in_situ.hspy"), plugin="napari-stereo-tem")[0]
    assert isinstance(layer.data, da.Array) and layer.data.shape == (6, 32, 48)
    assert tuple(layer.scale) == pytest.approx((1.0, 0.25, 0.25))
    assert layer.metadata["kind"] == "stack" and layer.metadata["frame_interval_s"] == pytest.approx(0.1)
    scan = viewer.open(str(tmp_path / "scan.hspy"), plugin="napari-stereo-tem")[0]
    assert scan.ndim == 4 and scan.metadata["kind"] == "4D-STEM"


def test_a_file_holding_several_movies_opens_as_one_layer_each(make_napari_viewer, tmp_path, monkeypatch):
    """A Velox-like .emd with a HAADF and a BF movie: two lazy stacks, named by their titles, the first shown."""
    from types import SimpleNamespace

    from test_tracking import _two_movies

    frames = np.random.default_rng(1).random((4, 128, 128)).astype(np.float32)
    path = _two_movies(monkeypatch, tmp_path, SimpleNamespace(frames=frames))
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="napari-stereo-tem")
    by_name = {layer.name: layer for layer in layers}
    assert set(by_name) == {"in_situ HAADF", "in_situ BF"}
    assert by_name["in_situ HAADF"].data.shape == (5, 64, 64) and by_name["in_situ HAADF"].visible
    assert by_name["in_situ BF"].data.shape == (4, 128, 128) and not by_name["in_situ BF"].visible
    assert by_name["in_situ BF"].metadata["signal"] == 1
    assert by_name["in_situ BF"].metadata["frame_interval_s"] == pytest.approx(0.25)


def test_a_file_holding_an_image_and_a_movie_opens_both(make_napari_viewer, tmp_path, monkeypatch):
    """A Velox-like session file: an overview image and a movie; both open, the image shown, the movie hidden."""
    import hyperspy.api as hs

    from napari_stereo_tem import images

    overview = hs.signals.Signal2D(np.random.default_rng(0).random((48, 48)).astype(np.float32))
    overview.metadata.General.title = "overview"
    movie = hs.signals.Signal2D(np.random.default_rng(1).random((4, 32, 32)).astype(np.float32)).as_lazy()
    movie.metadata.General.title = "BF"
    path = tmp_path / "session.emd"
    path.write_bytes(b"not read: the reader is replaced")
    monkeypatch.setattr(images, "_signals", lambda p, lazy=False: [overview, movie])
    viewer = make_napari_viewer()
    layers = {layer.name: layer for layer in viewer.open(str(path), plugin="napari-stereo-tem")}
    assert layers["session"].data.shape == (48, 48) and layers["session"].visible
    assert layers["session BF"].data.shape == (4, 32, 32) and not layers["session BF"].visible


def test_a_microscope_file_is_opened_once_and_lazily(make_napari_viewer, tmp_path, monkeypatch):
    """An image file is opened once for its image and its movies; a 4D-STEM scan in a HyperSpy file is not
    read whole on the way to the 4D layer (every opening is lazy: a scan of tens of GB would fill the memory)."""
    import hyperspy.api as hs

    hs.signals.Signal2D(np.random.default_rng(0).random((40, 56)).astype(np.float32)).save(tmp_path / "image.hspy")
    hs.signals.Signal2D(np.zeros((3, 4, 16, 16), np.float32)).save(tmp_path / "scan.hspy")
    openings = []
    real_load = hs.load

    def counted(path, *args, **kwargs):
        openings.append((Path(path).name, bool(kwargs.get("lazy", False))))
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(hs, "load", counted)
    viewer = make_napari_viewer()
    image = viewer.open(str(tmp_path / "image.hspy"), plugin="napari-stereo-tem")
    assert [layer.data.shape for layer in image] == [(40, 56)]
    assert openings == [("image.hspy", True)]
    openings.clear()
    scan = viewer.open(str(tmp_path / "scan.hspy"), plugin="napari-stereo-tem")[0]
    assert scan.ndim == 4
    assert openings and all(lazy for _, lazy in openings), openings


def test_an_mrc_tilt_series_opens_as_a_lazy_stack(make_napari_viewer, tmp_path):
    import dask.array as da

    from test_reconstruct_series import _write_mrc

    data = np.random.default_rng(1).random((3, 40, 50)).astype(np.float32)
    _write_mrc(tmp_path / "tilts.st", data)
    viewer = make_napari_viewer()
    layer = viewer.open(str(tmp_path / "tilts.st"), plugin="napari-stereo-tem")[0]
    assert isinstance(layer.data, da.Array) and layer.metadata["kind"] == "stack"
    np.testing.assert_array_equal(np.asarray(layer.data), data)
