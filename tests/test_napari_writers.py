"""napari writers: Shapes paths -> lines CSV + JSON sidecar, Points -> points CSV, Tracks -> tracks CSV; all
round-trip."""

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


def test_tracks_round_trip_with_their_drift_and_calibration(make_napari_viewer, tmp_path):
    """A Tracks layer on the frames (the Track dock's) saves as tracks.csv in the first frame's coordinates,
    the columns stereo-tem track writes, nm/s included; opened again it lies on the frames again."""
    import csv

    from napari_stereo_tem._napari.layers import tracks_layer
    from napari_stereo_tem.stereo.tracking import TRACK_COLUMNS

    table = {"track_id": np.array([0, 0, 1]), "frame": np.array([0, 1, 1]), "x": np.array([10.0, 11.5, 40.0]),
             "y": np.array([20.0, 20.0, 30.0]), "length": np.array([50.0, 51.0, 45.0]),
             "velocity_x": np.array([1.5, 1.5, np.nan]), "velocity_y": np.array([0.0, 0.0, np.nan]),
             "length_nm": np.array([25.0, 25.5, 22.5]), "velocity_x_nm_s": np.array([3.0, 3.0, np.nan]),
             "velocity_y_nm_s": np.array([0.0, 0.0, np.nan])}
    viewer = make_napari_viewer()
    data, attrs, _ = tracks_layer(table, name="movie tracks", drift={0: (0.0, 0.0), 1: (2.0, -1.0)})
    layer = viewer.add_tracks(data, **attrs)
    np.testing.assert_allclose(np.asarray(layer.data)[1], [0, 1, 19.0, 13.5])   # on frame 1's image
    written = viewer.layers.save(str(tmp_path / "saved.csv"), selected=False, plugin="napari-stereo-tem")
    assert sorted(written) == sorted([str(tmp_path / "saved.csv"), str(tmp_path / "saved.json")])
    with open(tmp_path / "saved.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == TRACK_COLUMNS + ("length_nm", "velocity_x_nm_s", "velocity_y_nm_s")
    xy = [[float(r["x"]), float(r["y"])] for r in rows]
    np.testing.assert_allclose(xy, np.column_stack([table["x"], table["y"]]))   # drift removed again
    assert float(rows[1]["velocity_x_nm_s"]) == pytest.approx(3.0) and float(rows[2]["length"]) == 45.0
    again = viewer.open(str(tmp_path / "saved.csv"), plugin="napari-stereo-tem")[0]
    np.testing.assert_allclose(np.asarray(again.data), np.asarray(layer.data))   # the drift from the sidecar
    assert again.features["speed_nm_s"].iloc[0] == pytest.approx(3.0)
