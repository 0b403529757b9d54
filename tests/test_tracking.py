"""In-situ time series: drift, instances, tracks, the synthetic series and the ``track`` command."""

import csv
import json

import numpy as np
import pytest
from scipy import ndimage

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.evaluation.tracks import score_tracks
from napari_stereo_tem.progress import Cancelled
from napari_stereo_tem.stereo.tracking import (
    TRACK_COLUMNS,
    estimate_drift,
    line_instances,
    link_instances,
    read_stack,
    track_lines,
    track_rows,
    track_summary,
)
from napari_stereo_tem.synth.timeseries import make_time_series


@pytest.fixture(scope="module")
def series():
    return make_time_series(3, shape=(128, 128), n_frames=7)


@pytest.fixture(scope="module")
def tracked(series):
    return track_lines(series.frames, max_distance=10.0)


def test_drift_recovered_on_a_shifted_stack():
    rng = np.random.default_rng(0)
    specimen = ndimage.gaussian_filter(rng.normal(size=(200, 200)), 2.0)
    truth = np.array([[0.0, 0.0], [1.5, -0.5], [3.2, -1.4], [4.0, -2.7], [2.5, -4.1]])
    frames = np.stack([ndimage.shift(specimen, (dy, dx), order=3)[40:168, 40:168] for dx, dy in truth])
    drift = estimate_drift(frames)
    assert drift.shape == (5, 2)
    np.testing.assert_allclose(drift, truth, atol=0.15)


def test_drift_of_large_frames_is_found_at_half_size_first(monkeypatch):
    """Frames of 512 px or more are correlated at half size, then uphill at full size: the same drift."""
    from napari_stereo_tem.stereo import drift as drift_module

    rng = np.random.default_rng(1)
    specimen = ndimage.gaussian_filter(rng.normal(size=(640, 640)), 2.0)
    truth = np.array([[0.0, 0.0], [13.4, -7.7], [9.1, 2.6]])
    frames = np.stack([ndimage.shift(specimen, (dy, dx), order=3)[40:600, 40:600] for dx, dy in truth])
    ignore = np.zeros(frames.shape, bool)
    ignore[:, 100:140, 50:500] = True  # a moving feature's pixels, left out
    assert min(frames.shape[1:]) >= drift_module.COARSE_SIDE
    coarse = estimate_drift(frames, ignore=ignore)
    np.testing.assert_allclose(coarse, truth, atol=0.15)
    monkeypatch.setattr(drift_module, "COARSE_SIDE", 10**6)
    np.testing.assert_allclose(estimate_drift(frames, ignore=ignore), coarse, atol=1e-9)


def test_drift_ignores_the_gliding_lines(series):
    moving = series.masks == 1
    with_mask = estimate_drift(series.frames, ignore=moving)
    assert np.abs(with_mask - series.drift).max() < 1.0
    # the gliding pile-up is the strongest feature: without the mask it drags the estimate along
    without = estimate_drift(series.frames)
    assert np.abs(without - series.drift).max() > 2 * np.abs(with_mask - series.drift).max()


def test_synthetic_series_truth(series):
    n = series.frames.shape[0]
    assert series.frames.shape == (n, 128, 128) and series.masks.shape == series.frames.shape
    assert np.allclose(series.drift[0], 0) and np.abs(np.diff(series.drift, axis=0)).max() > 0.3
    frames_of = [line["frames"] for line in series.lines]
    assert any(f[0] > 0 for f in frames_of), "one line appears part-way through"
    assert any(f[-1] < n - 1 for f in frames_of), "one line leaves before the end"
    for line in series.lines:
        centroids = np.asarray(line["centroids"])
        expected = centroids[0] + np.outer(np.asarray(line["frames"]) - line["frames"][0], line["velocity"])
        np.testing.assert_allclose(centroids, expected, atol=1e-6)
        for frame, curve in zip(line["frames"], line["curves"]):
            on_curve = np.round(curve).astype(int)
            inside = (on_curve[:, 0] >= 0) & (on_curve[:, 0] < 128) & (on_curve[:, 1] >= 0) & (on_curve[:, 1] < 128)
            assert (series.masks[frame][on_curve[inside, 1], on_curve[inside, 0]] == 1).mean() > 0.9
    again = make_time_series(3, shape=(128, 128), n_frames=7)
    np.testing.assert_array_equal(again.frames, series.frames)


def test_link_instances_follows_nearby_points():
    # two lines 12 px apart moving 3 px/frame; the second is missed in frame 2 (gap closing)
    frame = [0, 0, 1, 1, 2, 3, 3]
    x = [10, 22, 13, 25, 16, 19, 31]
    y = [5, 5, 5, 5, 5, 5, 5]
    ids = link_instances(frame, x, y, max_distance=5.0, gap_frames=1)
    assert list(ids) == [0, 1, 0, 1, 0, 0, 1]
    no_gap = link_instances(frame, x, y, max_distance=5.0, gap_frames=0)
    assert no_gap[-1] != no_gap[1]


def test_line_instances_drop_short_branches():
    lines = [np.column_stack([np.arange(30.0), np.full(30, 4.0)]), np.array([[0.0, 0.0], [3.0, 0.0]])]
    found = line_instances(lines, min_length=8.0)
    assert len(found) == 1
    assert found[0]["x"] == pytest.approx(14.5, abs=0.3) and found[0]["y"] == pytest.approx(4.0)
    assert found[0]["length"] == pytest.approx(29.0, rel=0.05)


def test_tracks_link_the_right_lines(series, tracked):
    score = score_tracks(tracked, series)
    assert score["detected"] >= 0.8
    assert score["link_accuracy"] >= 0.85
    assert score["frames_in_main_track"] >= 0.85
    assert score["drift_error"] < 1.5
    assert score["velocity_error"] < 0.8          # px/frame; the lines glide at about 2 px/frame
    assert score["speed_error_rel"] < 0.4


def test_line_displacement_is_the_motion_across_the_line():
    from napari_stereo_tem.stereo.line_motion import curve_displacement, curve_distance

    y = np.arange(0.0, 40.0)
    line = np.column_stack([10 + 0.004 * (y - 20) ** 2, y])      # a gently bowed line
    moved = line + [3.0, 0.0]
    shorter = moved[8:30]          # a branch that lost its ends: the centroid moves along the line, the line does not
    np.testing.assert_allclose(curve_displacement(line, shorter), [3.0, 0.0], atol=0.35)
    np.testing.assert_allclose(curve_displacement(shorter, line), [-3.0, 0.0], atol=0.35)
    assert curve_distance(line, moved) == pytest.approx(3.0, abs=0.35)
    assert curve_distance(line, shorter) < 4.0 < curve_distance(line, moved[15:22])   # a fragment is far
    assert curve_distance(line, line) == pytest.approx(0.0, abs=1e-9)


def test_track_rows_and_summary(tracked):
    rows = track_rows(tracked)
    assert rows and set(rows[0]) == set(TRACK_COLUMNS)
    summary = track_summary(tracked)
    assert sum(t["n_frames"] for t in summary) == len(rows) == len(tracked.instances)
    for track in summary:
        mine = [r for r in rows if r["track_id"] == track["track_id"]]
        assert [r["frame"] for r in mine] == sorted(r["frame"] for r in mine)
        assert (track["n_frames"] == 1) == np.isnan(mine[0]["velocity_x"])
    longest = max(summary, key=lambda r: r["n_frames"])
    mine = [r for r in rows if r["track_id"] == longest["track_id"]]
    # per-frame velocities average to about the track's fitted velocity
    assert np.mean([r["velocity_x"] for r in mine]) == pytest.approx(longest["velocity_x"], abs=0.5)
    assert tracked.drift.shape == (tracked.n_frames, 2)


def test_tracking_can_be_cancelled(series):
    reports = []

    def stop():
        return len(reports) >= 2

    with pytest.raises(Cancelled):
        track_lines(series.frames[:3], on_progress=reports.append, should_stop=stop)
    assert len(reports) == 2


def test_bad_stacks_are_refused(tmp_path):
    import tifffile

    with pytest.raises(InputError, match="single image"):
        read_stack(np.random.default_rng(0).random((64, 64)))
    single = tmp_path / "one.tif"
    tifffile.imwrite(single, np.random.default_rng(0).random((64, 64)).astype(np.float32))
    with pytest.raises(InputError, match="single image"):
        read_stack(single)
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"II*\x00 not really a tiff")
    with pytest.raises(InputError, match="could not read|no image data"):
        read_stack(broken)
    with pytest.raises(InputError, match="does not exist"):
        read_stack(tmp_path / "missing.tif")
    folder = tmp_path / "frames"
    folder.mkdir()
    tifffile.imwrite(folder / "f0.tif", np.random.default_rng(1).random((64, 64)).astype(np.float32))
    tifffile.imwrite(folder / "f1.tif", np.random.default_rng(2).random((64, 80)).astype(np.float32))
    with pytest.raises(InputError, match="differ in shape"):
        read_stack(folder)
    with pytest.raises(InputError, match="NaN"):
        read_stack(np.full((3, 32, 32), np.nan))


def test_stack_readers_agree(tmp_path, series):
    import imageio.v3 as iio
    import tifffile

    frames8 = np.round(series.frames[:3] * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "stack.tif", frames8)
    folder = tmp_path / "frames"
    folder.mkdir()
    for k, frame in enumerate(frames8):
        iio.imwrite(folder / f"frame_{k:03d}.png", frame)
    iio.imwrite(tmp_path / "stack.gif", frames8, loop=0)
    _save_movie(tmp_path / "stack.hspy", frames8)
    for source in (tmp_path / "stack.tif", folder, tmp_path / "stack.gif", tmp_path / "stack.hspy", frames8):
        stack = read_stack(source)
        assert stack.shape == (3, 128, 128) and stack.dtype == np.float32
        np.testing.assert_allclose(stack, frames8, atol=1)


def _save_movie(path, frames, *, interval_s=0.04, pixel_nm=0.5):
    """``frames`` saved as a microscope movie (a HyperSpy signal: one axis of frames, in seconds)."""
    import hyperspy.api as hs

    movie = hs.signals.Signal2D(frames)
    movie.metadata.General.title = "in situ"
    movie.axes_manager[0].scale, movie.axes_manager[0].units = interval_s, "s"
    for axis in movie.axes_manager.signal_axes:
        axis.scale, axis.units = pixel_nm, "nm"
    movie.save(path)


def test_a_microscope_movie_is_read_lazily_with_its_frame_time_and_pixel_size(tmp_path, series):
    """An in-situ movie as a microscope saves it (Gatan .dm4, Velox .emd, HyperSpy .hspy: one axis of frames)."""
    import hyperspy.api as hs

    from napari_stereo_tem.images import read_image_stack

    frames = series.frames[:5].astype(np.float32)
    _save_movie(tmp_path / "movie.hspy", frames)
    movie = read_image_stack(tmp_path / "movie.hspy")
    assert hasattr(movie.data, "dask") and movie.data.shape == (5, 128, 128)   # lazy: nothing read yet
    assert movie.frame_interval_s == pytest.approx(0.04) and movie.pixel_size_nm == pytest.approx(0.5)
    assert movie.title == "in situ"
    np.testing.assert_array_equal(read_stack(tmp_path / "movie.hspy", frames=slice(1, None, 2)), frames[1::2])
    hs.signals.Signal2D(np.zeros((3, 4, 16, 16))).save(tmp_path / "scan.hspy")     # a 4D-STEM scan
    with pytest.raises(InputError, match=r"scan.hspy holds no stack of 2D frames .*3 x 4 \| 16 x 16"):
        read_stack(tmp_path / "scan.hspy")
    hs.signals.Signal2D(np.zeros((16, 16))).save(tmp_path / "one.hspy")
    with pytest.raises(InputError, match="one.hspy holds no stack"):
        read_stack(tmp_path / "one.hspy")


def test_video_file_is_read(tmp_path, series):
    import cv2

    frames8 = np.round(series.frames[:4] * 255).astype(np.uint8)
    path = tmp_path / "in_situ.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (128, 128), False)
    for frame in frames8:
        writer.write(frame)
    writer.release()
    stack = read_stack(path)
    assert stack.shape == (4, 128, 128)
    assert np.mean(np.abs(stack - frames8)) < 12          # lossy (JPEG) frames, same content
    assert np.corrcoef(stack[2].ravel(), frames8[2].ravel())[0, 1] > 0.9


def test_cli_writes_its_files(tmp_path, series):
    import tifffile

    from napari_stereo_tem.cli import main

    stack = tmp_path / "series.tif"
    tifffile.imwrite(stack, series.frames[:4])
    out = tmp_path / "out"
    assert main(["track", str(stack), "-o", str(out), "--max-distance", "9", "--contrast", "bright"]) == 0
    with open(out / "tracks.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and tuple(rows[0]) == TRACK_COLUMNS
    assert {int(r["frame"]) for r in rows} == {0, 1, 2, 3}
    with open(out / "drift.csv") as handle:
        drift = list(csv.DictReader(handle))
    assert [int(r["frame"]) for r in drift] == [0, 1, 2, 3]
    measured = np.array([[float(r["dx"]), float(r["dy"])] for r in drift])
    assert np.abs(measured - series.drift[:4]).max() < 1.0
    assert (out / "tracks.png").stat().st_size > 1000
    record = json.loads((out / "track.json").read_text())
    assert record["settings"]["max_distance"] == 9.0
    assert record["settings"]["contrast"] == "bright_field"
    # the record names how lines were found; the lines themselves are in tracks.csv, not copied into it
    assert record["settings"]["instances"] == "ridges"
    assert record["n_frames"] == 4 and record["n_tracks"] == len({r["track_id"] for r in rows})
    # an existing result is refused, the folder left as it was
    assert main(["track", str(stack), "-o", str(out)]) == 1
    assert (out / "tracks.csv").exists()


def test_cli_tracks_every_other_frame_of_a_video(tmp_path, series, capsys):
    import imageio.v3 as iio

    from napari_stereo_tem.cli import main

    video = tmp_path / "in_situ.gif"
    iio.imwrite(video, np.round(series.frames * 255).astype(np.uint8), loop=0)
    out = tmp_path / "out"
    assert main(["track", str(video), "-o", str(out), "--frames", "::2"]) == 0
    with open(out / "tracks.csv") as handle:
        assert {int(r["frame"]) for r in csv.DictReader(handle)} <= {0, 2, 4, 6}
    with open(out / "drift.csv") as handle:
        assert [int(r["frame"]) for r in csv.DictReader(handle)] == [0, 2, 4, 6]
    record = json.loads((out / "track.json").read_text())
    assert record["n_frames"] == 4 and record["settings"]["frames"] == [None, None, 2]
    assert main(["track", str(video), "-o", str(tmp_path / "bad"), "--frames", "6:2"]) == 1
    assert "--frames: STOP (2) must be after START (6)" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_cli_gives_speeds_in_nm_per_second_when_the_movie_records_its_calibration(tmp_path, series, capsys):
    from napari_stereo_tem.cli import main

    _save_movie(tmp_path / "in_situ.hspy", series.frames.astype(np.float32), interval_s=0.5, pixel_nm=0.2)
    assert main(["track", str(tmp_path / "in_situ.hspy"), "-o", str(tmp_path / "out")]) == 0
    record = json.loads((tmp_path / "out" / "track.json").read_text())
    assert record["calibration"] == {"pixel_size_nm": pytest.approx(0.2), "frame_interval_s": pytest.approx(0.5)}
    printed = capsys.readouterr().out
    per_frame = float(printed.split("median speed ")[1].split(" px/frame")[0])
    per_second = float(printed.split(" px/frame (")[1].split(" nm/s")[0])
    assert per_second == pytest.approx(per_frame * 0.2 / 0.5, rel=0.01)
    with open(tmp_path / "out" / "tracks.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0])[:len(TRACK_COLUMNS)] == TRACK_COLUMNS
    moving = [r for r in rows if r["velocity_x"] not in ("", "nan")]
    assert moving and all(float(r["velocity_x_nm_s"]) == pytest.approx(float(r["velocity_x"]) * 0.4) and
                          float(r["length_nm"]) == pytest.approx(float(r["length"]) * 0.2) for r in moving)


def test_cli_takes_the_calibration_of_a_plain_movie_from_the_command_line(tmp_path, series, capsys):
    """A TIFF movie records no pixel size or frame rate: given on the command line, tracks.csv and the
    console carry nm and nm/s; a bad value is refused before any work."""
    import tifffile

    from napari_stereo_tem.cli import main

    stack = tmp_path / "series.tif"
    tifffile.imwrite(stack, series.frames[:4])
    assert main(["track", str(stack), "-o", str(tmp_path / "px")]) == 0
    with open(tmp_path / "px" / "tracks.csv") as handle:
        assert tuple(next(csv.DictReader(handle))) == TRACK_COLUMNS   # nothing known: px and px/frame only
    capsys.readouterr()
    assert main(["track", str(stack), "-o", str(tmp_path / "nm"), "--pixel-size", "0.5",
                 "--frame-interval", "0.04"]) == 0
    assert "nm/s: 0.5 nm/px, 0.04 s/frame given)" in capsys.readouterr().out
    with open(tmp_path / "nm" / "tracks.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert set(rows[0]) == set(TRACK_COLUMNS) | {"length_nm", "velocity_x_nm_s", "velocity_y_nm_s"}
    moving = [r for r in rows if r["velocity_y"] not in ("", "nan")]
    assert moving and all(float(r["velocity_y_nm_s"]) == pytest.approx(float(r["velocity_y"]) * 12.5)
                          for r in moving)
    record = json.loads((tmp_path / "nm" / "track.json").read_text())
    assert record["calibration_from"] == {"pixel_size_nm": "given", "frame_interval_s": "given"}
    assert all("speed_nm_s" in t for t in record["tracks"])
    assert main(["track", str(stack), "-o", str(tmp_path / "bad"), "--frame-interval", "0"]) == 1
    assert "--frame-interval must be a positive number" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def _two_movies(monkeypatch, tmp_path, series):
    """A Velox-like ``.emd`` holding a HAADF movie (64 px frames) and a bright-field one (the series), in that order."""
    import hyperspy.api as hs

    from napari_stereo_tem import images

    movies = []
    for title, frames in (("HAADF", np.random.default_rng(0).random((5, 64, 64)).astype(np.float32)),
                          ("BF", series.frames[:4].astype(np.float32))):
        movie = hs.signals.Signal2D(frames).as_lazy()
        movie.metadata.General.title = title
        movie.axes_manager[0].scale, movie.axes_manager[0].units = 0.25, "s"
        movies.append(movie)
    path = tmp_path / "in_situ.emd"
    path.write_bytes(b"not read: the reader is replaced")
    monkeypatch.setattr(images, "_signals", lambda p, lazy=False: movies)
    return path


def test_a_movie_of_a_file_holding_several_is_chosen_by_number_or_title(monkeypatch, tmp_path, series):
    from napari_stereo_tem.images import read_image_stack

    path = _two_movies(monkeypatch, tmp_path, series)
    first = read_image_stack(path)
    assert first.title == "HAADF" and first.others == ("BF",) and first.data.shape == (5, 64, 64)
    for choice in (1, "1", "BF", "bf", " BF "):
        chosen = read_image_stack(path, signal=choice)
        assert chosen.title == "BF" and chosen.others == ("HAADF",) and chosen.data.shape == (4, 128, 128)
    assert read_image_stack(path, signal="haa").title == "HAADF"  # a part of a title that names one
    for wrong, message in ((2, "there is no number 2"), ("F", "several are titled 'F'"),
                           ("EELS", "none is titled 'EELS'")):
        with pytest.raises(InputError, match=message) as caught:
            read_image_stack(path, signal=wrong)
        assert "0 'HAADF', 1 'BF'" in str(caught.value)


def test_cli_tracks_the_movie_chosen_and_names_the_others(monkeypatch, tmp_path, series, capsys):
    import tifffile

    from napari_stereo_tem.cli import main

    path = _two_movies(monkeypatch, tmp_path, series)
    assert main(["track", str(path), "-o", str(tmp_path / "bf"), "--signal", "BF"]) == 0
    printed = capsys.readouterr().out
    assert "holds 2 movies: tracked 'BF' (the others: 'HAADF'); --signal N|TITLE chooses another" in printed
    record = json.loads((tmp_path / "bf" / "track.json").read_text())
    assert record["shape"][-2:] == [128, 128] and record["n_frames"] == 4
    assert record["signal"] == {"title": "BF", "others": ["HAADF"]}
    assert record["calibration"]["frame_interval_s"] == pytest.approx(0.25)
    # a title that names none is refused before any work, with the list; so is --signal for a plain stack
    assert main(["track", str(path), "-o", str(tmp_path / "bad"), "--signal", "EELS"]) == 1
    assert "0 'HAADF', 1 'BF'" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    tifffile.imwrite(tmp_path / "plain.tif", series.frames[:3])
    assert main(["track", str(tmp_path / "plain.tif"), "-o", str(tmp_path / "bad"), "--signal", "1"]) == 1
    assert "is for microscope files that hold several" in capsys.readouterr().err


@pytest.mark.parametrize("seed", [300, 304])
def test_drift_holds_beside_gliding_lines_and_under_a_sweeping_bend_contour(seed):
    """Larger frames: the blurred edges of the gliding lines (just outside their masks) and a bend contour
    sweeping across a strained foil both moved on their own and pulled the drift (3.5 and 1.1 px off)."""
    from napari_stereo_tem.stereo.drift import estimate_drift
    from napari_stereo_tem.synth.timeseries import sweep_bend_contour

    series = make_time_series(seed, shape=(256, 256), n_frames=6)
    swept = sweep_bend_contour(series.frames, seed=seed, speed_px=12)
    assert np.abs(swept - series.frames).max() > 0.1 * series.frames.mean()   # the contour is there
    for frames in (series.frames, swept):
        drift = estimate_drift(frames, ignore=series.masks == 1)
        assert np.abs(drift - series.drift).max() < 0.6


def test_blank_and_noise_frames_are_found_and_only_those():
    """A blanked beam or a dropped frame (constant), a frame of noise, a frame the camera repeated: found
    wherever they are, in runs too; the frames of a clean series and of a noisy one are all kept."""
    from napari_stereo_tem.stereo.drift import unusable_frames
    from napari_stereo_tem.synth.timeseries import make_time_series

    frames = make_time_series(4, shape=(192, 192), n_frames=8).frames
    noise = np.random.default_rng(0).normal(frames.mean(), frames.std(), frames[:2].shape).astype(np.float32)
    assert unusable_frames(frames) == []
    for bad, fill, expected in (([3], frames.mean(), "blank"), ([7], 0.0, "blank"),
                                ([3], noise[:1], "unlike its neighbours"), ([0], noise[:1], "unlike its neighbours"),
                                ([4, 5], noise, "unlike its neighbours")):
        broken = frames.copy()
        broken[bad] = fill
        assert unusable_frames(broken) == [(k, expected) for k in bad]
    noisy = np.random.default_rng(1).poisson(20 * frames / frames.mean()).astype(np.float32)  # 20 counts/px
    assert unusable_frames(noisy) == []
    repeated = np.concatenate([frames[:4], frames[3:]])
    assert unusable_frames(repeated) == [(4, "a copy of the frame before")]


def test_tracking_skips_a_frame_of_noise_instead_of_losing_the_drift(tmp_path, series, capsys):
    """Frame 3 of noise (the beam blanked for one frame): it is skipped, the drift stays within a pixel of the
    truth (it jumped by 100 px at that frame before) and the lines are linked across it."""
    import tifffile

    from napari_stereo_tem.cli import main

    frames = series.frames.astype(np.float32)
    frames[3] = np.random.default_rng(2).normal(frames.mean(), frames.std(), frames[3].shape)
    tifffile.imwrite(tmp_path / "series.tif", frames)
    assert main(["track", str(tmp_path / "series.tif"), "-o", str(tmp_path / "out")]) == 0
    assert "skipped 1 frame(s) that show nothing new of the specimen (a blanked beam, a dropped, noise or " \
           "repeated frame): 3 (unlike its neighbours)" in capsys.readouterr().out
    record = json.loads((tmp_path / "out" / "track.json").read_text())
    assert record["settings"]["skipped_frames"] == [{"frame": 3, "why": "unlike its neighbours"}]
    with open(tmp_path / "out" / "drift.csv") as handle:
        drift = {int(r["frame"]): (float(r["dx"]), float(r["dy"])) for r in csv.DictReader(handle)}
    assert sorted(drift) == [0, 1, 2, 4, 5, 6]
    assert max(np.hypot(*np.subtract(drift[k], series.drift[k])) for k in drift) < 1.0
    with open(tmp_path / "out" / "tracks.csv") as handle:
        rows = list(csv.DictReader(handle))
    frames_of = {}
    for row in rows:
        frames_of.setdefault(row["track_id"], set()).add(int(row["frame"]))
    assert any({2, 4} <= seen for seen in frames_of.values())   # a line linked across the skipped frame


def test_cli_refuses_a_single_image(tmp_path, capsys):
    import tifffile

    from napari_stereo_tem.cli import main

    single = tmp_path / "one.tif"
    tifffile.imwrite(single, np.random.default_rng(0).random((64, 64)).astype(np.float32))
    assert main(["track", str(single), "-o", str(tmp_path / "out")]) == 1
    assert "single image" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_tracks_csv_opens_as_a_tracks_layer(make_napari_viewer, tmp_path):
    from napari_stereo_tem._napari.readers import get_tracks_reader

    folder = tmp_path / "result"
    folder.mkdir()
    header = ",".join(TRACK_COLUMNS)
    (folder / "tracks.csv").write_text(header + "\n0,0,10,20,50,1.5,0\n0,1,11.5,20,51,1.5,0\n1,1,40,30,45,,\n")
    (folder / "drift.csv").write_text("frame,dx,dy\n0,0,0\n1,2,-1\n")
    (folder / "lines.csv").write_text("line_id,x,y\n0,1,2\n")
    assert get_tracks_reader(str(folder / "lines.csv")) is None
    viewer = make_napari_viewer()
    layer = viewer.open(str(folder / "tracks.csv"), plugin="napari-stereo-tem")[0]
    assert type(layer).__name__ == "Tracks"
    data = np.asarray(layer.data)
    # (track_id, frame, y, x) with the drift of frame 1 put back: x 11.5 + 2, y 20 - 1
    np.testing.assert_allclose(data[1], [0, 1, 19.0, 13.5])
    assert layer.features["speed"].iloc[0] == pytest.approx(1.5)
    assert "speed_nm_s" not in layer.features
    # calibrated: lengths in nm and speeds in nm/s as features too
    (folder / "tracks.csv").write_text(header + ",length_nm,velocity_x_nm_s,velocity_y_nm_s\n"
                                       "0,0,10,20,50,1.5,0,25,3,0\n0,1,11.5,20,51,1.5,0,25.5,3,0\n")
    layer = viewer.open(str(folder / "tracks.csv"), plugin="napari-stereo-tem")[0]
    assert layer.features["speed_nm_s"].iloc[0] == pytest.approx(3.0)
    assert layer.features["length_nm"].iloc[1] == pytest.approx(25.5)


def test_plot_of_a_hundred_tracks_keeps_its_axes(tmp_path):
    """A real series holds about a hundred tracks: the plot shows the longest-lived few, its axes kept."""
    import warnings

    from napari_stereo_tem.cli.track import _plot

    rows = [{"track_id": t, "frame": f, "velocity_x": 0.01 * t, "velocity_y": 0.0, "length": 10.0 + t}
            for t in range(100) for f in range(3 + t % 4)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns when a legend squeezes the axes to nothing
        _plot(rows, tmp_path / "tracks.png")
    assert (tmp_path / "tracks.png").stat().st_size > 1000


def test_the_drift_of_large_frames_is_found_level_by_level(monkeypatch):
    """2048 px frames (a 4k camera's, binned): the half-size shift is itself found from a quarter size,
    then refined uphill at each finer level; the same drift as the one-level search, to 0.1 px."""
    from scipy import ndimage

    from napari_stereo_tem.stereo import drift as drift_module

    texture = ndimage.gaussian_filter(np.random.default_rng(3).normal(size=(2048, 2048)), 2.0).astype(np.float32)
    frames = np.stack([texture, ndimage.shift(texture, (5.0, -7.0), order=1, mode="nearest")])
    levels = drift_module.estimate_drift(frames)
    np.testing.assert_allclose(levels[1], [-7.0, 5.0], atol=0.1)
    monkeypatch.setattr(drift_module, "LARGE_SIDE", 10 ** 6)  # one coarse level only, as for smaller frames
    np.testing.assert_allclose(drift_module.estimate_drift(frames)[1], levels[1], atol=1e-9)


def test_a_burned_in_video_overlay_neither_pulls_the_drift_nor_is_tracked():
    """Frames grabbed from a video carry a title bar with a time stamp, black side frames and a scale bar,
    fixed in the frame while the specimen drifts beneath them. They pulled the drift towards zero (and
    made the static lines seem to move); now the pixels that do not change through the series are left out."""
    from napari_stereo_tem.stereo.drift import static_overlay
    from napari_stereo_tem.synth.misalign import burn_overlay

    series = make_time_series(3, shape=(256, 256), n_frames=7)
    lo, hi = float(series.frames.min()), float(series.frames.max())
    frames = np.stack([burn_overlay(f, text=f"00:0{k}:1{k}  x40000", seed=2, levels=(lo, hi))[0]
                       for k, f in enumerate(series.frames)])
    overlay = burn_overlay(series.frames[0], text="00:00:10  x40000", seed=2, levels=(lo, hi))[1]
    static = static_overlay(frames)
    inner = ndimage.binary_erosion(overlay, iterations=3)  # (burn_overlay's mask is grown over anti-aliasing)
    assert static[inner].mean() > 0.9 and static[~ndimage.binary_dilation(overlay, iterations=8)].mean() < 0.05
    assert not static_overlay(series.frames).any()  # no overlay: nothing left out
    result = track_lines(frames, max_distance=10.0)
    assert np.abs(result.drift - series.drift).max() < 1.5  # (0.66 px without the overlay)
    assert result.settings["static_overlay_share"] > 0.05
    # no instance lies on the overlay
    for inst in result.instances:
        xy = np.round(inst["points"]).astype(int)
        assert overlay[np.clip(xy[:, 1], 0, 255), np.clip(xy[:, 0], 0, 255)].mean() < 0.5


def test_frames_are_parsed_and_only_those_read(tmp_path, series):
    import imageio.v3 as iio
    import tifffile

    from napari_stereo_tem.stereo.frame_stack import frame_numbers, parse_frames

    assert parse_frames("0:6:2") == slice(0, 6, 2) and parse_frames("::3") == slice(None, None, 3)
    assert parse_frames("2:") == slice(2, None, None) and parse_frames("") is None
    for bad, message in (("5", "START:STOP"), ("a:b", "whole numbers"), ("0:4:0", "step is 1 or more"),
                         ("4:2", "must be after START")):
        with pytest.raises(InputError, match=message):
            parse_frames(bad)
    assert list(frame_numbers(slice(1, None, 3), 2)) == [1, 4] and list(frame_numbers(None, 3)) == [0, 1, 2]

    frames8 = np.round(series.frames * 255).astype(np.uint8)       # 7 frames
    tifffile.imwrite(tmp_path / "stack.tif", frames8)
    np.save(tmp_path / "stack.npy", frames8)
    iio.imwrite(tmp_path / "stack.gif", frames8, loop=0)
    _save_movie(tmp_path / "stack.hspy", frames8)
    folder = tmp_path / "frames"
    folder.mkdir()
    for k, frame in enumerate(frames8):
        iio.imwrite(folder / f"frame_{k:03d}.png", frame)
    for selection in (slice(1, None, 3), slice(None, 4, None), slice(2, 6, 2)):
        for source in (tmp_path / "stack.tif", tmp_path / "stack.npy", tmp_path / "stack.gif", tmp_path / "stack.hspy",
                       folder, frames8):
            stack = read_stack(source, frames=selection)
            assert stack.dtype == np.float32 and stack.shape[1:] == (128, 128)
            np.testing.assert_allclose(stack, frames8[selection], atol=1, err_msg=f"{source} {selection}")
    with pytest.raises(InputError, match=r"none of the frames asked for \(10::2\)"):
        read_stack(tmp_path / "stack.gif", frames=slice(10, None, 2))


def test_a_series_larger_than_half_the_free_memory_is_refused_with_advice(tmp_path, series, monkeypatch):
    import tifffile

    from napari_stereo_tem.stereo import frame_stack

    tifffile.imwrite(tmp_path / "stack.tif", series.frames)                  # 7 frames of 128x128 float32
    monkeypatch.setattr(frame_stack, "_free_memory", lambda: 2 * 4 * 128 * 128 * 3)   # room for 3 frames
    with pytest.raises(InputError, match=r"4 frames of \(128, 128\).*half the memory free.*--frames"):
        read_stack(tmp_path / "stack.tif")
    assert len(read_stack(tmp_path / "stack.tif", frames=slice(None, None, 3))) == 3   # every third fits
    np.save(tmp_path / "stack.npy", series.frames)                        # mapped: refused before it is read
    with pytest.raises(InputError, match=r"7 frames of \(128, 128\).*half the memory free"):
        read_stack(tmp_path / "stack.npy")
    with pytest.raises(InputError, match=r"half the memory free.*bin the images") as refused:
        read_stack(tmp_path / "stack.npy", what="a tilt series")
    assert "--frames" not in str(refused.value)   # an option of track only
    # a lazy stack (a movie opened in napari) is refused before any frame is computed; every third is read
    import dask.array as da

    computed = []
    lazy = da.from_array(series.frames, chunks=(1, 128, 128)).map_blocks(lambda b: computed.append(1) or b)
    computed.clear()   # dask calls the function once on a dummy block to learn its output
    with pytest.raises(InputError, match=r"7 frames of \(128, 128\).*half the memory free"):
        read_stack(lazy, name="'movie'")
    assert not computed
    assert len(read_stack(lazy, frames=slice(None, None, 3))) == 3 and len(computed) == 3


def test_every_other_frame_is_tracked_with_the_files_frame_numbers(series):
    half = track_lines(series.frames, max_distance=10.0, frames=slice(None, None, 2))
    assert list(half.frame_numbers) == [0, 2, 4, 6] and half.n_frames == 4
    assert {inst["frame"] for inst in half.instances} <= {0, 2, 4, 6}
    # scored on the frames taken, as every frame is above; velocities stay px per frame of the file
    score = score_tracks(half, series)
    assert score["detected"] >= 0.8 and score["link_accuracy"] >= 0.85
    assert score["drift_error"] < 1.5
    assert score["velocity_error"] < 0.8 and score["speed_error_rel"] < 0.4
