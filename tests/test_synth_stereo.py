"""Synthetic stereo pairs: the truth is exact and reproducible."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.stereo.projection import project_points, triangulate, triangulate_asymmetric
from napari_stereo_tem.synth import (TEST_SEEDS, TRAIN_SEEDS, VAL_SEEDS, load_stereo_sample, make_scene,
                                     make_stereo_pair, render_views)
from napari_stereo_tem.synth.background import PERLIN_RANGES, draw_perlin_params
from napari_stereo_tem.synth.seeds import draw_seeds, split_of_seed

SHAPE = (160, 192)


def test_seed_ranges_are_disjoint_and_documented():
    assert TRAIN_SEEDS.stop == VAL_SEEDS.start and VAL_SEEDS.stop == TEST_SEEDS.start
    assert (TRAIN_SEEDS.start, TEST_SEEDS.stop) == (0, 10_000_000)
    assert split_of_seed(4_999_999) == "train" and split_of_seed(5_000_000) == "val"
    assert split_of_seed(9_000_000) == "test"
    drawn = draw_seeds("test", 50, seed=3)
    assert len(set(drawn)) == 50 and all(s in TEST_SEEDS for s in drawn)
    assert drawn == draw_seeds("test", 50, seed=3)
    with pytest.raises(InputError):
        split_of_seed(10_000_000)


def test_perlin_parameters_follow_the_appendix_table():
    rng = np.random.default_rng(0)
    for _ in range(20):
        params = draw_perlin_params(rng)
        for name, (lo, hi) in PERLIN_RANGES.items():
            assert lo <= params[name] <= hi
        assert params["O1"] <= params["O2"]


def _segments(lines, tilt, axis_col):
    a, b, pa, pb = [], [], [], []
    for line in lines:
        xy = project_points(line, tilt, axis_col=axis_col)
        a.append(xy[:-1]), b.append(xy[1:]), pa.append(line[:-1]), pb.append(line[1:])
    return (np.concatenate(v) for v in (a, b, pa, pb))


def _brute_force_foot(pix, lines, tilt, axis_col):
    """Nearest point of the true polylines (as projected) to each pixel, its 3D point, and the margin
    to the nearest other line."""
    a, b, pa, pb = _segments(lines, tilt, axis_col)
    line_of = np.concatenate([np.full(len(l) - 1, k) for k, l in enumerate(lines)])
    ab = b - a
    rel = pix[:, None, :] - a[None]
    t = np.clip((rel * ab[None]).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12)[None], 0, 1)
    dist = np.linalg.norm(rel - t[..., None] * ab[None], axis=-1)
    best = dist.argmin(1)
    rows = np.arange(len(pix))
    foot = pa[best] + t[rows, best][:, None] * (pb[best] - pa[best])
    other = np.where(line_of[None, :] == line_of[best][:, None], np.inf, dist).min(1)
    return foot, dist[rows, best], other - dist[rows, best]


@pytest.mark.parametrize("seed", [9_000_000, 9_000_007])
def test_projected_true_lines_land_on_mask_pixels(seed):
    sample = make_stereo_pair(seed, shape=SHAPE, loops=True, n_groups=3)
    assert sample.lines_3d
    n_inside = 0
    for tilt, mask in zip(sample.tilts_deg, (sample.mask_left, sample.mask_right)):
        for line in sample.lines_3d:
            xy = np.rint(project_points(line, tilt, axis_col=sample.axis_col)).astype(int)
            inside = (xy[:, 0] >= 0) & (xy[:, 0] < SHAPE[1]) & (xy[:, 1] >= 0) & (xy[:, 1] < SHAPE[0])
            assert np.all(mask[xy[inside, 1], xy[inside, 0]] == 1)
            n_inside += inside.sum()
    assert n_inside > 200


@pytest.mark.parametrize("seed,tilts", [(9_000_001, None), (9_000_002, (-2.0, 9.0))])
def test_triangulating_true_disparity_recovers_true_depth(seed, tilts):
    sample = make_stereo_pair(seed, shape=SHAPE, loops=True, n_groups=3, tilts_deg=tilts, stereo_angle_deg=6.0)
    t_left, t_right = sample.tilts_deg
    rows, cols = SHAPE
    for view, (disp, mask, tilt) in enumerate(((sample.disparity_left, sample.mask_left, t_left),
                                               (sample.disparity_right, sample.mask_right, t_right))):
        assert np.array_equal(np.isfinite(disp), mask == 1)
        yy, xx = np.nonzero(mask == 1)
        yy, xx = yy[::5], xx[::5]
        d = disp[yy, xx].astype(float)
        x_left, x_right = (xx, xx + d) if view == 0 else (xx - d, xx)
        if tilts is None:
            points = triangulate(x_left, yy, x_right, sample.stereo_angle_deg, axis_col=sample.axis_col)
        else:
            points = triangulate_asymmetric(x_left, yy, x_right, t_left, t_right, axis_col=sample.axis_col)
        pix = np.column_stack([xx, yy]).astype(float)
        foot, dist, margin = _brute_force_foot(pix, sample.lines_3d, tilt, sample.axis_col)
        clear = margin > 0.5  # away from crossings, where "nearest line" is ambiguous
        assert clear.mean() > 0.8
        assert np.max(np.abs(points[clear, 2] - foot[clear, 2])) < 0.05
        # The pixel lies within the line's mask radius of the foot's projection.
        assert np.max(dist) < 2.6


def test_same_seed_same_bytes_and_roundtrip(tmp_path):
    a = make_stereo_pair(9_000_003, shape=SHAPE, loops=True).save(tmp_path / "a")
    b = make_stereo_pair(9_000_003, shape=SHAPE, loops=True).save(tmp_path / "b")
    c = make_stereo_pair(9_000_004, shape=SHAPE, loops=True).save(tmp_path / "c")
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(["left.tif", "right.tif", "mask_left.tif", "mask_right.tif", "disparity_left.tif",
                            "disparity_right.tif", "lines_3d.csv", "params.json"])
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "left.tif").read_bytes() != (c / "left.tif").read_bytes()
    params = json.loads((a / "params.json").read_text())
    assert params["seed"] == 9_000_003 and params["scene"]["background"]["kind"] == "perlin"
    back = load_stereo_sample(a)
    original = make_stereo_pair(9_000_003, shape=SHAPE, loops=True)
    assert np.array_equal(back.left, original.left) and back.left.dtype == np.float32
    assert np.array_equal(back.mask_right, original.mask_right) and back.mask_right.dtype == np.uint8
    assert np.array_equal(back.disparity_left, original.disparity_left, equal_nan=True)
    assert len(back.lines_3d) == len(original.lines_3d)
    for got, want in zip(back.lines_3d, original.lines_3d):
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert back.tilts_deg == original.tilts_deg and back.axis_col == original.axis_col


def test_outputs_have_the_documented_types():
    s = make_stereo_pair(9_000_005, shape=SHAPE)
    for img in (s.left, s.right):
        assert img.dtype == np.float32 and img.shape == SHAPE and 0 <= img.min() and img.max() <= 1
    assert set(np.unique(s.mask_left)) <= {0, 1, 2}
    assert s.tilts_deg == (-4.0, 4.0) and s.axis_col == (SHAPE[1] - 1) / 2
    json.dumps(s.params, allow_nan=False)


def test_background_has_parallax_and_views_differ():
    scene = make_scene(9_000_006, shape=SHAPE, n_groups=0, distractors=False)
    views = render_views(scene, (-5.0, 5.0), dose=None)
    depth = views.background_depth[0]
    assert np.ptp(depth) > 5.0  # varied disparities for keypoints
    assert not np.array_equal(views.images[0], views.images[1])
    assert not np.any(views.masks[0])


@pytest.mark.parametrize("background", ["plain", "patch"])
def test_background_variants(background):
    patch = np.random.default_rng(1).random((40, 50)) if background == "patch" else background
    s = make_stereo_pair(9_000_008, shape=SHAPE, background=patch, dose=0)
    assert s.params["scene"]["background"]["kind"] == background
    assert np.all(np.isfinite(s.left))


def test_lines_darker_in_bright_field_and_brighter_in_dark_field():
    for dark, sign in ((False, -1), (True, 1)):
        s = make_stereo_pair(9_000_009, shape=SHAPE, dark_field=dark, dose=0, distractors=False,
                             background="plain")
        on, off = s.left[s.mask_left == 1].mean(), s.left[s.mask_left == 0].mean()
        assert sign * (on - off) > 0.02


def test_bad_input_is_refused():
    with pytest.raises(InputError):
        make_stereo_pair(0, stereo_angle_deg=0.0)
    with pytest.raises(InputError):
        make_stereo_pair(0, shape=(8, 8))
    with pytest.raises(InputError):
        make_stereo_pair(0, background="marble")
    with pytest.raises(InputError):
        make_stereo_pair(0, tilts_deg=(1.0, 1.0))
    with pytest.raises(InputError):
        make_stereo_pair(-1)


def test_hand_built_line_has_the_exact_disparity():
    """A straight line at a known depth, drawn by render_views: mask and foot points are exact."""
    scene = make_scene(1, shape=(64, 80), n_groups=0, distractors=False, background="plain")
    z = 12.5
    scene.lines = [np.column_stack([np.linspace(20, 60, 41), np.linspace(10.3, 50.3, 41), np.full(41, z)])]
    scene.line_width, scene.line_contrast, scene.line_group = [1.0], [0.3], [0]
    views = render_views(scene, (-3.0, 3.0), dose=None)
    for k, tilt in enumerate((-3.0, 3.0)):
        foot = views.foot_points[k]
        on = views.masks[k] == 1
        assert np.array_equal(on, np.isfinite(foot[..., 0]))
        np.testing.assert_allclose(foot[on][:, 2], z, atol=1e-9)
        # every foot lies on the 3D line x - 20 = y - 10.3
        np.testing.assert_allclose(foot[on][:, 0] - 20, foot[on][:, 1] - 10.3, atol=1e-9)
        # the mask is exactly the pixels within the mask half-width of the projected line
        yy, xx = np.mgrid[0:64, 0:80]
        xy = project_points(scene.lines[0], tilt, axis_col=views.axis_col)
        direction = (xy[-1] - xy[0]) / np.linalg.norm(xy[-1] - xy[0])
        across = np.abs((xx - xy[0, 0]) * direction[1] - (yy - xy[0, 1]) * direction[0])
        along = (xx - xy[0, 0]) * direction[0] + (yy - xy[0, 1]) * direction[1]
        inner = (along > 1) & (along < np.linalg.norm(xy[-1] - xy[0]) - 1)
        radius = max(0.75, views.params["views"][k]["width_factor"][0])  # mask half-width: the line's sigma
        assert np.all(across[on] <= radius + 1e-9)
        assert np.all(on[inner & (across < radius - 1e-9)])


def test_background_keypoints_have_parallax():
    """SIFT finds matches on the background, on rows, with varied disparities (for rectification)."""
    import cv2

    s = make_stereo_pair(9_000_032, shape=(384, 384), dose=5000.0, distractors=False, n_groups=1)

    def to_u8(a):
        lo, hi = np.percentile(a, [0.5, 99.5])
        return (np.clip((a - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)

    sift = cv2.SIFT_create()
    k1, d1 = sift.detectAndCompute(to_u8(s.left), None)
    k2, d2 = sift.detectAndCompute(to_u8(s.right), None)
    good = [a for a, b in cv2.BFMatcher().knnMatch(d1, d2, k=2) if a.distance < 0.75 * b.distance]
    shift = np.array([np.subtract(k2[g.trainIdx].pt, k1[g.queryIdx].pt) for g in good])
    on_rows = np.abs(shift[:, 1]) < 1.0
    assert on_rows.sum() > 50
    spread = np.percentile(shift[on_rows, 0], 95) - np.percentile(shift[on_rows, 0], 5)
    assert spread > 1.0
