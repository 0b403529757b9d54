"""One least-squares fit of many particles to every view at once, with its uncertainty.

Every particle ``i`` has one ``(X_i, Y_i, Z_i, r_i, A_i)`` for all views; view
``k`` is modelled as

    s_k(p) = level_{g,k} + sum_i A_i P(|p - (X_i, Y_i) - Z_i D_k|; r_i, b_i)

where ``P`` is the projected thickness of a sphere of radius ``r`` blurred by a
Gaussian of width ``b`` (the probe and the pixel), ``D_k`` the view's shift per
unit height (:mod:`.geometry`) and ``level_{g,k}`` one background level per
group ``g`` of particles whose pixels overlap. Each particle sees a square patch
around its projection in every view; particles whose patches share pixels form a
group and are fitted together (their pixels are summed), groups are independent.

All groups are solved at once: one sparse Levenberg-Marquardt system per
iteration, with a damping, an acceptance test and a convergence test per group,
so a hard group does not hold back the easy ones and nothing loops in Python per
particle. Residuals are weighted by the noise of each view, so the inverse of
the normal matrix at the solution is the covariance of the parameters (scaled
up by the group's reduced chi-square when the model does not explain the
data to the noise); its diagonal gives the standard deviations of ``x, y, z``.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse, special
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import spsolve

from ..progress import check_cancelled

__all__ = ["blurred_sphere_profile", "fit_particles", "render_particles", "reach"]

# The blurred profile in units of the blur b: P(rho; r, b) = b * table(rho / b, r / b).
_RHO_STEP, _R_STEP = 0.1, 0.1
_RHO_MAX, _R_MAX = 40.0, 24.0
BLUR_RANGE = (0.4, 4.0)  # pixels
_TABLES: tuple | None = None


def _profile_tables() -> np.ndarray:
    """Projected sphere thickness blurred by a unit Gaussian on a grid of (r, rho), with its two derivatives.

    Shape ``(n_r, n_rho, 3)``: value, derivative along ``rho``, derivative along ``r``. Computed
    through the Hankel transform: the 2D Fourier transform of a sphere's projected thickness is
    the 3D transform of the ball at ``k_z = 0``, ``4 pi (sin kr - kr cos kr) / k^3``; the blur
    multiplies it by ``exp(-k^2 / 2)``, and the inverse transform is one matrix product.
    """
    global _TABLES
    if _TABLES is None:
        rho = np.arange(0.0, _RHO_MAX + _RHO_STEP, _RHO_STEP)
        radii = np.arange(0.0, _R_MAX + _R_STEP, _R_STEP)
        k = np.arange(0.5, 1200) * 0.01  # midpoints up to k = 12 (the Gaussian is 1e-31 there)
        kr = radii[:, None] * k[None, :]
        small = kr < 1e-2
        safe = np.where(small, 1.0, kr)
        ball = np.where(small, kr ** 3 / 3.0, np.sin(safe) - safe * np.cos(safe)) * 4 * np.pi / k ** 3
        spectrum = ball * np.exp(-0.5 * k ** 2) * k * 0.01 / (2 * np.pi)
        table = spectrum @ special.j0(k[:, None] * rho[None, :])
        _TABLES = np.stack([table, np.gradient(table, _RHO_STEP, axis=1), np.gradient(table, _R_STEP, axis=0)],
                           axis=-1)
    return _TABLES


def _lookup(rho_u, r_u, columns=3):
    """Bilinear lookup of the tables at ``(r / b, rho / b)`` (flat arrays); returns ``(len, columns)``."""
    tables = _profile_tables()
    u = np.clip(r_u / _R_STEP, 0, tables.shape[0] - 1.001)
    v = np.clip(rho_u / _RHO_STEP, 0, tables.shape[1] - 1.001)
    u0, v0 = u.astype(np.int64), v.astype(np.int64)
    fu, fv = (u - u0)[:, None], (v - v0)[:, None]
    flat = tables.reshape(-1, 3)[:, :columns]
    i00 = u0 * tables.shape[1] + v0
    i10 = i00 + tables.shape[1]
    return ((flat[i00] * (1 - fv) + flat[i00 + 1] * fv) * (1 - fu)
            + (flat[i10] * (1 - fv) + flat[i10 + 1] * fv) * fu)


def blurred_sphere_profile(rho, radius, blur) -> np.ndarray:
    """Projected thickness of a sphere of ``radius`` at distance ``rho`` from its centre, blurred by ``blur``.

    All in pixels; ``rho`` and ``radius`` broadcast together. Blurs below
    ``radius / 24`` are taken as ``radius / 24`` (the edge of a large sphere is
    then a little softer than asked; its volume is kept).
    """
    radius = np.asarray(radius, float)
    rho = np.asarray(rho, float)
    b = np.maximum(float(blur), radius / _R_MAX)
    rho_u, r_u = np.broadcast_arrays(rho / b, radius / b)
    return b * _lookup(rho_u.ravel(), r_u.ravel(), 1)[:, 0].reshape(rho_u.shape)


class _Layout:
    """The pixels every particle sees: discs of ``reach`` around its projections, their rows, the groups."""

    def __init__(self, shape, n_views, points, shift, reach, problem):
        rows, cols = shape
        n = len(points)
        half = int(np.ceil(np.max(reach))) if n else 0
        offs = np.arange(-half, half + 1)
        proj = points[:, None, :2] + points[:, None, 2:3] * shift[None, :, :]  # (n, K, 2)
        ix = np.rint(proj[..., 0]).astype(np.int64)
        iy = np.rint(proj[..., 1]).astype(np.int64)
        gx = np.broadcast_to(ix[..., None, None] + offs[None, None, None, :], (n, n_views, len(offs), len(offs)))
        gy = np.broadcast_to(iy[..., None, None] + offs[None, None, :, None], gx.shape)
        near = (gx - proj[..., 0, None, None]) ** 2 + (gy - proj[..., 1, None, None]) ** 2 <= reach[:, None, None,
                                                                                                     None] ** 2
        valid = ((gx >= 0) & (gx < cols) & (gy >= 0) & (gy < rows) & near).ravel()
        view = np.broadcast_to(np.arange(n_views)[None, :, None, None], gx.shape).ravel()[valid]
        self.gx, self.gy = gx.ravel()[valid].astype(float), gy.ravel()[valid].astype(float)
        self.particle = np.repeat(np.arange(n), n_views * len(offs) ** 2)[valid]
        self.view = view
        key = ((problem[self.particle] * n_views + view) * rows + self.gy.astype(np.int64)) * cols \
            + self.gx.astype(np.int64)
        keys, self.row = np.unique(key, return_inverse=True)
        self.n_rows = len(keys)
        self.keys = keys
        self.key = key
        self.row_view = ((keys // (rows * cols)) % n_views).astype(np.int64)
        self.row_y = (keys // cols) % rows
        self.row_x = keys % cols
        incidence = sparse.csr_matrix((np.ones(len(self.row)), (self.particle, self.row)), shape=(n, self.n_rows))
        _, self.group = connected_components(incidence @ incidence.T, directed=False)
        self.n_groups = int(self.group.max()) + 1 if n else 0
        first = np.zeros(self.n_rows, dtype=np.int64)
        first[self.row] = self.particle
        self.row_group = self.group[first] if n else first


def _fixed_model(fixed, lay, shape, n_views, shift):
    """The model of the ``fixed`` particles at the rows of ``lay`` (zero where they do not reach)."""
    pts = np.asarray(fixed["points"], float).reshape(-1, 3)
    radii = np.asarray(fixed["radii"], float)
    blur = np.broadcast_to(np.asarray(fixed["blur"], float), (len(pts),))
    other = _Layout(shape, n_views, pts, shift, reach(radii, blur), np.asarray(fixed["problem"], np.int64))
    p = np.column_stack([pts, radii, fixed["amplitudes"]])[other.particle]
    b = blur[other.particle]
    rho = np.hypot(other.gx - (p[:, 0] + p[:, 2] * shift[other.view, 0]),
                   other.gy - (p[:, 1] + p[:, 2] * shift[other.view, 1]))
    contrib = p[:, 4] * b * _lookup(rho / b, p[:, 3] / b, 1)[:, 0]
    at = np.searchsorted(lay.keys, other.key)
    hit = at < len(lay.keys)
    hit[hit] = lay.keys[at[hit]] == other.key[hit]
    return np.bincount(at[hit], contrib[hit], minlength=lay.n_rows)


def reach(radii, blur) -> np.ndarray:
    """Distance from a particle's centre beyond which its blurred profile is negligible, pixels."""
    return np.asarray(radii, float) + 2.5 * np.asarray(blur, float) + 1.5


def fit_particles(signals, noise, points, radii, amplitudes, shift, *, blur, problem=None, iterations: int = 20,
                  radius_range=(0.5, 12.0), covariance: bool = True, fixed=None, reach_blur=None) -> dict:
    """Fit particles to every view at once (Levenberg-Marquardt, per group).

    Parameters
    ----------
    signals : sequence of ndarray, each shape (rows, cols)
        Background-free particle signal of every view (:func:`.refine.fit_signal`).
    noise : array_like, shape (n_views,)
        Noise standard deviation of each signal.
    points : ndarray, shape (n, 3)
        Starting ``(x, y, z)``, pixels.
    radii, amplitudes : ndarray, shape (n,)
        Starting radius (pixels) and contrast per unit thickness.
    shift : ndarray, shape (n_views, 2)
        Shift per unit height of every view.
    blur : float or ndarray, shape (n,)
        Blur of the profile, pixels (held fixed).
    problem : ndarray of int, shape (n,), optional
        Particles of different problems never share pixels (independent trial fits on
        the same images); default all in one.
    iterations : int
    radius_range : (min, max)
        Bounds of the fitted radius.
    covariance : bool
        Also return the standard deviations.
    fixed : dict, optional
        Particles held fixed (``points, radii, amplitudes, blur, problem``): their model is
        taken off the data of their problem before the fit.
    reach_blur : float, optional
        Blur that sets how far each particle's pixels reach (default ``blur``): trial fits
        with different blurs compare their costs on the same pixels.

    Returns
    -------
    dict
        ``points (n, 3)``, ``radii``, ``amplitudes``, ``std (n, 3)`` (of ``x, y, z``; NaN where
        undetermined), ``std_amplitude``, ``group (n,)``, ``cost`` per group (half the weighted
        sum of squares), ``chi2_red`` per group, ``support (n, n_views)`` (the share of each
        particle's modelled signal that view ``k`` holds, 1 = as modelled).
    """
    points = np.asarray(points, float).reshape(-1, 3).copy()
    n, n_views = len(points), len(signals)
    problem = np.zeros(n, np.int64) if problem is None else np.asarray(problem, np.int64)
    blur = np.broadcast_to(np.asarray(blur, float), (n,)).copy()
    shift = np.asarray(shift, float)
    r_lo, r_hi = float(radius_range[0]), float(radius_range[1])
    params = np.column_stack([points, np.clip(radii, r_lo, r_hi), np.clip(amplitudes, 1e-9, None)])
    lay = _Layout(signals[0].shape, n_views, points, shift,
                  reach(np.maximum(params[:, 3], 1.0) + 0.5, blur if reach_blur is None else reach_blur), problem)
    check_cancelled()
    winv = 1.0 / np.maximum(np.asarray(noise, float), 1e-12)
    data = np.stack([np.asarray(s, float) for s in signals])[lay.row_view, lay.row_y, lay.row_x]
    if fixed is not None and len(fixed["points"]):
        data = data - _fixed_model(fixed, lay, signals[0].shape, n_views, shift)
    w_row = winv[lay.row_view]
    n_level = lay.n_groups * n_views
    level_col = lay.row_group * n_views + lay.row_view
    levels = np.zeros(n_level)
    b_e = blur[lay.particle]
    e_group = lay.group[lay.particle]
    n_col = 5 * n + n_level

    def evaluate(par, lev, ent, jac: bool):
        """Residuals (weighted) at all rows and contributions of the entries ``ent``, and the Jacobian."""
        part, vw = lay.particle[ent], lay.view[ent]
        p = par[part]
        sx, sy = shift[vw, 0], shift[vw, 1]
        dx = lay.gx[ent] - (p[:, 0] + p[:, 2] * sx)
        dy = lay.gy[ent] - (p[:, 1] + p[:, 2] * sy)
        rho = np.hypot(dx, dy)
        b = b_e[ent]
        look = _lookup(rho / b, p[:, 3] / b, 3 if jac else 1)
        prof = b * look[:, 0]
        contrib = p[:, 4] * prof
        model = np.bincount(lay.row[ent], contrib, minlength=lay.n_rows) + lev[level_col]
        res = (model - data) * w_row
        if not jac:
            return res, contrib
        w = w_row[lay.row[ent]]
        scale = -p[:, 4] * look[:, 1] * w / np.where(rho > 1e-9, rho, 1.0)
        d_x, d_y = scale * dx, scale * dy
        vals = np.stack([d_x, d_y, d_x * sx + d_y * sy, p[:, 4] * look[:, 2] * w, prof * w], axis=1)
        rows_act = np.flatnonzero(active[lay.row_group])
        j = sparse.coo_matrix((np.concatenate([vals.ravel(), w_row[rows_act]]),
                               (np.concatenate([np.repeat(lay.row[ent], 5), rows_act]),
                                np.concatenate([(part[:, None] * 5 + np.arange(5)).ravel(),
                                                5 * n + level_col[rows_act]]))),
                              shape=(lay.n_rows, n_col)).tocsr()
        return res, contrib, j

    col_group = np.concatenate([np.repeat(lay.group, 5), np.repeat(np.arange(lay.n_groups), n_views)])
    active = np.ones(lay.n_groups, dtype=bool)
    everything = np.ones(len(lay.particle), dtype=bool)
    res, contrib = evaluate(params, levels, everything, False)
    cost = 0.5 * np.bincount(lay.row_group, res ** 2, minlength=lay.n_groups)
    lam = np.full(lay.n_groups, 1e-3)
    z_step = 1.0 / max(float(np.max(np.abs(shift))), 1e-6)  # one pixel of shift between views
    for _ in range(iterations if n else 0):
        check_cancelled()
        ent = active[e_group]
        _, _, jac = evaluate(params, levels, ent, True)
        check_cancelled()  # and between the steps of an iteration: one takes a while with many particles
        jtj = (jac.T @ jac).tocsc()
        grad = jac.T @ (res * active[lay.row_group])
        check_cancelled()
        diag = jtj.diagonal()
        # a column no pixel constrains (the height with one view) stays where it is
        damp = np.where(active[col_group], lam[col_group], 1e12) * (diag + 1e-9) + (diag <= 0)
        step = spsolve(jtj + sparse.diags(damp, format="csc"), -grad)
        if not np.all(np.isfinite(step)):
            break
        dp = step[:5 * n].reshape(n, 5)
        dp[:, :2] = np.clip(dp[:, :2], -1.0, 1.0)
        dp[:, 2] = np.clip(dp[:, 2], -z_step, z_step)
        trial = params + dp
        trial[:, 3] = np.clip(trial[:, 3], r_lo, r_hi)
        trial[:, 4] = np.maximum(trial[:, 4], 1e-3 * params[:, 4])
        trial_levels = levels + step[5 * n:]
        check_cancelled()
        t_res, t_contrib = evaluate(trial, trial_levels, ent, False)
        t_cost = 0.5 * np.bincount(lay.row_group, t_res ** 2, minlength=lay.n_groups)
        better = (t_cost < cost) & active
        cost_drop = np.where(better, cost - t_cost, 0.0)  # half a chi-square: 0.05 moves nothing that matters
        params[better[lay.group]] = trial[better[lay.group]]
        levels[np.repeat(better, n_views)] = trial_levels[np.repeat(better, n_views)]
        rows_better = better[lay.row_group]
        res[rows_better] = t_res[rows_better]
        contrib[ent] = np.where(better[e_group[ent]], t_contrib, contrib[ent])
        cost = np.where(better, t_cost, cost)
        lam = np.where(better, lam / 3.0, lam * 5.0)
        # converged: a step that gains almost nothing, or a failed one too small to matter
        # (a hundredth of a pixel in every view), rather than raising the damping until it gives up
        moved = np.zeros(lay.n_groups)
        np.maximum.at(moved, lay.group, np.max(np.abs(dp[:, :3] * [1.0, 1.0, 1.0 / z_step]), axis=1))
        active &= ~((better & (cost_drop < 5e-2)) | (~better & (moved < 1e-2)) | (lam > 1e6))
        if not active.any():
            break
    n_rows_g = np.bincount(lay.row_group, minlength=lay.n_groups)
    n_par_g = 5 * np.bincount(lay.group, minlength=lay.n_groups) + n_views
    chi2_red = 2 * cost / np.maximum(n_rows_g - n_par_g, 1)
    # Per view, the share of each particle's model that the data hold (the others' models removed).
    entry_res = res[lay.row] / w_row[lay.row]  # model - data at every entry
    slot = lay.particle * n_views + lay.view
    num = np.bincount(slot, contrib * (contrib - entry_res), minlength=n * n_views)
    den = np.bincount(slot, contrib ** 2, minlength=n * n_views)
    support = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan).reshape(n, n_views)
    out = {"points": params[:, :3].copy(), "radii": params[:, 3].copy(), "amplitudes": params[:, 4].copy(),
           "blur": blur, "group": lay.group, "cost": cost, "chi2_red": chi2_red, "support": support,
           "std": np.full((n, 3), np.nan), "std_amplitude": np.full(n, np.nan)}
    if covariance and n:
        check_cancelled()
        active[:] = True
        _, _, jac = evaluate(params, levels, everything, True)
        check_cancelled()
        out["std"], out["std_amplitude"] = _standard_deviations(jac, lay, n, n_views, np.maximum(chi2_red, 1.0))
    return out


def _standard_deviations(jac, lay, n, n_views, scale):
    """Standard deviations of ``x, y, z`` and of the amplitude from the normal matrix, group by group."""
    jtj = (jac.T @ jac).tocsr()
    std = np.full((n, 3), np.nan)
    std_amp = np.full(n, np.nan)
    members = np.argsort(lay.group, kind="stable")
    bounds = np.searchsorted(lay.group[members], np.arange(lay.n_groups + 1))
    sizes = np.diff(bounds)
    for size in np.unique(sizes):
        same = np.flatnonzero(sizes == size)
        chunk = max(1, 400 // (5 * size + n_views))
        for start in range(0, len(same), chunk):
            check_cancelled()
            groups = same[start:start + chunk]
            idx = members[bounds[groups][:, None] + np.arange(size)[None, :]]  # (m, size)
            var = _block_variances(jtj, idx, groups, n, n_views)
            if var is None:
                continue
            var = var[:, :5 * size].reshape(len(groups), size, 5) * scale[groups][:, None, None]
            std[idx] = np.sqrt(np.clip(var[..., :3], 0, None))
            std_amp[idx] = np.sqrt(np.clip(var[..., 4], 0, None))
    return std, std_amp


def _block_variances(jtj, idx, groups, n, n_views):
    """Diagonal of the inverse of each group's block of the normal matrix, shape ``(m, 5 size + n_views)``."""
    m = len(groups)
    cols = np.concatenate([(idx[:, :, None] * 5 + np.arange(5)).reshape(m, -1),
                           5 * n + groups[:, None] * n_views + np.arange(n_views)], axis=1)
    c = cols.shape[1]
    sub = jtj[cols.ravel()][:, cols.ravel()].toarray().reshape(m, c, m, c)
    blocks = sub[np.arange(m), :, np.arange(m), :]  # (m, c, c)
    blocks = blocks + np.eye(c) * 1e-12 * np.trace(blocks, axis1=1, axis2=2)[:, None, None]
    try:
        return np.diagonal(np.linalg.inv(blocks), axis1=1, axis2=2)
    except np.linalg.LinAlgError:
        return None


def render_particles(shape, points, radii, amplitudes, shift, *, blur) -> np.ndarray:
    """The modelled signal of particles in every view, shape ``(n_views, rows, cols)``."""
    rows, cols = shape
    shift = np.asarray(shift, float)
    n_views = len(shift)
    out = np.zeros(n_views * rows * cols)
    points = np.asarray(points, float).reshape(-1, 3)
    if len(points) == 0:
        return out.reshape(n_views, rows, cols)
    blur = np.broadcast_to(np.asarray(blur, float), (len(points),))
    radii = np.asarray(radii, float)
    lay = _Layout(shape, n_views, points, shift, reach(radii, blur), np.zeros(len(points), np.int64))
    check_cancelled()
    b = blur[lay.particle]
    p = np.column_stack([points, radii, amplitudes])[lay.particle]
    rho = np.hypot(lay.gx - (p[:, 0] + p[:, 2] * shift[lay.view, 0]), lay.gy - (p[:, 1] + p[:, 2] * shift[lay.view, 1]))
    contrib = p[:, 4] * b * _lookup(rho / b, p[:, 3] / b, 1)[:, 0]
    flat = (lay.view * rows + lay.gy.astype(np.int64)) * cols + lay.gx.astype(np.int64)
    out += np.bincount(flat, contrib, minlength=out.size)
    return out.reshape(n_views, rows, cols)
