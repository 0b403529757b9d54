"""napari writers: Shapes paths -> lines CSV + JSON sidecar, Points -> points CSV; both round-trip."""

import json

import numpy as np
import pytest

from napari_stereo_tem._napari.layers import lines_layer
from napari_stereo_tem.stereo.lines_io import read_lines_csv


def _lines():
    rng = np.random.default_rng(3)
    return [np.cumsum(rng.normal(size=(n, 3)), axis=0) + [20, 30, 5] for n in (4, 7)]


def test_lines_round_trip_through_napari_save(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    lines = _lines()
    data, attrs, _ = lines_layer(lines, name="3D lines", metadata={"provenance": {"stereo_angle_deg": 8.0},
                                                                   "not json": object()})
    layer = viewer.add_shapes(data, **attrs)
    written = viewer.layers.save(str(tmp_path / "lines.csv"), selected=False, plugin="napari-stereo-tem")
    assert sorted(written) == sorted([str(tmp_path / "lines.csv"), str(tmp_path / "lines.json")])
    assert (tmp_path / "lines.csv").read_text().splitlines()[0] == "line_id,x,y,z"
    back = read_lines_csv(tmp_path / "lines.csv")
    assert len(back) == 2
    for original, read in zip(lines, back):
        np.testing.assert_allclose(read, original, atol=1e-4)  # core (x, y, z) again, not napari (z, y, x)
    sidecar = json.loads((tmp_path / "lines.json").read_text())
    assert sidecar["metadata"]["provenance"] == {"stereo_angle_deg": 8.0}
    assert sidecar["metadata"]["kind"] == "stereo-tem lines" and "not json" not in sidecar["metadata"]
    assert sidecar["layer"] == layer.name


def test_points_round_trip(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    xyz = np.array([[10.0, 20.0, -3.0], [5.5, 7.25, 4.0]])
    viewer.add_points(xyz[:, ::-1], size=[6.0, 9.0], ndim=3, name="particles", metadata={"beta_deg": 2.0})
    viewer.layers.save(str(tmp_path / "points.csv"), selected=False, plugin="napari-stereo-tem")
    text = (tmp_path / "points.csv").read_text().splitlines()
    assert text[0] == "x,y,z,radius"
    table = np.loadtxt(tmp_path / "points.csv", delimiter=",", skiprows=1, ndmin=2)
    np.testing.assert_allclose(table[:, :3], xyz, atol=1e-4)
    np.testing.assert_allclose(table[:, 3], [3.0, 4.5])
    assert json.loads((tmp_path / "points.json").read_text())["metadata"] == {"beta_deg": 2.0}


def test_2d_points_get_zero_depth(tmp_path):
    from napari_stereo_tem._napari.writers import write_points

    write_points(str(tmp_path / "p.csv"), np.array([[4.0, 2.0]]), {"size": np.array([2.0]), "metadata": {}})
    table = np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1, ndmin=2)
    np.testing.assert_allclose(table, [[2.0, 4.0, 0.0, 1.0]])


def test_shapes_without_paths_is_refused(tmp_path):
    from napari_stereo_tem._napari.writers import write_lines
    from napari_stereo_tem.checks import InputError

    square = [np.array([[0, 0], [0, 5], [5, 5], [5, 0]], float)]
    with pytest.raises(InputError, match="path"):
        write_lines(str(tmp_path / "l.csv"), square, {"shape_type": ["rectangle"]})
