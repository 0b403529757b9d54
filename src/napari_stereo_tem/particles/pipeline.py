"""Four views in, 3D particles and g(r) out: the whole nanoparticle workflow.

:func:`reconstruct_particles_iter` is the progress generator that the command
line, napari and tests drive (:mod:`..progress`); :func:`reconstruct_particles`
runs it to the end. :func:`write_particle_result` writes ``points.csv``
(``x,y,z,radius``, pixels), ``rdf.csv`` (``r,g``), ``particles.json`` (units,
counts, parameters) and ``rdf.png``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..checks import InputError, check_image
from ..images import binned
from ..progress import Progress, ProgressGenerator, drive
from .detection import DEFAULT_RADIUS_RANGE, detect_particles, dominant_radius, resolve_polarity
from .geometry import beta_record, check_view_geometry
from .matching import ParticleReconstruction, match_particles
from .points_csv import write_points_csv
from .rdf import radial_distribution
from .refine import refine_in_views_iter

__all__ = ["ParticleResult", "reconstruct_particles_iter", "reconstruct_particles", "write_particle_result",
           "load_views", "estimate_dose"]


@dataclass
class ParticleResult:
    """Everything the nanoparticle workflow produced.

    Attributes
    ----------
    reconstruction : ParticleReconstruction
        Points in pixels, radii, residuals, views per particle, counts.
    detections : list of ndarray, each shape (n_k, 3)
        ``[x, y, radius]`` per view, pixels.
    rdf_r, rdf_g : ndarray, shape (n_bins,)
        g(r); ``rdf_r`` in nm when ``pixel_size`` is known, else pixels.
    pixel_size : float or None
        nm per pixel.
    params : dict
        Provenance: input names, geometry, detection and matching parameters.
    """

    reconstruction: ParticleReconstruction
    detections: list
    rdf_r: np.ndarray
    rdf_g: np.ndarray
    pixel_size: float | None = None
    params: dict = field(default_factory=dict)

    @property
    def units(self) -> str:
        return "pixel" if self.pixel_size is None else "nm"


def load_views(views_or_paths) -> tuple[list[np.ndarray], list[str], float | None]:
    """Views from arrays, HyperSpy signals or image paths; returns ``(views, names, pixel_size_nm)``.

    A single array of shape ``(n_views, rows, cols)`` is split into its views.
    """
    from ..images import as_image

    items = views_or_paths
    if isinstance(items, np.ndarray) and items.ndim == 3:
        items = list(items)
    if isinstance(items, (str, os.PathLike)) or not hasattr(items, "__len__"):
        raise InputError("give the views as a list (A, B, C, D) of paths or 2D arrays, or one (n, rows, cols) array")
    views, names, sizes = [], [], []
    for k, item in enumerate(items):
        name = Path(item).name if isinstance(item, (str, os.PathLike)) else f"view_{'ABCDEFGH'[k % 8]}"
        image = as_image(item, name=name)
        views.append(check_image(image.data, name=name).astype(np.float32))
        names.append(name)
        sizes.append(image.pixel_size_nm)
    if len(views) < 3:
        raise InputError(f"{len(views)} view(s) given; the particle workflow needs the four detector views A B C D "
                         "(at least 3)")
    shapes = {v.shape for v in views}
    if len(shapes) > 1:
        listing = ", ".join(f"{n} {v.shape}" for n, v in zip(names, views))
        raise InputError(f"the views differ in shape ({listing}); they must come from one scan of one size")
    known = [s for s in sizes if s]
    return views, names, (known[0] if known else None)


#: Particle radius (px) the views of large particles are shrunk to (:func:`reconstruct_particles_iter`).
WORKING_RADIUS = 5.0


def _enlarged(result: "ParticleResult", factor: int, names, pixel_size, radius: float, *,
              polarity_asked: str) -> "ParticleResult":
    """A result found in views shrunk ``factor`` times, in the full views' pixels (x, y of pixel centres)."""
    rec = result.reconstruction
    scale = np.array([factor, factor, factor], dtype=float)
    offset = np.array([(factor - 1) / 2.0, (factor - 1) / 2.0, 0.0])
    rec.points = rec.points * scale + offset
    rec.radii = rec.radii * factor
    rec.residuals = rec.residuals * factor
    if rec.std is not None:
        rec.std = rec.std * factor
    detections = [np.column_stack([d[:, :2] * factor + (factor - 1) / 2.0, d[:, 2:] * factor]) if len(d) else d
                  for d in result.detections]
    rdf_r = result.rdf_r if pixel_size is not None else result.rdf_r * factor
    params = dict(result.params)
    params["inputs"] = names
    params["pixel_size_nm"] = pixel_size
    params["working_scale"] = {"factor": int(factor), "dominant_radius_px": float(radius),
                               "means": f"particles found, matched and fitted in views shrunk {factor} times (radius "
                                        f"about {WORKING_RADIUS:g} px there); every figure in the full views' pixels"}
    detection = dict(params.get("detection", {}))
    detection["radius_range"] = [float(v) * factor for v in detection.get("radius_range", [])]
    detection["radius_range_asked"] = None
    detection["polarity_asked"] = polarity_asked
    params["detection"] = detection
    refinement = rec.params.get("refinement", {})
    if isinstance(refinement.get("localisation_floor_px"), dict):
        refinement["localisation_floor_px"] = {k: None if v is None else float(v) * factor
                                               for k, v in refinement["localisation_floor_px"].items()}
    return ParticleResult(reconstruction=rec, detections=detections, rdf_r=rdf_r, rdf_g=result.rdf_g,
                          pixel_size=pixel_size, params=params)


def reconstruct_particles_iter(views_or_paths, *, beta_deg, azimuths_deg=(0, 90, 180, 270),
                               pixel_size: float | None = None, method: str = "auto", sigma: float | None = None,
                               threshold: float | None = None, radius_range=None, polarity: str = "auto",
                               tolerance: float = 1.5, max_shift_px: float = 8.0, depth_range=None,
                               refine: bool = True, r_max: float | None = None, n_bins: int | None = None
                               ) -> ProgressGenerator[ParticleResult]:
    """Detect, match and triangulate particles in four views; compute g(r). A progress generator.

    Parameters
    ----------
    views_or_paths : sequence
        The views ``A, B, C, D`` as 2D arrays, HyperSpy signals or image paths (TIFF, PNG,
        .npy, microscope formats), or one ``(n_views, rows, cols)`` array.
    beta_deg : float or sequence of float
        View angle: a particle at height ``Z`` shifts by ``Z sin(beta)`` along each view's azimuth.
        One number for all views (a segmented detector), or one per view in the order of the
        views (virtual discs at different distances from the direct beam).
    azimuths_deg : sequence of float
        ``psi_k`` per view, from ``+x`` towards ``+y``.
    pixel_size : float, optional
        nm per pixel (else taken from the files when they record it); g(r) is then in nm.
    method, sigma, threshold, radius_range, polarity
        Detection options (:func:`.detection.detect_particles`); ``threshold`` overrides the
        automatic threshold. ``polarity="auto"`` (default) decides once for all views whether the
        particles are darker (bright field) or brighter (dark field, HAADF) than the background.
        ``radius_range=None`` (default) looks for radii of 2-10 px (:data:`.detection.DEFAULT_RADIUS_RANGE`)
        unless the views' particles are clearly larger (:func:`.detection.dominant_radius` over 12.5 px): then
        they are found, matched and fitted in views shrunk until they are about ``WORKING_RADIUS`` px.
    tolerance, max_shift_px, depth_range
        Matching options (:func:`.matching.match_particles`).
    refine : bool
        Fit the matched particles to the views themselves (:func:`.refine.refine_in_views`):
        particles that touch in projection are fitted together, and points that are two
        particles merged in every view are split in two. Default on.
    r_max, n_bins : optional
        g(r) range (pixels) and bins; default ``r_max = 8 * median radius``, one-pixel bins.

    Yields
    ------
    Progress

    Returns
    -------
    ParticleResult
    """
    views, names, file_pixel_size = load_views(views_or_paths)
    beta, psi = check_view_geometry(beta_deg, azimuths_deg, n_views=len(views))
    if pixel_size is not None and not (np.isfinite(float(pixel_size)) and float(pixel_size) > 0):
        raise InputError(f"pixel size must be a positive number of nm, got {pixel_size}")
    pixel_size = float(pixel_size) if pixel_size is not None else file_pixel_size
    total = len(views) + 2 + bool(refine)
    asked = polarity
    polarity = resolve_polarity(list(views), polarity)  # one decision for every view
    radius_asked = radius_range
    if radius_range is None:
        radius = float(np.median([dominant_radius(v, polarity) for v in views]))
        if radius > 1.25 * DEFAULT_RADIUS_RANGE[1]:
            # particles much larger than the default radii (a higher magnification, a camera image): found,
            # matched and fitted in views shrunk until they are of the usual size, then scaled back
            factor = int(np.floor(radius / WORKING_RADIUS))
            small = [binned(np.asarray(v, dtype=np.float32), factor) for v in views]
            result = yield from reconstruct_particles_iter(
                small, beta_deg=beta_deg, azimuths_deg=azimuths_deg,
                pixel_size=None if pixel_size is None else pixel_size * factor, method=method, sigma=sigma,
                threshold=threshold, radius_range=DEFAULT_RADIUS_RANGE, polarity=polarity, tolerance=tolerance,
                max_shift_px=max_shift_px, depth_range=None if depth_range is None else
                tuple(float(v) / factor for v in depth_range), refine=refine,
                r_max=None if r_max is None else r_max / factor, n_bins=n_bins)
            return _enlarged(result, factor, names, pixel_size, radius, polarity_asked=asked)
    radius_range = DEFAULT_RADIUS_RANGE if radius_range is None else tuple(float(v) for v in radius_range)
    detections = yield from _detect_views(views, names, total, method=method, sigma=sigma, threshold=threshold,
                                          radius_range=radius_range, polarity=polarity)
    yield Progress(len(views), total, "match", {"detected": sum(len(d) for d in detections)})
    recon = match_particles(detections, beta_deg=beta, azimuths_deg=psi, tolerance=tolerance,
                            depth_range=depth_range, max_shift_px=max_shift_px)
    if refine:
        yield Progress(len(views) + 1, total, "refine", {"matched": len(recon.points)})
        recon = yield from refine_in_views_iter(views, recon, polarity=polarity, radius_range=radius_range,
                                             threshold=threshold if method in ("auto", "log") else None)
    yield Progress(total - 1, total, "g(r)", {"matched": len(recon.points)})
    rdf_r, rdf_g = np.zeros(0), np.zeros(0)
    if len(recon.points) >= 2:
        med_r = float(np.nanmedian(recon.radii)) if np.any(np.isfinite(recon.radii)) else 5.0
        r_max_px = float(r_max) if r_max is not None else 8.0 * med_r
        bins = int(n_bins) if n_bins is not None else max(10, int(np.ceil(r_max_px)))
        rows, cols = views[0].shape
        z = recon.points[:, 2]
        box = np.array([[0, cols], [0, rows], [z.min(), z.max() + 1e-9]], dtype=float)
        rdf_r, rdf_g = radial_distribution(recon.points, r_max=r_max_px, n_bins=bins, box=box)
        if pixel_size is not None:
            rdf_r = rdf_r * pixel_size
    params = {
        "inputs": names, "beta_deg": beta_record(beta), "azimuths_deg": [float(p) for p in psi],
        "pixel_size_nm": pixel_size,
        "dose_estimate": estimate_dose(views, polarity=polarity),
        "detection": {"method": method, "sigma": sigma, "threshold": threshold,
                      "radius_range": [float(v) for v in radius_range],
                      "radius_range_asked": None if radius_asked is None else [float(v) for v in radius_asked],
                      "polarity": polarity,
                      "polarity_asked": asked},
        "matching": recon.params,
    }
    yield Progress(total, total, "done", recon.counts)
    return ParticleResult(reconstruction=recon, detections=detections, rdf_r=rdf_r, rdf_g=rdf_g,
                          pixel_size=pixel_size, params=params)


def _detect_views(views, names, total, **options):
    """:func:`.detection.detect_particles` of every view, two views at a time (a progress generator).

    The filters and the centroid arithmetic release the GIL, so two threads use two cores. A
    cancel reaches the threads (they check a shared flag) and the generator's caller within
    one poll (50 ms) plus one step of a detection.
    """
    import threading
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    from ..progress import cancel_check, check_cancelled

    stop = threading.Event()

    def one(view):
        with cancel_check(stop.is_set):
            return detect_particles(view, **options)

    workers = max(1, min(2, len(views), len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                         else (os.cpu_count() or 1)))
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = [pool.submit(one, view) for view in views]
        pending, done = set(futures), 0
        yield Progress(0, total, "detect", {"view": names[0]})
        while pending:
            finished, pending = wait(pending, timeout=0.05, return_when=FIRST_COMPLETED)
            check_cancelled()
            if finished:
                done += len(finished)
                yield Progress(done, total, "detect", {"views done": done})
        return [future.result() for future in futures]
    finally:  # also on cancel or close: the threads stop at their next check
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)


def estimate_dose(views, *, polarity: str = "dark") -> dict | None:
    """Counts per background pixel if the noise is shot noise: ``(mean / std)^2`` of the background.

    Returns ``{"counts_per_pixel": ..., "assumes": ...}``, or None for images that are not
    positive (bright-field intensities).
    """
    from ..progress import map_threads
    from .detection import _median, estimate_noise

    def one(view):
        img = np.asarray(view)
        level = _median(img)
        if level <= 0 or resolve_polarity(img, polarity) != "dark":
            return None
        return (level / max(estimate_noise(img), 1e-12)) ** 2

    values = map_threads(one, views)
    if any(v is None for v in values):
        return None
    return {"counts_per_pixel": float(np.median(values)),
            "assumes": "the noise is shot noise of the background intensity (no gain, no read noise)"}


def reconstruct_particles(views_or_paths, *, beta_deg, azimuths_deg=(0, 90, 180, 270),
                          pixel_size: float | None = None, **options) -> ParticleResult:
    """Run :func:`reconstruct_particles_iter` to the end and return its :class:`ParticleResult`."""
    return drive(reconstruct_particles_iter(views_or_paths, beta_deg=beta_deg, azimuths_deg=azimuths_deg,
                                            pixel_size=pixel_size, **options))


#: The files :func:`write_particle_result` writes.
RESULT_FILES = ("points.csv", "points_three_view.csv", "rdf.csv", "particles.json", "rdf.png")


def write_particle_result(result: ParticleResult, directory, *, plot: bool = True, overwrite: bool = False) -> dict:
    """Write the result into ``directory`` as a whole; returns ``{name: path}``.

    The files go to a temporary sibling folder renamed to ``directory`` once all
    are written (:func:`~napari_stereo_tem.atomic.result_folder`); a non-empty
    ``directory`` is refused unless ``overwrite``.

    - ``points.csv``: ``x,y,z,radius,std_x,std_y,std_z`` in pixels, particles every view holds
      (``std_*``: standard deviations from the fit to the views, NaN without it);
    - ``points_three_view.csv``: the same for particles only three views hold;
    - ``rdf.csv``: ``r,g`` (``r`` in the unit ``particles.json`` names: nm with a pixel size);
    - ``particles.json``: units, counts, residuals summary, the expected localisation floor for the
      noise (dose) and beta of these views, parameters;
    - ``rdf.png``: the plot of g(r).
    """
    from ..atomic import result_folder

    final = Path(directory)
    with result_folder(final, overwrite=overwrite, produces=RESULT_FILES, option="directory") as out:
        names = _write_particle_files(result, out, plot=plot)
    return {key: final / name for key, name in names.items()}


def _write_particle_files(result: ParticleResult, out: Path, *, plot: bool) -> dict:
    rec = result.reconstruction
    std = rec.std if rec.std is not None else np.full((len(rec.points), 3), np.nan)
    paths = {"points": out / "points.csv", "points_three_view": out / "points_three_view.csv",
             "rdf": out / "rdf.csv", "json": out / "particles.json"}
    every = rec.all_views
    write_points_csv(paths["points"], rec.points[every], rec.radii[every], std=std[every])
    write_points_csv(paths["points_three_view"], rec.points[~every], rec.radii[~every], std=std[~every])
    rdf = np.column_stack([result.rdf_r, result.rdf_g])
    paths["rdf"].write_text("\n".join(["r,g"] + [f"{r:.8g},{g:.8g}" for r, g in rdf]) + "\n")
    refinement = rec.params.get("refinement", {})
    finite = np.isfinite(std).all(axis=1)
    summary = {
        "units": {"points": "pixel", "radius": "pixel", "std": "pixel", "rdf_r": result.units},
        "pixel_size_nm": result.pixel_size,
        "counts": rec.counts,
        "residual_px": {"median": float(np.nanmedian(rec.residuals)) if np.any(np.isfinite(rec.residuals)) else None,
                        "max": float(np.nanmax(rec.residuals)) if np.any(np.isfinite(rec.residuals)) else None},
        "precision": {
            "localisation_floor_px": refinement.get("localisation_floor_px"),
            "floor_means": "standard deviation of x, y, z of an isolated particle of the median radius and "
                           "contrast at the noise of these views (the fit's Cramer-Rao bound); particles that "
                           "touch others do worse; see std_x, std_y, std_z per particle in points.csv",
            "median_std_px": ({"x": float(np.median(std[finite, 0])), "y": float(np.median(std[finite, 1])),
                               "z": float(np.median(std[finite, 2]))} if finite.any() else None),
            "beta_deg": result.params.get("beta_deg"),
            "dose_estimate": result.params.get("dose_estimate"),
        },
        "frame": "x = column, y = row, z along the beam; z = 0 where the views coincide",
        "params": result.params,
    }
    paths["json"].write_text(json.dumps(summary, indent=2))
    if plot:
        paths["plot"] = out / "rdf.png"
        plot_rdf(result, paths["plot"])
    return {key: path.name for key, path in paths.items()}


def plot_rdf(result: ParticleResult, path) -> None:
    """Save a PNG of g(r) (a matplotlib Figure drawn by its own canvas: no backend is chosen for the process)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.5), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(result.rdf_r, result.rdf_g, drawstyle="steps-mid", color="tab:red")
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel(f"r ({result.units})")
    ax.set_ylabel("g(r)")
    ax.set_title(f"{result.reconstruction.counts['matched_all_views']} particles in all views")
    fig.tight_layout()
    fig.savefig(path)
