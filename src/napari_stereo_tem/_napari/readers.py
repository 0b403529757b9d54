"""napari readers: 4D-STEM datasets (opened lazily) and microscope images.

A 4D file becomes one 4D image layer ``(scan_y, scan_x, det_y, det_x)`` backed
by dask (nothing is read until napari shows a frame); the dataset object rides
along in ``layer.metadata["fourdstem"]`` so the virtual-detector widget reuses
it, and the layer's metadata (and a notification) say which stored axes were
taken for the scan and which for the detector, and why (``axes_decision``). A
file holding one 2D image (a .dm3/.dm4/.emd/.hspy micrograph, one
diffraction frame) becomes a 2D image layer with its pixel size as scale; one
holding a stack of frames (an in-situ movie, a tilt series) a lazy 3D image layer.

A ``tracks.csv`` of ``stereo-tem track`` becomes a Tracks layer (one track per
dislocation, with its length and velocity as features); when the ``drift.csv``
written beside it is there, the tracks are put back into each frame's image
coordinates so that they lie on the frames of the stack.
"""

from __future__ import annotations

from pathlib import Path

from ..checks import InputError

__all__ = ["get_reader", "read_microscope_file", "get_tracks_reader", "read_tracks"]

_FOURD_ONLY = (".mib", ".blo", ".zspy", ".zarr", ".tvips", ".nxs", ".app5")
_EITHER = (".hspy", ".emd", ".h5", ".hdf5", ".dm3", ".dm4")
_STACK_ONLY = (".mrc", ".st", ".ali")  # tilt series as IMOD and SerialEM write them


def get_reader(path):
    """Return a reader for one path this plugin understands, else ``None``."""
    if isinstance(path, list):
        return None
    suffix = Path(path).suffix.lower()
    if suffix in _FOURD_ONLY or suffix in _EITHER or suffix in _STACK_ONLY:
        return read_microscope_file
    return None


def _fourd_layer(path: Path) -> list:
    from ..fourdstem.loading import open_4dstem

    dataset = open_4dstem(path)
    decision = dataset.metadata.get("axes_decision")
    if decision and decision.get("by") != "position":
        from napari.utils.notifications import show_info

        show_info(f"{path.name}: {decision['text']}")
    if dataset.scan_shape == (1, 1):
        frame = dataset.data[0, 0].compute()
        return [(frame, {"name": path.stem, "colormap": "gray",
                         "metadata": {"source": str(path), "kind": "diffraction pattern"}}, "image")]
    return [(dataset.data, {"name": path.stem, "colormap": "gray", "contrast_limits": None,
                            "metadata": {"source": str(path), "kind": "4D-STEM", "fourdstem": dataset,
                                         "axes_decision": decision}}, "image")]


def _stack_layers(path: Path, stacks: list, *, titled: bool = False) -> list:
    """Stacks of 2D frames (an in-situ movie, a tilt series) as lazy 3D image layers.

    A file holding several (a Velox ``.emd`` records one movie per detector) gives one layer each, named
    ``"<file> <title>"`` (so too with ``titled``), the first on top of the list as napari adds them last.
    """
    layers = []
    for k, stack in enumerate(stacks):
        pixel = stack.pixel_size_nm or 1.0
        name = f"{path.stem} {stack.title or k}" if len(stacks) > 1 or titled else path.stem
        layers.append((stack.data, {"name": name, "colormap": "gray", "scale": (1.0, pixel, pixel),
                                    "contrast_limits": None, "visible": k == 0,
                                    "metadata": {"source": str(path), "kind": "stack", "signal": k,
                                                 "title": stack.title, "pixel_size_nm": stack.pixel_size_nm,
                                                 "frame_interval_s": stack.frame_interval_s}}, "image"))
    return layers[::-1]


def read_microscope_file(path) -> list:
    """Read one file into layer-data tuples (see the module docstring)."""
    from ..images import read_image_and_stacks

    path = Path(path)
    if path.suffix.lower() in _FOURD_ONLY:
        layers = _fourd_layer(path)
    else:
        try:  # one lazy opening gives the image and the movies; a 4D dataset is not read here
            image, stacks = read_image_and_stacks(path)
        except InputError:
            if path.suffix.lower() in _STACK_ONLY:
                raise
            return _finish(_fourd_layer(path))
        layers = _stack_layers(path, stacks, titled=image is not None)
        if image is not None:  # a file may hold both (a Velox session: an overview image, a movie per detector)
            for _, attrs, _ in layers:
                attrs["visible"] = False
            scale = (image.pixel_size_nm,) * 2 if image.pixel_size_nm else (1.0, 1.0)
            layers.append((image.data, {"name": image.name, "colormap": "gray", "scale": scale,
                                        "metadata": {"source": str(path), "pixel_size_nm": image.pixel_size_nm,
                                                     "tilt_deg": image.tilt_deg}}, "image"))
    return _finish(layers)


def _finish(layers: list) -> list:
    for _, attrs, _ in layers:
        if attrs.get("contrast_limits", 0) is None:
            attrs.pop("contrast_limits")
    return layers


def get_tracks_reader(path):
    """Return :func:`read_tracks` for a ``tracks.csv`` of ``stereo-tem track`` (judged by its header), else ``None``."""
    from ..stereo.tracking import TRACK_COLUMNS

    if isinstance(path, list) or Path(path).suffix.lower() != ".csv" or not Path(path).is_file():
        return None
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().strip().split(",")
    return read_tracks if tuple(header[:len(TRACK_COLUMNS)]) == TRACK_COLUMNS else None  # nm columns may follow


def read_tracks(path) -> list:
    """A ``tracks.csv`` as one Tracks layer (``track_id, frame, y, x``; length and velocity as features)."""
    import csv

    import numpy as np

    from .layers import tracks_layer

    path = Path(path)
    with open(path, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise InputError(f"{path.name} holds no tracks")
    table = {key: np.array([float(r[key]) if r[key] != "" else np.nan for r in rows]) for key in rows[0]}
    drift = None
    drift_file, sidecar = path.with_name("drift.csv"), path.with_suffix(".json")
    if drift_file.is_file():
        with open(drift_file, encoding="utf-8") as handle:
            drift = {int(r["frame"]): (float(r["dx"]), float(r["dy"])) for r in csv.DictReader(handle)}
    elif sidecar.is_file():  # saved from napari (File > Save Selected Layers): the drift is in the sidecar
        import json

        try:
            kept = (json.loads(sidecar.read_text(encoding="utf-8")).get("metadata") or {}).get("drift") or {}
            drift = {int(k): (float(d[0]), float(d[1])) for k, d in kept.items()} or None
        except (ValueError, TypeError, AttributeError, IndexError):
            drift = None  # not this plugin's sidecar: the tracks stay in the first frame's coordinates
    return [tracks_layer(table, name=path.parent.name or path.stem, drift=drift, metadata={"source": str(path)})]
