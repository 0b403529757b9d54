"""Radial distribution function g(r) of 3D points in a finite box, edge-corrected.

Edge correction: the shell around each particle is counted only for the part
of it that lies inside the observed box (a thin slab of ice, say), so particles
near a face are not taken for particles with few neighbours::

    g(r_b) = sum_i N_i(b) / (rho * sum_i V_i(b)),   rho = (n - 1) / V

with ``N_i(b)`` the neighbours of particle ``i`` in the shell ``b`` and
``V_i(b)`` the volume of that shell inside the box. The fraction of a sphere of
radius ``r`` inside a pair of parallel faces is the zone-area formula
``(min(r, d_lo) + min(r, d_hi)) / (2 r)``; the three axes are multiplied (exact
when one axis binds, as for a slab, and a close approximation at corners), and
each shell is integrated with 4-point Gauss-Legendre in ``r``. Pairs come from
``cKDTree.query_pairs``: the cost follows the pairs closer than ``r_max``, not
``n^2``.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from ..checks import InputError

__all__ = ["radial_distribution", "shell_volume_inside", "box_of", "first_peak"]


def box_of(points) -> np.ndarray:
    """Bounding box ``(3, 2)`` of ``points`` (``(n, 3)``): ``[[x0, x1], [y0, y1], [z0, z1]]``."""
    pts = np.asarray(points, dtype=float).reshape(-1, 3)
    return np.column_stack([pts.min(axis=0), pts.max(axis=0)])


def _bounds(box, points) -> np.ndarray:
    if box is None:
        return box_of(points)
    arr = np.asarray(box, dtype=float)
    if arr.shape == (3, 2):
        return arr
    raise InputError(f"box must be (3, 2) bounds [[x0, x1], [y0, y1], [z0, z1]], got shape {arr.shape}")


def shell_volume_inside(points, edges, bounds) -> np.ndarray:
    """Sum over particles of the volume of each shell ``[edges[b], edges[b+1])`` inside the box.

    Parameters
    ----------
    points : ndarray, shape (n, 3)
    edges : ndarray, shape (n_bins + 1,)
    bounds : ndarray, shape (3, 2)

    Returns
    -------
    ndarray, shape (n_bins,)
    """
    nodes, weights = np.polynomial.legendre.leggauss(4)
    lo, hi = edges[:-1], edges[1:]
    radii = 0.5 * (hi - lo)[:, None] * nodes[None, :] + 0.5 * (hi + lo)[:, None]  # (bins, 4)
    d_lo = np.clip(points - bounds[:, 0], 0.0, None)  # (n, 3)
    d_hi = np.clip(bounds[:, 1] - points, 0.0, None)
    total = np.zeros(len(lo))
    for q in range(len(nodes)):
        r = radii[:, q]  # (bins,)
        frac = np.ones((len(points), len(r)))
        for a in range(3):
            frac *= (np.minimum(r, d_lo[:, a:a + 1]) + np.minimum(r, d_hi[:, a:a + 1])) / (2.0 * r)
        total += weights[q] * 0.5 * (hi - lo) * 4.0 * np.pi * r ** 2 * frac.sum(axis=0)
    return total


def radial_distribution(points, *, r_max: float, n_bins: int, box=None) -> tuple[np.ndarray, np.ndarray]:
    """g(r) of 3D points with the translation edge correction for a finite box.

    Parameters
    ----------
    points : array_like, shape (n, 3)
        ``(x, y, z)``, any consistent unit.
    r_max : float
        Largest distance; bins are ``n_bins`` equal intervals of ``[0, r_max]``.
    n_bins : int
    box : array_like, shape (3, 2), optional
        The observed volume ``[[x0, x1], [y0, y1], [z0, z1]]``. Default: the points'
        bounding box.

    Returns
    -------
    r : ndarray, shape (n_bins,)
        Bin centres.
    g : ndarray, shape (n_bins,)
        ``g(r)``; 1 for an ideal gas.
    """
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise InputError(f"points must have shape (n, 3) as (x, y, z), got {pts.shape}")
    if len(pts) < 2:
        raise InputError(f"g(r) needs at least 2 points, got {len(pts)}")
    if not np.all(np.isfinite(pts)):
        raise InputError("points hold NaN or infinite coordinates")
    if not (float(r_max) > 0 and int(n_bins) >= 1):
        raise InputError(f"r_max must be > 0 and n_bins >= 1, got r_max={r_max}, n_bins={n_bins}")
    bounds = _bounds(box, pts)
    lengths = bounds[:, 1] - bounds[:, 0]
    if np.any(lengths <= 0):
        raise InputError(f"the box has a zero or negative side {lengths.tolist()}; are the points all on one plane?")
    edges = np.linspace(0.0, float(r_max), int(n_bins) + 1)
    pairs = cKDTree(pts).query_pairs(float(r_max), output_type="ndarray")
    dist = np.sqrt(np.sum((pts[pairs[:, 0]] - pts[pairs[:, 1]]) ** 2, axis=1))
    counts = 2.0 * np.histogram(dist, bins=edges)[0]
    rho = (len(pts) - 1) / float(np.prod(lengths))
    reach = rho * shell_volume_inside(pts, edges, bounds)
    g = np.divide(counts, reach, out=np.zeros_like(counts), where=reach > 0)
    return 0.5 * (edges[1:] + edges[:-1]), g


def first_peak(r, g, *, min_r: float = 0.0) -> float:
    """Position of the largest value of ``g`` at ``r >= min_r`` (the first, contact peak of a liquid)."""
    r = np.asarray(r, dtype=float)
    g = np.asarray(g, dtype=float)
    sel = r >= min_r
    return float(r[sel][np.argmax(g[sel])])
