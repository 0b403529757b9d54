"""Multi-view 3D lines from N >= 3 virtual detectors: ring geometry, fusion, row-parallel lines, CLI, bad input."""

import json

import numpy as np
import pytest

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.fourdstem import Disc, rotate_image
from napari_stereo_tem.fourdstem.multiview import DetectedViews, iter_fuse_views, reconstruct_views
from napari_stereo_tem.fourdstem.views_geometry import (
    check_view_discs,
    fuse_depths,
    ring_of_discs,
    rotate_points,
    view_pairs,
    view_shifts,
)
from napari_stereo_tem.progress import drive


def test_ring_of_discs_places_n_discs_evenly_from_the_start_angle():
    discs = ring_of_discs(6, centre=(15.5, 16.25), ring_radius=8.0, disc_radius=3.0, start_deg=30.0)
    assert len(discs) == 6 and all(d.radius == 3.0 for d in discs)
    dy = np.array([d.cy - 15.5 for d in discs])
    dx = np.array([d.cx - 16.25 for d in discs])
    np.testing.assert_allclose(np.hypot(dx, dy), 8.0)
    angles = np.rad2deg(np.arctan2(dy, dx))  # +y is down the rows
    np.testing.assert_allclose((angles - 30.0 - 60.0 * np.arange(6) + 180) % 360 - 180, 0.0, atol=1e-9)
    assert discs[0].cx == pytest.approx(16.25 + 8 * np.cos(np.deg2rad(30)))
    assert discs[0].cy == pytest.approx(15.5 + 8 * np.sin(np.deg2rad(30)))
    # a Disc works as the centre too (the direct beam)
    assert ring_of_discs(3, centre=Disc(10, 10, 5), ring_radius=2, disc_radius=1)[0] == Disc(10.0, 12.0, 1.0)
    # around the direct beam the radii default to two thirds and a quarter of its radius (the dock's defaults)
    assert ring_of_discs(3, centre=Disc(10, 10, 6))[0] == Disc(10.0, 14.0, 1.5)
    with pytest.raises(InputError, match="ring radius and disc radius"):
        ring_of_discs(3, centre=(10, 10))


def test_view_shifts_agree_with_the_generator_projection():
    from napari_stereo_tem.synth.fourdstem import project_from_direction

    direct = Disc(15.7, 16.1, 12.0)
    discs = ring_of_discs(4, centre=direct, ring_radius=8.0, disc_radius=1.0, start_deg=20.0)
    shifts = view_shifts(discs, direct=direct, mrad_per_px=5.0, scan_rotation_deg=17.0)
    point = np.array([[60.0, 40.0, 25.0]])
    flat = point * [1, 1, 0]
    for disc, s in zip(discs, shifts):
        k = (disc.cy - direct.cy, disc.cx - direct.cx)
        seen = project_from_direction(point, k, 5.0, centre_xy=(60.0, 40.0), scan_rotation_deg=17.0)
        base = project_from_direction(flat, k, 5.0, centre_xy=(60.0, 40.0), scan_rotation_deg=17.0)
        np.testing.assert_allclose(seen - base, 25.0 * s[None], atol=1e-9)
    # with the detector, the mean over the disc's pixels inside the direct disc: a disc at the
    # edge leans inwards
    edge = Disc(direct.cy, direct.cx + 11.5, 3.0)
    inner, = view_shifts([edge], direct=direct, mrad_per_px=5.0, detector_shape=(32, 32))
    centre, = view_shifts([edge], direct=direct, mrad_per_px=5.0)
    assert 0 < inner[0] < centre[0]


def test_rotate_points_follows_rotate_image():
    image = np.zeros((64, 80), np.float32)
    image[20, 30] = 1.0
    out = rotate_image(image, 35.0)
    y, x = np.unravel_index(np.argmax(out), out.shape)
    q = rotate_points([[30.0, 20.0]], 35.0, image.shape)[0]
    assert abs(q[0] - x) <= 1 and abs(q[1] - y) <= 1


def test_view_pairs_directions_and_useful_baselines():
    shifts = np.array([[0.04, 0.0], [-0.02, 0.0346], [-0.02, -0.0346], [0.039, 0.001]])
    pairs = view_pairs(shifts, min_baseline_fraction=0.3)
    assert [0, 3] not in [p["pair"] for p in pairs]  # almost one direction: too short a baseline
    first = pairs[0]
    assert first["pair"] == [0, 1]
    delta = shifts[1] - shifts[0]
    assert first["baseline"] == pytest.approx(np.hypot(*delta))
    assert first["epipolar_direction_deg"] == pytest.approx(np.rad2deg(np.arctan2(delta[1], delta[0])))
    assert first["rotation_deg"] == pytest.approx(-first["epipolar_direction_deg"])


def test_fuse_depths_is_exact_on_noise_free_measurements_and_drops_an_outlier_pair():
    rng = np.random.default_rng(4)
    z = rng.uniform(-30, 30, 50)
    baselines = np.array([0.05, 0.07, 0.08, 0.06])
    d = baselines[:, None] * z[None, :]
    std = rng.uniform(0.1, 0.4, d.shape)
    fused, fused_std, used = fuse_depths(d, std, baselines)
    np.testing.assert_allclose(fused, z, atol=1e-9)
    np.testing.assert_allclose(fused_std, 1 / np.sqrt(((baselines[:, None] / std) ** 2).sum(axis=0)))
    assert used.all()
    wrong = d.copy()
    wrong[2, :10] += 3.0  # one pair matched the wrong line at ten points
    wrong[1, 20:25] = np.nan  # another did not measure five
    fused, _, used = fuse_depths(wrong, std, baselines)
    np.testing.assert_allclose(fused, z, atol=1e-9)
    assert not used[2, :10].any() and used[2, 10:].all() and not used[1, 20:25].any()


def _render(lines_xyz, shift, shape, width=1.3):
    """Probability-like ridge image of 3D lines seen with the view shift ``shift``."""
    from scipy.spatial import cKDTree

    from napari_stereo_tem.evaluation import densify_lines

    pts = densify_lines(lines_xyz, spacing=0.2)
    xy = pts[:, :2] + pts[:, 2:3] * np.asarray(shift)[None]
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    dist = cKDTree(xy).query(np.column_stack([xx.ravel(), yy.ravel()]))[0].reshape(shape)
    return np.exp(-0.5 * (dist / width) ** 2).astype(np.float32)


def _views(lines_xyz, shifts, shape=(128, 128)):
    prob = np.stack([_render(lines_xyz, s, shape) for s in shifts])
    labels = (prob > 0.5).astype(np.uint8)
    return DetectedViews(images=1 - 0.5 * prob, normalised=1 - 0.5 * prob, probability=prob, labels=labels)


def _depth_errors(lines, truth_line):
    """``|z - z_true|`` of the reconstructed points within 2 px in (x, y) of one true line."""
    from scipy.spatial import cKDTree

    from napari_stereo_tem.evaluation import densify_lines

    true = densify_lines([truth_line], spacing=0.2)
    pts = np.concatenate(lines) if lines else np.zeros((0, 3))
    dist, j = cKDTree(true[:, :2]).query(pts[:, :2]) if len(pts) else (np.zeros(0), np.zeros(0, int))
    near = dist <= 2.0
    return np.abs(pts[near, 2] - true[j[near], 2])


@pytest.fixture(scope="module")
def matcher():
    from napari_stereo_tem.stereo.matching import load_matcher

    return load_matcher()


def test_fused_views_recover_a_segment_along_one_pairs_epipolar_direction(matcher):
    shifts = np.array([[0.12, 0.0], [-0.06, 0.104], [-0.06, -0.104]])  # a ring of three views
    e01 = (shifts[1] - shifts[0]) / np.hypot(*(shifts[1] - shifts[0]))
    t = np.linspace(-45, 45, 31)
    # z bends along the line (its ends alone cannot give the middle): -10 at the ends, +10 in the middle
    along = np.column_stack([64 + t * e01[0], 64 + t * e01[1], 10 * np.cos(np.pi * t / 45)])
    across = np.column_stack([np.full(10, 30.0), np.linspace(10, 118, 10), np.linspace(-12, 12, 10)])
    views = _views([along, across], shifts)
    fused, stds, n_pairs, records, ref = drive(iter_fuse_views(views, shifts, matcher=matcher, reference=0))
    assert ref == 0 and {tuple(r["pair"]) for r in records} == {(0, 1), (0, 2), (1, 2)}
    middle = along[10:21]  # |t| <= 15: more than 12 px (the largest gap filled) from the ends
    err_fused = _depth_errors(fused, middle)
    # the other pairs measure it (the smooth curve along the line rounds the bend by about a pixel)
    assert len(err_fused) > 20 and np.median(err_fused) < 1.5
    assert np.median(_depth_errors(fused, across)) < 1.0
    assert all(len(s) == len(line) and np.all(s > 0) for s, line in zip(stds, fused))
    # pair (0, 1) alone has no depth along its own epipolar direction
    alone, *_ = drive(iter_fuse_views(views, shifts, matcher=matcher, pairs=[(0, 1)], reference=0))
    err_alone = _depth_errors(alone, middle)
    assert np.sum(err_alone < 1.0) < 0.3 * np.sum(err_fused < 1.0)
    assert np.median(_depth_errors(alone, across)) < 1.0  # ... but it does across


def test_a_depth_found_by_one_pair_of_many_is_not_kept(matcher):
    from napari_stereo_tem.fourdstem.fusion import confirming_pairs

    assert [confirming_pairs(n) for n in (1, 3, 6, 15)] == [1, 1, 2, 3]
    shifts = np.array([[0.1, 0.0], [0.0, 0.1], [-0.1, 0.0], [0.0, -0.1]])  # 4 views, 6 pairs
    real = np.array([[20.0, 20.0, -10.0], [100.0, 90.0, 12.0]])
    ghost = np.array([[90.0, 20.0, 5.0], [110.0, 60.0, 5.0]])  # in views 0 and 1 only: one pair can match it
    views = _views([real], shifts)
    seen = _views([real, ghost], shifts[:2])
    for k in (0, 1):
        views.probability[k], views.labels[k] = seen.probability[k], seen.labels[k]
        views.normalised[k] = views.images[k] = seen.normalised[k]
    fused, *_ = drive(iter_fuse_views(views, shifts, matcher=matcher, reference=0))
    assert len(_depth_errors(fused, ghost)) == 0
    assert np.median(_depth_errors(fused, real)) < 0.5
    kept, *_ = drive(iter_fuse_views(views, shifts, matcher=matcher, reference=0, min_pairs=1))
    assert len(_depth_errors(kept, ghost)) > 10


def test_a_stretch_is_kept_where_another_reference_confirms_it():
    from napari_stereo_tem.fourdstem.fusion import _confirmed

    t = np.linspace(0, 40, 41)
    line = np.column_stack([t, np.full(41, 10.0), np.where(t < 20, 0.0, 6.0)])  # its second half 6 px too deep
    other = [np.column_stack([t, np.full(41, 10.5), np.zeros(41)])]  # another view's reconstruction
    (runs,) = _confirmed([line], [other], tolerance=2.0, min_points=5)
    assert runs == [(0, 20)]
    assert _confirmed([line], [[]], tolerance=2.0, min_points=5) == [[]]  # nothing to confirm with


def test_the_cross_check_keeps_a_subset_of_the_unchecked_lines(matcher):
    shifts = np.array([[0.1, 0.0], [0.0, 0.1], [-0.1, 0.0], [0.0, -0.1]])
    truth = [np.array([[20.0, 20.0, -10.0], [100.0, 90.0, 12.0]]), np.array([[100.0, 15.0, 8.0], [35.0, 110.0, -6.0]])]
    views = _views(truth, shifts)
    checked, _, _, _, ref = drive(iter_fuse_views(views, shifts, matcher=matcher, reference=1))
    unchecked, *_ = drive(iter_fuse_views(views, shifts, matcher=matcher, reference=1, cross_check=0))
    every = np.concatenate(unchecked)
    kept = np.concatenate(checked)
    assert ref == 1 and 0 < len(kept) <= len(every)
    assert all((np.abs(every - p).max(axis=1) < 1e-9).any() for p in kept)
    assert len(kept) > 0.8 * len(every)  # noise-free views confirm each other almost everywhere
    # the other views' detections failed (no line pixels): nothing to check against, nothing dropped
    views.labels[[0, 2, 3]] = 0
    alone, *_ = drive(iter_fuse_views(views, shifts, matcher=matcher, reference=1))
    unchecked, *_ = drive(iter_fuse_views(views, shifts, matcher=matcher, reference=1, cross_check=0))
    assert len(unchecked) > 0 and sum(map(len, alone)) == sum(map(len, unchecked))


def test_an_empty_result_says_why():
    from napari_stereo_tem.fourdstem.multiview import MultiViewReconstruction

    shifts = np.array([[0.1, 0.0], [0.0, 0.1], [-0.1, 0.0]])
    views = _views([np.array([[10.0, 10.0, 0.0], [40.0, 30.0, 0.0]])], shifts, shape=(48, 48))
    views.labels[2] = 0
    pairs = [{"pair": [0, 1], "stereo_angle_deg": 1.1}, {"pair": [0, 2], "stereo_angle_deg": 1.5}]
    empty = MultiViewReconstruction([], [], [], views, [Disc(5, 5, 1)] * 3, shifts, pairs, 0)
    hints = empty.hints()
    assert len(hints) == 3
    assert "no dislocation in view(s) 2" in hints[0] and "1.50 degrees" in hints[1] and "48x48" in hints[2]
    assert empty.record()["hints"] == hints
    found = MultiViewReconstruction([np.zeros((3, 3))], [np.ones(3)], [np.ones(3)], views, [Disc(5, 5, 1)] * 3,
                                    shifts, pairs, 0)
    assert found.hints() == []


def test_fused_lines_are_exact_for_noise_free_views_of_straight_lines(matcher):
    shifts = np.array([[0.1, 0.0], [0.0, 0.1], [-0.1, 0.0], [0.0, -0.1]])
    truth = [np.array([[20.0, 20.0, -10.0], [100.0, 90.0, 12.0]]), np.array([[100.0, 15.0, 8.0], [35.0, 110.0, -6.0]])]
    views = _views(truth, shifts)
    fused, _, _, _, ref = drive(iter_fuse_views(views, shifts, matcher=matcher))
    errors = np.concatenate([_depth_errors(fused, line) for line in truth])
    assert len(errors) > 100 and np.median(errors) < 0.5
    # the (x, y) are the zero-tilt positions: each fused point lies on its true line's projection
    from napari_stereo_tem.evaluation import line_set_distance

    assert line_set_distance(fused, truth)["mean_pred_to_true"] < 1.0


def test_views_refused_with_clear_messages():
    with pytest.raises(InputError, match="at least 3 discs"):
        check_view_discs([(10, 10, 2), (10, 20, 2)])
    with pytest.raises(InputError, match="disc 2 .* outside the 32 x 32 detector"):
        check_view_discs([(10, 10, 2), (10, 20, 2), (30, 16, 4)], (32, 32))
    with pytest.raises(InputError, match="share a centre"):
        check_view_discs([(10, 10, 2), (10, 10, 3), (20, 16, 2)])
    with pytest.raises(InputError, match="one straight line"):
        check_view_discs([(10, 10, 2), (12, 12, 2), (14, 14, 2)])
    with pytest.raises(InputError, match="positive"):
        ring_of_discs(3, centre=(16, 16), ring_radius=0, disc_radius=2)
    data = np.zeros((16, 16, 32, 32), np.float32)
    with pytest.raises(InputError, match="at least 3 discs"):
        reconstruct_views(data, [(16, 10, 2), (16, 22, 2)], direct=(16, 16, 10), mrad_per_px=2.0)
    with pytest.raises(InputError, match="no calibration"):
        reconstruct_views(data, ring_of_discs(3, centre=(16, 16), ring_radius=6, disc_radius=2),
                          direct=(16, 16, 10), mrad_per_px=None)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from napari_stereo_tem.synth.fourdstem import simulate_4dstem

    path = tmp_path_factory.mktemp("views") / "data.npy"
    sample = simulate_4dstem(seed=9_000_102, scan_shape=(64, 64), detector_shape=(32, 32), disc_radius_px=12.0,
                             convergence_mrad=60.0, path=path)
    return path, sample


def test_cli_reconstruct_views_end_to_end(dataset, tmp_path, capsys):
    from napari_stereo_tem.cli import main
    from napari_stereo_tem.evaluation import line_set_distance
    from napari_stereo_tem.stereo.lines_io import read_lines_table

    path, sample = dataset
    out = tmp_path / "out"
    args = ["reconstruct-views", str(path), "--ring", "4", "--ring-radius", "8", "--disc-radius", "3",
            "--convergence-mrad", "60", "--flips", "1", "-o", str(out)]
    assert main(args) == 0
    assert "lines from 4 views" in capsys.readouterr().out
    assert (out / "lines.csv").read_text().splitlines()[0] == "line_id,x,y,z,depth_std"
    lines, extra = read_lines_table(out / "lines.csv")
    assert lines and all(np.all(v > 0) for v in extra["depth_std"])
    record = json.loads((out / "result.json").read_text())
    assert len(record["discs"]) == 4 and all(len(d["view_shift"]) == 2 for d in record["discs"])
    assert {tuple(p["pair"]) for p in record["pairs"]} == {(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)}
    assert all(p["stereo_angle_deg"] > 0 and "epipolar_direction_deg" in p for p in record["pairs"])
    assert len(record["lines"]) == len(lines)
    assert record["provenance"]["mrad_per_px"] == pytest.approx(60 / record["provenance"]["direct_beam"]["radius"])
    figures = line_set_distance(lines, sample.lines_3d, remove_depth_offset=True)
    assert figures["precision"] > 0.8 and figures["depth_median"] < 2.0
    # an existing result is not mixed with a new one
    assert main(args) == 1
    assert "--overwrite" in capsys.readouterr().err


def test_cli_refuses_two_discs_and_a_disc_off_the_detector(dataset, tmp_path, capsys):
    from napari_stereo_tem.cli import main

    path, _ = dataset
    base = ["reconstruct-views", str(path), "--convergence-mrad", "60", "-o", str(tmp_path / "o")]
    assert main(base + ["--disc", "16,10,3", "--disc", "16,22,3"]) == 1
    assert "at least 3 discs" in capsys.readouterr().err
    assert main(base + ["--disc", "16,10,3", "--disc", "16,22,3", "--disc", "30,16,4"]) == 1
    assert "outside the 32 x 32 detector" in capsys.readouterr().err
    assert main(base) == 1
    assert "give the discs" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
