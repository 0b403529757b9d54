"""The tomography baseline of the thesis's Fig. 3.8: tilt series + WBP / SART against stereo.

One synthetic specimen (a :class:`~napari_stereo_tem.synth.DislocationScene`
with lines only, see :func:`tomography_specimen`) is rendered at 45 tilts evenly spread over (-48, 50) degrees, with the shot noise of
the stereo pairs; ``n`` views are taken from that series at regular index steps
(``n = 2`` takes the two ends). Each image row is one sinogram row (the tilt axis
is vertical, through the central column), and every row ``y`` is reconstructed
as an ``(x, z)`` slice with scikit-image:

- ``wbp``: :func:`skimage.transform.iradon`, ramp filter (weighted back-projection);
- ``sirt``: :func:`skimage.transform.iradon_sart`, a few iterations (scikit-image's
  simultaneous algebraic technique, the SIRT family of the thesis).

Before reconstruction each view becomes a line signal (black top-hat: lines
positive, the smooth background removed). 3D lines are read from the volume the
way stereo reads them from a disparity map: the top view ``max_z V(y, x, z)`` is
thresholded (Otsu), skeletonised into branches
(:func:`~napari_stereo_tem.stereo.skeleton_graph.skeleton_branches`), and each branch pixel
gets the depth of the maximum of its column (parabolic sub-voxel peak).

The stereo rows use a pair of the same specimen at ``-phi/2, +phi/2``:
``stereo (truth disparity)`` triangulates the true 2D line pixels of the left
view with their true disparities through
:func:`~napari_stereo_tem.stereo.pipeline.lines_from_disparity` (an upper bound of
what stereo can do), ``stereo (pipeline)`` runs
:func:`~napari_stereo_tem.stereo.pipeline.reconstruct` with the shipped networks.
All rows are scored by :func:`~.lines3d.line_set_distance` against the true lines
inside the field of view.

Geometry: the image is ``(rows, 2 m + 1)`` columns so that the tilt axis
``(cols - 1) / 2`` is the centre pixel that scikit-image rotates about; in a
reconstructed slice ``rec[r, c]`` the point is ``X = c``, ``Z = axis - r``
(scikit-image's detector coordinate is ``x cos(theta) + u sin(theta)`` with ``u``
pointing up the rows, which is this project's projection with ``theta`` = tilt).
"""

from __future__ import annotations

import time

import numpy as np

from ..checks import InputError
from ..progress import Progress, ProgressGenerator, drive
from .lines3d import line_set_distance

__all__ = ["TILT_RANGE_DEG", "N_SERIES", "series_indices", "line_signal", "reconstruct_volume",
           "lines_from_volume", "tomography_specimen", "compare_tomography_iter", "compare_tomography"]

#: Tilt range of the thesis's series (degrees).
TILT_RANGE_DEG = (-48.0, 50.0)
#: Number of images in the full series.
N_SERIES = 45


def series_indices(n_views: int, *, n_series: int = N_SERIES) -> np.ndarray:
    """Indices of ``n_views`` images sampled at regular steps from a series of ``n_series``."""
    n = int(n_views)
    if not 2 <= n <= n_series:
        raise InputError(f"n_views must be between 2 and {n_series}, got {n_views}")
    return np.unique(np.round(np.linspace(0, n_series - 1, n)).astype(int))


def line_signal(image, *, radius: int = 5, dark_lines: bool = True) -> np.ndarray:
    """Thin-line signal of one view: black (or white) top-hat with a disc of ``radius`` px.

    Returns float64 ``(rows, cols)``, lines positive, a flat background near zero.
    """
    from skimage.morphology import black_tophat, disk, white_tophat

    img = np.asarray(image, dtype=float)
    return (black_tophat if dark_lines else white_tophat)(img, disk(int(radius)))


def reconstruct_volume(views, tilts_deg, *, method: str = "wbp", iterations: int = 3,
                       relaxation: float = 0.15, z_half: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Slice-by-slice tomogram of views tilted about the central column.

    Parameters
    ----------
    views : ndarray, shape (n, rows, cols)
        Line signals (lines positive); ``cols`` odd so the axis is a pixel centre.
    tilts_deg : sequence of float, length n
    method : {"wbp", "sirt"}
    iterations : int
        SART sweeps (``sirt`` only).
    relaxation : float
        SART relaxation.
    z_half : float, optional
        Keep only ``|z| <= z_half`` (the foil and a margin).

    Returns
    -------
    volume : ndarray, shape (rows, n_z, cols)
        ``volume[y, k, x]`` at depth ``z[k]``.
    z : ndarray, shape (n_z,)
        Depth of each ``k`` (decreasing: ``z = axis - r``).
    """
    from skimage.transform import iradon, iradon_sart

    views = np.asarray(views, dtype=float)
    tilts = np.asarray(tilts_deg, dtype=float)
    if views.ndim != 3 or len(views) != len(tilts):
        raise InputError(f"views must be (n, rows, cols) with one tilt each, got {views.shape} and {len(tilts)} tilts")
    if views.shape[2] % 2 == 0:
        raise InputError(f"use an odd number of columns (tilt axis on a pixel centre), got {views.shape[2]}")
    if method not in ("wbp", "sirt"):
        raise InputError(f"method must be 'wbp' or 'sirt', got {method!r}")
    n, rows, cols = views.shape
    axis = (cols - 1) / 2.0
    # scikit-image reconstructs inside the inscribed circle only: pad the detector with zeros
    # (the line signal's background) so the whole (x, z) rectangle lies inside it.
    pad = int(np.ceil((np.sqrt(2.0) - 1.0) * cols / 2.0)) + 1
    size = cols + 2 * pad
    z = axis + pad - np.arange(size, dtype=float)
    keep = np.ones(size, bool) if z_half is None else np.abs(z) <= float(z_half)
    volume = np.empty((rows, int(keep.sum()), cols))
    for y in range(rows):
        sinogram = np.pad(views[:, y, :].T, ((pad, pad), (0, 0)))
        if method == "wbp":
            rec = iradon(sinogram, theta=tilts, filter_name="ramp", circle=True, output_size=size)
        else:
            rec = None
            for _ in range(max(1, int(iterations))):
                rec = iradon_sart(sinogram, theta=tilts, image=rec, relaxation=relaxation)
        volume[y] = rec[keep][:, pad:pad + cols]
    return volume, z[keep]


def lines_from_volume(volume, z, *, threshold: float | None = None, smooth: float = 1.0,
                      min_branch_length: float = 5.0) -> list[np.ndarray]:
    """3D lines of a tomogram: skeleton of the thresholded top view, depth of each column's maximum.

    Parameters
    ----------
    volume : ndarray, shape (rows, n_z, cols)
    z : ndarray, shape (n_z,)
    threshold : float, optional
        On the top view ``max_z``; default Otsu's.
    smooth : float
        Gaussian sigma (voxels) applied to the volume first.
    min_branch_length : float
        Spur pruning of the skeleton.

    Returns
    -------
    list of ndarray, shape (n, 3)
    """
    from scipy.ndimage import gaussian_filter
    from skimage.filters import threshold_otsu

    from ..stereo.skeleton_graph import skeleton_branches

    vol = gaussian_filter(np.asarray(volume, dtype=float), smooth) if smooth > 0 else np.asarray(volume, float)
    top = vol.max(axis=1)
    k = vol.argmax(axis=1)
    if np.ptp(top) == 0:
        return []
    thr = threshold_otsu(top) if threshold is None else float(threshold)
    lines = []
    nz = vol.shape[1]
    for branch in skeleton_branches(top > thr, min_branch_length=min_branch_length):
        xs, ys = branch[:, 0].astype(int), branch[:, 1].astype(int)
        kk = k[ys, xs]
        lo, hi = np.clip(kk - 1, 0, nz - 1), np.clip(kk + 1, 0, nz - 1)
        a, b, c = vol[ys, lo, xs], vol[ys, kk, xs], vol[ys, hi, xs]
        den = a - 2 * b + c
        shift = np.where((den < 0) & (lo < kk) & (hi > kk), 0.5 * (a - c) / np.where(den < 0, den, -1), 0.0)
        depth = np.interp(kk + np.clip(shift, -0.5, 0.5), np.arange(nz), z)
        lines.append(np.column_stack([branch[:, 0], branch[:, 1], depth]))
    return lines


def _clip_to_box(lines, shape, margin: float) -> list[np.ndarray]:
    rows, cols = shape
    out = []
    for line in lines:
        inside = ((line[:, 0] >= margin) & (line[:, 0] <= cols - 1 - margin)
                  & (line[:, 1] >= margin) & (line[:, 1] <= rows - 1 - margin))
        edges = np.diff(np.concatenate([[0], inside.astype(np.int8), [0]]))
        out += [line[a:b] for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)) if b - a >= 2]
    return out


def tomography_specimen(seed: int, *, shape=(128, 129), foil_thickness: float = 60.0, n_groups: int = 2,
                        max_pileup: int = 3, background: str = "plain"):
    """The specimen of the comparison: dislocations only, for tilts up to 50 degrees.

    No slip traces, grain boundaries or (with the default ``"plain"`` background) surface
    particles and texture: only the lines, bend contours and shot noise, so that the
    comparison is about recovering line geometry, not about rejecting other structure
    (which a structure-unaware tomogram cannot do at all).
    """
    from ..synth import make_scene

    return make_scene(int(seed), shape=shape, foil_thickness=foil_thickness, n_groups=n_groups,
                      max_pileup=max_pileup, distractors=False, background=background,
                      max_tilt_deg=max(abs(v) for v in TILT_RANGE_DEG))


def _truth_disparity(views, tilts, axis_col):
    """Signed disparity of the left view's dislocation pixels (as :func:`~..synth.make_stereo_pair` stores it)."""
    from ..stereo.projection import project_points

    foot = views.foot_points[0]
    d = np.full(foot.shape[:2], np.nan)
    yy, xx = np.nonzero(np.isfinite(foot[..., 0]))
    zz = foot[yy, xx, 2]
    a = np.deg2rad(tilts[0])
    pts = np.column_stack([axis_col + (xx - axis_col - zz * np.sin(a)) / np.cos(a), yy, zz])
    d[yy, xx] = project_points(pts, tilts[1], axis_col=axis_col)[:, 0] - project_points(pts, tilts[0],
                                                                                      axis_col=axis_col)[:, 0]
    return d


def compare_tomography_iter(seed: int = 9_000_123, *, shape=(128, 129), n_views=(2, 4, 8, 16, 45),
                            methods=("wbp", "sirt"), sirt_iterations: int = 3, stereo_angle_deg: float = 8.0,
                            dose: float = 1000.0, pipeline: bool = True, remove_depth_offset: bool = True,
                            foil_thickness: float = 60.0, edge_margin: float = 6.0,
                            n_threads: int | None = None, detector=None, matcher=None) -> ProgressGenerator[dict]:
    """Score WBP and SART from ``n`` views and stereo from 2 views on one specimen; a progress generator.

    Parameters
    ----------
    seed : int
        Specimen and noise seed (default a held-out test seed).
    shape : (rows, cols)
        ``cols`` odd.
    n_views : sequence of int
        Numbers of views sampled from the 45-image series over (-48, 50) degrees.
    methods : subset of ("wbp", "sirt")
    sirt_iterations : int
    stereo_angle_deg : float
        Angle of the stereo pair (views at ``-phi/2, +phi/2``).
    dose : float
        Electrons per pixel at intensity 1 (Poisson noise) in every view; 0 for none.
    pipeline : bool
        Add the ``stereo (pipeline)`` row when the shipped weights exist.
    remove_depth_offset : bool
        Passed to :func:`~.lines3d.line_set_distance` for every row.
    foil_thickness : float
        Pixels; the tomogram keeps ``|z| <= t/2 + 8``.
    edge_margin : float
        Truth and every reconstruction are scored only where ``x`` and ``y`` are at least
        this far inside the image (lines leaving the field of view in some views).
    n_threads : int, optional
        Torch threads of the pipeline row.
    detector, matcher : model, version name or path, optional
        Networks of the pipeline row (default: the shipped ones; the row is skipped, with
        a note, when no matcher weights are shipped and none is given).

    Yields
    ------
    Progress

    Returns
    -------
    dict
        ``rows``: list of dicts ``method``, ``n_views``, ``mean``, ``median``, ``depth_mean``,
        ``mean_pred_to_true``, ``mean_true_to_pred``, ``depth_offset``, ``seconds`` (and ``note``);
        ``params``: the settings.
    """
    from ..stereo.pipeline import lines_from_disparity
    from ..synth import render_views

    rows_, cols = int(shape[0]), int(shape[1])
    if cols % 2 == 0:
        raise InputError(f"shape must have an odd number of columns (tilt axis on a pixel centre), got {shape}")
    bad = [m for m in methods if m not in ("wbp", "sirt")]
    if bad:
        raise InputError(f"unknown methods {bad}; use 'wbp' and/or 'sirt'")
    scene = tomography_specimen(seed, shape=(rows_, cols), foil_thickness=foil_thickness)
    axis_col = (cols - 1) / 2.0
    noise = None if not dose else float(dose)
    truth = _clip_to_box(scene.lines, (rows_, cols), margin=edge_margin)
    if not truth:
        raise InputError(f"specimen {seed} has no line inside the field of view; pick another seed")
    series_tilts = np.linspace(*TILT_RANGE_DEG, N_SERIES)
    total = len(n_views) * len(methods) + 2 + int(pipeline)
    done = 0
    t0 = time.perf_counter()
    series = render_views(scene, series_tilts, axis_col=axis_col, dose=noise, seed=seed)
    signals = np.stack([line_signal(img) for img in series.images])
    render_s = time.perf_counter() - t0
    results = []

    def score(method, n, lines, seconds, note=""):
        # every method and the truth are scored inside the same box, away from the edges where
        # lines leave the field of view in some views (truncated projections)
        lines = _clip_to_box([np.asarray(v, float) for v in lines if len(v)], (rows_, cols), margin=edge_margin)
        m = line_set_distance(lines, truth, remove_depth_offset=remove_depth_offset)
        results.append({"method": method, "n_views": int(n), **{k: m[k] for k in (
            "mean", "median", "depth_mean", "mean_pred_to_true", "mean_true_to_pred", "depth_offset")},
            "n_lines": len(lines), "seconds": float(seconds), "note": note})

    phi = float(stereo_angle_deg)
    pair = render_views(scene, (-phi / 2, phi / 2), axis_col=axis_col, dose=noise, seed=seed)
    t0 = time.perf_counter()
    truth_lines = lines_from_disparity(pair.masks[0] == 1, _truth_disparity(pair, (-phi / 2, phi / 2), axis_col), phi)
    score("stereo (truth disparity)", 2, truth_lines, time.perf_counter() - t0, "true 2D lines and disparities")
    done += 1
    yield Progress(done, total, "stereo (truth disparity)")
    if pipeline:
        from ..models.store import list_versions

        if (matcher is not None or any(v.startswith("matcher") for v in list_versions())) and (
                detector is not None or any(v.startswith("detector") for v in list_versions())):
            from ..stereo.pipeline import reconstruct

            t0 = time.perf_counter()
            rec = reconstruct(pair.images[0], pair.images[1], stereo_angle_deg=phi, rectify=False,
                              n_threads=n_threads, detector=detector, matcher=matcher)
            score("stereo (pipeline)", 2, rec.lines, time.perf_counter() - t0,
                  f"{rec.provenance['detector']['version']} + {rec.provenance['matcher']['version']}")
        else:
            results.append({"method": "stereo (pipeline)", "n_views": 2, "note": "no shipped matcher weights"})
        done += 1
        yield Progress(done, total, "stereo (pipeline)")
    for n in n_views:
        idx = series_indices(n)
        for method in methods:
            t0 = time.perf_counter()
            volume, z = reconstruct_volume(signals[idx], series_tilts[idx], method=method,
                                           iterations=sirt_iterations, z_half=foil_thickness / 2 + 8)
            lines = lines_from_volume(volume, z)
            score(method, len(idx), lines, time.perf_counter() - t0)
            done += 1
            yield Progress(done, total, f"{method} n={len(idx)}")
    yield Progress(total, total, "done")
    return {"rows": results, "params": {
        "seed": int(seed), "shape": [rows_, cols], "n_series": N_SERIES, "tilt_range_deg": list(TILT_RANGE_DEG),
        "stereo_angle_deg": phi, "dose": dose, "sirt_iterations": int(sirt_iterations),
        "foil_thickness": float(foil_thickness), "remove_depth_offset": bool(remove_depth_offset),
        "edge_margin": float(edge_margin),
        "render_s": render_s, "n_true_lines": len(truth)}}


def compare_tomography(seed: int = 9_000_123, *, on_progress=None, should_stop=None, **options) -> dict:
    """Run :func:`compare_tomography_iter` to the end (same options) and return its result."""
    return drive(compare_tomography_iter(seed, **options), on_progress, should_stop)
