"""Dock widget: dislocations in one image (the ``stereo-tem detect`` command in napari).

Layer in (an image), one core call (:func:`napari_stereo_tem.stereo.detect.iter_detect_lines`,
off the UI thread with progress and Cancel), layers out: an editable Labels
layer (1 dislocation, 2 distractor), an editable Labels layer of instances (one
id per dislocation, lines of a pile-up kept apart:
:func:`napari_stereo_tem.stereo.instances.line_instances`) and a Shapes layer of
the centrelines (one path per skeleton branch).
"""

from __future__ import annotations

import napari
import numpy as np
from magicgui.widgets import ComboBox, FloatSpinBox, create_widget

from ..images import grey_levels
from .choosing import keep_default
from .layers import is_truth_layer
from .notify import show_error_in
from .reconstruct_widget import image_problem, place_layers
from .task_widget import TaskWidget, in_worker

__all__ = ["DetectWidget", "detection_layers", "detect_stage", "instance_features"]

CONTRASTS = {"auto": "auto", "bright field (dark lines)": "bright_field", "dark field (bright lines)": "dark_field"}


def detection_layers(result, *, name: str, metadata=None, instances=None) -> list:
    """Layer-data tuples of a :class:`~napari_stereo_tem.stereo.detect.LineDetection`: Labels, then Shapes paths.

    With ``instances`` (a :class:`~napari_stereo_tem.stereo.instances.LineInstances`),
    a second Labels layer ``"<name> instances"`` (one id per dislocation) comes after the labels.
    """
    meta = {"kind": "stereo-tem detection", "settings": result.settings, **(metadata or {})}
    paths = [np.ascontiguousarray(line[:, ::-1]) for line in result.lines if len(line) >= 2]
    layers = [(result.labels, {"name": f"{name} labels", "metadata": meta}, "labels")]
    if instances is not None:
        layers.append((instances.labels, {"name": f"{name} instances", "features": instance_features(instances),
                                          "metadata": {**meta, "kind": "stereo-tem instances",
                                                       "instances": instances.settings,
                                                       "n_instances": instances.n_instances}}, "labels"))
    layers.append((paths, {"name": f"{name} lines", "shape_type": "path", "edge_color": "red", "edge_width": 1.5,
                           "metadata": meta}, "shapes"))
    return layers


def instance_features(instances) -> dict:
    """The Labels features of instances: per id its spline length, curvature and spacing to parallel neighbours."""
    from ..stereo.line_geometry import line_geometry

    rows = line_geometry(instances.lines)
    table = {"index": np.arange(len(rows) + 1)}
    for key in ("length", "mean_curvature", "max_curvature", "neighbour_spacing"):
        table[key] = np.array([np.nan] + [row[key] for row in rows], float)   # row 0: the background
    return table


def detect_stage(report) -> tuple[str, int, int]:
    """What runs after a report of ``iter_detect_lines``: its three stages, the detector tile by tile."""
    if report.stage == "decide contrast and scale":
        return "detector, tile 1", 2, 3
    if report.stage == "detect" and report.done < report.total:
        return f"detector, tile {report.done + 1} of {report.total}", 2, 3
    if report.stage == "detect":
        return "skeleton", 3, 3
    return "showing the result", 3, 3


class DetectWidget(TaskWidget):
    """Detect dislocations in the chosen image."""

    stages = ("decide contrast and scale", "detector", "skeleton")
    describe_progress = staticmethod(detect_stage)

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(viewer, run_text="Detect dislocations", description="detect")
        self.image = create_widget(annotation=napari.layers.Image, label="image")
        self.contrast = ComboBox(choices=list(CONTRASTS), value="auto", label="contrast")
        self.scale = FloatSpinBox(value=0.0, min=0.0, max=4.0, step=0.05, label="resize factor",
                                  tooltip="0 = automatic: the image is shrunk until its lines look as wide as "
                                          "the detector expects; 1 = as is")
        self.threshold = FloatSpinBox(value=0.0, min=0.0, max=1.0, step=0.05, label="threshold",
                                      tooltip="0 = the model's recommended probability threshold")
        self.extend([self.image, self.contrast, self.scale, self.threshold, *self.controls()])
        keep_default(self, self.image, lambda layers: next(
            (layer for layer in layers if not is_truth_layer(layer) and image_problem(layer) is None), None))

    def make_work(self):
        layer = self.image.value
        if layer is None:
            show_error_in("choose an image layer to detect dislocations in", self.report)
            return None
        problem = image_problem(layer)
        if problem is not None:
            show_error_in(problem.replace("one 2D image per view", "a single 2D image"), self.report)
            return None
        self._name = layer.name
        self._layer_scale = tuple(layer.scale)[-2:]  # a one-frame stack: its image's scale
        return in_worker("stereo.detect:iter_detect_lines", grey_levels(layer.data),
                         contrast=CONTRASTS[self.contrast.value], scale=self.scale.value or "auto",
                         threshold=self.threshold.value or None)

    def prepare_result(self, result):
        """In the worker thread: the Labels and Shapes layers, meshes included."""
        from napari.layers import Layer

        from ..stereo.instances import line_instances

        found = line_instances(result.probability[0], threshold=result.settings["threshold"],
                               scale=result.settings["scale"])
        tuples = detection_layers(result, name=self._name, metadata={"image": self._name}, instances=found)
        return result, found, [Layer.create(data, {**attrs, "scale": self._layer_scale}, kind)
                               for data, attrs, kind in tuples]

    def show_result(self, prepared):
        from ..stereo.detection import ignored_share  # (torch is loaded by now: the worker ran the detector)

        result, found, layers = prepared
        yield from place_layers(self._viewer, layers)
        s = result.settings
        note = ignored_share(s)
        ignored = f"; {note}" if note else ""
        self.report.value = (f"{len(result.lines)} line branches, {found.n_instances} dislocation instances; "
                             f"{s['contrast'].replace('_', ' ')}, "
                             f"resized x{s['scale']:g} for detection{ignored}; {result.seconds:.1f} s")
