"""Screenshots of the virtual-detector dock's four-quadrant particles and detector ranking (docs/images/).

    xvfb-run -a .venv/bin/python scripts/screenshot_quadrants.py

The real dock runs on synthetic scans (work runs synchronously, so the pictures are deterministic):
``virtual_quadrants_particles.png`` (four discs around the direct beam, the four virtual images, the
particles found over virtual 0 coloured by depth) and ``virtual_ranking.png`` (a radius sweep ranked
by the topological score, the table in the dock).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ["NAPARI_STEREO_TEM_SYNC"] = "1"

import napari  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "images"
SIZE = (1800, 1000)


def _viewer_and_dock():
    from qtpy.QtCore import Qt

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(*SIZE)
    dock, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Virtual detectors")
    viewer.window._qt_window.resizeDocks([dock], [420], Qt.Orientation.Horizontal)
    return viewer, widget


def _scroll_to(widget, target) -> None:
    """Scroll the dock so that ``target`` (a magicgui widget) is in sight."""
    from qtpy.QtWidgets import QScrollArea

    parent = widget.native.parent()
    while parent is not None and not isinstance(parent, QScrollArea):
        parent = parent.parent()
    if parent is not None:
        parent.ensureWidgetVisible(target.native, 50, 200)


def _frame(viewer, width: float, height: float) -> None:
    """Show the 2D plane from column 0 to ``width`` and row 0 to ``height`` (the 4D dataset's sliders stay)."""
    napari.qt.get_qapp().processEvents()
    rows, cols = viewer.window._qt_viewer.canvas.size  # (height, width)
    viewer.scene.camera.center = (height / 2, width / 2)
    viewer.scene.camera.zoom = 0.95 * min(cols / width, rows / height)


def _save(viewer, name: str) -> None:
    viewer.window._qt_window.repaint()
    napari.qt.get_qapp().processEvents()
    path = OUT / name
    viewer.screenshot(str(path), canvas_only=False, flash=False)
    print("wrote", path.relative_to(REPO))


def quadrants() -> None:
    from napari_stereo_tem.synth.fourdstem_particles import simulate_4dstem_particles

    scan = simulate_4dstem_particles(seed=9_350_000, n_particles=60, scan_shape=(128, 128), scan_rotation_deg=0.0)
    viewer, widget = _viewer_and_dock()
    viewer.add_image(np.asarray(scan.data), name="4D-STEM particles (synthetic)", metadata={"convergence_mrad": 70.0})
    widget.reset_choices()
    widget.dataset.value = viewer.layers["4D-STEM particles (synthetic)"]
    widget.compute_mean_pattern()
    widget.quadrants.four_quadrants()
    widget.quadrants.particle_radii.value = "2, 7"
    widget.quadrants.particles()
    viewer.layers["4D-STEM particles (synthetic)"].visible = False
    _frame(viewer, 34 + 2 * 130, 128)
    _scroll_to(widget, widget.quadrants.report)
    _save(viewer, "virtual_quadrants_particles.png")
    viewer.close()


def ranking() -> None:
    from napari_stereo_tem.synth import simulate_4dstem

    sample = simulate_4dstem(seed=9_300_000, scan_shape=(128, 128), detector_shape=(32, 32), disc_radius_px=10.0,
                             convergence_mrad=60.0, dose=3.0)
    viewer, widget = _viewer_and_dock()
    viewer.add_image(np.asarray(sample.data), name="4D-STEM lines (synthetic)", metadata={"convergence_mrad": 60.0})
    widget.reset_choices()
    widget.dataset.value = viewer.layers["4D-STEM lines (synthetic)"]
    widget.compute_mean_pattern()
    d = widget._direct
    from napari_stereo_tem.fourdstem import Disc

    widget.set_discs([Disc(d.cy, d.cx + 4.0, 3.0)])
    widget.update_full()
    widget.radii.value = "1, 2, 3, 4, 5, 6"
    widget.ranking.rank()
    viewer.layers["4D-STEM lines (synthetic)"].visible = False
    _frame(viewer, 34 + 130, 128)
    _scroll_to(widget, widget.ranking.advice)
    _save(viewer, "virtual_ranking.png")
    viewer.close()


def main(argv: list[str]) -> int:
    for name in argv or ["quadrants", "ranking"]:
        globals()[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
