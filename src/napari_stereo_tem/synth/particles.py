"""Synthetic nanoparticle sets: hard spheres in a slab, seen in four views.

Positions are hard spheres of one contact diameter (a core of radius ``r``
inside a ligand shell, so the cores never touch) placed by random sequential
addition in a slab ``[0, cols) x [0, rows) x [-t/2, t/2)``; the radial
distribution function of the truth is therefore that of a hard-sphere fluid
with a known first peak at the contact diameter. Each view is rendered with
the geometry of DESIGN section 5 (:func:`..particles.geometry.project_particles`):
dark projected spheres (Beer-Lambert contrast on the projected thickness,
super-sampled), a smooth background, a Gaussian probe blur and, when a dose is
given, Poisson shot noise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from ..checks import InputError
from ..particles.geometry import beta_record, check_view_geometry, project_particles
from ..particles.points_csv import read_points_csv, write_points_csv

__all__ = ["ParticleSample", "hard_sphere_positions", "render_particle_views", "simulate_particle_views",
           "load_particle_sample", "touching_fraction", "simulate_dense_particle_views"]

VIEW_LETTERS = "ABCDEFGH"


@dataclass
class ParticleSample:
    """Views of a synthetic particle set and its ground truth.

    Attributes
    ----------
    views : ndarray, shape (n_views, rows, cols), float32
    positions : ndarray, shape (n, 3)
        ``(x, y, z)`` in pixels; ``z = 0`` is where the views coincide.
    radii : ndarray, shape (n,)
        Core radii in pixels.
    beta_deg, azimuths_deg : view geometry (``beta_deg`` a float, or a list with one angle per view).
    params : dict
        Every parameter, including the seed (JSON-able).
    """

    views: np.ndarray
    positions: np.ndarray
    radii: np.ndarray
    beta_deg: float | list
    azimuths_deg: tuple
    params: dict = field(default_factory=dict)

    def save(self, directory) -> Path:
        """Write ``view_A.tif`` ..., ``truth.csv`` (``x,y,z,radius``) and ``params.json``."""
        import tifffile

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        for k, view in enumerate(self.views):
            tifffile.imwrite(out / f"view_{VIEW_LETTERS[k]}.tif", np.asarray(view, dtype=np.float32))
        write_points_csv(out / "truth.csv", self.positions, self.radii)
        (out / "params.json").write_text(json.dumps(self.params, indent=2))
        return out


def load_particle_sample(directory) -> ParticleSample:
    """Read a set written by :meth:`ParticleSample.save`."""
    import tifffile

    src = Path(directory)
    if not (src / "params.json").is_file():
        raise InputError(f"{src} holds no params.json; is it a folder written by `stereo-tem synth particles`?")
    params = json.loads((src / "params.json").read_text())
    n_views = len(params["azimuths_deg"])
    views = np.stack([tifffile.imread(src / f"view_{VIEW_LETTERS[k]}.tif") for k in range(n_views)])
    table = read_points_csv(src / "truth.csv")
    positions = np.column_stack([table["x"], table["y"], table["z"]])
    return ParticleSample(views=views.astype(np.float32), positions=positions, radii=table["radius"],
                          beta_deg=beta_record(params["beta_deg"]), azimuths_deg=tuple(params["azimuths_deg"]),
                          params=params)


def hard_sphere_positions(n: int, *, box, contact: float, seed: int, max_attempts: int = 200) -> np.ndarray:
    """Random sequential addition of ``n`` hard spheres of diameter ``contact``.

    Parameters
    ----------
    n : int
        Number of spheres.
    box : tuple of 3 float
        ``(width, height, thickness)``; centres fill ``[0, w) x [0, h) x [-t/2, t/2)``.
    contact : float
        Hard-sphere diameter (minimum centre distance).
    seed : int
    max_attempts : int
        Give up after ``max_attempts * n`` proposals (the box is too full).

    Returns
    -------
    ndarray, shape (n, 3)
        ``(x, y, z)`` in the order they were placed.
    """
    rng = np.random.default_rng(seed)
    lo = np.array([0.0, 0.0, -box[2] / 2.0])
    size = np.array(box, dtype=float)
    placed = np.zeros((0, 3))
    proposals = 0
    batch = max(64, n // 8)
    while len(placed) < n:
        if proposals > max_attempts * n:
            fraction = len(placed) * np.pi * contact ** 3 / 6 / np.prod(size)
            raise InputError(f"only {len(placed)} of {n} hard spheres fit (volume fraction {fraction:.2f}); "
                             "use fewer particles, a thicker slab or a smaller contact diameter")
        cand = lo + rng.random((batch, 3)) * size
        proposals += batch
        ok = np.ones(batch, dtype=bool)
        if len(placed):
            dist, _ = cKDTree(placed).query(cand, k=1, distance_upper_bound=contact)
            ok = ~np.isfinite(dist)
        # Within the batch, keep sequential semantics: a proposal is refused when it
        # touches an earlier proposal of the batch that was accepted.
        pairs = cKDTree(cand).query_pairs(contact, output_type="ndarray")
        if len(pairs):
            pairs = np.sort(pairs, axis=1)
            pairs = pairs[np.argsort(pairs[:, 1], kind="stable")]
            for i, j in pairs:
                if ok[i] and ok[j]:
                    ok[j] = False
        placed = np.vstack([placed, cand[ok][: n - len(placed)]])
    return placed


def _thickness_map(xy, radii, shape, *, supersample: int = 4, weights=None) -> np.ndarray:
    """Projected thickness ``2 sqrt(r^2 - rho^2)`` of spheres at ``xy``, averaged over each pixel.

    With ``weights`` (one per sphere) each sphere's thickness is multiplied by its weight.
    """
    rows, cols = shape
    out = np.zeros(rows * cols)
    if len(xy) == 0:
        return out.reshape(shape)
    half = int(np.ceil(radii.max())) + 1
    offs = np.arange(-half, half + 1)
    sub = (np.arange(supersample) + 0.5) / supersample - 0.5
    for start in range(0, len(xy), 2048):
        cxy, r = xy[start:start + 2048], radii[start:start + 2048]
        px = np.round(cxy[:, 0]).astype(int)[:, None] + offs  # (m, P)
        py = np.round(cxy[:, 1]).astype(int)[:, None] + offs
        dx = (px[:, :, None] + sub) - cxy[:, 0:1, None]  # (m, P, S)
        dy = (py[:, :, None] + sub) - cxy[:, 1:2, None]
        rho2 = dy[:, :, None, :, None] ** 2 + dx[:, None, :, None, :] ** 2  # (m, Py, Px, S, S)
        t = 2.0 * np.sqrt(np.clip(r[:, None, None, None, None] ** 2 - rho2, 0.0, None))
        t = t.mean(axis=(3, 4))
        if weights is not None:
            t = t * np.asarray(weights, float)[start:start + 2048, None, None]
        iy = np.broadcast_to(py[:, :, None], t.shape)
        ix = np.broadcast_to(px[:, None, :], t.shape)
        inside = (iy >= 0) & (iy < rows) & (ix >= 0) & (ix < cols) & (t > 0)
        out += np.bincount((iy * cols + ix)[inside], weights=t[inside], minlength=rows * cols)
    return out.reshape(shape)


def render_particle_views(positions, radii, *, beta_deg, azimuths_deg, shape, contrast=0.08,
                          psf_sigma: float = 0.6, background_amplitude: float = 0.03, dose: float | None = None,
                          seed: int = 0) -> np.ndarray:
    """Render the views of particles at ``positions`` (``(n, 3)``, pixels) with core ``radii``.

    Intensity is ``B(y, x) exp(-contrast * thickness)`` (bright field: particles dark, background
    near 1), blurred by a Gaussian probe of ``psf_sigma`` pixels; with ``dose`` (electrons per pixel)
    each pixel is ``Poisson(dose * I) / dose``. ``contrast`` is one number or one per particle.
    Returns ``(n_views, rows, cols)`` float32.
    """
    rng = np.random.default_rng(seed)
    rows, cols = shape
    # One smooth background for the specimen, the same in every view (the views are simultaneous).
    field_ = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=max(rows, cols) / 12, mode="wrap")
    field_ *= background_amplitude / max(field_.std(), 1e-12)
    background = 1.0 + field_
    xy = project_particles(positions, beta_deg=beta_deg, azimuths_deg=azimuths_deg)
    views = np.empty((len(xy), rows, cols), dtype=np.float32)
    for k in range(len(xy)):
        image = background * np.exp(-_thickness_map(xy[k], np.asarray(radii, float), shape,
                                                    weights=np.broadcast_to(contrast, (xy.shape[1],))))
        if psf_sigma > 0:
            image = ndimage.gaussian_filter(image, psf_sigma, mode="nearest")
        if dose is not None:
            image = rng.poisson(np.clip(image, 0, None) * dose) / float(dose)
        views[k] = image
    return views


def simulate_particle_views(n_particles: int, *, seed: int, beta_deg=2.0,
                            azimuths_deg=(0, 90, 180, 270), shape=(512, 512), radius_px=(3.0, 6.0),
                            slab_thickness_px: float = 60.0, contact_px: float | None = None,
                            contrast: float = 0.08, psf_sigma: float = 0.6, background_amplitude: float = 0.03,
                            dose: float | None = None, render: bool = True,
                            contrast_spread: float = 0.0) -> ParticleSample:
    """Simulate a four-view nanoparticle set with its ground truth.

    Parameters
    ----------
    n_particles : int
    seed : int
        Determines everything (positions, radii, background, noise).
    beta_deg : float or sequence of float
        View angle; a particle at height ``z`` shifts by ``z sin(beta)`` along each view's azimuth
        (one for all views, or one per view).
    azimuths_deg : sequence of float
        ``psi_k`` per view (from ``+x`` towards ``+y``).
    shape : (rows, cols)
    radius_px : (min, max)
        Core radii are uniform in this range.
    slab_thickness_px : float
        Range of the centres' heights ``z`` (centred on 0).
    contact_px : float, optional
        Hard-sphere diameter; default ``2 * max(radius_px) + 2``. Must be at least ``2 * max(radius_px)``.
    contrast : float
        Absorption per pixel of projected thickness.
    psf_sigma : float
        Gaussian probe blur in pixels.
    background_amplitude : float
        Standard deviation of the smooth background around 1.
    dose : float, optional
        Electrons per pixel of the background; Poisson shot noise when given.
    render : bool
        ``False`` skips the images (``views`` is then empty): positions only, for large sets.
    contrast_spread : float
        Relative standard deviation of the contrast from particle to particle (0: one material).

    Returns
    -------
    ParticleSample
    """
    beta, psi = check_view_geometry(beta_deg, azimuths_deg)
    if int(n_particles) < 1:
        raise InputError(f"n_particles must be at least 1, got {n_particles}")
    rows, cols = (int(v) for v in shape)
    r_lo, r_hi = (float(v) for v in radius_px)
    if not 0 < r_lo <= r_hi:
        raise InputError(f"radius_px must be (min, max) with 0 < min <= max, got {radius_px}")
    contact = 2 * r_hi + 2 if contact_px is None else float(contact_px)
    if contact < 2 * r_hi:
        raise InputError(f"contact_px {contact} is below twice the largest radius {r_hi}; cores would overlap")
    if dose is not None and not float(dose) > 0:
        raise InputError(f"dose must be a positive number of electrons per pixel, got {dose}")
    positions = hard_sphere_positions(int(n_particles), box=(cols, rows, float(slab_thickness_px)),
                                      contact=contact, seed=seed)
    rng = np.random.default_rng([seed, 1])
    radii = rng.uniform(r_lo, r_hi, len(positions))
    per_particle = float(contrast) * np.clip(1.0 + float(contrast_spread) * rng.standard_normal(len(positions)),
                                             0.3, None)
    params = {
        "kind": "particles", "seed": int(seed), "n_particles": int(n_particles), "beta_deg": beta_record(beta),
        "azimuths_deg": [float(a) for a in psi], "shape": [rows, cols], "radius_px": [r_lo, r_hi],
        "slab_thickness_px": float(slab_thickness_px), "contact_px": contact, "contrast": float(contrast),
        "psf_sigma": float(psf_sigma), "background_amplitude": float(background_amplitude),
        "dose": None if dose is None else float(dose), "units": "pixels", "contrast_spread": float(contrast_spread),
        "touching_fraction": touching_fraction(positions, radii, beta_deg=beta, azimuths_deg=psi),
        "geometry": "view k shows (x, y) + z sin(beta) (cos psi_k, sin psi_k)",
    }
    if render:
        views = render_particle_views(positions, radii, beta_deg=beta, azimuths_deg=psi, shape=(rows, cols),
                                      contrast=per_particle, psf_sigma=psf_sigma,
                                      background_amplitude=background_amplitude, dose=dose, seed=seed + 7)
    else:
        views = np.zeros((len(psi), 0, 0), dtype=np.float32)
    return ParticleSample(views=views, positions=positions, radii=radii, beta_deg=beta_record(beta),
                          azimuths_deg=tuple(float(a) for a in psi), params=params)


def touching_fraction(positions, radii, *, beta_deg, azimuths_deg=(0, 90, 180, 270), gap: float = 0.0,
                      shape=None, margin: float = 0.0) -> float:
    """Share of particles whose projection touches or overlaps another's in at least one view.

    Two discs touch when their centres are closer than ``r_i + r_j + gap`` pixels. With
    ``shape``, only particles whose every view lies ``margin`` pixels inside the image count.
    """
    pts = np.asarray(positions, float).reshape(-1, 3)
    radii = np.asarray(radii, float)
    if len(pts) < 2:
        return 0.0
    xy = project_particles(pts, beta_deg=beta_deg, azimuths_deg=azimuths_deg)
    touching = np.zeros(len(pts), dtype=bool)
    for view in xy:
        pairs = cKDTree(view).query_pairs(2 * float(radii.max()) + gap, output_type="ndarray")
        if len(pairs):
            close = np.linalg.norm(view[pairs[:, 0]] - view[pairs[:, 1]], axis=1) < radii[pairs].sum(axis=1) + gap
            touching[pairs[close].ravel()] = True
    counted = np.ones(len(pts), dtype=bool)
    if shape is not None:
        rows, cols = shape
        counted = ((xy[..., 0] >= margin) & (xy[..., 0] <= cols - 1 - margin) & (xy[..., 1] >= margin)
                   & (xy[..., 1] <= rows - 1 - margin)).all(axis=0)
    return float(touching[counted].mean()) if counted.any() else 0.0


def simulate_dense_particle_views(n_particles: int, *, seed: int, touching=(0.10, 0.20), beta_deg: float = 3.0,
                                  radius_px=(3.0, 3.0), slab_thickness_px: float = 120.0, gap_px: float = 0.5,
                                  **options) -> ParticleSample:
    """A set where a chosen share of the particles touch or overlap another in projection.

    The image side is chosen (bisection on positions alone) so that the share of particles
    touching another in at least one view falls in ``touching`` (aimed at its middle); cores
    may come within ``gap_px`` of each other in 3D. Other ``options`` go to
    :func:`simulate_particle_views` (dose, contrast, contrast_spread, background_amplitude, ...).
    The chosen side and the measured share are in ``params``.
    """
    lo_t, hi_t = (float(v) for v in touching)
    if not 0 <= lo_t <= hi_t < 1:
        raise InputError(f"touching must be (min, max) fractions with 0 <= min <= max < 1, got {touching}")
    r_hi = float(radius_px[1])
    contact = 2 * r_hi + float(gap_px)
    aim = 0.5 * (lo_t + hi_t)
    # The share grows with the projected density n / side^2: bracket the side and bisect.
    small = max(32.0, np.sqrt(n_particles * np.pi * contact ** 2 / 4 / 0.6))
    large = small * 8
    side = small
    for _ in range(12):
        side = 0.5 * (small + large)
        sample = simulate_particle_views(n_particles, seed=seed, beta_deg=beta_deg, shape=(int(side), int(side)),
                                         radius_px=radius_px, slab_thickness_px=slab_thickness_px,
                                         contact_px=contact, render=False)
        share = sample.params["touching_fraction"]
        if lo_t <= share <= hi_t and abs(share - aim) < 0.02:
            break
        if share > aim:
            small = side
        else:
            large = side
    sample = simulate_particle_views(n_particles, seed=seed, beta_deg=beta_deg, shape=(int(side), int(side)),
                                     radius_px=radius_px, slab_thickness_px=slab_thickness_px, contact_px=contact,
                                     **options)
    sample.params["dense"] = {"touching_target": [lo_t, hi_t], "side_px": int(side)}
    return sample
