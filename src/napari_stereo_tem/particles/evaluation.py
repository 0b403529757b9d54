"""Scoring a particle reconstruction against ground truth (recall, precision, 3D error)."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from ..checks import InputError
from .geometry import project_particles

__all__ = ["score_particles"]


def _pair(a, b, tol):
    """One-to-one pairs of rows of ``a`` and ``b`` closer than ``tol``, nearest first."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((0, 2), int), np.zeros(0)
    dist = cKDTree(a).sparse_distance_matrix(cKDTree(b), tol, output_type="ndarray")
    order = np.argsort(dist["v"], kind="stable")
    used_a, used_b, out = set(), set(), []
    for m in order:
        i, j = int(dist["i"][m]), int(dist["j"][m])
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            out.append((i, j, dist["v"][m]))
    out = np.asarray(out).reshape(-1, 3)
    return out[:, :2].astype(int), out[:, 2]


def score_particles(points, truth, *, tolerance: float = 3.0, shape=None, beta_deg=None,
                    azimuths_deg=(0, 90, 180, 270), margin: float = 0.0) -> dict:
    """Recall, precision and 3D RMSE of reconstructed points, after a global depth offset.

    The depth origin of a reconstruction is where the views coincide, which a real
    instrument does not fix; so the median height difference of the pairs found in
    ``(x, y)`` is removed before pairing in 3D.

    Parameters
    ----------
    points, truth : array_like, shape (n, 3) and (m, 3)
        ``(x, y, z)`` in pixels.
    tolerance : float
        Largest 3D distance of a true pair, pixels.
    shape : (rows, cols), optional
        With ``beta_deg``: only particles whose every view lies at least ``margin``
        pixels inside the image count (both for recall and for precision).
    margin : float

    Returns
    -------
    dict
        ``recall``, ``precision``, ``rmse_3d``, ``rmse_xy``, ``rmse_z``, ``depth_offset``,
        ``n_true``, ``n_found``, ``n_matched``.
    """
    pts = np.asarray(points, dtype=float).reshape(-1, 3)
    tru = np.asarray(truth, dtype=float).reshape(-1, 3)
    if len(tru) == 0:
        raise InputError("the ground truth holds no particles")
    pairs_xy, _ = _pair(pts[:, :2], tru[:, :2], tolerance)
    offset = float(np.median(pts[pairs_xy[:, 0], 2] - tru[pairs_xy[:, 1], 2])) if len(pairs_xy) else 0.0
    shifted = pts - np.array([0.0, 0.0, offset])
    pairs, _ = _pair(shifted, tru, tolerance)

    def counted(p):
        if shape is None or beta_deg is None:
            return np.ones(len(p), dtype=bool)
        xy = project_particles(p, beta_deg=beta_deg, azimuths_deg=azimuths_deg)
        rows, cols = shape
        inside = ((xy[..., 0] >= margin) & (xy[..., 0] <= cols - 1 - margin)
                  & (xy[..., 1] >= margin) & (xy[..., 1] <= rows - 1 - margin))
        return inside.all(axis=0)

    true_in, found_in = counted(tru), counted(pts)
    matched_true = np.zeros(len(tru), bool)
    matched_found = np.zeros(len(pts), bool)
    matched_true[pairs[:, 1]] = True
    matched_found[pairs[:, 0]] = True
    diff = shifted[pairs[:, 0]] - tru[pairs[:, 1]]
    n_true, n_found = int(true_in.sum()), int(found_in.sum())
    return {
        "recall": float((matched_true & true_in).sum() / max(n_true, 1)),
        "precision": float((matched_found & found_in).sum() / max(n_found, 1)),
        "rmse_3d": float(np.sqrt(np.mean(np.sum(diff ** 2, axis=1)))) if len(diff) else float("nan"),
        "rmse_xy": float(np.sqrt(np.mean(np.sum(diff[:, :2] ** 2, axis=1)))) if len(diff) else float("nan"),
        "rmse_z": float(np.sqrt(np.mean(diff[:, 2] ** 2))) if len(diff) else float("nan"),
        "depth_offset": offset,
        "n_true": n_true,
        "n_found": n_found,
        "n_matched": int(len(pairs)),
    }
