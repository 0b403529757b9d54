"""`stereo-tem particles` and the Python pipeline: outputs, headers, arrays or paths, bad input."""

import json

import numpy as np
import pytest
import tifffile

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.cli import main
from napari_stereo_tem.particles import (read_points_csv, reconstruct_particles, reconstruct_particles_iter,
                                         score_particles)
from napari_stereo_tem.progress import Progress
from napari_stereo_tem.synth.particles import simulate_particle_views


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory):
    sample = simulate_particle_views(40, seed=9000040, shape=(256, 256), slab_thickness_px=40.0, dose=3000.0)
    out = tmp_path_factory.mktemp("particles")
    sample.save(out)
    return out, sample


def _views(directory):
    return [str(directory / f"view_{k}.tif") for k in "ABCD"]


def test_cli_writes_points_and_rdf(sample_dir, tmp_path, capsys):
    directory, sample = sample_dir
    out = tmp_path / "result"
    code = main(["particles", *_views(directory), "--beta", "2", "--azimuths", "0,90,180,270",
                 "--pixel-size", "0.4", "-o", str(out)])
    assert code == 0
    assert "matched in all views" in capsys.readouterr().out
    points = (out / "points.csv").read_text().splitlines()
    # the contract's columns first, in order; the fit's standard deviations after them
    assert points[0] == "x,y,z,radius,std_x,std_y,std_z"
    assert (out / "rdf.csv").read_text().splitlines()[0] == "r,g"
    assert (out / "points_three_view.csv").read_text().splitlines()[0] == "x,y,z,radius,std_x,std_y,std_z"
    assert (out / "rdf.png").stat().st_size > 1000
    meta = json.loads((out / "particles.json").read_text())
    assert meta["units"] == {"points": "pixel", "radius": "pixel", "std": "pixel", "rdf_r": "nm"}
    assert meta["counts"]["matched_all_views"] == len(points) - 1
    table = read_points_csv(out / "points.csv")
    xyz = np.column_stack([table["x"], table["y"], table["z"]])
    score = score_particles(xyz, sample.positions, shape=(256, 256), beta_deg=2.0, margin=6)
    assert score["recall"] >= 0.9 and score["precision"] >= 0.9
    # every particle has a standard deviation; depth is the least certain (beta = 2 degrees)
    std = np.column_stack([table["std_x"], table["std_y"], table["std_z"]])
    assert np.all(np.isfinite(std)) and np.all(std > 0)
    assert np.all(std[:, 2] > 5 * std[:, 0])
    floor = meta["precision"]["localisation_floor_px"]
    assert 0 < floor["x"] < floor["z"] < np.median(std[:, 2]) * 1.5
    assert meta["precision"]["dose_estimate"]["counts_per_pixel"] == pytest.approx(3000.0, rel=0.2)


def test_cli_takes_the_four_views_from_one_stack(sample_dir, tmp_path, capsys):
    """A segmented detector's export of the four views as frames of one file gives the same points as four files."""
    directory, _ = sample_dir
    stack = tmp_path / "views.tif"
    tifffile.imwrite(stack, np.stack([tifffile.imread(v) for v in _views(directory)]))
    assert main(["particles", str(stack), "--beta", "2", "-o", str(tmp_path / "stack")]) == 0
    assert "4 views, taken as A, B, C, D" in capsys.readouterr().out
    assert main(["particles", *_views(directory), "--beta", "2", "-o", str(tmp_path / "files")]) == 0
    assert (tmp_path / "stack" / "points.csv").read_text() == (tmp_path / "files" / "points.csv").read_text()
    tifffile.imwrite(tmp_path / "two.tif", np.stack([tifffile.imread(v) for v in _views(directory)[:2]]))
    assert main(["particles", str(tmp_path / "two.tif"), "--beta", "2", "-o", str(tmp_path / "two")]) == 1
    assert "2 view(s) given" in capsys.readouterr().err


def test_bright_particles_are_found_with_the_defaults(sample_dir, tmp_path, capsys):
    """Dark-field (HAADF) views: particles brighter than the background, no option given."""
    directory, sample = sample_dir
    bright = tmp_path / "bright"
    bright.mkdir()
    for name in "ABCD":
        view = tifffile.imread(directory / f"view_{name}.tif").astype(np.float32)
        tifffile.imwrite(bright / f"view_{name}.tif", 2.0 - view)
    out = tmp_path / "result"
    assert main(["particles", *_views(bright), "--beta", "2", "-o", str(out)]) == 0
    assert "particles brighter than the background (decided from the views" in capsys.readouterr().out
    meta = json.loads((out / "particles.json").read_text())
    detection = meta["params"]["detection"]
    assert detection["polarity"] == "bright" and detection["polarity_asked"] == "auto"
    table = read_points_csv(out / "points.csv")
    xyz = np.column_stack([table["x"], table["y"], table["z"]])
    score = score_particles(xyz, sample.positions, shape=(256, 256), beta_deg=2.0, margin=6)
    assert score["recall"] >= 0.9 and score["precision"] >= 0.9


def test_points_table_round_trip_and_old_readers(tmp_path):
    from napari_stereo_tem.particles import write_points_csv

    points = np.array([[1.5, 2.25, -3.0], [2047.123456, 10.0, 55.5]])
    write_points_csv(tmp_path / "p.csv", points, [3.0, 4.5], std=[[0.1, 0.1, 1.0], [np.nan, np.nan, np.nan]])
    table = read_points_csv(tmp_path / "p.csv")
    np.testing.assert_allclose(table["x"], points[:, 0], atol=1e-4)
    assert np.isnan(table["std_z"][1]) and table["std_z"][0] == 1.0
    # a reader of the first four columns (the contract) still reads x,y,z,radius
    old = np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1, ndmin=2)[:, :4]
    np.testing.assert_allclose(old[:, 3], [3.0, 4.5])
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="x,y,z,radius"):
        read_points_csv(tmp_path / "bad.csv")


def test_python_accepts_arrays_and_paths_alike(sample_dir):
    directory, sample = sample_dir
    from_paths = reconstruct_particles(_views(directory), beta_deg=2.0)
    from_arrays = reconstruct_particles(list(sample.views), beta_deg=2.0)
    from_stack = reconstruct_particles(sample.views, beta_deg=2.0)
    np.testing.assert_allclose(from_paths.reconstruction.points, from_arrays.reconstruction.points, atol=1e-4)
    np.testing.assert_array_equal(from_arrays.reconstruction.points, from_stack.reconstruction.points)
    assert from_arrays.units == "pixel"
    assert from_arrays.reconstruction.std.shape == from_arrays.reconstruction.points.shape


def test_progress_generator_reports_each_stage(sample_dir):
    _, sample = sample_dir
    gen = reconstruct_particles_iter(sample.views, beta_deg=2.0)
    stages = []
    while True:
        try:
            report = next(gen)
        except StopIteration as stop:
            result = stop.value
            break
        assert isinstance(report, Progress)
        stages.append(report.stage)
    assert stages[:4] == ["detect"] * 4 and "match" in stages and "g(r)" in stages
    assert len(result.detections) == 4


def test_bad_input_gives_one_clear_line(sample_dir, tmp_path, capsys):
    directory, _ = sample_dir
    assert main(["particles", *_views(directory)[:3], "--beta", "2", "-o", str(tmp_path / "a")]) == 1
    assert "azimuth" in capsys.readouterr().err
    assert main(["particles", *_views(directory), "--beta", "0", "-o", str(tmp_path / "b")]) == 1
    assert "non-zero" in capsys.readouterr().err
    odd = tmp_path / "odd.tif"
    tifffile.imwrite(odd, np.random.default_rng(0).random((128, 100)).astype(np.float32))
    assert main(["particles", *_views(directory)[:3], str(odd), "--beta", "2", "-o", str(tmp_path / "c")]) == 1
    assert "differ in shape" in capsys.readouterr().err
    assert not (tmp_path / "c" / "points.csv").exists()


def test_python_bad_input_raises_input_error(sample_dir):
    _, sample = sample_dir
    with pytest.raises(InputError, match="at least 3"):
        reconstruct_particles(list(sample.views[:2]), beta_deg=2.0)
    with pytest.raises(InputError, match="azimuth"):
        reconstruct_particles(list(sample.views[:3]), beta_deg=2.0)
    with pytest.raises(InputError, match="non-zero"):
        reconstruct_particles(sample.views, beta_deg=0.0)
    with pytest.raises(InputError, match="differ in shape"):
        reconstruct_particles([*sample.views[:3], sample.views[3][:, :200]], beta_deg=2.0)
    with pytest.raises(InputError, match="pixel size"):
        reconstruct_particles(sample.views, beta_deg=2.0, pixel_size=-1)


def test_large_particles_are_found_in_shrunk_views_and_given_back_in_full_size_pixels(sample_dir, capsys):
    """The views enlarged six times (particles of 18-36 px radius, far beyond the default 2-10 px): the
    particles are found as in the views themselves, in the enlarged views' pixels. With the default radii
    at full size the LoG found a few hundred blobs per view instead."""
    import cv2

    from napari_stereo_tem.particles.detection import dominant_radius

    _, sample = sample_dir
    big = [cv2.resize(v, (v.shape[1] * 6, v.shape[0] * 6), interpolation=cv2.INTER_CUBIC) for v in sample.views]
    assert dominant_radius(sample.views[0]) < 10 < dominant_radius(big[0])
    result = reconstruct_particles(big, beta_deg=2.0)
    assert result.params["working_scale"]["factor"] >= 2
    truth = sample.positions * 6 + [2.5, 2.5, 0.0]  # pixel centres of the enlarged views
    scores = score_particles(result.reconstruction.points, truth, tolerance=3.0 * 6)
    small = score_particles(reconstruct_particles(sample.views, beta_deg=2.0).reconstruction.points,
                            sample.positions, tolerance=3.0)
    assert scores["recall"] >= small["recall"] - 0.05 and scores["precision"] >= small["precision"] - 0.05
    assert scores["rmse_xy"] < 6 * max(small["rmse_xy"], 0.1) * 1.5
    assert np.median(result.reconstruction.radii) > 10
