"""Random 2D curves for single-view micrographs: meanders, pile-ups, networks, loops, inclined segments.

Every function takes a ``numpy.random.Generator`` and the image shape
``(rows, cols)`` and returns curves as ``(n, 2)`` float arrays of ``(x, y)``
pixel coordinates (about 1 px apart; closed curves repeat their first point).
They are the geometry of :mod:`.micrograph`; what a curve looks like (width,
contrast, polarity) is decided there.
"""

from __future__ import annotations

import numpy as np

__all__ = ["resample", "meander", "pileup", "network", "loop", "inclined_segment", "straight_line",
           "offset_curve"]


def resample(points, spacing: float = 1.0) -> np.ndarray:
    """The polyline through ``points`` resampled at equal arc-length ``spacing``."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) < 2:
        return points.copy()
    seg = np.hypot(*np.diff(points, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    if arc[-1] <= 0:
        return points[:1].copy()
    s = np.linspace(0.0, arc[-1], max(2, int(np.ceil(arc[-1] / spacing)) + 1))
    return np.column_stack([np.interp(s, arc, points[:, 0]), np.interp(s, arc, points[:, 1])])


def _smooth_wiggle(n: int, rng: np.random.Generator, *, amplitude: float, n_modes: int = 3) -> np.ndarray:
    """A smooth random function on ``n`` samples of ``[0, 1]`` (a few sine modes), zero at neither end."""
    t = np.linspace(0.0, 1.0, n)
    out = np.zeros(n)
    for k in range(1, n_modes + 1):
        out += rng.normal(0.0, amplitude / k) * np.sin(np.pi * k * t + rng.uniform(0, 2 * np.pi))
    return out


def meander(rng: np.random.Generator, shape, *, length: float | None = None) -> np.ndarray:
    """A smooth meandering line: a random walk of slowly turning direction."""
    rows, cols = shape
    length = float(length if length is not None else rng.uniform(0.15, 1.2) * max(rows, cols))
    n = max(8, int(length))
    turn = np.cumsum(rng.normal(0.0, rng.uniform(0.005, 0.05), n))
    turn = turn - np.linspace(0, turn[-1], n) * rng.uniform(0, 1)
    heading = rng.uniform(0, 2 * np.pi) + turn
    steps = np.column_stack([np.cos(heading), np.sin(heading)])
    start = np.array([rng.uniform(-0.1, 1.1) * cols, rng.uniform(-0.1, 1.1) * rows])
    return resample(start + np.cumsum(steps, axis=0))


def straight_line(rng: np.random.Generator, shape, *, angle: float | None = None, through=None,
                  bend: float = 0.0) -> np.ndarray:
    """A (nearly) straight line crossing the whole image, slightly bent by ``bend`` px."""
    rows, cols = shape
    angle = float(rng.uniform(0, np.pi) if angle is None else angle)
    centre = np.asarray(through if through is not None else (rng.uniform(0, cols), rng.uniform(0, rows)), float)
    half = 0.75 * np.hypot(rows, cols)
    s = np.linspace(-half, half, int(2 * half) + 1)
    u = np.array([np.cos(angle), np.sin(angle)])
    w = np.array([-u[1], u[0]])
    sag = bend * (1 - (s / half) ** 2)
    return centre + s[:, None] * u + sag[:, None] * w


def pileup(rng: np.random.Generator, shape, *, n_lines: int | None = None):
    """A pile-up between two slip traces, as in seed 001.

    Returns
    -------
    traces : list of (n, 2) arrays
        The two parallel slip traces (where the glide plane meets the surfaces).
    lines : list of (n, 2) arrays
        Dislocations running from one trace to the other, nearly parallel,
        their spacing shrinking towards the head of the pile-up.
    """
    rows, cols = shape
    angle = rng.uniform(0, np.pi)
    u = np.array([np.cos(angle), np.sin(angle)])
    w = np.array([-u[1], u[0]])
    centre = np.array([rng.uniform(0.2, 0.8) * cols, rng.uniform(0.2, 0.8) * rows])
    gap = rng.uniform(0.08, 0.6) * min(rows, cols)
    bend = rng.uniform(-0.05, 0.05) * gap
    traces = [straight_line(rng, shape, angle=angle, through=centre + side * gap / 2 * w, bend=bend)
              for side in (-1, 1)]
    n_lines = int(n_lines if n_lines is not None else rng.integers(3, 18))
    head = rng.uniform(-0.5, 0.5) * max(rows, cols)
    spacing0 = rng.uniform(3.0, 25.0)
    growth = rng.uniform(1.0, 1.25)
    skew = rng.uniform(-1.0, 1.0) * gap          # how far along u the line's far end lies
    bow = rng.uniform(-0.35, 0.35) * gap
    direction = rng.choice([-1.0, 1.0])
    lines, s = [], head
    for i in range(n_lines):
        t = np.linspace(0.0, 1.0, max(8, int(np.hypot(gap, skew)) + 1))
        along = s + skew * t + (bow + rng.normal(0, 0.05 * gap)) * np.sin(np.pi * t)
        along = along + _smooth_wiggle(len(t), rng, amplitude=rng.uniform(0, 0.04) * gap)
        across = (t - 0.5) * gap + bend * (1 - (2 * (s + skew * t) / (0.75 * np.hypot(rows, cols))) ** 2)
        lines.append(resample(centre + along[:, None] * u + across[:, None] * w))
        s += direction * spacing0 * growth ** i * rng.uniform(0.8, 1.2)
    return traces, lines


def network(rng: np.random.Generator, shape) -> list[np.ndarray]:
    """A dislocation network: gently curved segments joining random nodes to their neighbours."""
    rows, cols = shape
    n_nodes = int(rng.integers(4, 14))
    nodes = np.column_stack([rng.uniform(-0.1, 1.1, n_nodes) * cols, rng.uniform(-0.1, 1.1, n_nodes) * rows])
    lines = []
    for i in range(n_nodes):
        dist = np.hypot(*(nodes - nodes[i]).T)
        for j in np.argsort(dist)[1:int(rng.integers(2, 4))]:
            if j < i and i in np.argsort(np.hypot(*(nodes - nodes[j]).T))[1:4]:
                continue
            a, b = nodes[i], nodes[j]
            n = max(8, int(np.hypot(*(b - a))))
            t = np.linspace(0.0, 1.0, n)
            normal = np.array([-(b - a)[1], (b - a)[0]]) / max(np.hypot(*(b - a)), 1e-9)
            sag = rng.uniform(-0.2, 0.2) * np.hypot(*(b - a)) * np.sin(np.pi * t)
            lines.append(resample(a + t[:, None] * (b - a) + sag[:, None] * normal))
    return lines


def loop(rng: np.random.Generator, shape, *, radius: float | None = None) -> np.ndarray:
    """A closed dislocation loop: a wobbly ellipse of any orientation."""
    rows, cols = shape
    radius = float(radius if radius is not None else np.exp(rng.uniform(np.log(5.0), np.log(70.0))))
    aspect = rng.uniform(0.25, 1.0)
    n = max(16, int(2 * np.pi * radius))
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    wobble = rng.uniform(0, 0.12)
    r = radius * (1 + sum(rng.normal(0, wobble / k) * np.sin(k * t + rng.uniform(0, 2 * np.pi))
                          for k in (2, 3, 4)))     # periodic, so the loop closes smoothly
    x, y = r * np.cos(t), aspect * r * np.sin(t)
    rot = rng.uniform(0, np.pi)
    c, s = np.cos(rot), np.sin(rot)
    centre = np.array([rng.uniform(0, cols), rng.uniform(0, rows)])
    pts = np.column_stack([c * x - s * y, s * x + c * y]) + centre
    return resample(np.vstack([pts, pts[:1]]))


def inclined_segment(rng: np.random.Generator, shape) -> np.ndarray:
    """A short, nearly straight line: a dislocation crossing the foil, ending at both surfaces."""
    rows, cols = shape
    length = rng.uniform(10.0, 0.5 * max(rows, cols))
    angle = rng.uniform(0, 2 * np.pi)
    start = np.array([rng.uniform(0, cols), rng.uniform(0, rows)])
    t = np.linspace(0.0, 1.0, max(4, int(length)))
    u = np.array([np.cos(angle), np.sin(angle)])
    w = np.array([-u[1], u[0]])
    sag = rng.uniform(-0.1, 0.1) * length * np.sin(np.pi * t)
    return resample(start + (t * length)[:, None] * u + sag[:, None] * w)


def offset_curve(curve: np.ndarray, offset: float) -> np.ndarray:
    """The curve moved sideways by ``offset`` px along its local normal (a double image)."""
    tangent = np.gradient(curve, axis=0)
    norm = np.hypot(*tangent.T)[:, None]
    normal = np.column_stack([-tangent[:, 1], tangent[:, 0]]) / np.maximum(norm, 1e-9)
    return curve + offset * normal
