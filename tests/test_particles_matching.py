"""Matching detections of four views into 3D particles: known positions, one-to-one, three-view."""

import numpy as np
import pytest

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.particles import detect_particles, match_particles, project_particles, score_particles
from napari_stereo_tem.particles.geometry import solve_positions
from napari_stereo_tem.synth.particles import simulate_particle_views

BETA = 2.0


def truth_detections(positions, radii, *, beta=BETA, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    xy = project_particles(positions, beta_deg=beta)
    return [np.column_stack([v + rng.normal(0, noise, v.shape), radii]) for v in xy]


@pytest.fixture(scope="module")
def sample():
    return simulate_particle_views(120, seed=9000020, shape=(400, 400), slab_thickness_px=60.0, render=False)


def test_least_squares_inverts_the_projection():
    rng = np.random.default_rng(1)
    pts = rng.uniform(-50, 50, (30, 3))
    xy = project_particles(pts, beta_deg=2.5, azimuths_deg=(10, 100, 190, 280))
    back, resid = solve_positions(xy, beta_deg=2.5, azimuths_deg=(10, 100, 190, 280))
    np.testing.assert_allclose(back, pts, atol=1e-8)
    assert np.all(resid < 1e-8)


def test_exact_detections_give_the_known_positions(sample):
    rec = match_particles(truth_detections(sample.positions, sample.radii), beta_deg=BETA)
    assert rec.counts["matched_all_views"] == len(sample.positions)
    order = np.lexsort(rec.points[:, :2].T)
    truth = np.lexsort(sample.positions[:, :2].T)
    np.testing.assert_allclose(rec.points[order], sample.positions[truth], atol=1e-6)
    np.testing.assert_allclose(rec.radii[order], sample.radii[truth])


def test_noisy_detections_within_a_pixel(sample):
    dets = truth_detections(sample.positions, sample.radii, noise=0.03, seed=2)
    score = score_particles(match_particles(dets, beta_deg=BETA).points, sample.positions)
    assert score["recall"] == 1.0 and score["precision"] == 1.0
    assert score["rmse_3d"] < 1.0


def test_one_to_one_no_detection_used_twice(sample):
    dets = truth_detections(sample.positions, sample.radii, noise=0.05, seed=3)
    # Decoys: each reference particle gets a second candidate in view B on its search line.
    decoy = dets[1].copy()
    decoy[:, :2] += np.array([-1.0, 1.0]) * 0.7 * np.sin(np.deg2rad(BETA)) * 40
    dets[1] = np.vstack([dets[1], decoy])
    rec = match_particles(dets, beta_deg=BETA, tolerance=1.5)
    for k in range(4):
        used = rec.detection_index[:, k]
        used = used[used >= 0]
        assert len(np.unique(used)) == len(used)
    assert len(rec.points) <= len(sample.positions)


def test_particles_seen_in_three_views_are_reported_separately(sample):
    dets = truth_detections(sample.positions, sample.radii)
    missing_b = np.arange(5)
    dets[1] = np.delete(dets[1], missing_b, axis=0)
    missing_a = np.arange(10, 13)
    dets[0] = np.delete(dets[0], missing_a, axis=0)
    rec = match_particles(dets, beta_deg=BETA)
    counts = rec.counts
    assert counts["matched_all_views"] == len(sample.positions) - 8
    assert counts["matched_three_views"] == 8
    assert rec.three_view.shape == (8, 3)
    lost = sample.positions[np.r_[missing_b, missing_a]]
    score = score_particles(rec.three_view, lost)
    assert score["recall"] == 1.0 and score["rmse_3d"] < 1e-6
    assert np.all(rec.n_views[~rec.all_views] == 3)
    # Asked not to, the matcher keeps only the four-view particles.
    assert match_particles(dets, beta_deg=BETA, three_view=False).counts["matched_three_views"] == 0


def test_detect_and_match_a_small_clean_set():
    s = simulate_particle_views(40, seed=9000021, shape=(320, 320), beta_deg=3.0, slab_thickness_px=60.0)
    dets = [detect_particles(v) for v in s.views]
    rec = match_particles(dets, beta_deg=3.0)
    score = score_particles(rec.points, s.positions, shape=(320, 320), beta_deg=3.0, margin=6)
    assert score["recall"] >= 0.95 and score["precision"] >= 0.95
    assert score["rmse_3d"] < 0.5


def test_bad_geometry_is_refused(sample):
    dets = truth_detections(sample.positions, sample.radii)
    with pytest.raises(InputError, match="non-zero"):
        match_particles(dets, beta_deg=0.0)
    with pytest.raises(InputError, match="azimuth"):
        match_particles(dets[:3], beta_deg=BETA)
    with pytest.raises(InputError, match="repeat"):
        match_particles(dets, beta_deg=BETA, azimuths_deg=(0, 0, 180, 270))
    with pytest.raises(InputError, match="shape"):
        match_particles([d[:, 0] for d in dets], beta_deg=BETA)
