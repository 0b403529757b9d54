"""Defective camera columns and rows: found, filled in, and kept out of detection, stereo and tracking."""

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_stereo_tem.camera_defects import CameraDefects, find_camera_defects, repair_camera_defects
from napari_stereo_tem.images import grey_levels
from napari_stereo_tem.synth.micrograph import make_micrograph
from napari_stereo_tem.synth.timeseries import make_time_series

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "stereo"
REAL = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "tem_images"


def _dimmed(image, *, column=None, row=None, gain=0.6, start=0):
    """``image`` with one column (from row ``start`` on) or row of lower gain (its counts times ``gain``)."""
    out = np.array(image, dtype=np.float32, copy=True)
    where = (slice(start, None), column) if column is not None else (row, slice(start, None))
    out[where] = out[where] * gain
    return out


def test_a_dim_column_and_a_hot_row_are_found_and_filled_in():
    clean = make_micrograph(5, shape=(256, 256)).image
    image = _dimmed(clean, column=97)
    image[140, :] = clean.max()                      # a hot row
    repaired, found = repair_camera_defects(image)
    assert found.columns == [(97, 0, 256)] and found.rows == [(140, 0, 256)]
    # filled from the neighbours: far closer to the scene than the defect was
    assert np.abs(repaired[:, 97] - clean[:, 97]).mean() < 0.5 * np.abs(image[:, 97] - clean[:, 97]).mean()
    assert np.array_equal(np.delete(repaired, [97], axis=1)[np.arange(256) != 140],
                          np.delete(image, [97], axis=1)[np.arange(256) != 140])  # nothing else touched
    assert "column (x 97)" in found.describe() and "row (y 140)" in found.describe()
    assert CameraDefects.from_dict(found.as_dict()) == found


def test_a_column_failing_part_way_is_filled_from_there_to_the_read_out():
    image = _dimmed(make_micrograph(6, shape=(256, 256)).image, column=40, gain=0.4, start=150)
    found = find_camera_defects(image)
    assert len(found.columns) == 1 and not found.rows
    column, start, stop = found.columns[0]
    assert column == 40 and stop == 256 and 64 <= start <= 150


def test_lines_edges_and_scan_noise_are_not_defects():
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[:256, :256].astype(np.float32)
    noise = rng.normal(0, 0.02, (256, 256)).astype(np.float32)
    thin_line = 0.5 - 0.3 * np.exp(-((cols - 100.0) ** 2) / (2 * 0.8 ** 2)) + noise  # a blurred line along a column
    step = np.where(cols < 128, 0.3, 0.6).astype(np.float32) + noise                   # a straight edge
    scanned = 0.5 + noise + rng.normal(0, 0.03, (256, 1)).astype(np.float32)          # STEM rows, each offset
    for image in (thin_line, step, scanned):
        assert not find_camera_defects(image)
    # nor anything in generated micrographs or the five real ones
    for seed in range(12):
        assert not find_camera_defects(make_micrograph(100 + seed, shape=(256, 256)).image), seed
    import imageio.v3 as iio

    for path in sorted(REAL.glob("*.jpg")):
        assert not find_camera_defects(grey_levels(iio.imread(path))), path.name


def test_detection_does_not_draw_a_dead_column():
    from napari_stereo_tem.stereo.detect import detect_lines
    from napari_stereo_tem.stereo.detection import ignored_share

    image = _dimmed(tifffile.imread(SAMPLE / "left.tif"), column=301, gain=0.55)
    result = detect_lines(image, flips=1)
    assert (result.labels[:, 300:303] == 1).any(axis=1).mean() < 0.15   # (0.78 of its length drawn before)
    assert result.settings["camera_defects"]["columns"] == [[301, 0, 512]]
    assert "1 defective camera column (x 301)" in ignored_share(result.settings)


@pytest.mark.slow
def test_stereo_pair_with_a_dead_column_in_both_views():
    """The column sits at the same pixel in both views: it was reconstructed as 5 lines (12 more in all)."""
    from napari_stereo_tem.stereo.pipeline import reconstruct

    left = _dimmed(tifffile.imread(SAMPLE / "left.tif"), column=301, gain=0.55)
    right = _dimmed(tifffile.imread(SAMPLE / "right.tif"), column=301, gain=0.55)
    result = reconstruct(left, right, stereo_angle_deg=8.0)
    along = [line for line in result.lines if np.all(np.abs(np.asarray(line)[:, 0] - 301) < 3)]
    assert not along and len(result.lines) <= 36   # 32 without the column, 44 before
    note = result.provenance["camera_defects"]["note"]
    assert "left view: 1 defective camera column (x 301)" in note and "right view" in note


def test_tracking_keeps_a_dead_column_out_of_the_drift_and_the_tracks():
    from napari_stereo_tem.stereo.tracking import track_lines

    series = make_time_series(4, shape=(256, 256), n_frames=7)
    frames = np.stack([_dimmed(_dimmed(frame, column=101), row=170) for frame in series.frames])
    result = track_lines(frames, max_distance=10.0)
    assert result.settings["camera_defects"] == {"columns": [[101, 0, 256]], "rows": [[170, 0, 256]], "pixels": 0}
    assert np.abs(result.drift - series.drift).max() < 1.4   # 1.16 (1.08 with no defect); 1.93 before
    for inst in result.instances:
        x, y = inst["points"][:, 0], inst["points"][:, 1]
        assert np.mean(np.abs(x - 101) < 2) < 0.5 and np.mean(np.abs(y - 170) < 2) < 0.5


def test_hot_and_dead_pixels_are_found_and_filled_in():
    clean = np.asarray(make_micrograph(7, shape=(256, 256)).image, np.float32)
    rng = np.random.default_rng(3)
    where = rng.choice(clean.size, 400, replace=False)
    image = clean.copy()
    image.flat[where[:300]] = 3.0 * clean.max()          # hot
    image.flat[where[300:]] = clean.min() - 1.0           # dead (below everything)
    repaired, found = repair_camera_defects(image)
    hit = np.zeros(clean.shape, bool)
    hit[found.pixels[:, 0], found.pixels[:, 1]] = True
    # (those on a line's edge, whose neighbours do not agree, are left: a few)
    assert hit.flat[where].mean() > 0.95 and (hit.sum() - hit.flat[where].sum()) <= 3
    assert np.abs(repaired - clean)[hit].max() < 0.5 * np.ptp(clean)
    assert "hot or dead pixels" in found.describe()


@pytest.mark.slow
def test_a_pair_whose_views_share_thousands_of_hot_pixels_is_aligned():
    """A camera's hot pixels sit at the same place in both views: matched at no shift, 3000 of them made
    the bundled pair's alignment fail ("disparities 0.2 px apart"); now they are filled in first."""
    from napari_stereo_tem.stereo.pipeline import reconstruct

    left, right = (tifffile.imread(SAMPLE / f"{side}.tif").astype(np.float32) for side in ("left", "right"))
    where = np.random.default_rng(0).choice(left.size, 3000, replace=False)
    for view in (left, right):
        view.flat[where] = 3.0 * view.max()
    result = reconstruct(left, right, stereo_angle_deg=8.0)
    assert abs(result.rectification["theta_deg"]) < 1.0 and 28 <= len(result.lines) <= 38   # 32 without them
    assert "hot or dead pixels" in result.provenance["camera_defects"]["note"]   # (2986: a few lie in pairs)
