"""The 3D model a synthetic image is a projection of.

A foil of thickness ``t`` fills ``-t/2 <= z <= t/2`` (``z`` along the beam, in
pixels, ``x`` = column, ``y`` = row). A **group** is one glide plane: it cuts
the top surface in a slip trace through a point ``C`` with direction
``u = (cos a, sin a, 0)`` and the bottom surface in the parallel trace through
``C + w * slip_width + (0, 0, t)``, ``w = (-sin a, cos a, 0)``. Each
dislocation of the group is a smooth curve in that plane from the top trace to
the bottom one::

    P(tau) = C + (s_i + bow * sin(pi tau) + wiggle(tau)) u + tau (slip_width w + t e_z)

for ``tau`` in ``[0, 1]``; a pile-up holds several such curves offset along
the slip trace (``s_i``). Loops are ellipses inside a glide plane. Distractors
(mask class 2) are the slip traces themselves and grain boundaries (a plane
through the foil, seen as a fringed band). The background texture lies on a
smooth depth surface ``z = h(x, y)`` inside the foil so that it has parallax.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..checks import InputError
from .background import draw_perlin_params, perlin_background, perlin_noise
from .seeds import check_seed

__all__ = ["DislocationScene", "make_scene", "surface_depth"]


@dataclass
class DislocationScene:
    """A 3D dislocation model and what is needed to render it.

    Attributes
    ----------
    shape : (rows, cols)
        Image shape the scene was laid out for.
    foil_thickness : float
        ``t`` in pixels; the foil is ``-t/2 <= z <= t/2``.
    lines : list of ndarray, each (n, 3)
        Dislocations (and loops, closed: first point repeated last) as
        polylines ``(x, y, z)`` with about 1 px spacing. The truth is the
        piecewise-linear curve through these points.
    line_width : list of float
        Gaussian sigma (px) of each line's contrast profile.
    line_contrast : list of float
        Fractional darkening (bright field) or brightening (dark field).
    line_group : list of int
        Group of each line (``-1`` for loops outside any group).
    traces : list of ndarray, each (n, 3)
        Slip traces (straight polylines on the surfaces): mask class 2.
    trace_contrast : list of float
        Signed: positive darkens, negative brightens.
    grain_boundaries : list of dict
        ``point`` (x, y) of its top-surface line, ``angle`` (rad) of that line,
        ``offset`` (px in the image, across the line, from the top to the
        bottom line), ``fringes``, ``contrast``.
    particles : ndarray, shape (n, 3)
        Small surface particles ("dirt", precipitates) at ``z = -t/2`` or
        ``+t/2``: background detail with parallax (mask class 0).
    particle_sigma, particle_contrast : ndarray, shape (n,)
        Gaussian sigma (px) and signed darkening of each particle.
    depth_surface : dict
        Parameters of ``h(x, y)`` (see :func:`surface_depth`).
    texture : ndarray, shape (rows, cols + 2 * pad)
        Background texture in ``[0, 1]`` on the specimen, padded in x by ``pad``.
    bend_field : ndarray, same shape as ``texture``
        Smooth field whose level sets are the bend contours.
    pad : int
        Padding of ``texture`` in x, pixels.
    params : dict
        Every drawn parameter, JSON-serialisable.
    """

    shape: tuple[int, int]
    foil_thickness: float
    lines: list = field(default_factory=list)
    line_width: list = field(default_factory=list)
    line_contrast: list = field(default_factory=list)
    line_group: list = field(default_factory=list)
    traces: list = field(default_factory=list)
    trace_contrast: list = field(default_factory=list)
    grain_boundaries: list = field(default_factory=list)
    particles: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    particle_sigma: np.ndarray = field(default_factory=lambda: np.zeros(0))
    particle_contrast: np.ndarray = field(default_factory=lambda: np.zeros(0))
    depth_surface: dict = field(default_factory=dict)
    texture: np.ndarray | None = None
    bend_field: np.ndarray | None = None
    pad: int = 0
    params: dict = field(default_factory=dict)


def surface_depth(x, y, surface: dict) -> np.ndarray:
    """Depth ``h(x, y)`` of the background surface: a plane plus a few smooth waves."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    h = surface["z0"] + surface["gx"] * (x - surface["xc"]) + surface["gy"] * (y - surface["yc"])
    for amp, kx, ky, phase in surface["waves"]:
        h = h + amp * np.cos(kx * x + ky * y + phase)
    return h


def _resample(points: np.ndarray, spacing: float) -> np.ndarray:
    """Resample a polyline to about ``spacing`` between points (3D arc length)."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(int(np.ceil(arc[-1] / spacing)) + 1, 2)
    s = np.linspace(0.0, arc[-1], n)
    return np.column_stack([np.interp(s, arc, points[:, k]) for k in range(3)])


def _glide_group(rng, shape, t, max_lines, gid):
    rows, cols = shape
    angle = float(rng.uniform(0.0, np.pi))
    u = np.array([np.cos(angle), np.sin(angle), 0.0])
    w = np.array([-np.sin(angle), np.cos(angle), 0.0])
    slip_width = float(rng.uniform(0.3, 2.5) * t)
    sign = 1.0 if rng.random() < 0.5 else -1.0
    across = sign * slip_width * w + np.array([0.0, 0.0, t])
    centre = np.array([rng.uniform(0.15, 0.85) * cols, rng.uniform(0.15, 0.85) * rows, -t / 2.0])
    centre[:2] -= 0.5 * across[:2]
    n_lines = int(rng.integers(1, max_lines + 1))
    spacing0 = float(rng.uniform(6.0, 40.0))
    ratio = float(rng.uniform(0.75, 1.0))
    bow = float(rng.uniform(-0.3, 0.3) * np.hypot(slip_width, t))
    offsets = np.concatenate([[0.0], np.cumsum(spacing0 * ratio ** np.arange(n_lines - 1))])
    offsets -= offsets.mean()
    tau = np.linspace(0.0, 1.0, 65)
    lines = []
    for off in offsets:
        harmonics = rng.normal(0.0, 0.02 * np.hypot(slip_width, t) / (1 + np.arange(3)), size=3)
        wiggle = sum(a * np.sin((k + 2) * np.pi * tau) for k, a in enumerate(harmonics))
        s = off + (bow * rng.uniform(0.8, 1.2)) * np.sin(np.pi * tau) + wiggle
        pts = centre[None, :] + s[:, None] * u[None, :] + tau[:, None] * across[None, :]
        lines.append(_resample(pts, 1.0))
    half_len = float(rng.uniform(0.4, 1.0) * max(rows, cols))
    traces = []
    for base in (centre, centre + across):
        ends = np.stack([base - half_len * u, base + half_len * u])
        traces.append(_resample(ends, 1.0))
    params = {"group": gid, "trace_angle_deg": float(np.rad2deg(angle)), "slip_width": slip_width,
              "slip_side": sign, "centre": [float(v) for v in centre], "n_lines": n_lines,
              "spacing": spacing0, "spacing_ratio": ratio, "bow": bow}
    return lines, traces, params, (centre, u, across)


def _loop(rng, plane, t):
    centre, u, across = plane
    e2 = across / np.linalg.norm(across)
    along = float(rng.uniform(-40, 40))
    mid = centre + along * u + 0.5 * across
    r2_max = 0.45 * t / max(e2[2], 1e-6)
    r1 = float(rng.uniform(6.0, 35.0))
    r2 = float(min(rng.uniform(6.0, 35.0), r2_max))
    theta = np.linspace(0.0, 2.0 * np.pi, 129)
    pts = mid[None, :] + r1 * np.cos(theta)[:, None] * u[None, :] + r2 * np.sin(theta)[:, None] * e2[None, :]
    pts = _resample(pts, 1.0)
    pts[-1] = pts[0]
    return pts, {"centre": [float(v) for v in mid], "radii": [r1, r2]}


def make_scene(seed: int, *, shape=(512, 512), foil_thickness: float | None = None,
               n_groups: int | None = None, max_pileup: int = 8, loops: bool = False,
               distractors: bool = True, background="perlin", max_tilt_deg: float = 10.0) -> DislocationScene:
    """Draw a random 3D dislocation scene.

    Parameters
    ----------
    seed : int
        Determines everything drawn here.
    shape : (rows, cols)
        Image shape the scene is laid out for.
    foil_thickness : float, optional
        ``t`` in pixels (default: uniform 60..220).
    n_groups : int, optional
        Number of glide-plane groups (pile-ups); default 1..4.
    max_pileup : int
        Largest number of dislocations in one pile-up.
    loops : bool
        Add 1..3 dislocation loops.
    distractors : bool
        Add slip traces and, sometimes, a grain boundary (mask class 2).
    background : {"perlin", "plain"} or ndarray
        Seed-001 Perlin texture, a flat texture (bend contours and noise only,
        for held-out generalisation tests), or a real background patch (2D
        array, any size; it is tiled/cropped and scaled to ``[0, 1]``).
    max_tilt_deg : float
        Largest tilt the texture padding is sized for (larger tilts reflect it).

    Returns
    -------
    DislocationScene
    """
    seed = check_seed(seed)
    rows, cols = int(shape[0]), int(shape[1])
    if rows < 16 or cols < 16:
        raise InputError(f"shape {shape} is too small for a scene; use at least 16 x 16 pixels")
    rng = np.random.default_rng([int(seed), 0])
    t = float(rng.uniform(60.0, 220.0) if foil_thickness is None else foil_thickness)
    if not (np.isfinite(t) and t > 0):
        raise InputError(f"foil_thickness must be a positive number of pixels, got {foil_thickness}")
    groups = int(rng.integers(1, 5) if n_groups is None else n_groups)
    if groups < 0:
        raise InputError(f"n_groups must be >= 0, got {n_groups}")
    scene = DislocationScene(shape=(rows, cols), foil_thickness=t)
    group_params, planes = [], []
    for gid in range(groups):
        lines, traces, gp, plane = _glide_group(rng, (rows, cols), t, max_pileup, gid)
        planes.append(plane)
        group_params.append(gp)
        width, contrast = float(rng.uniform(0.8, 2.0)), float(rng.uniform(0.2, 0.5))
        for line in lines:
            scene.lines.append(line)
            scene.line_width.append(width * float(rng.uniform(0.9, 1.1)))
            scene.line_contrast.append(contrast * float(rng.uniform(0.85, 1.15)))
            scene.line_group.append(gid)
        if distractors and rng.random() < 0.7:
            tc = float(rng.uniform(0.04, 0.12)) * (1.0 if rng.random() < 0.6 else -1.0)
            for tr in traces:
                scene.traces.append(tr)
                scene.trace_contrast.append(tc)
    loop_params = []
    if loops:
        for _ in range(int(rng.integers(1, 4))):
            plane = planes[int(rng.integers(len(planes)))] if planes else _glide_group(
                rng, (rows, cols), t, 1, -1)[3]
            pts, lp = _loop(rng, plane, t)
            scene.lines.append(pts)
            scene.line_width.append(float(rng.uniform(0.8, 2.0)))
            scene.line_contrast.append(float(rng.uniform(0.2, 0.5)))
            scene.line_group.append(-1)
            loop_params.append(lp)
    if distractors and rng.random() < 0.4:
        scene.grain_boundaries.append({
            "point": [float(rng.uniform(0.1, 0.9) * cols), float(rng.uniform(0.1, 0.9) * rows)],
            "angle": float(rng.uniform(0.0, np.pi)), "offset": float(rng.uniform(0.2, 1.0) * t),
            "fringes": int(rng.integers(3, 9)), "contrast": float(rng.uniform(0.1, 0.3))})

    # Background surface: inside the foil, tilted and gently waved, so the texture has parallax.
    amp = 0.3 * t
    scene.depth_surface = {
        "z0": float(rng.uniform(-0.15, 0.15) * t), "xc": (cols - 1) / 2.0, "yc": (rows - 1) / 2.0,
        "gx": float(rng.uniform(-0.3, 0.3) * t / cols), "gy": float(rng.uniform(-0.3, 0.3) * t / rows),
        "waves": [[float(rng.uniform(0.0, amp / 3)), float(k[0]), float(k[1]), float(rng.uniform(0, 2 * np.pi))]
                  for k in rng.normal(0.0, 2 * np.pi / max(rows, cols) * 1.5, size=(3, 2))],
    }
    pad = int(np.ceil(t / 2 * np.sin(np.deg2rad(max_tilt_deg)) + cols / 2 * (1 - np.cos(np.deg2rad(max_tilt_deg))))) + 4
    scene.pad = pad
    tex_shape = (rows, cols + 2 * pad)
    tex_rng = np.random.default_rng([int(seed), 1])
    if isinstance(background, str) and background == "perlin":
        perlin = draw_perlin_params(tex_rng)
        scene.texture = perlin_background(tex_shape, perlin, tex_rng, size=max(rows, cols))
        bg_params = {"kind": "perlin", **perlin}
    elif isinstance(background, str) and background == "plain":
        scene.texture = np.full(tex_shape, 0.5)
        bg_params = {"kind": "plain"}
    elif isinstance(background, str):
        raise InputError(f"background must be 'perlin', 'plain' or a 2D array, got {background!r}")
    else:
        scene.texture = _patch_texture(background, tex_shape, tex_rng)
        bg_params = {"kind": "patch", "patch_shape": list(np.shape(background))}
    if bg_params["kind"] != "plain":  # surface dirt: keypoints with parallax for rectification
        n_part = int(tex_rng.integers(10, 80))
        scene.particles = np.column_stack([tex_rng.uniform(-pad, cols + pad, n_part), tex_rng.uniform(0, rows, n_part),
                                           np.where(tex_rng.random(n_part) < 0.5, -t / 2, t / 2)])
        scene.particle_sigma = tex_rng.uniform(1.0, 3.0, n_part)
        scene.particle_contrast = tex_rng.uniform(0.1, 0.35, n_part) * np.where(tex_rng.random(n_part) < 0.8, 1, -1)
        bg_params["particles"] = [[float(v) for v in row] for row in np.column_stack(
            [scene.particles, scene.particle_sigma, scene.particle_contrast])]
    bend = perlin_noise(tex_shape, float(tex_rng.uniform(1.0, 2.5)) * max(rows, cols), tex_rng)
    scene.bend_field = (bend - bend.min()) / max(float(np.ptp(bend)), 1e-12)
    n_bend = int(tex_rng.integers(0, 3))
    bg_params["bend_levels"] = [float(v) for v in tex_rng.uniform(0.2, 0.8, size=n_bend)]
    bg_params["bend_width"] = float(tex_rng.uniform(0.02, 0.06))
    bg_params["bend_depth"] = float(tex_rng.uniform(0.1, 0.35))

    scene.params = {
        "seed": int(seed), "shape": [rows, cols], "foil_thickness": t, "n_groups": groups,
        "max_pileup": int(max_pileup), "loops": bool(loops), "distractors": bool(distractors),
        "groups": group_params, "loop_params": loop_params,
        "line_width": [float(v) for v in scene.line_width],
        "line_contrast": [float(v) for v in scene.line_contrast],
        "line_group": [int(v) for v in scene.line_group],
        "trace_contrast": [float(v) for v in scene.trace_contrast],
        "grain_boundaries": scene.grain_boundaries, "depth_surface": scene.depth_surface,
        "background": bg_params, "texture_pad": pad,
    }
    return scene


def _patch_texture(patch, shape, rng) -> np.ndarray:
    """Tile (mirrored) and crop a real background patch to ``shape``, scaled to ``[0, 1]``."""
    arr = np.asarray(patch, dtype=np.float64)
    if arr.ndim != 2 or min(arr.shape) < 8:
        raise InputError(f"background patch must be a 2D image of at least 8 x 8 pixels, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.ptp(arr) == 0:
        raise InputError("background patch must be finite and not constant")
    arr = (arr - arr.min()) / np.ptp(arr)
    reps = (int(np.ceil(shape[0] / arr.shape[0])) + 1, int(np.ceil(shape[1] / arr.shape[1])) + 1)
    tile = np.block([[arr[:, ::(-1) ** j][::(-1) ** i] for j in range(reps[1])] for i in range(reps[0])])
    oy = int(rng.integers(0, tile.shape[0] - shape[0] + 1))
    ox = int(rng.integers(0, tile.shape[1] - shape[1] + 1))
    return tile[oy:oy + shape[0], ox:ox + shape[1]].copy()
