"""Depth colours of 3D lines: one scale for every point, colour along each line."""

import numpy as np

from napari_stereo_tem._napari.layers import (
    depth_colors, depth_range, depth_rgba, depth_segments, depth_segments_layer, is_truth_layer,
)


def _line(z0, z1, y=0.0, n=11):
    t = np.linspace(0, 1, n)
    return np.column_stack([100 * t, y + 0 * t, z0 + (z1 - z0) * t])  # (x, y, z)


def test_two_lines_at_nearly_the_same_depth_get_nearly_the_same_colour():
    lines = [_line(9.9, 10.1), _line(10.0, 10.2, y=5), _line(-50, 50, y=10)]
    colours = depth_colors(lines)
    assert np.abs(colours[0] - colours[1]).max() < 0.05
    assert np.abs(colours[0] - depth_rgba(np.array([10.0]), -50, 50)[0]).max() < 0.05


def test_segments_carry_the_depth_along_the_line():
    line = _line(-20, 20)
    vectors, depths, ids = depth_segments([line])
    assert vectors.shape == (10, 2, 3) and (ids == 0).all()
    # napari order (z, y, x): each vector starts at a vertex and steps to the next
    np.testing.assert_allclose(vectors[:, 0], line[:-1, ::-1])
    np.testing.assert_allclose(vectors[:, 0] + vectors[:, 1], line[1:, ::-1])
    np.testing.assert_allclose(depths, np.linspace(-18, 18, 10))
    data, attrs, kind = depth_segments_layer([line], scale=(0.5, 0.5, 0.5), unit="nm")
    assert kind == "vectors" and attrs["metadata"]["depth_colour_bar"] == {"low": -10.0, "high": 10.0, "unit": "nm"}
    colours = attrs["edge_color"]
    assert np.abs(colours[0] - colours[-1]).max() > 0.3  # shallow end and deep end differ
    assert depth_range([line]) == (-20.0, 20.0)


def test_the_ends_of_the_scale_stay_visible_on_black():
    ends = depth_rgba(np.array([0.0, 1.0]), 0.0, 1.0)
    assert (ends[:, :3].max(axis=1) > 0.3).all()  # neither end is near black


def test_truth_layers_are_recognised():
    class Layer:
        def __init__(self, name, metadata):
            self.name, self.metadata = name, metadata

    assert is_truth_layer(Layer("true 3D lines", {}))
    assert is_truth_layer(Layer("lines", {"truth": True}))
    assert not is_truth_layer(Layer("3D lines", {"kind": "stereo-tem lines"}))
