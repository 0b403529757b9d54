"""Dock widget: reconstruct the 3D dislocation lines of a stereo pair.

Layers in (two images, by default the layers whose ``stereo_role`` is left and
right; optionally two Points layers of clicked correspondences), one core call
(:func:`napari_stereo_tem.stereo.pipeline.reconstruct_stereo`, imported and run in
a worker thread, with the stage running now, n of N and the time so far in the
dock, and Cancel), layers out (built in the worker, added one per turn of the
event loop): the rectified views, an editable Labels layer per view, the 3D
lines as a Shapes layer of paths (hidden: the layer that is edited, saved and
used by the other docks) and the same lines cut into segments coloured by depth
along their length (a Vectors layer, with a colour bar in the dock). A known
tilt axis, shift or pair of tilts (asymmetric pairs, specimen frame) are passed
on as they are.
"""

from __future__ import annotations

import sys
from typing import Optional

import napari
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, LineEdit, create_widget

from ..checks import InputError, parse_numbers
from ..images import grey_levels
from .layers import DEPTH_LAYER_SUFFIX, depth_range, depth_segments_layer, is_truth_layer, lines_layer, paths_to_lines
from .task_widget import TaskWidget, worker_threads

__all__ = ["ReconstructWidget", "reconstruction_layers", "format_report", "clicked_pairs", "parse_two",
           "pick_stereo_pair", "image_problem", "place_layers", "update_in_place", "STAGES"]

#: The stages of ``reconstruct_stereo`` in order (``stereo.pipeline.STAGES``; importing the
#: pipeline imports torch, which the dock does not wait for).
STAGES = ("load", "rectify", "detect", "match", "refine", "triangulate")
LINES = "3D lines"


def _devices(*_) -> list[str]:
    # torch is imported by the warm-up thread; until it is (the module can be there half
    # imported, without its ``cuda``), only the CPU is offered
    cuda = getattr(sys.modules.get("torch"), "cuda", None)
    try:
        return ["cpu", "cuda"] if cuda is not None and cuda.is_available() else ["cpu"]
    except Exception:  # noqa: BLE001 - torch still being imported
        return ["cpu"]


def image_problem(layer) -> str | None:
    """Why an image layer cannot be one view of a stereo pair, or ``None`` when it can."""
    if layer is None:
        return "choose a left and a right image layer"
    meta = layer.metadata or {}
    if layer.ndim == 4 or meta.get("fourdstem") is not None or meta.get("kind") == "4D-STEM":
        return (f"'{layer.name}' is a 4D-STEM dataset; make a stereo pair from it first with "
                "Plugins > Stereo TEM > Virtual detectors (place two discs, then 'use as stereo pair')")
    single = layer.ndim == 3 and not getattr(layer, "rgb", False) and layer.data.shape[0] == 1
    if single:  # one image saved as a one-frame stack: read as that image (images.grey_levels)
        return None
    if layer.ndim == 3 and not getattr(layer, "rgb", False):
        return (f"'{layer.name}' is a stack of {layer.data.shape[0]} images; choose one 2D image per view "
                "(right-click the layer > Split Stack), or reconstruct a whole tilt series pair by pair in "
                "Plugins > Stereo TEM > Tilt series (or 'stereo-tem reconstruct --series FILE --angle STEP -o DIR')")
    if layer.ndim != 2:  # an RGB layer is 2D (its colours are read as grey levels)
        return f"'{layer.name}' has {layer.ndim} dimensions; choose one 2D image per view"
    return None


def _role(layer):
    return (layer.metadata or {}).get("stereo_role")


def pick_stereo_pair(layers) -> tuple:
    """The default (left, right) among image layers: by ``stereo_role`` metadata, else by name, else in order.

    A sample's ground-truth layers, layers that cannot be a view (4D, RGB) and
    results of a reconstruction (the rectified views) are never chosen, and left
    and right are never the same layer; ``None`` where there is no candidate.
    """
    candidates = [layer for layer in layers if isinstance(layer, napari.layers.Image)
                  and not is_truth_layer(layer) and image_problem(layer) is None
                  and "provenance" not in (layer.metadata or {})]

    def by(test):
        found = [layer for layer in candidates if test(layer)]
        return found[-1] if found else None  # the latest added

    left = by(lambda l: _role(l) == "left") or by(lambda l: "left" in l.name.lower())
    right = by(lambda l: _role(l) == "right" and l is not left) or \
        by(lambda l: "right" in l.name.lower() and l is not left)
    rest = [layer for layer in candidates if layer is not left and layer is not right]
    if left is None and rest:
        left = rest.pop(0)
    if right is None and rest:
        right = rest.pop(0)
    return left, right


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


def format_report(result, *, unit: str = "px", scale: float = 1.0) -> str:
    """The result for the user, one fact a line: rectification, lines, depth range, timings."""
    out = []
    rect = result.rectification
    if rect and rect.get("summary"):
        out.append(rect["summary"])
    elif rect:
        theta = rect.get("theta_deg")
        shift = rect.get("translation") or rect.get("translation_px") or (float("nan"), float("nan"))
        out.append(f"rectified: theta {theta:.2f} deg, shift ({shift[0]:.2f}, {shift[1]:.2f}) px, "
                   f"{rect.get('n_inliers')} inliers, residual dy {rect.get('residual_vertical_px', float('nan')):.2f} px")
    else:
        out.append("not rectified (the views were taken as they are)")
    defects = (result.provenance or {}).get("camera_defects", {}).get("note")
    if defects:
        out.append(defects)
    lengths = [float(np.linalg.norm(np.diff(np.asarray(line), axis=0), axis=1).sum()) for line in result.lines]
    out.append(f"{len(result.lines)} lines, total length {sum(lengths) * scale:.0f} {unit}")
    if len(result.lines):
        low, high = depth_range(result.lines)
        out.append(f"depth z from {low * scale:.1f} to {high * scale:.1f} {unit}")
    if result.timings:
        out.append("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items()))
    return "\n".join(out)


def reconstruction_layers(result, *, scale=None) -> list:
    """Layer-data tuples for a :class:`~napari_stereo_tem.stereo.pipeline.StereoReconstruction`.

    The 3D lines come twice: ``"3D lines"``, the Shapes paths that are edited,
    saved and given to the other widgets (hidden), and ``"3D lines (depth)"``, the
    same lines cut into segments coloured by depth along their length (shown).
    """
    meta = {"provenance": result.provenance, "rectification": result.rectification}
    common = {} if scale is None else {"scale": scale}
    scale3 = None if scale is None else (scale[0], *scale)
    unit = "nm" if scale is not None else "px"
    layers = [
        (result.left, {"name": "rectified left", "colormap": "gray", "metadata": meta, **common}, "image"),
        (result.right, {"name": "rectified right", "colormap": "gray", "metadata": meta, "visible": False,
                        **common}, "image"),
        (result.labels_left.astype("uint8"), {"name": "dislocations left", "opacity": 0.5, **common}, "labels"),
        (result.labels_right.astype("uint8"), {"name": "dislocations right", "opacity": 0.5, "visible": False,
                                               **common}, "labels"),
        lines_layer(result.lines, name=LINES, scale=scale3, metadata=meta, visible=False,
                    depth_std=result.line_depth_std),
        depth_segments_layer(result.lines, name=LINES + DEPTH_LAYER_SUFFIX, scale=scale3, unit=unit,
                             metadata={"lines_layer": LINES}, depth_std=result.line_depth_std),
    ]
    if len(result.matches):
        # Each match as a segment from its left to its right keypoint, over the rectified
        # left view: after rectification they are horizontal (the disparity).
        segments = [np.array([[m[1], m[0]], [m[3], m[2]]]) for m in result.matches]
        layers.append((segments, {"name": "rectification matches", "shape_type": "line", "edge_color": "lime",
                                  "edge_width": 1, "visible": False, "metadata": meta, **common}, "shapes"))
    return layers


def place_layers(viewer, layers):
    """Put ready-made layers into the viewer, replacing those of the same name; a generator, one layer a step.

    A layer of the same name, kind and dimensionality is updated in place when
    napari can take the new content without a new layer (see :func:`update_in_place`),
    which keeps the user's display settings and spares napari a new layer's
    controls and drawing program and the removal of the old one (a full garbage
    collection each); other layers are replaced at the same place in the list.
    """
    for layer in layers:
        old = viewer.layers[layer.name] if layer.name in viewer.layers else None
        if old is None:
            viewer.layers.append(layer)
        elif not update_in_place(old, layer):
            index = viewer.layers.index(old)
            viewer.layers.remove(old)
            viewer.layers.insert(index, layer)
        yield layer.name


def update_in_place(old, new) -> bool:
    """Give ``old`` the content of ``new`` (same kind and dimensionality); ``False`` where it cannot.

    Images and labels take the data, metadata and contrast; vectors (the depth
    view) the segments, their colours, width and features, when it is shown, the
    scale is the same and neither is empty. Shapes are not updated in place: napari would mesh every path again on
    the UI thread, where the new layer was meshed in the worker.
    """
    from napari.layers import Image, Labels, Vectors

    if old.__class__ is not new.__class__ or old.ndim != new.ndim:
        return False
    if isinstance(new, (Image, Labels)):
        old.metadata = new.metadata
        old.data = new.data
        if isinstance(new, Image):
            old.contrast_limits_range = new.contrast_limits_range
            old.contrast_limits = new.contrast_limits
        return True
    if isinstance(new, Vectors) and _slices_now(old) and np.allclose(old.scale, new.scale) \
            and len(old.data) and len(new.data):
        old.metadata = new.metadata
        old.data = new.data
        old.refresh()  # napari slices the new segments now: the colours below must meet them, not the old ones
        old.features = new.features
        old.edge_color = new.edge_color
        old.edge_width = new.edge_width
        return True
    return False


def _slices_now(layer) -> bool:
    """Whether ``layer.refresh()`` slices it at once (shown, napari's slicing not asynchronous)."""
    from napari.settings import get_settings

    return bool(layer.visible) and not get_settings().experimental.async_


def _reconstruct_in_worker(left, right, **options):
    # The pipeline (and torch) are imported here, in the worker thread.
    from ..stereo.pipeline import reconstruct_stereo

    return (yield from reconstruct_stereo(left, right, **options))


class ReconstructWidget(TaskWidget):
    """Reconstruct: stereo pair -> rectified views, labels and 3D lines coloured by depth."""

    stages = STAGES

    def __init__(self, viewer: napari.viewer.Viewer):
        from .colorbar import DepthColorBar

        super().__init__(viewer, run_text="Reconstruct", description="reconstruct")
        self._picking = False
        self._chosen_by_user = False
        self._scale = None
        self._camera_set = True
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
        self.device = ComboBox(choices=_devices, label="device")
        self.extend([self.left, self.right, self.angle, self.tilts, self.frame, self.pixel_size, self.swap,
                     self.rectify, self.axis_known, self.tilt_axis, self.shift, self.clicked_left, self.clicked_right,
                     self.device, *self.controls()])
        self.colour_bar = DepthColorBar()
        self.native.layout().addWidget(self.colour_bar)
        self.left.changed.connect(self._angle_from_metadata)
        self.left.changed.connect(self._user_choice)
        self.right.changed.connect(self._user_choice)
        viewer.dims.events.ndisplay.connect(self._first_3d_view)
        self.reset_choices()
        self._angle_from_metadata()  # the first choice is made before the signal is connected

    # -- choosing the pair -------------------------------------------------------
    def reset_choices(self, *args) -> None:
        super().reset_choices(*args)
        if hasattr(self, "right"):
            self._pick_pair()

    def _user_choice(self, *_) -> None:
        if not self._picking:
            self._chosen_by_user = True

    def _pick_pair(self) -> None:
        """Default views from the layers' ``stereo_role``; a valid choice is kept.

        The views are chosen again only when the current choice is not a pair (a view
        missing, one layer twice) or, unless the user chose them, when a pair tagged
        with ``stereo_role`` appears and the current views are not tagged.
        """
        left, right = self.left.value, self.right.value
        valid = left is not None and right is not None and left is not right
        if valid and (self._chosen_by_user or (_role(left) == "left" and _role(right) == "right")):
            return
        new_left, new_right = pick_stereo_pair(self._viewer.layers)
        if valid and not (_role(new_left) == "left" and _role(new_right) == "right"):
            return
        if (new_left, new_right) == (left, right) or new_left is None:
            return
        self._picking = True
        try:
            self.left.value = new_left
            if new_right is not None:
                self.right.value = new_right
        finally:
            self._picking = False
        self._chosen_by_user = False

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
            # disparities are horizontal, and a pair marked rectified (the synthetic
            # sample) is already aligned: rectification has nothing to do.
            if "rotation_deg" in layer.metadata or layer.metadata.get("rectified"):
                self.rectify.value = False

    # -- the work ---------------------------------------------------------------
    def _refuse(self, message: str) -> None:
        from .notify import toast_text

        napari.utils.notifications.show_error(toast_text(message))
        self.report.value = message  # in full, where the toast points

    def make_work(self):
        """The reconstruction of the chosen pair (``None``, with a message, if the pair cannot be used)."""
        left, right = self.left.value, self.right.value
        for layer in (left, right):
            problem = image_problem(layer)
            if problem is not None:
                self._refuse(problem)
                return None
        if left is right:
            self._refuse(f"'{left.name}' is chosen as both views; choose the left and the right view of the pair "
                         "(the depth would come out flat)")
            return None
        if left.data.shape == right.data.shape and np.array_equal(np.asarray(left.data), np.asarray(right.data)):
            self._refuse(f"'{left.name}' and '{right.name}' hold the same image: the views are identical; "
                         "choose the two views of the pair")
            return None
        try:
            options = self.alignment_options()
        except InputError as err:
            self._refuse(str(err))
            return None
        self._scale = (self.pixel_size.value,) * 2 if self.pixel_size.value else None
        return _reconstruct_in_worker(
            grey_levels(left.data), grey_levels(right.data), pixel_size=self.pixel_size.value or None,
            swap=self.swap.value, rectify=self.rectify.value, device=self.device.value, n_threads=worker_threads(),
            **options,
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

    def prepare_result(self, result):
        """In the worker thread: the result's layers, built (meshes, colours) before they reach the UI."""
        from napari.layers import Layer

        made = [Layer.create(data, attrs, kind) for data, attrs, kind in reconstruction_layers(result, scale=self._scale)]
        return result, made

    def show_result(self, prepared):
        """A generator: one layer per turn of the event loop, then the report (see ``BackgroundTask``)."""
        result, layers = prepared
        yield from place_layers(self._viewer, layers)
        size = self.pixel_size.value or None
        unit = "nm" if size else "px"
        self.report.value = format_report(result, unit=unit, scale=size or 1.0)
        bar = self._viewer.layers[LINES + DEPTH_LAYER_SUFFIX].metadata["depth_colour_bar"]
        self.colour_bar.set_range(bar["low"], bar["high"], bar["unit"])
        self._link_depth_view()
        self._camera_set = False
        if self._viewer.dims.ndisplay == 3:
            self._first_3d_view()

    def _link_depth_view(self) -> None:
        """Keep the depth view following the lines when they are edited (correction widget, by hand)."""
        lines = self._viewer.layers[LINES]
        scale3 = None if self._scale is None else (self._scale[0], *self._scale)

        def follow(*_):
            name = LINES + DEPTH_LAYER_SUFFIX
            if name not in self._viewer.layers:
                return
            from napari.layers import Vectors

            data, attrs, _ = depth_segments_layer(paths_to_lines(lines.data), scale=scale3, unit=self._unit(),
                                                  metadata={"lines_layer": LINES},
                                                  visible=self._viewer.layers[name].visible)
            for _ in place_layers(self._viewer, [Vectors(data, **attrs)]):
                pass

        lines.events.data.connect(follow)

    def _unit(self) -> str:
        return "nm" if self._scale is not None else "px"

    def _first_3d_view(self, *_) -> None:
        """The first time the viewer shows 3D after a reconstruction: an oblique view of the whole model."""
        if self._camera_set or self._viewer.dims.ndisplay != 3 or LINES + DEPTH_LAYER_SUFFIX not in self._viewer.layers:
            return
        self._camera_set = True
        self._viewer.reset_view()
        self._viewer.camera.angles = (-20.0, 30.0, 70.0)
