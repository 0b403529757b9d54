"""Calibration of the diffraction plane: mean/max patterns, the direct beam, diffracted discs.

``mrad per detector pixel = convergence semi-angle / direct-disc radius in pixels``
(DESIGN section 3.2). The direct disc is found automatically on the mean pattern
(or on a vacuum reference): threshold half-way between background and disc,
keep the brightest connected component, then fit a circle to the sub-pixel
half-level contour.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..checks import InputError
from ..progress import Progress, ProgressGenerator, drive
from .masks import Disc, as_disc, disc_mask

__all__ = [
    "iter_patterns",
    "mean_pattern",
    "max_pattern",
    "find_direct_beam",
    "find_diffracted_discs",
    "mrad_per_px",
]


def _dataset(data):
    from .loading import open_4dstem

    return open_4dstem(data)


def iter_patterns(data) -> ProgressGenerator[tuple[np.ndarray, np.ndarray]]:
    """Mean and max diffraction patterns ``(det_y, det_x)`` in one pass (a progress generator).

    The result is cached on the dataset object, so the second call reads nothing.
    """
    ds = _dataset(data)
    if "patterns" in ds._cache:
        return ds._cache["patterns"]
    arr = ds.data
    total = np.zeros(ds.detector_shape, dtype=np.float64)
    peak = None
    row_chunks = arr.chunks[0]
    y0 = 0
    for i, rows in enumerate(row_chunks):
        block = arr[y0:y0 + rows]
        s, m = _block_sum_max(block)
        total += s
        peak = m if peak is None else np.maximum(peak, m)
        y0 += rows
        yield Progress(i + 1, len(row_chunks), "mean pattern")
    n = ds.scan_shape[0] * ds.scan_shape[1]
    result = (total / n, peak.astype(np.float64))
    ds._cache["patterns"] = result
    return result


def _block_sum_max(block):
    import dask

    s = block.sum(axis=(0, 1), dtype=np.float64)
    m = block.max(axis=(0, 1))
    return dask.compute(s, m, scheduler="threads")


def mean_pattern(data, *, on_progress=None) -> np.ndarray:
    """Mean diffraction pattern ``(det_y, det_x)`` float64 (cached per dataset object)."""
    return drive(iter_patterns(data), on_progress)[0]


def max_pattern(data, *, on_progress=None) -> np.ndarray:
    """Max diffraction pattern ``(det_y, det_x)`` (cached per dataset object)."""
    return drive(iter_patterns(data), on_progress)[1]


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


def _contour_disc(smooth: np.ndarray, component: np.ndarray, level: float) -> Disc | None:
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
    return Disc(cy, cx, r)


def find_direct_beam(pattern, *, min_radius: float = 2.0) -> Disc:
    """Find the direct-beam disc (centre and radius, sub-pixel) on a diffraction pattern.

    Parameters
    ----------
    pattern : array ``(det_y, det_x)``
        The mean pattern of a dataset, a vacuum reference, or one CBED frame.
    min_radius : float
        Discs smaller than this (in pixels) are refused.

    Returns
    -------
    Disc
        Centre ``(cy, cx)`` and radius in detector pixels (pixel centres at integers).

    Raises
    ------
    InputError
        A constant pattern or no disc-like bright region.
    """
    p = _check_pattern(pattern)
    s = _smooth(p)
    bg = float(np.median(s))
    top = float(s.max())
    if top - bg <= 1e-12 * max(abs(top), 1.0):
        raise InputError("the diffraction pattern is flat: no direct beam to find (is it empty or saturated?)")
    level = 0.5 * (bg + top)
    disc = None
    for _ in range(3):
        labels, n = ndi.label(s > level)
        if n == 0:
            break
        weights = ndi.sum(s - bg, labels, index=np.arange(1, n + 1))
        component = ndi.binary_fill_holes(labels == (int(np.argmax(weights)) + 1))
        area = int(component.sum())
        cy, cx = ndi.center_of_mass(component)
        disc = _contour_disc(s, component, level) or Disc(float(cy), float(cx), float(np.sqrt(area / np.pi)))
        # re-level at half the plateau (the median inside the disc), not half the brightest pixel
        inner = disc_mask(s.shape, disc.cy, disc.cx, 0.7 * disc.radius)
        if inner.sum() < 3:
            break
        new_level = 0.5 * (bg + float(np.median(s[inner])))
        if abs(new_level - level) < 1e-3 * (top - bg):
            break
        level = new_level
    if disc is None or disc.radius < min_radius:
        raise InputError(f"no direct-beam disc found (largest bright region radius "
                         f"{0 if disc is None else disc.radius:.1f} px < {min_radius} px); "
                         "give the disc by hand or use a vacuum reference")
    return disc


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

    p = _check_pattern(pattern)
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

