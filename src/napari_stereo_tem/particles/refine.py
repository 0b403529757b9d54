"""Refining touching particles by fitting all views at once.

Per-view centroids are biased when two particles overlap in projection, and
differently in every view (the neighbour sits at another height, so it shifts
by another amount). At small view angles a bias of a tenth of a pixel is
several pixels of height, so particles whose projections touch in any view are
refined together: one model of the group, fitted to every view at once,

    s_k(p) = level_k + sum_i A_i P(|p - (X_i, Y_i) - Z_i D_k|; r_i, s)

where ``P`` is the projected thickness of a sphere of radius ``r_i`` blurred by
a Gaussian of width ``s`` (the probe and the denoising), ``A_i`` the contrast
per unit thickness and ``D_k`` the view's shift per unit height
(:mod:`.geometry`). Every particle has one ``(X, Y, Z, r, A)`` for all views, so
the views constrain each other's centres. Bright-field views are fitted in
optical density ``log(I_0 / I)``, where the thicknesses of overlapping
particles add.

Two particles that overlap in every view give one detection per view and so one
matched point. Fitted alone, such a point has about twice the contrast per unit
thickness ``A`` of the other particles (one material) or fits far worse than
they do; it is then fitted as two spheres and kept as two when that explains
the views much better and both halves look like single particles
(:func:`split_merged_iter`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, special
from scipy.optimize import least_squares
from scipy.spatial import cKDTree

from ..progress import Progress, check_cancelled, drive
from .detection import _background, estimate_noise, resolve_polarity, touching_groups
from .geometry import project_particles, view_directions

__all__ = ["blurred_sphere_profile", "fit_signal", "fit_single", "refine_touching_iter", "split_merged_iter",
           "refine_in_views", "refine_in_views_iter"]

# The blurred profile in units of the blur s: P(rho; r, s) = s * table(rho / s, r / s).
_RHO_STEP, _R_STEP = 0.1, 0.1
_RHO_MAX, _R_MAX = 40.0, 24.0
_BLUR_RANGE = (0.5, 4.0)  # pixels; with _R_MAX, radii up to 12 px are modelled at the sharpest blur
_TABLE: np.ndarray | None = None


def _profile_table() -> np.ndarray:
    """Projected sphere thickness blurred by a unit Gaussian, on a grid of (r, rho)."""
    global _TABLE
    if _TABLE is None:
        rho = np.arange(0.0, _RHO_MAX + _RHO_STEP, _RHO_STEP)
        radii = np.arange(0.0, _R_MAX + _R_STEP, _R_STEP)
        table = np.zeros((len(radii), len(rho)))
        for i, r in enumerate(radii[1:], start=1):
            # Radial convolution with the unit Gaussian: the angular integral is I0.
            q = np.linspace(0.0, r, max(64, int(r / 0.04)))
            t = 2.0 * np.sqrt(np.clip(r * r - q * q, 0.0, None))
            arg = rho[:, None] * q[None, :]
            kernel = np.exp(-0.5 * (rho[:, None] - q[None, :]) ** 2) * special.i0e(arg) * q[None, :]
            table[i] = np.trapezoid(kernel * t[None, :], q, axis=1)
        _TABLE = table
    return _TABLE


_GRADIENTS: tuple | None = None


def _profile_gradients():
    """The profile table and its derivatives along ``rho / s`` and ``r / s``."""
    global _GRADIENTS
    if _GRADIENTS is None:
        table = _profile_table()
        _GRADIENTS = (table, np.gradient(table, _RHO_STEP, axis=1), np.gradient(table, _R_STEP, axis=0))
    return _GRADIENTS


def _lookup(table, rho_u, r_u):
    """Bilinear lookup of a table at (r / s, rho / s)."""
    u = np.clip(r_u / _R_STEP, 0, table.shape[0] - 1.001)
    v = np.clip(rho_u / _RHO_STEP, 0, table.shape[1] - 1.001)
    return ndimage.map_coordinates(table, [u.ravel(), v.ravel()], order=1, mode="nearest").reshape(u.shape)


def blurred_sphere_profile(rho, radius, blur) -> np.ndarray:
    """Projected thickness of a sphere of ``radius`` at distance ``rho`` from its centre, blurred by ``blur``.

    All in pixels; ``rho`` and ``radius`` broadcast together. Blurs below
    ``radius / 24`` are taken as ``radius / 24`` (the edge of a large sphere is
    then a little softer than asked; its volume is kept).
    """
    radius = np.asarray(radius, float)
    rho = np.asarray(rho, float)
    s = np.maximum(float(blur), radius / _R_MAX)  # the table ends at radius / blur = _R_MAX
    rho_u, r_u = np.broadcast_arrays(rho / s, radius / s)
    return s * _lookup(_profile_table(), rho_u, r_u)


def fit_signal(view, *, polarity: str = "dark", radius_max: float = 10.0) -> np.ndarray:
    """The view as particle signal on a zero background, linear in projected thickness.

    Dark (bright-field) particles on a positive image: optical density
    ``log(background / I)``; otherwise the intensity minus its smooth background.
    """
    img = np.asarray(view, dtype=float)
    polarity = resolve_polarity(img, polarity)
    if polarity == "dark" and np.median(img) > 0 and np.percentile(img, 1) > 0:
        floor = 1e-3 * float(np.median(img))
        signal = -np.log(np.clip(img, floor, None))
    else:
        signal = -img if polarity == "dark" else img.copy()
    signal -= np.median(signal)
    return signal - _background(signal, radius_max)


def _patches(signals, proj, pad):
    """Pixel coordinates and values of every view around projected centres ``proj`` (k, m, 2)."""
    rows, cols = signals[0].shape
    patches = []
    for k, signal in enumerate(signals):
        x0 = int(max(0, np.floor(proj[k, :, 0].min() - pad)))
        x1 = int(min(cols, np.ceil(proj[k, :, 0].max() + pad) + 1))
        y0 = int(max(0, np.floor(proj[k, :, 1].min() - pad)))
        y1 = int(min(rows, np.ceil(proj[k, :, 1].max() + pad) + 1))
        if x1 - x0 < 3 or y1 - y0 < 3:
            return None
        gy, gx = np.mgrid[y0:y1, x0:x1]
        patches.append((gx.ravel().astype(float), gy.ravel().astype(float), signal[y0:y1, x0:x1].ravel()))
    return patches


def _fit_model(patches, shift, points, radii, amplitudes, *, blur):
    """Least-squares fit of ``m`` spheres to the patches of every view.

    Returns ``(points, radii, amplitudes, cost)`` (cost: half the sum of squared
    residuals) or None when the fit fails.
    """
    m, n_views = len(points), len(patches)
    start = np.concatenate([np.column_stack([points, radii, amplitudes]).ravel(), [np.log(blur)],
                            np.zeros(n_views)])
    peak = float(np.max(amplitudes)) * 2 * float(np.max(radii))
    scale = np.concatenate([np.tile([0.1, 0.1, 1.0, 0.1, 0.1 * float(np.mean(amplitudes))], m), [0.1],
                            np.full(n_views, 0.01 * peak)])

    table, t_rho, t_r = _profile_gradients()
    n_par = 5 * m + 1 + n_views

    def evaluate(p, with_jacobian):
        check_cancelled()  # per evaluation: a cancel does not wait for a large group's fit
        q = p[:5 * m].reshape(m, 5)
        s = float(np.exp(np.clip(p[5 * m], *np.log(_BLUR_RANGE))))
        r_u = np.abs(q[:, 3:4]) / s
        out, jacs = [], []
        for k, (gx, gy, data) in enumerate(patches):
            dx = gx[None, :] - (q[:, 0] + q[:, 2] * shift[k, 0])[:, None]
            dy = gy[None, :] - (q[:, 1] + q[:, 2] * shift[k, 1])[:, None]
            rho = np.hypot(dx, dy)
            rho_u, ru = np.broadcast_arrays(rho / s, r_u)
            prof = s * _lookup(table, rho_u, ru)
            out.append((q[:, 4:5] * prof).sum(axis=0) + p[5 * m + 1 + k] - data)
            if not with_jacobian:
                continue
            g_rho, g_r = _lookup(t_rho, rho_u, ru), _lookup(t_r, rho_u, ru)
            amp = q[:, 4:5]
            safe = np.where(rho > 1e-9, rho, 1.0)
            d_cx, d_cy = -amp * g_rho * dx / safe, -amp * g_rho * dy / safe
            jac = np.zeros((len(gx), n_par))
            jac[:, 0:5 * m:5] = d_cx.T
            jac[:, 1:5 * m:5] = d_cy.T
            jac[:, 2:5 * m:5] = (d_cx * shift[k, 0] + d_cy * shift[k, 1]).T
            jac[:, 3:5 * m:5] = (amp * g_r * np.sign(q[:, 3:4])).T
            jac[:, 4:5 * m:5] = prof.T
            jac[:, 5 * m] = (amp * (prof - rho_u * s * g_rho - ru * s * g_r)).sum(axis=0)  # d / d log s
            jac[:, 5 * m + 1 + k] = 1.0
            jacs.append(jac)
        return np.concatenate(out), (np.vstack(jacs) if with_jacobian else None)

    def residual(p):
        return evaluate(p, False)[0]

    def jacobian(p):
        return evaluate(p, True)[1]

    try:
        fit = least_squares(residual, start, jac=jacobian, x_scale=scale, method="trf", max_nfev=60)
    except (ValueError, np.linalg.LinAlgError):
        return None
    q = fit.x[:5 * m].reshape(m, 5)
    if not (np.all(np.isfinite(q)) and np.all(q[:, 4] > 0)):
        return None
    return q[:, :3], np.abs(q[:, 3]), q[:, 4], float(fit.cost)


def _fit_group(signals, points, radii, shift, *, blur, margin):
    """Fit of one touching group to every view; returns (points, radii) or None."""
    proj = points[None, :, :2] + points[None, :, 2:3] * shift[:, None, :]  # (k, m, 2)
    patches = _patches(signals, proj, float(np.max(radii)) + 3 * blur + margin)
    if patches is None:
        return None
    peak = np.mean([max(float(np.max(p[2])), 1e-6) for p in patches])
    fit = _fit_model(patches, shift, points, radii, peak / (2 * np.clip(radii, 1.0, None)), blur=blur)
    if fit is None or not np.all(np.linalg.norm(fit[0][:, :2] - points[:, :2], axis=1) < 3.0):
        return None
    return fit[0], fit[1]


def refine_touching_iter(views, points, radii, *, beta_deg: float, azimuths_deg=(0, 90, 180, 270),
                         polarity: str = "dark", radius_range=(2.0, 10.0), blur: float = 1.0, gap: float = 3.0,
                         max_group: int = 6, signals=None):
    """Refine particles whose projections touch in any view by one fit to all views (a progress generator).

    Parameters
    ----------
    views : sequence of 2D arrays
        The views, in the order of ``azimuths_deg`` (not read when ``signals`` are given).
    points : ndarray, shape (n, 3)
        ``(x, y, z)`` from matching.
    radii : ndarray, shape (n,)
    blur : float
        Starting blur (pixels) of the profile; fitted per group.
    gap : float
        Particles closer than ``r_i + r_j + gap`` pixels in any view are refined together.
    max_group : int
        Larger groups keep their matched positions.
    signals : list of 2D arrays, optional
        Precomputed :func:`fit_signal` of the views.

    Returns
    -------
    points : ndarray, shape (n, 3)
    radii : ndarray, shape (n,)
    refined : ndarray of bool, shape (n,)
        Which particles the joint fit moved.
    """
    points = np.asarray(points, dtype=float).reshape(-1, 3).copy()
    radii = np.asarray(radii, dtype=float).copy()
    refined = np.zeros(len(points), dtype=bool)
    if len(points) < 2:
        return points, radii, refined
    r_lo, r_hi = (float(v) for v in radius_range)
    radii_fit = np.clip(np.where(np.isfinite(radii), radii, r_lo), r_lo, r_hi)
    if signals is None:
        signals = [fit_signal(v, polarity=polarity, radius_max=r_hi) for v in views]
    shift = np.sin(np.deg2rad(beta_deg)) * view_directions(azimuths_deg)
    xy = project_particles(points, beta_deg=beta_deg, azimuths_deg=azimuths_deg)
    groups = touching_groups(xy, radii_fit, gap=gap, max_group=max_group)
    for g, idx in enumerate(groups):
        if g % 10 == 0:
            yield Progress(g, len(groups), "fit touching particles")
        fitted = _fit_group(signals, points[idx], radii_fit[idx], shift, blur=blur, margin=3.0)
        if fitted is None:
            continue
        points[idx], radii[idx] = fitted
        refined[idx] = True
    return points, radii, refined



def fit_single(signals, points, radii, shift, *, blur: float = 1.0, half: int | None = None,
               iterations: int = 12, chunk: int = 256) -> dict:
    """Fit every particle alone to all views at once (batched Gauss-Newton).

    Parameters per particle: ``X, Y, Z, r, A, s`` and one background level per view.
    Pixels nearer to another particle's centre than to this one's, or within that
    particle's radius plus two blurs, are left out. Particles are fitted ``chunk``
    at a time (memory grows with the chunk, not with the number of particles).

    Returns
    -------
    dict with ``points (n, 3)``, ``radii``, ``amplitude``, ``blur``, ``chi2`` (sum of squared
    residuals), ``n_pixels`` and ``ok`` (the fit converged to a sensible particle).
    """
    points = np.asarray(points, float).reshape(-1, 3)
    radii = np.asarray(radii, float)
    if half is None:
        half = int(np.ceil(np.nanmax(radii) + 3 * blur + 2))
    parts = []
    for a in range(0, len(points), chunk):
        check_cancelled()  # per block: a cancel does not wait for every particle
        parts.append(_fit_single_chunk(signals, points, radii, shift, np.arange(a, min(a + chunk, len(points))),
                                       blur=blur, half=half, iterations=iterations))
    if not parts:
        return {"points": np.zeros((0, 3)), "radii": np.zeros(0), "amplitude": np.zeros(0), "blur": np.zeros(0),
                "chi2": np.zeros(0), "n_pixels": np.zeros(0), "ok": np.zeros(0, dtype=bool)}
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def _fit_single_chunk(signals, all_points, all_radii, shift, subset, *, blur, half, iterations):
    """:func:`fit_single` of the particles ``subset``; the others only mask their pixels."""
    table, t_rho, t_r = _profile_gradients()
    points, radii = all_points[subset], all_radii[subset]
    n, n_views = len(points), len(signals)
    rows, cols = signals[0].shape
    offs = np.arange(-half, half + 1)
    proj_all = all_points[None, :, :2] + all_points[None, :, 2:3] * shift[:, None, :]  # (k, n_all, 2)
    proj = proj_all[:, subset]
    ix = np.round(proj[..., 0]).astype(int)
    iy = np.round(proj[..., 1]).astype(int)
    gx = (ix[..., None, None] + offs[None, None, None, :]).astype(float) + np.zeros((1, 1, len(offs), 1))
    gy = (iy[..., None, None] + offs[None, None, :, None]).astype(float) + np.zeros((1, 1, 1, len(offs)))
    inside = (gx >= 0) & (gx <= cols - 1) & (gy >= 0) & (gy <= rows - 1)
    data = np.stack([signals[k][np.clip(gy[k].astype(int), 0, rows - 1), np.clip(gx[k].astype(int), 0, cols - 1)]
                     for k in range(n_views)])
    weight = inside.astype(float)
    # Leave out pixels that belong to a neighbour.
    for k in range(n_views):
        near = cKDTree(proj_all[k]).query_ball_point(proj[k], r=2 * half)
        i = np.repeat(np.arange(n), [len(js) for js in near])
        j = np.fromiter((jj for js in near for jj in js), dtype=int, count=len(i))
        other = j != subset[i]
        i, j = i[other], j[other]
        if len(i) == 0:
            continue
        d_other = np.hypot(gx[k, i] - proj_all[k, j, 0, None, None], gy[k, i] - proj_all[k, j, 1, None, None])
        d_self = np.hypot(gx[k, i] - proj[k, i, 0, None, None], gy[k, i] - proj[k, i, 1, None, None])
        theirs = (d_other < all_radii[j, None, None] + 2 * blur + 1) | (d_other < d_self)
        blocked = np.zeros((n, *theirs.shape[1:]), dtype=bool)
        np.logical_or.at(blocked, i, theirs)
        weight[k][blocked] = 0.0
    p = np.column_stack([points, np.clip(radii, 1.0, None), np.zeros(n), np.full(n, float(blur)),
                         np.zeros((n, n_views))])
    p[:, 5] = np.maximum(p[:, 5], p[:, 3] / _R_MAX)
    peak = np.array([np.max(np.where(weight[:, i] > 0, data[:, i], -np.inf)) for i in range(n)])
    p[:, 4] = np.clip(peak, 1e-6, None) / (2 * p[:, 3])
    n_par = 6 + n_views
    lam = np.full(n, 1e-3)

    def evaluate(p):
        cx = p[None, :, 0] + p[None, :, 2] * shift[:, 0:1]  # (k, n)
        cy = p[None, :, 1] + p[None, :, 2] * shift[:, 1:2]
        dx = gx - cx[..., None, None]
        dy = gy - cy[..., None, None]
        rho = np.hypot(dx, dy)
        s = p[:, 5][None, :, None, None]
        ru = np.broadcast_to((p[:, 3] / p[:, 5])[None, :, None, None], rho.shape)
        prof = s * _lookup(table, rho / s, ru)
        model = p[None, :, 4, None, None] * prof + p[:, 6:].T[..., None, None]
        return model - data, dx, dy, rho, s, ru, prof

    res, dx, dy, rho, s, ru, prof = evaluate(p)
    cost = np.sum(weight * res ** 2, axis=(0, 2, 3))
    for _ in range(iterations):
        check_cancelled()
        g_rho = _lookup(t_rho, rho / s, ru)
        g_r = _lookup(t_r, rho / s, ru)
        amp = p[None, :, 4, None, None]
        safe = np.where(rho > 1e-9, rho, 1.0)
        d_cx = -amp * g_rho * dx / safe
        d_cy = -amp * g_rho * dy / safe
        jac = np.zeros((n_views, n, *rho.shape[2:], n_par))
        jac[..., 0] = d_cx
        jac[..., 1] = d_cy
        jac[..., 2] = d_cx * shift[:, 0, None, None, None] + d_cy * shift[:, 1, None, None, None]
        jac[..., 3] = amp * g_r
        jac[..., 4] = prof
        jac[..., 5] = amp * (prof / s - (rho / s) * g_rho - ru * g_r)
        for k in range(n_views):
            jac[k, ..., 6 + k] = 1.0
        jac_n = np.moveaxis(jac, 1, 0).reshape(n, -1, n_par)
        jw_t = (jac_n * np.moveaxis(weight, 1, 0).reshape(n, -1, 1)).transpose(0, 2, 1)
        jtj = jw_t @ jac_n
        jtr = (jw_t @ np.moveaxis(res, 1, 0).reshape(n, -1, 1))[..., 0]
        diag = np.einsum("npp->np", jtj)
        step = np.linalg.solve(jtj + lam[:, None, None] * np.eye(n_par) * (diag[:, None, :] + 1e-12),
                               -jtr[..., None])[..., 0]
        trial = p + step
        trial[:, 3] = np.clip(trial[:, 3], 0.5, None)
        trial[:, 5] = np.maximum(np.clip(trial[:, 5], *_BLUR_RANGE), trial[:, 3] / _R_MAX)
        t_eval = evaluate(trial)
        t_cost = np.sum(weight * t_eval[0] ** 2, axis=(0, 2, 3))
        better = t_cost < cost
        p[better] = trial[better]
        cost = np.where(better, t_cost, cost)
        lam = np.where(better, lam / 3, lam * 4)
        keep = better[None, :, None, None]
        res, dx, dy, rho, s, ru, prof = (np.where(keep, new, old) for new, old in
                                         zip(t_eval, (res, dx, dy, rho, s, ru, prof)))
    moved = np.linalg.norm(p[:, :2] - points[:, :2], axis=1)
    ok = np.all(np.isfinite(p), axis=1) & (p[:, 4] > 0) & (moved < half)
    return {"points": p[:, :3], "radii": p[:, 3], "amplitude": p[:, 4], "blur": p[:, 5], "chi2": cost,
            "n_pixels": weight.sum(axis=(0, 2, 3)), "ok": ok}


def split_merged_iter(signals, single, shift, *, beta_deg: float, radius_range=(2.0, 10.0),
                      amplitude_ratio: float = 1.35, misfit_ratio: float = 1.4, min_gain: float = 100.0):
    """Find particles that are two particles merged in every view, and fit them as two (a progress generator).

    Two particles that overlap in every projection give one detection per view
    and one matched point. Fitted alone (:func:`fit_single`), such a point has
    about twice the contrast per unit thickness of the other particles (the same
    material) or fits much worse than they do. Those candidates are fitted as two
    spheres from several starts; the pair is kept when it explains the views
    better by ``min_gain`` noise variances, both halves have the contrast of a
    single particle and they do not overlap in 3D.

    Parameters
    ----------
    signals : list of 2D arrays
        :func:`fit_signal` of every view.
    single : dict
        The result of :func:`fit_single` for all points.

    Returns
    -------
    list of (index, points (2, 3), radii (2,))
        The particles to replace by two.
    """
    ok = single["ok"]
    if ok.sum() < 5:
        return []
    noise2 = float(np.mean([estimate_noise(sig) ** 2 for sig in signals]))
    misfit = single["chi2"] / np.maximum(single["n_pixels"], 1.0) / max(noise2, 1e-30)
    amp_ref = float(np.median(single["amplitude"][ok]))
    candidates = np.flatnonzero(ok & ((single["amplitude"] > amplitude_ratio * amp_ref)
                                      | (misfit > misfit_ratio * np.median(misfit[ok]))))
    step_z = 1.0 / max(np.sin(np.deg2rad(abs(beta_deg))), 1e-6)  # one pixel of shift between views
    r_lo = float(radius_range[0])
    splits = []
    for c, i in enumerate(candidates):
        yield Progress(c, len(candidates), "split merged particles")
        point, radius, blur = single["points"][i], float(single["radii"][i]), float(single["blur"][i])
        proj = point[None, None, :2] + point[None, None, 2:3] * shift[:, None, :]
        patches = _patches(signals, proj, radius + 3 * blur + 3)
        if patches is None:
            continue
        one = _fit_model(patches, shift, point[None], np.array([radius]), np.array([single["amplitude"][i]]),
                         blur=blur)
        if one is None:
            continue
        best = None
        for angle in np.deg2rad([0.0, 45.0, 90.0, 135.0]):
            for dz in (step_z, -step_z):
                half = np.array([0.75 * np.cos(angle), 0.75 * np.sin(angle), dz / 2])
                two = _fit_model(patches, shift, np.stack([point + half, point - half]), np.full(2, 0.8 * radius),
                                 np.full(2, amp_ref), blur=blur)
                if two is not None and (best is None or two[3] < best[3]):
                    best = two
        if best is None:
            continue
        points2, radii2, amps2, cost2 = best
        gain = 2 * (one[3] - cost2) / max(noise2, 1e-30)
        plausible = (np.all(np.abs(amps2 / amp_ref - 1) < 0.4) and np.all(radii2 >= 0.8 * r_lo)
                     and np.linalg.norm(points2[0] - points2[1]) >= 0.6 * radii2.sum()
                     and np.all(np.linalg.norm(points2[:, :2] - point[:2], axis=1) < radius + 2))
        if gain >= min_gain and plausible:
            splits.append((int(i), points2, radii2))
    return splits


def refine_in_views(views, reconstruction, **options):
    """Run :func:`refine_in_views_iter` to the end and return the new reconstruction."""
    return drive(refine_in_views_iter(views, reconstruction, **options))


def refine_in_views_iter(views, reconstruction, *, polarity: str = "dark", radius_range=(2.0, 10.0),
                         split: bool = True, signals=None):
    """Refine a :class:`~.matching.ParticleReconstruction` against the views themselves (a progress generator).

    Touching particles are fitted together (:func:`refine_touching_iter`); with
    ``split``, points that are two particles merged in every view become two
    (:func:`split_merged_iter`). The new particles of a split keep the number of views
    of the point they came from, have no detection of their own
    (``detection_index`` -1) and no detection residual (NaN).

    Returns
    -------
    ParticleReconstruction
        A new reconstruction; ``params["refinement"]`` counts what changed.
    """
    from dataclasses import replace

    rec = reconstruction
    beta, psi = rec.params["beta_deg"], rec.params["azimuths_deg"]
    r_lo, r_hi = (float(v) for v in radius_range)
    if signals is None:
        signals = [fit_signal(v, polarity=polarity, radius_max=r_hi) for v in views]
    points, radii, refined = yield from refine_touching_iter(None, rec.points, rec.radii, beta_deg=beta, azimuths_deg=psi,
                                             radius_range=radius_range, signals=signals)
    splits = []
    if split and len(points) >= 5:
        shift = np.sin(np.deg2rad(beta)) * view_directions(psi)
        fit_radii = np.clip(np.where(np.isfinite(radii), radii, r_lo), r_lo, r_hi)
        yield Progress(0, 1, "fit every particle alone")
        single = fit_single(signals, points, fit_radii, shift)
        splits = yield from split_merged_iter(signals, single, shift, beta_deg=beta, radius_range=radius_range)
    keys, n_views, resid = rec.detection_index.copy(), rec.n_views.copy(), rec.residuals.copy()
    extra_points, extra_radii, extra_views = [], [], []
    for i, pair, pair_radii in splits:
        others = np.delete(points, i, axis=0)
        other_r = np.delete(np.nan_to_num(radii, nan=r_lo), i)
        kept = []
        for point, radius in zip(pair, pair_radii):
            d = np.linalg.norm(others - point, axis=1) if len(others) else np.zeros(0)
            if not np.any(d < 0.6 * (other_r + radius)):  # not a particle already found
                kept.append((point, radius))
        if not kept:
            continue
        points[i], radii[i] = kept[0]
        keys[i] = -1
        resid[i] = np.nan
        refined[i] = True
        for point, radius in kept[1:]:
            extra_points.append(point)
            extra_radii.append(radius)
            extra_views.append(n_views[i])
    n_split = len(extra_points)
    if n_split:
        points = np.vstack([points, extra_points])
        radii = np.concatenate([radii, extra_radii])
        n_views = np.concatenate([n_views, extra_views])
        keys = np.vstack([keys, np.full((n_split, keys.shape[1]), -1)])
        resid = np.concatenate([resid, np.full(n_split, np.nan)])
        refined = np.concatenate([refined, np.ones(n_split, dtype=bool)])
    order = np.argsort(-n_views, kind="stable")  # particles every view confirmed first
    params = dict(rec.params)
    params["refinement"] = {"fitted_in_views": int(refined.sum()), "split_in_two": n_split}
    return replace(rec, points=points[order], radii=radii[order], residuals=resid[order], n_views=n_views[order],
                   detection_index=keys[order], params=params)
