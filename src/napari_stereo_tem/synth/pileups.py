"""Synthetic pile-ups with instance truth: the test oracle of :mod:`napari_stereo_tem.stereo.instances`.

A pile-up as in seed 001: two slip traces, and between them ``n_lines``
nearly parallel smooth dislocations ``spacing`` px apart (measured across the
lines), all bowed alike with a little wiggle of their own. Lines are drawn with
the single-micrograph renderer (:mod:`.micrograph`, the detector's training
look) on a textured background with shot noise.

The truth is exact: the curve of every dislocation and an instance label image
(``0`` background, ``k + 1`` on the pixels of line ``k``: the pixels within
the mask radius of that line, the nearer line winning where two would claim
a pixel).

Typical use::

    pile = make_pileup(9_000_000, spacing=5)
    pile.image          # (rows, cols) float32, dark lines
    pile.instances      # (rows, cols) int32, one id per dislocation
    pile.curves[0]      # (n, 2) of (x, y) along dislocation 0
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from ..checks import InputError
from . import curves
from .background import draw_perlin_params, perlin_background
from .micrograph import _Canvas, _shot_noise
from .seeds import check_seed

__all__ = ["PileUp", "make_pileup", "instance_image", "PILEUP_VERSION"]

#: Bumped whenever a seed would give a different pile-up.
PILEUP_VERSION = 1


@dataclass
class PileUp:
    """A synthetic pile-up and its truth.

    Attributes
    ----------
    image : ndarray, float32, (rows, cols) in [0, 1]
        Bright field: dark lines on a brighter background.
    mask : ndarray, uint8, (rows, cols)
        0 background, 1 dislocation, 2 slip trace.
    instances : ndarray, int32, (rows, cols)
        0 background, ``k + 1`` on dislocation ``k``.
    curves : list of ndarray, (n, 2)
        ``(x, y)`` along each dislocation, about 1 px apart, clipped to the image.
    params : dict
        What was drawn (JSON-serialisable).
    """

    image: np.ndarray
    mask: np.ndarray
    instances: np.ndarray
    curves: list
    params: dict = field(default_factory=dict)


def instance_image(lines, shape, *, radius: float = 1.0) -> np.ndarray:
    """Label image of polylines: ``k + 1`` within ``radius`` px of line ``k`` (the nearest line wins).

    Parameters
    ----------
    lines : sequence of ndarray, shape (n, 2)
        ``(x, y)`` polylines.
    shape : (rows, cols)
    radius : float
        Half-width of each instance (px).

    Returns
    -------
    ndarray, int32, (rows, cols)
    """
    rows, cols = (int(v) for v in shape)
    best = np.full((rows, cols), np.inf)
    out = np.zeros((rows, cols), np.int32)
    for k, line in enumerate(lines):
        dense = curves.resample(np.asarray(line, float).reshape(-1, 2), 0.25)
        if len(dense) == 0:
            continue
        seeds = np.ones((rows, cols), bool)
        ix, iy = np.round(dense[:, 0]).astype(int), np.round(dense[:, 1]).astype(int)
        inside = (ix >= 0) & (ix < cols) & (iy >= 0) & (iy < rows)
        if not inside.any():
            continue
        seeds[iy[inside], ix[inside]] = False
        near = ndimage.distance_transform_edt(seeds) <= radius + 1.5
        py, px = np.nonzero(near)
        dist, _ = cKDTree(dense).query(np.column_stack([px, py]))
        win = (dist <= radius) & (dist < best[py, px])
        best[py[win], px[win]] = dist[win]
        out[py[win], px[win]] = k + 1
    return out


def _clip_to_image(curve: np.ndarray, shape, margin: float = 0.0) -> np.ndarray:
    rows, cols = shape
    inside = ((curve[:, 0] >= margin) & (curve[:, 0] <= cols - 1 - margin)
              & (curve[:, 1] >= margin) & (curve[:, 1] <= rows - 1 - margin))
    if not inside.any():
        return curve[:0]
    idx = np.flatnonzero(inside)
    # the longest run inside the image
    breaks = np.flatnonzero(np.diff(idx) > 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks + 1, [len(idx)]])
    best = int(np.argmax(ends - starts))
    return curve[idx[starts[best]]:idx[ends[best] - 1] + 1]


def make_pileup(seed: int, *, shape=(192, 192), n_lines: int = 6, spacing=(3.0, 15.0), sigma=(0.9, 1.3),
                dose: float = 600.0) -> PileUp:
    """A pile-up of ``n_lines`` nearly parallel dislocations between two slip traces.

    Parameters
    ----------
    seed : int
        Non-negative; the benchmarks draw from the held-out test range.
    shape : (rows, cols)
    n_lines : int
        At least 1.
    spacing : float or (low, high)
        Distance between neighbouring lines across the lines (px): one value for
        every gap, or each gap drawn uniformly in ``[low, high]``.
    sigma : float or (low, high)
        Gaussian width of the lines (px).
    dose : float
        Electrons per pixel at the background level (shot noise).

    Returns
    -------
    PileUp
    """
    seed = check_seed(seed)
    if int(n_lines) < 1:
        raise InputError(f"n_lines must be at least 1, got {n_lines}")
    low, high = (float(spacing), float(spacing)) if np.isscalar(spacing) else (float(spacing[0]), float(spacing[1]))
    if not (0 < low <= high):
        raise InputError(f"spacing must be positive (a value or a (low, high) range), got {spacing}")
    rng = np.random.default_rng([seed, 131, PILEUP_VERSION])
    rows, cols = shape = (int(shape[0]), int(shape[1]))
    n_lines = int(n_lines)
    size = min(rows, cols)

    angle = rng.uniform(0, np.pi)
    u = np.array([np.cos(angle), np.sin(angle)])          # glide direction (across the lines)
    w = np.array([-u[1], u[0]])                           # along the lines, from trace to trace
    centre = np.array([cols, rows]) / 2 + rng.uniform(-0.05, 0.05, 2) * size
    gap = rng.uniform(0.5, 0.7) * size                    # slip traces apart
    gaps = rng.uniform(low, high, max(n_lines - 1, 0))
    offsets = np.concatenate([[0.0], np.cumsum(gaps)])
    offsets -= offsets.mean()
    bow = rng.uniform(-0.15, 0.15) * gap                  # the lines of a pile-up bow alike
    t = np.linspace(0.0, 1.0, int(gap) + 1)
    # each line's own wiggle is small next to the spacing, so neighbours never cross
    wiggle_amp = min(0.15 * low, 0.01 * gap)
    line_sigma = float(rng.uniform(*sigma)) if not np.isscalar(sigma) else float(sigma)
    line_contrast = rng.uniform(0.3, 0.45)
    trace_contrast = rng.uniform(0.1, 0.2)

    canvas = _Canvas(shape)
    canvas.slip_traces(rng, angle=angle, centre=centre, gap=gap, across=w, sigma=2.0 * line_sigma,
                       contrast=trace_contrast)
    lines = []
    for i in range(n_lines):
        along = offsets[i] + bow * np.sin(np.pi * t) + curves._smooth_wiggle(len(t), rng, amplitude=wiggle_amp)
        curve = curves.resample(centre + along[:, None] * u + ((t - 0.5) * gap)[:, None] * w)
        contrast = line_contrast * rng.uniform(0.85, 1.15)
        canvas.line(curve, sigma=line_sigma, contrast=contrast, label=1, style={"phase": 0.0})
        lines.append(_clip_to_image(curve, shape))

    texture = perlin_background(shape, draw_perlin_params(rng), rng, size=max(rows, cols)) - 0.5
    texture *= rng.uniform(0.05, 0.15)
    grain = ndimage.gaussian_filter(rng.normal(0, 1, shape), rng.uniform(1.0, 2.0))
    texture += grain * rng.uniform(0.02, 0.05) / max(float(grain.std()), 1e-9)
    level = rng.uniform(0.5, 0.7)
    image = level * (1 + texture) * np.clip(1 + canvas.contrast, 0.02, None)
    image = _shot_noise(rng, image, blur=0.5, dose=dose).astype(np.float32)
    # the instance truth: the same radius as the binary mask, the nearer line wins
    radius = float(np.clip(0.8 * line_sigma, 1.0, 3.0))
    instances = instance_image(lines, shape, radius=radius)
    mask = canvas.mask.copy()
    mask[instances > 0] = 1
    params = {"seed": seed, "version": PILEUP_VERSION, "shape": list(shape), "n_lines": n_lines,
              "spacing": [low, high], "gaps": [float(g) for g in gaps], "glide_angle_deg": float(np.degrees(angle)),
              "trace_gap": float(gap), "bow": float(bow), "sigma": line_sigma, "line_contrast": float(line_contrast),
              "trace_contrast": float(trace_contrast), "dose": float(dose), "instance_radius": radius}
    return PileUp(image=image, mask=mask, instances=instances, curves=lines, params=params)
