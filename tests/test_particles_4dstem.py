"""Particles from one 4D-STEM scan: quadrant discs, view geometry from disc positions, the pipeline, the CLI."""

import json

import numpy as np
import pytest

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.cli import main
from napari_stereo_tem.fourdstem import Disc
from napari_stereo_tem.fourdstem.quadrants import (iter_particles_from_4dstem, particles_from_4dstem,
                                                   quadrant_discs, view_geometry)
from napari_stereo_tem.particles import read_points_csv, score_particles
from napari_stereo_tem.progress import Cancelled, drive
from napari_stereo_tem.synth.fourdstem_particles import simulate_4dstem_particles

ROTATION = 30.0


@pytest.fixture(scope="module")
def scan():
    return simulate_4dstem_particles(seed=9_310_000, n_particles=30, scan_shape=(80, 80), scan_rotation_deg=ROTATION,
                                     slab_thickness_px=60.0)


def test_quadrant_discs_sit_around_the_beam():
    direct = Disc(15.2, 16.7, 12.0)
    discs = quadrant_discs(direct, 7.0, 4.0, first_azimuth_deg=10.0)
    assert len(discs) == 4 and all(d.radius == 4.0 for d in discs)
    k = np.array([[d.cy - direct.cy, d.cx - direct.cx] for d in discs])
    np.testing.assert_allclose(np.hypot(k[:, 0], k[:, 1]), 7.0)
    np.testing.assert_allclose(np.rad2deg(np.arctan2(k[:, 0], k[:, 1])), [10, 100, -170, -80], atol=1e-9)
    with pytest.raises(InputError, match="overlap"):
        quadrant_discs(direct, 5.0, 4.0)
    with pytest.raises(InputError, match="beyond the direct disc"):
        quadrant_discs(direct, 10.0, 4.0)
    with pytest.raises(InputError, match="positive"):
        quadrant_discs(direct, -1.0, 2.0)


def test_view_geometry_from_disc_positions():
    direct = Disc(10.0, 10.0, 8.0)
    discs = quadrant_discs(direct, 5.0, 2.0)
    beta, azimuths, info = view_geometry(discs, direct, mrad_per_px=6.0, scan_rotation_deg=ROTATION)
    assert beta == pytest.approx(np.rad2deg(5.0 * 6.0e-3))
    np.testing.assert_allclose(azimuths, [30.0, 120.0, -150.0, -60.0], atol=1e-9)
    np.testing.assert_allclose(info["beta_per_view_deg"], beta)
    # discs at different distances: one beta per view, in the order of the discs
    uneven = [*discs[:3], Disc(10.0, 10.0 - 3.0, 2.0)]
    betas, azimuths, info = view_geometry(uneven, direct, mrad_per_px=6.0)
    np.testing.assert_allclose(betas, np.rad2deg(np.array([5.0, 5.0, 5.0, 3.0]) * 6.0e-3))
    assert betas == info["beta_per_view_deg"]
    np.testing.assert_allclose(azimuths, [0.0, 90.0, -180.0, -180.0], atol=1e-9)
    # one disc on the beam centre looks straight down (beta 0); two there are one view, refused
    betas, _, _ = view_geometry([*discs[:3], Disc(10.0, 10.0, 2.0)], direct, mrad_per_px=6.0)
    assert betas[3] == 0.0 and betas[0] > 0
    with pytest.raises(InputError, match="on the direct-beam centre"):
        view_geometry([*discs[:2], Disc(10.0, 10.0, 2.0), Disc(10.2, 10.0, 2.0)], direct, mrad_per_px=6.0)
    with pytest.raises(InputError, match="same place"):
        view_geometry([*discs[:3], Disc(discs[0].cy + 0.1, discs[0].cx, 2.0)], direct, mrad_per_px=6.0)
    with pytest.raises(InputError, match="at least 3 views"):
        view_geometry(discs[:2], direct, mrad_per_px=6.0)
    with pytest.raises(InputError, match="mrad_per_px"):
        view_geometry(discs, direct, mrad_per_px=0.0)


def _score(result, scan, beta, azimuths):
    rec = result.reconstruction
    return score_particles(rec.points[rec.all_views], scan.positions, shape=scan.data.shape[:2], beta_deg=beta,
                           azimuths_deg=azimuths, margin=6)


def test_particles_from_one_scan_match_the_truth(scan):
    direct = Disc(*scan.centre, scan.radius)
    discs = quadrant_discs(direct, 7.0, 4.0)
    out = particles_from_4dstem(scan.data, discs, direct, mrad_per_px=scan.mrad_per_px,
                                scan_rotation_deg=ROTATION, radius_range=(2.0, 7.0))
    assert out.views.shape == (4, 80, 80)
    assert out.result.params["virtual_detectors"]["scan_rotation_deg"] == ROTATION
    score = _score(out.result, scan, out.beta_deg, out.azimuths_deg)
    assert score["recall"] >= 0.8 and score["precision"] >= 0.8, score
    assert score["rmse_z"] < 1.5, score
    # the depth runs the right way: with the scan rotation off by 180 degrees every height flips
    wrong = particles_from_4dstem(scan.data, discs, direct, mrad_per_px=scan.mrad_per_px,
                                  scan_rotation_deg=ROTATION + 180.0, radius_range=(2.0, 7.0))
    flipped = _score(wrong.result, scan, wrong.beta_deg, wrong.azimuths_deg)
    assert flipped["recall"] < 0.5 * score["recall"] or flipped["rmse_z"] > 3 * score["rmse_z"], flipped


def _uneven_discs(direct, fractions=(0.6, 0.75, 0.9, 1.0), offset=7.0, radius=3.0):
    """Four discs in quadrants at ``fractions`` of ``offset`` from the beam centre."""
    return [Disc(direct.cy + offset * f * np.sin(np.pi / 2 * i), direct.cx + offset * f * np.cos(np.pi / 2 * i),
                 radius) for i, f in enumerate(fractions)]


def test_particles_from_discs_at_different_distances(scan):
    direct = Disc(*scan.centre, scan.radius)
    out = particles_from_4dstem(scan.data, _uneven_discs(direct), direct, mrad_per_px=scan.mrad_per_px,
                                scan_rotation_deg=ROTATION, radius_range=(2.0, 7.0))
    expected = np.rad2deg(7.0 * np.array([0.6, 0.75, 0.9, 1.0]) * scan.mrad_per_px * 1e-3)
    np.testing.assert_allclose(out.beta_deg, expected)
    assert out.result.params["beta_deg"] == out.beta_deg
    score = _score(out.result, scan, out.beta_deg, out.azimuths_deg)
    assert score["recall"] >= 0.8 and score["precision"] >= 0.8, score
    assert score["rmse_z"] < 1.5, score


def test_cancel_stops_between_steps(scan):
    direct = Disc(*scan.centre, scan.radius)
    work = iter_particles_from_4dstem(scan.data, quadrant_discs(direct, 7.0, 4.0), direct,
                                      mrad_per_px=scan.mrad_per_px)
    seen = []
    with pytest.raises(Cancelled):
        drive(work, seen.append, should_stop=lambda: len(seen) >= 1)
    assert len(seen) == 1


def test_cli_particles_from_a_scan(scan, tmp_path, capsys):
    path = tmp_path / "scan.npy"
    np.save(path, np.asarray(scan.data))
    out = tmp_path / "result"
    code = main(["particles", "--4dstem", str(path), "--quadrants", "7,4", "--convergence-mrad", "70",
                 "--direct-disc", f"{scan.centre[0]},{scan.centre[1]},{scan.radius}",
                 "--scan-rotation", str(ROTATION), "--radius-range", "2,7", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    table = read_points_csv(out / "points.csv")
    points = np.column_stack([table["x"], table["y"], table["z"]])
    record = json.loads((out / "particles.json").read_text())
    geometry = record["params"]["virtual_detectors"]
    assert record["params"]["beta_deg"] == pytest.approx(np.rad2deg(7.0 * scan.mrad_per_px * 1e-3))
    assert len(geometry["discs"]) == 4
    score = score_particles(points, scan.positions, shape=(80, 80), beta_deg=record["params"]["beta_deg"],
                            azimuths_deg=record["params"]["azimuths_deg"], margin=6)
    assert score["recall"] >= 0.8 and score["precision"] >= 0.8


def test_cli_particles_from_discs_at_different_distances(scan, tmp_path, capsys):
    path = tmp_path / "scan.npy"
    np.save(path, np.asarray(scan.data))
    direct = Disc(*scan.centre, scan.radius)
    discs = []
    for d in _uneven_discs(direct):
        discs += ["--disc", f"{d.cy},{d.cx},{d.radius}"]
    out = tmp_path / "result"
    code = main(["particles", "--4dstem", str(path), *discs, "--convergence-mrad", "70",
                 "--direct-disc", f"{scan.centre[0]},{scan.centre[1]},{scan.radius}",
                 "--scan-rotation", str(ROTATION), "--radius-range", "2,7", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    record = json.loads((out / "particles.json").read_text())
    betas = record["params"]["beta_deg"]
    np.testing.assert_allclose(betas, np.rad2deg(7.0 * np.array([0.6, 0.75, 0.9, 1.0]) * scan.mrad_per_px * 1e-3))
    assert record["precision"]["beta_deg"] == betas
    assert "beta " + ", ".join(f"{b:.3f}" for b in betas) + " deg" in err
    table = read_points_csv(out / "points.csv")
    points = np.column_stack([table["x"], table["y"], table["z"]])
    score = score_particles(points, scan.positions, shape=(80, 80), beta_deg=betas,
                            azimuths_deg=record["params"]["azimuths_deg"], margin=6)
    assert score["recall"] >= 0.8 and score["precision"] >= 0.8, score


@pytest.mark.parametrize("extra, message", [
    (["--beta", "2", "--quadrants", "7"], "computed from the disc positions"),
    (["--quadrants", "7"], "--convergence-mrad"),
    (["--convergence-mrad", "70"], "give the discs"),
    (["--quadrants", "7", "--convergence-mrad", "70", "--disc", "1,1,1"], "give the discs"),
])
def test_cli_refuses_bad_scan_options(scan, tmp_path, capsys, extra, message):
    path = tmp_path / "scan.npy"
    np.save(path, np.zeros((16, 16, 8, 8), np.uint16))
    code = main(["particles", "--4dstem", str(path), *extra, "-o", str(tmp_path / "out")])
    assert code == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_views_still_need_beta(tmp_path, capsys):
    assert main(["particles", "a.tif", "b.tif", "c.tif", "d.tif", "-o", str(tmp_path / "out")]) == 1
    assert "--beta" in capsys.readouterr().err


def test_simulator_is_reproducible_and_validates():
    a = simulate_4dstem_particles(seed=5, n_particles=5, scan_shape=(24, 24), detector_shape=(16, 16),
                                  disc_radius_px=5.0)
    b = simulate_4dstem_particles(seed=5, n_particles=5, scan_shape=(24, 24), detector_shape=(16, 16),
                                  disc_radius_px=5.0)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert a.data.shape == (24, 24, 16, 16) and a.data.dtype == np.uint16
    with pytest.raises(InputError, match="too small"):
        simulate_4dstem_particles(seed=1, scan_shape=(8, 8))
    with pytest.raises(InputError, match=".npy"):
        simulate_4dstem_particles(seed=1, path="scan.zarr")


def test_cli_synth_then_particles(tmp_path, capsys):
    scan_dir = tmp_path / "scan"
    assert main(["synth", "4dstem-particles", "--seed", "9310001", "--n-particles", "20", "--scan", "64,64",
                 "-o", str(scan_dir)]) == 0
    assert {p.name for p in scan_dir.iterdir()} == {"data.npy", "params.json", "truth.csv"}
    params = json.loads((scan_dir / "params.json").read_text())
    truth = read_points_csv(scan_dir / "truth.csv")
    assert params["n_particles"] == 20 and len(truth["x"]) == 20
    out = tmp_path / "result"
    assert main(["particles", "--4dstem", str(scan_dir / "data.npy"), "--quadrants", "7,4", "--convergence-mrad",
                 str(params["convergence_mrad"]), "--radius-range", "2,7", "-o", str(out)]) == 0
    found = read_points_csv(out / "points.csv")
    points = np.column_stack([found["x"], found["y"], found["z"]])
    record = json.loads((out / "particles.json").read_text())["params"]
    score = score_particles(points, np.column_stack([truth["x"], truth["y"], truth["z"]]), shape=(64, 64),
                            beta_deg=record["beta_deg"], azimuths_deg=record["azimuths_deg"], margin=6)
    assert score["recall"] >= 0.75 and score["precision"] >= 0.75, score
