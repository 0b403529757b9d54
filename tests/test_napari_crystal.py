"""Crystal-frame and re-projection widgets on lines whose answer is known by hand."""

import re

import numpy as np
import pytest

from napari_stereo_tem._napari.layers import lines_layer


def _cubic_lines():
    # Cubic crystal, zone axis [001] along the beam, g = (200) along +x:
    # image x = [100], y = [010], z = [001].
    s = np.linspace(-20, 20, 41)
    straight = np.column_stack([50 + s, 50 - s, 10 + 0 * s])          # along [1 -1 0]
    u, v = np.array([1.0, -1.0, 0.0]), np.array([1.0, 1.0, -2.0])       # both in (111)
    curved = 50 + s[:, None] * u + (0.02 * s ** 2)[:, None] * v          # a curve in a (111) plane
    return [straight, curved]


def test_crystal_frame_labels_lines(make_napari_viewer):
    viewer = make_napari_viewer()
    data, attrs, _ = lines_layer(_cubic_lines(), name="3D lines")
    layer = viewer.add_shapes(data, **attrs)
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Crystal frame")
    widget.lines.value = layer
    widget.zone_axis.value = "0,0,1"
    widget.g.value = "2,0,0"
    widget()

    directions = list(layer.features["direction_uvw"])
    planes = list(layer.features["habit_plane_hkl"])
    assert directions[0] in ("[1 -1 0]", "[-1 1 0]")
    assert planes[1] in ("(1 1 1)", "(-1 -1 -1)")
    axes = viewer.layers["crystal axes"]
    assert len(axes.data) == 3 and axes.ndim == 3


def test_reprojection_overlay_lands_on_the_view(make_napari_viewer):
    from napari_stereo_tem.stereo.projection import project_points

    viewer = make_napari_viewer()
    lines = _cubic_lines()
    data, attrs, _ = lines_layer(lines, name="3D lines")
    layer = viewer.add_shapes(data, **attrs)
    image = viewer.add_image(np.zeros((100, 101), np.float32), name="other view")
    mask = np.zeros((100, 101), np.uint8)
    for line in lines:
        xy = np.rint(project_points(line, 10.0, axis_col=50.0)).astype(int)
        mask[xy[:, 1], xy[:, 0]] = 1
    reference = viewer.add_labels(mask, name="mask of other view")

    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Re-project into another view")
    widget.lines.value, widget.image.value, widget.reference.value = layer, image, reference
    widget.tilt_deg.value = 10.0
    widget()

    overlay = viewer.layers["re-projected at 10 deg"]
    assert len(overlay.data) == 2
    error = overlay.metadata["reprojection_error_px"]
    assert error["median"] < 0.75


def test_reprojection_aligns_a_raw_third_view(make_napari_viewer):
    from napari_stereo_tem.stereo.rectification import rectifying_affines
    from napari_stereo_tem.synth.misalign import misalign_pair, textured_pair

    left, right, _ = textured_pair(5, shape=(192, 192), depth_px=40.0)
    raw_l, raw_r, truth = misalign_pair(left, right, theta_deg=25.0, translation=(20.0, -12.0))
    aff_l, _ = rectifying_affines(left.shape, 25.0)  # the pair's rectification of its left view
    viewer = make_napari_viewer()
    data, attrs, _ = lines_layer(_cubic_lines(), name="3D lines")
    attrs["metadata"] = {"rectification": {"affine_left": aff_l.tolist()}}
    layer = viewer.add_shapes(data, **attrs)
    left_layer = viewer.add_image(raw_l, name="raw left")
    third = viewer.add_image(raw_r, name="third view")
    _, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Re-project into another view")
    widget.lines.value, widget.image.value, widget.align_to.value = layer, third, left_layer
    widget.tilt_deg.value = 4.0
    widget()
    overlay = viewer.layers["re-projected at 4 deg"]
    found = re.search(r"view aligned: tilt axis (-?[0-9.]+)", overlay.metadata["alignment"])
    assert found and float(found.group(1)) == pytest.approx(25.0, abs=0.1), overlay.metadata["alignment"]


def test_crystal_docks_never_default_to_the_truth_and_show_a_table(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    mine_data, mine_attrs, _ = lines_layer(_cubic_lines(), name="3D lines")
    mine = viewer.add_shapes(mine_data, **mine_attrs)
    truth_data, truth_attrs, _ = lines_layer(_cubic_lines(), name="true 3D lines", metadata={"truth": True})
    viewer.add_shapes(truth_data, **truth_attrs)  # added last: a plain combo box would pick it
    _, crystal = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Crystal frame")
    _, rep = viewer.window.add_plugin_dock_widget("napari-stereo-tem", "Re-project into another view")
    assert crystal.lines.value is mine and rep.lines.value is mine
    crystal()
    table = crystal.table
    assert table.rowCount() == 2
    assert table.item(0, 1).text() in ("[1 -1 0]", "[-1 1 0]")
    assert table.item(1, 2).text() in ("(1 1 1)", "(-1 -1 -1)")
    qtbot.waitUntil(lambda: "crystal axes labels" in viewer.layers)  # added in the next turn of the event loop
    labels = viewer.layers["crystal axes labels"]
    assert list(labels.features["axis"]) == ["a", "b", "c"] and labels.ndim == 3
    assert len(labels.text.values) == 3
    # a choice made by hand is kept when a layer is added
    crystal.lines.value = viewer.layers["true 3D lines"]
    viewer.add_image(np.zeros((8, 8)), name="another")
    assert crystal.lines.value is viewer.layers["true 3D lines"]
