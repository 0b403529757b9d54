"""Particles dock widget on the synthetic four-view sample: 3D points, counts and the g(r) dock."""

import numpy as np
import pytest


@pytest.fixture
def setup(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-stereo-tem", "particles")
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Nanoparticles (four views)")
    widget.reset_choices()
    return viewer, widget


def test_sample_fills_the_four_views_and_geometry(setup):
    viewer, widget = setup
    assert [w.value.name for w in widget.views] == [f"view {c} (synthetic)" for c in "ABCD"]
    assert widget.beta.value == pytest.approx(5.0)
    assert widget._azimuths() == [0.0, 90.0, 180.0, 270.0]
    truth = viewer.layers["true particles"]
    assert type(truth).__name__ == "Points" and truth.ndim == 3 and len(truth.data) == 40


def test_run_gives_3d_points_counts_and_rdf_dock(setup, wait_finished):
    viewer, widget = setup
    task = widget.start()
    wait_finished(task)
    assert task.error is None
    every = viewer.layers["particles (all views)"]
    three = viewer.layers["particles (three views)"]
    assert type(every).__name__ == "Points" and every.ndim == 3 and every.data.shape[1] == 3
    assert len(every.data) >= 25 and three.ndim == 3
    # napari (z, y, x): rows and columns inside the 192x192 views, sizes = diameters of 3-5 px radii
    assert every.data[:, 1].min() > -5 and every.data[:, 2].max() < 197
    assert 5.0 < np.median(every.size) < 11.0
    # each found particle lies near a true one (3D, pixels)
    truth = viewer.layers["true particles"].data
    dist = np.linalg.norm(every.data[:, None, :] - truth[None, :, :], axis=2).min(axis=1)
    assert np.median(dist) < 2.0
    assert "matched in all views" in widget.report.value
    # per-particle standard deviations as features; depth the least certain
    std = every.features[["std_x", "std_y", "std_z"]].to_numpy()
    assert np.all(np.isfinite(std)) and np.all(std[:, 2] > std[:, 0])
    # the same particles in the 2D view: projected (y, x), coloured by depth; the status says where 3D is
    flat = viewer.layers["particles (2D, colour = depth)"]
    assert flat.ndim == 2 and len(flat.data) == len(every.data) + len(three.data)
    np.testing.assert_allclose(np.sort(flat.features["z"]), np.sort(np.r_[every.data[:, 0], three.data[:, 0]]))
    deep, shallow = np.argmax(flat.features["z"]), np.argmin(flat.features["z"])
    assert not np.allclose(flat.border_color[deep], flat.border_color[shallow])
    assert "3D" in widget.report.value and "depth std" in widget.report.value
    assert "3D" in viewer.status
    assert "A:" in widget.report.value and "D:" in widget.report.value
    # the g(r) dock exists and holds a curve
    assert widget.rdf_plot is not None
    assert viewer.window.dock_widgets["g(r)"] is widget.rdf_plot
    assert len(widget.rdf_plot.r) > 3 and np.isfinite(widget.rdf_plot.g).all()
    assert len(widget.rdf_plot.axes.lines) >= 1
    # the fit to the views is on by default, recorded in the provenance, and can be switched off
    assert widget.refine.value
    assert "refinement" in every.metadata["provenance"]["matching"]
    widget.refine.value = False
    wait_finished(widget.start())
    assert "refinement" not in viewer.layers["particles (all views)"].metadata["provenance"]["matching"]


def test_one_layer_holding_the_four_views_as_frames_is_used_for_all(make_napari_viewer, wait_finished):
    """A segmented detector's four views exported as the frames of one file open as one 3D layer: it fills
    A-D and its frames are the views."""
    from napari_stereo_tem.synth.particles import simulate_particle_views

    sample = simulate_particle_views(30, seed=9000041, shape=(160, 160), slab_thickness_px=30.0, dose=3000.0)
    viewer = make_napari_viewer()
    viewer.add_image(np.stack(sample.views), name="DF4 segments")
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Nanoparticles (four views)")
    widget.reset_choices()
    assert [w.value.name for w in widget.views] == ["DF4 segments"] * 4
    widget.beta.value = float(sample.beta_deg)
    task = widget.start()
    assert task is not None
    wait_finished(task)
    assert task.error is None, task.error
    found = viewer.layers["particles (all views)"]
    assert len(found.data) >= 0.8 * len(sample.positions)
    assert found.metadata["layers"] == [f"DF4 segments [{k}]" for k in range(4)]


def test_missing_views_is_a_notification(make_napari_viewer, monkeypatch):
    messages = []
    monkeypatch.setattr("napari_stereo_tem._napari.particles_widget.show_error", messages.append)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Nanoparticles (four views)")
    assert widget.start() is None
    assert messages and "four image layers" in messages[0]


def test_cancel_leaves_no_result_and_the_widget_usable(setup, wait_finished):
    viewer, widget = setup
    task = widget.start()
    widget.cancel()
    wait_finished(task)
    assert "particles (all views)" not in viewer.layers
    assert widget.run_button.enabled and not widget.cancel_button.enabled
    assert widget.report.value == "cancelled"


def test_finished_after_the_dock_was_deleted_is_harmless(setup):
    """The worker's finished signal is queued and may land after the dock's buttons were deleted."""
    from qtpy import API_NAME

    viewer, widget = setup
    if API_NAME.startswith("PyQt"):
        from qtpy import sip

        sip.delete(widget.run_button.native)
    else:  # PySide
        import shiboken6

        shiboken6.delete(widget.run_button.native)
    widget._finished()  # no "wrapped C/C++ object ... has been deleted"


def test_large_particles_are_found_with_the_radii_from_the_views(setup, wait_finished):
    """Views enlarged five times (particles of 15-25 px radius): with 'radii from the views' (the default)
    they are found at the enlarged views' scale; the radius fields count only when it is unticked."""
    import cv2

    viewer, widget = setup
    assert widget.auto_radius.value and not widget.radius_min.enabled
    for w in widget.views:
        w.value.data = cv2.resize(np.asarray(w.value.data, np.float32), None, fx=5, fy=5,
                                  interpolation=cv2.INTER_CUBIC)
    task = widget.start()
    wait_finished(task)
    assert task.error is None
    every = viewer.layers["particles (all views)"]
    assert len(every.data) >= 25 and np.median(every.size) > 20  # diameters at the enlarged scale
    assert every.data[:, 1].max() > 500
    widget.auto_radius.value = False
    assert widget.radius_min.enabled and widget.radius_max.enabled
