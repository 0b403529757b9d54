"""Matching particles across four views along the detector-defined directions.

A particle at ``(X, Y, Z)`` appears in view ``k`` at ``(X, Y) + Z D_k`` with
``D_k = sin(beta_k) (cos psi_k, sin psi_k)`` (:mod:`.geometry`; one ``beta`` for all views
or one per view). Seen from a
detection ``a`` in the reference view ``r``, its partner in view ``k`` lies on
the segment ``a + Z (D_k - D_r)``, ``Z`` in the depth range. Every detection on
one of those segments proposes a depth; a depth is kept only when every other
view has a detection within ``tolerance`` pixels of where that depth puts it.
The kept hypotheses are refined by least squares over all views and assigned
one-to-one, best residual first (no detection is used twice). Particles that
only three views confirm (one view missed them, or they left its field) are
found in a second pass from every view in turn and reported with
``n_views == 3`` rather than dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from ..checks import InputError
from .geometry import beta_record, check_view_geometry, solve_positions, view_shifts

__all__ = ["ParticleReconstruction", "match_particles"]


@dataclass
class ParticleReconstruction:
    """3D particles from several views.

    Attributes
    ----------
    points : ndarray, shape (n, 3)
        ``(x, y, z)`` in pixels (``z = 0`` where the views coincide), four-view particles first.
    radii : ndarray, shape (n,)
        Mean detected radius over the views that saw the particle, pixels.
    residuals : ndarray, shape (n,)
        RMS distance between detections and the re-projected point, pixels.
    n_views : ndarray, shape (n,)
        Number of views that saw each particle (4, or 3 for the ones reported separately).
    detection_index : ndarray, shape (n, n_views_total)
        Index of the detection used in each view, -1 where none.
    detected_per_view : list of int
    params : dict
    std : ndarray, shape (n, 3), optional
        Standard deviations of ``x, y, z`` from the fit to the views (pixels); NaN where
        the particles were not fitted (no fit: ``None``).
    """

    points: np.ndarray
    radii: np.ndarray
    residuals: np.ndarray
    n_views: np.ndarray
    detection_index: np.ndarray
    detected_per_view: list
    params: dict = field(default_factory=dict)
    std: np.ndarray | None = None

    @property
    def all_views(self) -> np.ndarray:
        """Boolean mask of the particles every view confirmed."""
        return self.n_views == self.detection_index.shape[1]

    @property
    def three_view(self) -> np.ndarray:
        """``(m, 3)`` points that only ``n_views_total - 1`` views confirmed."""
        return self.points[~self.all_views]

    @property
    def counts(self) -> dict:
        """Detected per view, matched in all views, matched in all but one."""
        return {"detected_per_view": [int(c) for c in self.detected_per_view],
                "matched_all_views": int(self.all_views.sum()),
                "matched_three_views": int((~self.all_views).sum())}


def _hypotheses(dets, ref, others, trees, free, *, shift, z_lo, z_hi, tol, need):
    """Candidate matches ``(residual, ref index, tuple of indices per view)`` seen from view ``ref``."""
    n_total = len(dets)
    out = []
    ref_idx = np.flatnonzero(free[ref])
    if len(ref_idx) == 0:
        return out
    a_all = dets[ref][ref_idx, :2]
    z_mid, z_half = (z_lo + z_hi) / 2, (z_hi - z_lo) / 2
    near = {}
    for k in others:
        w = shift[k] - shift[ref]
        near[k] = trees[k].query_ball_point(a_all + z_mid * w, r=tol * 2 + np.linalg.norm(w) * z_half)
    for row, i in enumerate(ref_idx):
        a = a_all[row]
        cand = {}
        zs = []
        for k in others:
            idx = np.asarray([j for j in near[k][row] if free[k][j]], dtype=int)
            if len(idx) == 0:
                cand[k] = (idx, np.zeros((0, 2)))
                continue
            b = dets[k][idx, :2]
            w = shift[k] - shift[ref]
            z = (b - a) @ w / (w @ w)
            perp = np.linalg.norm(b - a - z[:, None] * w, axis=1)
            ok = (perp <= 2 * tol) & (z >= z_lo - tol) & (z <= z_hi + tol)
            cand[k] = (idx[ok], b[ok])
            zs.append(z[ok])
        if not zs:
            continue
        seen = set()
        for z in np.concatenate(zs):
            picks = [-1] * n_total
            picks[ref] = int(i)
            for k in others:
                idx, b = cand[k]
                if len(idx) == 0:
                    continue
                d = np.linalg.norm(b - (a + z * (shift[k] - shift[ref])), axis=1)
                j = int(np.argmin(d))
                if d[j] <= 2 * tol:
                    picks[k] = int(idx[j])
            if sum(p >= 0 for p in picks) < need:
                continue
            key = tuple(picks)
            if key in seen:
                continue
            seen.add(key)
            out.append(key)
    return out


def _score(dets, keys, *, beta, psi, tol, need):
    """Least-squares points of candidate tuples; keep those whose every view is within ``tol``."""
    if not keys:
        return np.zeros((0, len(dets)), int), np.zeros((0, 3)), np.zeros(0)
    keys = np.asarray(keys, dtype=int)
    xy = np.full((len(dets), len(keys), 2), np.nan)
    for k in range(len(dets)):
        used = keys[:, k] >= 0
        xy[k, used] = dets[k][keys[used, k], :2]
    points, resid = solve_positions(xy, beta_deg=beta, azimuths_deg=psi)
    shift = view_shifts(beta, psi)
    pred = points[None, :, :2] + points[None, :, 2:3] * shift[:, None, :]
    dist = np.linalg.norm(pred - xy, axis=2)  # NaN where unseen
    worst = np.nanmax(dist, axis=0)
    ok = (worst <= tol) & ((keys >= 0).sum(axis=1) >= need)
    return keys[ok], points[ok], resid[ok]


def _assign(keys, points, resid, free):
    """Greedy one-to-one assignment, best residual first."""
    chosen = []
    for m in np.argsort(resid, kind="stable"):
        views = np.flatnonzero(keys[m] >= 0)
        if all(free[k][keys[m, k]] for k in views):
            for k in views:
                free[k][keys[m, k]] = False
            chosen.append(m)
    return np.asarray(chosen, dtype=int)


def match_particles(detections, *, beta_deg, azimuths_deg=(0, 90, 180, 270), tolerance: float = 1.5,
                    depth_range=None, max_shift_px: float = 8.0, reference: int = 0,
                    three_view: bool = True) -> ParticleReconstruction:
    """Match detections of the views into 3D particles.

    Parameters
    ----------
    detections : sequence of ndarray, each shape (n_k, >=2)
        ``[x, y, (radius)]`` per view, in the order of ``azimuths_deg``.
    beta_deg : float or sequence of float
        View angle ``beta``: one for all views, or one per view (in the order of the views).
    azimuths_deg : sequence of float
        ``psi_k`` per view.
    tolerance : float
        Largest distance (pixels) between a detection and the re-projected 3D point.
    depth_range : (z_min, z_max), optional
        Heights to search, pixels; default ``+-max_shift_px / max_k |sin(beta_k)|``.
    max_shift_px : float
        Largest shift of a particle between a view and its position at ``z = 0``, in the
        view that shifts most (used when ``depth_range`` is not given).
    reference : int
        View whose detections seed the search of the all-view pass.
    three_view : bool
        Also report particles confirmed by all views but one.

    Returns
    -------
    ParticleReconstruction
    """
    beta, psi = check_view_geometry(beta_deg, azimuths_deg, n_views=len(detections))
    dets = []
    for k, d in enumerate(detections):
        arr = np.asarray(d, dtype=float)
        if arr.size == 0:
            arr = np.zeros((0, 3))
        if arr.ndim != 2 or arr.shape[1] < 2:
            raise InputError(f"detections of view {k} must have shape (n, 2) or (n, 3), got {arr.shape}")
        if arr.shape[1] == 2:
            arr = np.column_stack([arr, np.full(len(arr), np.nan)])
        dets.append(arr[:, :3])
    if not float(tolerance) > 0:
        raise InputError(f"tolerance must be a positive number of pixels, got {tolerance}")
    s = np.max(np.sin(np.deg2rad(np.abs(beta))))
    if depth_range is None:
        z_lo, z_hi = -max_shift_px / s, max_shift_px / s
    else:
        z_lo, z_hi = sorted(float(v) for v in depth_range)
    n_total = len(dets)
    if not 0 <= reference < n_total:
        raise InputError(f"reference view {reference} does not exist; there are {n_total} views")
    shift = view_shifts(beta, psi)
    trees = [cKDTree(d[:, :2]) if len(d) else cKDTree(np.zeros((0, 2))) for d in dets]
    free = [np.ones(len(d), dtype=bool) for d in dets]
    kw = dict(shift=shift, z_lo=z_lo, z_hi=z_hi, tol=float(tolerance))
    others = [k for k in range(n_total) if k != reference]
    keys = _hypotheses(dets, reference, others, trees, free, need=n_total, **kw)
    keys, points, resid = _score(dets, keys, beta=beta, psi=psi, tol=float(tolerance), need=n_total)
    chosen = _assign(keys, points, resid, free)
    all_keys, all_points, all_resid = [keys[chosen]], [points[chosen]], [resid[chosen]]
    if three_view and n_total >= 4:
        cand = []
        for ref in range(n_total):
            cand += _hypotheses(dets, ref, [k for k in range(n_total) if k != ref], trees, free,
                                need=n_total - 1, **kw)
        cand = list(dict.fromkeys(cand))
        keys3, points3, resid3 = _score(dets, cand, beta=beta, psi=psi, tol=float(tolerance), need=n_total - 1)
        chosen3 = _assign(keys3, points3, resid3, free)
        all_keys.append(keys3[chosen3])
        all_points.append(points3[chosen3])
        all_resid.append(resid3[chosen3])
    keys = np.concatenate(all_keys).reshape(-1, n_total)
    points = np.concatenate(all_points).reshape(-1, 3)
    resid = np.concatenate(all_resid)
    radii = np.full((n_total, len(keys)), np.nan)
    for k in range(n_total):
        used = keys[:, k] >= 0
        radii[k, used] = dets[k][keys[used, k], 2]
    seen = np.isfinite(radii)
    radius = np.where(seen, radii, 0.0).sum(axis=0) / np.maximum(seen.sum(axis=0), 1)
    radius[seen.sum(axis=0) == 0] = np.nan
    params = {"beta_deg": beta_record(beta), "azimuths_deg": [float(p) for p in psi], "tolerance_px": float(tolerance),
              "depth_range_px": [float(z_lo), float(z_hi)], "reference_view": int(reference),
              "three_view": bool(three_view)}
    return ParticleReconstruction(points=points, radii=radius, residuals=resid,
                                  n_views=(keys >= 0).sum(axis=1), detection_index=keys,
                                  detected_per_view=[len(d) for d in dets], params=params)
