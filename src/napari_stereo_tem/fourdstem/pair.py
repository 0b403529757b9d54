"""A virtual stereo pair, composed once: calibration, geometry of every pair of discs, rotated views.

The napari widget and ``stereo-tem virtual`` both call these, so a pair made
in one is the pair made in the other:

- :func:`calibrate` turns a pattern (or a given disc) and the convergence
  semi-angle into ``mrad/px``, refusing a pattern without a clear direct disc
  (then no stereo angle is computed from it);
- :func:`pair_geometry` gives, for every pair of discs, the stereo angle, the
  epipolar direction and the rotation that makes disparities horizontal;
- :func:`iter_virtual_stereo_pair` computes the two virtual images in one pass
  and returns them rotated (:class:`VirtualStereoPair`), with the provenance
  the stereo pipeline needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from ..checks import InputError
from ..progress import ProgressGenerator, drive
from .calibration import BeamFit, fit_direct_beam, mrad_per_px
from .masks import Disc, as_disc
from .stereo import epipolar_direction_deg, rotate_image, rotation_to_horizontal_deg, stereo_angle_deg
from .virtual import iter_virtual_images

__all__ = ["Calibration", "calibrate", "pair_geometry", "VirtualStereoPair", "compose_stereo_pair",
           "iter_virtual_stereo_pair", "virtual_stereo_pair"]


@dataclass(frozen=True)
class Calibration:
    """The direct disc, where it came from, its fit quality, and ``mrad_per_px`` (None when refused)."""

    direct: Disc | None
    found_on: str
    fit: BeamFit | None = None
    convergence_mrad: float | None = None
    mrad_per_px: float | None = None
    refused: str = ""

    def to_dict(self) -> dict:
        out = {"direct_beam": None if self.direct is None else self.direct.to_dict(),
               "direct_beam_from": self.found_on,
               "fit": None if self.fit is None else self.fit.to_dict(),
               "convergence_mrad": self.convergence_mrad, "mrad_per_px": self.mrad_per_px}
        if self.refused:
            out["refused"] = self.refused
        return out


def calibrate(pattern=None, *, convergence_mrad: float | None = None, direct=None,
              found_on: str = "mean pattern") -> Calibration:
    """Calibrate the detector: the direct disc (given, or fitted on ``pattern``) and ``mrad/px``.

    Parameters
    ----------
    pattern : array ``(det_y, det_x)``, optional
        Mean pattern or vacuum reference; the direct disc is fitted on it
        (:func:`~.calibration.fit_direct_beam`) unless ``direct`` is given.
    convergence_mrad : float, optional
        Convergence semi-angle; without it ``mrad_per_px`` stays None.
    direct : Disc or (cy, cx, r), optional
        The direct disc, given by hand.
    found_on : str
        Where ``pattern`` came from (for the record).

    Returns
    -------
    Calibration
        ``refused`` says why there is no ``mrad_per_px`` when the pattern shows
        no clear disc (noise, a flat frame): no stereo angle is to be made then.
    """
    if direct is not None:
        disc, fit, found_on = as_disc(direct), None, "given"
    elif pattern is not None:
        fit = fit_direct_beam(pattern)
        disc = fit.disc
        if not fit.clear:
            return Calibration(disc, found_on, fit, convergence_mrad, None,
                               f"no clear direct-beam disc on the {found_on}: {fit.reason}; give the disc by hand "
                               "or use a vacuum reference")
    else:
        raise InputError("calibration needs a pattern to find the direct disc on, or the disc itself")
    scale = None if convergence_mrad is None else mrad_per_px(convergence_mrad, disc)
    return Calibration(disc, found_on, fit, None if convergence_mrad is None else float(convergence_mrad), scale)


def pair_geometry(discs, *, mrad_per_px: float | None = None, scan_rotation_deg: float = 0.0) -> list[dict]:
    """Every pair ``(i, j)`` of discs: stereo angle (None without calibration), epipolar direction, rotation.

    Discs sharing a centre have no epipolar direction (None).
    """
    discs = [as_disc(d) for d in discs]
    out = []
    for i, j in combinations(range(len(discs)), 2):
        same = discs[i].centre == discs[j].centre
        out.append({
            "pair": [i, j],
            "stereo_angle_deg": None if mrad_per_px is None else stereo_angle_deg(discs[i], discs[j], mrad_per_px),
            "epipolar_direction_deg": None if same else
            epipolar_direction_deg(discs[i], discs[j], scan_rotation_deg=scan_rotation_deg),
            "rotation_to_horizontal_deg": None if same else
            rotation_to_horizontal_deg(discs[i], discs[j], scan_rotation_deg=scan_rotation_deg),
        })
    return out


@dataclass
class VirtualStereoPair:
    """Left and right views ``(scan_y, scan_x)`` float32, rotated so that disparities run along ``+x``."""

    left: np.ndarray
    right: np.ndarray
    stereo_angle_deg: float
    rotation_deg: float
    metadata: dict = field(default_factory=dict)


def compose_stereo_pair(image_left, image_right, disc_left, disc_right, *, mrad_per_px: float | None,
                        scan_rotation_deg: float = 0.0, provenance: dict | None = None) -> VirtualStereoPair:
    """The stereo pair of two virtual images: rotated views, stereo angle and provenance.

    Raises
    ------
    InputError
        No calibration (``mrad_per_px`` None: a refused or missing direct disc), or
        two discs with one centre.
    """
    if mrad_per_px is None:
        raise InputError("no calibration: the stereo angle needs the direct disc and the convergence "
                         "semi-angle (mrad/px); calibrate on a pattern with a clear direct beam first")
    left, right = as_disc(disc_left), as_disc(disc_right)
    angle = stereo_angle_deg(left, right, mrad_per_px)
    rotation = rotation_to_horizontal_deg(left, right, scan_rotation_deg=scan_rotation_deg)
    meta = {"stereo_angle_deg": angle, "pixel_size_nm": None, "rotation_deg": rotation,
            "discs": [left.to_dict(), right.to_dict()], "mrad_per_px": float(mrad_per_px),
            "scan_rotation_deg": float(scan_rotation_deg), **(provenance or {})}
    return VirtualStereoPair(rotate_image(image_left, rotation), rotate_image(image_right, rotation),
                             angle, rotation, meta)


def iter_virtual_stereo_pair(data, disc_left, disc_right, *, mrad_per_px: float | None,
                             scan_rotation_deg: float = 0.0, executor="inline", descan=None,
                             provenance: dict | None = None) -> ProgressGenerator[VirtualStereoPair]:
    """Both virtual images in one pass, then :func:`compose_stereo_pair` (a progress generator)."""
    if mrad_per_px is None:  # refuse before reading anything
        compose_stereo_pair(None, None, disc_left, disc_right, mrad_per_px=None)
    images = yield from iter_virtual_images(data, [disc_left, disc_right], executor=executor, descan=descan)
    return compose_stereo_pair(images[0], images[1], disc_left, disc_right, mrad_per_px=mrad_per_px,
                               scan_rotation_deg=scan_rotation_deg, provenance=provenance)


def virtual_stereo_pair(data, disc_left, disc_right, *, mrad_per_px: float | None, scan_rotation_deg: float = 0.0,
                        executor="inline", descan=None, provenance: dict | None = None, on_progress=None,
                        should_stop=None) -> VirtualStereoPair:
    """Drives :func:`iter_virtual_stereo_pair` (same parameters)."""
    return drive(iter_virtual_stereo_pair(data, disc_left, disc_right, mrad_per_px=mrad_per_px,
                                          scan_rotation_deg=scan_rotation_deg, executor=executor, descan=descan,
                                          provenance=provenance), on_progress, should_stop)
