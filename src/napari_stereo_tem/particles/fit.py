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

All groups are solved at once: one Levenberg-Marquardt step per iteration for
every group still moving, with a damping, an acceptance test and a convergence
test per group, so a hard group does not hold back the easy ones and nothing
loops in Python per particle. The normal equations of the groups are dense
blocks summed from the pixels directly and solved batched, blocks of one size
together; a converged group's pixels are left out of the next iterations.
Residuals are weighted by the noise of each view, so the inverse of the normal
matrix at the solution is the covariance of the parameters (scaled up by the
group's reduced chi-square when the model does not explain the data to the
noise); its diagonal gives the standard deviations of ``x, y, z``.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse, special
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ..progress import check_cancelled

__all__ = ["blurred_sphere_profile", "fit_particles", "render_particles", "render_view", "reach"]

# The blurred profile in units of the blur b: P(rho; r, b) = b * table(rho / b, r / b).
_RHO_STEP, _R_STEP = 0.1, 0.1
_RHO_MAX, _R_MAX = 40.0, 24.0
BLUR_RANGE = (0.4, 4.0)  # pixels
_TABLES: tuple | None = None
_CELLS: dict = {}


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


def _cells(columns: int) -> np.ndarray:
    """The tables as bilinear cells: ``(t00, t01 - t00, t10 - t00, t11 - t10 - t01 + t00)`` of each column.

    Shape ``(n_cells, columns * 4)``, one row per cell, so a lookup gathers one contiguous row.
    """
    cells = _CELLS.get(columns)
    if cells is None:
        t = _profile_tables()[..., :columns]
        a, b, c, d = t[:-1, :-1], t[:-1, 1:], t[1:, :-1], t[1:, 1:]
        cells = np.ascontiguousarray(np.stack([a, b - a, c - a, d - c - b + a], axis=-1).reshape(-1, columns * 4))
        _CELLS[columns] = cells
    return cells


def _lookup(rho_u, r_u, columns=3):
    """Bilinear lookup of the tables at ``(r / b, rho / b)`` (flat arrays); returns ``(len, columns)``."""
    n_r, n_rho = _profile_tables().shape[:2]
    u = np.clip(r_u / _R_STEP, 0, n_r - 1.001)
    v = np.clip(rho_u / _RHO_STEP, 0, n_rho - 1.001)
    u0, v0 = u.astype(np.int64), v.astype(np.int64)
    fu, fv = (u - u0)[:, None], (v - v0)[:, None]
    c = _cells(columns).take(u0 * (n_rho - 1) + v0, axis=0).reshape(-1, columns, 4)
    return c[..., 0] + c[..., 1] * fv + fu * (c[..., 2] + c[..., 3] * fv)


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
        self.points, self.reach = points, np.asarray(reach, float)
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
        self.slot = self.particle * n_views + view  # (particle, view) of every entry
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
    far = reach(radii, blur)
    # only those whose pixels can meet the fitted particles' in some view (the others add nothing)
    near = np.zeros(len(pts), dtype=bool)
    if len(lay.points):
        bound = float(far.max() + lay.reach.max()) + 1.0
        for k in range(n_views):
            tree = cKDTree(lay.points[:, :2] + lay.points[:, 2:3] * shift[k])
            near |= np.isfinite(tree.query(pts[:, :2] + pts[:, 2:3] * shift[k], distance_upper_bound=bound)[0])
    pts, radii, blur, far = pts[near], radii[near], blur[near], far[near]
    if not len(pts):
        return np.zeros(lay.n_rows)
    other = _Layout(shape, n_views, pts, shift, far, np.asarray(fixed["problem"], np.int64)[near])
    p = np.column_stack([pts, radii, np.asarray(fixed["amplitudes"], float)[near]])[other.particle]
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
    data = np.empty(lay.n_rows)
    for k, signal in enumerate(signals):  # each view's pixels straight from its image (no stacked copy)
        at = np.flatnonzero(lay.row_view == k)
        data[at] = np.asarray(signal)[lay.row_y[at], lay.row_x[at]]
    if fixed is not None and len(fixed["points"]):
        data = data - _fixed_model(fixed, lay, signals[0].shape, n_views, shift)
    w_row = winv[lay.row_view]
    level_col = lay.row_group * n_views + lay.row_view
    levels = np.zeros(lay.n_groups * n_views)
    e_group = lay.group[lay.particle]
    sx_e, sy_e = shift[lay.view, 0], shift[lay.view, 1]
    one_blur = n == 0 or bool(np.all(blur == blur[0]))

    def entries(active):
        """The entries and rows of the ``active`` groups."""
        ent = active[e_group]
        rows = np.flatnonzero(active[lay.row_group])
        if ent.all():
            e = _Entries(lay, None, rows, sx_e, sy_e, blur)
            e.rloc = lay.row
            return e
        e = _Entries(lay, np.flatnonzero(ent), rows, sx_e, sy_e, blur)
        where = np.zeros(lay.n_rows, np.int64)
        where[rows] = np.arange(len(rows))
        e.rloc = where[e.row]
        return e

    def evaluate(par, lev, e, jac: bool):
        """Weighted residuals at the rows ``e.rows``, the contributions of the entries, and the Jacobian.

        The Jacobian is its values at the entries, ``(5, n_entries)`` (the five parameters of
        each entry's particle); a level's column is the weight of its rows.
        """
        cx = (par[:, 0, None] + par[:, 2, None] * shift[None, :, 0]).ravel()
        cy = (par[:, 1, None] + par[:, 2, None] * shift[None, :, 1]).ravel()
        dx = e.gx - cx[e.slot]
        dy = e.gy - cy[e.slot]
        rho = np.hypot(dx, dy)
        b = blur[0] if one_blur else e.b
        amp = par[e.part, 4]
        look = _lookup(rho / b, par[e.part, 3] / b, 3 if jac else 1)
        prof = b * look[:, 0]
        contrib = amp * prof
        w = w_row[e.rows]
        model = np.bincount(e.rloc, contrib, minlength=len(e.rows)) + lev[level_col[e.rows]]
        res = (model - data[e.rows]) * w
        if not jac:
            return res, contrib
        w = w[e.rloc]
        scale = -amp * look[:, 1] * w / np.where(rho > 1e-9, rho, 1.0)
        d_x, d_y = scale * dx, scale * dy
        vals = np.stack([d_x, d_y, d_x * e.sx + d_y * e.sy, amp * look[:, 2] * w, prof * w])
        return res, contrib, vals

    active = np.ones(lay.n_groups, dtype=bool)
    every = entries(active)
    blocks = _GroupBlocks(lay, n, n_views)
    res, contrib = evaluate(params, levels, every, False)
    cost = 0.5 * np.bincount(lay.row_group, res ** 2, minlength=lay.n_groups)
    lam = np.full(lay.n_groups, 1e-3)
    z_step = 1.0 / max(float(np.max(np.abs(shift))), 1e-6)  # one pixel of shift between views
    for _ in range(iterations if n else 0):
        check_cancelled()
        e = every if active.all() else entries(active)
        _, _, vals = evaluate(params, levels, e, True)
        check_cancelled()  # and between the steps of an iteration: one takes a while with many particles
        matrix, grad = blocks.normal_equations(vals, e, w_row, level_col, res[e.rows], active)
        check_cancelled()
        dp, step_levels = blocks.solve(matrix, grad, lam, active)
        if not (np.all(np.isfinite(dp)) and np.all(np.isfinite(step_levels))):
            break
        dp[:, :2] = np.clip(dp[:, :2], -1.0, 1.0)
        dp[:, 2] = np.clip(dp[:, 2], -z_step, z_step)
        trial = params + dp
        trial[:, 3] = np.clip(trial[:, 3], r_lo, r_hi)
        trial[:, 4] = np.maximum(trial[:, 4], 1e-3 * params[:, 4])
        trial_levels = levels + step_levels
        check_cancelled()
        t_res, t_contrib = evaluate(trial, trial_levels, e, False)
        t_cost = 0.5 * np.bincount(lay.row_group[e.rows], t_res ** 2, minlength=lay.n_groups)
        better = (t_cost < cost) & active
        cost_drop = np.where(better, cost - t_cost, 0.0)  # half a chi-square: 0.05 moves nothing that matters
        params[better[lay.group]] = trial[better[lay.group]]
        levels[np.repeat(better, n_views)] = trial_levels[np.repeat(better, n_views)]
        rows_better = better[lay.row_group[e.rows]]
        res[e.rows[rows_better]] = t_res[rows_better]
        ents_better = better[e_group if e.idx is None else e_group[e.idx]]
        if e.idx is None:
            contrib[ents_better] = t_contrib[ents_better]
        else:
            contrib[e.idx[ents_better]] = t_contrib[ents_better]
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
        _, _, vals = evaluate(params, levels, every, True)
        check_cancelled()
        matrix, _ = blocks.normal_equations(vals, every, w_row, level_col, res, np.ones(lay.n_groups, dtype=bool))
        out["std"], out["std_amplitude"] = blocks.standard_deviations(matrix, np.maximum(chi2_red, 1.0))
    return out


class _Entries:
    """The entries (particle, pixel) and rows of the groups being fitted; ``idx`` None for all of them."""

    def __init__(self, lay, idx, rows, sx, sy, blur):
        take = (lambda a: a) if idx is None else (lambda a: a[idx])
        self.idx, self.rows = idx, rows
        self.part, self.row = take(lay.particle), take(lay.row)
        self.slot = take(lay.slot)
        self.gx, self.gy = take(lay.gx), take(lay.gy)
        self.sx, self.sy = take(sx), take(sy)
        self._blur = blur
        self._b = None
        self.rloc = None

    @property
    def b(self):
        if self._b is None:
            self._b = self._blur[self.part]
        return self._b


def _segment_sums(values, keys, n_keys):
    """Sums of the columns of ``values`` ``(c, n)`` that share a key (``keys`` ascending), shape ``(n_keys, c)``."""
    out = np.zeros((n_keys, len(values)))
    if len(keys):
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        out[keys[starts]] = np.add.reduceat(values, starts, axis=1).T
    return out


def _symmetric_index() -> np.ndarray:
    """Where each of the 25 entries of a symmetric 5x5 matrix sits among its 15 upper ones."""
    index = np.zeros((5, 5), np.int64)
    index[np.triu_indices(5)] = np.arange(15)
    return (index + index.T - np.diag(np.diag(index))).ravel()


_UPPER = np.triu_indices(5)
_FULL = _symmetric_index()


def _inverse_or_nan(matrix):
    try:
        return np.linalg.inv(matrix)
    except np.linalg.LinAlgError:
        return np.full(matrix.shape, np.nan)


class _GroupBlocks:
    """The normal equations of every group as one dense block, solved batched by block size.

    A group's block holds its particles' five parameters each, then its ``n_views`` levels.
    Groups are independent, so the normal matrix of the whole fit is these blocks on its
    diagonal: ``J^T J`` is summed entry by entry into them (no sparse product), and blocks of
    one size are solved, or inverted, together by ``numpy.linalg``.
    """

    def __init__(self, lay, n, n_views):
        size = np.bincount(lay.group, minlength=lay.n_groups)
        dim = 5 * size + n_views
        self.n, self.n_views, self.n_groups = n, n_views, lay.n_groups
        self.offset = np.concatenate([[0], np.cumsum(dim.astype(np.int64) ** 2)])  # each block in one buffer
        self.voff = np.concatenate([[0], np.cumsum(dim)])  # each group in one vector
        g = lay.group
        order = np.argsort(g, kind="stable")
        local = np.empty(n, np.int64)
        local[order] = np.arange(n) - np.searchsorted(g[order], g[order])
        pcol = 5 * local[:, None] + np.arange(5)  # (n, 5): the particles' columns in their block
        lcol = (5 * size)[:, None] + np.arange(n_views)  # (n_groups, K): the levels' columns
        off, d = self.offset[g][:, None, None], dim[g][:, None, None]
        self.self_at = (off + pcol[:, :, None] * d + pcol[:, None, :]).reshape(n, 25)
        lc = lcol[g][:, :, None]  # (n, K, 1)
        self.pl_at = (off + pcol[:, None, :] * d + lc).reshape(n * n_views, 5)
        self.lp_at = (off + lc * d + pcol[:, None, :]).reshape(n * n_views, 5)
        self.ll_at = (self.offset[:-1, None] + lcol * dim[:, None] + lcol).ravel()
        self.p_at = self.voff[g][:, None] + pcol
        self.l_at = (self.voff[:-1, None] + lcol).ravel()
        self.classes = [(int(k), np.flatnonzero(dim == k)) for k in np.unique(dim)]
        # entries of two particles on one pixel: the blocks between those two particles
        by_row = np.argsort(lay.row, kind="stable")
        row_sorted = lay.row[by_row]
        first, second = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        for lag in range(1, len(by_row)):
            same = np.flatnonzero(row_sorted[lag:] == row_sorted[:-lag])
            if not len(same):
                break
            first.append(by_row[same])
            second.append(by_row[same + lag])
        first, second = np.concatenate(first), np.concatenate(second)
        # one block per pair of particles (its pixels summed first): pairs sorted by it
        p1, p2 = lay.particle[first], lay.particle[second]
        swap = p1 > p2
        first, second = np.where(swap, second, first), np.where(swap, first, second)
        blocks, self.pair_block = np.unique(np.minimum(p1, p2) * n + np.maximum(p1, p2), return_inverse=True)
        order = np.argsort(self.pair_block, kind="stable")
        self.pairs, self.pair_block = (first[order], second[order]), self.pair_block[order]
        b1, b2 = blocks // max(n, 1), blocks % max(n, 1)
        off, d = self.offset[g[b1]][:, None, None], dim[g[b1]][:, None, None]
        self.block_at = (off + pcol[b1][:, :, None] * d + pcol[b2][:, None, :]).reshape(-1, 25)
        self.block_at_t = (off + pcol[b2][:, None, :] * d + pcol[b1][:, :, None]).reshape(-1, 25)
        self.n_blocks = len(blocks)
        self.pair_group = g[lay.particle[self.pairs[0]]]
        self.n_entries = len(lay.row)
        # a row of every (particle, view) slot that has one, for its view's weight
        self.slot_row = np.zeros(n * n_views, np.int64)
        self.slot_row[lay.slot] = lay.row
        self.slot_row = self.slot_row[:, None]

    def normal_equations(self, vals, e, w_row, level_col, res, active):
        """``J^T J`` of every group (one flat buffer of blocks) and ``J^T r``, from the entries ``e``.

        ``vals``: the Jacobian at the entries (:func:`fit_particles`' ``evaluate``); ``res``: the
        weighted residuals at the rows ``e.rows``.
        """
        n, k = self.n, self.n_views
        w_rows = w_row[e.rows]
        lev = level_col[e.rows]
        upper = _segment_sums(vals[_UPPER[0]] * vals[_UPPER[1]], e.part, n)
        # particle and level: a level's column is the view's weight, the same on all its rows
        cross = _segment_sums(vals, e.slot, n * k) * w_row[self.slot_row]
        at = [self.self_at.ravel(), self.pl_at.ravel(), self.lp_at.ravel(), self.ll_at]
        values = [upper[:, _FULL].ravel(), cross.ravel(), cross.ravel(),
                  np.bincount(lev, w_rows ** 2, minlength=self.n_groups * k)]
        use = active[self.pair_group]
        if use.any():
            i1, i2 = self.pairs[0][use], self.pairs[1][use]
            if e.idx is not None:
                where = np.zeros(self.n_entries, np.int64)
                where[e.idx] = np.arange(len(e.idx))
                i1, i2 = where[i1], where[i2]
            prod = (vals[:, None, i1] * vals[None, :, i2]).reshape(25, -1)
            summed = _segment_sums(prod, self.pair_block[use], self.n_blocks).ravel()
            at += [self.block_at.ravel(), self.block_at_t.ravel()]
            values += [summed, summed]
        matrix = np.bincount(np.concatenate(at), np.concatenate(values), minlength=int(self.offset[-1]))
        grad = np.zeros(int(self.voff[-1]))
        grad[self.p_at] = _segment_sums(vals * res[e.rloc], e.part, n)
        grad[self.l_at] = np.bincount(lev, w_rows * res, minlength=self.n_groups * k)
        return matrix, grad

    def _blocks(self, matrix, groups, dim):
        return matrix[self.offset[groups][:, None] + np.arange(dim * dim)].reshape(-1, dim, dim)

    def solve(self, matrix, grad, lam, active):
        """Levenberg-Marquardt steps of the ``active`` groups: ``(n, 5)``, and the levels ``(n_groups * K,)``."""
        step = np.zeros(len(grad))
        for dim, groups in self.classes:
            groups = groups[active[groups]]
            if not len(groups):
                continue
            a = self._blocks(matrix, groups, dim)
            at = self.voff[groups][:, None] + np.arange(dim)
            diag = np.diagonal(a, axis1=1, axis2=2)
            # a column no pixel constrains (the height with one view) stays where it is
            damp = lam[groups][:, None] * (diag + 1e-9) + (diag <= 0)
            try:
                step[at] = np.linalg.solve(a + damp[:, :, None] * np.eye(dim), -grad[at][..., None])[..., 0]
            except np.linalg.LinAlgError:
                step[at] = np.nan
        return step[self.p_at], step[self.l_at]

    def standard_deviations(self, matrix, scale):
        """Standard deviations of ``x, y, z`` and of the amplitude: the diagonal of each block's inverse.

        ``scale``: per group, the factor on the variances (the reduced chi-square where the
        model does not explain the data to the noise).
        """
        var = np.full(int(self.voff[-1]), np.nan)
        for dim, groups in self.classes:
            for start in range(0, len(groups), 4096):
                check_cancelled()
                part = groups[start:start + 4096]
                a = self._blocks(matrix, part, dim)
                a = a + np.eye(dim) * 1e-12 * np.trace(a, axis1=1, axis2=2)[:, None, None]
                at = self.voff[part][:, None] + np.arange(dim)
                try:
                    inv = np.linalg.inv(a)
                except np.linalg.LinAlgError:  # one singular block (a particle with no pixel): the others alone
                    inv = np.stack([_inverse_or_nan(block) for block in a])
                var[at] = np.diagonal(inv, axis1=1, axis2=2) * scale[part][:, None]
        var = var[self.p_at]
        return np.sqrt(np.clip(var[:, :3], 0, None)), np.sqrt(np.clip(var[:, 4], 0, None))


def render_particles(shape, points, radii, amplitudes, shift, *, blur) -> np.ndarray:
    """The modelled signal of particles in every view, shape ``(n_views, rows, cols)``."""
    rows, cols = shape
    shift = np.asarray(shift, float)
    return np.stack([render_view(points, radii, amplitudes, view_shift, blur=blur, box=(0, rows, 0, cols))
                     for view_shift in shift])


def render_view(points, radii, amplitudes, view_shift, *, blur, box) -> np.ndarray:
    """The modelled signal of particles in one view, inside ``box = (row0, row1, col0, col1)`` of the image.

    ``view_shift``: that view's shift per unit height, ``(2,)``. Returns ``(row1 - row0, col1 - col0)``;
    only the particles that reach into the box are drawn.
    """
    y0, y1, x0, x1 = (int(v) for v in box)
    out_shape = (y1 - y0, x1 - x0)
    points = np.asarray(points, float).reshape(-1, 3)
    radii = np.asarray(radii, float)
    amplitudes = np.asarray(amplitudes, float)
    blur = np.broadcast_to(np.asarray(blur, float), (len(points),))
    far = reach(radii, blur)
    proj = points[:, :2] + points[:, 2:3] * np.asarray(view_shift, float)
    inside = ((proj[:, 0] + far >= x0 - 1) & (proj[:, 0] - far <= x1) & (proj[:, 1] + far >= y0 - 1)
              & (proj[:, 1] - far <= y1))
    if not inside.any():
        return np.zeros(out_shape)
    check_cancelled()
    proj, far, b = proj[inside], far[inside], blur[inside]
    p = np.column_stack([radii[inside], amplitudes[inside]])
    half = int(np.ceil(far.max()))
    offs = np.arange(-half, half + 1)
    ix, iy = np.rint(proj[:, 0]).astype(np.int64), np.rint(proj[:, 1]).astype(np.int64)
    gx = np.broadcast_to(ix[:, None, None] + offs[None, None, :], (len(proj), len(offs), len(offs)))
    gy = np.broadcast_to(iy[:, None, None] + offs[None, :, None], gx.shape)
    near = (gx - proj[:, 0, None, None]) ** 2 + (gy - proj[:, 1, None, None]) ** 2 <= far[:, None, None] ** 2
    valid = (near & (gx >= x0) & (gx < x1) & (gy >= y0) & (gy < y1)).ravel()
    particle = np.repeat(np.arange(len(proj)), len(offs) ** 2)[valid]
    gx, gy = gx.ravel()[valid].astype(float), gy.ravel()[valid].astype(float)
    b = b[particle]
    rho = np.hypot(gx - proj[particle, 0], gy - proj[particle, 1])
    contrib = p[particle, 1] * b * _lookup(rho / b, p[particle, 0] / b, 1)[:, 0]
    flat = (gy.astype(np.int64) - y0) * out_shape[1] + gx.astype(np.int64) - x0
    return np.bincount(flat, contrib, minlength=out_shape[0] * out_shape[1]).reshape(out_shape)
