"""The Reconstruct widget end to end: layers out, cancel, and the 3D lines on screen."""

import time

import numpy as np
import pytest


@pytest.fixture
def viewer_with_pair(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-stereo-tem", "stereo_pair")
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Reconstruct 3D dislocations")
    # the views are chosen from the layers' stereo_role metadata
    assert widget.left.value is viewer.layers["left (synthetic)"]
    assert widget.right.value is viewer.layers["right (synthetic)"]
    assert widget.rectify.value is False  # the sample says it is rectified: a first run must not be refused
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
    assert "lines" in widget.report.value and "depth z from" in widget.report.value
    # the results do not become the inputs of the next run
    assert widget.left.value is viewer.layers["left (synthetic)"]
    assert widget.right.value is viewer.layers["right (synthetic)"]
    assert widget.progress.text.startswith("done after")

    # The depth view: each line cut into segments whose colour follows the depth along the line.
    depth = viewer.layers["3D lines (depth)"]
    assert type(depth).__name__ == "Vectors" and depth.visible and not lines.visible
    ids, z = np.asarray(depth.features["line_id"]), np.asarray(depth.features["depth"])
    longest = np.bincount(ids).argmax()
    on_line = ids == longest
    assert np.ptp(z[on_line]) > 0.5  # the sample's lines are inclined through the foil
    colours = np.asarray(depth.edge_color)[on_line]
    assert np.abs(colours[np.argmin(z[on_line])] - colours[np.argmax(z[on_line])]).max() > 0.1
    # each segment carries the depth uncertainty of its points, each path its median
    std = np.asarray(depth.features["depth_std"])
    assert len(std) == len(z) and np.all(std > 0)
    assert np.all(np.asarray(lines.properties["depth_std_median"]) > 0)
    bar = depth.metadata["depth_colour_bar"]
    assert bar["unit"] == "px" and bar["low"] < bar["high"]
    assert widget.colour_bar.isVisible() and "depth z (px)" in widget.colour_bar.label()

    # The lines are drawn: the 3D canvas changes where the segments are; the first 3D view is oblique.
    viewer.dims.ndisplay = 3
    assert viewer.camera.angles != (0.0, 0.0, 90.0)
    for layer in viewer.layers:
        layer.visible = layer is depth
    with_lines = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    depth.visible = False
    without = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    drawn = np.abs(with_lines - without).max(axis=-1) > 30
    assert drawn.sum() > 50, f"only {drawn.sum()} pixels show the lines"
    # and an edit of the lines layer reaches the depth view
    lines.data = lines.data[:1]
    assert len(viewer.layers["3D lines (depth)"].data) == len(lines.data[0]) - 1


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
    from napari_stereo_tem._napari import warmup

    viewer, widget = viewer_with_pair
    # Importing torch cannot be interrupted: the dock's warm-up does it in the background
    # when the dock opens, and a Cancel in the seconds before it ends waits for it.
    qtbot.waitUntil(warmup.done.is_set, timeout=600_000)
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


def test_identical_views_in_two_layers_are_refused(viewer_with_pair, monkeypatch):
    viewer, widget = viewer_with_pair
    messages = []
    monkeypatch.setattr("napari.utils.notifications.show_error", messages.append)
    copy = viewer.add_image(np.array(widget.left.value.data), name="copy of left")
    widget.right.value = copy
    assert widget.start() is None
    assert "same image" in messages[0] and "views are identical" in widget.report.value
    assert "3D lines" not in viewer.layers


def test_defaults_skip_truth_and_follow_stereo_role(make_napari_viewer):
    from napari_stereo_tem._napari.reconstruct_widget import pick_stereo_pair

    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    viewer.add_image(rng.random((32, 32)), name="true disparity left", metadata={"truth": True})
    first = viewer.add_image(rng.random((32, 32)), name="a")
    second = viewer.add_image(rng.random((32, 32)), name="b")
    viewer.add_image(rng.random((4, 4, 8, 8)), name="4D-STEM")
    viewer.add_image(rng.random((32, 32)), name="rectified left", metadata={"provenance": {}})
    assert pick_stereo_pair(viewer.layers) == (first, second)  # distinct, no truth, no 4D, no result
    right = viewer.add_image(rng.random((32, 32)), name="view 2", metadata={"stereo_role": "right"})
    left = viewer.add_image(rng.random((32, 32)), name="view 1", metadata={"stereo_role": "left"})
    assert pick_stereo_pair(viewer.layers) == (left, right)
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Reconstruct 3D dislocations")
    assert (widget.left.value, widget.right.value) == (left, right)
    # a choice of the user is kept when layers come and go
    widget.right.value = second
    viewer.add_image(rng.random((32, 32)), name="another")
    assert (widget.left.value, widget.right.value) == (left, second)


def test_a_4d_layer_points_to_the_virtual_detectors(viewer_with_pair, monkeypatch):
    viewer, widget = viewer_with_pair
    messages = []
    monkeypatch.setattr("napari.utils.notifications.show_error", messages.append)
    widget.left.value = viewer.add_image(np.zeros((4, 4, 8, 8), np.float32), name="scan")
    assert widget.start() is None
    assert "4D-STEM" in messages[0] and "in the dock" in messages[0] and len(messages[0]) <= 90
    assert "Virtual detectors" in widget.report.value


def test_a_stack_layer_points_to_split_stack_and_the_series_command(viewer_with_pair, monkeypatch):
    """A tilt series opened as one 3D layer: the dock says how to get single views, or where whole series go."""
    viewer, widget = viewer_with_pair
    messages = []
    monkeypatch.setattr("napari.utils.notifications.show_error", messages.append)
    widget.left.value = viewer.add_image(np.zeros((5, 16, 16), np.float32), name="tilts")
    assert widget.start() is None
    assert "Split Stack" in widget.report.value and "Tilt series" in widget.report.value
    assert "--series" in widget.report.value
    assert "stack of 5 images" in widget.report.value


def test_progress_names_the_stage_running_now():
    from napari_stereo_tem._napari.progress_panel import running_stage
    from napari_stereo_tem._napari.reconstruct_widget import STAGES
    from napari_stereo_tem.progress import Progress
    from napari_stereo_tem.stereo.pipeline import STAGES as CORE_STAGES

    assert STAGES == CORE_STAGES
    assert running_stage(Progress(1, 6, "load"), STAGES) == ("rectify", 2, 6)
    assert running_stage(Progress(5, 6, "refine"), STAGES) == ("triangulate", 6, 6)
    assert running_stage(Progress(6, 6, "triangulate"), STAGES)[0] == "showing the result"
    assert running_stage(Progress(3, 10, "tiles")) == ("tiles", 3, 10)
    # a stage whose reports name the step running within it (the particles' refinement)
    assert running_stage(Progress(2, 6, "refine in the views", {"step": "search the residuals"})) == (
        "refine in the views: search the residuals", 2, 6)


def test_progress_shown_in_the_dock_while_it_runs(viewer_with_pair, qtbot):
    viewer, widget = viewer_with_pair
    seen = []
    task = widget.start()
    qtbot.waitUntil(lambda: seen.append(widget.progress.text) or task.finished, timeout=600_000)
    running = [text for text in seen if text.startswith("running:")]
    assert running and any("(2 of 6)" in text or "(3 of 6)" in text for text in running), seen[:5]
    assert widget.progress.text.startswith("done after")


def test_long_results_wrap_inside_the_dock(viewer_with_pair):
    viewer, widget = viewer_with_pair
    dock_width = widget.native.sizeHint().width()
    widget.report.value = "rectification " + "x" * 400 + " " + "word " * 200
    assert widget.native.sizeHint().width() <= dock_width + 5


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


def test_a_rerun_updates_the_depth_view_in_place(make_napari_viewer):
    """A new result reaches the shown depth layer without a new layer (napari's costly part); Shapes are replaced."""
    from napari.layers import Layer

    from napari_stereo_tem._napari.layers import depth_segments_layer, lines_layer
    from napari_stereo_tem._napari.reconstruct_widget import place_layers

    viewer = make_napari_viewer()
    lines_a = [np.array([[0.0, 0, 0], [10, 5, 2], [20, 8, 6]])]
    lines_b = [np.array([[0.0, 0, -3], [5, 5, 0], [9, 9, 4], [12, 20, 9]]), np.array([[30.0, 30, 1], [40, 35, 2]])]
    first = [Layer.create(*depth_segments_layer(lines_a)), Layer.create(*lines_layer(lines_a))]
    list(place_layers(viewer, first))
    first[0].opacity = 0.5  # the user's display settings are kept
    second = [Layer.create(*depth_segments_layer(lines_b)), Layer.create(*lines_layer(lines_b))]
    steps = list(place_layers(viewer, second))
    assert steps == ["3D lines (depth)", "3D lines"] and len(viewer.layers) == 2
    depth = viewer.layers["3D lines (depth)"]
    assert depth is first[0] and depth.opacity == 0.5
    np.testing.assert_allclose(depth.data, second[0].data)
    np.testing.assert_allclose(depth.edge_color, second[0].edge_color)
    assert list(depth.features["line_id"]) == [0, 0, 0, 1]
    assert depth.metadata["depth_colour_bar"] == second[0].metadata["depth_colour_bar"]
    assert viewer.layers["3D lines"] is second[1] and len(viewer.layers["3D lines"].data) == 2
    # a hidden depth view is replaced (napari does not slice a hidden layer), keeping it hidden
    depth.visible = False
    third = Layer.create(*depth_segments_layer(lines_a, visible=False))
    list(place_layers(viewer, [third]))
    assert viewer.layers["3D lines (depth)"] is third and len(third.data) == 2


def test_one_frame_stacks_are_reconstructed_as_their_images(viewer_with_pair, qtbot):
    """Views saved as one-frame stacks open as 3D layers of depth 1: the pair is reconstructed from their images."""
    viewer, widget = viewer_with_pair
    for side in ("left", "right"):
        grey = np.asarray(viewer.layers[f"{side} (synthetic)"].data, dtype=np.float32)
        viewer.add_image(grey[None], name=f"{side} one frame")
    widget.reset_choices()
    widget.left.value, widget.right.value = viewer.layers["left one frame"], viewer.layers["right one frame"]
    task = _run(widget, qtbot)
    assert task.error is None, task.error
    assert len(viewer.layers["3D lines"].data) >= 1


def test_rgb_views_are_reconstructed_as_grey_levels(viewer_with_pair, qtbot):
    """Views exported in colour open in napari as RGB layers: the pair is reconstructed from their grey levels."""
    viewer, widget = viewer_with_pair
    for side in ("left", "right"):
        grey = np.asarray(viewer.layers[f"{side} (synthetic)"].data, dtype=np.float32)
        viewer.add_image(np.stack([grey] * 3, axis=-1), name=f"{side} rgb", rgb=True)
    widget.reset_choices()
    widget.left.value, widget.right.value = viewer.layers["left rgb"], viewer.layers["right rgb"]
    task = _run(widget, qtbot)
    assert task.error is None, task.error
    assert len(viewer.layers["3D lines"].data) >= 1
