"""Particles fitted to the views themselves: touching ones placed, missed ones found, merged ones split.

Per-view centroids are biased when particles overlap in projection, and
differently in every view (the neighbour sits at another height, so it shifts by
another amount); at small view angles a tenth of a pixel is several pixels of
height. So the matched particles are fitted to all views at once
(:func:`.fit.fit_particles`: one ``(X, Y, Z, r, A)`` per particle, touching
particles together), in the optical density of bright-field views
(``log(I_0 / I)``, where the thicknesses of overlapping particles add).

The fitted model then says what the matching could not see:

- **missed particles**: a particle that merges with a neighbour in one view has no
  detection of its own there, and one whose centroids a neighbour pulled may fail
  the matching tolerance. Once the found particles are modelled, it stands out in
  the residual of every view (the data minus the model); the residuals are searched
  with the same detector and matched with the same geometry (three views are
  enough), and the new particles are fitted together with their neighbours;
- **merged particles**: two particles that overlap in every view give one
  detection per view and one point. Its fit has a larger contrast per unit
  thickness (one material) or fits worse than the others; such points are fitted
  as two spheres from several starts and kept as two when that explains the views
  much better and both halves look like single particles;
- **not particles**: a point whose fitted contrast is not significant, or that
  fewer than three views hold, is dropped.

The fit's covariance gives every particle a standard deviation of ``x, y, z``;
:func:`localisation_floor` gives the expected precision of an isolated particle
at the noise of the views.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from ..progress import Progress, check_cancelled, drive, map_threads
from .detection import (DEFAULT_RADIUS_RANGE, _background, _log_peaks, _log_reach, _median, estimate_noise,
                        resolve_polarity, touching_groups)
from .fit import blurred_sphere_profile, fit_particles, reach, render_particles, render_view
from .geometry import view_shifts

__all__ = ["blurred_sphere_profile", "fit_signal", "common_contrast", "estimate_blur", "localisation_floor",
           "fit_single", "refine_in_views", "refine_in_views_iter"]

#: Blurs tried by :func:`estimate_blur`, pixels.
BLUR_GRID = (0.4, 0.7, 1.2, 2.1)
#: The refinement's one progress stage; its reports say which step runs (``info["step"]``).
STAGE = "refine in the views"


def fit_signal(view, *, polarity: str = "dark", radius_max: float = 10.0) -> np.ndarray:
    """The view as particle signal on a zero background, linear in projected thickness (float32).

    Dark (bright-field) particles on a positive image: optical density
    ``log(background / I)``; otherwise the intensity minus its smooth background.
    """
    img = np.asarray(view, dtype=np.float32)
    polarity = resolve_polarity(img, polarity)
    level = _median(img)
    if polarity == "dark" and level > 0 and np.percentile(img.ravel()[::max(1, img.size // (1 << 20))], 1) > 0:
        signal = -np.log(np.clip(img, np.float32(1e-3 * level), None))
    else:
        signal = -img if polarity == "dark" else img.copy()
    signal -= np.float32(_median(signal))
    return signal - _background(signal, radius_max)


def _at_centres(signals, points, shift) -> np.ndarray:
    """Each view's signal at the particles' projected centres (nearest pixel, clipped to the view): ``(views, n)``."""
    xy = points[None, :, :2] + points[None, :, 2:3] * shift[:, None, :]
    rows, cols = signals[0].shape
    ix = np.clip(np.rint(xy[..., 0]).astype(int), 0, cols - 1)
    iy = np.clip(np.rint(xy[..., 1]).astype(int), 0, rows - 1)
    return np.stack([signals[k][iy[k], ix[k]] for k in range(len(signals))])


def common_contrast(signals, points, shift, *, tolerance: float = 0.05) -> tuple[list, np.ndarray]:
    """The views' signals brought to one contrast per unit thickness, and the factors they were divided by.

    The fit gives a particle one contrast in every view. A view recorded with an offset (a detector
    segment's black level, a camera's bias) shows its particles with less optical density than the
    others; each view's factor is the median, over the particles, of its signal at their projected
    centres over the median of all views there. Views within ``tolerance`` of the others are left as
    they are (the factors are then all 1).
    """
    points = np.asarray(points, float).reshape(-1, 3)
    ones = np.ones(len(signals))
    if len(points) < 5:
        return list(signals), ones
    peak = _at_centres(signals, points, shift)
    reference = np.median(peak, axis=0)
    held = reference > 0
    if held.sum() < 5:
        return list(signals), ones
    factors = np.median(peak[:, held] / reference[held], axis=1)
    if not np.all(factors > 0.1) or np.max(np.abs(factors - 1.0)) <= tolerance:
        return list(signals), ones
    return [signal / np.float32(f) for signal, f in zip(signals, factors)], factors


def _start_amplitudes(signals, points, radii, shift):
    """Contrast per unit thickness from the signal at each projected centre (the centre is ``2 r`` thick)."""
    peak = np.median(_at_centres(signals, points, shift), axis=0)
    return np.clip(peak, 1e-6, None) / (2 * np.clip(radii, 1.0, None))


def estimate_blur(signals, noise, points, radii, shift, *, radius_range=DEFAULT_RADIUS_RANGE, n_max: int = 10) -> float:
    """The blur of the views (probe, pixel, denoising) from isolated particles, pixels.

    Up to ``n_max`` particles that touch no other in any view are fitted with every blur of
    :data:`BLUR_GRID` on the same pixels; the best total cost, refined by a parabola in
    ``log(blur)``, gives the blur. 1.0 when no particle is isolated.
    """
    xy = points[None, :, :2] + points[None, :, 2:3] * shift[:, None, :]
    crowded = np.zeros(len(points), dtype=bool)
    for idx in touching_groups(xy, radii, gap=2 * BLUR_GRID[-1], max_group=len(points) + 1):
        crowded[idx] = True
    alone = np.flatnonzero(~crowded)
    if len(alone) == 0:
        return 1.0
    alone = alone[np.linspace(0, len(alone) - 1, min(n_max, len(alone))).astype(int)]
    m, grid = len(alone), np.asarray(BLUR_GRID)
    pts = np.tile(points[alone], (len(grid), 1))
    r = np.tile(radii[alone], len(grid))
    fit = fit_particles(signals, noise, pts, r, np.tile(_start_amplitudes(signals, points[alone], radii[alone], shift),
                                                         len(grid)),
                        shift, blur=np.repeat(grid, m), problem=np.repeat(np.arange(len(grid)), m), iterations=8,
                        radius_range=radius_range, covariance=False, reach_blur=grid[-1])
    total = np.bincount(np.repeat(np.arange(len(grid)), m), fit["cost"][fit["group"]] / np.bincount(fit["group"])[
        fit["group"]], minlength=len(grid))
    best = int(np.argmin(total))
    if 0 < best < len(grid) - 1:
        x = np.log(grid[best - 1:best + 2])
        a, b, _ = np.polyfit(x, total[best - 1:best + 2], 2)
        if a > 0:
            return float(np.exp(np.clip(-b / (2 * a), x[0], x[2])))
    return float(grid[best])


def localisation_floor(noise, shift, *, radius: float, amplitude: float, blur: float) -> np.ndarray:
    """Standard deviations of ``x, y, z`` (pixels) of an isolated particle fitted at this noise.

    The Cramer-Rao bound of the fit: the inverse of the normal matrix of one particle of
    ``radius`` and ``amplitude`` (contrast per unit thickness) in every view, with the
    views' noise standard deviations ``noise``.
    """
    size = int(2 * np.ceil(radius + 4 * blur + 4) + 1)
    centre = np.array([[size / 2.0, size / 2.0, 0.0]])
    model = render_particles((size, size), centre, [radius], [amplitude], shift, blur=blur)
    fit = fit_particles(list(model), noise, centre, np.array([radius]), np.array([amplitude]), shift, blur=blur,
                        iterations=0, radius_range=(0.5 * radius, 2.0 * radius))
    return fit["std"][0]


def fit_single(signals, points, radii, shift, *, blur: float = 1.0, iterations: int = 12, chunk: int = 256) -> dict:
    """Fit every particle on its own to all views (each its own problem), ``chunk`` particles at a time.

    Returns ``points (n, 3)``, ``radii``, ``amplitude``, ``std (n, 3)``, ``chi2`` (reduced
    chi-square of each fit) and ``ok`` (a finite fit with positive contrast). The
    refinement fits touching particles together instead (:func:`refine_in_views_iter`);
    this is the per-particle view of the same model.
    """
    points = np.asarray(points, float).reshape(-1, 3)
    radii = np.asarray(radii, float)
    noise = np.array([estimate_noise(s) for s in signals])
    parts = []
    for a in range(0, len(points), chunk):
        check_cancelled()  # per block, and per iteration inside the fit
        idx = np.arange(a, min(a + chunk, len(points)))
        fit = fit_particles(signals, noise, points[idx], radii[idx], _start_amplitudes(signals, points[idx],
                                                                                        radii[idx], shift),
                            shift, blur=blur, problem=np.arange(len(idx)), iterations=iterations)
        parts.append({"points": fit["points"], "radii": fit["radii"], "amplitude": fit["amplitudes"],
                      "std": fit["std"], "chi2": fit["chi2_red"][fit["group"]],
                      "ok": np.all(np.isfinite(fit["points"]), axis=1) & (fit["amplitudes"] > 0)})
    if not parts:
        return {"points": np.zeros((0, 3)), "radii": np.zeros(0), "amplitude": np.zeros(0),
                "std": np.zeros((0, 3)), "chi2": np.zeros(0), "ok": np.zeros(0, dtype=bool)}
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def refine_in_views(views, reconstruction, **options):
    """Run :func:`refine_in_views_iter` to the end and return the new reconstruction."""
    return drive(refine_in_views_iter(views, reconstruction, **options))


class _State:
    """The particles being fitted: positions, sizes, contrasts, uncertainties and where they came from."""

    def __init__(self, rec, radii):
        self.points = rec.points.astype(float).copy()
        self.radii = radii
        self.amplitudes = np.zeros(len(radii))
        self.std = np.full((len(radii), 3), np.nan)
        self.std_amp = np.full(len(radii), np.nan)
        self.support = np.ones((len(radii), rec.detection_index.shape[1]))
        self.keys = rec.detection_index.copy()
        self.resid = rec.residuals.astype(float).copy()
        self.origin = np.zeros(len(radii), dtype=int)  # 0 matched, 1 found in the residuals, 2 split

    def take(self, fit, idx):
        for name, key in (("points", "points"), ("radii", "radii"), ("amplitudes", "amplitudes"), ("std", "std"),
                          ("std_amp", "std_amplitude"), ("support", "support")):
            getattr(self, name)[idx] = fit[key]

    def add(self, points, radii, amplitudes, origin):
        k = len(points)
        self.points = np.vstack([self.points, points])
        self.radii = np.concatenate([self.radii, radii])
        self.amplitudes = np.concatenate([self.amplitudes, amplitudes])
        self.std = np.vstack([self.std, np.full((k, 3), np.nan)])
        self.std_amp = np.concatenate([self.std_amp, np.full(k, np.nan)])
        self.support = np.vstack([self.support, np.ones((k, self.support.shape[1]))])
        self.keys = np.vstack([self.keys, np.full((k, self.keys.shape[1]), -1)])
        self.resid = np.concatenate([self.resid, np.full(k, np.nan)])
        self.origin = np.concatenate([self.origin, np.full(k, origin)])

    def keep(self, mask):
        for name in ("points", "radii", "amplitudes", "std", "std_amp", "support", "keys", "resid", "origin"):
            setattr(self, name, getattr(self, name)[mask])


def _neighbours(points, radii, shift, idx, blur):
    """Particles whose pixels meet those of the particles ``idx`` in any view (``idx`` included)."""
    hit = np.zeros(len(points), dtype=bool)
    hit[idx] = True
    if len(idx) == 0:
        return np.flatnonzero(hit)
    far = reach(radii, blur)
    xy = points[None, :, :2] + points[None, :, 2:3] * shift[:, None, :]
    for k in range(len(shift)):
        near = cKDTree(xy[k]).query_ball_point(xy[k, idx], r=float(far.max() + far[idx].max()))
        for i, js in zip(idx, near):
            js = np.asarray(js, dtype=int)
            hit[js[np.linalg.norm(xy[k, js] - xy[k, i], axis=1) < far[js] + far[i]]] = True
    return np.flatnonzero(hit)


def _independent_parts(shape, points, radii, shift, blur, *, n_parts: int = 2, min_size: int = 200) -> list:
    """Indices of ``points`` in up to ``n_parts`` sets that share no pixel (whole fit groups, balanced).

    Particles whose pixel discs (the reach :func:`.fit.fit_particles` gives them) could meet in
    any view are kept in one set, so every group the fit forms lies in one set, and fitting the
    sets apart gives what fitting them together gives.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(points)
    if n < min_size or n_parts < 2:
        return [np.arange(n)]
    far = reach(np.maximum(radii, 1.0) + 0.5, blur)
    pairs = []
    for view_shift in shift:
        xy = points[:, :2] + points[:, 2:3] * view_shift
        close = cKDTree(xy).query_pairs(2 * float(far.max()), output_type="ndarray")
        d = np.linalg.norm(xy[close[:, 0]] - xy[close[:, 1]], axis=1)
        pairs.append(close[d <= far[close[:, 0]] + far[close[:, 1]]])  # two discs can share a pixel
    pairs = np.concatenate(pairs)
    _, group = connected_components(coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n)),
                                    directed=False)
    sizes = np.bincount(group)
    owner = np.zeros(len(sizes), dtype=int)
    load = np.zeros(n_parts)
    for g in np.argsort(-sizes, kind="stable"):  # largest groups first, each to the lightest part
        owner[g] = int(np.argmin(load))
        load[owner[g]] += sizes[g]
    parts = [np.flatnonzero(owner[group] == k) for k in range(n_parts)]
    return [p for p in parts if len(p)]


def _refit(signals, noise, state, idx, shift, *, blur, radius_range, iterations=20):
    """Fit the particles ``idx`` with every other particle held fixed (independent sets in two threads)."""
    idx = np.asarray(idx)
    others = np.setdiff1d(np.arange(len(state.points)), idx)
    fixed = {"points": state.points[others], "radii": state.radii[others], "amplitudes": state.amplitudes[others],
             "blur": blur, "problem": np.zeros(len(others), np.int64)}
    parts = _independent_parts(signals[0].shape, state.points[idx], state.radii[idx], shift, blur)

    def fit_part(part):
        sel = idx[part]
        return fit_particles(signals, noise, state.points[sel], state.radii[sel], state.amplitudes[sel], shift,
                             blur=blur, fixed=fixed, iterations=iterations, radius_range=radius_range)

    fits = map_threads(fit_part, parts)
    if len(fits) == 1:
        fit = fits[0]
    else:  # one result in the order of idx, the groups numbered across the parts
        order = np.argsort(np.concatenate(parts))
        offsets = np.cumsum([0] + [len(f["cost"]) for f in fits[:-1]])
        fit = {key: np.concatenate([f[key] for f in fits])[order]
               for key in ("points", "radii", "amplitudes", "std", "std_amplitude", "support")}
        fit["group"] = np.concatenate([f["group"] + o for f, o in zip(fits, offsets)])[order]
        fit["cost"] = np.concatenate([f["cost"] for f in fits])
        fit["chi2_red"] = np.concatenate([f["chi2_red"] for f in fits])
        fit["blur"] = blur
    state.take(fit, idx)
    return fit


class _ResidualSearch:
    """Particles the model does not hold yet: detected in the residuals of at least three views, and matched.

    The search remembers what it found in every view; a later search runs the detector
    again only where the model has changed since (with the margin the detector's filters
    reach), and keeps the earlier detections elsewhere, where the residual is the same.
    """

    #: Side of the tiles that mark where the model changed, pixels.
    TILE = 64

    def __init__(self, signals, noise, shift, *, blur, beta, psi, depth_range, radius_range, threshold):
        self.signals, self.noise, self.shift, self.blur = signals, noise, shift, blur
        self.beta, self.psi, self.depth_range = beta, psi, depth_range
        self.radius_range, self.threshold = radius_range, threshold
        self.seen = None  # the model and the detections of the last search

    def __call__(self, state):
        from .matching import match_particles

        model = (state.points.copy(), state.radii.copy(), state.amplitudes.copy())
        if self.seen is None:
            # The particles sought are like the ones found: search the scales around their radii only.
            lo, hi = np.percentile(state.radii, [10, 90])
            r_lo, r_hi = self.radius_range
            self.scales = (max(r_lo, 0.8 * lo), min(r_hi, max(1.2 * hi, 0.8 * lo)))
            found = map_threads(lambda k: self._detect(k, model, None), range(len(self.signals)))
        else:
            boxes = self._changed_boxes(self.seen[0], model)
            found = map_threads(lambda k: self._detect(k, model, boxes[k]), range(len(self.signals)))
        dets = [f[0] for f in found]
        self.floors = [f[1] for f in found]
        self.seen = (model, dets)
        check_cancelled()
        found = match_particles(dets, beta_deg=self.beta, azimuths_deg=self.psi, tolerance=2.0,
                                depth_range=self.depth_range)
        if len(found.points) == 0:
            return np.zeros((0, 3)), np.zeros(0)
        radii = np.clip(np.nan_to_num(found.radii, nan=self.radius_range[0]), *self.radius_range)
        # A point where a particle already is (hard cores do not overlap) is that particle's misfit.
        dist, j = cKDTree(state.points).query(found.points, k=1)
        new = dist >= 0.8 * (radii + state.radii[j])
        return found.points[new], radii[new]

    def _detect(self, k, model, boxes):
        """Detections in view ``k``'s residual: everywhere (``boxes`` None), or again inside ``boxes`` only."""
        rows, cols = self.signals[k].shape
        if boxes is None:
            residual = self.signals[k] - render_view(*model, self.shift[k], blur=self.blur, box=(0, rows, 0, cols))
            return _log_peaks(residual, self.noise[k], sigma=1.0, threshold=self.threshold,
                              radius_range=self.scales)
        margin = _log_reach(1.0, self.scales)
        previous = self.seen[1][k]
        keep = np.ones(len(previous), dtype=bool)
        parts = []
        for y0, y1, x0, x1 in boxes:
            check_cancelled()
            crop = (max(y0 - margin, 0), min(y1 + margin, rows), max(x0 - margin, 0), min(x1 + margin, cols))
            residual = (self.signals[k][crop[0]:crop[1], crop[2]:crop[3]]
                        - render_view(*model, self.shift[k], blur=self.blur, box=crop))
            found, _ = _log_peaks(residual, self.noise[k], sigma=1.0, threshold=self.threshold,
                                  radius_range=self.scales, floor=self.floors[k])
            found[:, 0] += crop[2]
            found[:, 1] += crop[0]
            parts.append(found[(found[:, 0] >= x0) & (found[:, 0] < x1) & (found[:, 1] >= y0) & (found[:, 1] < y1)])
            keep &= ~((previous[:, 0] >= x0) & (previous[:, 0] < x1) & (previous[:, 1] >= y0)
                      & (previous[:, 1] < y1))
        return np.vstack([previous[keep]] + parts), self.floors[k]

    def _changed_boxes(self, before, after):
        """Per view, boxes ``(row0, row1, col0, col1)`` that hold every pixel whose detection may have changed."""
        n0 = len(before[0])
        same = np.zeros(len(after[0]), dtype=bool)
        same[:n0] = np.all(after[0][:n0] == before[0], axis=1) & (after[1][:n0] == before[1]) & (
            after[2][:n0] == before[2])
        changed = np.flatnonzero(~same)
        old = changed[changed < n0]
        points = np.vstack([before[0][old], after[0][changed]])
        far = np.concatenate([reach(before[1][old], self.blur), reach(after[1][changed], self.blur)])
        far = far + _log_reach(1.0, self.scales)
        rows, cols = self.signals[0].shape
        tile = self.TILE
        grid = (-(-rows // tile), -(-cols // tile))
        boxes = []
        for k in range(len(self.signals)):
            dirty = np.zeros(grid, dtype=bool)
            xy = points[:, :2] + points[:, 2:3] * self.shift[k]
            lo = np.floor((xy - far[:, None]) / tile).astype(int)
            hi = np.floor((xy + far[:, None]) / tile).astype(int)
            for (c0, r0), (c1, r1) in zip(np.clip(lo, 0, [grid[1] - 1, grid[0] - 1]),
                                          np.clip(hi, 0, [grid[1] - 1, grid[0] - 1])):
                dirty[r0:r1 + 1, c0:c1 + 1] = True
            labels, _ = ndimage.label(dirty, structure=np.ones((3, 3)))
            boxes.append([(sl[0].start * tile, min(sl[0].stop * tile, rows), sl[1].start * tile,
                           min(sl[1].stop * tile, cols)) for sl in ndimage.find_objects(labels)])
        return boxes


def _split_candidates(state, fit_groups_alone, *, amplitude_ratio=1.3, misfit_ratio=1.5, limit=None):
    """Points that may be two merged particles: too much contrast per unit thickness, or a bad fit."""
    amp_ref = float(np.median(state.amplitudes))
    chi = fit_groups_alone
    score = np.maximum(state.amplitudes / amp_ref / amplitude_ratio, chi / max(float(np.median(chi)), 1e-12)
                       / misfit_ratio)
    cand = np.flatnonzero(score > 1.0)
    cand = cand[np.argsort(-score[cand])]
    return cand[:limit] if limit is not None else cand


def _try_splits(signals, noise, state, cand, shift, *, blur, beta, radius_range, min_gain=25.0):
    """Fit every candidate as one and as two spheres (several starts) at once; the splits worth keeping."""
    n = len(state.points)
    step_z = 1.0 / max(float(np.max(np.sin(np.deg2rad(np.abs(beta))))), 1e-6)  # one pixel where it shifts most
    # One above the other (apart in every view along its own direction), or side by side at two heights.
    starts = [(0.0, 0.0, 1.5 * step_z), (0.0, 0.0, 3.0 * step_z)]
    starts += [(0.5, a, dz) for a in np.deg2rad([0.0, 90.0]) for dz in (step_z, -step_z)]
    n_trials = 1 + len(starts)
    pts, rad, amp, prob, fixed_pts, fixed_r, fixed_a, fixed_p = [], [], [], [], [], [], [], []
    amp_ref = float(np.median(state.amplitudes))
    for c, i in enumerate(cand):
        check_cancelled()
        p, r = state.points[i], state.radii[i]
        others = np.setdiff1d(_neighbours(state.points, state.radii, shift, np.array([i]), blur), [i])
        for t in range(n_trials):
            problem = c * n_trials + t
            if t == 0:
                pts.append(p[None])
                rad.append([r])
                amp.append([state.amplitudes[i]])
                prob.append([problem])
            else:
                apart, angle, dz = starts[t - 1]
                half = np.array([apart * r * np.cos(angle), apart * r * np.sin(angle), dz / 2])
                pts.append(np.stack([p + half, p - half]))
                rad.append([0.8 * r, 0.8 * r])
                amp.append([amp_ref, amp_ref])
                prob.append([problem, problem])
            fixed_pts.append(state.points[others])
            fixed_r.append(state.radii[others])
            fixed_a.append(state.amplitudes[others])
            fixed_p.append(np.full(len(others), problem))
    if not pts:
        return []
    prob = np.concatenate(prob)
    pts, rad, amp = np.vstack(pts), np.concatenate(rad), np.concatenate(amp)
    fixed_pts, fixed_r, fixed_a = np.vstack(fixed_pts), np.concatenate(fixed_r), np.concatenate(fixed_a)
    fixed_p = np.concatenate(fixed_p)
    # The trials are independent problems: the candidates in two halves, fitted in two threads.
    cut = (len(cand) + 1) // 2 * n_trials

    def fit_half(first: bool):
        sel, other = (prob < cut, fixed_p < cut) if first else (prob >= cut, fixed_p >= cut)
        fixed = {"points": fixed_pts[other], "radii": fixed_r[other], "amplitudes": fixed_a[other], "blur": blur,
                 "problem": fixed_p[other]}
        return fit_particles(signals, noise, pts[sel], rad[sel], amp[sel], shift, blur=blur, problem=prob[sel],
                             fixed=fixed, iterations=15, radius_range=radius_range, covariance=False, reach_blur=blur)

    halves = map_threads(fit_half, [True, False] if len(cand) > 1 else [True])
    offsets = np.cumsum([0] + [len(h["cost"]) for h in halves[:-1]])
    fit = {key: np.concatenate([h[key] for h in halves]) for key in ("points", "radii", "amplitudes", "cost")}
    fit["group"] = np.concatenate([h["group"] + o for h, o in zip(halves, offsets)])
    # Trials share no pixels with each other, but one and two spheres must be judged on the same pixels:
    # the cost of each trial is its groups' cost (its particles all lie in one group or a few).
    cost = np.zeros(len(cand) * n_trials)
    first = {}
    for j, (g, pr) in enumerate(zip(fit["group"], prob)):
        first.setdefault((pr, g), j)
    for (pr, g) in first:
        cost[pr] += fit["cost"][g]
    splits = []
    r_lo = float(radius_range[0])
    for c, i in enumerate(cand):
        one = cost[c * n_trials]
        twos = cost[c * n_trials + 1:(c + 1) * n_trials]
        best = int(np.argmin(twos)) + 1
        members = np.flatnonzero(prob == c * n_trials + best)
        pts2, r2, a2 = fit["points"][members], fit["radii"][members], fit["amplitudes"][members]
        gain = 2 * (one - twos[best - 1])
        plausible = (np.all(np.abs(a2 / amp_ref - 1) < 0.5) and np.all(r2 >= 0.8 * r_lo)
                     and np.linalg.norm(pts2[0] - pts2[1]) >= 0.7 * r2.sum()
                     and np.all(np.linalg.norm(pts2[:, :2] - state.points[i, :2], axis=1) < state.radii[i] + 2))
        if gain >= min_gain and plausible:
            splits.append((int(i), pts2, r2, a2))
    return splits


def refine_in_views_iter(views, reconstruction, *, polarity: str = "dark", radius_range=DEFAULT_RADIUS_RANGE,
                         split: bool = True, search: bool = True, threshold: float | None = None, signals=None,
                         rounds: int = 2):
    """Fit a :class:`~.matching.ParticleReconstruction` to the views themselves (a progress generator).

    Parameters
    ----------
    views : sequence of 2D arrays
        The views, in the order of the reconstruction's azimuths.
    reconstruction : ParticleReconstruction
        Matched particles.
    polarity, radius_range, threshold
        As for detection; ``threshold`` also sets the residual search's.
    split : bool
        Split points that are two particles merged in every view.
    search : bool
        Search the residuals for particles the matching missed.
    signals : list of 2D arrays, optional
        Precomputed :func:`fit_signal` of the views.
    rounds : int
        Residual searches and split tests, each followed by a fit.

    Returns
    -------
    ParticleReconstruction
        A new reconstruction with ``std`` (``x, y, z`` standard deviations from the fit);
        ``params["refinement"]`` counts what changed and holds the blur and the expected
        localisation floor.
    """
    rec = reconstruction
    beta, psi = rec.params["beta_deg"], rec.params["azimuths_deg"]
    depth_range = rec.params.get("depth_range_px")
    r_lo, r_hi = (float(v) for v in radius_range)
    n_views = rec.detection_index.shape[1]
    if signals is None:
        signals = map_threads(lambda v: fit_signal(v, polarity=polarity, radius_max=r_hi), views)
    shift = view_shifts(beta, psi)
    signals, contrast = common_contrast(signals, rec.points, shift)
    noise = np.array([estimate_noise(s) for s in signals])
    state = _State(rec, np.clip(np.where(np.isfinite(rec.radii), rec.radii, r_lo), r_lo, r_hi))
    counts = {"found_in_residuals": 0, "split_in_two": 0, "dropped": 0}
    total = 2 + 2 * rounds
    yield Progress(0, total, STAGE, {"step": "fit to the views", "particles": len(state.points)})
    if len(state.points) == 0:
        return replace(rec, std=np.zeros((0, 3)),
                       params={**rec.params, "refinement": {**counts, "fitted_in_views": 0}})
    blur = estimate_blur(signals, noise, state.points, state.radii, shift, radius_range=(r_lo, r_hi))
    fit_range = (0.5 * r_lo, r_hi)
    search_residuals = _ResidualSearch(signals, noise, shift, blur=blur, beta=beta, psi=psi, depth_range=depth_range,
                                       radius_range=(r_lo, r_hi), threshold=threshold)
    state.amplitudes = _start_amplitudes(signals, state.points, state.radii, shift)
    yield Progress(1, total, STAGE, {"step": "fit to the views", "blur": blur})
    fit = _refit(signals, noise, state, np.arange(len(state.points)), shift, blur=blur, radius_range=fit_range)
    chi_alone = fit["chi2_red"][fit["group"]]
    tried = np.zeros(len(state.points), dtype=bool)
    for rnd in range(rounds):
        yield Progress(2 + 2 * rnd, total, STAGE, {"step": "search the residuals", "particles": len(state.points)})
        changed = []
        if search:
            new_pts, new_r = search_residuals(state)
            if len(new_pts):
                start = len(state.points)
                state.add(new_pts, new_r, _start_amplitudes(signals, new_pts, new_r, shift), origin=1)
                changed.append(np.arange(start, len(state.points)))
                counts["found_in_residuals"] += len(new_pts)
        if split and len(state.points) >= 5:
            alone = np.ones(len(state.points), dtype=bool)
            alone[len(chi_alone):] = False
            chi = np.concatenate([chi_alone, np.ones(len(state.points) - len(chi_alone))])
            cand = _split_candidates(state, chi, limit=max(5, len(state.points) // 20))
            tried = np.concatenate([tried, np.ones(len(state.points) - len(tried), dtype=bool)])
            cand = cand[alone[cand] & (state.origin[cand] != 2) & ~tried[cand]]
            tried[cand] = True
            yield Progress(3 + 2 * rnd, total, STAGE, {"step": "split merged particles", "candidates": len(cand)})
            for i, pair, pair_r, pair_a in _try_splits(signals, noise, state, cand, shift, blur=blur, beta=beta,
                                                       radius_range=fit_range):
                state.points[i], state.radii[i], state.amplitudes[i] = pair[0], pair_r[0], pair_a[0]
                state.keys[i] = -1
                state.resid[i] = np.nan
                state.origin[i] = 2
                start = len(state.points)
                state.add(pair[1:], pair_r[1:], pair_a[1:], origin=2)
                changed.append(np.array([i, start]))
                counts["split_in_two"] += 1
        if not changed:
            break
        idx = _neighbours(state.points, state.radii, shift, np.unique(np.concatenate(changed)), blur)
        _refit(signals, noise, state, idx, shift, blur=blur, radius_range=fit_range)
        chi_alone = np.concatenate([chi_alone, np.ones(len(state.points) - len(chi_alone))])
        tried = np.concatenate([tried, np.ones(len(state.points) - len(tried), dtype=bool)])
    # Not particles: no significant contrast, fewer than three views that hold them, or two points on one particle.
    keep = _plausible(state, n_views)
    counts["dropped"] = int((~keep).sum())
    if not keep.all():
        touched = np.zeros(len(state.points), dtype=bool)
        touched[_neighbours(state.points, state.radii, shift, np.flatnonzero(~keep), blur)] = True
        state.keep(keep)
        idx = np.flatnonzero(touched[keep])
        if len(idx):
            _refit(signals, noise, state, idx, shift, blur=blur, radius_range=fit_range)
    yield Progress(total - 1, total, STAGE, {"step": "fit to the views", "particles": len(state.points)})
    floor = (localisation_floor(noise, shift, radius=float(np.median(state.radii)),
                                amplitude=float(np.median(state.amplitudes)), blur=blur)
             if len(state.points) else np.full(3, np.nan))
    seen = np.sum(state.support > 0.5, axis=1)
    n_seen = np.maximum(np.where(state.keys.max(axis=1) >= 0, (state.keys >= 0).sum(axis=1), 0), seen)
    order = np.argsort(-np.minimum(n_seen, n_views), kind="stable")  # particles every view holds first
    params = dict(rec.params)
    params["refinement"] = {"fitted_in_views": int(len(state.points)), **counts, "blur_px": blur,
                            "noise_per_view": [float(v) for v in noise],
                            "contrast_per_view": [round(float(v), 4) for v in contrast],
                            "localisation_floor_px": ({"x": float(floor[0]), "y": float(floor[1]),
                                                       "z": float(floor[2])} if len(state.points) else None)}
    return replace(rec, points=state.points[order], radii=state.radii[order], residuals=state.resid[order],
                   n_views=np.minimum(n_seen, n_views)[order], detection_index=state.keys[order],
                   std=state.std[order], params=params)


def _plausible(state, n_views):
    """Which points are particles: significant contrast, held by at least three views, not a duplicate."""
    significant = state.amplitudes > 5.0 * np.nan_to_num(state.std_amp, nan=np.inf)
    held = np.sum(state.support > 0.5, axis=1) >= min(3, n_views)
    keep = significant & held
    if keep.sum() >= 2:
        idx = np.flatnonzero(keep)
        pairs = cKDTree(state.points[idx]).query_pairs(2 * float(state.radii.max()), output_type="ndarray")
        for a, b in pairs:
            i, j = idx[a], idx[b]
            if keep[i] and keep[j] and np.linalg.norm(state.points[i] - state.points[j]) < 0.6 * (
                    state.radii[i] + state.radii[j]):
                weaker = i if state.amplitudes[i] * state.radii[i] ** 3 < state.amplitudes[j] * state.radii[j] ** 3 \
                    else j
                keep[weaker] = False
    return keep
