"""Particle detection in one view: automatic thresholds, manual override, sub-pixel centres."""

import numpy as np
import pytest
from scipy.spatial import cKDTree

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.particles import detect_particles, project_particles
from napari_stereo_tem.particles.detection import estimate_noise
from napari_stereo_tem.synth.particles import simulate_particle_views


@pytest.fixture(scope="module")
def clean():
    return simulate_particle_views(30, seed=9000030, shape=(256, 256), slab_thickness_px=30.0)


@pytest.fixture(scope="module")
def noisy():
    return simulate_particle_views(30, seed=9000030, shape=(256, 256), slab_thickness_px=30.0, dose=1000.0)


def _recall_precision(found, sample, tol=1.0):
    truth = project_particles(sample.positions, beta_deg=sample.beta_deg)[0]
    inside = (truth.min(axis=1) > 8) & (truth.max(axis=1) < 247)
    isolated = cKDTree(truth).query(truth, k=2)[0][:, 1] > 16
    dist, idx = cKDTree(found[:, :2]).query(truth[inside])
    near_truth = cKDTree(truth).query(found[:, :2])[0] < tol
    err = dist[isolated[inside] & (dist < tol)]
    return (dist < tol).mean(), near_truth.mean(), err, found[idx[dist < tol], 2] - sample.radii[inside][dist < tol]


@pytest.mark.parametrize("method", ["auto", "log", "threshold", "hough"])
def test_clean_view_methods(clean, method):
    found = detect_particles(clean.views[0], method=method)
    recall, precision, err, rad_err = _recall_precision(found, clean)
    floor = 0.85 if method == "hough" else 0.95
    assert recall >= floor and precision >= floor
    if method != "hough":
        assert np.median(err) < 0.05  # sub-pixel
        assert np.median(np.abs(rad_err)) < 1.0


def test_noisy_view_with_the_automatic_threshold(noisy):
    found = detect_particles(noisy.views[0])
    recall, precision, err, _ = _recall_precision(found, noisy)
    assert recall >= 0.95 and precision >= 0.95
    assert np.median(err) < 0.15


def test_pure_noise_gives_almost_nothing():
    rng = np.random.default_rng(9000031)
    image = rng.poisson(1000.0, (256, 256)) / 1000.0
    assert len(detect_particles(image)) <= 2
    assert estimate_noise(image) == pytest.approx(1 / np.sqrt(1000.0), rel=0.1)


def test_manual_threshold_overrides(noisy):
    auto = detect_particles(noisy.views[0])
    strict = detect_particles(noisy.views[0], threshold=1e6)
    loose = detect_particles(noisy.views[0], threshold=2.0)
    assert len(strict) == 0 and len(loose) > len(auto)


def test_bright_particles_with_polarity(clean):
    inverted = 2.0 - clean.views[0]
    dark = detect_particles(clean.views[0])
    bright = detect_particles(inverted, polarity="bright")
    auto = detect_particles(inverted, polarity="auto")
    assert len(bright) == len(dark) == len(auto)


def test_bad_views_are_refused():
    with pytest.raises(InputError, match="2-D"):
        detect_particles(np.zeros((4, 32, 32)))
    with pytest.raises(InputError, match="constant"):
        detect_particles(np.ones((32, 32)))
    with pytest.raises(InputError, match="method"):
        detect_particles(np.random.default_rng(0).random((32, 32)), method="magic")


@pytest.mark.parametrize("seed", [5_180_100, 5_180_103])
def test_polarity_is_read_through_the_shot_noise(seed):
    """A dense set at 20 e/px: the noise's own tails hid the particles' (both read as bright before)."""
    from napari_stereo_tem.particles.detection import resolve_polarity
    from napari_stereo_tem.synth.particles import simulate_dense_particle_views

    views = simulate_dense_particle_views(150, seed=seed, dose=20).views
    assert resolve_polarity(views[0], "auto") == "dark"
    assert resolve_polarity(views[0].max() - views[0], "auto") == "bright"
    # several views: one decision by the majority
    assert resolve_polarity(list(views), "auto") == "dark"
    assert resolve_polarity([v.max() - v for v in views], "auto") == "bright"
