"""Four virtual detectors in quadrants: nanoparticles in 3D from one 4D-STEM scan (DESIGN 3.12, 3.7).

A disc centred at ``k`` (detector pixels from the direct-beam centre) sees the
specimen along a ray tilted by ``beta = |k| * mrad_per_px`` towards ``k``; a
particle at height ``Z`` appears in its virtual image shifted by ``Z sin(beta)``
along the direction of ``k`` turned into the scan frame by the scan rotation
(:mod:`.stereo`, :mod:`napari_stereo_tem.synth.fourdstem`). That is the
four-view model of :mod:`napari_stereo_tem.particles.geometry` with azimuth
``psi_k = atan2(ky, kx) + scan_rotation`` and ``beta_k = |k_k| * mrad_per_px``: four
discs at one distance from the direct beam share one ``beta``, discs at different
distances give the particle workflow one ``beta`` per view:

- :func:`quadrant_discs` places four discs at a chosen distance around the direct beam;
- :func:`view_geometry` turns any three or more discs into ``beta`` (one number when they
  lie at one distance, else one per disc) and the azimuths, refusing only layouts that
  give no depth (two discs at one place, two at the beam centre);
- :func:`iter_particles_from_4dstem` makes the virtual images in one pass and runs
  :func:`~napari_stereo_tem.particles.pipeline.reconstruct_particles_iter` on them.

The direction of a disc is taken at its centre. For a disc inside the direct disc
this is exact to first order in the angle: the shift of each detector pixel is
proportional to its ``k``, so the intensity-weighted mean over a uniformly lit disc
is the shift of its centre.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..checks import InputError
from ..progress import ProgressGenerator, drive
from .masks import Disc, as_disc
from .virtual import iter_virtual_images

__all__ = ["quadrant_discs", "view_geometry", "ParticlesFromScan", "iter_particles_from_4dstem",
           "particles_from_4dstem", "BETA_TOLERANCE"]

#: Discs whose distances from the direct beam agree within this fraction of their mean share one beta
#: (their mean: the quadrant layout's discs, whose distances differ by rounding only); otherwise every
#: view keeps its own.
BETA_TOLERANCE = 1e-6


def _centre_of(direct) -> tuple[float, float]:
    if isinstance(direct, Disc):
        return direct.cy, direct.cx
    try:
        values = [float(v) for v in direct]
    except (TypeError, ValueError):
        raise InputError(f"the direct-beam centre must be (cy, cx) or a disc, got {direct!r}") from None
    if len(values) < 2 or not np.all(np.isfinite(values)):
        raise InputError(f"the direct-beam centre must be two finite numbers (cy, cx), got {direct!r}")
    return values[0], values[1]


def quadrant_discs(direct, offset_px: float, disc_radius_px: float, *, first_azimuth_deg: float = 0.0,
                   n: int = 4) -> list[Disc]:
    """``n`` discs (four quadrants by default) at ``offset_px`` around the direct-beam centre.

    Parameters
    ----------
    direct : Disc or (cy, cx)
        The direct-beam disc (its centre is used; with a :class:`Disc`, the layout is
        refused when a disc would reach beyond it: that part would see no bright field).
    offset_px : float
        Distance of every disc centre from the direct-beam centre, detector pixels.
    disc_radius_px : float
        Radius of each disc.
    first_azimuth_deg : float
        Direction of the first disc on the detector, from ``+kx`` towards ``+ky``; the
        others follow at ``360 / n`` degree steps.

    Returns
    -------
    list of Disc
    """
    cy, cx = _centre_of(direct)
    offset, radius = float(offset_px), float(disc_radius_px)
    if not (np.isfinite(offset) and offset > 0):
        raise InputError(f"the quadrant offset must be a positive number of detector pixels, got {offset_px!r}")
    if not (np.isfinite(radius) and radius > 0):
        raise InputError(f"the quadrant disc radius must be a positive number of pixels, got {disc_radius_px!r}")
    if int(n) < 3:
        raise InputError(f"at least 3 discs are needed for particles in 3D, got {n}")
    step = 2.0 * np.pi / int(n)
    if radius > offset * np.sin(step / 2.0):
        raise InputError(f"discs of radius {radius:g} px at {offset:g} px from the centre overlap their "
                         f"neighbours; use a radius below {offset * np.sin(step / 2):.2f} px or a larger offset")
    if isinstance(direct, Disc) and offset + radius > direct.radius + 0.5:
        raise InputError(f"discs at {offset:g} px with radius {radius:g} px reach beyond the direct disc "
                         f"(radius {direct.radius:.2f} px), where the pattern holds no bright field; keep "
                         f"offset + radius <= {direct.radius:.2f} px")
    first = np.deg2rad(float(first_azimuth_deg))
    return [Disc(cy + offset * np.sin(first + i * step), cx + offset * np.cos(first + i * step), radius)
            for i in range(int(n))]


def view_geometry(discs, direct, *, mrad_per_px: float, scan_rotation_deg: float = 0.0,
                  tolerance: float = BETA_TOLERANCE) -> tuple[float | list[float], list[float], dict]:
    """The view angles ``beta_k`` and the azimuths ``psi_k`` of the particle model, from disc positions.

    Parameters
    ----------
    discs : sequence of Disc or (cy, cx, r)
        Three or more discs (four quadrants in practice), in the order of the views.
    direct : Disc or (cy, cx)
        The direct beam (its centre is the zero of ``k``).
    mrad_per_px : float
        Detector calibration (convergence semi-angle / direct-disc radius).
    scan_rotation_deg : float
        Rotation turning a detector direction into the scan image's.
    tolerance : float
        Discs whose distances from the centre agree within this fraction of their mean
        share one ``beta`` (their mean); otherwise each view has its own.

    Returns
    -------
    beta_deg : float or list of float
        ``mean |k| * mrad_per_px`` in degrees when the distances agree, else ``|k| * mrad_per_px``
        per disc (one disc at the beam centre has 0: it looks straight down).
    azimuths_deg : list of float
        ``atan2(ky, kx) + scan_rotation`` per disc.
    info : dict
        ``beta_per_view_deg``, ``offsets_px``, ``spread`` (relative), the calibration.
    """
    from .stereo import _check_calibration

    scale = _check_calibration(mrad_per_px)
    discs = [as_disc(d) for d in discs]
    if len(discs) < 3:
        raise InputError(f"{len(discs)} disc(s) given; particles in 3D need at least 3 views "
                         "(use the four-quadrant layout)")
    cy, cx = _centre_of(direct)
    k = np.array([[d.cy - cy, d.cx - cx] for d in discs])
    offsets = np.hypot(k[:, 0], k[:, 1])
    # A view's shift with height is sin(beta_k) along k_k, which is proportional to k_k itself: two
    # discs at one place see one view, and discs at the centre see straight down (no shift at all).
    centred = np.flatnonzero(offsets < 0.5)
    if len(centred) > 1:
        raise InputError(f"discs {', '.join(str(i) for i in centred)} sit on the direct-beam centre: each sees "
                         "the specimen straight down, so they are one view and give no depth between them; "
                         "keep at most one there and move the others off the centre")
    apart = np.hypot(k[:, None, 0] - k[None, :, 0], k[:, None, 1] - k[None, :, 1]) + np.eye(len(k)) * 1e9
    if apart.min() < 0.5:
        i, j = np.unravel_index(np.argmin(apart), apart.shape)
        raise InputError(f"discs {i} and {j} sit at the same place on the detector ({discs[i].cy:.2f}, "
                         f"{discs[i].cx:.2f}): they see the same view; give every disc its own position")
    spread = float((offsets.max() - offsets.min()) / offsets.mean())
    beta_each = np.rad2deg(offsets * scale * 1e-3)
    azimuths = np.rad2deg(np.arctan2(k[:, 0], k[:, 1])) + float(scan_rotation_deg)
    azimuths = [float((a + 180.0) % 360.0 - 180.0) for a in azimuths]
    if spread <= tolerance:
        beta = float(np.rad2deg(offsets.mean() * scale * 1e-3))
    else:  # one view angle per disc
        beta = [float(b) for b in beta_each]
    info = {"beta_per_view_deg": [float(b) for b in beta_each], "offsets_px": [float(o) for o in offsets],
            "spread": spread, "mrad_per_px": scale, "scan_rotation_deg": float(scan_rotation_deg),
            "direct_centre": [cy, cx], "discs": [d.to_dict() for d in discs]}
    return beta, azimuths, info


@dataclass
class ParticlesFromScan:
    """Particles of one 4D-STEM scan: the particle result, the four virtual images and their geometry.

    ``beta_deg`` is one float when the discs lie at one distance from the direct beam, else a
    list with one view angle per disc.
    """

    result: object  # particles.pipeline.ParticleResult
    views: np.ndarray
    discs: list
    beta_deg: float | list
    azimuths_deg: list
    geometry: dict = field(default_factory=dict)


def iter_particles_from_4dstem(data, discs, direct, *, mrad_per_px: float, scan_rotation_deg: float = 0.0,
                               executor="inline", descan=None,
                               beta_tolerance: float = BETA_TOLERANCE,
                               **particle_options) -> ProgressGenerator[ParticlesFromScan]:
    """Virtual images of the discs in one pass, then the four-view particle workflow (a progress generator).

    Parameters
    ----------
    data : anything :func:`~.loading.open_4dstem` opens
    discs, direct, mrad_per_px, scan_rotation_deg
        As in :func:`view_geometry` (checked before the data is read).
    beta_tolerance : float
        :func:`view_geometry`'s ``tolerance``.
    executor, descan
        As in :func:`~.virtual.virtual_images`.
    **particle_options
        Passed to :func:`~napari_stereo_tem.particles.pipeline.reconstruct_particles_iter`
        (``pixel_size``, ``radius_range``, ``polarity``, ``tolerance``, ``max_shift_px``, ...).

    Yields
    ------
    Progress
        Stage ``"virtual images"`` (bands of scan rows), then the particle stages.

    Returns
    -------
    ParticlesFromScan
    """
    from ..particles.pipeline import reconstruct_particles_iter

    beta, azimuths, info = view_geometry(discs, direct, mrad_per_px=mrad_per_px,
                                         scan_rotation_deg=scan_rotation_deg, tolerance=beta_tolerance)
    discs = [as_disc(d) for d in discs]
    images = yield from iter_virtual_images(data, discs, executor=executor, descan=descan)
    result = yield from reconstruct_particles_iter(list(images), beta_deg=beta, azimuths_deg=azimuths,
                                                   **particle_options)
    result.params["inputs"] = [f"virtual disc {i}" for i in range(len(discs))]
    result.params["virtual_detectors"] = info
    return ParticlesFromScan(result=result, views=np.asarray(images), discs=discs, beta_deg=beta,
                             azimuths_deg=azimuths, geometry=info)


def particles_from_4dstem(data, discs, direct, *, mrad_per_px: float, on_progress=None, should_stop=None,
                          **options) -> ParticlesFromScan:
    """Drives :func:`iter_particles_from_4dstem` (same parameters)."""
    return drive(iter_particles_from_4dstem(data, discs, direct, mrad_per_px=mrad_per_px, **options),
                 on_progress, should_stop)
