"""One view angle per view (virtual discs at different distances from the beam).

A number and four equal numbers are one model with identical results; four different
angles project, invert, match and reconstruct rendered particles.
"""

import json

import numpy as np
import pytest

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.cli import main
from napari_stereo_tem.particles import match_particles, project_particles, score_particles
from napari_stereo_tem.particles.geometry import check_view_geometry, format_beta, solve_positions, view_shifts
from napari_stereo_tem.particles.pipeline import reconstruct_particles, write_particle_result
from napari_stereo_tem.synth.particles import load_particle_sample, simulate_particle_views

PSI = (10.0, 100.0, 190.0, 280.0)
BETAS = (1.8, 2.25, 2.7, 3.0)  # 0.6, 0.75, 0.9 and 1.0 of the largest


def _exact(positions, radii, beta, psi=(0, 90, 180, 270)):
    return [np.column_stack([v, radii]) for v in project_particles(positions, beta_deg=beta, azimuths_deg=psi)]


def test_a_number_and_four_equal_numbers_are_one_model():
    betas, psi = check_view_geometry(2.5, PSI)
    betas4, psi4 = check_view_geometry([2.5] * 4, PSI)
    np.testing.assert_array_equal(betas, [2.5] * 4)
    np.testing.assert_array_equal(betas4, betas)
    np.testing.assert_array_equal(psi4, psi)
    rng = np.random.default_rng(3)
    pts = rng.uniform(-40, 40, (25, 3))
    xy = project_particles(pts, beta_deg=2.5, azimuths_deg=PSI)
    np.testing.assert_array_equal(project_particles(pts, beta_deg=(2.5,) * 4, azimuths_deg=PSI), xy)
    for a, b in zip(solve_positions(xy, beta_deg=2.5, azimuths_deg=PSI),
                    solve_positions(xy, beta_deg=[2.5] * 4, azimuths_deg=PSI)):
        np.testing.assert_array_equal(a, b)
    sample = simulate_particle_views(60, seed=9_170_010, shape=(200, 200), render=False)
    dets = _exact(sample.positions, sample.radii, 2.5)
    one, four = match_particles(dets, beta_deg=2.5), match_particles(dets, beta_deg=np.full(4, 2.5))
    np.testing.assert_array_equal(one.points, four.points)
    np.testing.assert_array_equal(one.detection_index, four.detection_index)
    assert one.params == four.params and one.params["beta_deg"] == 2.5
    assert format_beta(2.5) == format_beta([2.5] * 4) == "beta 2.500 deg"


def test_the_pipeline_gives_identical_results_for_a_number_and_four_equal_numbers(tmp_path):
    sample = simulate_particle_views(25, seed=9_170_011, shape=(128, 128), beta_deg=3.0, dose=200)
    one = reconstruct_particles(sample.views, beta_deg=3.0)
    four = reconstruct_particles(sample.views, beta_deg=[3.0, 3.0, 3.0, 3.0])
    assert len(one.reconstruction.points) >= 10
    for name in ("points", "radii", "std", "residuals", "n_views"):
        np.testing.assert_array_equal(getattr(one.reconstruction, name), getattr(four.reconstruction, name))
    write_particle_result(one, tmp_path / "one", plot=False)
    write_particle_result(four, tmp_path / "four", plot=False)
    for name in ("points.csv", "points_three_view.csv", "rdf.csv", "particles.json"):
        assert (tmp_path / "one" / name).read_text() == (tmp_path / "four" / name).read_text(), name
    assert json.loads((tmp_path / "one" / "particles.json").read_text())["params"]["beta_deg"] == 3.0


def test_every_view_shifts_by_its_own_angle_and_the_projection_inverts():
    betas = (1.2, 2.0, 0.0, 2.8)  # one view straight down
    rng = np.random.default_rng(4)
    pts = rng.uniform(-50, 50, (30, 3))
    xy = project_particles(pts, beta_deg=betas, azimuths_deg=PSI)
    for k, (b, p) in enumerate(zip(betas, np.deg2rad(PSI))):
        expected = pts[:, :2] + pts[:, 2:3] * np.sin(np.deg2rad(b)) * np.array([np.cos(p), np.sin(p)])
        np.testing.assert_allclose(xy[k], expected, atol=1e-12)
    np.testing.assert_allclose(view_shifts(betas, PSI)[2], [0.0, 0.0])
    back, resid = solve_positions(xy, beta_deg=betas, azimuths_deg=PSI)
    np.testing.assert_allclose(back, pts, atol=1e-8)
    assert np.all(resid < 1e-8)
    assert format_beta(betas, ".1f") == "beta 1.2, 2.0, 0.0, 2.8 deg"


@pytest.mark.parametrize("betas", [BETAS, (2.7, 1.8, 3.0, 2.25), (0.0, 3.0, 3.0, 3.0)])
def test_exact_detections_with_an_angle_per_view_give_the_positions(betas):
    sample = simulate_particle_views(80, seed=9_170_012, shape=(300, 300), slab_thickness_px=200.0, render=False)
    rec = match_particles(_exact(sample.positions, sample.radii, betas), beta_deg=betas)
    assert rec.counts["matched_all_views"] == len(sample.positions)
    order, truth = np.lexsort(rec.points[:, :2].T), np.lexsort(sample.positions[:, :2].T)
    np.testing.assert_allclose(rec.points[order], sample.positions[truth], atol=1e-6)
    assert rec.params["beta_deg"] == list(betas)
    # the default depth range follows the view that shifts most
    assert rec.params["depth_range_px"][1] == pytest.approx(8.0 / np.sin(np.deg2rad(max(betas))))
    # the angles belong to their views: read with the angles in another order, the heights come out wrong
    wrong = match_particles(_exact(sample.positions, sample.radii, betas), beta_deg=betas[1:] + betas[:1])
    score = score_particles(wrong.points, sample.positions, tolerance=10.0)
    assert score["rmse_z"] > 1.0, score


def test_per_view_angles_are_checked():
    with pytest.raises(InputError, match="one per view"):
        check_view_geometry([2.0, 2.5, 3.0], (0, 90, 180, 270))
    with pytest.raises(InputError, match="view 1"):
        check_view_geometry([2.0, 50.0, 3.0, 2.0], (0, 90, 180, 270))
    with pytest.raises(InputError, match="view 3"):
        check_view_geometry([2.0, 2.0, 3.0, float("nan")], (0, 90, 180, 270))
    with pytest.raises(InputError, match="every view angle beta is zero"):
        check_view_geometry([0, 0, 0, 0], (0, 90, 180, 270))
    with pytest.raises(InputError, match="views 2 and 3 shift the same way"):  # two views straight down
        check_view_geometry([2.0, 3.0, 0.0, 0.0], (0, 90, 180, 270))
    with pytest.raises(InputError, match="shift the same way"):
        check_view_geometry([2.0, 3.0, 2.0, 2.5], (0, 90, 0.5, 270))
    with pytest.raises(InputError, match="number of degrees or one number per view"):
        check_view_geometry(["a", 1, 2, 3], (0, 90, 180, 270))
    # one beta repeats an azimuth as before; two angles along one azimuth are two views
    with pytest.raises(InputError, match="repeat a direction"):
        check_view_geometry(2.0, (0, 0, 180, 270))
    betas, _ = check_view_geometry([1.0, 2.0, 2.0, 2.0], (0, 0, 120, 240))
    np.testing.assert_array_equal(betas, [1.0, 2.0, 2.0, 2.0])


def test_rendered_views_at_four_angles_recover_the_particles(tmp_path):
    scores = {}
    for name, beta in (("one", 3.0), ("four", BETAS)):
        sample = simulate_particle_views(40, seed=9_170_001, shape=(160, 160), beta_deg=beta, dose=200)
        result = reconstruct_particles(sample.views, beta_deg=beta)
        rec = result.reconstruction
        scores[name] = score_particles(rec.points[rec.all_views], sample.positions, shape=(160, 160),
                                       beta_deg=beta, margin=6)
    four, one = scores["four"], scores["one"]
    assert four["recall"] >= 0.9 and four["precision"] >= 0.9, four
    assert one["recall"] >= 0.9 and one["precision"] >= 0.9, one
    # the smallest view angle is 0.6 of the largest: the depth is about as good as at one angle
    assert four["rmse_z"] < 1.5 * one["rmse_z"], (four, one)
    assert result.params["beta_deg"] == list(BETAS)
    # the sample keeps its angles through a save and a load, and the command takes one per view
    sample.save(tmp_path / "set")
    assert load_particle_sample(tmp_path / "set").beta_deg == list(BETAS)
    views = [str(tmp_path / "set" / f"view_{c}.tif") for c in "ABCD"]
    assert main(["particles", *views, "--beta", ",".join(map(str, BETAS)), "-o", str(tmp_path / "out")]) == 0
    record = json.loads((tmp_path / "out" / "particles.json").read_text())
    assert record["params"]["beta_deg"] == list(BETAS)
    assert record["counts"]["matched_all_views"] == result.reconstruction.counts["matched_all_views"]
    assert main(["particles", *views, "--beta", "2,3", "-o", str(tmp_path / "bad")]) == 1
