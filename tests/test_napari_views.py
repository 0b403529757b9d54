"""Virtual-detector dock, multi-view part: a ring of N discs and the fused 3D lines of all of them."""

import numpy as np


def test_ring_of_n_then_reconstruct_from_all_discs(make_napari_viewer, monkeypatch, qtbot, wait_finished):
    from napari_stereo_tem.synth import simulate_4dstem

    monkeypatch.setenv("NAPARI_STEREO_TEM_SYNC", "1")
    sample = simulate_4dstem(seed=9_000_102, scan_shape=(64, 64), detector_shape=(32, 32), disc_radius_px=12.0,
                             convergence_mrad=60.0)
    viewer = make_napari_viewer()
    viewer.add_image(np.asarray(sample.data), name="4D-STEM lines", metadata={"convergence_mrad": 60.0})
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Virtual detectors")
    widget.reset_choices()
    widget.dataset.value = viewer.layers["4D-STEM lines"]
    widget.compute_mean_pattern()
    panel = widget.views
    direct = widget._direct
    panel.ring_n.value = 5
    panel.ring_radius.value = 8.0
    panel.disc_radius.value = 3.0
    panel.ring_start.value = 90.0
    panel.place_ring()
    discs = viewer.layers["detector discs"]
    assert discs.data.shape == (5, 2)
    offsets = discs.data - [direct.cy, direct.cx]
    np.testing.assert_allclose(np.hypot(offsets[:, 0], offsets[:, 1]), 8.0, atol=1e-9)
    np.testing.assert_allclose(offsets[0], [8.0, 0.0], atol=1e-9)  # 90 deg: towards +y, down the rows
    np.testing.assert_allclose(np.asarray(discs.size).reshape(5, -1)[:, -1], 6.0)
    assert [d.radius for d in widget._discs] == [3.0] * 5
    qtbot.waitUntil(lambda: all(f"virtual {k}" in viewer.layers and viewer.layers[f"virtual {k}"].metadata.get(
        "preview") is False for k in range(5)), timeout=60_000)

    task = wait_finished(panel.reconstruct())
    assert task.error is None and not task.cancelled
    assert widget.progress.text.startswith("multi-view reconstruction: done after")
    lines = viewer.layers["fused 3D lines"]
    depth = viewer.layers["fused 3D lines (depth)"]
    assert type(lines).__name__ == "Shapes" and lines.ndim == 3
    assert set(lines.shape_type) <= {"path"} and len(lines.data) > 0
    assert "depth_std_median" in lines.properties and np.all(lines.properties["depth_std_median"] > 0)
    assert "depth_std" in depth.features and len(depth.features["depth_std"]) == len(depth.data)
    meta = lines.metadata
    assert len(meta["discs"]) == 5 and all(len(p["pair"]) == 2 for p in meta["pairs"])
    # drawn over the reference view's virtual image
    reference = viewer.layers[f"virtual {meta['reference_view']}"]
    np.testing.assert_allclose(lines.translate[-2:], reference.translate[-2:])
    assert "fused 3D lines from 5 views" in widget.status.value
    # exact images that finish after the result do not replace it in the status line ...
    result_text = widget.status.value
    widget._show_full(list(widget._discs), np.zeros((5, 64, 64), np.float32))
    assert widget.status.value == result_text
    # ... and a settle timer that fires while an analysis runs waits for it instead of cancelling it
    class Running:
        running, cancelled = True, False

        def cancel(self):
            self.cancelled = True

    analysis = Running()
    widget._task, widget._task_description = analysis, "multi-view reconstruction"
    assert widget.update_full() is None and not analysis.cancelled and widget._timer.isActive()
    widget._timer.stop()
    widget._task = None
    # new discs: the result is stale, the images' messages show again
    discs.data = discs.data + 0.5
    qtbot.waitUntil(lambda: "up to date" in widget.status.value, timeout=60_000)


def test_reconstruct_refuses_two_discs(fourdstem_dock, qtbot, monkeypatch):
    viewer, widget = fourdstem_dock
    # the dock computes the default pair's images shortly after the mean pattern: let it finish
    qtbot.waitUntil(lambda: all(viewer.layers[f"virtual {k}"].metadata.get("preview") is False for k in (0, 1)),
                    timeout=60_000)
    messages = []
    monkeypatch.setattr("napari_stereo_tem._napari.notify.show_error", messages.append)
    assert len(widget._discs) == 2  # the dock's default pair
    assert widget.views.reconstruct() is None
    assert messages and "at least 3 discs" in messages[-1]
    assert "fused 3D lines" not in viewer.layers


def test_the_ring_sample_gives_lines_with_the_docks_defaults(make_napari_viewer, monkeypatch, qtbot, wait_finished):
    """A first-time user: the ring sample, Mean pattern, Ring of N and Reconstruct, nothing set by hand."""
    monkeypatch.setenv("NAPARI_STEREO_TEM_SYNC", "1")
    viewer = make_napari_viewer()
    viewer.open_sample("napari-stereo-tem", "fourdstem_ring")
    assert viewer.layers["4D-STEM (synthetic, ring)"].data.shape == (128, 128, 32, 32)
    assert viewer.layers["true 3D lines (4D-STEM, ring)"].metadata["truth"]
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Virtual detectors")
    widget.reset_choices()
    assert widget.dataset.value is viewer.layers["4D-STEM (synthetic, ring)"]
    assert widget.convergence.value == 60.0  # from the sample's metadata
    widget.compute_mean_pattern()
    widget.views.place_ring()
    assert len(widget._discs) == widget.views.ring_n.value == 4
    task = wait_finished(widget.views.reconstruct())
    assert task.error is None and not task.cancelled
    assert len(viewer.layers["fused 3D lines"].data) > 0, widget.status.value
    assert "why" not in widget.status.value
