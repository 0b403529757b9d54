"""Dock widget: reconstruct the 3D dislocation lines of a stereo pair.

Layers in (two images, optionally two Points layers of clicked correspondences),
one core call (:func:`napari_stereo_tem.stereo.pipeline.reconstruct_stereo`, run off
the UI thread with a progress bar and a cancel button), layers out: the
rectified views, an editable Labels layer per view, and the 3D lines as a Shapes
layer of paths coloured by depth. A known tilt axis, shift or pair of tilts
(asymmetric pairs, specimen frame) are passed on as they are.
"""

from __future__ import annotations

from typing import Optional

import napari
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, LineEdit, create_widget

from ..checks import InputError, parse_numbers
from ..stereo.pipeline import reconstruct_stereo
from .layers import lines_layer
from .task_widget import TaskWidget

__all__ = ["ReconstructWidget", "reconstruction_layers", "format_report", "clicked_pairs", "parse_two"]


def _devices() -> list[str]:
    import torch

    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def parse_two(text: str, *, name: str):
    """``"-3, 9.5"`` -> ``(-3.0, 9.5)``; empty -> ``None``."""
    return parse_numbers(text, name=name, count=2, example="-3, 9.5")


def clicked_pairs(points_left, points_right):
    """Two napari Points layers' ``(row, col)`` data -> ``(left, right)`` ``(n, 2)`` ``(x, y)`` arrays.

    The i-th point of one layer is the partner of the i-th point of the other.
    """
    left = np.asarray(points_left.data, dtype=float)[:, -2:][:, ::-1]
    right = np.asarray(points_right.data, dtype=float)[:, -2:][:, ::-1]
    if len(left) != len(right):
        raise InputError(f"the clicked layers hold {len(left)} and {len(right)} points; click each feature in both "
                         "views, in the same order")
    if len(left) < 3:
        raise InputError(f"click at least 3 corresponding points in each view (got {len(left)})")
    return left, right


def format_report(result) -> str:
    """A few lines for the user: rectification, lines, timings."""
    lines = []
    rect = result.rectification
    if rect and rect.get("summary"):
        lines.append(rect["summary"])
    elif rect:
        theta = rect.get("theta_deg")
        shift = rect.get("translation") or rect.get("translation_px") or (float("nan"), float("nan"))
        lines.append(f"rectified: theta {theta:.2f} deg, shift ({shift[0]:.2f}, {shift[1]:.2f}) px, "
                     f"{rect.get('n_inliers')} inliers, residual dy {rect.get('residual_vertical_px', float('nan')):.2f} px")
    lengths = [float(((line[1:] - line[:-1]) ** 2).sum(axis=1).__pow__(0.5).sum()) for line in result.lines]
    lines.append(f"{len(result.lines)} lines, total length {sum(lengths):.0f} px")
    if result.timings:
        lines.append("time: " + ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items()))
    return "\n".join(lines)


def reconstruction_layers(result, *, scale=None) -> list:
    """Layer-data tuples for a :class:`~napari_stereo_tem.stereo.pipeline.StereoReconstruction`."""
    meta = {"provenance": result.provenance, "rectification": result.rectification}
    common = {} if scale is None else {"scale": scale}
    scale3 = None if scale is None else (scale[0], *scale)
    layers = [
        (result.left, {"name": "rectified left", "colormap": "gray", "metadata": meta, **common}, "image"),
        (result.right, {"name": "rectified right", "colormap": "gray", "metadata": meta, "visible": False,
                        **common}, "image"),
        (result.labels_left.astype("uint8"), {"name": "dislocations left", "opacity": 0.5, **common}, "labels"),
        (result.labels_right.astype("uint8"), {"name": "dislocations right", "opacity": 0.5, "visible": False,
                                               **common}, "labels"),
        lines_layer(result.lines, name="3D lines", scale=scale3, metadata=meta),
    ]
    if len(result.matches):
        # Each match as a segment from its left to its right keypoint, over the rectified
        # left view: after rectification they are horizontal (the disparity).
        segments = [np.array([[m[1], m[0]], [m[3], m[2]]]) for m in result.matches]
        layers.append((segments, {"name": "rectification matches", "shape_type": "line", "edge_color": "lime",
                                  "edge_width": 1, "visible": False, "metadata": meta, **common}, "shapes"))
    return layers


class ReconstructWidget(TaskWidget):
    """Reconstruct: stereo pair -> rectified views, labels and 3D lines."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(viewer, run_text="Reconstruct", description="reconstruct")
        self.left = create_widget(annotation=napari.layers.Image, label="left view")
        self.right = create_widget(annotation=napari.layers.Image, label="right view")
        self.angle = FloatSpinBox(value=8.0, min=0.1, max=60.0, step=0.1, label="stereo angle (deg)")
        self.pixel_size = FloatSpinBox(value=0.0, min=0.0, max=1e4, step=0.01, label="pixel size (nm)",
                                       tooltip="0 = pixels")
        self.swap = CheckBox(value=False, text="swap views")
        self.rectify = CheckBox(value=True, text="rectify (find the tilt axis and the shift)")
        self.axis_known = CheckBox(value=False, text="tilt axis known")
        self.tilt_axis = FloatSpinBox(value=0.0, min=-90.0, max=90.0, step=0.1, label="tilt axis off vertical (deg)")
        self.shift = LineEdit(value="", label="known shift dx, dy (px)",
                              tooltip="how far a zero-depth feature moves from the left to the right view; "
                                      "empty: find it")
        self.tilts = LineEdit(value="", label="tilts A, B (deg)",
                              tooltip="each view's tilt, for asymmetric pairs (the stereo angle becomes B - A)")
        self.frame = ComboBox(choices=["mean", "specimen"], value="mean", label="3D frame",
                              tooltip="mean: z along the beam at the mean tilt; specimen: z along the foil normal "
                                      "at zero tilt (needs the tilts)")
        self.clicked_left = create_widget(annotation=Optional[napari.layers.Points], label="clicked points left")
        self.clicked_right = create_widget(annotation=Optional[napari.layers.Points], label="clicked points right")
        self.device = ComboBox(choices=_devices(), value="cpu", label="device")
        self.extend([self.left, self.right, self.angle, self.tilts, self.frame, self.pixel_size, self.swap,
                     self.rectify, self.axis_known, self.tilt_axis, self.shift, self.clicked_left, self.clicked_right,
                     self.device, *self.controls()])
        self.left.changed.connect(self._angle_from_metadata)
        self._angle_from_metadata()

    def _angle_from_metadata(self, *_):
        layer = self.left.value
        if layer is not None:
            angle = layer.metadata.get("stereo_angle_deg")
            if angle:
                self.angle.value = float(angle)
            size = layer.metadata.get("pixel_size_nm")
            if size:
                self.pixel_size.value = float(size)
            # A virtual pair from 4D-STEM is tilt-less and already turned so that
            # disparities are horizontal: SIFT rectification has nothing to do.
            if "rotation_deg" in layer.metadata:
                self.rectify.value = False

    def make_work(self):
        """The reconstruction of the chosen pair (``None`` if no pair is chosen)."""
        left, right = self.left.value, self.right.value
        if left is None or right is None:
            napari.utils.notifications.show_error("choose a left and a right image layer")
            return None
        if left is right:
            napari.utils.notifications.show_error(
                f"'{left.name}' is chosen as both views; choose the left and the right view of the pair "
                "(the depth would come out flat)")
            return None
        try:
            options = self.alignment_options()
        except InputError as err:
            napari.utils.notifications.show_error(str(err))
            self.report.value = f"failed: {err}"
            return None
        return reconstruct_stereo(
            left.data, right.data, pixel_size=self.pixel_size.value or None, swap=self.swap.value,
            rectify=self.rectify.value, device=self.device.value, **options,
        )

    def alignment_options(self) -> dict:
        """The angle, tilts, frame and alignment keywords of :func:`reconstruct_stereo` from the fields."""
        tilts = parse_two(self.tilts.value, name="tilts A, B")
        manual = None
        if self.clicked_left.value is not None or self.clicked_right.value is not None:
            if self.clicked_left.value is None or self.clicked_right.value is None:
                raise InputError("choose a clicked-points layer for both views (or for neither)")
            manual = clicked_pairs(self.clicked_left.value, self.clicked_right.value)
        return {"stereo_angle_deg": None if tilts else self.angle.value, "tilts_deg": tilts,
                "frame": self.frame.value, "tilt_axis_deg": self.tilt_axis.value if self.axis_known.value else None,
                "shift": parse_two(self.shift.value, name="shift dx, dy"), "manual_points": manual}

    def show_result(self, result) -> None:
        size = self.pixel_size.value or None
        scale = (size, size) if size else None
        for data, attrs, kind in reconstruction_layers(result, scale=scale):
            name = attrs["name"]
            if name in self._viewer.layers:
                self._viewer.layers.remove(name)
            getattr(self._viewer, f"add_{kind}")(data, **attrs)
        self.report.value = format_report(result)
