"""Virtual-detector dock: four quadrants -> particles from one scan, and the ranking of detectors."""

import numpy as np
import pytest

from napari_stereo_tem.particles import score_particles
from napari_stereo_tem.synth.fourdstem_particles import simulate_4dstem_particles

WAIT_CEILING_MS = 600_000


@pytest.fixture
def dock(make_napari_viewer, monkeypatch):
    monkeypatch.setenv("NAPARI_STEREO_TEM_SYNC", "1")  # background work runs inline: deterministic
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Virtual detectors")
    return viewer, widget


def _wait_idle(qtbot, widget):
    qtbot.waitUntil(lambda: widget._task is None or not widget._task.running, timeout=WAIT_CEILING_MS)


def test_four_quadrants_then_particles(dock, qtbot):
    viewer, widget = dock
    scan = simulate_4dstem_particles(seed=9_330_000, n_particles=30, scan_shape=(80, 80), scan_rotation_deg=15.0)
    viewer.add_image(np.asarray(scan.data), name="particle scan", metadata={"convergence_mrad": 70.0})
    widget.reset_choices()
    widget.dataset.value = viewer.layers["particle scan"]
    assert widget.convergence.value == 70.0
    widget.compute_mean_pattern()
    _wait_idle(qtbot, widget)
    discs = widget.quadrants.four_quadrants()
    assert len(discs) == 4 and len(viewer.layers["detector discs"].data) == 4
    direct = widget._direct
    offsets = [np.hypot(d.cy - direct.cy, d.cx - direct.cx) for d in discs]
    np.testing.assert_allclose(offsets, 0.55 * direct.radius)
    assert "4 views: beta" in widget.quadrants.report.value
    widget.scan_rotation.value = 15.0
    widget.quadrants.particle_radii.value = "2, 7"
    widget.quadrants.particles()
    _wait_idle(qtbot, widget)
    qtbot.waitUntil(lambda: "particles (all views)" in viewer.layers, timeout=WAIT_CEILING_MS)
    layer = viewer.layers["particles (all views)"]
    points = layer.data[:, [2, 1, 0]] - np.array([0.0, 0.0, 0.0])  # napari (z, y, x) -> (x, y, z)
    beta = layer.metadata["beta_deg"]
    score = score_particles(points, scan.positions, shape=(80, 80), beta_deg=beta,
                            azimuths_deg=layer.metadata["azimuths_deg"], margin=6)
    assert score["recall"] >= 0.75 and score["precision"] >= 0.75, score
    # drawn over 'virtual 0', where the particles' view is
    flat = viewer.layers["particles (2D, colour = depth)"]
    np.testing.assert_allclose(flat.translate, viewer.layers["virtual 0"].translate)
    assert "beta" in widget.quadrants.report.value and "matched in all views" in widget.quadrants.report.value


def test_particles_take_uneven_discs_and_refuse_two_at_one_place(dock, qtbot, monkeypatch):
    from napari_stereo_tem.fourdstem import Disc

    viewer, widget = dock
    messages = []
    monkeypatch.setattr("napari_stereo_tem._napari.notify.show_error", messages.append)
    viewer.open_sample("napari-stereo-tem", "fourdstem")
    widget.reset_choices()
    widget.compute_mean_pattern()
    _wait_idle(qtbot, widget)
    d = widget._direct
    # discs at different distances: one beta per view, shown in the dock
    widget.set_discs([Disc(d.cy, d.cx + 3, 1.5), Disc(d.cy + 3, d.cx, 1.5), Disc(d.cy, d.cx - 3, 1.5),
                      Disc(d.cy - 5, d.cx, 1.5)])
    widget.quadrants._show_geometry()
    report = widget.quadrants.report.value
    assert report.startswith("4 views: beta ") and report.split(" deg")[0].count(",") == 3, report
    # two discs at one place are one view: refused before any work
    widget.set_discs([Disc(d.cy, d.cx + 3, 1.5), Disc(d.cy + 3, d.cx, 1.5), Disc(d.cy, d.cx - 3, 1.5),
                      Disc(d.cy, d.cx + 3.2, 1.5)])
    assert widget.quadrants.particles() is None
    assert messages and "same place" in messages[-1]
    assert "particles (all views)" not in viewer.layers
    # let the discs' exact images finish before the dock closes
    qtbot.waitUntil(lambda: all(viewer.layers[f"virtual {k}"].metadata.get("preview") is False for k in range(4)),
                    timeout=WAIT_CEILING_MS)


def test_ranking_table(dock, qtbot):
    viewer, widget = dock
    viewer.open_sample("napari-stereo-tem", "fourdstem")
    widget.reset_choices()
    widget.compute_mean_pattern()
    _wait_idle(qtbot, widget)
    widget.radii.value = "1, 2, 3"
    widget.ranking.rank()
    _wait_idle(qtbot, widget)
    qtbot.waitUntil(lambda: widget.ranking.result is not None, timeout=WAIT_CEILING_MS)
    table = widget.ranking.table.value
    ranking = widget.ranking.result.ranking
    assert table["data"] and len(table["data"]) == 3
    assert [row[0] for row in table["data"]] == [1, 2, 3]
    assert [row[1] for row in table["data"]] == [row["name"] for row in ranking]
    assert set(row[1] for row in table["data"]) == {"r 1 px", "r 2 px", "r 3 px"}
    distances = [float(row[2]) for row in table["data"]]
    assert distances == sorted(distances)
    assert widget.ranking.advice.value.startswith(f"use: {ranking[0]['name']}")
    assert widget.native.sizeHint().width() < 700, widget.native.sizeHint().width()
    # the swept disc takes the best radius
    centre = widget._discs[0].centre
    widget.ranking.use_best()
    assert widget._discs[0].radius == widget.ranking.result.best.radius
    assert widget._discs[0].centre == centre
    qtbot.waitUntil(lambda: viewer.layers["virtual 0"].metadata.get("preview") is False, timeout=WAIT_CEILING_MS)
