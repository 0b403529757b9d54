"""Length, curvature and pile-up spacing of lines, on shapes whose answers are known."""

import numpy as np
import pytest

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.stereo.line_geometry import GEOMETRY_COLUMNS, line_geometry, smooth_line


def _arc(radius, turn, n=200, centre=(100.0, 100.0)):
    t = np.linspace(0, turn, n)
    return np.column_stack([centre[0] + radius * np.cos(t), centre[1] + radius * np.sin(t)])


def test_arc_length_and_curvature():
    row = line_geometry([_arc(40.0, 2.0)])[0]
    assert set(GEOMETRY_COLUMNS) == set(row)
    assert row["length"] == pytest.approx(80.0, rel=0.01)
    assert row["mean_curvature"] == pytest.approx(1 / 40.0, rel=0.05)
    assert row["chord"] == pytest.approx(2 * 40.0 * np.sin(1.0), rel=1e-6)


def test_pixel_staircase_is_measured_along_the_smooth_line():
    # a 30-degree line as the 8-connected pixels a skeleton gives: the pixel path is too long
    t = np.arange(0, 120)
    pixels = np.column_stack([t, np.round(t * np.tan(np.deg2rad(30)))])
    path = np.sum(np.linalg.norm(np.diff(pixels, axis=0), axis=1))
    true = 119 / np.cos(np.deg2rad(30))
    row = line_geometry([pixels])[0]
    assert abs(row["length"] - true) < 0.01 * true < abs(path - true)
    assert row["mean_curvature"] < 0.01


def test_spacing_of_a_pile_up_and_no_spacing_for_a_crossing_line():
    t = np.linspace(0, 100, 101)
    pile = [np.column_stack([t, 20 + 6.0 * k + 0.05 * t]) for k in range(3)]
    crossing = np.column_stack([50 + 0 * t, t])
    rows = line_geometry(pile + [crossing])
    assert [r["neighbour_spacing"] for r in rows[:3]] == pytest.approx([6.0, 6.0, 6.0], abs=0.05)
    assert np.isnan(rows[3]["neighbour_spacing"])


def test_3d_helix_curvature_and_short_lines():
    t = np.linspace(0, 3, 300)
    a, b = 30.0, 5.0  # helix radius and pitch/(2 pi): curvature a / (a^2 + b^2)
    helix = np.column_stack([a * np.cos(t), a * np.sin(t), b * t])
    rows = line_geometry([helix, np.array([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]])])
    assert rows[0]["mean_curvature"] == pytest.approx(a / (a ** 2 + b ** 2), rel=0.05)
    assert rows[1]["length"] == pytest.approx(5.0) and np.isnan(rows[1]["mean_curvature"])
    assert smooth_line(np.zeros((3, 2)))[0] is None
    with pytest.raises(InputError, match="line"):
        line_geometry([np.zeros((5, 4))])
