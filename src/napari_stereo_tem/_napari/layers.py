"""Turning core results into napari layer data, and back.

napari orders axes as (plane, row, column); the core's 3D points are
``(x, y, z)`` with ``z`` along the beam, so a point goes to napari as
``(z, y, x)``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["lines_to_paths", "paths_to_lines", "depth_colors", "lines_layer", "points_to_napari"]


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
    """One RGBA colour per line from its mean depth (shallow to deep along ``colormap``)."""
    from napari.utils.colormaps import ensure_colormap

    depths = np.array([np.mean(np.asarray(line)[:, 2]) for line in lines_xyz]) if len(lines_xyz) else np.zeros(0)
    if depths.size == 0:
        return np.zeros((0, 4))
    span = np.ptp(depths)
    values = (depths - depths.min()) / span if span > 0 else np.full(depths.shape, 0.5)
    return ensure_colormap(colormap).map(values)


def lines_layer(lines_xyz, *, name: str = "3D lines", scale=None, metadata=None, **kwargs) -> tuple:
    """A Shapes layer-data tuple of 3D ``path``s coloured by depth."""
    lines = [line for line in lines_xyz if len(line) >= 2]
    paths = lines_to_paths(lines)
    properties = {
        "line_id": np.arange(len(lines)),
        "mean_depth": np.array([np.mean(np.asarray(line)[:, 2]) for line in lines]),
        "length": np.array([np.linalg.norm(np.diff(np.asarray(line), axis=0), axis=1).sum() for line in lines]),
    }
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
