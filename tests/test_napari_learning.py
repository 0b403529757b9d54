"""Correction and learning in napari: link and shift lines, add to the set, fine-tune, choose the version."""

import numpy as np
import pytest
import torch

from napari_stereo_tem.nets.unet import DislocationUNet
from napari_stereo_tem.stereo.projection import project_points
from napari_stereo_tem.synth import make_stereo_pair
from napari_stereo_tem.training.finetune import checkpoint_path
from napari_stereo_tem.models.training_set import add_entry, list_entries, list_trash, load_entry
from napari_stereo_tem.models.store import list_versions, save_model, selected_version

ANGLE = 8.0


@pytest.fixture
def models(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    monkeypatch.setenv("NAPARI_STEREO_TEM_MODELS", str(folder))
    torch.manual_seed(0)
    save_model(DislocationUNet(base_channels=4, depth=3, n_classes=1), folder / "detector_tiny")
    return folder


@pytest.fixture
def scene(make_napari_viewer, models):
    sample = make_stereo_pair(77, shape=(96, 128), stereo_angle_deg=ANGLE)
    viewer = make_napari_viewer()
    meta = {"stereo_angle_deg": ANGLE, "source": "synthetic seed 77",
            "provenance": {"detector": {"version": "detector_tiny"}, "matcher": {"version": None}}}
    viewer.add_image(sample.left, name="rectified left", metadata=meta)
    viewer.add_image(sample.right, name="rectified right", metadata=meta)
    wrong = np.zeros(sample.left.shape, np.uint8)
    wrong[20:40, 30:50] = 1  # a deliberately wrong segmentation
    viewer.add_labels(wrong, name="dislocations left")
    viewer.add_labels((sample.mask_right == 1).astype(np.uint8), name="dislocations right")
    return viewer, sample


def test_correct_link_shift_and_add_to_training_set(scene, tmp_path, wait_finished):
    viewer, sample = scene
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Correct and add to training set")
    assert widget.left_image.value.name == "rectified left" and widget.right_labels.value.name == "dislocations right"
    assert widget.angle.value == pytest.approx(ANGLE)
    # the user repaints the labels (napari's own tools) ...
    viewer.layers["dislocations left"].data = (sample.mask_left == 1).astype(np.uint8)
    wait_finished(widget.polylines_from_labels())  # skeletons made in a worker thread
    made = [viewer.layers["polylines left"], viewer.layers["polylines right"]]
    assert widget.left_lines.value is made[0] and widget.right_lines.value is made[1]
    assert "polylines left:" in widget.report.value
    assert [layer.name for layer in made] == ["polylines left", "polylines right"] and len(made[0].data) >= 1
    # ... then links a left path to its right partner: here a line of known depth drawn in both views
    truth = np.column_stack([np.linspace(40, 60, 30), np.linspace(10, 80, 30), np.linspace(-20, 25, 30)])
    axis = (sample.left.shape[1] - 1) / 2
    left_xy = project_points(truth, -ANGLE / 2, axis_col=axis)
    right_xy = project_points(truth, ANGLE / 2, axis_col=axis)
    # the matcher had put this line at a wrong depth: same place in the left view, 15 px too deep
    from napari_stereo_tem._napari.layers import lines_layer
    from napari_stereo_tem.stereo.corrections import shift_line_depth

    wrong = shift_line_depth(truth, 15.0, stereo_angle_deg=ANGLE, keep="left")
    data, attrs, _ = lines_layer([wrong], name="3D lines")
    viewer.add_shapes(data, **attrs)
    left_layer, right_layer = viewer.layers["polylines left"], viewer.layers["polylines right"]
    left_layer.add_paths([left_xy[:, ::-1]])
    right_layer.add_paths([right_xy[:, ::-1]])
    left_layer.selected_data = {len(left_layer.data) - 1}
    widget.right_id.value = len(right_layer.data) - 1
    line = widget.link()
    assert line is not None and len(line) >= 60
    np.testing.assert_allclose(line[:, 2], np.interp(line[:, 1], truth[:, 1], truth[:, 2]), atol=0.1)
    lines3d = viewer.layers["3D lines"]
    assert lines3d.ndim == 3 and len(lines3d.data) == 1  # the wrong line was replaced, not duplicated
    np.testing.assert_allclose(lines3d.data[0][:, 0], line[:, 2], atol=1e-4)
    assert "replaced" in widget.report.value
    # shift it in depth: z moves, the left view still sees it in the same place
    lines3d.selected_data = {0}
    widget.dz.value = 5.0
    moved = widget.shift_depth()
    np.testing.assert_allclose(moved[0][:, 2], line[:, 2] + 5.0, atol=1e-4)
    np.testing.assert_allclose(lines3d.data[0][:, 0], line[:, 2] + 5.0, atol=1e-4)
    # add to the training set: views, corrected mask, known disparities, provenance
    widget.set_dir.value = tmp_path / "set"
    path = widget.add_to_training_set()
    assert path is not None and path.name == "entry-000001"
    data = load_entry(path)
    np.testing.assert_array_equal(data["mask_left"], (sample.mask_left == 1))
    assert "right" in data and "mask_right" in data
    prov = data["record"]["provenance"]
    assert prov["stereo_angle_deg"] == pytest.approx(ANGLE) and prov["model_version"] == "detector_tiny"
    assert prov["source"] == "synthetic seed 77"
    # disparities are known only where the corrected lines cross the corrected mask
    known = np.isfinite(data["disparity_left"])
    assert known.any() and np.all(data["mask_left"][known] == 1)


def _fill_set(folder, n=2):
    for k in range(n):
        sample = make_stereo_pair(500 + k, shape=(96, 128))
        add_entry(folder, sample.left, (sample.mask_left == 1).astype(np.uint8), source=f"seed {500 + k}")


def test_browser_fine_tune_and_version_selector(make_napari_viewer, models, tmp_path, wait_finished):
    folder = tmp_path / "set"
    _fill_set(folder)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Fine-tune and model versions")
    widget.set_dir.value = folder
    assert tuple(widget.entries.choices) == ("entry-000001", "entry-000002")
    # removal is explicit and recoverable
    widget.entries.value = ["entry-000002"]
    widget.remove_selected()
    assert [e.name for e in list_entries(folder)] == ["entry-000001"] and widget.trash.choices == (None, "entry-000002")
    widget.trash.value = "entry-000002"
    widget.restore()
    assert len(list_entries(folder)) == 2 and list_trash(folder) == []
    # a 3-step fine-tune in the background, with the loss plotted live
    assert "detector_tiny" in widget.init.choices
    widget.init.value = "detector_tiny"
    widget.name.value = "from_widget"
    widget.steps.value = 3
    widget.synth_fraction.value = 0.0
    task = widget.start()
    wait_finished(task)
    assert task.error is None and widget.result["version"] == "detector_from_widget"
    assert widget.loss_plot.steps == [1, 2, 3] and np.isfinite(widget.loss_plot.losses).all()
    assert "detector_from_widget" in list_versions("detector")
    assert "detector_from_widget" in widget.use_detector.choices
    # the selector makes it the version the pipeline loads
    widget.use_detector.value = "detector_from_widget"
    widget.use_versions()
    assert selected_version("detector") == "detector_from_widget"
    from napari_stereo_tem.models.store import load_detector

    assert load_detector().version == "detector_from_widget"


def test_cancel_from_the_widget_stops_and_leaves_a_checkpoint(make_napari_viewer, models, tmp_path, wait_finished,
                                                                qtbot):
    folder = tmp_path / "set"
    _fill_set(folder, 1)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Fine-tune and model versions")
    widget.set_dir.value = folder
    widget.init.value = "detector_tiny"
    widget.name.value = "cut"
    widget.steps.value = 5000
    widget.synth_fraction.value = 0.0
    plot_add = widget.loss_plot.add

    def add_then_cancel(step, loss):
        plot_add(step, loss)
        if step == 2:
            widget.cancel()

    widget.loss_plot.add = add_then_cancel
    task = widget.start()
    wait_finished(task)
    assert task.cancelled and widget.result is None
    assert len(widget.loss_plot.steps) <= 4  # the worker stops at its next step boundary
    assert checkpoint_path("detector_cut").is_file()
    assert "detector_cut" not in list_versions("detector")
    assert widget.start_button.enabled
    # the cancelled run is offered for resuming, and the message says so and stays
    assert widget.cancelled_runs.value == "detector_cut" and widget.resume.value
    qtbot.wait(300)  # reports queued before the cancel arrive now
    assert widget.status.value.startswith("cancelled at step") and "detector_cut" in widget.status.value
    assert widget.progress.text.startswith("cancelled after")
    # resuming keeps the plot of the steps already done, on an integer step axis
    done = list(widget.loss_plot.losses)
    widget.steps.value = len(done) + 2
    widget.loss_plot.add = plot_add
    task = widget.start()
    assert widget.loss_plot.steps[: len(done)] == list(range(1, len(done) + 1))
    wait_finished(task)
    assert task.error is None, task.error
    assert widget.loss_plot.steps == list(range(1, len(done) + 3))
    assert widget.loss_plot.losses[: len(done)] == pytest.approx(done)
    ticks = widget.loss_plot.axes.get_xticks()
    assert np.allclose(ticks, np.round(ticks))
    assert "detector_cut" in list_versions("detector") and "detector_cut" in widget.use_detector.choices


def test_loss_plot_redraws_once_for_many_quick_steps(make_napari_viewer, qtbot):
    """Losses reported faster than the plot can be drawn cost one redraw, not one each (the UI stays free)."""
    from napari_stereo_tem._napari.finetune_widget import LossPlot

    make_napari_viewer()
    plot = LossPlot()
    drawn = []
    plot.canvas.draw_idle = lambda: drawn.append(len(plot.steps))
    for step in range(1, 51):
        plot.add(step, 1.0 / step)
    assert drawn == []  # none yet: the redraw waits for the throttle
    qtbot.waitUntil(lambda: bool(drawn), timeout=10_000)
    assert drawn == [50]  # one redraw, with every step
    assert plot.axes.get_xlim()[1] >= 50 and plot.axes.get_ylim()[0] <= 1.0 / 50
    plot.add(51, 0.01)
    plot.draw()  # the end of a run draws at once
    assert drawn == [50, 51]
