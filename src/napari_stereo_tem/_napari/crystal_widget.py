"""Dock widgets: the crystal frame of a 3D model, and re-projection into another view.

Crystal frame: lattice, zone axis, diffraction vector ``g`` and its direction
in the image, tilt from the zone axis -> the a/b/c axes drawn in 3D, and each
line's direction ``[uvw]`` and best-fit habit plane ``(hkl)`` as properties of
the lines layer. Re-projection: the 3D lines projected at another tilt over an
image, with their distance to a reference mask; a raw image of a third tilt is
first aligned to the reconstruction's rectified left view (tilt axis and shift,
:func:`~napari_stereo_tem.stereo.reprojection.align_view`), and the free depth origin is
fitted to the reference mask.
"""

from __future__ import annotations

import napari
import numpy as np
from magicgui import magic_factory
from qtpy.QtCore import QTimer

from ..checks import InputError
from ..stereo.crystal_frame import CrystalFrame, parse_indices
from ..stereo.reprojection import align_view, apply_affine, fit_depth_offset, reproject_lines, reprojection_error
from .choosing import keep_default, prefer_lines
from .layers import is_truth_layer, paths_to_lines
from .notify import dock_message_label, report_input_errors

__all__ = ["crystal_frame", "reproject", "line_crystallography"]

_AXIS_COLOURS = ["red", "lime", "dodgerblue"]


def _fmt(indices, brackets: str) -> str:
    return brackets[0] + " ".join(str(int(v)) if float(v).is_integer() else f"{v:.2f}" for v in indices) + brackets[1]


def line_crystallography(frame: CrystalFrame, lines_xyz) -> tuple[list[str], list[str]]:
    """``[uvw]`` direction and ``(hkl)`` habit plane of each line, as text."""
    directions, planes = [], []
    for line in lines_xyz:
        directions.append(_fmt(frame.line_direction(line), "[]") if len(line) >= 2 else "")
        try:
            planes.append(_fmt(frame.habit_plane(line), "()"))
        except InputError:  # a straight line defines no plane
            planes.append("")
    return directions, planes


def _results_table(widget):
    """A table under the form: one row per line with its [uvw] and (hkl) (never wider than the dock)."""
    from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QSizePolicy, QTableWidget

    table = QTableWidget(0, 4)
    table.setHorizontalHeaderLabels(["line", "[uvw]", "(hkl)", "length"])
    for column, tip in enumerate(["line number in the lines layer", "line direction [uvw]",
                                  "best-fit habit plane (hkl); empty for a straight line", "length in pixels"]):
        table.horizontalHeaderItem(column).setToolTip(tip)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Expanding)
    table.setMinimumHeight(120)
    widget.native.layout().addWidget(table)
    return table


def show_rows(table, rows) -> None:
    """Fill the results table with ``line_crystallography`` rows (dicts)."""
    from qtpy.QtWidgets import QTableWidgetItem

    table.setRowCount(len(rows))
    for i, row in enumerate(rows):
        for j, key in enumerate(("line", "direction_uvw", "habit_plane_hkl", "length")):
            value = row[key]
            table.setItem(i, j, QTableWidgetItem(f"{value:.0f}" if key == "length" else str(value)))


def _init_crystal(widget):
    keep_default(widget, widget.lines, prefer_lines)
    dock_message_label(widget)
    widget.table = _results_table(widget)
    widget.called.connect(lambda rows: show_rows(widget.table, rows or []))


def _init_reproject(widget):
    dock_message_label(widget)
    keep_default(widget, widget.lines, prefer_lines)
    keep_default(widget, widget.image, lambda layers: next(
        (layer for layer in reversed(layers) if not is_truth_layer(layer) and layer.ndim == 2), None))


@magic_factory(
    widget_init=_init_crystal,
    call_button="Set crystal frame",
    zone_axis={"label": "zone axis [uvw]"},
    g={"label": "g (hkl)"},
    g_angle_deg={"label": "g direction in image (deg)", "min": -180, "max": 180},
    tilt_from_zone_deg={"label": "tilt from zone axis (deg)", "min": -90, "max": 90},
    a={"min": 0.01, "max": 1e3, "step": 0.001, "label": "a (nm)"},
    b={"min": 0.01, "max": 1e3, "step": 0.001, "label": "b (nm)"},
    c={"min": 0.01, "max": 1e3, "step": 0.001, "label": "c (nm)"},
    alpha={"min": 1, "max": 179}, beta={"min": 1, "max": 179}, gamma={"min": 1, "max": 179},
    pixel_size_nm={"label": "pixel size (nm)", "min": 0.0001, "max": 1e4, "step": 0.001},
)
def crystal_frame(
    lines: napari.layers.Shapes,
    viewer: napari.viewer.Viewer,
    a: float = 0.4049, b: float = 0.4049, c: float = 0.4049,
    alpha: float = 90.0, beta: float = 90.0, gamma: float = 90.0,
    zone_axis: str = "0,0,1", g: str = "2,0,0", g_angle_deg: float = 0.0, tilt_from_zone_deg: float = 0.0,
    pixel_size_nm: float = 1.0,
):
    """Set the crystal frame of a lines layer: draw a/b/c, label each line with [uvw] and (hkl).

    Returns one row per line (``line``, ``direction_uvw``, ``habit_plane_hkl``,
    ``length``), shown in the dock's table; an empty list when the input is refused.
    """
    return _set_frame(lines, viewer, (a, b, c, alpha, beta, gamma), zone_axis, g, g_angle_deg,
                      tilt_from_zone_deg, pixel_size_nm)


@report_input_errors(default=list, to_dock=True)
def _set_frame(lines, viewer, lattice, zone_axis, g, g_angle_deg, tilt_from_zone_deg, pixel_size_nm):
    if lines is None or not len(lines.data):
        raise InputError("choose a Shapes layer holding 3D lines (e.g. '3D lines' from Reconstruct)")
    frame = CrystalFrame(*lattice, zone_axis=parse_indices(zone_axis, name="zone axis"),
                         g=parse_indices(g, name="g"), g_angle_deg=g_angle_deg,
                         tilt_from_zone_deg=tilt_from_zone_deg, pixel_size=pixel_size_nm)
    xyz = paths_to_lines(lines.data)
    directions, planes = line_crystallography(frame, xyz)
    features = lines.features.copy()
    features["direction_uvw"] = directions
    features["habit_plane_hkl"] = planes
    lines.features = features
    lines.metadata["crystal_frame"] = {"lattice": list(lattice), "zone_axis": zone_axis, "g": g,
                                       "g_angle_deg": g_angle_deg, "tilt_from_zone_deg": tilt_from_zone_deg,
                                       "pixel_size_nm": pixel_size_nm}
    everything = np.concatenate(xyz)
    origin = everything.min(axis=0)
    length = 0.25 * float(np.ptp(everything[:, :2], axis=0).max() or 10.0)
    segments = frame.axes_for_display(origin, length)  # (3, 2, 3) as (x, y, z)
    axes = [segment[:, ::-1] for segment in segments]
    if "crystal axes" in viewer.layers:
        viewer.layers.remove("crystal axes")
    viewer.add_shapes(axes, shape_type="line", edge_color=_AXIS_COLOURS, edge_width=3, ndim=3,
                      name="crystal axes", features={"axis": ["a", "b", "c"]})
    # The labels on Points at the axes' tips (a Shapes layer's text is not drawn in 3D),
    # added in the next turn of the event loop: two new layers in one turn stop the window longer.
    tips = np.array([axis[1] for axis in axes])
    QTimer.singleShot(0, lambda: _add_axis_labels(viewer, tips, length))
    lengths = [float(np.linalg.norm(np.diff(line, axis=0), axis=1).sum()) for line in xyz]
    return [{"line": k, "direction_uvw": d, "habit_plane_hkl": p, "length": n}
            for k, (d, p, n) in enumerate(zip(directions, planes, lengths))]


def _add_axis_labels(viewer, tips, length: float) -> None:
    if "crystal axes labels" in viewer.layers:
        viewer.layers.remove("crystal axes labels")
    viewer.add_points(tips, name="crystal axes labels", size=length * 0.08, face_color=_AXIS_COLOURS,
                      border_width=0, features={"axis": ["a", "b", "c"]}, ndim=3,
                      text={"string": "{axis}", "color": "white", "size": 14, "anchor": "upper_left"},
                      out_of_slice_display=True)


@magic_factory(
    widget_init=_init_reproject,
    call_button="Re-project",
    tilt_deg={"label": "tilt of that view (deg)", "min": -89, "max": 89, "step": 0.1},
    axis_col={"label": "tilt-axis column (-1 = centre)", "min": -1, "max": 1e5},
    align_to={"label": "align the image to (raw left view)"},
)
def reproject(
    lines: napari.layers.Shapes,
    image: napari.layers.Image,
    reference: napari.layers.Labels | None,
    viewer: napari.viewer.Viewer,
    tilt_deg: float = 10.0,
    axis_col: float = -1.0,
    align_to: napari.layers.Image | None = None,
) -> None:
    """Project the 3D lines into a view at ``tilt_deg`` and draw them over ``image``.

    With ``align_to`` (the raw left view of the reconstructed pair), ``image`` is a
    raw view of another tilt: it is aligned first (the pair's rectification, kept in
    the lines layer's metadata, takes the frame to the raw left view), and the
    lines are drawn in its pixels.
    """
    _reproject(lines, image, reference, viewer, tilt_deg, axis_col, align_to)


def _aligned(projected, image, reference, align_to, rectification):
    """The projected lines moved into the raw pixels of ``image`` (aligned to ``align_to``), and a message."""
    to_frame = (rectification or {}).get("affine_left")
    frame_to_view, direction, rect = align_view(np.asarray(align_to.data, dtype=float),
                                                np.asarray(image.data, dtype=float), reference_to_frame=to_frame)
    moved = [apply_affine(p, frame_to_view) for p in projected]
    message = (f"view aligned: tilt axis {rect.theta_deg:.2f} deg from vertical in the view, shift "
               f"({rect.shift[0]:.1f}, {rect.shift[1]:.1f}) px, {rect.n_inliers} inliers")
    if reference is not None:
        offset, _ = fit_depth_offset(np.vstack(moved), np.asarray(reference.data), direction=direction)
        moved = [p + offset * direction for p in moved]
        message += f"; depth origin fitted to the mask ({offset:+.2f} px along the epipolar direction)"
    for warning in rect.warnings:
        message += f"\nWARNING: {warning}"
    return moved, message


def _mask_distances(points, mask) -> dict:
    from scipy import ndimage

    mask = np.asarray(mask) != 0
    rows, cols = mask.shape
    inside = (points[:, 0] >= 0) & (points[:, 0] <= cols - 1) & (points[:, 1] >= 0) & (points[:, 1] <= rows - 1)
    if not inside.any() or not mask.any():
        raise InputError("no re-projected point falls on the comparison mask's image, or the mask is empty")
    field = ndimage.distance_transform_edt(~mask)
    dist = ndimage.map_coordinates(field, [points[inside, 1], points[inside, 0]], order=1)
    return {"mean": float(np.mean(dist)), "median": float(np.median(dist)), "max": float(np.max(dist)),
            "n_points": int(len(dist)), "n_outside": int((~inside).sum())}


@report_input_errors(to_dock=True)
def _reproject(lines, image, reference, viewer, tilt_deg, axis_col, align_to=None):
    if lines is None or image is None:
        raise InputError("choose a 3D lines layer and the image of the other view")
    centre = (image.data.shape[-1] - 1) / 2 if axis_col < 0 else axis_col
    xyz = paths_to_lines(lines.data)
    projected = reproject_lines(xyz, tilt_deg, axis_col=centre)
    message = None
    if align_to is not None:
        projected, message = _aligned(projected, image, reference, align_to, lines.metadata.get("rectification"))
    name = f"re-projected at {tilt_deg:g} deg"
    if name in viewer.layers:
        viewer.layers.remove(name)
    viewer.add_shapes([p[:, ::-1] for p in projected], shape_type="path", edge_color="cyan", edge_width=1.5,
                      name=name, scale=image.scale[-2:])
    if message is not None:
        viewer.layers[name].metadata["alignment"] = message
        napari.utils.notifications.show_info(message)
    if reference is not None:
        if align_to is not None:
            error = _mask_distances(np.vstack(projected), reference.data)
        else:
            error = reprojection_error(xyz, tilt_deg, np.asarray(reference.data) > 0, axis_col=centre)
        viewer.layers[name].metadata["reprojection_error_px"] = error
        napari.utils.notifications.show_info(
            f"re-projection error: mean {error['mean']:.2f} px, median {error['median']:.2f} px")
