"""The Reconstruct widget end to end: layers out, cancel, and the 3D lines on screen."""

import time

import numpy as np
import pytest


@pytest.fixture
def viewer_with_pair(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-stereo-tem", "stereo_pair")
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Reconstruct 3D dislocations")
    widget.left.value = viewer.layers["left (synthetic)"]
    widget.right.value = viewer.layers["right (synthetic)"]
    widget.rectify.value = False  # the synthetic pair is already rectified
    return viewer, widget


def _run(widget, qtbot, timeout=600_000):
    task = widget.start()
    assert task is not None
    qtbot.waitUntil(lambda: task.finished, timeout=timeout)  # see conftest.wait_finished
    return task


def test_reconstruct_widget_produces_layers(viewer_with_pair, qtbot):
    viewer, widget = viewer_with_pair
    assert widget.angle.value == pytest.approx(8.0)  # read from the layer's metadata
    task = _run(widget, qtbot)
    assert task.error is None, task.error

    lines = viewer.layers["3D lines"]
    assert type(lines).__name__ == "Shapes" and lines.ndim == 3
    assert len(lines.data) >= 1 and set(lines.shape_type) == {"path"}
    labels = viewer.layers["dislocations left"]
    assert type(labels).__name__ == "Labels" and labels.data.shape == (256, 256)
    assert labels.data.max() >= 1
    assert viewer.layers["rectified left"].data.shape == (256, 256)
    assert "lines" in widget.report.value

    # The lines are drawn: the 3D canvas changes where the paths are, in the depth colours.
    viewer.dims.ndisplay = 3
    for layer in viewer.layers:
        layer.visible = layer is lines
    viewer.reset_view()
    with_lines = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    lines.visible = False
    without = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    drawn = np.abs(with_lines - without).max(axis=-1) > 30
    assert drawn.sum() > 50, f"only {drawn.sum()} pixels show the lines"


def test_rectification_report_and_matches(viewer_with_pair, qtbot):
    viewer, widget = viewer_with_pair
    widget.rectify.value = True
    widget.axis_known.value, widget.tilt_axis.value = True, 0.0  # the sample pair is already rectified
    task = _run(widget, qtbot)
    assert task.error is None, task.error
    assert "tilt axis 0.000 deg from vertical (given)" in widget.report.value and "inliers" in widget.report.value
    matches = viewer.layers["rectification matches"]
    segments = np.array(matches.data)  # (n, 2, 2) as (row, col)
    assert len(segments) >= 20
    # After rectification a match joins two points on (nearly) the same row.
    assert np.median(np.abs(segments[:, 0, 0] - segments[:, 1, 0])) < 0.5


def test_cancel_stops_within_a_second(viewer_with_pair, qtbot):
    viewer, widget = viewer_with_pair
    n_layers = len(viewer.layers)
    task = widget.start()
    qtbot.wait(50)
    t0 = time.perf_counter()
    widget.cancel()
    qtbot.waitUntil(lambda: task.finished, timeout=600_000)
    assert time.perf_counter() - t0 < 1.0
    assert "3D lines" not in viewer.layers and len(viewer.layers) == n_layers
    assert widget.run_button.enabled and not widget.cancel_button.enabled
    # The viewer is still usable: a new run goes through.
    again = _run(widget, qtbot)
    assert again.error is None and "3D lines" in viewer.layers


def test_one_layer_as_both_views_is_refused(viewer_with_pair, monkeypatch):
    viewer, widget = viewer_with_pair
    messages = []
    monkeypatch.setattr("napari.utils.notifications.show_error", messages.append)
    widget.right.value = widget.left.value
    assert widget.start() is None
    assert messages and "chosen as both views" in messages[0]


def test_identical_views_in_two_layers_fail_with_a_notification(viewer_with_pair, qtbot, monkeypatch):
    viewer, widget = viewer_with_pair
    messages = []
    monkeypatch.setattr("napari_stereo_tem._napari.background.show_error", messages.append)
    copy = viewer.add_image(np.array(widget.left.value.data), name="copy of left")
    widget.reset_choices()
    widget.right.value = copy
    task = _run(widget, qtbot)
    assert task.error is not None and "views are identical" in messages[0]
    assert "3D lines" not in viewer.layers


def test_clicked_points_tilts_and_frame(viewer_with_pair, qtbot):
    viewer, widget = viewer_with_pair
    disparity = np.asarray(viewer.layers["true disparity left"].data)
    rows, cols = np.nonzero(np.isfinite(disparity))
    d = disparity[rows, cols]
    pick = [int(np.argmin(d)), int(np.argmax(d)), int(np.argmin(np.abs(d))), int(np.argmin(np.abs(d - d.max() / 2)))]
    left_pts = np.column_stack([rows[pick], cols[pick]]).astype(float)
    right_pts = left_pts + np.column_stack([np.zeros(4), d[pick]])
    widget.clicked_left.value = viewer.add_points(left_pts, name="clicked left")
    widget.clicked_right.value = viewer.add_points(right_pts, name="clicked right")
    widget.rectify.value = True
    widget.tilts.value = "-2, 6"
    widget.frame.value = "specimen"
    task = _run(widget, qtbot)
    assert task.error is None, task.error
    assert "rectification (manual: 4 manual" in widget.report.value
    meta = viewer.layers["3D lines"].metadata
    assert meta["provenance"]["tilts_deg"] == [-2.0, 6.0] and meta["provenance"]["frame"] == "specimen"
    assert abs(meta["rectification"]["theta_deg"]) < 1.0
    widget.clicked_right.value = None
    assert widget.start() is None and "both views" in widget.report.value
