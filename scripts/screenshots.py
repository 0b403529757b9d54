"""Regenerate the README screenshots in docs/images/ (run under a display, e.g. `xvfb-run -a`).

    xvfb-run -a .venv/bin/python scripts/screenshots.py [stereo virtual particles views quadrants ranking track]

Each picture is the napari window after the real widgets ran on the bundled
sample data or on synthetic scans (work runs synchronously here so the pictures
are deterministic). Without names, all of them:

- ``stereo``, ``virtual``, ``particles``: the bundled samples in the three main docks;
- ``views``: ``virtual_views_fused.png`` (a ring of six discs, the six virtual images, the
  fused lines over the reference view coloured by depth, the dock's report) and
  ``virtual_views_fused_3d.png`` (the fused 3D paths with the true lines in white);
- ``quadrants``: ``virtual_quadrants_particles.png`` (four discs around the direct beam, the
  four virtual images, the particles found over virtual 0 coloured by depth);
- ``ranking``: ``virtual_ranking.png`` (a radius sweep ranked by the topological score);
- ``track``: ``track_dock.png`` (a synthetic pile-up gliding under drift, tracked by the Track dock).
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
#: Window of the 4D-STEM multi-detector pictures (their dock holds more controls).
WIDE = (1800, 1000)


def _viewer(size=SIZE) -> napari.Viewer:
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(*size)
    return viewer


def _dock(viewer, display_name: str, width: int = 380):
    from qtpy.QtCore import Qt

    dock, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", display_name)
    viewer.window._qt_window.resizeDocks([dock], [width], Qt.Orientation.Horizontal)
    return widget


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


def _virtual_dock_on(data, name: str, convergence_mrad: float):
    """A wide window with the virtual-detector dock on a synthetic 4D-STEM scan, mean pattern computed."""
    viewer = _viewer(WIDE)
    widget = _dock(viewer, "Virtual detectors", 420)
    viewer.add_image(np.asarray(data), name=name, metadata={"convergence_mrad": convergence_mrad})
    widget.reset_choices()
    widget.dataset.value = viewer.layers[name]
    widget.compute_mean_pattern()
    return viewer, widget


def views() -> None:
    from napari_stereo_tem._napari.layers import lines_layer
    from napari_stereo_tem.synth import simulate_4dstem

    sample = simulate_4dstem(seed=9_000_101, scan_shape=(128, 128), detector_shape=(32, 32), disc_radius_px=12.0,
                             convergence_mrad=60.0)
    viewer, widget = _virtual_dock_on(sample.data, "4D-STEM lines (synthetic)", 60.0)
    widget.views.ring_n.value = 6
    widget.views.ring_radius.value = 8.0
    widget.views.disc_radius.value = 3.0
    widget.views.place_ring()
    widget.update_full()
    widget.views.reconstruct()
    viewer.layers["4D-STEM lines (synthetic)"].visible = False
    # for the picture: the six views in a 2 x 3 grid beside the pattern (the dock puts them in a row)
    for k in range(6):
        viewer.layers[f"virtual {k}"].translate = (132 * (k // 3), 34 + 132 * (k % 3))
    reference = viewer.layers["fused 3D lines"].metadata["reference_view"]
    where = viewer.layers[f"virtual {reference}"].translate
    viewer.layers["fused 3D lines (depth)"].translate = where
    viewer.layers["fused 3D lines"].translate = (0, *where)
    viewer.layers.selection.active = viewer.layers["fused 3D lines (depth)"]
    _frame(viewer, 34 + 3 * 132, 262)
    _scroll_to(widget, widget.status)
    _save(viewer, "virtual_views_fused.png")

    # 3D: the fused lines (coloured by depth) and the truth (white, thin) in the scan frame
    for layer in list(viewer.layers):
        layer.visible = layer.name == "fused 3D lines"
    viewer.layers["fused 3D lines"].translate = (0, 0, 0)
    viewer.layers.selection.active = viewer.layers["fused 3D lines"]
    viewer.layers["fused 3D lines"].edge_width = 1.5
    data, attrs, _ = lines_layer(list(sample.lines_3d), name="true lines", edge_color="white", edge_width=0.5)
    viewer.add_shapes(data, **{**attrs, "opacity": 0.6})
    viewer.dims.ndisplay = 3
    napari.qt.get_qapp().processEvents()
    rows, cols = viewer.window._qt_viewer.canvas.size
    viewer.camera.center = (0.0, 64.0, 64.0)  # (z, y, x) of the scan's middle
    viewer.camera.zoom = 0.8 * min(rows, cols) / 180.0
    viewer.camera.angles = (-20.0, 35.0, 65.0)
    _save(viewer, "virtual_views_fused_3d.png")
    viewer.close()


def quadrants() -> None:
    from napari_stereo_tem.synth.fourdstem_particles import simulate_4dstem_particles

    scan = simulate_4dstem_particles(seed=9_350_000, n_particles=60, scan_shape=(128, 128), scan_rotation_deg=0.0)
    viewer, widget = _virtual_dock_on(scan.data, "4D-STEM particles (synthetic)", 70.0)
    widget.quadrants.four_quadrants()
    widget.quadrants.particle_radii.value = "2, 7"
    widget.quadrants.particles()
    viewer.layers["4D-STEM particles (synthetic)"].visible = False
    _frame(viewer, 34 + 2 * 130, 128)
    _scroll_to(widget, widget.quadrants.report)
    _save(viewer, "virtual_quadrants_particles.png")
    viewer.close()


def ranking() -> None:
    from napari_stereo_tem.fourdstem import Disc
    from napari_stereo_tem.synth import simulate_4dstem

    sample = simulate_4dstem(seed=9_300_000, scan_shape=(128, 128), detector_shape=(32, 32), disc_radius_px=10.0,
                             convergence_mrad=60.0, dose=3.0)
    viewer, widget = _virtual_dock_on(sample.data, "4D-STEM lines (synthetic)", 60.0)
    d = widget._direct
    widget.set_discs([Disc(d.cy, d.cx + 4.0, 3.0)])
    widget.update_full()
    widget.radii.value = "1, 2, 3, 4, 5, 6"
    widget.ranking.rank()
    viewer.layers["4D-STEM lines (synthetic)"].visible = False
    _frame(viewer, 34 + 130, 128)
    _scroll_to(widget, widget.ranking.advice)
    _save(viewer, "virtual_ranking.png")
    viewer.close()


def track() -> None:
    from napari_stereo_tem.synth.timeseries import make_time_series

    series = make_time_series(5, shape=(256, 256), n_frames=10)
    viewer = _viewer()
    viewer.add_image(series.frames, name="in-situ movie (synthetic)", scale=(1.0, 0.4, 0.4),
                     metadata={"pixel_size_nm": 0.4, "frame_interval_s": 0.1})
    widget = _dock(viewer, "Track dislocations (in-situ movie)")
    widget.start()
    tracks = viewer.layers["in-situ movie (synthetic) tracks"]
    tracks.tail_length, tracks.tail_width = 10, 4
    viewer.dims.set_point(0, 9)
    _frame(viewer, 256 * 0.4, 256 * 0.4)
    _save(viewer, "track_dock.png")
    viewer.close()


def main(argv: list[str]) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    chosen = argv or ["stereo", "virtual", "particles", "views", "quadrants", "ranking", "track"]
    for name in chosen:
        globals()[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
