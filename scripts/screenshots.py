"""Regenerate the README screenshots in docs/images/ (run under a display, e.g. `xvfb-run -a`).

    xvfb-run -a .venv/bin/python scripts/screenshots.py

Each picture is the napari window after the real widgets ran on the bundled
sample data (work runs synchronously here so the pictures are deterministic).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ["NAPARI_STEREO_TEM_SYNC"] = "1"

import napari  # noqa: E402
import numpy as np  # noqa: E402
import tifffile  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "images"
SIZE = (1400, 900)


def _viewer() -> napari.Viewer:
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(*SIZE)
    return viewer


def _dock(viewer, display_name: str):
    from qtpy.QtCore import Qt

    dock, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", display_name)
    viewer.window._qt_window.resizeDocks([dock], [380], Qt.Orientation.Horizontal)
    return widget


def _save(viewer, name: str) -> Path:
    path = OUT / name
    viewer.window._qt_window.repaint()
    napari.qt.get_qapp().processEvents()
    viewer.screenshot(str(path), canvas_only=False, flash=False)
    print("wrote", path.relative_to(REPO))
    return path


def stereo() -> None:
    viewer = _viewer()
    sample = REPO / "sample_data" / "stereo"
    meta = {"stereo_angle_deg": 8.0}
    viewer.add_image(tifffile.imread(sample / "left.tif"), name="left", metadata=meta, colormap="gray")
    viewer.add_image(tifffile.imread(sample / "right.tif"), name="right", metadata=meta, colormap="gray")
    widget = _dock(viewer, "Reconstruct 3D dislocations")
    widget.left.value, widget.right.value = viewer.layers["left"], viewer.layers["right"]
    widget.start()
    for name in ("left", "right", "rectified right", "dislocations right"):
        viewer.layers[name].visible = False
    viewer.layers.selection.active = viewer.layers["dislocations left"]
    _save(viewer, "reconstruct_2d.png")
    viewer.layers["dislocations left"].visible = False
    viewer.layers.selection.active = viewer.layers["3D lines (depth)"]
    viewer.dims.ndisplay = 3
    viewer.reset_view()
    viewer.camera.angles = (-25, 35, 60)
    viewer.camera.zoom *= 1.3
    _save(viewer, "reconstruct_3d.png")
    viewer.close()


def virtual() -> None:
    viewer = _viewer()
    viewer.open_sample("napari-stereo-tem", "fourdstem")
    widget = _dock(viewer, "Virtual detectors")
    widget.compute_mean_pattern()
    widget.update_full()
    viewer.layers["4D-STEM (synthetic)"].visible = False
    viewer.reset_view()
    _save(viewer, "virtual_detectors.png")
    viewer.close()


def particles() -> None:
    viewer = _viewer()
    folder = REPO / "sample_data" / "particles"
    for letter in "ABCD":
        viewer.add_image(tifffile.imread(folder / f"view_{letter}.tif"), name=f"view {letter}",
                         metadata={"view": letter}, colormap="gray", visible=letter == "A")
    widget = _dock(viewer, "Nanoparticles (four views)")
    widget.reset_choices()
    for box, letter in zip(widget.views, "ABCD"):
        box.value = viewer.layers[f"view {letter}"]
    widget.beta.value = 3.0
    widget.start()
    viewer.reset_view()
    _save(viewer, "particles_2d.png")
    viewer.dims.ndisplay = 3
    viewer.reset_view()
    viewer.camera.angles = (-15, 30, 60)
    _save(viewer, "particles.png")
    viewer.close()


def main(argv: list[str]) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    chosen = argv or ["stereo", "virtual", "particles"]
    for name in chosen:
        globals()[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
