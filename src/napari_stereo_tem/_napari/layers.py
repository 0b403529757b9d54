"""Turning core results into napari layer data, and back.

napari orders axes as (plane, row, column); the core's 3D points are
``(x, y, z)`` with ``z`` along the beam, so a point goes to napari as
``(z, y, x)``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["lines_to_paths", "paths_to_lines", "depth_colors", "depth_range", "depth_rgba", "lines_layer",
           "depth_segments", "depth_segments_layer", "points_to_napari", "is_truth_layer", "DEPTH_LAYER_SUFFIX",
           "tracks_layer"]

#: The part of turbo used for depth: its darkest ends vanish on napari's black canvas.
_DEPTH_SPAN = (0.12, 0.95)
#: Name of the per-segment depth view of a lines layer: ``"<lines name> (depth)"``.
DEPTH_LAYER_SUFFIX = " (depth)"


def is_truth_layer(layer) -> bool:
    """Whether a layer holds a sample's ground truth (never chosen as an input by default)."""
    meta = getattr(layer, "metadata", None) or {}
    return bool(meta.get("truth")) or str(getattr(layer, "name", "")).lower().startswith("true ")


def depth_range(lines_xyz) -> tuple[float, float]:
    """Smallest and largest depth ``z`` over every point of every line (``(0, 0)`` when there is none)."""
    zs = [np.asarray(line, dtype=float)[:, 2] for line in lines_xyz if len(line)]
    if not zs:
        return 0.0, 0.0
    z = np.concatenate(zs)
    z = z[np.isfinite(z)]
    return (float(z.min()), float(z.max())) if z.size else (0.0, 0.0)


def depth_rgba(depths, low: float, high: float, *, colormap: str = "turbo") -> np.ndarray:
    """RGBA ``(n, 4)`` for depths on a shared scale: ``low`` and ``high`` get the two ends of ``colormap``.

    The same depth gets the same colour whatever line it is on; equal ``low`` and
    ``high`` give the middle colour.
    """
    from napari.utils.colormaps import ensure_colormap

    depths = np.asarray(depths, dtype=float)
    if high > low:
        values = np.clip((depths - low) / (high - low), 0.0, 1.0)
    else:
        values = np.full(depths.shape, 0.5)
    values = _DEPTH_SPAN[0] + values * (_DEPTH_SPAN[1] - _DEPTH_SPAN[0])
    return np.asarray(ensure_colormap(colormap).map(values.ravel()), dtype=float).reshape(*depths.shape, 4)


def lines_to_paths(lines_xyz) -> list[np.ndarray]:
    """3D polylines ``(n, 3)`` as ``(x, y, z)`` -> napari path vertices ``(z, y, x)``."""
    return [np.asarray(line, dtype=float)[:, ::-1].copy() for line in lines_xyz if len(line) >= 2]


def paths_to_lines(paths) -> list[np.ndarray]:
    """Inverse of :func:`lines_to_paths` (2D paths get ``z = 0``)."""
    lines = []
    for path in paths:
        vertices = np.asarray(path, dtype=float)
        if vertices.shape[1] == 2:
            vertices = np.column_stack([np.zeros(len(vertices)), vertices])
        lines.append(vertices[:, ::-1].copy())
    return lines


def depth_colors(lines_xyz, *, colormap: str = "turbo") -> np.ndarray:
    """One RGBA colour per line from its mean depth, on the scale of all the lines' points.

    Two lines at nearly the same depth get nearly the same colour (the scale is
    the depth range of every point, not of the lines' means).
    """
    if not len(lines_xyz):
        return np.zeros((0, 4))
    low, high = depth_range(lines_xyz)
    depths = np.array([np.nanmean(np.asarray(line, dtype=float)[:, 2]) for line in lines_xyz])
    return depth_rgba(depths, low, high, colormap=colormap)


def depth_segments(lines_xyz) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every line cut into its segments: napari vectors ``(n, 2, 3)``, their mid depths and line ids.

    A vector is ``[start, step]`` in napari's ``(z, y, x)`` order, from one vertex
    to the next, so colouring the vectors colours each line along its length.
    """
    vectors, depths, ids = [], [], []
    for k, line in enumerate(lines_xyz):
        zyx = np.asarray(line, dtype=float)[:, ::-1]
        if len(zyx) < 2:
            continue
        vectors.append(np.stack([zyx[:-1], np.diff(zyx, axis=0)], axis=1))
        depths.append(0.5 * (zyx[:-1, 0] + zyx[1:, 0]))
        ids.append(np.full(len(zyx) - 1, k))
    if not vectors:
        return np.zeros((0, 2, 3)), np.zeros(0), np.zeros(0, int)
    return np.concatenate(vectors), np.concatenate(depths), np.concatenate(ids)


def depth_segments_layer(lines_xyz, *, name: str = "3D lines" + DEPTH_LAYER_SUFFIX, scale=None, unit: str = "px",
                         width: float | None = None, metadata=None, depth_std=None, **kwargs) -> tuple:
    """A Vectors layer-data tuple showing each 3D line coloured by depth along its length.

    ``metadata["depth_colour_bar"]`` holds the scale (low, high, unit) for a legend;
    ``width`` defaults to a 100th of the lines' extent across the image, at least 2 px.
    ``depth_std`` (one array per line, the standard deviation of each point's depth)
    becomes the segments' ``depth_std`` feature: which parts of a line to trust.
    """
    keep = [k for k, line in enumerate(lines_xyz) if len(line) >= 2]
    lines = [lines_xyz[k] for k in keep]
    vectors, depths, ids = depth_segments(lines)
    low, high = depth_range(lines)
    if width is None:
        xy = np.concatenate([np.asarray(line, dtype=float)[:, :2] for line in lines]) if lines else np.zeros((1, 2))
        width = max(2.0, float(np.ptp(xy, axis=0).max()) / 100.0)
    factor = float(scale[0]) if scale is not None else 1.0
    meta = {"kind": "stereo-tem depth view", "depth_colour_bar": {"low": low * factor, "high": high * factor,
                                                                  "unit": unit}}
    meta.update(metadata or {})
    attrs = {"name": name, "edge_width": width, "length": 1.0, "vector_style": "line",
             "edge_color": depth_rgba(depths, low, high) if len(depths) else "yellow",
             "features": {"depth": depths, "line_id": ids}, "ndim": 3, "metadata": meta}
    if depth_std is not None and len(depth_std) == len(lines_xyz):
        per_segment = [0.5 * (np.asarray(depth_std[k])[:-1] + np.asarray(depth_std[k])[1:]) for k in keep]
        attrs["features"]["depth_std"] = np.concatenate(per_segment) if per_segment else np.zeros(0)
    if scale is not None:
        attrs["scale"] = scale
    attrs.update(kwargs)
    return (vectors, attrs, "vectors")


def lines_layer(lines_xyz, *, name: str = "3D lines", scale=None, metadata=None, depth_std=None,
                **kwargs) -> tuple:
    """A Shapes layer-data tuple of 3D ``path``s coloured by depth.

    ``depth_std`` (one array per line) adds the ``depth_std_median`` property per path.
    """
    keep = [k for k, line in enumerate(lines_xyz) if len(line) >= 2]
    lines = [lines_xyz[k] for k in keep]
    paths = lines_to_paths(lines)
    properties = {
        "line_id": np.arange(len(lines)),
        "mean_depth": np.array([np.mean(np.asarray(line)[:, 2]) for line in lines]),
        "length": np.array([np.linalg.norm(np.diff(np.asarray(line), axis=0), axis=1).sum() for line in lines]),
    }
    if depth_std is not None and len(depth_std) == len(lines_xyz):
        properties["depth_std_median"] = np.array([float(np.median(depth_std[k])) for k in keep])
    meta = {"kind": "stereo-tem lines"}
    meta.update(metadata or {})
    attrs = {
        "name": name,
        "shape_type": "path",
        "edge_width": 2,
        "edge_color": depth_colors(lines) if lines else "yellow",
        "face_color": "transparent",
        "properties": properties,
        "ndim": 3,
        "metadata": meta,
    }
    if scale is not None:
        attrs["scale"] = scale
    attrs.update(kwargs)
    return (paths, attrs, "shapes")


def points_to_napari(points_xyz) -> np.ndarray:
    """3D points ``(n, 3)`` as ``(x, y, z)`` -> napari ``(z, y, x)``."""
    points = np.asarray(points_xyz, dtype=float).reshape(-1, 3)
    return points[:, ::-1].copy()


def tracks_layer(table: dict, *, name: str, drift: dict | None = None, scale=None, metadata=None) -> tuple:
    """A Tracks layer-data tuple from the columns of ``tracks.csv`` (``track_id, frame, x, y, length,
    velocity_x, velocity_y``, and ``length_nm``, ``velocity_x_nm_s``, ``velocity_y_nm_s`` where present).

    ``table`` maps column names to arrays. ``x, y`` are in the first frame's coordinates (drift removed);
    with ``drift`` (``{frame: (dx, dy)}`` for every frame of the table) each frame's drift is put back, so that
    the tracks lie on the frames' images, and the drift is kept in the metadata (``drift``: frame -> ``[dx, dy]``)
    for the writer (:func:`~napari_stereo_tem._napari.writers.write_tracks`). Length, velocity and speed
    (px, px/frame; nm, nm/s where known) are features.
    """
    frames = np.asarray(table["frame"], dtype=float).astype(int)
    x, y = np.array(table["x"], dtype=float), np.array(table["y"], dtype=float)
    frame_of_reference, kept = "first frame (drift removed)", {}
    if drift is not None and all(int(f) in drift for f in frames):
        x += np.array([drift[int(f)][0] for f in frames])
        y += np.array([drift[int(f)][1] for f in frames])
        frame_of_reference = "each frame's image (drift put back)"
        kept = {"drift": {str(int(k)): [float(d[0]), float(d[1])] for k, d in drift.items()}}
    data = np.column_stack([np.asarray(table["track_id"], dtype=float), frames, y, x])
    vx, vy = np.asarray(table["velocity_x"], dtype=float), np.asarray(table["velocity_y"], dtype=float)
    features = {"length": np.asarray(table["length"], dtype=float), "velocity_x": vx, "velocity_y": vy,
                "speed": np.hypot(vx, vy)}
    if "length_nm" in table:  # calibrated (a known pixel size and frame interval)
        features["length_nm"] = np.asarray(table["length_nm"], dtype=float)
    if "velocity_x_nm_s" in table:
        for key in ("velocity_x_nm_s", "velocity_y_nm_s"):
            features[key] = np.asarray(table[key], dtype=float)
        features["speed_nm_s"] = np.hypot(features["velocity_x_nm_s"], features["velocity_y_nm_s"])
    attrs = {"name": name, "features": features, "tail_length": 30,
             "metadata": {"coordinates": frame_of_reference, "velocity": "px/frame, drift removed",
                          **kept, **(metadata or {})}}
    if scale is not None:
        attrs["scale"] = scale
    return (data, attrs, "tracks")
