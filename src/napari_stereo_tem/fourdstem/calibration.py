"""Calibration of the diffraction plane: mean/max patterns, the direct beam, diffracted discs.

``mrad per detector pixel = convergence semi-angle / direct-disc radius in pixels``
(DESIGN section 3.2). The direct disc is found automatically on the mean pattern
(or on a vacuum reference): threshold half-way between background and disc,
keep the brightest connected component, then fit a circle to the sub-pixel
half-level contour. The fit reports its quality (:class:`BeamFit`: the disc's
contrast over the background noise, its roundness); a pattern without a clear
disc (noise, a flat frame) is refused, so no calibration and no stereo angle
is made from it.

The mean and max patterns are one pass over the data on the chosen executor
(:mod:`.executors`: threads, or a dask.distributed cluster).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from ..checks import InputError
from ..progress import ProgressGenerator, drive
from .executors import band_source, bands_of, iter_bands
from .loading import open_4dstem
from .masks import Disc, as_disc, disc_mask

__all__ = [
    "iter_patterns",
    "mean_pattern",
    "max_pattern",
    "BeamFit",
    "fit_direct_beam",
    "find_direct_beam",
    "without_bad_pixels",
    "find_diffracted_discs",
    "mrad_per_px",
    "open_pattern",
]


def iter_patterns(data, *, executor="threads", max_workers: int | None = None,
                  rows_per_task: int | None = None) -> ProgressGenerator[tuple[np.ndarray, np.ndarray]]:
    """Mean and max diffraction patterns ``(det_y, det_x)`` in one pass (a progress generator).

    Runs on ``executor`` (``"inline"``, ``"threads"``, a dask.distributed Client or
    a scheduler address; :mod:`.executors`). The result is cached on the dataset
    object, so the second call reads nothing.
    """
    ds = open_4dstem(data)
    if "patterns" in ds._cache:
        return ds._cache["patterns"]
    total = np.zeros(ds.detector_shape, dtype=np.float64)
    peak = [None]

    def add(_band, result):
        s, m = result
        total[...] += s
        peak[0] = m if peak[0] is None else np.maximum(peak[0], m)

    yield from iter_bands(_band_sum_max, band_source(ds, executor), bands_of(ds, rows_per_task),
                          executor=executor, max_workers=max_workers, stage="mean pattern", on_result=add)
    n = ds.scan_shape[0] * ds.scan_shape[1]
    result = (total / n, peak[0].astype(np.float64))
    ds._cache["patterns"] = result
    return result


def _band_sum_max(frames, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum (float64) and max of the patterns of scan rows ``y0:y1``, a few patterns at a time."""
    total, peak = None, None
    kind, size = np.dtype(frames.dtype).kind, np.dtype(frames.dtype).itemsize
    # exact and ~5x faster than float64: 8/16-bit counts summed in 32-bit over one scan row (< 65536 patterns)
    acc = {"u": np.uint32, "i": np.int32}.get(kind) if size <= 2 and frames.shape[1] < 65536 else None
    for y in range(y0, y1):
        row = frames[y:y + 1]
        flat = row.reshape(-1, *row.shape[2:])
        s = flat.sum(axis=0, dtype=acc or np.float64).astype(np.float64)
        m = flat.max(axis=0)
        total = s if total is None else total + s
        peak = m if peak is None else np.maximum(peak, m)
    return total, peak


def mean_pattern(data, *, executor="threads", on_progress=None) -> np.ndarray:
    """Mean diffraction pattern ``(det_y, det_x)`` float64 (cached per dataset object)."""
    return drive(iter_patterns(data, executor=executor), on_progress)[0]


def max_pattern(data, *, executor="threads", on_progress=None) -> np.ndarray:
    """Max diffraction pattern ``(det_y, det_x)`` (cached per dataset object)."""
    return drive(iter_patterns(data, executor=executor), on_progress)[1]


def open_pattern(source, *, executor="threads") -> np.ndarray:
    """Read one diffraction pattern ``(det_y, det_x)`` as float64.

    ``source`` is a file holding one frame (a CBED pattern, a vacuum reference),
    a 2D array, or a 4D dataset (its mean pattern is returned).
    """
    if not isinstance(source, (str, Path)) and np.ndim(source) == 2:
        return np.asarray(source, dtype=float)
    return mean_pattern(open_4dstem(source), executor=executor)


def _check_pattern(pattern) -> np.ndarray:
    p = np.asarray(pattern, dtype=float)
    if p.ndim != 2:
        raise InputError(f"a diffraction pattern must be 2D (det_y, det_x), got shape {p.shape}; "
                         "use mean_pattern(dataset) for a 4D dataset")
    if not np.all(np.isfinite(p)):
        raise InputError("the diffraction pattern holds NaN or inf values")
    if min(p.shape) < 8:
        raise InputError(f"the diffraction pattern {p.shape} is too small to find a disc in")
    return p


def without_bad_pixels(pattern, *, limit: float = 10.0) -> np.ndarray:
    """``pattern`` with its hot and dead detector pixels replaced by the median of their 8 neighbours.

    Pixel detectors (Medipix/Merlin, EMPAD, ...) have hot pixels that count in every frame and dead ones
    that count nothing; summed into a mean pattern they stand far off their neighbours and swayed the
    direct beam's fit quality (ten hot pixels made a real CBED pattern's disc "unclear"). Taken as bad: a
    pixel over three times the second-brightest of its 8 neighbours, or under a third of the second-darkest
    where that is bright, and in either case more than ``limit`` times the pattern's noise (1.4826 x the
    median absolute deviation from the neighbours' median) off; so single pixels and pairs, never a disc's
    rim (its pixels have bright neighbours inside the disc).
    """
    from ..camera_defects import sorted_neighbours

    p = np.asarray(pattern, dtype=float)
    neighbours = sorted_neighbours(p)
    middle = 0.5 * (neighbours[3] + neighbours[4])
    off = p - middle
    noise = 1.4826 * float(np.median(np.abs(off - np.median(off))))
    if noise <= 0:
        noise = max(float(np.std(off)), 1e-12 * max(float(np.abs(p).max()), 1.0))
    hot = p > 3.0 * np.maximum(neighbours[-2], 0.0) + limit * noise
    dead = (p < neighbours[1] / 3.0) & (neighbours[1] - p > limit * noise)
    bad = hot | dead
    return np.where(bad, middle, p) if bad.any() else p


def _smooth(p: np.ndarray) -> np.ndarray:
    # median kills hot pixels, the Gaussian the shot noise
    return ndi.gaussian_filter(ndi.median_filter(p, size=3), 1.0)


def _fit_circle(points: np.ndarray) -> tuple[float, float, float]:
    """Algebraic (Kasa) least-squares circle through ``(n, 2)`` points ``(y, x)``."""
    y, x = points[:, 0], points[:, 1]
    a = np.column_stack([x, y, np.ones_like(x)])
    b = x**2 + y**2
    (c0, c1, c2), *_ = np.linalg.lstsq(a, b, rcond=None)
    cx, cy = c0 / 2, c1 / 2
    return float(cy), float(cx), float(np.sqrt(max(c2 + cx**2 + cy**2, 0.0)))


def _contour_disc(smooth: np.ndarray, component: np.ndarray, level: float) -> tuple[Disc, float] | None:
    from skimage.measure import find_contours

    rows, cols = np.nonzero(component)
    pad = 3
    r0, r1 = max(rows.min() - pad, 0), min(rows.max() + pad + 1, smooth.shape[0])
    c0, c1 = max(cols.min() - pad, 0), min(cols.max() + pad + 1, smooth.shape[1])
    crop = smooth[r0:r1, c0:c1]
    contours = find_contours(crop, level)
    if not contours:
        return None
    contour = max(contours, key=len) + [r0, c0]
    if len(contour) < 8:
        return None
    cy, cx, r = _fit_circle(contour)
    # reject a fit dominated by a clipped edge (disc partly off the detector)
    resid = np.abs(np.hypot(contour[:, 0] - cy, contour[:, 1] - cx) - r)
    if not np.isfinite(r) or r <= 0 or np.median(resid) > 0.2 * r:
        return None
    return Disc(cy, cx, r), float(1.0 - np.median(resid) / r)


@dataclass(frozen=True)
class BeamFit:
    """The direct-beam disc found on a pattern, and how clearly it is there.

    ``contrast_snr``: (median inside 0.7 r - median of the ring 1.5 r .. 2.5 r)
    over the noise of that ring (1.4826 x its median absolute deviation, or half
    its standard deviation, whichever is larger); ``roundness``: 1 - the median
    distance of the half-level contour from the fitted circle, over ``r``
    (``None`` when the disc is too small for a contour). ``clear`` is whether
    both pass the thresholds of :func:`fit_direct_beam`; ``reason`` says why
    not.
    """

    disc: Disc | None
    contrast_snr: float
    roundness: float | None
    clear: bool
    reason: str = ""

    def to_dict(self) -> dict:
        return {"disc": None if self.disc is None else self.disc.to_dict(),
                "contrast_snr": round(float(self.contrast_snr), 3),
                "roundness": None if self.roundness is None else round(float(self.roundness), 4),
                "clear": bool(self.clear), "reason": self.reason}


def fit_direct_beam(pattern, *, min_radius: float = 2.0, min_snr: float = 8.0,
                    min_roundness: float = 0.8) -> BeamFit:
    """Fit the direct-beam disc (centre and radius, sub-pixel) and say how clear it is.

    Parameters
    ----------
    pattern : array ``(det_y, det_x)``
        The mean pattern of a dataset, a vacuum reference, or one CBED frame.
    min_radius : float
        Discs smaller than this (in pixels) are not clear.
    min_snr, min_roundness : float
        Thresholds on :class:`BeamFit`'s ``contrast_snr`` and ``roundness``.

    Returns
    -------
    BeamFit
        ``clear`` is False (with ``reason``) for noise, a flat pattern or a blob
        that is not a disc; nothing is raised for those.

    Raises
    ------
    InputError
        A pattern that is not a finite 2D array of at least 8 x 8.
    """
    p = without_bad_pixels(_check_pattern(pattern))
    s = _smooth(p)
    bg = float(np.median(s))
    top = float(s.max())
    if top - bg <= 1e-12 * max(abs(top), 1.0):
        return BeamFit(None, 0.0, None, False, "the diffraction pattern is flat (empty or saturated?)")
    level = 0.5 * (bg + top)
    disc, roundness = None, None
    for _ in range(3):
        labels, n = ndi.label(s > level)
        if n == 0:
            break
        weights = ndi.sum(s - bg, labels, index=np.arange(1, n + 1))
        component = ndi.binary_fill_holes(labels == (int(np.argmax(weights)) + 1))
        area = int(component.sum())
        cy, cx = ndi.center_of_mass(component)
        fitted = _contour_disc(s, component, level)
        if fitted is not None:
            disc, roundness = fitted
        else:
            disc, roundness = Disc(float(cy), float(cx), float(np.sqrt(area / np.pi))), None
        # re-level at half the plateau (the median inside the disc), not half the brightest pixel
        inner = disc_mask(s.shape, disc.cy, disc.cx, 0.7 * disc.radius)
        if inner.sum() < 3:
            break
        new_level = 0.5 * (bg + float(np.median(s[inner])))
        if abs(new_level - level) < 1e-3 * (top - bg):
            break
        level = new_level
    if disc is None:
        return BeamFit(None, 0.0, None, False, "no bright region in the pattern")
    snr = _contrast_snr(p, disc)
    problems = []
    if disc.radius < min_radius:
        problems.append(f"radius {disc.radius:.1f} px < {min_radius} px")
    if not snr >= min_snr:
        problems.append(f"disc contrast {snr:.1f} x the background noise < {min_snr}")
    if roundness is not None and roundness < min_roundness:
        problems.append(f"roundness {roundness:.2f} < {min_roundness}")
    return BeamFit(disc, snr, roundness, not problems, "; ".join(problems))


def _contrast_snr(p: np.ndarray, disc: Disc) -> float:
    inside = disc_mask(p.shape, disc.cy, disc.cx, max(0.7 * disc.radius, 1.0))
    ring = disc_mask(p.shape, disc.cy, disc.cx, 2.5 * disc.radius) & \
        ~disc_mask(p.shape, disc.cy, disc.cx, 1.5 * disc.radius)
    if ring.sum() < 16:  # the disc fills the detector: compare with everything outside it
        ring = ~disc_mask(p.shape, disc.cy, disc.cx, 1.2 * disc.radius)
    if ring.sum() < 4 or inside.sum() < 1:
        return 0.0
    outside = p[ring]
    centre = float(np.median(outside))
    noise = max(1.4826 * float(np.median(np.abs(outside - centre))), 0.5 * float(outside.std()),
                1e-9 * max(abs(float(np.median(p[inside]))), 1e-30))
    return (float(np.median(p[inside])) - centre) / noise


def find_direct_beam(pattern, *, min_radius: float = 2.0, min_snr: float = 8.0,
                     min_roundness: float = 0.8) -> Disc:
    """Find the direct-beam disc (centre and radius, sub-pixel); refuse when there is no clear disc.

    Parameters are those of :func:`fit_direct_beam`.

    Returns
    -------
    Disc
        Centre ``(cy, cx)`` and radius in detector pixels (pixel centres at integers).

    Raises
    ------
    InputError
        A flat pattern, noise, or a bright region that is not a clear disc (the
        message gives the fit quality); no calibration (and so no stereo angle)
        should be made from such a pattern.
    """
    fit = fit_direct_beam(pattern, min_radius=min_radius, min_snr=min_snr, min_roundness=min_roundness)
    if not fit.clear:
        raise InputError(f"no clear direct-beam disc: {fit.reason}; give the disc by hand "
                         "or use a vacuum reference")
    return fit.disc


def find_diffracted_discs(pattern, direct, *, max_discs: int | None = None, min_score: float = 0.5,
                          min_separation: float | None = None, order: str = "distance") -> list[Disc]:
    """Find diffracted discs the size of the direct disc on a (CBED) pattern.

    Normalised cross-correlation with a disc template of the direct disc's
    radius, local maxima away from the direct disc, sub-pixel centres from the
    correlation peak (quadratic fit).

    Parameters
    ----------
    pattern : array ``(det_y, det_x)``
    direct : Disc or (cy, cx, r)
        The direct disc, e.g. from :func:`find_direct_beam`.
    max_discs : int, optional
        Keep at most this many (the best correlated first).
    min_score : float
        Minimum normalised cross-correlation (0..1) of a disc.
    min_separation : float, optional
        Minimum distance between disc centres; default: the disc diameter.
    order : {"distance", "score"}
        Sort by distance from the direct disc (nearest first, default) or by
        correlation score (best first); ``max_discs`` keeps the first ones.

    Returns
    -------
    list of Disc
        Radius that of the direct disc.
    """
    from skimage.feature import match_template, peak_local_max

    p = without_bad_pixels(_check_pattern(pattern))
    direct = as_disc(direct)
    r = direct.radius
    s = _smooth(p)
    # compress the dynamic range so that faint discs correlate as well as bright ones
    s = np.sqrt(np.clip(s - np.percentile(s, 5), 0, None))
    rad = int(np.ceil(r)) + 2
    template = disc_mask((2 * rad + 1, 2 * rad + 1), rad, rad, r).astype(float)
    template = ndi.gaussian_filter(template, 1.0)
    ncc = match_template(s, template, pad_input=True, mode="constant")
    sep = float(min_separation) if min_separation is not None else 2.0 * r
    yy, xx = np.mgrid[: p.shape[0], : p.shape[1]]
    ncc[(yy - direct.cy) ** 2 + (xx - direct.cx) ** 2 < sep**2] = -1
    # a disc must lie (mostly) on the detector
    edge = int(np.ceil(0.5 * r))
    ncc[:edge], ncc[-edge:], ncc[:, :edge], ncc[:, -edge:] = -1, -1, -1, -1
    peaks = peak_local_max(ncc, min_distance=max(int(sep // 2), 1), threshold_abs=min_score,
                           exclude_border=False)
    found = []
    for py, px in peaks:
        dy, dx = _quadratic_peak(ncc, py, px)
        found.append((float(ncc[py, px]), Disc(float(py + dy), float(px + dx), r)))
    if order == "score":
        found.sort(key=lambda item: -item[0])
    elif order == "distance":
        found.sort(key=lambda item: np.hypot(item[1].cy - direct.cy, item[1].cx - direct.cx))
    else:
        raise InputError(f"order must be 'distance' or 'score', got {order!r}")
    discs = [d for _, d in found]
    return discs[:max_discs] if max_discs is not None else discs


def _quadratic_peak(a: np.ndarray, y: int, x: int) -> tuple[float, float]:
    out = []
    for axis in (0, 1):
        i = (y, x)[axis]
        n = a.shape[axis]
        if 0 < i < n - 1:
            if axis == 0:
                lo, mid, hi = a[y - 1, x], a[y, x], a[y + 1, x]
            else:
                lo, mid, hi = a[y, x - 1], a[y, x], a[y, x + 1]
            den = lo - 2 * mid + hi
            out.append(float(np.clip(0.5 * (lo - hi) / den, -0.5, 0.5)) if den < 0 else 0.0)
        else:
            out.append(0.0)
    return out[0], out[1]


def mrad_per_px(convergence_mrad: float, direct) -> float:
    """Detector calibration: convergence semi-angle (mrad) / direct-disc radius (px)."""
    a = float(convergence_mrad)
    if not np.isfinite(a) or a <= 0:
        raise InputError(f"the convergence semi-angle must be a positive number of mrad, got {convergence_mrad!r}")
    if a > 500:
        raise InputError(f"a convergence semi-angle of {a} mrad is absurd; typical values are 1-100 mrad")
    return a / as_disc(direct).radius

