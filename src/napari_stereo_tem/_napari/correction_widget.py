"""Dock widget: correct the matcher by hand and add the corrections to a training set (DESIGN 3.9).

The segmentation (Labels) and the polylines (Shapes) are edited with napari's
own tools. This widget adds what needs geometry, through
:mod:`napari_stereo_tem.stereo.corrections`:

- "Polylines from labels": one 2D Shapes layer of paths per view from its Labels;
- "Link left line to right line": the path selected (or given by index) in the
  left polylines and its partner in the right ones give a 3D line (disparities
  on the rows both cross); it replaces the 3D line it corrects (the one seen
  at the same place in the left view) or is added;
- "Shift selected 3D lines in depth": moves the selected paths of the 3D lines
  layer along the beam, keeping where the left view sees them;
- "Add to training set": the view(s), the corrected Labels, the disparities of
  the lines corrected here (linked or shifted) and their provenance, as one new
  entry of the chosen folder (:func:`napari_stereo_tem.models.training_set.add_entry`).
"""

from __future__ import annotations

from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import Container, FileEdit, FloatSpinBox, PushButton, SpinBox, create_widget
from napari.utils.notifications import show_error, show_info

from ..checks import InputError
from ..stereo.corrections import disparity_labels, link_lines, replace_or_add_line, shift_line_depth
from ..stereo.skeleton_graph import skeleton_branches
from ..models.training_set import add_entry
from ..progress import Progress
from .background import BackgroundTask
from .layers import lines_layer, lines_to_paths, paths_to_lines
from .task_widget import report_box

__all__ = ["CorrectionWidget", "layer_source", "layer_model_version"]

LINES_3D = "3D lines"


def layer_source(layer) -> str | None:
    """The file a layer came from (napari's ``source.path`` or the metadata's ``source``/``path``)."""
    if layer is None:
        return None
    path = getattr(getattr(layer, "source", None), "path", None)
    if path:
        return str(path)
    meta = layer.metadata or {}
    inputs = (meta.get("provenance") or {}).get("inputs") or {}
    return meta.get("source") or meta.get("path") or inputs.get("left")


def instance_layer_for(layers, image_name: str):
    """The instance Labels layer the Detect dock made for the image ``image_name`` (one id per dislocation), or None."""
    for layer in layers:
        meta = getattr(layer, "metadata", None) or {}
        if meta.get("kind") == "stereo-tem instances" and meta.get("image") == image_name:
            return layer
    return None


def layer_model_version(layers) -> str | None:
    """The detector/matcher versions recorded in the provenance of a reconstruction's layers."""
    for layer in layers:
        prov = (getattr(layer, "metadata", None) or {}).get("provenance") or {}
        names = [(prov.get(k) or {}).get("version") for k in ("detector", "matcher")]
        names = [n for n in names if n]
        if names:
            return " + ".join(names)
    return None


def _polylines_work(sides):
    """Skeleton branches of each side's mask: a progress generator returning ``[(side, paths)]``."""
    done = []
    for k, (side, mask) in enumerate(sides):
        lines = skeleton_branches(mask)
        done.append((side, [line[:, ::-1] for line in lines]))  # (x, y) -> (row, col)
        yield Progress(k + 1, len(sides), f"skeleton {side}")
    return done


def _polyline_layers(done) -> list:
    """In the worker thread: the 'polylines left/right' Shapes layers, meshes made."""
    from napari.layers import Shapes

    return [Shapes(paths, shape_type="path", edge_width=1, edge_color="cyan" if side == "left" else "magenta",
                   ndim=2, name=f"polylines {side}") for side, paths in done]


def _nullable(annotation, label):
    return create_widget(annotation=annotation, label=label, options={"nullable": True})


class CorrectionWidget(Container):
    """Correct lines (link, shift in depth) and add the corrected labels to a training set."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self._viewer = viewer
        #: 3D lines (x, y, z) whose depth the user fixed here (linked or shifted), for this left view.
        self.known_lines: list[np.ndarray] = []
        self.left_image = create_widget(annotation=napari.layers.Image, label="left view")
        self.right_image = _nullable(napari.layers.Image, "right view")
        self.left_labels = create_widget(annotation=napari.layers.Labels, label="left labels")
        self.right_labels = _nullable(napari.layers.Labels, "right labels")
        self.angle = FloatSpinBox(value=8.0, min=0.1, max=60.0, step=0.1, label="stereo angle (deg)")
        self.polylines_button = PushButton(text="Polylines from labels")
        self.left_lines = _nullable(napari.layers.Shapes, "left polylines")
        self.right_lines = _nullable(napari.layers.Shapes, "right polylines")
        self.left_id = SpinBox(value=-1, min=-1, max=100000, label="left line #", tooltip="-1: the selected path")
        self.right_id = SpinBox(value=-1, min=-1, max=100000, label="right line #", tooltip="-1: the selected path")
        self.link_button = PushButton(text="Link left line to right line")
        self.dz = FloatSpinBox(value=5.0, min=-1e4, max=1e4, step=0.5, label="depth shift (px)")
        self.shift_button = PushButton(text="Shift selected 3D lines in depth")
        self.set_dir = FileEdit(mode="d", label="training set", value=str(Path.home() / "stereo-tem-training-set"))
        self.add_button = PushButton(text="Add to training set")
        self.report = report_box()
        self._task = None
        self.extend([self.left_image, self.right_image, self.left_labels, self.right_labels, self.angle,
                     self.polylines_button, self.left_lines, self.right_lines, self.left_id, self.right_id,
                     self.link_button, self.dz, self.shift_button, self.set_dir, self.add_button, self.report])
        self.polylines_button.changed.connect(self.polylines_from_labels)
        self.link_button.changed.connect(self.link)
        self.shift_button.changed.connect(self.shift_depth)
        self.add_button.changed.connect(self.add_to_training_set)
        self.left_image.changed.connect(self._from_metadata)
        self.left_image.changed.connect(lambda *_: self.known_lines.clear())  # corrections belong to one image
        self.reset_choices()
        self._pick_defaults()
        self._from_metadata()

    # -- helpers ----------------------------------------------------------------
    def _pick_defaults(self) -> None:
        names = {layer.name: layer for layer in self._viewer.layers}
        for widget, name in ((self.left_image, "rectified left"), (self.right_image, "rectified right"),
                             (self.left_labels, "dislocations left"), (self.right_labels, "dislocations right"),
                             (self.left_lines, "polylines left"), (self.right_lines, "polylines right")):
            if name in names:
                widget.value = names[name]

    def _from_metadata(self, *_) -> None:
        layer = self.left_image.value
        if layer is None:
            return
        meta = layer.metadata or {}
        angle = meta.get("stereo_angle_deg") or (meta.get("provenance") or {}).get("stereo_angle_deg")
        if angle:
            self.angle.value = float(angle)

    def _axis_col(self) -> float:
        layer = self.left_image.value
        return (np.asarray(layer.data).shape[-1] - 1) / 2.0 if layer is not None else 0.0

    def _set_layer(self, data, attrs, kind):
        name = attrs["name"]
        if name in self._viewer.layers:
            self._viewer.layers.remove(name)
        return getattr(self._viewer, f"add_{kind}")(data, **attrs)

    @staticmethod
    def _pick(layer, index: int, side: str) -> np.ndarray:
        if layer is None:
            raise InputError(f"choose the {side} polylines layer (make it with 'Polylines from labels')")
        if index < 0:
            chosen = sorted(layer.selected_data)
            if len(chosen) != 1:
                raise InputError(f"select exactly one path in '{layer.name}' ({len(chosen)} selected), "
                                 f"or give its number as '{side} line #'")
            index = chosen[0]
        if index >= len(layer.data):
            raise InputError(f"'{layer.name}' has {len(layer.data)} paths; there is no path #{index}")
        vertices = np.asarray(layer.data[index], dtype=float)[:, -2:]  # (row, col)
        return vertices[:, ::-1]  # (x, y)

    # -- actions ----------------------------------------------------------------
    def polylines_from_labels(self, *_) -> BackgroundTask | None:
        """Make the 'polylines left/right' Shapes layers from the Labels (dislocation = label 1).

        The skeletons and the paths' meshes are made in a worker thread; the
        layers are added when it ends. Returns the task (``None`` without labels).
        """
        sides = [(side, np.asarray(labels.data) == 1)
                 for side, labels in (("left", self.left_labels.value), ("right", self.right_labels.value))
                 if labels is not None]
        if not sides:
            show_error("choose the left (and right) labels to make polylines from")
            return None
        self.polylines_button.enabled = False
        self.report.value = "making polylines..."
        self._task = BackgroundTask(_polylines_work(sides), self._show_polylines, description="polylines",
                                    in_worker=_polyline_layers, show_bar=False, error_panel=self.report,
                                    on_finished=lambda: setattr(self.polylines_button, "enabled", True))
        return self._task.start()

    def _show_polylines(self, layers):
        for layer in layers:
            side = "left" if layer.name.endswith("left") else "right"
            if layer.name in self._viewer.layers:
                self._viewer.layers.remove(layer.name)
            self._viewer.layers.append(layer)
            combo = self.left_lines if side == "left" else self.right_lines
            combo.reset_choices()
            combo.value = self._viewer.layers[layer.name]
            yield layer.name
        self.report.value = ", ".join(f"{layer.name}: {len(layer.data)} paths" for layer in layers)

    def link(self, *_) -> np.ndarray | None:
        """Link the chosen left path to the chosen right path; returns the new 3D line (x, y, z)."""
        try:
            left = self._pick(self.left_lines.value, self.left_id.value, "left")
            right = self._pick(self.right_lines.value, self.right_id.value, "right")
            line, matches = link_lines(left, right, self.angle.value, axis_col=self._axis_col())
        except InputError as err:
            show_error(str(err))
            return None
        replaced = self._put_3d_line(line)
        self.known_lines.append(line)
        self.report.value = (f"linked: {len(line)} rows, disparity {matches[:, 2].min():.1f} to "
                             f"{matches[:, 2].max():.1f} px; " + ("replaced 3D line #%d" % replaced
                                                                   if replaced is not None else "added a 3D line"))
        return line

    def _put_3d_line(self, line: np.ndarray) -> int | None:
        """Replace the 3D line the left view sees at the same place, else add it."""
        if LINES_3D not in self._viewer.layers:
            self._set_layer(*lines_layer([line], name=LINES_3D))
            return None
        layer = self._viewer.layers[LINES_3D]
        lines, replaced = replace_or_add_line(paths_to_lines(layer.data), line, self.angle.value,
                                              axis_col=self._axis_col())
        layer.data = lines_to_paths(lines)
        return replaced

    def shift_depth(self, *_) -> list:
        """Shift the selected paths of the 3D lines layer by the depth shift (left view kept)."""
        if LINES_3D not in self._viewer.layers or not self._viewer.layers[LINES_3D].selected_data:
            show_error(f"select one or more paths in the '{LINES_3D}' layer first (it is hidden after a "
                       "reconstruction: tick its eye, then select paths with the layer's select tool)")
            return []
        layer = self._viewer.layers[LINES_3D]
        chosen = sorted(layer.selected_data)
        lines = paths_to_lines(layer.data)
        moved = []
        for k in chosen:
            lines[k] = shift_line_depth(lines[k], self.dz.value, stereo_angle_deg=self.angle.value, keep="left")
            moved.append(lines[k])
        layer.data = lines_to_paths(lines)
        layer.selected_data = set(chosen)
        self.known_lines.extend(moved)
        self.report.value = f"shifted {len(moved)} line(s) by {self.dz.value:g} px in depth"
        return moved

    def add_to_training_set(self, *_) -> Path | None:
        """Write the views, the corrected labels and the known disparities as a new entry."""
        left, labels = self.left_image.value, self.left_labels.value
        if left is None or labels is None:
            show_error("choose the left view and its (corrected) labels")
            return None
        right, right_labels = self.right_image.value, self.right_labels.value
        left_data = np.asarray(left.data)
        mask = np.asarray(labels.data)
        if (labels.metadata or {}).get("kind") == "stereo-tem instances":   # the instances chosen as labels
            instances, mask = mask, (mask > 0).astype(np.uint8)
        else:
            found = instance_layer_for(self._viewer.layers, left.name)
            instances = None if found is None else np.asarray(found.data)
        disparity = None
        if right is not None and self.known_lines:
            disparity = disparity_labels(left_data.shape, self.known_lines, self.angle.value,
                                         axis_col=self._axis_col(), mask=mask)
        pixel = (left.metadata or {}).get("pixel_size_nm") or \
            ((left.metadata or {}).get("provenance") or {}).get("pixel_size_nm")
        sources = {"left": layer_source(left)}
        if right is not None:
            sources["right"] = layer_source(right)
        try:
            path = add_entry(self.set_dir.value, left_data, mask, instances_left=instances,
                             right=None if right is None else np.asarray(right.data),
                             mask_right=None if right is None or right_labels is None else np.asarray(right_labels.data),
                             disparity_left=disparity, source=sources, stereo_angle_deg=self.angle.value,
                             pixel_size_nm=pixel,
                             model_version=layer_model_version([left, labels, *self._viewer.layers]),
                             extra={"layers": {"left": left.name, "labels": labels.name,
                                               "right": getattr(right, "name", None)},
                                    "corrected_lines": len(self.known_lines)})
        except InputError as err:
            show_error(str(err))
            return None
        self.report.value = f"added {path.name} to {path.parent}"
        show_info(f"added {path.name} to the training set {path.parent}")
        return path
