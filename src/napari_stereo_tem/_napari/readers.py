"""napari readers: 4D-STEM datasets (opened lazily) and microscope images.

A 4D file becomes one 4D image layer ``(scan_y, scan_x, det_y, det_x)`` backed
by dask (nothing is read until napari shows a frame); the dataset object rides
along in ``layer.metadata["fourdstem"]`` so the virtual-detector widget reuses
it, and the layer's metadata (and a notification) say which stored axes were
taken for the scan and which for the detector, and why (``axes_decision``). A
file holding one 2D image (a .dm3/.dm4/.emd/.hspy micrograph, one
diffraction frame) becomes a 2D image layer with its pixel size as scale.
"""

from __future__ import annotations

from pathlib import Path

from ..checks import InputError

__all__ = ["get_reader", "read_microscope_file"]

_FOURD_ONLY = (".mib", ".blo", ".zspy", ".zarr", ".tvips", ".nxs", ".app5")
_EITHER = (".hspy", ".emd", ".h5", ".hdf5", ".dm3", ".dm4")


def get_reader(path):
    """Return a reader for one path this plugin understands, else ``None``."""
    if isinstance(path, list):
        return None
    suffix = Path(path).suffix.lower()
    if suffix in _FOURD_ONLY or suffix in _EITHER:
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


def read_microscope_file(path) -> list:
    """Read one file into layer-data tuples (see the module docstring)."""
    path = Path(path)
    if path.suffix.lower() in _FOURD_ONLY:
        layers = _fourd_layer(path)
    else:
        from ..images import read_image

        try:
            image = read_image(path)
        except InputError:
            layers = _fourd_layer(path)  # not a 2D image: try it as a 4D dataset
        else:
            scale = (image.pixel_size_nm,) * 2 if image.pixel_size_nm else (1.0, 1.0)
            layers = [(image.data, {"name": image.name, "colormap": "gray", "scale": scale,
                                    "metadata": {"source": str(path), "pixel_size_nm": image.pixel_size_nm,
                                                 "tilt_deg": image.tilt_deg}}, "image")]
    for _, attrs, _ in layers:
        if attrs.get("contrast_limits", 0) is None:
            attrs.pop("contrast_limits")
    return layers
