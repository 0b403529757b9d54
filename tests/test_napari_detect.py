"""The Detect widget: one image in, editable labels and centreline paths out."""

import numpy as np
import pytest


def test_detect_widget_adds_labels_and_paths(make_napari_viewer, wait_finished):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-stereo-tem", "stereo_pair")
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Detect dislocations")
    assert widget.image.value is viewer.layers["left (synthetic)"]  # the first view, not a truth layer
    task = widget.start()
    assert task is not None
    wait_finished(task)
    assert task.error is None, task.error
    labels = viewer.layers["left (synthetic) labels"]
    lines = viewer.layers["left (synthetic) lines"]
    assert type(labels).__name__ == "Labels" and labels.data.shape == viewer.layers["left (synthetic)"].data.shape
    assert set(np.unique(labels.data)) <= {0, 1, 2} and (labels.data == 1).sum() > 100
    assert type(lines).__name__ == "Shapes" and len(lines.data) >= 1 and set(lines.shape_type) == {"path"}
    assert "line branches" in widget.report.value and widget.progress.text.startswith("done after")
    assert labels.metadata["settings"]["contrast"] in ("bright_field", "dark_field")


def test_detect_widget_without_an_image_tells_the_user(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Detect dislocations")
    assert widget.start() is None
    assert len(viewer.layers) == 0


def test_detect_widget_points_a_4d_layer_to_the_virtual_detectors(make_napari_viewer, monkeypatch):
    toasts = []
    monkeypatch.setattr("napari_stereo_tem._napari.notify.show_error", toasts.append)
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((4, 4, 8, 8), np.float32), name="scan")
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Detect dislocations")
    widget.image.value = viewer.layers["scan"]
    assert widget.start() is None
    assert "Virtual detectors" in widget.report.value  # the whole message in the dock
    assert toasts and len(toasts[0]) <= 90 and "4D-STEM" in toasts[0]


def test_detect_progress_names_what_runs_now():
    from napari_stereo_tem._napari.detect_widget import detect_stage
    from napari_stereo_tem.progress import Progress

    assert detect_stage(Progress(0, 1, "decide contrast and scale")) == ("detector, tile 1", 2, 3)
    assert detect_stage(Progress(2, 5, "detect")) == ("detector, tile 3 of 5", 2, 3)
    assert detect_stage(Progress(5, 5, "detect")) == ("skeleton", 3, 3)
    assert detect_stage(Progress(1, 1, "skeleton"))[0] == "showing the result"


@pytest.mark.parametrize("kind", ["rgb", "one frame"])
def test_detect_widget_reads_a_colour_or_one_frame_layer_as_its_grey_image(make_napari_viewer, wait_finished, kind):
    """A micrograph exported in colour opens as an RGB layer, a single frame saved as a one-frame stack as a 3D
    layer of depth 1: each is detected as its grey image."""
    viewer = make_napari_viewer()
    viewer.open_sample("napari-stereo-tem", "stereo_pair")
    grey = np.asarray(viewer.layers["left (synthetic)"].data, dtype=np.float32)
    if kind == "rgb":
        eight_bit = np.round(255 * (grey - grey.min()) / (grey.max() - grey.min())).astype(np.uint8)
        viewer.add_image(np.stack([eight_bit] * 3, axis=-1), name="exported", rgb=True)
    else:
        viewer.add_image(grey[None], name="exported")
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Detect dislocations")
    widget.image.value = viewer.layers["exported"]
    task = widget.start()
    assert task is not None
    wait_finished(task)
    assert task.error is None, task.error
    labels = viewer.layers["exported labels"]
    assert labels.data.shape == grey.shape and (labels.data == 1).sum() > 100


def test_detect_widget_refuses_a_stack_of_frames(make_napari_viewer):
    viewer = make_napari_viewer()
    grey = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    viewer.add_image(np.stack([grey, grey[::-1]]), name="two frames")
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Detect dislocations")
    widget.image.value = viewer.layers["two frames"]
    assert widget.start() is None and "stack of 2 images" in widget.report.value


def test_the_report_says_what_was_left_out_as_frame_or_vacuum(make_napari_viewer, wait_finished):
    """A view with a bright hole in the foil: the dock says which share of the image was not searched."""
    from napari_stereo_tem.synth import make_stereo_pair

    image = make_stereo_pair(4321, shape=(256, 256)).left.astype(np.float32)
    yy, xx = np.mgrid[:256, :256]
    hole = (xx - 256) ** 2 + yy ** 2 < 110 ** 2
    image[hole] = np.random.default_rng(0).poisson(float(np.percentile(image, 99.9)) * 1.15 * 400,
                                                   hole.sum()) / 400.0
    viewer = make_napari_viewer()
    viewer.add_image(image, name="with a hole")
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Detect dislocations")
    widget.image.value = viewer.layers["with a hole"]
    task = widget.start()
    wait_finished(task)
    assert task.error is None, task.error
    assert "vacuum of" in widget.report.value and "% of the image ignored" in widget.report.value
