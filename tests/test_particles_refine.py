"""Fitting particles to the four views: the sphere profile, touching and merged pairs, missed particles, uncertainty."""

import numpy as np
import pytest

from napari_stereo_tem.particles import detect_particles, match_particles, reconstruct_particles
from napari_stereo_tem.particles.refine import blurred_sphere_profile, refine_in_views
from napari_stereo_tem.synth.particles import render_particle_views

BETA = 2.0


def _views(positions, radii, *, shape=(96, 96), seed=0, beta=BETA):
    # A flat background: on images this small the generator's smooth background
    # varies on the scale of a particle and detection, not refinement, would be tested.
    return render_particle_views(np.asarray(positions, float), np.asarray(radii, float), beta_deg=beta,
                                 azimuths_deg=(0, 90, 180, 270), shape=shape, dose=2000.0, seed=seed,
                                 background_amplitude=0.0)


def _nearest_errors(points, truth):
    return np.array([np.min(np.linalg.norm(points - t, axis=1)) for t in truth])


@pytest.mark.parametrize("radius,blur", [(3.0, 0.6), (5.5, 1.0), (8.0, 2.0)])
def test_blurred_profile_keeps_the_sphere_volume(radius, blur):
    y, x = np.mgrid[-30:30:0.25, -30:30:0.25]
    profile = blurred_sphere_profile(np.hypot(x, y), radius, blur)
    volume = profile.sum() * 0.25 ** 2
    assert volume == pytest.approx(4 / 3 * np.pi * radius ** 3, rel=0.01)
    # far from the edge the blur does not matter: the centre is the diameter
    assert blurred_sphere_profile(np.array([0.0]), radius, 0.2)[0] == pytest.approx(2 * radius, rel=0.01)


def test_merged_pair_is_split_in_two():
    # Two particles 2 px apart in x-y and 30 px apart in height: one blob in every view.
    truth = np.array([[40.0, 48.0, 15.0], [42.0, 48.5, -15.0], [70.0, 20.0, 0.0], [20.0, 75.0, 5.0],
                      [75.0, 75.0, -10.0], [20.0, 20.0, 8.0]])
    radii = np.array([5.0, 4.0, 4.5, 4.5, 5.0, 4.0])
    views = _views(truth, radii)
    dets = [detect_particles(v) for v in views]
    matched = match_particles(dets, beta_deg=BETA)
    assert np.sum(_nearest_errors(matched.points, truth[:2]) > 3.0) >= 1  # matching alone cannot tell them apart
    refined = refine_in_views(views, matched)
    assert refined.params["refinement"]["split_in_two"] == 1
    assert len(refined.points) == len(matched.points) + 1
    errors = _nearest_errors(refined.points, truth)
    assert np.all(errors < 2.0), errors
    # the new particle has no detection of its own and no detection residual
    assert np.sum(np.all(refined.detection_index == -1, axis=1)) >= 1
    assert np.sum(np.isnan(refined.residuals)) >= 1


def test_touching_pairs_get_closer_to_the_truth():
    # Nine pairs that overlap in projection, one particle above the other: each pulls
    # the other's centroid, differently in every view.
    rng = np.random.default_rng(1)
    truth = []
    for cx in (40, 110, 180):
        for cy in (40, 110, 180):
            angle, gap, z = rng.uniform(0, np.pi), rng.uniform(7.5, 9.5), rng.uniform(15, 28)
            truth += [[cx, cy, z], [cx + gap * np.cos(angle), cy + gap * np.sin(angle), -z]]
    truth = np.array(truth, float)
    views = _views(truth, np.tile([5.0, 4.0], 9), shape=(224, 224), seed=3)
    matched = match_particles([detect_particles(v) for v in views], beta_deg=BETA)
    refined = refine_in_views(views, matched, split=False)
    assert len(refined.points) == len(matched.points) == len(truth)
    assert refined.params["refinement"]["fitted_in_views"] == len(truth)
    before = _nearest_errors(matched.points, truth)
    after = _nearest_errors(refined.points, truth)
    assert after.mean() < 0.9 * before.mean(), (before, after)
    assert after.max() < 2.0
    # the errors are what the fit says they are (z dominates at beta = 2 degrees)
    order = np.argmin(np.linalg.norm(refined.points[:, None] - truth[None], axis=2), axis=1)
    z_err = np.abs(refined.points[:, 2] - truth[order, 2])
    assert 0.3 < np.median(z_err / refined.std[:, 2]) < 1.5


def test_isolated_particles_are_not_split():
    rng = np.random.default_rng(5)
    grid = np.array([[x, y] for x in (16, 40, 64, 88) for y in (16, 40, 64, 88)], float)
    truth = np.column_stack([grid + rng.uniform(-2, 2, grid.shape), rng.uniform(-25, 25, len(grid))])
    radii = rng.uniform(3.0, 6.0, len(grid))
    views = _views(truth, radii, shape=(104, 104), seed=5)
    matched = match_particles([detect_particles(v) for v in views], beta_deg=BETA)
    refined = refine_in_views(views, matched)
    assert refined.params["refinement"]["split_in_two"] == 0
    assert len(refined.points) == len(matched.points) == len(truth)


def test_pipeline_refines_unless_told_not_to():
    truth = np.array([[40.0, 48.0, 15.0], [42.0, 48.5, -15.0], [70.0, 20.0, 0.0], [20.0, 75.0, 5.0],
                      [75.0, 75.0, -10.0], [20.0, 20.0, 8.0]])
    views = _views(truth, np.array([5.0, 4.0, 4.5, 4.5, 5.0, 4.0]))
    with_fit = reconstruct_particles(list(views), beta_deg=BETA)
    without = reconstruct_particles(list(views), beta_deg=BETA, refine=False)
    assert len(with_fit.reconstruction.points) == len(without.reconstruction.points) + 1
    assert with_fit.params["matching"]["refinement"]["split_in_two"] == 1
    assert "refinement" not in without.params["matching"]


def test_a_particle_merged_with_its_neighbour_in_one_view_is_found():
    # The second particle sits where, in view A (azimuth 0), the first one's shift puts it:
    # in view A the two are one blob; in C they are 10 px apart, in B and D 7 px (touching).
    beta = 6.0
    s = np.sin(np.deg2rad(beta))
    first = np.array([44.0, 48.0, 25.0])
    second = np.array([44.0 + 50 * s, 48.0, -25.0])
    truth = np.array([first, second, [16.0, 16.0, 0.0], [80.0, 16.0, 10.0], [16.0, 80.0, -10.0], [80.0, 80.0, 5.0]])
    views = _views(truth, np.full(len(truth), 4.0), beta=beta)
    matched = match_particles([detect_particles(v) for v in views], beta_deg=beta)
    refined = refine_in_views(views, matched)
    errors = _nearest_errors(refined.points, truth)
    assert np.all(errors < 1.5), errors
    assert len(refined.points) == len(truth)
    assert refined.n_views[:2].tolist() == [4, 4]  # the fit holds both in all four views


def test_fit_standard_deviations_match_the_scatter():
    # One particle, many noise draws: the reported std of z is the scatter of z.
    from napari_stereo_tem.particles.detection import estimate_noise
    from napari_stereo_tem.particles.fit import fit_particles
    from napari_stereo_tem.particles.geometry import view_directions
    from napari_stereo_tem.particles.refine import fit_signal

    truth = np.array([[24.0, 24.0, 12.0]])
    shift = np.sin(np.deg2rad(BETA)) * view_directions((0, 90, 180, 270))
    z, std = [], []
    for seed in range(30):
        views = render_particle_views(truth, [4.0], beta_deg=BETA, azimuths_deg=(0, 90, 180, 270), shape=(48, 48),
                                      dose=500.0, seed=seed, background_amplitude=0.0, psf_sigma=0.6)
        signals = [fit_signal(v, radius_max=6.0) for v in views]
        fit = fit_particles(signals, [estimate_noise(x) for x in signals], truth + [0.3, -0.2, 4.0], [3.5], [0.05],
                            shift, blur=0.7)
        z.append(fit["points"][0, 2])
        std.append(fit["std"][0, 2])
    scatter = np.std(z)
    assert 0.6 < np.median(std) / scatter < 1.6, (np.median(std), scatter)
    assert abs(np.mean(z) - 12.0) < 3 * scatter / np.sqrt(len(z)) + 0.3


def test_localisation_floor_falls_with_dose_and_beta():
    from napari_stereo_tem.particles.geometry import view_directions
    from napari_stereo_tem.particles.refine import localisation_floor

    def floor(noise, beta):
        shift = np.sin(np.deg2rad(beta)) * view_directions((0, 90, 180, 270))
        return localisation_floor(np.full(4, noise), shift, radius=3.0, amplitude=0.08, blur=0.7)

    low, high = floor(0.1, 3.0), floor(0.01, 3.0)
    np.testing.assert_allclose(high, low / 10, rtol=1e-6)  # std is proportional to the noise
    assert low[2] > 10 * low[0]  # depth is the least certain at small beta
    wide = floor(0.1, 6.0)
    assert wide[2] == pytest.approx(low[2] * np.sin(np.deg2rad(3.0)) / np.sin(np.deg2rad(6.0)), rel=0.02)


def test_single_fits_do_not_depend_on_the_chunk_size():
    from napari_stereo_tem.particles.geometry import view_directions
    from napari_stereo_tem.particles.refine import fit_signal, fit_single

    truth = np.array([[30.0, 30.0, 10.0], [60.0, 32.0, -12.0], [45.0, 70.0, 0.0], [75.0, 70.0, 20.0],
                      [20.0, 75.0, -5.0]])
    radii = np.array([4.0, 5.0, 4.5, 3.5, 5.0])
    views = _views(truth, radii)
    signals = [fit_signal(v) for v in views]
    shift = np.sin(np.deg2rad(BETA)) * view_directions((0, 90, 180, 270))
    whole = fit_single(signals, truth + 0.3, radii, shift, blur=0.7)
    pieces = fit_single(signals, truth + 0.3, radii, shift, blur=0.7, chunk=2)
    for key in whole:
        np.testing.assert_allclose(pieces[key], whole[key], rtol=1e-8, atol=1e-10)
    assert whole["ok"].all()
    np.testing.assert_allclose(whole["points"], truth, atol=1.0)  # z to a pixel at beta = 2 degrees
    np.testing.assert_allclose(whole["radii"], radii, atol=0.5)


def test_blur_estimate_follows_the_probe():
    from napari_stereo_tem.particles.detection import estimate_noise
    from napari_stereo_tem.particles.geometry import view_directions
    from napari_stereo_tem.particles.refine import estimate_blur, fit_signal

    grid = np.array([[x, y, z] for x, y, z in zip((20, 50, 80, 20, 50, 80), (20, 20, 20, 70, 70, 70),
                                                  (5, -10, 15, 0, 8, -6))], float)
    shift = np.sin(np.deg2rad(BETA)) * view_directions((0, 90, 180, 270))
    blurs = []
    for psf in (0.4, 1.2, 2.0):
        views = render_particle_views(grid, np.full(6, 4.0), beta_deg=BETA, azimuths_deg=(0, 90, 180, 270),
                                      shape=(96, 100), dose=20000.0, seed=1, background_amplitude=0.0, psf_sigma=psf)
        signals = [fit_signal(v, radius_max=6.0) for v in views]
        blurs.append(estimate_blur(signals, [estimate_noise(s) for s in signals], grid, np.full(6, 4.0), shift))
    assert blurs[0] < blurs[1] < blurs[2], blurs
    # the pixel adds its own width (1/sqrt(12) px) to the probe's
    assert abs(blurs[2] - np.hypot(2.0, 0.29)) < 0.4, blurs


def test_fitting_independent_sets_apart_gives_the_joint_fit():
    from napari_stereo_tem.particles.fit import fit_particles
    from napari_stereo_tem.particles.geometry import view_directions
    from napari_stereo_tem.particles.refine import _independent_parts

    rng = np.random.default_rng(4)
    shift = np.sin(np.deg2rad(3.0)) * view_directions([0, 90, 180, 270])
    points = np.column_stack([rng.uniform(20, 236, 260), rng.uniform(20, 236, 260), rng.uniform(-20, 20, 260)])
    radii = np.full(len(points), 2.5)
    parts = _independent_parts((256, 256), points, radii, shift, 1.0, min_size=10)
    assert len(parts) == 2 and sorted(np.concatenate(parts)) == list(range(len(points)))
    signals = [rng.normal(0, 0.01, (256, 256)) for _ in range(4)]
    joint = fit_particles(signals, np.full(4, 0.01), points, radii, np.ones(len(points)), shift, blur=1.0,
                          iterations=3)
    for part in parts:
        alone = fit_particles(signals, np.full(4, 0.01), points[part], radii[part], np.ones(len(part)), shift,
                              blur=1.0, iterations=3)
        np.testing.assert_allclose(alone["points"], joint["points"][part], atol=1e-9)


def test_a_view_recorded_with_an_offset_gives_the_same_particles():
    """A detector segment's black level adds an offset to one view, which lowers its particles' optical
    density; the fit gives a particle one contrast in all views, so that view pulled the fit (the bundled
    views with half their mean added to view C: 59 particles, 50 of the 57 in place). Each view's
    signal is now brought to the common contrast first."""
    from pathlib import Path

    import tifffile
    from scipy.spatial import cKDTree

    folder = Path(__file__).resolve().parents[1] / "sample_data" / "particles"
    views = [tifffile.imread(folder / f"view_{name}.tif").astype(np.float32) for name in "ABCD"]
    clean = reconstruct_particles(views, beta_deg=3)
    offset = list(views)
    offset[2] = views[2] + 0.5 * float(views[2].mean())
    shifted = reconstruct_particles(offset, beta_deg=3)
    first, second = clean.reconstruction.points, shifted.reconstruction.points
    assert len(second) == len(first)
    assert np.all(cKDTree(first).query(second)[0] < 1.0)
    contrast = shifted.params["matching"]["refinement"]["contrast_per_view"]
    assert clean.params["matching"]["refinement"]["contrast_per_view"] == [1.0, 1.0, 1.0, 1.0]
    assert 0.5 < contrast[2] < 0.7 and all(abs(c - 1.0) < 0.02 for c in contrast[:2] + contrast[3:])
