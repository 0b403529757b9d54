"""Synthetic 4D-STEM scans of nanoparticles: every detector pixel sees the particles from its own angle.

The geometry is that of :mod:`.fourdstem` (the dislocation scans): the detector
pixel at ``k`` (from the direct-disc centre) sees a point at height ``Z`` shifted
by ``Z sin(|k| * mrad_per_px)`` towards ``k`` turned by the scan rotation
(:func:`.fourdstem.project_from_direction`). The particles are the hard spheres
of :mod:`.particles` (so g(r) of the truth is known), drawn as in its views
(Beer-Lambert on the projected thickness, a smooth background, a Gaussian probe);
every pixel of the bright-field disc records that image, pixels outside it a weak
diffuse halo, all with Poisson noise. Four discs in quadrants then give the four
views of the particle workflow from one scan
(:mod:`napari_stereo_tem.fourdstem.quadrants`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..checks import InputError
from ..progress import Progress, ProgressGenerator, drive
from .fourdstem import _NpyRowWriter, check_scan_geometry, iter_write_patterns, project_from_direction
from .particles import _thickness_map, hard_sphere_positions
from .seeds import check_seed

__all__ = ["FourDStemParticleSample", "simulate_4dstem_particles", "iter_simulate_4dstem_particles"]


@dataclass
class FourDStemParticleSample:
    """A synthetic 4D-STEM scan of particles and its truth.

    Attributes
    ----------
    data : ndarray or read-only numpy.memmap, shape ``(scan_y, scan_x, det_y, det_x)``
    centre : (cy, cx)
        Direct-disc centre, detector pixels.
    radius : float
        Direct-disc radius, detector pixels.
    mrad_per_px : float
    scan_rotation_deg : float
    positions : ndarray, shape (n, 3)
        ``(x, y, z)`` of the particle centres in scan pixels; ``z = 0`` is where all views coincide.
    radii : ndarray, shape (n,)
        Core radii, scan pixels.
    params : dict
        Every parameter and the seed.
    """

    data: object
    centre: tuple
    radius: float
    mrad_per_px: float
    scan_rotation_deg: float
    positions: np.ndarray
    radii: np.ndarray
    params: dict = field(default_factory=dict)


def simulate_4dstem_particles(*, seed: int, progress=None, **options) -> FourDStemParticleSample:
    """Run :func:`iter_simulate_4dstem_particles` to the end (``progress`` gets every report)."""
    return drive(iter_simulate_4dstem_particles(seed=seed, **options), progress)


def iter_simulate_4dstem_particles(*, seed: int, n_particles: int = 60, scan_shape=(96, 96),
                                   detector_shape=(32, 32), disc_radius_px: float = 12.0,
                                   convergence_mrad: float = 70.0, dose: float | None = 20.0,
                                   scan_rotation_deg: float = 0.0, radius_px=(3.0, 5.0),
                                   slab_thickness_px: float = 60.0, contrast: float = 0.08,
                                   psf_sigma: float = 0.6, background_amplitude: float = 0.03,
                                   diffuse_fraction: float = 0.02, centre=None, path=None,
                                   dtype=np.uint16) -> ProgressGenerator[FourDStemParticleSample]:
    """Simulate a 4D-STEM scan of hard-sphere particles in a slab, as a progress generator.

    Parameters
    ----------
    seed : int
    n_particles : int
    scan_shape, detector_shape : (rows, cols)
    disc_radius_px : float
        Direct-disc radius on the detector.
    convergence_mrad : float
        Convergence semi-angle; ``mrad_per_px = convergence_mrad / disc_radius_px``.
    dose : float or None
        Mean electrons per bright-field detector pixel per probe position (None: no noise, float32).
    scan_rotation_deg : float
    radius_px : (min, max)
        Core radii (scan pixels), uniform.
    slab_thickness_px : float
        Heights ``z`` of the centres span this range, centred on 0.
    contrast, psf_sigma, background_amplitude
        As in :func:`.particles.render_particle_views`.
    diffuse_fraction : float
        Level of the halo outside the disc, relative to the disc.
    centre : (cy, cx), optional
        Direct-disc centre; default the detector centre plus up to half a pixel.
    path : str or Path, optional
        A ``.npy`` file to write the scan into (then opened read-only as a memmap);
        ``params`` go beside it as ``PATH.json``, the truth as ``PATH.truth.csv``.

    Yields
    ------
    Progress
        ``"4dstem views"`` (per detector pixel), ``"4dstem write"`` (scan rows).

    Returns
    -------
    FourDStemParticleSample
    """
    seed = check_seed(seed)
    sy, sx, dy, dx, radius = check_scan_geometry(scan_shape, detector_shape, disc_radius_px, convergence_mrad)
    if int(n_particles) < 1:
        raise InputError(f"n_particles must be at least 1, got {n_particles}")
    if dose is not None and not float(dose) > 0:
        raise InputError(f"dose must be a positive number of electrons per pixel, got {dose}")
    if path is not None and Path(path).suffix != ".npy":
        raise InputError(f"path must end in .npy, got {Path(path).name}")
    r_lo, r_hi = (float(v) for v in radius_px)
    if not 0 < r_lo <= r_hi:
        raise InputError(f"radius_px must be (min, max) with 0 < min <= max, got {radius_px}")
    rng = np.random.default_rng([int(seed), 15])
    positions = hard_sphere_positions(int(n_particles), box=(sx, sy, float(slab_thickness_px)),
                                      contact=2 * r_hi + 2, seed=int(seed))
    radii = rng.uniform(r_lo, r_hi, len(positions))
    if centre is None:
        centre = ((dy - 1) / 2 + rng.uniform(-0.5, 0.5), (dx - 1) / 2 + rng.uniform(-0.5, 0.5))
    cy, cx = float(centre[0]), float(centre[1])
    mrad_per_px = float(convergence_mrad) / radius
    field_ = ndimage.gaussian_filter(rng.standard_normal((sy, sx)), sigma=max(sy, sx) / 12, mode="wrap")
    background = 1.0 + field_ * (float(background_amplitude) / max(field_.std(), 1e-12))

    ky, kx = np.mgrid[0:dy, 0:dx]
    r = np.hypot(ky - cy, kx - cx)
    weight = np.clip(radius + 0.5 - r, 0.0, 1.0)
    halo = diffuse_fraction * np.exp(-np.maximum(r - radius, 0.0) / max(radius / 2.0, 1.0))
    disc_y, disc_x = np.nonzero(weight > 0)

    # One image of the particles per bright-field detector pixel, from that pixel's direction.
    trans = np.empty((len(disc_y), sy, sx), np.float32)
    weights = np.full(len(positions), float(contrast))
    for n, (py, px) in enumerate(zip(disc_y, disc_x)):
        xy = project_from_direction(positions, (py - cy, px - cx), mrad_per_px,
                                    centre_xy=((sx - 1) / 2, (sy - 1) / 2), scan_rotation_deg=scan_rotation_deg)
        image = background * np.exp(-_thickness_map(xy, radii, (sy, sx), supersample=2, weights=weights))
        trans[n] = ndimage.gaussian_filter(image, psf_sigma, mode="nearest") if psf_sigma > 0 else image
        if n % 16 == 15 or n == len(disc_y) - 1:
            yield Progress(n + 1, len(disc_y), "4dstem views")

    out_dtype = np.dtype(np.float32 if dose is None else dtype)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        data = _NpyRowWriter(Path(path), (sy, sx, dy, dx), out_dtype)
    else:
        data = np.empty((sy, sx, dy, dx), out_dtype)
    yield from iter_write_patterns(data, trans, weight=weight, halo=halo, dose=dose, out_dtype=out_dtype,
                                   block=max(1, int(16_000_000 // (sx * dy * dx))), noise_key=(int(seed), 16))
    if isinstance(data, _NpyRowWriter):
        data = data.close()

    params = {"generator": "napari_stereo_tem.synth.simulate_4dstem_particles", "seed": int(seed),
              "n_particles": int(n_particles), "scan_shape": [sy, sx], "detector_shape": [dy, dx],
              "disc_radius_px": radius, "convergence_mrad": float(convergence_mrad), "mrad_per_px": mrad_per_px,
              "centre": [cy, cx], "dose": None if dose is None else float(dose),
              "scan_rotation_deg": float(scan_rotation_deg), "radius_px": [r_lo, r_hi],
              "slab_thickness_px": float(slab_thickness_px), "contrast": float(contrast),
              "psf_sigma": float(psf_sigma), "background_amplitude": float(background_amplitude),
              "diffuse_fraction": float(diffuse_fraction), "dtype": out_dtype.name,
              "geometry": "detector pixel k sees (x, y) + z sin(|k| mrad_per_px) along k turned by the scan "
                          "rotation; z = 0 where all views coincide"}
    if path is not None:
        from ..particles.points_csv import write_points_csv

        Path(str(path) + ".json").write_text(json.dumps(params, indent=1, sort_keys=True))
        write_points_csv(Path(str(path) + ".truth.csv"), positions, radii)
    return FourDStemParticleSample(data=data, centre=(cy, cx), radius=radius, mrad_per_px=mrad_per_px,
                                   scan_rotation_deg=float(scan_rotation_deg), positions=positions, radii=radii,
                                   params=params)
