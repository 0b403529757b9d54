"""One smooth curve per line: sub-pixel disparity from the images, the robust spline, the uncertainty."""

import numpy as np
import pytest

from napari_stereo_tem.stereo.line_fit import (
    fit_disparity_curve, fit_lines, image_disparity, line_angle_sine, line_disparity_map, line_disparity_search,
    line_planes,
)
from napari_stereo_tem.stereo.projection import depth_from_disparity


def _line_image(shape, x_of_row, sigma=1.5):
    """A bright ridge (like a probability map) at column x_of_row(row) on every row."""
    rows, cols = shape
    yy, xx = np.mgrid[:rows, :cols].astype(float)
    return np.exp(-0.5 * ((xx - x_of_row(yy)) / sigma) ** 2).astype(np.float32)


def test_image_disparity_finds_a_sub_pixel_shift_from_a_rough_start():
    shape = (80, 120)
    left = _line_image(shape, lambda y: 40 + 0.3 * y)
    right = _line_image(shape, lambda y: 40 + 0.3 * y + 3.37)
    y = np.arange(10, 70, dtype=float)
    x = 40 + 0.3 * y
    d, std, peak = image_disparity(left, right, x, y, np.full(len(y), 4.0))
    assert np.all(np.isfinite(d)) and np.all(peak > 0.95)
    assert np.abs(d - 3.37).max() < 0.08
    assert np.all(std > 0)
    # too far from the start: the peak lies outside the search, no answer rather than a wrong one
    far, _, _ = image_disparity(left, right, x, y, np.full(len(y), -6.0))
    assert np.isnan(far).all()


def test_curve_fit_ignores_outliers_and_fills_a_gap_with_larger_uncertainty():
    rng = np.random.default_rng(0)
    s = np.arange(120, dtype=float)
    truth = 2.0 + 1.5 * np.sin(s / 25.0)
    d = truth + rng.normal(0, 0.2, len(s))
    d[::10] += 6.0  # one point in ten is a mismatch
    d[50:65] = np.nan  # nothing measured there
    fit, std, inliers = fit_disparity_curve(s, d, np.full(len(s), 0.2))
    assert np.abs(fit - truth).max() < 0.35
    assert not inliers[::10].any() and inliers[1:50].mean() > 0.9
    assert std[57] > 1.2 * np.median(std[:40])
    within = np.abs(fit - truth)[:40] <= std[:40]
    assert 0.4 < within.mean() <= 1.0


def test_row_parallel_stretch_gets_little_weight():
    t = np.linspace(0, 1, 50)
    vertical = np.column_stack([np.full(50, 5.0), 50 * t])
    horizontal = np.column_stack([50 * t, np.full(50, 5.0)])
    assert line_angle_sine(vertical).min() > 0.99
    assert line_angle_sine(horizontal).max() < 0.01


def test_fit_lines_on_a_two_view_ridge_pair_gives_the_true_depth_and_drops_one_sided_lines():
    shape = (100, 140)
    angle = 8.0
    d_true = lambda y: 2.0 + 0.03 * y  # noqa: E731 - disparity changing along the line
    left = _line_image(shape, lambda y: 40 + 0.2 * y) + _line_image(shape, lambda y: 100 + 0 * y)
    right = _line_image(shape, lambda y: 40 + 0.2 * y + d_true(y))  # the second line is not in the right view
    mask = left > 0.5
    start = np.full(shape, 2.0, dtype=np.float32)
    lines, stds = fit_lines(mask, left, right, start, angle)
    assert len(lines) == 1 and len(stds[0]) == len(lines[0])
    line = lines[0]
    assert np.abs(line[:, 0] - (40 + 0.2 * line[:, 1]) - d_true(line[:, 1]) / 2).max() < 0.3  # x at the mean tilt
    z_true = depth_from_disparity(d_true(line[:, 1]), angle)
    assert np.abs(line[:, 2] - z_true).max() < 1.0
    assert np.all(stds[0] > 0) and np.median(stds[0]) < 1.0


def _one_line_pair(slope: float, shape=(100, 140), disparity: float = 2.0):
    """One straight line ``x = 40 + slope y`` seen at ``disparity``: left, right, mask, matcher's start."""
    left = _line_image(shape, lambda y: 40 + slope * y)
    right = _line_image(shape, lambda y: 40 + slope * y + disparity)
    return left, right, left > 0.5, np.full(shape, disparity, dtype=np.float32)


def test_points_the_right_view_does_not_confirm_are_left_out():
    shape = (100, 140)
    angle = 8.0
    left, right, mask, start = _one_line_pair(0.2, shape)
    confirmed = np.full(shape, 2.0, dtype=np.float32)
    plain, _ = fit_lines(mask, left, right, start, angle, disparity_right=confirmed)
    z_true = depth_from_disparity(2.0, angle)
    assert len(plain) == 1 and np.abs(plain[0][:, 2] - z_true).max() < 1.0
    # the right view gives another disparity back on most of the line: the line is not trusted
    disputed = confirmed.copy()
    disputed[:70] = 8.0
    assert fit_lines(mask, left, right, start, angle, disparity_right=disputed)[0] == []
    # on a short stretch only: those points are filled in by the curve, the line keeps its depth
    disputed = confirmed.copy()
    disputed[40:50] = 8.0
    lines, _ = fit_lines(mask, left, right, start, angle, disparity_right=disputed)
    assert len(lines) == 1 and np.abs(lines[0][:, 2] - z_true).max() < 1.0
    assert fit_lines(mask, left, right, start, angle, disparity_right=disputed, max_lr_difference=10.0)[0]


def test_planes_of_lines():
    t = np.linspace(0, 1, 40)
    in_plane = np.column_stack([30 * np.cos(3 * t), 30 * np.sin(3 * t), 0.5 * 30 * np.cos(3 * t)])  # z = x / 2
    straight = np.column_stack([t, 2 * t, 3 * t]) * 20
    planes = line_planes([in_plane, straight])
    normal = np.array(planes[0]["normal"])
    assert np.allclose(np.abs(normal), np.abs([-0.5, 0, 1]) / np.sqrt(1.25), atol=1e-6)
    assert planes[0]["rms"] == pytest.approx(0.0, abs=1e-9) and normal[2] >= 0
    assert planes[1] is None


def _pile_up(shape, spacing, d_of_row, n_lines=3, x0=30.0, slope=0.2):
    """Left and right ridge images of ``n_lines`` parallel lines ``spacing`` px apart, disparity ``d_of_row``."""
    left = sum(_line_image(shape, lambda y, k=k: x0 + k * spacing + slope * y) for k in range(n_lines))
    right = sum(_line_image(shape, lambda y, k=k: x0 + k * spacing + slope * y + d_of_row(y)) for k in range(n_lines))
    return left, right


def test_line_search_pulls_a_wrong_partner_stretch_back_to_the_line():
    shape = (120, 160)
    spacing = 9.0
    d_true = lambda y: 2.0 + 0.02 * y  # noqa: E731
    left, right = _pile_up(shape, spacing, d_true)
    y = np.arange(5, 115, dtype=float)
    x = 30 + spacing + 0.2 * y  # the middle line
    start = d_true(y)
    start[70:100] -= spacing  # the matcher took the left neighbour's partner on a stretch
    # a search of 2 px around the start stays on the wrong partner there
    near, _, _ = image_disparity(left, right, x, y, start)
    assert np.nanmax(np.abs(near[75:95] - d_true(y[75:95]))) > spacing - 2
    path = line_disparity_search(left, right, x, y, start, search=10)
    assert np.abs(path - d_true(y)).max() <= 1.0
    sub = line_disparity_search(left, right, x, y, start, search=10, subpixel=True)
    assert np.abs(sub - d_true(y)).max() < np.abs(path - d_true(y)).max() + 1e-9
    assert np.isnan(line_disparity_search(left, right, x, y, np.full(len(y), np.nan))).all()


def test_line_disparity_map_measures_along_the_skeleton_only():
    shape = (100, 140)
    left, right = _pile_up(shape, 12.0, lambda y: 3.0 + 0 * y, n_lines=1)
    mask = left > 0.5
    out = line_disparity_map(mask, left, right, np.full(shape, 1.0))
    measured = np.isfinite(out)
    assert measured.sum() > 60 and not (measured & ~mask).any()
    assert np.abs(out[measured] - 3.0).max() < 0.3


def test_right_lines_keep_a_stretch_only_the_right_matcher_disputes():
    shape = (100, 140)
    angle = 8.0
    left, right, mask, start = _one_line_pair(0.4, shape)
    disputed = np.full(shape, 2.0, dtype=np.float32)
    disputed[30:90] = 8.0  # the right view's matcher is wrong over most of the line
    report = []
    fit_lines(mask, left, right, start, angle, disparity_right=disputed, report=report)
    assert report[0]["reason"] == "few_inliers" and report[0]["lr_rejected"].sum() > 30
    right_lines = line_disparity_map(mask[:, ::-1], right[:, ::-1], left[:, ::-1], start[:, ::-1])[:, ::-1]
    report = []
    lines, _ = fit_lines(mask, left, right, start, angle, disparity_right=disputed, line_search=4,
                         line_disparity_right=right_lines, report=report)
    z_true = depth_from_disparity(2.0, angle)
    assert len(lines) == 1 and np.abs(lines[0][:, 2] - z_true).max() < 1.0
    assert report[0]["reason"] is None and (report[0]["line"] == 0).sum() == len(lines[0])
    # the rescue needs the matcher's own confirmation on part of the line
    wrong_everywhere = np.full(shape, 8.0, dtype=np.float32)
    assert fit_lines(mask, left, right, start, angle, disparity_right=wrong_everywhere, line_search=4,
                     line_disparity_right=right_lines)[0] == []


def _noisy_ridges(point_sets, shape, seed=1):
    """One image per set of points: a Gaussian ridge (sigma 1.5 px) along them plus noise (std 0.05)."""
    from scipy.spatial import cKDTree

    yy, xx = np.mgrid[:shape[0], :shape[1]].astype(float)
    grid = np.column_stack([xx.ravel(), yy.ravel()])
    rng = np.random.default_rng(seed)
    return [(np.exp(-0.5 * (cKDTree(points).query(grid)[0].reshape(shape) / 1.5) ** 2)
             + rng.normal(0, 0.05, shape)).astype(np.float32) for points in point_sets]


def test_a_path_turning_from_one_line_onto_another_is_fitted_as_two_lines_when_asked():
    from napari_stereo_tem.stereo.skeleton_graph import split_at_corners

    shape = (100, 200)
    t = np.linspace(0, 1, 2000)
    # in the left view two lines meet at a corner (60 degrees); their disparities are 2 and 6 px
    a = np.column_stack([30 + 8 * t, 10 + 40 * t])
    b = np.column_stack([38 + 60 * t, 50 + 20 * t])
    assert len(split_at_corners(np.vstack([a[::50], b[::50]]), max_turn_deg=45)) == 2
    arc = 60 * np.column_stack([np.cos(t * np.pi), np.sin(t * np.pi)])[::40]  # radius 60: smooth, not cut
    assert len(split_at_corners(arc, max_turn_deg=45)) == 1
    left, right = _noisy_ridges([np.vstack([a, b]), np.vstack([a + [2.0, 0.0], b + [6.0, 0.0]])], shape)
    rows = np.arange(shape[0])[:, None]
    start = np.broadcast_to(np.where(rows < 50, 2.0, 6.0), shape).astype(np.float32)  # the matcher's start
    depth_per_disparity = 1 / (2 * np.sin(np.deg2rad(4.0)))

    def error_on_b(lines):
        points = np.concatenate(lines)
        far = points[points[:, 1] > 56]  # on b, beyond 8 px of the corner
        return np.median(np.abs(far[:, 2] - 6.0 * depth_per_disparity))

    cut, _ = fit_lines(left > 0.5, left, right, start, 8.0, max_corner_deg=45)
    whole, _ = fit_lines(left > 0.5, left, right, start, 8.0)
    assert len(cut) == 2 and len(whole) == 1
    assert error_on_b(cut) < 1.0 < error_on_b(whole)


def test_points_whose_disparity_is_too_uncertain_are_not_triangulated():
    shape = (100, 200)
    t = np.linspace(0, 1, 2000)
    # steep for 40 rows (well measured), then nearly along the rows (little depth information)
    pts = np.vstack([np.column_stack([30 + 8 * t, 10 + 40 * t]), np.column_stack([38 + 150 * t, 50 + 12 * t])])
    left, right = _noisy_ridges([pts, pts + [2.0, 0.0]], shape)
    mask = left > 0.5
    start = np.full(shape, 2.0, dtype=np.float32)
    report = []
    everything, all_stds = fit_lines(mask, left, right, start, 8.0, max_disparity_std=None, report=report)
    fitted_std = report[0]["std"]
    limit = float(np.percentile(fitted_std[np.isfinite(fitted_std)], 60))
    kept, kept_stds = fit_lines(mask, left, right, start, 8.0, max_disparity_std=limit)
    n_all, n_kept = sum(map(len, everything)), sum(map(len, kept))
    assert 0 < n_kept < n_all
    depth_per_disparity = 1 / (2 * np.sin(np.deg2rad(4.0)))
    assert np.concatenate(kept_stds).max() <= limit * depth_per_disparity + 1e-9
    assert np.concatenate(all_stds).max() > limit * depth_per_disparity
    # the well-measured steep part stays
    assert min(line[:, 1].min() for line in kept) < 15


def test_the_row_correlation_equals_one_patch_per_shift():
    from scipy.ndimage import map_coordinates

    from napari_stereo_tem.stereo.line_disparity import _centred_patches, _row_correlation

    rng = np.random.default_rng(3)
    left, right = rng.random((60, 80)), rng.random((60, 80))
    x, y = rng.uniform(10, 60, 7), rng.uniform(5, 55, 7)
    first = np.round(rng.uniform(-3, 3, 7)) - 2
    ncc, norms = _row_correlation(left, right, x, y, first, 5, half_height=2, half_width=4)
    dy, dx = np.arange(-2, 3.0), np.arange(-4, 5.0)
    for i in range(7):
        rows, cols = np.meshgrid(y[i] + dy, x[i] + dx, indexing="ij")
        patch_l = map_coordinates(left, [rows, cols], order=1, mode="nearest")[None]
        for j in range(5):  # the right patch at each shift on its own
            patch_r = map_coordinates(right, [rows, cols + first[i] + j], order=1, mode="nearest")[None, None]
            a, b, na, nb = _centred_patches(patch_l, patch_r, dx, 3.0)
            assert ncc[i, j] == pytest.approx(float((a * b).sum() / (na * nb)[0, 0]), abs=1e-12)
        assert norms[i] == pytest.approx(float(na[0]), abs=1e-12)
