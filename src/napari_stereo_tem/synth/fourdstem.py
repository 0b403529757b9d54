"""Synthetic 4D-STEM datasets whose detector pixels see the specimen from their own angle.

A convergent probe holds a cone of beam directions. A detector pixel at offset
``k`` (pixels, from the direct-disc centre) receives the electrons that crossed
the specimen along the direction tilted by ``|k| * mrad_per_px`` mrad about the
in-plane axis perpendicular to ``k`` (``k`` rotated by ``scan_rotation_deg``
into the scan frame); a point at depth ``Z`` is therefore seen shifted by
``Z sin(theta)`` towards ``+k``. Each pixel of the bright-field disc records the
transmission of the 3D scene seen from its direction (dislocations darker),
pixels outside the disc a weak diffuse background, all with Poisson noise.

Two virtual detectors (discs) centred at ``k1`` and ``k2`` make a stereo pair of
stereo angle ``|k1 - k2| * mrad_per_px`` (:func:`stereo_angle_deg`) with
epipolar direction ``k2 - k1`` (rotated by the scan rotation).

The dataset is written block of scan rows by block into a ``.npy`` file (then
opened as a read-only memmap) or a ``.zarr`` folder when ``path`` is given, so
the whole array is never in memory; what is held is one transmission image per
disc pixel (``n_disc * scan`` float32) and one block of scan rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..checks import InputError
from ..progress import Progress, ProgressGenerator, drive
from ..stereo.projection import project_points
from .background import perlin_noise
from .raster import densify_polylines, nearest_sample_map
from .scene import DislocationScene, make_scene
from .seeds import check_seed

__all__ = ["FourDStemSample", "simulate_4dstem", "iter_simulate_4dstem", "stereo_angle_deg",
           "project_from_direction"]


@dataclass
class FourDStemSample:
    """A synthetic 4D-STEM dataset and its truth.

    Attributes
    ----------
    data : ndarray, numpy.memmap (read-only), zarr.Array or dask array (.zspy)
        Shape ``(scan_y, scan_x, det_y, det_x)``.
    centre : (cy, cx)
        Direct-disc centre on the detector, pixels.
    radius : float
        Disc radius, pixels.
    mrad_per_px : float
        ``convergence_mrad / radius``.
    scan_rotation_deg : float
    scene : DislocationScene
    lines_3d : list of ndarray (n, 3)
        The 3D dislocations ``(x, y, z)`` in scan pixels.
    params : dict
        Every parameter and the seed (JSON-serialisable).
    """

    data: object
    centre: tuple
    radius: float
    mrad_per_px: float
    scan_rotation_deg: float
    scene: DislocationScene
    lines_3d: list = field(default_factory=list)
    params: dict = field(default_factory=dict)


def stereo_angle_deg(k1, k2, mrad_per_px: float) -> float:
    """Stereo angle (degrees) of two detector positions ``k1``, ``k2`` (``(ky, kx)``, pixels)."""
    sep = float(np.hypot(*(np.asarray(k2, float) - np.asarray(k1, float))))
    return float(np.rad2deg(sep * float(mrad_per_px) * 1e-3))


def project_from_direction(points_xyz, k_offset, mrad_per_px: float, *, centre_xy, scan_rotation_deg=0.0):
    """Project 3D points as seen by the detector pixel at offset ``k_offset = (ky, kx)``.

    The tilt about the in-plane axis perpendicular to ``k`` is done with
    :func:`~napari_stereo_tem.stereo.projection.project_points` in a frame rotated so
    that ``k`` points along ``+x``. Returns ``(n, 2)`` scan coordinates ``(x, y)``.
    """
    pts = np.asarray(points_xyz, dtype=np.float64)
    ky, kx = float(k_offset[0]), float(k_offset[1])
    rot = np.deg2rad(scan_rotation_deg)
    kxs, kys = kx * np.cos(rot) - ky * np.sin(rot), kx * np.sin(rot) + ky * np.cos(rot)
    theta = np.rad2deg(np.hypot(kx, ky) * mrad_per_px * 1e-3)
    psi = np.arctan2(kys, kxs)
    cx, cy = centre_xy
    cos, sin = np.cos(psi), np.sin(psi)
    dx, dy = pts[:, 0] - cx, pts[:, 1] - cy
    rotated = np.column_stack([cx + dx * cos + dy * sin, cy - dx * sin + dy * cos, pts[:, 2]])
    xy = project_points(rotated, theta, axis_col=cx)
    ux, uy = xy[:, 0] - cx, xy[:, 1] - cy
    return np.column_stack([cx + ux * cos - uy * sin, cy + ux * sin + uy * cos])


class _NpyRowWriter:
    """Writes C-ordered blocks of leading-axis rows straight into a ``.npy`` file (no memory map held)."""

    def __init__(self, path: Path, shape, dtype):
        header = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)  # header + sparse file
        self.offset = header.offset
        del header
        self.path, self.row_bytes = path, int(np.prod(shape[1:])) * np.dtype(dtype).itemsize
        self.handle = open(path, "r+b")

    def __setitem__(self, rows: slice, block: np.ndarray) -> None:
        self.handle.seek(self.offset + rows.start * self.row_bytes)
        self.handle.write(np.ascontiguousarray(block).tobytes())

    def close(self):
        self.handle.close()
        return np.load(self.path, mmap_mode="r")


def _open_output(path, shape, dtype, chunks):
    if path is None:
        return np.empty(shape, dtype)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        return _NpyRowWriter(path, shape, dtype)
    if path.suffix in (".zarr", ".zspy"):
        import zarr

        target = path if path.suffix == ".zarr" else path.with_name(f".{path.name}.partial.zarr")
        return zarr.open(str(target), mode="w", shape=shape, chunks=chunks, dtype=dtype)
    raise InputError(f"path must end in .npy, .zarr or .zspy, got {path.name}")


def _zarr_to_zspy(array, path: Path):
    """Save a zarr array as a HyperSpy ``.zspy`` (lazily, chunk by chunk) and drop the zarr."""
    import shutil

    import dask.array as da
    import hyperspy.api as hs

    signal = hs.signals.Signal2D(da.from_zarr(array)).as_lazy()
    for axis, name in zip(signal.axes_manager._axes, ("y", "x", "ky", "kx")):
        axis.name = name
    signal.metadata.General.title = "synthetic 4D-STEM (napari-stereo-tem)"
    signal.save(str(path), overwrite=True, show_progressbar=False)
    shutil.rmtree(array.store.path if hasattr(array.store, "path") else str(array.store.dir_path()))
    return hs.load(str(path), lazy=True).data


def iter_write_patterns(data, trans, *, weight, halo, dose, out_dtype, block: int, noise_key):
    """Write the diffraction patterns of a simulated scan into ``data``, a block of scan rows at a time.

    A detector pixel inside the bright-field disc (``weight > 0``, a soft edge) records the
    transmission image of its own direction (``trans``, one ``(sy, sx)`` image per disc pixel, in
    the order of ``np.nonzero(weight > 0)``) blended with the diffuse ``halo``; outside, the halo
    alone. With a ``dose`` (electrons per pixel) the counts are Poisson, seeded by ``noise_key`` and
    the block. Yields ``Progress(rows done, rows, "4dstem write")``.
    """
    sy, sx = trans.shape[1:]
    dy, dx = weight.shape
    disc_y, disc_x = np.nonzero(weight > 0)
    scale = 1.0 if dose is None else float(dose)
    limit = np.iinfo(out_dtype).max if np.issubdtype(out_dtype, np.integer) else None
    halo_scaled = (halo * scale).astype(np.float32)
    w_disc = weight[disc_y, disc_x].astype(np.float32)
    for b, r0 in enumerate(range(0, sy, block)):
        r1 = min(sy, r0 + block)
        expected = np.broadcast_to(halo_scaled, (r1 - r0, sx, dy, dx)).copy()
        disc_part = trans[:, r0:r1, :].transpose(1, 2, 0) * (scale * w_disc)
        expected[:, :, disc_y, disc_x] = disc_part + halo_scaled[disc_y, disc_x] * (1 - w_disc)
        if dose is not None:
            counts = np.random.default_rng([*noise_key, b]).poisson(expected)
            expected = np.minimum(counts, limit) if limit is not None else counts
        data[r0:r1] = expected.astype(out_dtype, copy=False)
        yield Progress(r1, sy, "4dstem write")


def check_scan_geometry(scan_shape, detector_shape, disc_radius_px, convergence_mrad):
    """``(sy, sx, dy, dx, radius)`` of a simulated scan, or an :class:`InputError` naming what is wrong."""
    sy, sx = (int(v) for v in scan_shape)
    dy, dx = (int(v) for v in detector_shape)
    radius = float(disc_radius_px)
    if min(sy, sx) < 16:
        raise InputError(f"scan_shape {scan_shape} is too small; use at least 16 x 16")
    if min(dy, dx) < 4 or not (0 < radius < min(dy, dx) / 2):
        raise InputError(f"disc radius {radius} must be positive and fit the detector {detector_shape}")
    if not convergence_mrad > 0:
        raise InputError(f"convergence_mrad must be positive, got {convergence_mrad}")
    return sy, sx, dy, dx, radius


def simulate_4dstem(*, seed: int, scan_shape=(32, 32), detector_shape=(32, 32), disc_radius_px: float = 8.0,
                    convergence_mrad: float = 20.0, dose: float | None = 200.0, scan_rotation_deg: float = 0.0,
                    path=None, foil_thickness: float | None = None, n_groups: int | None = None,
                    loops: bool = False, diffuse_fraction: float = 0.02, centre=None,
                    dtype=np.uint16, progress=None) -> FourDStemSample:
    """Simulate a 4D-STEM dataset of a 3D dislocation scene.

    The parameters are those of :func:`iter_simulate_4dstem`; ``progress``, if
    given, is called with every :class:`~napari_stereo_tem.progress.Progress`.
    Returns a :class:`FourDStemSample`.
    """
    work = iter_simulate_4dstem(
        seed=seed, scan_shape=scan_shape, detector_shape=detector_shape, disc_radius_px=disc_radius_px,
        convergence_mrad=convergence_mrad, dose=dose, scan_rotation_deg=scan_rotation_deg, path=path,
        foil_thickness=foil_thickness, n_groups=n_groups, loops=loops, diffuse_fraction=diffuse_fraction,
        centre=centre, dtype=dtype)
    return drive(work, progress)


def iter_simulate_4dstem(*, seed: int, scan_shape=(32, 32), detector_shape=(32, 32), disc_radius_px: float = 8.0,
                         convergence_mrad: float = 20.0, dose: float | None = 200.0, scan_rotation_deg: float = 0.0,
                         path=None, foil_thickness: float | None = None, n_groups: int | None = None,
                         loops: bool = False, diffuse_fraction: float = 0.02, centre=None,
                         dtype=np.uint16) -> ProgressGenerator[FourDStemSample]:
    """Simulate a 4D-STEM dataset of a 3D dislocation scene, as a progress generator.

    Parameters
    ----------
    seed : int
    scan_shape : (scan_y, scan_x)
    detector_shape : (det_y, det_x)
    disc_radius_px : float
        Radius of the direct (bright-field) disc, detector pixels.
    convergence_mrad : float
        Convergence semi-angle; ``mrad_per_px = convergence_mrad / disc_radius_px``.
    dose : float or None
        Mean electrons per disc pixel per probe position (``None``: no noise, float32 data).
    scan_rotation_deg : float
        Rotation from detector to scan directions.
    path : str or Path, optional
        ``.npy`` (memmap), ``.zarr`` or ``.zspy`` (HyperSpy, via a temporary
        zarr); written block by block. ``None``: in memory.
    foil_thickness : float, optional
        Pixels; default ``0.4 * min(scan_shape)`` .. ``0.8 * min(scan_shape)``.
    n_groups, loops
        Scene options (:func:`~.scene.make_scene`).
    diffuse_fraction : float
        Level of the diffuse background outside the disc, relative to the disc.
    centre : (cy, cx), optional
        Disc centre; default the detector centre plus up to half a pixel.
    dtype : numpy dtype
        Of the counts (``float32`` forced when ``dose`` is ``None``).

    Yields
    ------
    Progress
        Stage ``"4dstem views"`` (one per disc pixel), then ``"4dstem write"`` (scan rows).

    Returns
    -------
    FourDStemSample
    """
    seed = check_seed(seed)
    sy, sx, dy, dx, radius = check_scan_geometry(scan_shape, detector_shape, disc_radius_px, convergence_mrad)
    rng = np.random.default_rng([int(seed), 5])
    t = float(rng.uniform(0.4, 0.8) * min(sy, sx) if foil_thickness is None else foil_thickness)
    scene = make_scene(seed, shape=(sy, sx), foil_thickness=t, n_groups=n_groups, loops=loops,
                       distractors=False, background="plain", max_pileup=4)
    if centre is None:
        centre = ((dy - 1) / 2 + rng.uniform(-0.5, 0.5), (dx - 1) / 2 + rng.uniform(-0.5, 0.5))
    cy, cx = float(centre[0]), float(centre[1])
    mrad_per_px = float(convergence_mrad) / radius
    texture = 1.0 + 0.05 * perlin_noise((sy, sx), max(sy, sx) / 4.0, rng)

    # Detector geometry: disc pixels (with a soft one-pixel edge) and the diffuse halo.
    ky, kx = np.mgrid[0:dy, 0:dx]
    r = np.hypot(ky - cy, kx - cx)
    weight = np.clip(radius + 0.5 - r, 0.0, 1.0)
    halo = diffuse_fraction * np.exp(-np.maximum(r - radius, 0.0) / max(radius / 2.0, 1.0))
    disc_y, disc_x = np.nonzero(weight > 0)

    # One transmission image per disc pixel.
    pts, ids, _, _ = densify_polylines(scene.lines)
    widths = np.asarray(scene.line_width) * 0.6
    contrasts = np.asarray(scene.line_contrast)
    trans = np.empty((len(disc_y), sy, sx), np.float32)
    rad = int(np.ceil(2.5 * widths.max() + 0.5)) if len(widths) else 1
    for n, (py, px) in enumerate(zip(disc_y, disc_x)):
        image = texture.copy().ravel()
        if len(pts):
            xy = project_from_direction(pts, (py - cy, px - cx), mrad_per_px, centre_xy=((sx - 1) / 2, (sy - 1) / 2),
                                        scan_rotation_deg=scan_rotation_deg)
            idx, d2 = nearest_sample_map(xy, (sy, sx), rad)
            hit = idx >= 0
            line = ids[idx[hit]]
            image[hit] *= 1.0 - contrasts[line] * np.exp(-0.5 * d2[hit] / widths[line] ** 2)
        trans[n] = image.reshape(sy, sx)
        if n % 16 == 15 or n == len(disc_y) - 1:
            yield Progress(n + 1, len(disc_y), "4dstem views")

    out_dtype = np.dtype(np.float32 if dose is None else dtype)
    block = max(1, int(16_000_000 // (sx * dy * dx)))
    data = _open_output(path, (sy, sx, dy, dx), out_dtype, (block, sx, dy, dx))
    yield from iter_write_patterns(data, trans, weight=weight, halo=halo, dose=dose, out_dtype=out_dtype, block=block,
                                   noise_key=(int(seed), 6))
    if isinstance(data, _NpyRowWriter):
        data = data.close()
    elif path is not None and Path(path).suffix == ".zspy":
        data = _zarr_to_zspy(data, Path(path))

    params = {"generator": "napari_stereo_tem.synth.simulate_4dstem", "seed": int(seed),
              "scan_shape": [sy, sx], "detector_shape": [dy, dx], "disc_radius_px": radius,
              "convergence_mrad": float(convergence_mrad), "mrad_per_px": mrad_per_px,
              "centre": [cy, cx], "dose": None if dose is None else float(dose),
              "scan_rotation_deg": float(scan_rotation_deg), "diffuse_fraction": float(diffuse_fraction),
              "dtype": out_dtype.name, "foil_thickness": t, "scene": scene.params,
              "line_width_scan_px": [float(v) for v in widths]}
    if path is not None:
        Path(str(path) + ".json").write_text(json.dumps(params, indent=1, sort_keys=True))
    return FourDStemSample(data=data, centre=(cy, cx), radius=radius, mrad_per_px=mrad_per_px,
                           scan_rotation_deg=float(scan_rotation_deg), scene=scene,
                           lines_3d=[np.asarray(v) for v in scene.lines], params=params)
