"""Dock widget: dislocations tracked through an in-situ movie (the ``stereo-tem track`` command in napari).

Layer in (a stack of frames, as a movie opens: a multi-page TIFF, a video, a microscope
movie), one core call (:func:`napari_stereo_tem.stereo.tracking.iter_track_lines`: drift,
detection frame by frame, instances, links; in a worker thread with progress per frame and
Cancel), layers out: a Tracks layer lying on the frames (each frame's drift put back), with
length and speed as features (nm and nm/s where the movie's pixel size and frame interval are
known), and in the dock the speed and length over time of the longest-lived tracks and a summary.
"""

from __future__ import annotations

import napari
import numpy as np
from magicgui.widgets import ComboBox, Container, FloatSpinBox, LineEdit, SpinBox, create_widget

from ..checks import InputError
from .choosing import keep_default, stack_problem
from .detect_widget import CONTRASTS
from .layers import is_truth_layer, tracks_layer
from .notify import show_error_in
from .reconstruct_widget import place_layers
from .task_widget import TaskWidget, in_worker

__all__ = ["TrackWidget", "movie_problem", "track_stage"]


def movie_problem(layer) -> str | None:
    """Why an image layer cannot be tracked through, or ``None`` when it can."""
    return stack_problem(layer, what="the movie (a stack of frames)", item="frame",
                         how="open the movie as one stack (a multi-page TIFF, a video, a microscope movie or a "
                             "folder of images)")


def track_stage(report) -> tuple[str, int, int]:
    """What runs after a report of ``iter_track_lines``: detection frame by frame, the drift, the links."""
    total, done = max(int(report.total), 1), int(report.done)
    if report.stage == "detect frames":
        if done < total:
            return f"detecting frame {done + 1} of {total}", done + 1, total
        return "drift between frames", 0, total
    if report.stage == "drift":
        if done < total:
            return f"drift between frames ({done + 1} of {total})", done + 1, total
        return "linking lines into tracks", 0, 1
    if report.stage == "link" and done < total:
        return "linking lines into tracks", 0, 1
    return "showing the result", 1, 1


def _plot_pixels(rows: list[dict], physical: bool) -> np.ndarray:
    """Speed and length over time of the tracks seen longest, in the Tracks layer's colours, as RGBA pixels.

    Drawn by matplotlib's own Agg canvas (no Qt): it runs in the worker thread, not the window's.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..stereo.track_plot import draw_tracks, track_colors

    figure = Figure(figsize=(3.6, 3.6), dpi=90, layout="constrained")
    canvas = FigureCanvasAgg(figure)
    draw_tracks(figure, rows, physical=physical, max_tracks=8, legend=False, stacked=True,
                colors=track_colors(r["track_id"] for r in rows))  # as the Tracks layer draws them
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def _report(result, median) -> str:
    """The dock's summary of a tracking result (``median``: :func:`~napari_stereo_tem.stereo.tracking.median_speed`)."""
    n_long, speed, speed_nm_s = median
    text = f"{speed:.2f} px/frame" if speed is not None else "n/a"
    if speed_nm_s is not None:
        text += f" ({speed_nm_s:.3g} nm/s)"
    drift = float(np.hypot(*result.drift[-1]))
    skipped = result.settings.get("skipped_frames") or []
    note = (f"; skipped {len(skipped)} frame(s) showing nothing new (" +
            ", ".join(f"{s['frame']}: {s['why']}" for s in skipped[:5]) + ")") if skipped else ""
    return (f"{result.n_frames} frames, {result.n_tracks} tracks ({n_long} seen in 3 frames or more), median speed "
            f"{text}, drift {drift:.1f} px in all{note}; {sum(result.seconds.values()):.1f} s. The plot shows the "
            "tracks seen longest; every track is in the layer's features (File > Save Selected Layers: tracks.csv).")


class TrackWidget(TaskWidget):
    """Track the dislocations of the chosen movie."""

    describe_progress = staticmethod(track_stage)

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(viewer, run_text="Track dislocations", description="track")
        self.movie = create_widget(annotation=napari.layers.Image, label="movie")
        self.frames = LineEdit(value="", label="frames",
                               tooltip="START:STOP[:STEP] (from 0, STOP not included), e.g. ::5 for every fifth "
                                       "frame of a long movie; empty: all")
        self.max_distance = FloatSpinBox(value=10.0, min=0.5, max=500.0, step=1.0, label="max move (px)",
                                         tooltip="largest move of a line between two linked frames, drift removed")
        self.gap_frames = SpinBox(value=1, min=0, max=20, label="gap frames",
                                  tooltip="frames a line may be missed and still be linked")
        self.min_length = FloatSpinBox(value=8.0, min=1.0, max=500.0, step=1.0, label="min length (px)",
                                       tooltip="shorter line branches are not tracked")
        self.instances = ComboBox(choices=["ridges", "skeleton"], value="ridges", label="lines from",
                                  tooltip="ridges of the probability map (one per dislocation, even inside pile-ups) "
                                          "or skeleton branches")
        self.contrast = ComboBox(choices=list(CONTRASTS), value="auto", label="contrast")
        self.pixel_size = FloatSpinBox(value=0.0, min=0.0, max=1e4, step=0.01, label="pixel size (nm)",
                                       tooltip="0 = unknown (px only); filled from the movie's file where it "
                                               "records it")
        self.frame_interval = FloatSpinBox(value=0.0, min=0.0, max=1e4, step=0.001, label="frame interval (s)",
                                           tooltip="seconds between frames (1/fps); 0 = unknown (px/frame only); "
                                                   "filled from the movie's file where it records it")
        from qtpy.QtCore import Qt
        from qtpy.QtWidgets import QLabel

        self.plot = QLabel()  # the plot drawn in the worker thread (matplotlib off the UI thread), shown as a picture
        self.plot.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.plot.setVisible(False)
        plot_box = Container(labels=False)
        plot_box.native.layout().addWidget(self.plot)
        self.extend([self.movie, self.frames, self.max_distance, self.gap_frames, self.min_length, self.instances,
                     self.contrast, self.pixel_size, self.frame_interval, *self.controls(), plot_box])
        self.movie.changed.connect(self._calibration_from_metadata)
        keep_default(self, self.movie, lambda layers: next(
            (layer for layer in layers if not is_truth_layer(layer) and movie_problem(layer) is None), None))
        self._calibration_from_metadata()

    def _calibration_from_metadata(self, *_) -> None:
        """The chosen movie's pixel size and frame interval, where its metadata has them (else left as set)."""
        meta = (self.movie.value.metadata or {}) if self.movie.value is not None else {}
        for field, key in ((self.pixel_size, "pixel_size_nm"), (self.frame_interval, "frame_interval_s")):
            if meta.get(key):
                field.value = float(meta[key])

    def make_work(self):
        from ..stereo.frame_stack import parse_frames

        layer = self.movie.value
        problem = movie_problem(layer)
        if problem is not None:
            show_error_in(problem, self.report)
            return None
        try:
            selection = parse_frames(self.frames.value.strip() or None)
        except InputError as err:
            show_error_in(str(err), self.report)
            return None
        self._name = layer.name
        self._calibration = {"pixel_size_nm": self.pixel_size.value or None,
                             "frame_interval_s": self.frame_interval.value or None}
        self._scale = tuple(layer.scale)
        return in_worker("stereo.tracking:iter_track_lines", layer.data, max_distance=self.max_distance.value,
                         gap_frames=self.gap_frames.value, min_length=self.min_length.value,
                         contrast=CONTRASTS[self.contrast.value], instances=self.instances.value, frames=selection,
                         name=f"'{layer.name}'")

    def prepare_result(self, result):
        """In the worker thread: the table of the tracks and their Tracks layer."""
        from napari.layers import Layer

        from ..stereo.tracking import in_physical_units, median_speed, track_rows, track_summary

        rows, added = in_physical_units(track_rows(result), **self._calibration)
        report = _report(result, median_speed(in_physical_units(track_summary(result), **self._calibration)[0]))
        drift = {int(k): (float(d[0]), float(d[1])) for k, d in zip(result.frame_numbers, result.drift)}
        if not rows:
            return report, [], None
        table = {key: np.array([r[key] for r in rows], dtype=float) for key in rows[0]}
        data, attrs, kind = tracks_layer(table, name=f"{self._name} tracks", drift=drift, scale=self._scale,
                                         metadata={"movie": self._name, "settings": result.settings,
                                                   "calibration": self._calibration})
        return report, [Layer.create(data, attrs, kind)], _plot_pixels(rows, "velocity_x_nm_s" in added)

    def show_result(self, prepared):
        from qtpy.QtGui import QImage, QPixmap

        report, layers, pixels = prepared
        yield from place_layers(self._viewer, layers)
        if pixels is not None:
            height, width = pixels.shape[:2]
            self._pixels = np.ascontiguousarray(pixels)  # QImage reads this buffer: it must outlive the pixmap's copy
            image = QImage(self._pixels.data, width, height, 4 * width, QImage.Format.Format_RGBA8888)
            self.plot.setPixmap(QPixmap.fromImage(image))
        self.plot.setVisible(pixels is not None)
        self.report.value = report
