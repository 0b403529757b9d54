"""The synthetic four-view particle sets: reproducible, hard spheres, the DESIGN 5 geometry."""

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.particles.geometry import project_particles
from napari_stereo_tem.synth.particles import hard_sphere_positions, load_particle_sample, simulate_particle_views


def test_same_seed_same_sample_and_hard_spheres():
    a = simulate_particle_views(40, seed=9000003, shape=(160, 200), dose=500.0)
    b = simulate_particle_views(40, seed=9000003, shape=(160, 200), dose=500.0)
    np.testing.assert_array_equal(a.views, b.views)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert a.views.shape == (4, 160, 200) and a.views.dtype == np.float32
    contact = a.params["contact_px"]
    nearest = cKDTree(a.positions).query(a.positions, k=2)[0][:, 1]
    assert nearest.min() >= contact - 1e-9
    assert np.all(np.abs(a.positions[:, 2]) <= a.params["slab_thickness_px"] / 2)
    assert a.params["seed"] == 9000003


def test_hard_sphere_positions_refuse_an_overfull_box():
    p = hard_sphere_positions(500, box=(100, 100, 20), contact=5.0, seed=1)
    assert cKDTree(p).query(p, k=2)[0][:, 1].min() >= 5.0
    with pytest.raises(InputError, match="fit"):
        hard_sphere_positions(5000, box=(50, 50, 10), contact=6.0, seed=1, max_attempts=5)


def test_one_particle_shifts_by_z_sin_beta_along_each_azimuth():
    beta, z = 3.0, 80.0
    s = simulate_particle_views(1, seed=9000004, shape=(64, 64), beta_deg=beta, slab_thickness_px=1.0,
                                background_amplitude=0.0)
    s.positions[:] = [32.0, 30.0, z]
    from napari_stereo_tem.synth.particles import render_particle_views

    views = render_particle_views(s.positions, s.radii, beta_deg=beta, azimuths_deg=s.azimuths_deg,
                                  shape=(64, 64), background_amplitude=0.0)
    shift = z * np.sin(np.deg2rad(beta))
    expected = [(32 + shift, 30), (32, 30 + shift), (32 - shift, 30), (32, 30 - shift)]
    for view, (ex, ey) in zip(views, expected):
        cy, cx = ndimage.center_of_mass(1.0 - view)
        assert abs(cx - ex) < 0.02 and abs(cy - ey) < 0.02
    np.testing.assert_allclose(project_particles(s.positions, beta_deg=beta)[:, 0], expected)


def test_save_and_load_round_trip(tmp_path):
    s = simulate_particle_views(25, seed=9000005, shape=(96, 96))
    s.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "params.json", "truth.csv", "view_A.tif", "view_B.tif", "view_C.tif", "view_D.tif"]
    assert (tmp_path / "truth.csv").read_text().splitlines()[0] == "x,y,z,radius"
    back = load_particle_sample(tmp_path)
    np.testing.assert_allclose(back.positions, s.positions, atol=1e-5)
    np.testing.assert_array_equal(back.views, s.views)
    assert back.beta_deg == s.beta_deg and back.params == s.params


def test_positions_only_for_large_sets():
    s = simulate_particle_views(3000, seed=9000006, shape=(1024, 1024), slab_thickness_px=100.0, render=False)
    assert s.positions.shape == (3000, 3) and s.views.size == 0


def test_dense_sets_have_the_asked_share_of_touching_particles(tmp_path):
    from napari_stereo_tem.synth.particles import (load_particle_sample, simulate_dense_particle_views,
                                                   touching_fraction)

    sample = simulate_dense_particle_views(150, seed=3, touching=(0.10, 0.20), radius_px=(3.0, 3.0), beta_deg=3.0,
                                           slab_thickness_px=120.0, dose=600.0, contrast_spread=0.2)
    share = touching_fraction(sample.positions, sample.radii, beta_deg=3.0)
    assert 0.10 <= share <= 0.20 and share == sample.params["touching_fraction"]
    assert sample.views.shape[1:] == (sample.params["dense"]["side_px"],) * 2
    # cores never overlap in 3D (hard spheres), though they may overlap in projection
    dist = np.linalg.norm(sample.positions[:, None] - sample.positions[None], axis=2) + np.eye(150) * 1e9
    assert dist.min() >= 6.0
    # the same positions, a sparser field: fewer touch
    assert touching_fraction(sample.positions * [2, 2, 1], sample.radii, beta_deg=3.0) < share
    sample.save(tmp_path)
    back = load_particle_sample(tmp_path)
    np.testing.assert_allclose(back.positions, sample.positions, atol=1e-4)
    assert (tmp_path / "truth.csv").read_text().splitlines()[0] == "x,y,z,radius"


def test_touching_fraction_of_a_hand_made_scene():
    from napari_stereo_tem.synth.particles import touching_fraction

    # two particles 5 px apart in x at the same height touch (r = 3); a third far away does not;
    # a fourth touches the third only in view A (its height shifts it by 10 sin(beta) towards +x)
    beta = 30.0
    points = np.array([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0], [50.0, 50.0, 0.0], [50.0 - 7.0, 50.0, 4.0]])
    radii = np.full(4, 3.0)
    assert touching_fraction(points[:3], radii[:3], beta_deg=beta) == pytest.approx(2 / 3)
    assert touching_fraction(points, radii, beta_deg=beta) == pytest.approx(1.0)
