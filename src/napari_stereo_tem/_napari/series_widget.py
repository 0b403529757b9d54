"""Dock widget: 3D dislocation lines from a tilt series (the ``stereo-tem reconstruct --series`` command in napari).

Layer in (a stack of views in tilt order, as a TIFF or MRC tilt series opens), one
core call (:func:`napari_stereo_tem.stereo.series.reconstruct_series`: one tilt axis
for all adjacent pairs, found from all of them together or given, then every pair
reconstructed with it; in a worker thread with progress per pair and Cancel),
layers out: per adjacent pair its 3D lines as Shapes paths (hidden, the layer that
is edited and saved) and as segments coloured by depth (shown), named after the
pair (``views_00-01``). The report gives the common axis, each pair's own axis,
shift and lines, and every warning.
"""

from __future__ import annotations

import napari
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, LineEdit, create_widget

from ..checks import InputError, parse_numbers
from .choosing import keep_default, stack_problem
from .layers import DEPTH_LAYER_SUFFIX, depth_segments_layer, is_truth_layer, lines_layer
from .notify import show_error_in
from .reconstruct_widget import _devices, place_layers
from .task_widget import TaskWidget, in_worker, worker_threads

__all__ = ["SeriesWidget", "series_layers", "series_report", "series_problem", "series_stage"]


def series_problem(layer) -> str | None:
    """Why an image layer cannot be a tilt series, or ``None`` when it can."""
    return stack_problem(layer, what="the tilt series (a stack of views in tilt order)", item="view",
                         how="open the tilt series as one stack (a multi-page TIFF or an MRC file), or use the "
                             "Reconstruct dock for a single pair")


def series_stage(report) -> tuple[str, int, int]:
    """What runs after a report of ``reconstruct_series``: the alignment, then pair by pair."""
    total = max(int(report.total), 1)
    if report.stage == "align the series" and report.done == 0:
        return "aligning all pairs together (the common tilt axis)", 1, total
    step = min(int(report.done) + 1, total)
    if report.stage.startswith("reconstruct ") and report.done < report.total:
        return f"{report.stage} ({step} of {total})", step, total
    return "showing the result", total, total


def series_layers(series, *, name: str) -> list:
    """Layer-data tuples of a :class:`~napari_stereo_tem.stereo.series.SeriesReconstruction`: per reconstructed
    pair, its 3D lines as Shapes paths (hidden) and as depth-coloured segments (shown)."""
    from ..stereo.series import pair_name

    layers = []
    record = series.record()
    for k, result in enumerate(series.results):
        if result is None:
            continue
        title = f"{name} {pair_name(k)}"
        meta = {"provenance": result.provenance, "rectification": result.rectification,
                "tilt_series": {key: value for key, value in record.items() if key != "pairs"},
                "pair": record["pairs"][k]}
        layers.append(lines_layer(result.lines, name=f"{title} 3D lines", metadata=meta, visible=False,
                                  depth_std=result.line_depth_std))
        layers.append(depth_segments_layer(result.lines, name=f"{title} 3D lines{DEPTH_LAYER_SUFFIX}",
                                           metadata={"lines_layer": f"{title} 3D lines"},
                                           depth_std=result.line_depth_std))
    return layers


def series_report(series) -> str:
    """The result for the user: the common axis and how it was found, each pair's lines, warnings and errors."""
    out = []
    if series.alignment is not None:
        out.append(series.alignment.summary())
    else:
        out.append(f"tilt axis given: {series.tilt_axis_deg:.3f} deg from vertical")
    for entry in series.record()["pairs"]:
        tilts = ", ".join(f"{t:g}" for t in entry["tilts_deg"])
        if "error" in entry:
            out.append(f"{entry['folder']} (tilts {tilts} deg): FAILED: {entry['error']}")
            continue
        out.append(f"{entry['folder']} (tilts {tilts} deg): {entry['n_lines']} lines, {entry['n_points']} points")
        out.extend(f"WARNING ({entry['folder']}): {warning}" for warning in entry["warnings"])
    return "\n".join(out)


class SeriesWidget(TaskWidget):
    """Reconstruct every adjacent pair of a tilt series with one tilt axis."""

    describe_progress = staticmethod(series_stage)

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(viewer, run_text="Reconstruct the tilt series", description="tilt series")
        self.stack = create_widget(annotation=napari.layers.Image, label="tilt series")
        self.step = FloatSpinBox(value=0.0, min=0.0, max=90.0, step=0.5, label="tilt step (deg)",
                                 tooltip="degrees between adjacent views (the views about zero tilt); "
                                         "0 = give every view's tilt below")
        self.tilts = LineEdit(value="", label="tilts (deg)",
                              tooltip="one tilt per view, in the stack's order, e.g. -24, -12, 0, 12, 24 "
                                      "(asymmetric steps allowed, any order: the views are sorted by tilt; "
                                      "overrides the step); filled from the .rawtlt/.tlt file beside a stack "
                                      "opened from a file")
        self.axis_known = CheckBox(value=False, text="tilt axis known")
        self.tilt_axis = FloatSpinBox(value=0.0, min=-90.0, max=90.0, step=0.1, label="tilt axis (deg)",
                                      tooltip="from the microscope's calibration: degrees off the image's vertical; "
                                              "unticked, it is found from all pairs together")
        self.rectify_anyway = CheckBox(value=False, text="go on when the axis is unsure (loud warnings)")
        self.device = ComboBox(choices=_devices, label="device")
        self.extend([self.stack, self.step, self.tilts, self.axis_known, self.tilt_axis, self.rectify_anyway,
                     self.device, *self.controls()])
        keep_default(self, self.stack, lambda layers: next(
            (layer for layer in layers if not is_truth_layer(layer) and series_problem(layer) is None), None))
        self.stack.changed.connect(self._tilts_from_file)
        self._tilts_from_file(self.stack.value)

    def _tilts_from_file(self, layer) -> None:
        """Fill the tilts from the tilt file beside the stack's file (IMOD, SerialEM), when the field is empty."""
        from pathlib import Path

        from ..stereo.series import read_tilt_file, tilt_file_beside

        source = getattr(layer, "metadata", {}).get("source") if layer is not None else None
        path = tilt_file_beside(source) if source and not self.tilts.value.strip() else None
        if path is not None and Path(source).is_file():
            try:
                tilts = read_tilt_file(path, layer.data.shape[0])
            except InputError as err:
                self.report.value = str(err)
                return
            self.tilts.value = ", ".join(f"{t:g}" for t in tilts)
            self.report.value = f"tilts from {path.name}"

    def tilts_of(self, n_views: int) -> tuple[list, list]:
        """Every view's tilt from the fields, increasing, and the stack's views in that order
        (:func:`~napari_stereo_tem.stereo.series.tilts_in_order`)."""
        from ..stereo.series import series_tilts, tilts_in_order

        text = self.tilts.value.strip()
        if text:
            return tilts_in_order(n_views, parse_numbers(text, name="tilts", count=None, example="-24, -12, 0, 12, 24"))
        if not self.step.value:
            raise InputError("give the tilt step between adjacent views, or every view's tilt")
        return series_tilts(n_views, step_deg=self.step.value), list(range(n_views))

    def make_work(self):
        layer = self.stack.value
        problem = series_problem(layer)
        if problem is not None:
            show_error_in(problem, self.report)
            return None
        try:
            tilts, order = self.tilts_of(layer.data.shape[0])
        except InputError as err:
            show_error_in(str(err), self.report)
            return None
        self._name = layer.name
        frames = np.asarray(layer.data, dtype=np.float32)[order]  # in tilt order
        return in_worker("stereo.series:reconstruct_series", frames, tilts_deg=tilts, device=self.device.value,
                         tilt_axis_deg=self.tilt_axis.value if self.axis_known.value else None,
                         strict_rectify=not self.rectify_anyway.value, n_threads=worker_threads())

    def prepare_result(self, series):
        """In the worker thread: every pair's layers, built (meshes, colours) before they reach the UI."""
        from napari.layers import Layer

        return series, [Layer.create(data, attrs, kind) for data, attrs, kind in series_layers(series, name=self._name)]

    def show_result(self, prepared):
        series, layers = prepared
        yield from place_layers(self._viewer, layers)
        self.report.value = series_report(series)
        if self._viewer.dims.ndisplay == 3:
            self._viewer.reset_view()  # the lines' depth comes into the view
