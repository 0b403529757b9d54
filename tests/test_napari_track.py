"""The Track dock: a movie layer in, a Tracks layer on its frames and a plot out; bad layers named."""

import numpy as np
import pytest

from napari_stereo_tem.stereo.tracking import track_lines
from napari_stereo_tem.synth.timeseries import make_time_series


@pytest.fixture(scope="module")
def series():
    return make_time_series(3, shape=(128, 128), n_frames=5)


def _dock(viewer):
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Track dislocations (in-situ movie)")
    return widget


def test_the_dock_tracks_a_movie_layer_like_the_core(make_napari_viewer, wait_finished, series):
    viewer = make_napari_viewer()
    viewer.add_image(series.frames[0], name="one frame")
    viewer.add_image(series.frames, name="movie", scale=(1.0, 0.5, 0.5),
                     metadata={"pixel_size_nm": 0.5, "frame_interval_s": 0.2})
    widget = _dock(viewer)
    assert widget.movie.value.name == "movie"   # the stack, not the single image, by default
    task = widget.start()
    assert task is not None
    wait_finished(task)
    assert task.error is None, task.error
    layer = viewer.layers["movie tracks"]
    assert type(layer).__name__ == "Tracks"
    core = track_lines(series.frames)
    data = np.asarray(layer.data)
    assert len(np.unique(data[:, 0])) == core.n_tracks
    # on the frames: each point at its instance's position in that frame's image (drift put back)
    image_xy = {(i["frame"], round(i["x_image"], 3), round(i["y_image"], 3)) for i in core.instances}
    assert all((int(t), round(x, 3), round(y, 3)) in image_xy for _, t, y, x in data)
    assert tuple(layer.scale) == (1.0, 0.5, 0.5)
    speed = layer.features["speed"].to_numpy()
    np.testing.assert_allclose(layer.features["speed_nm_s"].to_numpy(), speed * 0.5 / 0.2, equal_nan=True)
    assert "tracks" in widget.report.value and "nm/s" in widget.report.value
    assert widget.pixel_size.value == pytest.approx(0.5) and widget.frame_interval.value == pytest.approx(0.2)
    assert not widget.plot.isHidden()
    pixmap = widget.plot.pixmap()   # speed and length over time, drawn in the worker thread
    assert pixmap is not None and pixmap.width() > 200 and pixmap.height() > 200
    colours = {pixmap.toImage().pixelColor(x, y).name() for x in range(0, pixmap.width(), 4)
               for y in range(0, pixmap.height(), 4)}
    assert len(colours) > 10   # curves and axes, not a blank picture


def test_a_movie_without_calibration_takes_it_from_the_dock(make_napari_viewer, wait_finished, series):
    viewer = make_napari_viewer()
    viewer.add_image(series.frames, name="movie")   # a TIFF movie records neither pixel size nor frame time
    widget = _dock(viewer)
    assert widget.pixel_size.value == 0 and widget.frame_interval.value == 0
    widget.frames.value = "0:3"
    wait_finished(widget.start())
    assert "nm/s" not in widget.report.value and "speed_nm_s" not in viewer.layers["movie tracks"].features
    widget.pixel_size.value, widget.frame_interval.value = 0.4, 0.1
    wait_finished(widget.start())
    layer = viewer.layers["movie tracks"]
    assert "nm/s" in widget.report.value
    np.testing.assert_allclose(layer.features["speed_nm_s"].to_numpy(), layer.features["speed"].to_numpy() * 4.0,
                               equal_nan=True)


def test_the_dock_names_what_is_wrong(make_napari_viewer, series):
    viewer = make_napari_viewer()
    viewer.add_image(series.frames[0], name="one frame")
    widget = _dock(viewer)
    assert widget.movie.value is None or widget.movie.value.name == "one frame"
    widget.movie.value = viewer.layers["one frame"]
    assert widget.start() is None and "not a stack of 2D frames" in widget.report.value
    viewer.add_image(series.frames, name="movie")
    widget.movie.value = viewer.layers["movie"]
    widget.frames.value = "4:1"
    assert widget.start() is None and "STOP (1) must be after START (4)" in widget.report.value


def test_cancel_stops_the_tracking(make_napari_viewer, wait_finished, qtbot, series):
    viewer = make_napari_viewer()
    viewer.add_image(np.concatenate([series.frames] * 4), name="long movie")
    widget = _dock(viewer)
    task = widget.start()
    qtbot.waitUntil(lambda: "detecting frame" in widget.progress.widgets[0].value
                    or "frame" in str(getattr(widget.progress, "_now", "")), timeout=60_000)
    widget.cancel()
    wait_finished(task)
    assert task.cancelled and "long movie tracks" not in viewer.layers
    assert widget.run_button.enabled
