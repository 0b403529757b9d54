"""Render a :class:`~.scene.DislocationScene` at any set of tilts.

Every 3D position goes through :func:`napari_stereo_tem.stereo.projection.project_points`
(the one implementation of the convention). Lines are drawn from the
nearest-point maps of :mod:`.raster`; dislocation pixels get the exact nearest
point (foot) on the piecewise-linear curve, which is the 3D truth of that pixel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..checks import InputError
from ..stereo.projection import project_points
from .background import bend_contours, illumination, shot_noise
from .raster import densify_polylines, foot_on_polyline, nearest_sample_map
from .scene import DislocationScene, surface_depth

__all__ = ["RenderedViews", "render_views", "MASK_BACKGROUND", "MASK_DISLOCATION", "MASK_DISTRACTOR"]

MASK_BACKGROUND, MASK_DISLOCATION, MASK_DISTRACTOR = 0, 1, 2


@dataclass
class RenderedViews:
    """Images and per-pixel truth of a scene seen at several tilts.

    Attributes
    ----------
    tilts_deg : tuple of float
    axis_col : float
        Column of the tilt axis.
    images : list of ndarray, (rows, cols) float32 in [0, 1]
    masks : list of ndarray, (rows, cols) uint8
        0 background, 1 dislocation, 2 distractor (slip trace, grain boundary).
    foot_points : list of ndarray, (rows, cols, 3) float64
        For each dislocation pixel, the 3D point ``(x, y, z)`` of the true curve
        whose projection is nearest to the pixel centre; NaN elsewhere.
    line_index : list of ndarray, (rows, cols) int32
        Index into ``scene.lines`` of that curve, -1 elsewhere.
    background_depth : list of ndarray, (rows, cols) float32
        Depth ``z`` of the background surface point seen at each pixel.
    params : dict
        Rendering parameters (JSON-serialisable).
    """

    tilts_deg: tuple
    axis_col: float
    images: list = field(default_factory=list)
    masks: list = field(default_factory=list)
    foot_points: list = field(default_factory=list)
    line_index: list = field(default_factory=list)
    background_depth: list = field(default_factory=list)
    params: dict = field(default_factory=dict)


def _coarse_grid(n: int, step: int):
    """Coarse sample positions (every ``step``, last included) and, per fine position, the cell and weight."""
    coarse = np.unique(np.append(np.arange(0, n, step), n - 1)).astype(np.float64)
    fine = np.arange(n, dtype=np.float64)
    j = np.clip(np.searchsorted(coarse, fine, side="right") - 1, 0, len(coarse) - 2)
    w = (fine - coarse[j]) / (coarse[j + 1] - coarse[j])
    return coarse, j, w


def _upsample(values: np.ndarray, grid_y, grid_x) -> np.ndarray:
    """Bilinear interpolation of a coarse grid to every pixel (no BLAS: no thread spinning)."""
    _, jy, wy = grid_y
    _, jx, wx = grid_x
    jy1 = np.minimum(jy + 1, values.shape[0] - 1)
    jx1 = np.minimum(jx + 1, values.shape[1] - 1)
    rows = values[jy] * (1 - wy)[:, None] + values[jy1] * wy[:, None]
    return rows[:, jx] * (1 - wx)[None, :] + rows[:, jx1] * wx[None, :]


def _warp_background(scene: DislocationScene, tilt: float, axis_col: float, shape, step: int = 8):
    """Sample the texture and bend field lying on ``z = h(x, y)`` as seen at ``tilt``.

    The specimen column ``X`` seen at each pixel solves ``x = project_points((X, y, h(X, y))).x``;
    it is a smooth function of the pixel, solved on a grid every ``step`` pixels and interpolated
    linearly (about 0.01 px of error for the gentle surfaces of :func:`~.scene.make_scene`).
    """
    rows, cols = shape
    a = np.deg2rad(tilt)
    grid_y, grid_x = _coarse_grid(rows, step), _coarse_grid(cols, step)
    x, y = grid_x[0][None, :], grid_y[0][:, None]
    big_x = np.broadcast_to(axis_col + (x - axis_col) / np.cos(a), (len(grid_y[0]), len(grid_x[0])))
    for _ in range(6):  # fixed point; h is smooth and sin(a) small, so it contracts fast
        h = surface_depth(big_x, y, scene.depth_surface)
        big_x = axis_col + (x - axis_col - h * np.sin(a)) / np.cos(a)
    h = surface_depth(big_x, y, scene.depth_surface)
    big_x, h = _upsample(big_x, grid_y, grid_x), _upsample(h, grid_y, grid_x)
    stack = np.dstack([scene.texture, scene.bend_field]).astype(np.float32)
    map_x = (big_x + scene.pad).astype(np.float32)
    map_y = np.repeat(np.arange(rows, dtype=np.float32)[:, None], cols, axis=1)
    out = cv2.remap(stack, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return out[..., 0].astype(np.float64), out[..., 1].astype(np.float64), h


def _grain_boundary(gb, t, tilt, axis_col, shape):
    """Band coordinate ``s`` (0 on the top-surface line, 1 on the bottom one) at every pixel."""
    rows, cols = shape
    (x0, y0), ang, off = gb["point"], gb["angle"], gb["offset"]
    n = np.array([-np.sin(ang), np.cos(ang)])
    top = np.array([[x0, y0, -t / 2], [x0 + 100 * np.cos(ang), y0 + 100 * np.sin(ang), -t / 2]])
    bottom = top + np.array([off * n[0], off * n[1], t])
    pt, pb = project_points(top, tilt, axis_col=axis_col), project_points(bottom, tilt, axis_col=axis_col)
    direction = (pt[1] - pt[0]) / np.linalg.norm(pt[1] - pt[0])
    normal = np.array([-direction[1], direction[0]])
    x = np.arange(cols)[None, :]
    y = np.arange(rows)[:, None]
    d_top = (x - pt[0, 0]) * normal[0] + (y - pt[0, 1]) * normal[1]
    width = (pb[0] - pt[0]) @ normal
    return d_top / width if abs(width) > 1e-6 else np.full((rows, cols), np.inf)


def render_views(scene: DislocationScene, tilts_deg, *, shape=None, axis_col: float | None = None,
                 dark_field: bool = False, dose: float | None = None, seed: int = 0,
                 view_jitter: float = 0.15) -> RenderedViews:
    """Render ``scene`` at each tilt of ``tilts_deg`` (any set, asymmetric too).

    Parameters
    ----------
    scene : DislocationScene
    tilts_deg : sequence of float
        Tilt of each view about the vertical axis through ``axis_col``.
    shape : (rows, cols), optional
        Default ``scene.shape``.
    axis_col : float, optional
        Tilt-axis column; default ``(cols - 1) / 2``.
    dark_field : bool
        Lines brighter than a dark background instead of darker.
    dose : float or None
        Electrons per pixel at intensity 1 for Poisson noise; ``None``: no noise.
    seed : int
        Seed of the per-view variations (contrast, width, illumination, noise).
    view_jitter : float
        Relative spread of line contrast between views.

    Returns
    -------
    RenderedViews
    """
    rows, cols = (int(v) for v in (scene.shape if shape is None else shape))
    tilts = tuple(float(v) for v in np.atleast_1d(tilts_deg))
    if not tilts or not all(np.isfinite(tilts)) or max(abs(v) for v in tilts) >= 80:
        raise InputError(f"tilts_deg must be finite angles below 80 degrees, got {tilts_deg}")
    c = (cols - 1) / 2.0 if axis_col is None else float(axis_col)
    rng = np.random.default_rng([int(seed), 2])
    bg = scene.params.get("background", {})
    level = float(rng.uniform(0.12, 0.3) if dark_field else rng.uniform(0.45, 0.7))
    amplitude = float(rng.uniform(0.08, 0.25)) * (0.6 if dark_field else 1.0)
    params = {"tilts_deg": list(tilts), "axis_col": c, "dark_field": bool(dark_field),
              "dose": None if dose is None else float(dose), "render_seed": int(seed),
              "level": level, "amplitude": amplitude, "view_jitter": float(view_jitter), "views": []}
    out = RenderedViews(tilts_deg=tilts, axis_col=c, params=params)

    pts, ids, seg_in, seg_out = densify_polylines(scene.lines)
    tpts, tids, _, _ = densify_polylines(scene.traces)
    widths = np.asarray(scene.line_width, dtype=np.float64)
    contrasts = np.asarray(scene.line_contrast, dtype=np.float64)
    t_contrast = np.asarray(scene.trace_contrast, dtype=np.float64)
    for tilt in tilts:
        view = {"tilt_deg": tilt,
                "contrast_factor": [float(v) for v in rng.uniform(1 - view_jitter, 1 + view_jitter, len(widths))],
                "width_factor": [float(v) for v in rng.uniform(0.95, 1.05, len(widths))],
                "illumination": [float(v) for v in rng.uniform(-0.15, 0.15, 2)],
                "bend_shift": float(rng.uniform(-0.02, 0.02))}
        params["views"].append(view)
        tex, bend_f, depth = _warp_background(scene, tilt, c, (rows, cols))
        image = level + amplitude * (tex - 0.5)
        band = bend_contours(bend_f, [v + view["bend_shift"] for v in bg.get("bend_levels", [])],
                             bg.get("bend_width", 0.04), bg.get("bend_depth", 0.2))
        image = image * (2.0 - band if dark_field else band) * illumination((rows, cols), view["illumination"])
        mask = np.zeros(rows * cols, np.uint8)
        flat = image.ravel()
        if len(scene.particles):
            pxy = project_points(scene.particles, tilt, axis_col=c)
            pidx, pd2 = nearest_sample_map(pxy, (rows, cols), int(np.ceil(3 * scene.particle_sigma.max())))
            hit = pidx >= 0
            flat[hit] *= 1.0 - scene.particle_contrast[pidx[hit]] * np.exp(
                -0.5 * pd2[hit] / scene.particle_sigma[pidx[hit]] ** 2)

        # Distractors first (class 2), dislocations override them (class 1).
        if len(tpts):
            txy = project_points(tpts, tilt, axis_col=c)
            tidx, td2 = nearest_sample_map(txy, (rows, cols), 3)
            hit = tidx >= 0
            flat[hit] *= 1.0 - t_contrast[tids[tidx[hit]]] * np.exp(-0.5 * td2[hit])
            mask[hit & (td2 <= 0.75 ** 2)] = MASK_DISTRACTOR
        for gb in scene.grain_boundaries:
            s = _grain_boundary(gb, scene.foil_thickness, tilt, c, (rows, cols)).ravel()
            inside = (s >= 0) & (s <= 1)
            edge = np.clip(np.minimum(s, 1 - s) * 20, 0, 1)
            fringe = 0.5 + 0.5 * np.cos(2 * np.pi * gb["fringes"] * s)
            flat[inside] *= 1.0 - gb["contrast"] * (fringe * edge)[inside]
            mask[inside & (mask == 0)] = MASK_DISTRACTOR

        foot = np.full((rows * cols, 3), np.nan)
        line_index = np.full(rows * cols, -1, np.int32)
        if len(pts):
            sig = widths * np.asarray(view["width_factor"])
            con = contrasts * np.asarray(view["contrast_factor"])
            xy = project_points(pts, tilt, axis_col=c)
            radius = int(np.ceil(2.5 * sig.max() + 0.5))
            idx, d2 = nearest_sample_map(xy, (rows, cols), radius)
            hit = np.flatnonzero(idx >= 0)
            line = ids[idx[hit]]
            profile = con[line] * np.exp(-0.5 * d2[hit] / sig[line] ** 2)
            flat[hit] *= (1.0 + 2.0 * profile) if dark_field else (1.0 - profile)
            r_mask = np.maximum(0.75, sig)
            near = hit[d2[hit] <= (r_mask[line] + 0.3) ** 2]
            pix_xy = np.column_stack([near % cols, near // cols]).astype(np.float64)
            start, t, dist = foot_on_polyline(pix_xy, idx[near], xy, seg_in, seg_out)
            on = dist <= r_mask[ids[start]]
            near, start, t = near[on], start[on], t[on]
            foot[near] = pts[start] + t[:, None] * (pts[np.minimum(start + 1, len(pts) - 1)] - pts[start])
            line_index[near] = ids[start]
            mask[near] = MASK_DISLOCATION

        image = shot_noise(np.clip(image, 0.0, None), dose, rng)
        out.images.append(np.clip(image, 0.0, 1.0).astype(np.float32))
        out.masks.append(mask.reshape(rows, cols))
        out.foot_points.append(foot.reshape(rows, cols, 3))
        out.line_index.append(line_index.reshape(rows, cols))
        out.background_depth.append(depth.astype(np.float32))
    return out
