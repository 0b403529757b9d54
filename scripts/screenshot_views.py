"""Screenshots of the virtual-detector dock's multi-view reconstruction (docs/images/).

    xvfb-run -a .venv/bin/python scripts/screenshot_views.py

The real dock on a synthetic 4D-STEM scan with known 3D lines (work runs synchronously, so the
pictures are deterministic): ``virtual_views_fused.png`` (a ring of six discs around the direct beam,
the six virtual images, the fused lines over the reference view coloured by depth, the dock's
report) and ``virtual_views_fused_3d.png`` (the fused 3D paths, coloured by each line's mean depth,
with the true lines in white).
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
SEED = 9_000_101


def _save(viewer, name: str) -> None:
    viewer.window._qt_window.repaint()
    napari.qt.get_qapp().processEvents()
    path = OUT / name
    viewer.screenshot(str(path), canvas_only=False, flash=False)
    print("wrote", path.relative_to(REPO))


def main() -> int:
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QScrollArea

    from napari_stereo_tem._napari.layers import lines_layer
    from napari_stereo_tem.synth import simulate_4dstem

    sample = simulate_4dstem(seed=SEED, scan_shape=(128, 128), detector_shape=(32, 32), disc_radius_px=12.0,
                             convergence_mrad=60.0)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(*SIZE)
    dock, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Virtual detectors")
    viewer.window._qt_window.resizeDocks([dock], [420], Qt.Orientation.Horizontal)
    viewer.add_image(np.asarray(sample.data), name="4D-STEM lines (synthetic)", metadata={"convergence_mrad": 60.0})
    widget.reset_choices()
    widget.dataset.value = viewer.layers["4D-STEM lines (synthetic)"]
    widget.compute_mean_pattern()
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
    napari.qt.get_qapp().processEvents()
    rows, cols = viewer.window._qt_viewer.canvas.size
    width, height = 34 + 3 * 132, 262
    viewer.camera.center = (height / 2, width / 2)
    viewer.camera.zoom = 0.95 * min(cols / width, rows / height)
    parent = widget.native.parent()
    while parent is not None and not isinstance(parent, QScrollArea):
        parent = parent.parent()
    if parent is not None:
        parent.ensureWidgetVisible(widget.status.native, 50, 200)
    _save(viewer, "virtual_views_fused.png")

    # 3D: the fused lines (coloured by depth) and the truth (white, thin) in the scan frame
    for layer in list(viewer.layers):
        layer.visible = layer.name == "fused 3D lines"
    viewer.layers["fused 3D lines"].translate = (0, 0, 0)
    viewer.layers.selection.active = viewer.layers["fused 3D lines"]
    viewer.layers["fused 3D lines"].edge_width = 1.5
    truth = [line for line in sample.lines_3d]
    data, attrs, _ = lines_layer(truth, name="true lines", edge_color="white", edge_width=0.5)
    viewer.add_shapes(data, **{**attrs, "opacity": 0.6})
    viewer.dims.ndisplay = 3
    napari.qt.get_qapp().processEvents()
    rows, cols = viewer.window._qt_viewer.canvas.size
    viewer.camera.center = (0.0, 64.0, 64.0)  # (z, y, x) of the scan's middle
    viewer.camera.zoom = 0.8 * min(rows, cols) / 180.0
    viewer.camera.angles = (-20.0, 35.0, 65.0)
    _save(viewer, "virtual_views_fused_3d.png")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
