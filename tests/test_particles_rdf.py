"""g(r) with the shell-inside-the-box edge correction, against a brute-force reference."""

import numpy as np
import pytest

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.particles.rdf import first_peak, radial_distribution, shell_volume_inside
from napari_stereo_tem.synth.particles import hard_sphere_positions


def brute_force_rdf(points, r_max, n_bins, bounds):
    """Every pair by a double loop; the per-particle in-box shell volume by the zone formula."""
    edges = np.linspace(0, r_max, n_bins + 1)
    n = len(points)
    counts = np.zeros(n_bins)
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            d = np.sqrt(np.sum((points[i] - points[j]) ** 2))
            if d < r_max:
                b = np.searchsorted(edges, d, side="right") - 1
                counts[b] += 1
    volume = np.prod(bounds[:, 1] - bounds[:, 0])
    nodes, weights = np.polynomial.legendre.leggauss(4)
    reach = np.zeros(n_bins)
    for b in range(n_bins):
        lo, hi = edges[b], edges[b + 1]
        for node, weight in zip(nodes, weights):
            r = 0.5 * (hi - lo) * node + 0.5 * (hi + lo)
            for p in points:
                frac = 1.0
                for a in range(3):
                    frac *= (min(r, p[a] - bounds[a, 0]) + min(r, bounds[a, 1] - p[a])) / (2 * r)
                reach[b] += weight * 0.5 * (hi - lo) * 4 * np.pi * r * r * frac
    return 0.5 * (edges[1:] + edges[:-1]), counts / ((n - 1) / volume * reach)


def test_equals_brute_force_to_1e6_per_bin():
    rng = np.random.default_rng(9000010)
    bounds = np.array([[0.0, 60.0], [0.0, 50.0], [-6.0, 6.0]])
    points = bounds[:, 0] + rng.random((150, 3)) * (bounds[:, 1] - bounds[:, 0])
    r, g = radial_distribution(points, r_max=20.0, n_bins=25, box=bounds)
    r_ref, g_ref = brute_force_rdf(points, 20.0, 25, bounds)
    np.testing.assert_allclose(r, r_ref, atol=1e-12)
    assert np.max(np.abs(g - g_ref)) <= 1e-6


def test_ideal_gas_in_a_thin_slab_is_one():
    rng = np.random.default_rng(9000011)
    bounds = np.array([[0.0, 400.0], [0.0, 400.0], [0.0, 10.0]])
    points = rng.random((4000, 3)) * (bounds[:, 1] - bounds[:, 0])
    _, g = radial_distribution(points, r_max=40.0, n_bins=8, box=bounds)
    assert np.all(np.abs(g - 1.0) < 0.08), g  # r_max is 4 slab thicknesses: the correction is needed


def test_hard_spheres_have_no_pairs_below_contact_and_a_contact_peak():
    bounds = np.array([[0.0, 200.0], [0.0, 200.0], [-10.0, 10.0]])
    points = hard_sphere_positions(2500, box=(200, 200, 20), contact=6.0, seed=9000012)
    r, g = radial_distribution(points, r_max=24.0, n_bins=24, box=bounds)
    assert np.all(g[r < 5.5] == 0)
    assert first_peak(r, g) == pytest.approx(6.5)


def test_shell_volume_of_a_particle_deep_inside_is_the_full_shell():
    bounds = np.array([[0.0, 100.0]] * 3)
    edges = np.array([0.0, 5.0, 10.0])
    vol = shell_volume_inside(np.array([[50.0, 50.0, 50.0]]), edges, bounds)
    np.testing.assert_allclose(vol, 4 / 3 * np.pi * np.diff(edges ** 3), rtol=1e-12)


def test_bad_points_are_refused():
    with pytest.raises(InputError, match="shape"):
        radial_distribution(np.zeros((5, 2)), r_max=1, n_bins=2)
    with pytest.raises(InputError, match="at least 2"):
        radial_distribution(np.zeros((1, 3)), r_max=1, n_bins=2)
