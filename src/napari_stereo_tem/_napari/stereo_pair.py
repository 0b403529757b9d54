"""Dock widget: open a stereo pair as two image layers carrying angle and pixel size."""

from pathlib import Path

import napari
from magicgui import magic_factory

from ..checks import InputError
from ..images import read_stereo_pair
from .notify import dock_message_label, report_input_errors

__all__ = ["open_stereo_pair", "stereo_pair_layers"]


def stereo_pair_layers(pair) -> list:
    """Layer data tuples for a :class:`~napari_stereo_tem.images.StereoPair`."""
    meta = {
        "stereo_angle_deg": pair.stereo_angle_deg,
        "pixel_size_nm": pair.pixel_size_nm,
        "names": list(pair.names),
    }
    scale = (pair.pixel_size_nm, pair.pixel_size_nm) if pair.pixel_size_nm else (1.0, 1.0)
    layers = []
    for role, data, name in (("left", pair.left, pair.names[0]), ("right", pair.right, pair.names[1])):
        layers.append((data, {"name": f"{role}: {name}", "scale": scale, "colormap": "gray",
                              "metadata": {**meta, "stereo_role": role}}, "image"))
    return layers


@magic_factory(
    widget_init=dock_message_label,
    call_button="Open pair",
    left={"label": "left view", "mode": "r"},
    right={"label": "right view", "mode": "r"},
    stereo_angle_deg={"label": "stereo angle (deg)", "min": 0.0, "max": 89.0, "step": 0.1,
                      "tooltip": "0 = read from the files' stage tilts"},
    pixel_size_nm={"label": "pixel size (nm)", "min": 0.0, "max": 1e4, "step": 0.01,
                   "tooltip": "0 = read from the files, or pixels"},
    swap={"label": "swap views"},
)
def open_stereo_pair(
    left: Path = Path("."),
    right: Path = Path("."),
    stereo_angle_deg: float = 8.0,
    pixel_size_nm: float = 0.0,
    swap: bool = False,
) -> list[napari.types.LayerDataTuple]:
    """Read two views and add them as image layers (left at -phi/2, right at +phi/2)."""
    return _open(left, right, stereo_angle_deg, pixel_size_nm, swap)


def _check_file(path, role: str) -> None:
    path = Path(path)
    if str(path) in ("", ".") or path.is_dir():
        raise InputError(f"choose the {role} view's image file (the '...' button beside '{role} view')")


@report_input_errors(default=list, to_dock=True)
def _open(left, right, stereo_angle_deg, pixel_size_nm, swap):
    _check_file(left, "left")
    _check_file(right, "right")
    pair = read_stereo_pair(left, right, stereo_angle_deg=stereo_angle_deg or None,
                            pixel_size_nm=pixel_size_nm or None, swap=swap)
    return stereo_pair_layers(pair)
