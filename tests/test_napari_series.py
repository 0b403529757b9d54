"""The Tilt series dock: one tilt axis for every adjacent pair of a stack, each pair's 3D lines as layers."""

import numpy as np
import pytest

from napari_stereo_tem.progress import Progress

TRUE_AXIS = -20.0


@pytest.fixture(scope="module")
def stack():
    """Three dislocation views 12 degrees apart, each misaligned about one axis (-20 degrees) with its own shift."""
    from napari_stereo_tem.synth.misalign import misalign_pair
    from napari_stereo_tem.synth.render import render_views
    from napari_stereo_tem.synth.scene import make_scene

    scene = make_scene(5, shape=(448, 448), max_tilt_deg=12.0)
    views = render_views(scene, [-12.0, 0.0, 12.0], seed=5, dose=300, view_jitter=0.5).images
    shifts = [(0.0, 0.0), (9.0, -6.0), (15.0, 4.0)]
    return np.stack([misalign_pair(views[0], v, theta_deg=TRUE_AXIS, translation=t, out_shape=(320, 320))[1]
                     for v, t in zip(views, shifts)]).astype(np.float32)


def test_the_series_dock_aligns_the_stack_and_adds_every_pairs_lines(make_napari_viewer, wait_finished, stack):
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="tilts")
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Tilt series")
    assert widget.stack.value is viewer.layers["tilts"]   # the stack is chosen by default
    widget.step.value = 12.0
    task = widget.start()
    assert task is not None
    wait_finished(task)
    assert task.error is None, task.error
    for pair in ("views_00-01", "views_01-02"):
        lines = viewer.layers[f"tilts {pair} 3D lines"]
        depth = viewer.layers[f"tilts {pair} 3D lines (depth)"]
        assert type(lines).__name__ == "Shapes" and len(lines.data) > 0 and not lines.visible
        assert type(depth).__name__ == "Vectors" and depth.visible
        record = lines.metadata["tilt_series"]
        assert record["tilts_deg"] == [-12.0, 0.0, 12.0]
        assert abs(record["tilt_axis_deg"] - TRUE_AXIS) < max(3 * record["tilt_axis_std_deg"], 0.5)
        assert lines.metadata["pair"]["folder"] == pair
    report = widget.report.value
    assert "common tilt axis" in report and "views_01-02 (tilts 0, 12 deg):" in report
    assert widget.progress.text.startswith("done after")


def test_the_series_dock_takes_every_tilt_and_a_known_axis(make_napari_viewer, wait_finished, stack):
    viewer = make_napari_viewer()
    viewer.add_image(stack[:2], name="two views")
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Tilt series")
    widget.tilts.value = "-12, 0"
    widget.axis_known.value, widget.tilt_axis.value = True, TRUE_AXIS
    task = widget.start()
    wait_finished(task)
    assert task.error is None, task.error
    lines = viewer.layers["two views views_00-01 3D lines"]
    assert lines.metadata["rectification"]["theta_deg"] == pytest.approx(TRUE_AXIS)
    assert lines.metadata["tilt_series"]["tilt_axis_given"]
    assert "tilt axis given: -20.000 deg" in widget.report.value


def test_the_tilts_come_from_the_file_beside_the_stack_and_the_views_are_put_in_tilt_order(make_napari_viewer,
                                                                                             tmp_path, stack,
                                                                                             monkeypatch):
    """A tilt series opened from a file with IMOD's .rawtlt beside it, saved from high to low tilt."""
    import tifffile

    tifffile.imwrite(tmp_path / "tilts.tif", stack[::-1])
    (tmp_path / "tilts.rawtlt").write_text("12\n0\n-12\n")
    viewer = make_napari_viewer()
    viewer.add_image(stack[::-1], name="tilts", metadata={"source": str(tmp_path / "tilts.tif")})
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Tilt series")
    assert widget.tilts.value == "12, 0, -12" and "tilts from tilts.rawtlt" in widget.report.value
    tilts, order = widget.tilts_of(3)
    assert tilts == [-12.0, 0.0, 12.0] and order == [2, 1, 0]
    from napari_stereo_tem._napari import series_widget

    monkeypatch.setattr(series_widget, "in_worker", lambda work, *args, **kwargs: (args, kwargs))
    args, kwargs = widget.make_work()
    np.testing.assert_array_equal(args[0], stack)   # the views handed over in tilt order
    assert kwargs["tilts_deg"] == [-12.0, 0.0, 12.0]


@pytest.mark.parametrize("data, tilts, step, message", [
    (np.zeros((16, 16), np.float32), "", 12.0, "not a stack of 2D views"),
    (np.zeros((1, 16, 16), np.float32), "", 12.0, "needs at least two"),
    (np.zeros((3, 16, 16), np.float32), "", 0.0, "give the tilt step"),
    (np.zeros((3, 16, 16), np.float32), "-12, 0", 0.0, "one tilt per view of the series (3), got 2"),
    (np.zeros((3, 16, 16), np.float32), "0, 12, 12", 0.0, "two views have the same tilt (12 degrees)"),
])
def test_the_series_dock_says_what_is_missing(make_napari_viewer, data, tilts, step, message):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Tilt series")
    widget.stack.value = viewer.add_image(data, name="input")
    widget.tilts.value, widget.step.value = tilts, step
    assert widget.start() is None
    assert message in widget.report.value
    assert [layer.name for layer in viewer.layers] == ["input"]


def test_series_progress_names_the_pair_running_now():
    from napari_stereo_tem._napari.series_widget import series_stage

    assert series_stage(Progress(0, 3, "align the series"))[0].startswith("aligning all pairs")
    assert series_stage(Progress(1, 3, "reconstruct views_00-01")) == ("reconstruct views_00-01 (2 of 3)", 2, 3)
    assert series_stage(Progress(3, 3, "reconstruct views_01-02"))[0] == "showing the result"
