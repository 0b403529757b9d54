"""Single dislocations as instances: ridges of the probability map, the pile-up generator, the scores."""

import numpy as np
import pytest

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.evaluation.instances import score_instances
from napari_stereo_tem.stereo.instances import line_instances, ridge_points, skeleton_instances
from napari_stereo_tem.synth.pileups import instance_image, make_pileup


def _probability(lines, shape, *, sigma=1.0):
    """A detector-like map: a Gaussian ridge of height ~1 along each polyline (max over lines)."""
    from scipy.spatial import cKDTree

    from napari_stereo_tem.synth.curves import resample

    gy, gx = np.mgrid[0:shape[0], 0:shape[1]]
    pixels = np.column_stack([gx.ravel(), gy.ravel()])
    out = np.zeros(shape)
    for line in lines:
        dist, _ = cKDTree(resample(line, 0.2)).query(pixels)
        out = np.maximum(out, np.exp(-0.5 * (dist.reshape(shape) / sigma) ** 2))
    return out


def _bowed(offset, *, rows=80, x0=20.0):
    y = np.arange(8.0, rows - 8.0)
    return np.column_stack([x0 + offset + 4 * np.sin(np.pi * (y - 8) / (rows - 16)), y])


def test_two_lines_four_px_apart_are_two_instances_where_the_skeleton_merges_them():
    truth = [_bowed(0.0), _bowed(4.0)]
    prob = _probability(truth, (80, 50), sigma=1.1)
    # a low threshold bridges the valley between the lines (as a blurred detector map does)
    found = line_instances(prob, threshold=0.15)
    score = score_instances(found.lines, truth, prob.shape)
    from scipy import ndimage

    assert ndimage.label(prob >= 0.15)[1] == 1
    assert found.n_instances == 2 and score["matched"] == 2, score
    assert score["length_error"] < 0.05
    # every labelled pixel lies nearer its own instance's centreline than the other's
    assert set(np.unique(found.labels)) == {0, 1, 2}
    baseline = skeleton_instances(prob >= 0.15)
    assert score_instances(baseline.lines, truth, prob.shape)["matched"] < 2


def test_ridge_points_are_sub_pixel():
    x_true = 12.3
    gx = np.arange(30)[None, :].repeat(40, axis=0)
    prob = np.exp(-0.5 * ((gx - x_true) / 1.2) ** 2)
    _, points, normals, strength = ridge_points(prob, support=prob > 0.5)
    inner = (points[:, 1] > 5) & (points[:, 1] < 34)
    assert inner.sum() >= 25
    assert np.max(np.abs(points[inner, 0] - x_true)) < 0.05
    assert np.all(np.abs(normals[inner, 0]) > 0.99) and np.all(strength > 0)
    # averaging along the line keeps a straight line where it is
    _, along, _, _ = ridge_points(prob, support=prob > 0.5, along_sigma=2.0)
    inner = (along[:, 1] > 5) & (along[:, 1] < 34)
    assert inner.sum() >= 25 and np.max(np.abs(along[inner, 0] - x_true)) < 0.05


def test_crossing_lines_stay_two_instances_through_the_crossing():
    t = np.linspace(-30, 30, 61)
    first = np.column_stack([40 + t, 40 + 0.35 * t])
    second = np.column_stack([40 + 0.35 * t, 40 - t])
    prob = _probability([first, second], (80, 80))
    found = line_instances(prob, threshold=0.5)
    score = score_instances(found.lines, [first, second], prob.shape)
    assert score["matched"] == 2, (found.n_instances, score["pairs"])
    assert score["length_error"] < 0.1


def test_instance_image_gives_each_line_its_own_id_and_the_nearer_line_wins():
    lines = [np.array([[5.0, 2.0], [5.0, 18.0]]), np.array([[8.0, 2.0], [8.0, 18.0]])]
    labels = instance_image(lines, (20, 14), radius=1.0)
    assert labels[10, 5] == 1 and labels[10, 8] == 2 and labels[10, 11] == 0
    assert labels[10, 6] == 1 and labels[10, 7] == 2     # 1 px from its own line, 2 px from the other


def test_pileup_truth_matches_its_lines():
    pile = make_pileup(9_000_123, shape=(128, 128), n_lines=5, spacing=6.0)
    assert pile.image.shape == pile.instances.shape == pile.mask.shape == (128, 128)
    assert len(pile.curves) == 5 and set(np.unique(pile.instances)) == set(range(6))
    assert np.all(pile.mask[pile.instances > 0] == 1)
    assert np.allclose(pile.params["gaps"], 6.0)
    # lines are darker than the background where they are labelled
    assert pile.image[pile.instances > 0].mean() < pile.image[pile.mask == 0].mean() - 0.1
    again = make_pileup(9_000_123, shape=(128, 128), n_lines=5, spacing=6.0)
    assert np.array_equal(again.image, pile.image) and np.array_equal(again.instances, pile.instances)
    # the truth of the scores: each true line matches itself
    score = score_instances(pile.curves, pile.curves, pile.image.shape)
    assert score["precision"] == score["recall"] == 1.0 and score["length_error"] == 0.0


def test_scores_miss_a_line_drawn_between_two_true_lines():
    truth = [_bowed(0.0), _bowed(4.0)]
    merged = [_bowed(2.0)]
    score = score_instances(merged, truth, (80, 50))
    assert score["matched"] == 0 and score["recall"] == 0.0


def test_bad_input_is_refused_with_a_message():
    with pytest.raises(InputError, match="2-D"):
        line_instances(np.zeros((2, 3, 4, 5)))
    with pytest.raises(InputError, match="NaN"):
        line_instances(np.full((10, 10), np.nan))
    with pytest.raises(InputError, match="image"):
        line_instances(np.zeros((10, 10)), image_weight=1.0)
    with pytest.raises(InputError, match="spacing"):
        make_pileup(1, spacing=-3)
    assert line_instances(np.zeros((16, 16))).n_instances == 0


def test_training_entry_keeps_instances_beside_the_mask_append_only(tmp_path):
    from napari_stereo_tem.models.training_set import add_entry, list_entries, load_entry

    pile = make_pileup(9_000_124, shape=(64, 64), n_lines=3, spacing=8.0)
    first = add_entry(tmp_path, pile.image, pile.mask, instances_left=pile.instances)
    second = add_entry(tmp_path, pile.image, pile.mask, instances_left=np.where(pile.instances == 1, 0, pile.instances))
    assert first != second and [e.name for e in list_entries(tmp_path)] == [first.name, second.name]
    data = load_entry(first)
    assert np.array_equal(data["instances_left"], pile.instances) and data["instances_left"].dtype == np.int32
    assert np.array_equal(data["mask_left"], pile.mask)
    assert list_entries(tmp_path)[0].has_instances
    with pytest.raises(InputError, match="shape"):
        add_entry(tmp_path, pile.image, pile.mask, instances_left=pile.instances[:10])
    with pytest.raises(InputError, match="right view"):
        add_entry(tmp_path, pile.image, pile.mask, instances_right=pile.instances)
    assert len(list_entries(tmp_path)) == 2


def test_tracking_refuses_an_unknown_instance_method():
    from napari_stereo_tem.stereo.tracking import frame_lines

    with pytest.raises(InputError, match="instances"):
        frame_lines(object(), instances="blobs")


def test_detect_dock_adds_an_instance_labels_layer(make_napari_viewer, wait_finished):
    viewer = make_napari_viewer()
    pile = make_pileup(9_000_125, shape=(128, 128), n_lines=4, spacing=8.0)
    viewer.add_image(pile.image, name="pile-up")
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Detect dislocations")
    widget.image.value = viewer.layers["pile-up"]
    task = widget.start()
    wait_finished(task)
    assert task.error is None, task.error
    layer = viewer.layers["pile-up instances"]
    assert type(layer).__name__ == "Labels" and layer.data.shape == pile.image.shape
    assert layer.metadata["kind"] == "stereo-tem instances" and layer.metadata["image"] == "pile-up"
    ids = set(np.unique(layer.data)) - {0}
    assert len(ids) == layer.metadata["n_instances"] >= 4
    assert "dislocation instances" in widget.report.value
    features = layer.features
    assert list(features["index"]) == list(range(len(ids) + 1)) and np.isnan(features["length"][0])
    assert np.all(features["length"][1:] > 6.0)        # instances shorter than 8 px (polyline) are dropped


def test_stereo_fit_per_instance_gives_each_line_of_a_close_pair_its_own_depth():
    from napari_stereo_tem.stereo.line_fit import fit_lines
    from napari_stereo_tem.stereo.projection import depth_from_disparity

    rows, cols, angle = 100, 100, 8.0
    yy, xx = np.mgrid[:rows, :cols].astype(float)

    def ridge(x0, d=0.0):
        return np.exp(-0.5 * ((xx - (x0 + 0.1 * yy + d)) / 1.1) ** 2)

    # two lines 4 px apart, at different depths (disparity 1.5 and 3 px)
    left = np.maximum(ridge(40.0), ridge(44.0)).astype(np.float32)
    right = np.maximum(ridge(40.0, 1.5), ridge(44.0, 3.0)).astype(np.float32)
    mask = left >= 0.15                                 # one blob: the skeleton has one branch between them
    start = np.full((rows, cols), 2.2, np.float32)
    found = line_instances(left, threshold=0.15)
    assert found.n_instances == 2
    lines, _ = fit_lines(mask, left, right, start, angle, branches=found.lines)
    assert len(lines) == 2
    for line in lines:
        x_left = line[:, 0]
        # which of the two is it: its left column, at the mean tilt the point sits at x_left + d/2
        truth_d = np.where(np.abs(x_left - (40 + 0.1 * line[:, 1] + 0.75)) < 1.0, 1.5, 3.0)
        # within 0.15 px of disparity (the neighbour 4 px away biases the correlation a little)
        assert np.median(np.abs(line[:, 2] - depth_from_disparity(truth_d, angle))) < depth_from_disparity(0.15, angle)
    depths = sorted(float(np.median(line[:, 2])) for line in lines)
    assert depths[1] - depths[0] > 0.8 * (depth_from_disparity(3.0, angle) - depth_from_disparity(1.5, angle))
    # the skeleton of the merged blob gives one branch between them, at neither depth
    merged, _ = fit_lines(mask, left, right, start, angle)
    assert len(merged) <= 1


def test_apart_from_others_cuts_lines_where_they_cross():
    from napari_stereo_tem.stereo.instances import apart_from_others

    t = np.linspace(-20, 20, 41)
    first = np.column_stack([30 + t, 30 + 0 * t])
    second = np.column_stack([30 + 0 * t, 30 + t])
    far = np.column_stack([80 + 0 * t, 30 + t])
    pieces = apart_from_others([first, second, far], distance=2.0)
    assert len(pieces) == 5                      # each crossing line in two, the far one whole
    assert any(np.array_equal(p, far) for p in pieces)
    for piece in pieces[:4]:
        assert np.min(np.hypot(piece[:, 0] - 30, piece[:, 1] - 30)) > 2.0


def test_correction_dock_stores_the_edited_instances_beside_the_mask(make_napari_viewer, tmp_path):
    from napari_stereo_tem.models.training_set import load_entry

    pile = make_pileup(9_000_126, shape=(96, 96), n_lines=3, spacing=8.0)
    viewer = make_napari_viewer()
    viewer.add_image(pile.image, name="rectified left", metadata={"stereo_angle_deg": 8.0})
    viewer.add_labels(pile.mask, name="dislocations left")
    edited = pile.instances.copy()
    edited[edited == 2] = 7                       # the user repainted one instance with another id
    viewer.add_labels(edited, name="rectified left instances",
                      metadata={"kind": "stereo-tem instances", "image": "rectified left"})
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Correct and add to training set")
    widget.left_image.value = viewer.layers["rectified left"]
    widget.left_labels.value = viewer.layers["dislocations left"]
    widget.set_dir.value = tmp_path / "set"
    path = widget.add_to_training_set()
    assert path is not None
    data = load_entry(path)
    assert np.array_equal(data["instances_left"], edited) and np.array_equal(data["mask_left"], pile.mask)
    # the instance layer chosen as the labels: the mask is where any instance is
    widget.left_labels.value = viewer.layers["rectified left instances"]
    second = widget.add_to_training_set()
    assert second != path
    again = load_entry(second)
    assert np.array_equal(again["instances_left"], edited) and np.array_equal(again["mask_left"], edited > 0)
