"""The virtual-detector dock's multi-view part: a ring of N discs, and 3D lines fused from all discs.

- ``Ring of N`` replaces the discs with N discs evenly spaced around the direct
  beam (:func:`~napari_stereo_tem.fourdstem.views_geometry.ring_of_discs`); they
  can then be dragged, resized, added or removed like any other disc;
- ``Reconstruct from all discs`` runs
  :func:`~napari_stereo_tem.fourdstem.multiview.iter_reconstruct_views` (the call
  ``stereo-tem reconstruct-views`` makes) in the dock's worker, with its progress
  and Cancel, and shows the fused lines over the reference view's image: a Shapes
  layer of 3D paths (``depth_std_median`` per path; seen in 3D) and, flat over the
  image, the lines cut into segments coloured by depth (``depth`` and ``depth_std``
  per segment; seen in 2D, where a 3D path shows only where it crosses the slice).
"""

from __future__ import annotations

from magicgui.widgets import FloatSpinBox, PushButton, SpinBox

from ..checks import InputError
from ..fourdstem.multiview import iter_reconstruct_views
from ..fourdstem.views_geometry import check_view_discs, ring_of_discs
from .layers import DEPTH_LAYER_SUFFIX, depth_range, depth_rgba, depth_segments, lines_layer
from .notify import report_input_errors

__all__ = ["ViewsPanel", "FUSED_LINES"]

#: Name of the Shapes layer of fused 3D lines.
FUSED_LINES = "fused 3D lines"


class ViewsPanel:
    """Ring-of-N and multi-view reconstruction controls, inserted into a ``VirtualDetectorWidget``."""

    def __init__(self, dock):
        self._dock = dock
        self.ring_n = SpinBox(value=4, min=1, max=24, label="ring: discs", tooltip="number of discs on the ring")
        self.ring_radius = FloatSpinBox(value=0.0, min=0.0, max=1000.0, step=0.5, label="ring radius (px)",
                                        tooltip="distance of the disc centres from the direct beam; "
                                                "0: two thirds of the direct disc's radius")
        self.disc_radius = FloatSpinBox(value=0.0, min=0.0, max=1000.0, step=0.5, label="disc radius (px)",
                                        tooltip="radius of each disc; 0: a quarter of the direct disc's radius")
        self.ring_start = FloatSpinBox(value=0.0, min=-180.0, max=180.0, step=5.0, label="ring start (deg)",
                                       tooltip="direction of the first disc from the direct beam, from +x towards +y")
        self.ring_button = PushButton(text="Ring of N")
        self.reconstruct_button = PushButton(text="Reconstruct from all discs")
        self.ring_button.changed.connect(self.place_ring)
        self.reconstruct_button.changed.connect(self.reconstruct)
        widgets = [self.ring_n, self.ring_radius, self.disc_radius, self.ring_start, self.ring_button,
                   self.reconstruct_button]
        at = list(dock).index(dock.progress.widgets[0])  # above the dock's progress, Cancel and status
        for k, widget in enumerate(widgets):
            dock.insert(at + k, widget)

    @report_input_errors()
    def place_ring(self, *_) -> None:
        """Replace the discs with a ring of N around the direct beam."""
        direct = self._dock._direct
        if direct is None:
            raise InputError("press 'Mean pattern' first: the ring is placed around the direct beam it finds")
        # 0: the default of ring_of_discs (two thirds and a quarter of the direct beam's radius)
        self._dock.set_discs(ring_of_discs(self.ring_n.value, centre=direct, ring_radius=self.ring_radius.value or None,
                                           disc_radius=self.disc_radius.value or None,
                                           start_deg=self.ring_start.value))

    @report_input_errors()
    def reconstruct(self, *_):
        """Fused 3D lines of every disc, off the UI thread (the dock's progress and Cancel)."""
        dock = self._dock
        dataset = dock._dataset()
        discs = check_view_discs(list(dock._discs), dataset.detector_shape)
        scale = dock._mrad_per_px()
        if scale is None:
            raise InputError("calibrate first: press 'Mean pattern' so the direct beam is found")
        provenance = {"convergence_mrad": dock.convergence.value,
                      "source": str(dataset.metadata.get("source", ""))}
        work = iter_reconstruct_views(dataset, discs, direct=dock._direct, mrad_per_px=scale,
                                      scan_rotation_deg=dock.scan_rotation.value, executor=dock._executor(),
                                      provenance=provenance)
        return dock._start(work, self.show, "multi-view reconstruction")

    def show(self, result) -> None:
        """The fused lines as layers, over the reference view's virtual image."""
        viewer = self._dock._viewer
        reference = f"virtual {result.reference}"
        translate = (0.0, *viewer.layers[reference].translate[-2:]) if reference in viewer.layers else (0.0, 0.0, 0.0)
        meta = {"kind": "stereo-tem fused lines", "reference_view": result.reference, "pairs": result.pairs,
                "discs": [d.to_dict() for d in result.discs], "provenance": result.provenance}
        layers = [lines_layer(result.lines, name=FUSED_LINES, metadata=meta, depth_std=result.depth_std,
                              translate=translate, edge_width=1.0),
                  _over_view(result, translate[1:])]
        for data, attrs, kind in layers:
            if attrs["name"] in viewer.layers:
                viewer.layers.remove(attrs["name"])
            getattr(viewer, f"add_{kind}")(data, **attrs)
        pairs = ", ".join(f"{p['pair'][0]}-{p['pair'][1]}" for p in result.pairs)
        hints = "".join(f"\n- {hint}" for hint in result.hints())
        self._dock.show_result(f"{len(result.lines)} fused 3D lines from {len(result.discs)} views (reference "
                               f"view {result.reference}; pairs {pairs})" + (f"; why:{hints}" if hints else ""))


def _over_view(result, translate) -> tuple:
    """The fused lines as 2D segments over the reference view, coloured by depth (a Vectors layer-data tuple)."""
    import numpy as np

    vectors, depths, ids = depth_segments(result.lines)
    stds = [0.5 * (np.asarray(s)[:-1] + np.asarray(s)[1:]) for s, line in zip(result.depth_std, result.lines)
            if len(line) >= 2]
    low, high = depth_range(result.lines)
    attrs = {"name": FUSED_LINES + DEPTH_LAYER_SUFFIX, "edge_width": 1.5, "length": 1.0, "vector_style": "line",
             "edge_color": depth_rgba(depths, low, high) if len(depths) else "yellow", "ndim": 2,
             "features": {"depth": depths, "depth_std": np.concatenate(stds) if stds else np.zeros(0),
                          "line_id": ids},
             "translate": tuple(translate),
             "metadata": {"kind": "stereo-tem depth view", "lines_layer": FUSED_LINES,
                          "depth_colour_bar": {"low": low, "high": high, "unit": "px"}}}
    return (vectors[:, :, 1:], attrs, "vectors")
