"""napari writers: Shapes paths -> ``lines.csv`` + JSON sidecar, Points -> ``points.csv``, Tracks -> ``tracks.csv``.

napari orders coordinates ``(z, y, x)`` (2D layers ``(y, x)``); the files hold
the core's ``(x, y, z)`` in layer data units (pixels), as the CLI writes them
(DESIGN section 5). Beside each CSV a ``<name>.json`` keeps the layer's
provenance: its metadata (whatever is JSON-able), scale and units.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..checks import InputError
from ..particles.points_csv import POINT_COLUMNS, STD_COLUMNS, write_points_csv
from ..stereo.lines_io import write_json, write_lines_csv
from .layers import paths_to_lines

__all__ = ["write_lines", "write_points", "write_tracks", "POINTS_HEADER", "jsonable"]

#: The header line of ``points.csv`` (its first columns).
POINTS_HEADER = ",".join(POINT_COLUMNS)


def jsonable(value):
    """``value`` with what JSON cannot hold left out (datasets, arrays of objects, callables)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            kept = jsonable(item)
            if kept is not _DROP:
                out[str(key)] = kept
        return out
    if isinstance(value, (list, tuple)):
        return [v for v in (jsonable(item) for item in value) if v is not _DROP]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist()) if value.dtype.kind in "biuf" else _DROP
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return _DROP


_DROP = object()


def _sidecar(csv_path: Path, kind: str, attributes: dict) -> Path:
    record = {
        "kind": kind,
        "layer": attributes.get("name"),
        "units": "layer data units (pixels); multiply by scale for physical units",
        "scale": jsonable(attributes.get("scale")),
        "metadata": jsonable(dict(attributes.get("metadata") or {})),
    }
    return write_json(csv_path.with_suffix(".json"), record)


def _csv_path(path) -> Path:
    path = Path(path)
    return path if path.suffix.lower() == ".csv" else path.with_suffix(".csv")


def write_lines(path: str, data, attributes: dict) -> list[str]:
    """Write a Shapes layer's paths as ``line_id,x,y,z`` and a JSON sidecar.

    Parameters
    ----------
    path : str
        Target ``.csv``.
    data : list of arrays ``(n_vertices, 2 or 3)``
        napari shapes, ``(z, y, x)`` or ``(y, x)`` (then ``z = 0``).
    attributes : dict
        The layer's attributes (``shape_type``, ``metadata``, ``scale``, ...).

    Returns
    -------
    list of str
        The files written.
    """
    types = attributes.get("shape_type") or ["path"] * len(data)
    if isinstance(types, str):
        types = [types] * len(data)
    shapes = [np.asarray(s, dtype=float) for s, kind in zip(data, types) if kind in ("path", "line")]
    if not shapes:
        raise InputError("the Shapes layer holds no path or line to write; 3D lines are 'path' shapes")
    csv_path = write_lines_csv(_csv_path(path), paths_to_lines(shapes))
    return [str(csv_path), str(_sidecar(csv_path, "stereo-tem lines", attributes))]


def write_points(path: str, data, attributes: dict) -> list[str]:
    """Write a Points layer as ``x,y,z,radius`` (radius = size / 2) and a JSON sidecar.

    The particle table's one writer (:func:`~napari_stereo_tem.particles.write_points_csv`);
    a layer with ``std_x``, ``std_y``, ``std_z`` features keeps them as columns.

    Parameters
    ----------
    path : str
    data : array ``(n, 2 or 3)``
        napari ``(z, y, x)`` or ``(y, x)`` (then ``z = 0``).
    attributes : dict
        The layer's attributes; ``size`` is one diameter per point.
    """
    points = np.asarray(data, dtype=float).reshape(len(data), -1)
    if points.shape[1] == 2:
        points = np.column_stack([np.zeros(len(points)), points])
    if points.shape[1] != 3:
        raise InputError(f"points must be 2D or 3D to write as x,y,z; this layer is {points.shape[1]}D")
    size = np.asarray(attributes.get("size", 1.0), dtype=float)
    if size.ndim == 2:  # older napari: one size per dimension
        size = size.mean(axis=1)
    radius = np.broadcast_to(size, len(points)) / 2.0
    features = attributes.get("features")
    std = None
    if features is not None and all(c in features for c in STD_COLUMNS):
        std = np.column_stack([np.asarray(features[c], dtype=float) for c in STD_COLUMNS])
    csv_path = write_points_csv(_csv_path(path), points[:, ::-1], radius, std=std)
    return [str(csv_path), str(_sidecar(csv_path, "stereo-tem points", attributes))]


def write_tracks(path: str, data, attributes: dict) -> list[str]:
    """Write a Tracks layer as ``tracks.csv`` (the columns ``stereo-tem track`` writes) and a JSON sidecar.

    ``x, y`` are written in the first frame's coordinates (drift removed), as the command writes them:
    a layer whose metadata says its points lie on the frames' images (the Track dock's, or one read from
    ``tracks.csv`` with ``drift.csv`` beside it) has its ``drift`` taken off again; the sidecar keeps the
    drift, so the file opens on the frames again. Length and velocities come from the layer's features
    (NaN where it has none); the nm and nm/s columns where the features hold them.

    Parameters
    ----------
    path : str
    data : array ``(n, 4)``
        napari tracks ``(track_id, frame, y, x)``.
    attributes : dict
        The layer's attributes (``features``, ``metadata``, ``scale``, ...).
    """
    from ..atomic import atomic_write_text
    from ..evaluation.table import csv_text
    from ..stereo.tracking import TRACK_COLUMNS

    tracks = np.asarray(data, dtype=float).reshape(len(data), -1)
    if tracks.shape[1] != 4:
        raise InputError(f"tracks must be (track_id, frame, y, x) to write as tracks.csv; this layer has "
                         f"{tracks.shape[1]} columns")
    meta = attributes.get("metadata") or {}
    x, y = tracks[:, 3].copy(), tracks[:, 2].copy()
    drift = meta.get("drift") or {}
    if str(meta.get("coordinates", "")).startswith("each frame's image") and drift:
        moved = np.array([drift.get(str(int(f)), [0.0, 0.0]) for f in tracks[:, 1]], dtype=float)
        x, y = x - moved[:, 0], y - moved[:, 1]
    features = attributes.get("features")
    physical = [c for c in ("length_nm", "velocity_x_nm_s", "velocity_y_nm_s")
                if features is not None and c in features]

    def column(name):
        if features is not None and name in features:
            return np.asarray(features[name], dtype=float)
        return np.full(len(tracks), np.nan)

    values = {"track_id": tracks[:, 0].astype(int), "frame": tracks[:, 1].astype(int), "x": x, "y": y,
              **{c: column(c) for c in ("length", "velocity_x", "velocity_y", *physical)}}
    rows = [{key: values[key][k].item() for key in values} for k in range(len(tracks))]
    csv_path = _csv_path(path)
    atomic_write_text(csv_path, csv_text(rows, cols=list(TRACK_COLUMNS) + physical))
    return [str(csv_path), str(_sidecar(csv_path, "stereo-tem tracks", attributes))]
