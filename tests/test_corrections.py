"""Correction geometry: link a left line to its right partner, shift a line in depth."""

import numpy as np
import pytest

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.stereo.corrections import (
    disparity_labels, line_disparity, link_lines, replace_or_add_line, row_crossings, shift_line_depth,
)
from napari_stereo_tem.stereo.projection import project_points

ANGLE = 8.0
AXIS = 31.5


def _line3d():
    t = np.linspace(0.0, 1.0, 41)
    return np.column_stack([20 + 15 * t + 3 * np.sin(3 * t), 5 + 40 * t, -30 + 60 * t])


def test_row_crossings_interpolate_each_row_once():
    rows, x = row_crossings([(0.0, 0.0), (10.0, 10.0), (10.0, 15.0)])
    np.testing.assert_array_equal(rows, np.arange(16))
    np.testing.assert_allclose(x, np.r_[np.arange(11.0), np.full(5, 10.0)])


def test_link_recovers_the_true_3d_line_from_its_two_projections():
    truth = _line3d()
    left = project_points(truth, -ANGLE / 2, axis_col=AXIS)
    right = project_points(truth, ANGLE / 2, axis_col=AXIS)
    line, matches = link_lines(left, right, ANGLE, axis_col=AXIS)
    assert len(line) >= 35
    # the recovered points lie on the true curve (rows are whole numbers, so compare by y)
    for axis in (0, 2):
        expected = np.interp(line[:, 1], truth[:, 1], truth[:, axis])
        np.testing.assert_allclose(line[:, axis], expected, atol=0.05)
    np.testing.assert_allclose(matches[:, 2], np.interp(matches[:, 1], left[:, 1], right[:, 0] - left[:, 0]),
                               atol=0.05)


def test_link_refuses_lines_on_different_rows():
    with pytest.raises(InputError, match="same rows"):
        link_lines([(0, 0), (0, 10)], [(5, 40), (5, 60)], ANGLE)


def test_shift_in_depth_keeps_the_left_view_and_changes_the_disparity():
    truth = _line3d()
    moved = shift_line_depth(truth, 12.0, stereo_angle_deg=ANGLE, keep="left")
    np.testing.assert_allclose(moved[:, 2], truth[:, 2] + 12.0)
    np.testing.assert_allclose(project_points(moved, -ANGLE / 2, axis_col=AXIS),
                               project_points(truth, -ANGLE / 2, axis_col=AXIS), atol=1e-9)
    d0 = line_disparity(truth, ANGLE, axis_col=AXIS)[:, 2]
    d1 = line_disparity(moved, ANGLE, axis_col=AXIS)[:, 2]
    np.testing.assert_allclose(d1 - d0, 2 * np.sin(np.deg2rad(ANGLE / 2)) * 12.0)
    mid = shift_line_depth(truth, -4.0, keep="mid")
    np.testing.assert_allclose(mid[:, :2], truth[:, :2])
    with pytest.raises(InputError, match="stereo angle"):
        shift_line_depth(truth, 1.0, keep="right")


def test_disparity_labels_hold_the_line_disparity_on_its_left_pixels():
    truth = _line3d()
    shape = (64, 64)
    labels = disparity_labels(shape, [truth], ANGLE, axis_col=AXIS, half_width=0)
    known = np.isfinite(labels)
    assert 40 <= known.sum() <= 120
    xyd = line_disparity(truth, ANGLE, axis_col=AXIS)
    ys, xs = np.nonzero(known)
    expected = np.interp(ys, xyd[:, 1], xyd[:, 2])
    np.testing.assert_allclose(labels[ys, xs], expected, atol=0.3)
    # with a mask, only its dislocation pixels are labelled
    mask = np.zeros(shape, np.uint8)
    mask[:32] = 1
    masked = disparity_labels(shape, [truth], ANGLE, axis_col=AXIS, mask=mask)
    assert np.isfinite(masked[:32]).any() and not np.isfinite(masked[32:]).any()


def test_a_linked_line_replaces_the_one_seen_at_the_same_place_in_the_left_view():
    truth = _line3d()
    other = truth + np.array([40.0, 0.0, 0.0])
    deeper = shift_line_depth(truth, 20.0, stereo_angle_deg=ANGLE, keep="left")  # same left view, new depth
    lines, replaced = replace_or_add_line([other, truth], deeper, ANGLE, axis_col=AXIS)
    assert replaced == 1 and len(lines) == 2
    np.testing.assert_allclose(lines[1], deeper)
    np.testing.assert_allclose(lines[0], other)
    far = truth + np.array([10.0, 0.0, 0.0])  # 10 px away in the left view
    lines, replaced = replace_or_add_line([other, truth], far, ANGLE, axis_col=AXIS)
    assert replaced is None and len(lines) == 3
    np.testing.assert_allclose(lines[2], far)
