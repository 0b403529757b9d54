"""Single micrographs drawn from a wide, randomised family: the detector's training data (DESIGN 3.8, 3.11).

The stereo generator (:mod:`.scene`, :mod:`.render`) makes physically
consistent pairs; this one makes *one* view with far more variety, so that
real images fall inside what the detector saw (domain randomisation):

- **lines**: dark or bright, Gaussian sigma 0.6-4.5 px (widths about 1-10 px),
  contrast from a few percent to bold, widths and contrast varying along a
  line, dotted/oscillating contrast (inclined lines), a dark core with a
  bright fringe, double images, lines fading out at their ends;
- **scenes**: pile-ups of nearly parallel lines between two slip traces (seed
  001), networks, meanders, loops, short inclined segments, black dots,
  precipitates; sometimes no dislocation at all;
- **distractors** (mask class 2): slip traces, grain/lamella boundaries with
  thickness fringes, bend contours, wedge thickness fringes;
- **backgrounds**: seed 001's Perlin model, amorphous texture, mottled
  large-scale contrast, illumination gradients, vignetting, vacuum/saturated
  and very thick (dark) regions;
- **imaging**: blur, Poisson noise over a wide dose range, Gaussian read
  noise, STEM scan-line offsets and jitter, 8-bit quantisation, JPEG
  compression.

A line is labelled 1 only where it is visible at the drawn noise level
(an estimate of its signal-to-noise ratio along ~20 px of line); fainter
stretches are labelled :data:`MASK_IGNORE` (no loss either way).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy import ndimage

from . import curves
from .background import draw_perlin_params, perlin_background, perlin_noise
from .seeds import check_seed

__all__ = ["Micrograph", "make_micrograph", "MASK_IGNORE", "MICROGRAPH_VERSION"]

#: Mask value of pixels that count neither way in training (too faint to call).
MASK_IGNORE = 255
#: Bumped whenever a seed would give a different micrograph.
MICROGRAPH_VERSION = 2


@dataclass
class Micrograph:
    """One synthetic micrograph and its truth.

    Attributes
    ----------
    image : ndarray, float32, (rows, cols) in [0, 1]
        As recorded (bright or dark field; not normalised).
    mask : ndarray, uint8, (rows, cols)
        0 background, 1 dislocation, 2 distractor, 255 ignore.
    bright_lines : bool
        Dislocations brighter than their surroundings (dark-field look).
    params : dict
        What was drawn (JSON-serialisable).
    """

    image: np.ndarray
    mask: np.ndarray
    bright_lines: bool
    params: dict = field(default_factory=dict)


def _loguniform(rng, low, high):
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _line_geometry(curve: np.ndarray, shape, reach: float):
    """Distance to ``curve`` and arc length of the nearest curve point, inside the curve's bounding box.

    Returns ``None`` when the curve misses the image, else ``(rows_slice, cols_slice, dist, arc)``.
    """
    rows, cols = shape
    dense = curves.resample(curve, 0.5)
    arc = np.arange(len(dense)) * 0.5
    pad = int(np.ceil(reach)) + 2
    x0 = max(0, int(np.floor(dense[:, 0].min())) - pad)
    x1 = min(cols, int(np.ceil(dense[:, 0].max())) + pad + 1)
    y0 = max(0, int(np.floor(dense[:, 1].min())) - pad)
    y1 = min(rows, int(np.ceil(dense[:, 1].max())) + pad + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    ix = np.round(dense[:, 0]).astype(int) - x0
    iy = np.round(dense[:, 1]).astype(int) - y0
    inside = (ix >= 0) & (ix < x1 - x0) & (iy >= 0) & (iy < y1 - y0)
    # points just outside the box still shape the distance: clip them onto its border
    ix, iy = np.clip(ix, 0, x1 - x0 - 1), np.clip(iy, 0, y1 - y0 - 1)
    if not inside.any():
        return None
    seeds = np.ones((y1 - y0, x1 - x0), bool)
    index = np.full(seeds.shape, -1, np.int64)
    seeds[iy[inside], ix[inside]] = False
    index[iy[inside], ix[inside]] = np.flatnonzero(inside)
    _, (ny, nx) = ndimage.distance_transform_edt(seeds, return_indices=True)
    nearest = index[ny, nx]
    gy, gx = np.mgrid[y0:y1, x0:x1]
    dist = np.hypot(gx - dense[nearest, 0], gy - dense[nearest, 1])
    return slice(y0, y1), slice(x0, x1), dist, arc[nearest]


class _Canvas:
    """Accumulates signed contrast (negative = darker) and the mask while features are drawn."""

    def __init__(self, shape):
        self.shape = tuple(shape)
        self.contrast = np.zeros(shape, np.float64)
        self.mask = np.zeros(shape, np.uint8)
        self.visibility = np.full(shape, np.inf)     # per-pixel line strength, for the ignore label

    def line(self, curve, *, sigma, contrast, label, style=None):
        """Draw one line of Gaussian ``sigma`` and signed ``contrast`` (positive darkens)."""
        style = style or {}
        reach = 3.5 * sigma * (1 + style.get("width_var", 0)) + 3 * sigma * bool(style.get("fringe"))
        geom = _line_geometry(curve, self.shape, reach)
        if geom is None:
            return
        ys, xs, dist, arc = geom
        length = max(arc.max(), 1.0)
        sig = sigma * (1 + style.get("width_var", 0) * np.sin(2 * np.pi * arc / style.get("width_period", 40)
                                                            + style.get("phase", 0)))
        amp = np.full(arc.shape, float(contrast))
        if style.get("osc_depth", 0) > 0:
            osc = 0.5 + 0.5 * np.cos(2 * np.pi * arc / style["osc_period"] + style.get("phase", 0))
            amp = amp * (1 - style["osc_depth"] * osc)
        fade = style.get("fade", 0.0)
        if fade > 0:
            ends = np.minimum(arc, length - arc) / (fade * length)
            amp = amp * np.clip(ends, 0, 1)
        profile = np.exp(-0.5 * (dist / sig) ** 2)
        if style.get("fringe", 0) > 0:
            profile = profile - style["fringe"] * np.exp(-0.5 * ((dist - 2.2 * sig) / (0.9 * sig)) ** 2)
        self.contrast[ys, xs] -= amp * profile
        if label:
            radius = np.clip(0.8 * sig, 1.0, 3.0)
            on = dist <= radius
            sub = self.mask[ys, xs]
            if label == 1:
                sub[on] = 1
                vis = self.visibility[ys, xs]
                vis[on] = np.minimum(vis[on], np.abs(amp[on]) * np.sqrt(sig[on]))
            else:
                sub[on & (sub == 0)] = label

    def slip_traces(self, rng, *, angle, centre, gap, across, sigma, contrast, shift=0.0):
        """The two straight slip traces bounding a pile-up: ``gap`` px apart along ``across``, label 2.

        ``shift`` moves both (a drifting frame).
        """
        for side in (-1, 1):
            trace = curves.straight_line(rng, self.shape, angle=angle,
                                         through=centre + side * gap / 2 * across + shift)
            self.line(trace, sigma=sigma, contrast=contrast, label=2,
                      style={"phase": 0.0, "width_var": 0.0, "width_period": 60.0})

    def band(self, field_values, *, contrast, label_core=None, label=2):
        """Add ``-contrast * field_values``; label where ``field_values`` exceeds ``label_core``."""
        self.contrast -= contrast * field_values
        if label_core is not None:
            self.mask[(field_values >= label_core) & (self.mask == 0)] = label


def _line_style(rng) -> dict:
    style = {"phase": float(rng.uniform(0, 2 * np.pi)), "width_var": float(rng.uniform(0, 0.35)),
             "width_period": float(rng.uniform(15, 80))}
    if rng.random() < 0.25:      # inclined line: oscillating or dotted contrast
        style.update(osc_depth=float(rng.uniform(0.3, 1.0)), osc_period=float(rng.uniform(4, 16)))
    if rng.random() < 0.25:
        style["fringe"] = float(rng.uniform(0.1, 0.4))
    if rng.random() < 0.3:
        style["fade"] = float(rng.uniform(0.05, 0.3))
    return style


def _dislocations(rng, shape, canvas, base_sigma, params):
    """Draw the scene's dislocations (class 1) and the slip traces of its pile-ups (class 2)."""
    rows, cols = shape
    kinds = ["pileup", "network", "meander", "loops", "segments"]
    weights = np.array([0.3, 0.15, 0.25, 0.15, 0.15])
    n_groups = int(rng.choice([0, 1, 1, 2, 2, 3], p=[0.06, 0.3, 0.2, 0.22, 0.12, 0.1]))
    faint_scene = rng.random() < 0.25
    drawn = []
    for kind in rng.choice(kinds, size=n_groups, p=weights):
        lines, traces = [], []
        if kind == "pileup":
            traces, lines = curves.pileup(rng, shape)
        elif kind == "network":
            lines = curves.network(rng, shape)
        elif kind == "meander":
            lines = [curves.meander(rng, shape) for _ in range(int(rng.integers(1, 8)))]
        elif kind == "loops":
            lines = [curves.loop(rng, shape) for _ in range(int(rng.integers(1, 12)))]
        else:
            lines = [curves.inclined_segment(rng, shape) for _ in range(int(rng.integers(1, 10)))]
        group_sigma = base_sigma * rng.uniform(0.8, 1.25)
        group_contrast = _loguniform(rng, 0.03, 0.3) if faint_scene else _loguniform(rng, 0.1, 0.8)
        for tr in traces:          # slip traces: bold straight distractors
            tc = _loguniform(rng, 0.08, 0.7) * rng.choice([1, 1, 1, -1])
            canvas.line(tr, sigma=_loguniform(rng, 0.7, 3.5), contrast=tc, label=2,
                        style={"phase": 0.0, "width_var": float(rng.uniform(0, 0.2)), "width_period": 60.0})
        for ln in lines:
            style = _line_style(rng)
            sigma = group_sigma * rng.uniform(0.85, 1.15)
            c = group_contrast * rng.uniform(0.7, 1.3)
            canvas.line(ln, sigma=sigma, contrast=c, label=1, style=style)
            if rng.random() < 0.08:     # double image
                canvas.line(curves.offset_curve(ln, rng.choice([-1, 1]) * rng.uniform(2.5, 3.5) * sigma + 1),
                            sigma=sigma, contrast=c * rng.uniform(0.4, 0.9), label=1, style=style)
        drawn.append({"kind": str(kind), "n_lines": len(lines), "sigma": group_sigma, "contrast": group_contrast})
    params["groups"] = drawn


def _smooth_field(rng, shape, wavelength):
    field_values = perlin_noise(shape, wavelength, rng)
    return (field_values - field_values.min()) / max(float(np.ptp(field_values)), 1e-9)


def _distractors(rng, shape, canvas, params):
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    out = {}
    if rng.random() < 0.45:       # bend contours: broad bands along level sets of a smooth field
        f = _smooth_field(rng, shape, rng.uniform(0.5, 2.0) * max(shape))
        n = int(rng.integers(1, 4))
        width = _loguniform(rng, 0.01, 0.08)
        sign = rng.choice([1, 1, 1, -1])
        for level in rng.uniform(0.2, 0.8, n):
            band = np.exp(-0.5 * ((f - level) / width) ** 2)
            strength = _loguniform(rng, 0.08, 0.6)
            canvas.band(band, contrast=sign * strength, label_core=0.75 if strength >= 0.15 else None)
        out["bend_contours"] = n
    if rng.random() < 0.25:       # grain or lamella boundary: straight, fringed band (and a step)
        angle = rng.uniform(0, np.pi)
        if rng.random() < 0.5:
            angle = rng.normal(0, 0.15)  # lamella boundaries often run nearly along the rows
        n = np.array([-np.sin(angle), np.cos(angle)])
        d = (xx - rng.uniform(0, cols)) * n[0] + (yy - rng.uniform(0, rows)) * n[1]
        width = rng.uniform(3, 60)
        period = rng.uniform(2.5, 12)
        inside = (d >= 0) & (d <= width)
        fringes = (0.5 + 0.5 * np.cos(2 * np.pi * d / period)) * inside
        canvas.band(fringes, contrast=_loguniform(rng, 0.05, 0.4) * rng.choice([1, -1]))
        canvas.mask[inside & (canvas.mask == 0)] = 2
        canvas.contrast += rng.uniform(-0.15, 0.15) * (d > width)
        out["boundary"] = {"angle": float(angle), "width": float(width)}
    if rng.random() < 0.1:        # wedge: thickness fringes parallel to the edge, vacuum beyond
        f = _smooth_field(rng, shape, rng.uniform(1.0, 3.0) * max(shape)) * max(shape) * rng.uniform(0.5, 1.5)
        edge = rng.uniform(f.min() + 10, f.min() + 0.4 * np.ptp(f) + 11)
        d = f - edge
        period = rng.uniform(4, 20)
        fringes = (0.5 + 0.5 * np.cos(2 * np.pi * d / period)) * np.exp(-np.clip(d, 0, None) / (3 * period)) * (d > 0)
        canvas.band(fringes, contrast=_loguniform(rng, 0.1, 0.5), label_core=0.6)
        canvas.contrast[d <= 0] = rng.uniform(0.2, 0.6)    # vacuum: bright and flat in bright field
        canvas.mask[d <= 0] = 0
        out["wedge_period"] = float(period)
    if rng.random() < 0.15:       # lone slip traces
        for _ in range(int(rng.integers(1, 4))):
            canvas.line(curves.straight_line(rng, shape, bend=rng.normal(0, 3)),
                        sigma=_loguniform(rng, 0.7, 3.0), contrast=_loguniform(rng, 0.08, 0.6) * rng.choice([1, 1, -1]),
                        label=2, style={"phase": 0.0, "width_var": 0.0, "width_period": 60.0})
        out["slip_traces"] = True
    params["distractors"] = out


def _spots(rng, shape, canvas, params):
    """Black dots (small loops seen end-on) and precipitates: background detail, class 0."""
    rows, cols = shape
    n_dots = int(rng.choice([0, rng.integers(1, 15), rng.integers(15, 80)], p=[0.35, 0.4, 0.25]))
    dots = np.zeros(shape)
    if n_dots:
        sig = np.exp(rng.uniform(np.log(0.8), np.log(4.0), n_dots))
        amp = rng.uniform(0.1, 0.8, n_dots)
        pos = np.column_stack([rng.uniform(0, rows, n_dots), rng.uniform(0, cols, n_dots)])
        idx = np.clip(pos.astype(int), 0, [rows - 1, cols - 1])
        for s in np.unique(np.round(sig * 2) / 2):
            pick = np.round(sig * 2) / 2 == s
            impulses = np.zeros(shape)
            np.add.at(impulses, (idx[pick, 0], idx[pick, 1]), amp[pick] * 2 * np.pi * s * s)
            dots += ndimage.gaussian_filter(impulses, s)
        canvas.contrast -= np.clip(dots, 0, 0.9)
    n_prec = int(rng.choice([0, rng.integers(1, 8)], p=[0.8, 0.2]))
    if n_prec:
        yy, xx = np.mgrid[0:rows, 0:cols]
        for _ in range(n_prec):
            r = rng.uniform(3, 25)
            d = np.hypot(xx - rng.uniform(0, cols), yy - rng.uniform(0, rows))
            disc = 1 / (1 + np.exp((d - r) / rng.uniform(0.5, 2)))
            rim = np.exp(-0.5 * ((d - r) / 1.5) ** 2) * rng.uniform(0, 0.3)
            canvas.contrast -= rng.uniform(-0.3, 0.4) * disc + rim
    params["dots"], params["precipitates"] = n_dots, n_prec


def _background(rng, shape, params) -> np.ndarray:
    """A background around 1 (multiplicative texture, mottling, illumination)."""
    rows, cols = shape
    kind = rng.choice(["perlin", "amorphous", "mottled"])
    if kind == "perlin":
        tex = perlin_background(shape, draw_perlin_params(rng), rng) - 0.5
        tex *= _loguniform(rng, 0.03, 0.4)
    elif kind == "amorphous":
        tex = ndimage.gaussian_filter(rng.normal(0, 1, shape), rng.uniform(0.6, 2.0))
        tex *= _loguniform(rng, 0.005, 0.12) / max(tex.std(), 1e-9)
    else:
        tex = ndimage.gaussian_filter(rng.normal(0, 1, shape), rng.uniform(0.6, 1.5))
        tex *= _loguniform(rng, 0.003, 0.06) / max(tex.std(), 1e-9)
    mottle = ndimage.gaussian_filter(rng.normal(0, 1, shape), rng.uniform(8, 60))
    tex = tex + mottle * rng.uniform(0.0, 0.35) / max(mottle.std(), 1e-9)
    y = (np.arange(rows) - rows / 2)[:, None] / rows
    x = (np.arange(cols) - cols / 2)[None, :] / cols
    illum = 1 + rng.uniform(-0.4, 0.4) * x + rng.uniform(-0.4, 0.4) * y
    if rng.random() < 0.3:
        cy, cx = rng.uniform(-0.5, 0.5, 2)
        illum = illum * (1 - rng.uniform(0.1, 0.6) * ((x - cx) ** 2 + (y - cy) ** 2))
    params["background"] = str(kind)
    return (1 + tex) * illum


def _shot_noise(rng, image, *, blur: float, dose: float) -> np.ndarray:
    """``image`` blurred, with Poisson noise at ``dose`` electrons per unit, stretched to [0, 1] (0.5-99.5 %)."""
    image = ndimage.gaussian_filter(image, blur)
    image = rng.poisson(np.clip(image, 0, None) * dose) / dose
    low, high = np.percentile(image, [0.5, 99.5])
    return np.clip((image - low) / max(high - low, 1e-9), 0, 1)


def _record(rng, image, mask, params) -> tuple[np.ndarray, np.ndarray]:
    """Blur, noise, scan distortions, quantisation and compression; returns the image and the mask."""
    rows, cols = image.shape
    if rng.random() < 0.8:
        image = ndimage.gaussian_filter(image, _loguniform(rng, 0.3, 1.5))
    dose = _loguniform(rng, 30.0, 30000.0)
    image = rng.poisson(np.clip(image, 0, None) * dose) / dose
    read = _loguniform(rng, 0.002, 0.04) if rng.random() < 0.5 else 0.0
    image = image + rng.normal(0, read, image.shape)
    params.update(dose=dose, read_noise=read)
    if rng.random() < 0.15:       # STEM: per-row offsets and sideways jitter of whole rows
        image = image + rng.normal(0, rng.uniform(0.005, 0.05), (rows, 1))
        jitter = ndimage.gaussian_filter1d(rng.normal(0, 1, rows), rng.uniform(0.5, 3)) * rng.uniform(0, 1.5)
        map_x = (np.arange(cols)[None, :] + jitter[:, None]).astype(np.float32)
        map_y = np.repeat(np.arange(rows, dtype=np.float32)[:, None], cols, axis=1)
        image = cv2.remap(image.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        mask = cv2.remap(mask, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT)
        params["scan_jitter"] = True
    # exposure: map to 8 bits (some saturation at either end), maybe JPEG
    low, high = np.percentile(image, [rng.uniform(0, 3), 100 - rng.uniform(0, 3)])
    image = np.clip((image - low) / max(high - low, 1e-9), 0, 1)
    if rng.random() < 0.6:
        image = np.round(image * 255) / 255
    if rng.random() < 0.35:
        quality = int(rng.integers(20, 95))
        ok, buf = cv2.imencode(".jpg", np.round(image * 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality])
        image = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE).astype(np.float64) / 255
        params["jpeg_quality"] = quality
    return image.astype(np.float32), mask


def make_micrograph(seed: int, *, shape=(256, 256)) -> Micrograph:
    """One randomised micrograph and its mask, fully determined by ``seed``.

    Parameters
    ----------
    seed : int
        Non-negative; use the ranges of :mod:`.seeds` (train/val/test).
    shape : (rows, cols)

    Returns
    -------
    Micrograph
    """
    seed = check_seed(seed)
    rng = np.random.default_rng([seed, 41, MICROGRAPH_VERSION])
    shape = (int(shape[0]), int(shape[1]))
    params: dict = {"seed": seed, "version": MICROGRAPH_VERSION}
    canvas = _Canvas(shape)
    base_sigma = _loguniform(rng, 0.6, 4.5)
    params["base_sigma"] = base_sigma
    _distractors(rng, shape, canvas, params)
    _spots(rng, shape, canvas, params)
    _dislocations(rng, shape, canvas, base_sigma, params)

    bright_lines = bool(rng.random() < 0.2)
    background = _background(rng, shape, params)
    if bright_lines:   # dark field: a dim background, features brighter
        level = rng.uniform(0.08, 0.35)
        image = level * background + rng.uniform(0.4, 1.0) * np.clip(-canvas.contrast, -0.5, None) * (1 - level)
    else:
        level = rng.uniform(0.35, 0.8)
        image = level * background * np.clip(1 + canvas.contrast, 0.02, None)
    params.update(bright_lines=bright_lines, level=float(level))
    image, mask = _record(rng, image, canvas.mask, params)

    # lines too faint for the drawn noise are neither right nor wrong
    clutter = float(np.std(background - ndimage.gaussian_filter(background, 3.0)))
    noise_rel = np.sqrt(1 / (params["dose"] * level) + (params["read_noise"] / level) ** 2 + 4 * clutter ** 2)
    snr = canvas.visibility * np.sqrt(20.0) / noise_rel
    faint = (mask == 1) & (snr < 3.0)
    mask = mask.copy()
    mask[faint] = MASK_IGNORE
    params["faint_pixels"] = int(faint.sum())
    return Micrograph(image=image, mask=mask, bright_lines=bright_lines, params=params)
