"""Dock widget: virtual detectors on a 4D-STEM dataset, live.

Layers in (a 4D image layer, as the reader and the sample make it), core calls
(:mod:`napari_stereo_tem.fourdstem`), layers out:

- ``mean pattern``: the mean diffraction pattern; the direct-beam disc found on it
  (``direct beam``, a Shapes ellipse) calibrates ``mrad/px`` with the convergence
  semi-angle;
- ``detector discs``: a Points layer in detector pixels ``(ky, kx)``, ``size = 2 r``.
  Drag a point: ``virtual k`` shows a fast preview while it moves, and the exact
  image of every disc (one pass over the data, off the UI thread) once it stops;
- the stereo angle between discs 0 and 1, live, in degrees;
- ``Mirror``, ``Radius sweep`` and ``Use as stereo pair`` (``left``/``right``
  rotated so that disparities run along ``+x``, with ``stereo_angle_deg``;
  composed by :func:`~napari_stereo_tem.fourdstem.iter_virtual_stereo_pair`,
  the call ``stereo-tem virtual --pair`` makes).

The mean pattern and the exact images run on the chosen executor (threads, or
a dask scheduler address); the exact images appear band by band as they complete.
A mean pattern without a clear direct disc is refused: no calibration, no
stereo angle, and a warning.
"""

from __future__ import annotations

import napari
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, LineEdit, PushButton
from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QTimer

from ..checks import InputError, parse_numbers
from ..fourdstem import (
    Disc,
    calibrate,
    estimate_scan_rotation,
    iter_patterns,
    iter_virtual_images,
    iter_virtual_stereo_pair,
    mirror_disc,
    mrad_per_px,
    open_4dstem,
    preview_virtual_image,
    stereo_angle_deg,
)
from .background import BackgroundTask
from .notify import report_input_errors
from .progress_panel import ProgressPanel
from .task_widget import wrapping_label

__all__ = ["VirtualDetectorWidget", "fourdstem_of", "discs_from_points"]

DISCS = "detector discs"
PATTERN = "mean pattern"
DIRECT = "direct beam"
#: Milliseconds without a move before the exact images are computed.
SETTLE_MS = 150


def fourdstem_of(layer):
    """The core ``FourDStem`` behind a 4D image layer (cached in its metadata)."""
    dataset = layer.metadata.get("fourdstem")
    if dataset is None:
        if layer.ndim != 4:
            raise InputError(f"layer {layer.name!r} is {layer.ndim}D; a 4D-STEM dataset is 4D "
                             "(scan_y, scan_x, det_y, det_x): open it with this plugin's reader")
        dataset = open_4dstem(layer.data)
        layer.metadata["fourdstem"] = dataset
    return dataset


def discs_from_points(layer) -> list[Disc]:
    """Discs ``(cy, cx, r)`` from a Points layer: the last two coordinates, radius ``size / 2``."""
    data = np.asarray(layer.data, dtype=float).reshape(len(layer.data), -1)
    sizes = np.broadcast_to(np.asarray(layer.size, dtype=float).reshape(len(data), -1)[:, -1], len(data))
    return [Disc(float(p[-2]), float(p[-1]), max(float(s) / 2.0, 0.5)) for p, s in zip(data, sizes)]


class VirtualDetectorWidget(Container):
    """Virtual detectors: mean pattern, draggable discs, live virtual images, stereo pair."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self._viewer = viewer
        self._direct: Disc | None = None
        self._discs: list[Disc] = []
        self._task: BackgroundTask | None = None
        self._task_description = ""
        self._result_shown = False  # an analysis' result is in the status line (kept until the discs change)
        self._timer = QTimer(self.native)  # deleted with the dock: never fires into deleted widgets
        self._timer.setSingleShot(True)
        self._timer.setInterval(SETTLE_MS)
        self._timer.timeout.connect(self.update_full)

        self.dataset = ComboBox(choices=self._fourd_layers, label="4D-STEM layer")
        self.mean_button = PushButton(text="Mean pattern")
        self.convergence = FloatSpinBox(value=20.0, min=0.01, max=500.0, step=0.1,
                                        label="convergence (mrad)", tooltip="probe convergence semi-angle")
        self.calibration = wrapping_label("calibration: compute the mean pattern")
        self.angle = wrapping_label("stereo angle: place two discs")
        self.mirror_axis = FloatSpinBox(value=0.0, min=-180.0, max=180.0, step=1.0, label="mirror axis (deg)",
                                        tooltip="direction of the mirror line through the direct beam, "
                                                "from +x towards +y (along the excited g)")
        self.mirror_point = CheckBox(value=False, text="mirror through the centre (point)")
        self.mirror_button = PushButton(text="Mirror selected disc")
        self.radii = LineEdit(value="2, 3, 4, 6", label="sweep radii (px)")
        self.sweep_button = PushButton(text="Radius sweep")
        self.scan_rotation = FloatSpinBox(value=0.0, min=-180.0, max=180.0, step=0.5, label="scan rotation (deg)")
        self.estimate_button = PushButton(text="Estimate scan rotation")
        self.pair_button = PushButton(text="Use as stereo pair")
        self.executor = LineEdit(value="threads", label="executor",
                                 tooltip="where passes over the data run: inline, threads, or a dask scheduler "
                                         "address (tcp://host:8786)")
        self.status = wrapping_label("")
        self.progress = ProgressPanel()  # the pass running now, n of N, elapsed: in the dock
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.extend([self.dataset, self.executor, self.mean_button, self.convergence, self.calibration, self.angle,
                     self.mirror_axis, self.mirror_point, self.mirror_button, self.radii, self.sweep_button,
                     self.scan_rotation, self.estimate_button, self.pair_button, *self.progress.widgets,
                     self.cancel_button, self.status])
        self.cancel_button.changed.connect(self.cancel)
        self.mean_button.changed.connect(self.compute_mean_pattern)
        self.dataset.changed.connect(self._dataset_changed)
        self.convergence.changed.connect(self._show_geometry)
        self.mirror_button.changed.connect(self.mirror)
        self.sweep_button.changed.connect(self.radius_sweep)
        self.estimate_button.changed.connect(self.estimate_rotation)
        self.pair_button.changed.connect(self.use_as_stereo_pair)
        from .views_panel import ViewsPanel  # ring of N discs -> fused 3D lines

        self.views = ViewsPanel(self)
        from .quadrants_panel import add_quadrants_panel  # four quadrants -> particles
        from .ranking_panel import add_ranking_panel  # rank detectors by a topological score

        self.quadrants = add_quadrants_panel(self)
        self.ranking = add_ranking_panel(self)
        self._calibration_from_metadata()

    # -- helpers ---------------------------------------------------------------
    def _fourd_layers(self, *_) -> list:
        return [(layer.name, layer) for layer in self._viewer.layers
                if isinstance(layer, napari.layers.Image) and (layer.ndim == 4 or "fourdstem" in layer.metadata)]

    def _dataset(self):
        layer = self.dataset.value
        if layer is None:
            raise InputError("no 4D-STEM layer: open a dataset (File > Open, or File > Open Sample > "
                             "Stereo TEM > Synthetic 4D-STEM) and choose it")
        return fourdstem_of(layer)

    def _dataset_changed(self, *_) -> None:
        """Another dataset: its discs' images and calibration are to be made anew."""
        self._timer.stop()
        self._direct = None
        self._discs = []
        for name in self._virtual_names():
            self._viewer.layers.remove(name)
        self._calibration_from_metadata()
        self._show_geometry()

    def _calibration_from_metadata(self, *_) -> None:
        layer = self.dataset.value
        if layer is not None and layer.metadata.get("convergence_mrad"):
            self.convergence.value = float(layer.metadata["convergence_mrad"])

    @property
    def discs_layer(self):
        return self._viewer.layers[DISCS] if DISCS in self._viewer.layers else None

    def _mrad_per_px(self) -> float | None:
        if self._direct is None:
            return None
        return mrad_per_px(self.convergence.value, self._direct)

    def _image_layer(self, name: str, data: np.ndarray, **attrs):
        if name in self._viewer.layers:
            layer = self._viewer.layers[name]
            layer.data = data
            return layer
        return self._viewer.add_image(data, name=name, colormap="gray", **attrs)

    def _start(self, work, on_result, description, on_progress=None):
        if self._task is not None and self._task.running:
            self._task.cancel()
        self.progress.start(first=description)
        self.cancel_button.enabled = True

        def progress(report):
            self.progress.update(report)
            if on_progress is not None:
                on_progress(report)

        task = BackgroundTask(work, on_result, description=description, on_progress=progress,
                              on_finished=lambda: self._finished(task, description), show_bar=False,
                              error_panel=self.status)
        self._task, self._task_description = task, description
        return task.start()

    def show_result(self, text: str) -> None:
        """An analysis' result in the status line, where the virtual images' own messages do not replace it."""
        self.status.value = text
        self._result_shown = True

    def _say(self, text: str) -> None:
        """A message of the virtual images, unless an analysis' result for these discs is showing."""
        if not self._result_shown:
            self.status.value = text

    def _finished(self, task, description: str) -> None:
        # queued from the worker: the dock may be closed, or a newer pass may have taken over
        try:
            if task is not self._task:
                return
            self.cancel_button.enabled = False
            outcome = "failed" if task.error is not None else ("cancelled" if task.cancelled else "done")
            self.progress.finish(f"{description}: {outcome}")
        except RuntimeError as err:  # "wrapped C/C++ object ... has been deleted"
            if "deleted" not in str(err):
                raise

    def cancel(self, *_) -> None:
        """Stop the pass running now (it stops between two bands of the data)."""
        if self._task is not None:  # also a pass whose worker thread has not started yet
            self._task.cancel()

    def _executor(self) -> str:
        return self.executor.value.strip() or "threads"

    # -- mean pattern and discs ---------------------------------------------------
    @report_input_errors()
    def compute_mean_pattern(self, *_):
        """Mean pattern as an image, direct beam found, two default discs placed inside it."""
        dataset = self._dataset()
        decision = dataset.metadata.get("axes_decision")
        if decision:
            self.status.value = f"axes: {decision['text']}"
        return self._start(iter_patterns(dataset, executor=self._executor()), self._show_patterns, "mean pattern")

    @report_input_errors()
    def _show_patterns(self, patterns):
        mean = np.asarray(patterns[0], dtype=np.float32)
        self._image_layer(PATTERN, mean)
        calibration = calibrate(mean)
        if calibration.refused:
            self._direct = None
            self._show_geometry()
            show_warning(calibration.refused + ". No stereo angle is computed.")
            self.calibration.value = "no clear direct beam: place the discs by hand; no stereo angle"
            return
        self._direct = calibration.direct
        d = self._direct
        # the four corners of the disc's bounding box (two points would be read as centre and radii)
        ellipse = np.array([[d.cy - d.radius, d.cx - d.radius], [d.cy - d.radius, d.cx + d.radius],
                            [d.cy + d.radius, d.cx + d.radius], [d.cy + d.radius, d.cx - d.radius]])
        if DIRECT in self._viewer.layers:
            self._viewer.layers.remove(DIRECT)
        self._viewer.add_shapes([ellipse], shape_type="ellipse", name=DIRECT, edge_color="cyan",
                                face_color="transparent", edge_width=0.3, metadata={"disc": d.to_dict()})
        if self.discs_layer is None or len(self.discs_layer.data) == 0:
            r = 0.35 * d.radius
            self.set_discs([Disc(d.cy, d.cx - 0.5 * d.radius, r), Disc(d.cy, d.cx + 0.5 * d.radius, r)])
        else:
            self._sync()  # discs kept from before: images of this dataset

    def set_discs(self, discs) -> None:
        """Replace the detector discs (creating the Points layer if needed)."""
        discs = list(discs)
        centres = np.array([[d.cy, d.cx] for d in discs], dtype=float).reshape(-1, 2)
        sizes = np.array([2.0 * d.radius for d in discs], dtype=float)
        layer = self.discs_layer
        if layer is None:
            layer = self._viewer.add_points(centres, size=sizes, name=DISCS, face_color="transparent",
                                            border_color="yellow", border_width=0.15,
                                            border_width_is_relative=True, ndim=2)
            layer.events.data.connect(self._on_data)
            layer.events.set_data.connect(self._on_moved)
            layer.events.size.connect(self._on_moved)
            layer.events.current_size.connect(self._on_moved)
            layer.mode = "select"
        else:
            layer.data = centres
            layer.size = sizes
        self._viewer.layers.selection.active = layer
        self._sync()

    def _on_data(self, event) -> None:
        if str(getattr(event, "action", "")) in ("changed", "added", "removed"):
            self._sync()

    def _on_moved(self, *_) -> None:
        """Any redraw of the discs layer (a drag, a resize): preview the discs that moved.

        napari blocks the data events while a point is dragged but redraws it at
        every mouse move, so the redraw is where the live preview hooks in; the
        exact images follow once nothing has moved for ``SETTLE_MS``.
        """
        layer = self.discs_layer
        if layer is None:
            return
        discs = discs_from_points(layer)
        if discs == self._discs:
            return
        if len(discs) != len(self._discs):
            self._sync()
            return
        changed = [i for i, (a, b) in enumerate(zip(discs, self._discs)) if a != b]
        self._discs = discs
        self._result_shown = False
        self.preview(changed)
        self._show_geometry()
        self._timer.start()

    @report_input_errors()
    def _sync(self) -> None:
        """The discs changed for good: layers per disc, geometry, exact images soon."""
        layer = self.discs_layer
        discs = discs_from_points(layer) if layer is not None else []
        self._discs = discs
        self._result_shown = False
        self._match_virtual_layers(len(discs))
        self._show_geometry()
        if discs:
            self._timer.start()

    # -- virtual images ---------------------------------------------------------
    def _virtual_names(self) -> list[str]:
        return [layer.name for layer in self._viewer.layers if layer.metadata.get("virtual_detector") is not None]

    def _match_virtual_layers(self, n: int) -> None:
        for name in self._virtual_names():
            if int(self._viewer.layers[name].metadata["virtual_detector"]) >= n:
                self._viewer.layers.remove(name)
        if n == 0 or self.dataset.value is None:
            return
        dataset = self._dataset()
        sy, sx = dataset.scan_shape
        det_x = dataset.detector_shape[1]
        added = False
        for k in range(n):
            name = f"virtual {k}"
            if name not in self._viewer.layers:
                # beside the pattern, so discs and images can be seen together
                self._viewer.add_image(np.zeros((sy, sx), np.float32), name=name, colormap="gray",
                                       translate=(0, det_x + 2 + k * (sx + 2)),
                                       metadata={"virtual_detector": k})
                added = True
        discs = self.discs_layer
        if added and discs is not None:  # keep the discs on top and ready to drag
            self._viewer.layers.move(self._viewer.layers.index(discs), len(self._viewer.layers))
            self._viewer.layers.selection.active = discs

    @report_input_errors()
    def preview(self, indices) -> None:
        """Fast approximate images of the discs ``indices`` (called while dragging)."""
        dataset = self._dataset()
        for k in indices:
            if f"virtual {k}" in self._viewer.layers:
                layer = self._viewer.layers[f"virtual {k}"]
                layer.data = preview_virtual_image(dataset, self._discs[k])
                layer.metadata["preview"] = True

    @report_input_errors()
    def update_full(self, *_):
        """Exact images of every disc, in one pass over the data, off the UI thread."""
        self._timer.stop()
        if not self._discs or self.dataset.value is None:
            return None
        if self._task is not None and self._task.running and self._task_description != "virtual images":
            self._timer.start()  # an analysis is running: the images are made after it, not instead of it
            return None
        discs = list(self._discs)
        dataset = self._dataset()
        images = np.zeros((len(discs), *dataset.scan_shape), dtype=np.float32)  # filled band by band
        rows = max(1, dataset.scan_shape[0] // 16)  # at least 16 bands: partial images worth showing
        work = iter_virtual_images(dataset, discs, executor=self._executor(), out=images, rows_per_task=rows)
        return self._start(work, lambda result: self._show_full(discs, result), "virtual images",
                           on_progress=lambda report: self._show_partial(discs, images, report))

    def _show_partial(self, discs, images, report) -> None:
        """Bands of the exact images as they complete (rows not yet done are 0)."""
        if discs != self._discs or report.done >= report.total:
            return
        for k in range(min(len(discs), images.shape[0])):
            name = f"virtual {k}"
            if name in self._viewer.layers:
                layer = self._viewer.layers[name]
                layer.data = images[k].copy()
                layer.metadata["preview"] = "partial"
        self._say(f"virtual images: {report.done}/{report.total} bands")

    def _show_full(self, discs, images) -> None:
        if discs != self._discs:  # moved while it ran: newer images are on their way
            return
        self._match_virtual_layers(len(discs))
        for k, (disc, image) in enumerate(zip(discs, images)):
            layer = self._viewer.layers[f"virtual {k}"]
            layer.data = image
            layer.metadata.update({"preview": False, "disc": disc.to_dict()})
            layer.reset_contrast_limits()
        self._say(f"{len(discs)} virtual image(s) up to date")

    # -- geometry -----------------------------------------------------------------
    def _show_geometry(self, *_) -> None:
        try:
            scale = self._mrad_per_px()
        except InputError as err:
            self.calibration.value = str(err)
            return
        if scale is None:
            self.calibration.value = "calibration: compute the mean pattern"
            return
        self.calibration.value = f"{scale:.4g} mrad/px (direct disc r = {self._direct.radius:.2f} px)"
        if len(self._discs) >= 2:
            angle = stereo_angle_deg(self._discs[0], self._discs[1], scale)
            self.angle.value = f"stereo angle (discs 0-1): {angle:.3f} deg"
        else:
            self.angle.value = "stereo angle: place two discs"

    def stereo_angle(self) -> float:
        """Stereo angle (degrees) between discs 0 and 1."""
        if len(self._discs) < 2:
            raise InputError("place at least two discs on the pattern to make a stereo pair")
        scale = self._mrad_per_px()
        if scale is None:
            raise InputError("calibrate first: press 'Mean pattern' so the direct beam is found")
        return stereo_angle_deg(self._discs[0], self._discs[1], scale)

    # -- actions ------------------------------------------------------------------
    @report_input_errors()
    def mirror(self, *_) -> None:
        """Add the counterpart of the selected disc (or disc 0) about the direct beam."""
        layer = self.discs_layer
        if layer is None or self._direct is None:
            raise InputError("press 'Mean pattern' first: mirroring is about the direct-beam centre")
        discs = discs_from_points(layer)
        selected = sorted(layer.selected_data)
        source = discs[selected[0]] if selected else discs[0]
        axis = None if self.mirror_point.value else self.mirror_axis.value
        new = mirror_disc(source, self._direct, axis)
        for k, disc in enumerate(discs):
            if np.hypot(disc.cy - new.cy, disc.cx - new.cx) < max(0.5, 0.25 * disc.radius):
                raise InputError(f"the mirror image of the disc falls on disc {k} (mirror axis "
                                 f"{'through the centre' if axis is None else f'{axis:g} deg'}): choose another axis "
                                 "or select another disc")
        self.set_discs([*discs, new])

    def _radii(self) -> list[float]:
        radii = parse_numbers(self.radii.value, name="sweep radii", example="4, 6, 8")
        if not radii or min(radii) <= 0:
            raise InputError(f"sweep radii must be positive numbers of pixels, got {self.radii.value!r}")
        return radii

    @report_input_errors()
    def radius_sweep(self, *_):
        """Images of the selected disc's centre (or disc 0's) at every sweep radius, one layer."""
        if not self._discs:
            raise InputError("place a disc first; the sweep keeps its centre and varies its radius")
        layer = self.discs_layer
        selected = sorted(layer.selected_data) if layer is not None else []
        centre = self._discs[selected[0] if selected else 0]
        discs = [Disc(centre.cy, centre.cx, r) for r in self._radii()]
        meta = {"radii": [d.radius for d in discs], "centre": [centre.cy, centre.cx], "kind": "virtual radius sweep"}

        def show(images):
            if "radius sweep" in self._viewer.layers:
                self._viewer.layers.remove("radius sweep")
            layer = self._viewer.add_image(images, name="radius sweep", colormap="gray", metadata=meta)
            # the stack shares the viewer's sliders with the 4D dataset: show its first radius, not a
            # slider position beyond its range (where it would be invisible)
            axis = self._viewer.dims.ndim - layer.ndim
            self._viewer.dims.set_current_step(axis, 0)

        return self._start(iter_virtual_images(self._dataset(), discs, executor=self._executor()), show,
                           "radius sweep")

    @report_input_errors()
    def estimate_rotation(self, *_) -> None:
        """Estimate the scan rotation from the images of discs 0 and 1."""
        if len(self._discs) < 2:
            raise InputError("place two discs to estimate the scan rotation")
        images = [self._viewer.layers[f"virtual {k}"].data for k in (0, 1)]
        # refused (an InputError shown in the dock) when the half-images disagree: nothing is applied then
        rotation, spread = estimate_scan_rotation(*images, self._discs[0], self._discs[1])
        self.scan_rotation.value = rotation
        show_info(f"scan rotation estimated: {rotation:.1f} deg (half-images agree within {spread:.1f} deg)")

    @report_input_errors()
    def use_as_stereo_pair(self, *_):
        """Discs 0 and 1 -> 'left'/'right' images rotated so that disparities are horizontal."""
        self.stereo_angle()  # refuses without two discs and a calibration
        left, right = self._discs[0], self._discs[1]
        provenance = {"convergence_mrad": self.convergence.value,
                      "source": str(self._dataset().metadata.get("source", ""))}
        work = iter_virtual_stereo_pair(self._dataset(), left, right, mrad_per_px=self._mrad_per_px(),
                                        scan_rotation_deg=self.scan_rotation.value, executor=self._executor(),
                                        provenance=provenance)

        def show(pair):
            for role, image in zip(("left", "right"), (pair.left, pair.right)):
                if role in self._viewer.layers:
                    self._viewer.layers.remove(role)
                self._viewer.add_image(image, name=role, colormap="gray",
                                       metadata={**pair.metadata, "stereo_role": role})
            self.status.value = f"stereo pair: {pair.stereo_angle_deg:.3f} deg, rotated by {pair.rotation_deg:.1f} deg"

        return self._start(work, show, "stereo pair")
