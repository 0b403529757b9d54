"""The stereo-pair dock widget, run as a user would through the plugin menu."""

import numpy as np
import tifffile


def test_open_stereo_pair_widget(make_napari_viewer, tmp_path):
    left = np.random.default_rng(0).random((48, 64)).astype(np.float32)
    right = np.roll(left, 3, axis=1)
    tifffile.imwrite(tmp_path / "left.tif", left)
    tifffile.imwrite(tmp_path / "right.tif", right)

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Open stereo pair")
    widget.left.value = tmp_path / "left.tif"
    widget.right.value = tmp_path / "right.tif"
    widget.stereo_angle_deg.value = 6.0
    widget.pixel_size_nm.value = 0.8
    widget()

    assert [layer.name for layer in viewer.layers] == ["left: left", "right: right"]
    np.testing.assert_array_equal(viewer.layers[0].data, left)
    np.testing.assert_array_equal(viewer.layers[1].data, right)
    assert viewer.layers[0].metadata["stereo_angle_deg"] == 6.0
    assert tuple(viewer.layers[1].scale) == (0.8, 0.8)


def test_open_stereo_pair_bad_input_notifies(make_napari_viewer, tmp_path, monkeypatch):
    tifffile.imwrite(tmp_path / "a.tif", np.random.default_rng(0).random((48, 64)).astype(np.float32))
    tifffile.imwrite(tmp_path / "b.tif", np.random.default_rng(1).random((40, 64)).astype(np.float32))
    messages = []
    monkeypatch.setattr("napari_stereo_tem._napari.notify.show_error", messages.append)

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Open stereo pair")
    widget.left.value = tmp_path / "a.tif"
    widget.right.value = tmp_path / "b.tif"
    widget()

    assert len(viewer.layers) == 0
    assert messages and len(messages[0]) <= 90  # a toast shows one line
    assert "differ in shape" in widget.message.value  # the whole message stays in the dock


def test_open_stereo_pair_without_files_says_which(make_napari_viewer, monkeypatch):
    messages = []
    monkeypatch.setattr("napari_stereo_tem._napari.notify.show_error", messages.append)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Open stereo pair")
    widget()
    assert len(viewer.layers) == 0
    assert messages == ["choose the left view's image file (the '...' button beside 'left view')"]
    assert widget.message.value == messages[0]
