"""Synthetic in-situ time series: a pile-up whose dislocations glide with known velocities, under drift.

The test oracle of :mod:`napari_stereo_tem.stereo.tracking` (DESIGN 3.13).
A pile-up as in seed 001 (two slip traces, nearly parallel dislocations
between them) sits in a textured specimen. From frame to frame

- every dislocation glides along the slip direction at its own constant
  velocity (px/frame, in the specimen's frame);
- one dislocation appears part-way through (emitted at the tail of the
  pile-up) and one leaves (it is absorbed at the head) before the end;
- the whole field of view drifts by a known amount (the specimen, its texture,
  black dots and slip traces move together);
- each frame gets its own shot noise.

Lines are drawn with the single-micrograph renderer (:mod:`.micrograph`),
so they look like the detector's training data. The truth is exact: the drift
of every frame, and per line its frames, its curve in image coordinates, the
centroid of that curve in the specimen's frame (drift removed) and its velocity.

Typical use::

    series = make_time_series(3, shape=(128, 128), n_frames=8)
    series.frames          # (n_frames, rows, cols) float32
    series.drift           # (n_frames, 2): (dx, dy) of frame k relative to frame 0
    series.lines[0]        # {"line_id", "velocity", "frames", "centroids", "curves"}
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from . import curves
from .background import draw_perlin_params, perlin_background
from .micrograph import _Canvas, _shot_noise
from .seeds import check_seed

__all__ = ["TimeSeries", "make_time_series", "sweep_bend_contour", "TIMESERIES_VERSION"]

#: Bumped whenever a seed would give a different series.
TIMESERIES_VERSION = 1


@dataclass
class TimeSeries:
    """A synthetic frame series and its truth.

    Attributes
    ----------
    frames : ndarray, float32, (n_frames, rows, cols) in [0, 1]
        Bright field: dark lines on a brighter background.
    masks : ndarray, uint8, (n_frames, rows, cols)
        0 background, 1 dislocation, 2 slip trace.
    drift : ndarray, float64, (n_frames, 2)
        ``(dx, dy)``: where a specimen point of frame 0 lies in frame ``k``,
        minus where it lies in frame 0 (pixels); ``drift[0] = (0, 0)``.
    lines : list of dict
        Per dislocation: ``line_id``; ``velocity`` ``(vx, vy)`` in px/frame in the
        specimen's frame; ``frames`` (the frames it is present in, increasing);
        ``centroids`` ``(len(frames), 2)`` of ``(x, y)`` in the specimen's frame
        (image coordinates of frame 0); ``curves``: its ``(n, 2)`` curve of
        ``(x, y)`` in each of those frames' image coordinates.
    params : dict
        What was drawn (JSON-serialisable).
    """

    frames: np.ndarray
    masks: np.ndarray
    drift: np.ndarray
    lines: list
    params: dict = field(default_factory=dict)


def _drift_path(rng, n_frames: int, drift_px: float) -> np.ndarray:
    """A smooth random walk of steps about ``drift_px`` long, starting at (0, 0)."""
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.3, n_frames - 1))
    step = drift_px * rng.uniform(0.6, 1.4, n_frames - 1)
    steps = np.column_stack([step * np.cos(heading), step * np.sin(heading)])
    return np.vstack([[0.0, 0.0], np.cumsum(steps, axis=0)])


def make_time_series(seed: int, *, shape=(128, 128), n_frames: int = 8, n_lines: int = 4,
                     speed: float = 2.0, drift_px: float = 1.5, dose: float = 400.0,
                     appear_leave: bool = True) -> TimeSeries:
    """A pile-up gliding under drift, fully determined by ``seed``.

    Parameters
    ----------
    seed : int
        Non-negative.
    shape : (rows, cols)
    n_frames : int
        At least 2.
    n_lines : int
        Dislocations present from the first frame (one more appears when
        ``appear_leave``, and one of these leaves).
    speed : float
        Typical glide speed (px/frame); each line gets 0.5-1.5 times it.
    drift_px : float
        Typical drift per frame (px).
    dose : float
        Electrons per pixel at the background level (shot noise).
    appear_leave : bool
        Whether a line appears part-way through and one leaves.

    Returns
    -------
    TimeSeries
    """
    seed = check_seed(seed)
    if int(n_frames) < 2:
        raise ValueError(f"n_frames must be at least 2, got {n_frames}")
    rng = np.random.default_rng([seed, 97, TIMESERIES_VERSION])
    rows, cols = shape = (int(shape[0]), int(shape[1]))
    n_frames, n_lines = int(n_frames), int(n_lines)
    size = min(rows, cols)

    # the pile-up, in the specimen's frame (image coordinates of frame 0)
    angle = rng.uniform(0, np.pi)
    u = np.array([np.cos(angle), np.sin(angle)])          # glide direction
    w = np.array([-u[1], u[0]])                           # along the lines, across the traces
    centre = np.array([cols, rows]) / 2 + rng.uniform(-0.05, 0.05, 2) * size
    gap = rng.uniform(0.4, 0.55) * size                   # slip traces apart
    direction = rng.choice([-1.0, 1.0])
    spacing = rng.uniform(14.0, 18.0) * size / 128
    glide = direction * speed * rng.uniform(0.8, 1.2)
    total = n_lines + int(appear_leave)
    # glide velocities: each line its own, but neighbours never close in by more than a few px
    velocities = glide * (1 + rng.uniform(-0.25, 0.25, total))
    travel = glide * (n_frames - 1)
    start = -travel / 2 - direction * spacing * (np.arange(total) - (total - 1) / 2)
    appear_at = n_frames // 3 if appear_leave else None
    leave_at = (2 * n_frames) // 3 if appear_leave else None
    shapes = []
    bow0 = rng.uniform(-0.12, 0.12) * gap                 # the lines of a pile-up bow alike
    for i in range(total):
        t = np.linspace(0.0, 1.0, int(gap) + 1)
        bow = (bow0 + rng.uniform(-0.02, 0.02) * gap) * np.sin(np.pi * t)
        shapes.append(np.column_stack([bow, (t - 0.5) * gap]))   # (along u, along w)

    drift = _drift_path(rng, n_frames, drift_px)
    pad = int(np.ceil(np.abs(drift).max())) + 4
    texture = perlin_background((rows + 2 * pad, cols + 2 * pad), draw_perlin_params(rng), rng,
                                size=max(rows, cols)) - 0.5
    texture *= rng.uniform(0.05, 0.15)
    # fine amorphous texture and black dots: the static detail the drift is measured on
    grain = ndimage.gaussian_filter(rng.normal(0, 1, texture.shape), rng.uniform(1.0, 2.0))
    texture += grain * rng.uniform(0.03, 0.06) / max(float(grain.std()), 1e-9)
    n_dots = int(rng.integers(10, 25))
    impulses = np.zeros(texture.shape)
    impulses[rng.integers(0, texture.shape[0], n_dots), rng.integers(0, texture.shape[1], n_dots)] = \
        rng.uniform(0.2, 0.5, n_dots)
    texture -= ndimage.gaussian_filter(impulses, 1.5) * 2 * np.pi * 1.5 ** 2
    trace_contrast = rng.uniform(0.1, 0.2)
    line_contrast = rng.uniform(0.35, 0.5)
    sigma = rng.uniform(1.0, 1.5) * size / 128
    level = rng.uniform(0.5, 0.7)

    lines = [{"line_id": i, "velocity": (velocities[i] * u).tolist(), "frames": [], "centroids": [], "curves": []}
             for i in range(total)]
    frames = np.zeros((n_frames, rows, cols), np.float32)
    masks = np.zeros((n_frames, rows, cols), np.uint8)
    for k in range(n_frames):
        d = drift[k]
        canvas = _Canvas(shape)
        canvas.slip_traces(rng, angle=angle, centre=centre, gap=gap, across=w, sigma=2.0 * sigma,
                           contrast=trace_contrast, shift=d)
        for i in range(total):
            # line ``total - 1`` (the tail) appears; line 0 (the head) leaves
            if appear_leave and ((i == total - 1 and k < appear_at) or (i == 0 and k >= leave_at)):
                continue
            s = start[i] + velocities[i] * k
            local = shapes[i]
            specimen = centre + (s + local[:, 0])[:, None] * u + local[:, 1][:, None] * w
            curve = curves.resample(specimen + d)
            canvas.line(curve, sigma=sigma, contrast=line_contrast, label=1, style={"phase": 0.0})
            lines[i]["frames"].append(k)
            lines[i]["centroids"].append(curves.resample(specimen, 0.5).mean(axis=0).tolist())
            lines[i]["curves"].append(curve)
        # the texture moves with the specimen: sample the padded texture at the drifted position
        moved = ndimage.shift(texture, (d[1], d[0]), order=1, mode="nearest")[pad:pad + rows, pad:pad + cols]
        image = level * (1 + moved) * np.clip(1 + canvas.contrast, 0.02, None)
        frames[k] = _shot_noise(rng, image, blur=0.6, dose=dose)
        masks[k] = canvas.mask
    for line in lines:
        line["centroids"] = np.asarray(line["centroids"], float).reshape(-1, 2)
    params = {"seed": seed, "version": TIMESERIES_VERSION, "shape": list(shape), "n_frames": n_frames,
              "n_lines": n_lines, "appear_leave": bool(appear_leave), "appear_at": appear_at,
              "leave_at": leave_at, "glide_angle_deg": float(np.degrees(angle)), "speed": float(speed),
              "drift_px": float(drift_px), "dose": float(dose), "sigma": float(sigma),
              "line_contrast": float(line_contrast), "spacing": float(spacing), "dots": n_dots}
    return TimeSeries(frames=frames, masks=masks, drift=drift, lines=lines, params=params)


def sweep_bend_contour(frames, *, seed: int, speed_px: float = 6.0, width_px: float | None = None,
                       depth: float = 0.45, flicker: float = 0.0) -> np.ndarray:
    """Frames of a series with what a straining holder adds: a bend contour sweeping across, a flickering beam.

    A bend contour (a broad dark band where the bent foil meets the Bragg condition) crosses the field
    at ``speed_px`` per frame, independently of the drift (the foil bends as it is strained), at an angle
    drawn from ``seed``, near the centre half-way through the series; ``width_px`` is its half width
    (default a tenth of the field) and ``depth`` its darkening at the centre. With ``flicker`` each
    frame's brightness is also scaled by a factor drawn uniformly within ``1 +- flicker`` (beam current,
    automatic gain). The truth of the series (drift, lines) does not change. Returns new frames (float32).
    """
    rng = np.random.default_rng(check_seed(seed) + 7_000_003)
    frames = np.asarray(frames, dtype=np.float32)
    n, rows, cols = frames.shape
    width = float(width_px) if width_px else 0.1 * max(rows, cols)
    angle = rng.uniform(0.0, np.pi)
    normal = np.array([np.cos(angle), np.sin(angle)])
    yy, xx = np.mgrid[0:rows, 0:cols]
    across = (xx - (cols - 1) / 2.0) * normal[0] + (yy - (rows - 1) / 2.0) * normal[1]
    middle = rng.uniform(-0.2, 0.2) * min(rows, cols)   # where it is half-way through the series
    out = np.empty_like(frames)
    for k in range(n):
        centre = middle + speed_px * (k - (n - 1) / 2.0)
        band = 1.0 - depth * np.exp(-(((across - centre) / width) ** 2))
        gain = 1.0 + rng.uniform(-flicker, flicker) if flicker else 1.0
        out[k] = frames[k] * band * gain
    return out
