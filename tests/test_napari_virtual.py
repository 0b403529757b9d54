"""Virtual-detector dock widget on the synthetic 4D-STEM sample: end to end, live preview, stereo pair."""

import numpy as np
import pytest

from napari_stereo_tem.fourdstem import Disc, mirror_disc, stereo_angle_deg, virtual_images


def _wait_exact(qtbot, viewer, n):
    def done():
        return all(viewer.layers[f"virtual {k}"].metadata.get("preview") is False for k in range(n))

    qtbot.waitUntil(done, timeout=300_000)


def test_mean_pattern_discs_and_full_images(fourdstem_dock, qtbot):
    viewer, widget = fourdstem_dock
    from napari_stereo_tem.fourdstem import FourDStem

    fourd = viewer.layers["4D-STEM (synthetic)"]
    dataset = fourd.metadata["fourdstem"]
    assert isinstance(dataset, FourDStem) and fourd.ndim == 4 and fourd.data.shape == (48, 48, 32, 32)
    assert widget.dataset.value is fourd
    pattern = viewer.layers["mean pattern"]
    assert type(pattern).__name__ == "Image" and pattern.data.shape == (32, 32)
    direct = widget._direct
    truth = viewer.layers["4D-STEM (synthetic)"].metadata["synthetic_params"]
    assert np.hypot(direct.cy - truth["centre"][0], direct.cx - truth["centre"][1]) < 0.5
    assert abs(direct.radius - 8.0) < 0.5
    # the pass ran with its progress in the dock, and there is nothing left to cancel
    assert widget.progress.text.startswith("mean pattern: done after")
    assert not widget.cancel_button.enabled
    # long messages (the axes decision, the calibration) wrap instead of widening the dock
    assert all(label.native.wordWrap() for label in (widget.status, widget.calibration, widget.angle))
    assert widget.native.sizeHint().width() < 700, widget.native.sizeHint().width()
    # the direct beam is drawn where it is, at its size
    beam = viewer.layers["direct beam"].data[0]
    assert beam[:, 0].min() == pytest.approx(direct.cy - direct.radius)
    assert beam[:, 0].max() == pytest.approx(direct.cy + direct.radius)
    assert beam[:, 1].mean() == pytest.approx(direct.cx)
    discs = viewer.layers["detector discs"]
    assert type(discs).__name__ == "Points" and discs.data.shape == (2, 2)
    _wait_exact(qtbot, viewer, 2)
    expected = virtual_images(dataset, widget._discs)
    for k in range(2):
        image = viewer.layers[f"virtual {k}"]
        assert image.data.shape == (48, 48)
        np.testing.assert_allclose(image.data, expected[k], rtol=1e-5)
    # stereo angle shown live, from the calibration 20 mrad / r
    angle = stereo_angle_deg(widget._discs[0], widget._discs[1], 20.0 / direct.radius)
    assert f"{angle:.3f} deg" in widget.angle.value


def test_dragging_a_disc_previews_then_computes_exact(fourdstem_dock, qtbot):
    from napari.layers.base._base_constants import ActionType

    viewer, widget = fourdstem_dock
    _wait_exact(qtbot, viewer, 2)
    layer = viewer.layers["detector discs"]
    before = viewer.layers["virtual 0"].data.copy()
    # what napari's select-mode drag does: one CHANGING event, silent moves with redraws, CHANGED on release
    layer.selected_data = {0}
    layer.events.data(value=layer.data, action=ActionType.CHANGING, data_indices=(0,), vertex_indices=((),))
    with layer.events.data.blocker():
        layer.data[0] = layer.data[0] + np.array([0.0, 6.0])
        layer.refresh()
    image = viewer.layers["virtual 0"]
    assert image.metadata["preview"] is True
    assert not np.allclose(image.data, before)
    layer.events.data(value=layer.data, action=ActionType.CHANGED, data_indices=(0,), vertex_indices=((),))
    _wait_exact(qtbot, viewer, 2)
    dataset = viewer.layers["4D-STEM (synthetic)"].metadata["fourdstem"]
    moved = Disc(float(layer.data[0, 0]), float(layer.data[0, 1]), float(layer.size[0]) / 2)
    np.testing.assert_allclose(image.data, virtual_images(dataset, [moved])[0], rtol=1e-5)


def test_resize_mirror_sweep_and_stereo_pair(fourdstem_dock, qtbot, monkeypatch):
    viewer, widget = fourdstem_dock
    layer = viewer.layers["detector discs"]
    direct = widget._direct
    # resize disc 0
    layer.size = np.array([4.0, layer.size[1]])
    assert widget._discs[0].radius == pytest.approx(2.0)
    # the default discs are symmetric about the beam: disc 0 mirrored through the centre falls on disc 1,
    # which is refused instead of stacking a disc on another
    messages = []
    monkeypatch.setattr("napari_stereo_tem._napari.notify.show_error", messages.append)
    layer.selected_data = {1}
    widget.mirror_point.value = True
    widget.mirror()
    assert len(layer.data) == 2 and messages and "falls on disc 0" in " ".join(messages)
    widget.mirror_point.value = False
    # mirror disc 0 across the line at 45 degrees through the direct beam -> a third disc
    # (across the vertical line it would fall on disc 1, which is refused as above)
    layer.selected_data = {0}
    widget.mirror_axis.value = 45.0
    widget.mirror()
    assert len(layer.data) == 3 and "virtual 2" in viewer.layers
    expected = mirror_disc(widget._discs[0], direct, 45.0)
    assert (widget._discs[2].cy, widget._discs[2].cx) == pytest.approx((expected.cy, expected.cx))
    # radius sweep around disc 0
    widget.radii.value = "1, 2, 3"
    widget.radius_sweep()
    sweep = viewer.layers["radius sweep"]
    assert sweep.data.shape == (3, 48, 48) and sweep.metadata["radii"] == [1.0, 2.0, 3.0]
    assert viewer.dims.current_step[viewer.dims.ndim - 3] == 0  # its first radius is on screen
    assert sweep.data[0].mean() < sweep.data[2].mean()
    # the first two discs as a stereo pair for the Reconstruct widget
    widget.use_as_stereo_pair()
    left, right = viewer.layers["left"], viewer.layers["right"]
    assert left.data.shape == right.data.shape == (48, 48)
    expected = stereo_angle_deg(widget._discs[0], widget._discs[1], 20.0 / direct.radius)
    assert left.metadata["stereo_angle_deg"] == pytest.approx(expected)
    assert right.metadata["stereo_role"] == "right"
    # ... which the Reconstruct widget picks up
    _, reconstruct = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Reconstruct 3D dislocations")
    reconstruct.left.value, reconstruct.right.value = left, right
    assert reconstruct.angle.value == pytest.approx(expected, abs=0.01)
    assert reconstruct.rectify.value is False  # tilt-less: already turned, no SIFT rectification


def test_no_dataset_is_a_notification(make_napari_viewer, monkeypatch):
    messages = []
    monkeypatch.setattr("napari_stereo_tem._napari.notify.show_error", messages.append)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Virtual detectors")
    widget.compute_mean_pattern()
    assert messages and "4D-STEM" in messages[0]


def test_threaded_flow_from_sample_to_exact_images(make_napari_viewer, qtbot):
    # the real path: work in a thread_worker, exact images after the settle timer
    viewer = make_napari_viewer()
    viewer.open_sample("napari-stereo-tem", "fourdstem")
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Virtual detectors")
    widget.reset_choices()
    widget.compute_mean_pattern()
    qtbot.waitUntil(lambda: "virtual 1" in viewer.layers, timeout=300_000)
    _wait_exact(qtbot, viewer, 2)
    assert viewer.layers["virtual 1"].data.std() > 0


def test_switching_dataset_keeps_discs_and_remakes_images(fourdstem_dock, qtbot):
    viewer, widget = fourdstem_dock
    _wait_exact(qtbot, viewer, 2)
    second = viewer.add_image(np.ones((20, 24, 32, 32), np.float32), name="second 4D")
    widget.reset_choices()
    widget.dataset.value = second
    assert "virtual 0" not in viewer.layers and widget._direct is None
    second.data[:, :, 10:20, 10:20] = 5.0  # a square "disc"
    widget.compute_mean_pattern()
    _wait_exact(qtbot, viewer, 2)
    assert viewer.layers["virtual 0"].data.shape == (20, 24)
    assert len(viewer.layers["detector discs"].data) == 2


def test_exact_images_show_band_by_band(fourdstem_dock, qtbot):
    viewer, widget = fourdstem_dock
    _wait_exact(qtbot, viewer, 2)
    seen = []
    original = widget._show_partial

    def record(discs, images, report):
        seen.append((report.done, report.total, int(np.sum(np.any(images[0] != 0, axis=1)))))
        original(discs, images, report)

    widget._show_partial = record  # a plain attribute: magicgui containers refuse monkeypatch's delattr
    widget.executor.value = "inline"  # one band per report: deterministic
    layer = viewer.layers["detector discs"]
    layer.data = layer.data + np.array([[0.0, 1.0], [0.0, 0.0]])
    widget.update_full()
    _wait_exact(qtbot, viewer, 2)
    partial = [s for s in seen if s[0] < s[1]]
    assert len(partial) >= 2  # several bands shown before the end
    rows = [s[2] for s in partial]
    assert rows == sorted(rows) and rows[0] < 48  # the filled rows grow band by band


def test_cancel_button_stops_a_pass_and_says_so(make_napari_viewer, qtbot):
    import time

    from napari_stereo_tem.progress import Progress

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Virtual detectors")

    def endless():
        k = 0
        while True:  # a pass over a very large dataset, band after band
            k += 1
            time.sleep(0.01)
            yield Progress(k, 10 ** 6, "band")

    results = []
    task = widget._start(endless(), results.append, "mean pattern")
    qtbot.waitUntil(lambda: widget.progress.text.startswith("running"), timeout=10_000)
    assert widget.cancel_button.enabled
    widget.cancel()  # what the Cancel button calls
    qtbot.waitUntil(lambda: not task.running, timeout=10_000)
    qtbot.waitUntil(lambda: "after" in widget.progress.text, timeout=10_000)
    assert widget.progress.text.startswith("mean pattern: cancelled"), widget.progress.text
    assert not widget.cancel_button.enabled and results == []


def test_settle_timer_dies_with_the_dock(fourdstem_dock, qtbot):
    """The exact images' settle timer must not fire into a dock whose widgets are gone."""
    from napari_stereo_tem._napari.virtual_widget import SETTLE_MS

    viewer, widget = fourdstem_dock
    timer = widget._timer
    fired = []
    timer.timeout.connect(lambda: fired.append(1))
    timer.start()
    widget.native.deleteLater()
    qtbot.waitUntil(lambda: _deleted(timer), timeout=2000)
    qtbot.wait(3 * SETTLE_MS)
    assert not fired


def _deleted(qobject) -> bool:
    from qtpy import sip

    try:
        return sip.isdeleted(qobject)
    except TypeError:  # not a wrapped object
        return False
