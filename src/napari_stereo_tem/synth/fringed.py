"""A second renderer of the stereo generator's 3D truth, unlike the one the networks were trained on.

Lines with a dark core and a faint bright fringe, a bend contour that moves between the views, a smooth
mottle and shot noise (:func:`fringed_views`). The accuracy benchmarks draw held-out pairs with it
(``bench_lines3d.py --renderer foreign``), and tests use it for images the networks never saw.
"""

from __future__ import annotations

import numpy as np


def fringed_views(sample, angle, *, seed: int, dose: float = 300.0, width_scale: float = 1.0,
                  contrast_scale: float = 1.0, oscillation: float = 0.0, period_px: float = 30.0):
    """The pair drawn again from its 3D truth with another line profile, a bend contour and shot noise.

    Each view projects the true lines at ``-phi/2`` / ``+phi/2`` about the central column
    (the pipeline's frame). A line pixel at distance ``r`` from the projected line is
    ``1 - c exp(-r^2 / 2 s^2) + f exp(-(r - 2.5 s)^2 / 2)`` (contrast ``c`` 0.35-0.6, width
    ``s`` 1.2-2.2 px, fringe ``f`` 0.1-0.2), times a background with a dark bend contour
    (a broad band along a random direction that moves 15-30 px between the views) and a
    smooth mottle; Poisson noise at ``dose`` counts per pixel. ``width_scale`` widens the lines
    (and moves their fringe out with them), as a higher magnification would; ``contrast_scale``
    scales the core's contrast (not the fringe's). ``oscillation`` (0-1) makes the core's contrast
    oscillate with the line's depth, ``1 - oscillation (1 + cos(2 pi z / period_px)) / 2`` times as
    strong, as an inclined dislocation's image oscillates through the foil (dotted or zig-zag
    contrast); 0 (the default) leaves the pairs as they were.
    """
    from scipy.ndimage import gaussian_filter
    from scipy.spatial import cKDTree

    from ..evaluation import densify_lines
    from ..stereo.projection import project_points

    rng = np.random.default_rng(seed)
    rows, cols = sample.left.shape
    axis_col = (cols - 1) / 2.0
    yy, xx = np.mgrid[:rows, :cols].astype(float)
    contrast = rng.uniform(0.35, 0.6) * contrast_scale  # drawn in this order: the same pairs for any scale
    width = rng.uniform(1.2, 2.2) * width_scale
    fringe = rng.uniform(0.1, 0.2)
    direction = rng.uniform(0, np.pi)
    offset, move = rng.uniform(-0.3, 0.3) * rows, rng.uniform(15, 30)
    mottle = gaussian_filter(rng.normal(0, 1, (rows, cols)), 12)
    mottle = 0.08 * mottle / (np.abs(mottle).max() + 1e-9)
    views = []
    depth = [np.asarray(line)[:, 2] if oscillation else np.zeros(len(line)) for line in sample.lines_3d]
    for k, tilt in enumerate((-angle / 2.0, angle / 2.0)):
        pts = densify_lines([np.column_stack([project_points(line, tilt, axis_col=axis_col), z])
                             for line, z in zip(sample.lines_3d, depth)], spacing=0.3)
        r, nearest = cKDTree(pts[:, :2]).query(np.column_stack([xx.ravel(), yy.ravel()]), distance_upper_bound=12)
        r = np.minimum(r, 12).reshape(rows, cols)
        core = contrast
        if oscillation:
            z = np.append(pts[:, 2], 0.0)[nearest].reshape(rows, cols)  # (index len(pts): no point within reach)
            core = contrast * (1 - oscillation * 0.5 * (1 + np.cos(2 * np.pi * z / period_px)))
        line = 1 - core * np.exp(-r ** 2 / (2 * width ** 2)) + fringe * np.exp(-(r - 2.5 * width) ** 2 / 2)
        across = (xx - cols / 2) * np.cos(direction) + (yy - rows / 2) * np.sin(direction) - offset - k * move
        background = (1 - 0.45 * np.exp(-across ** 2 / (2 * 18.0 ** 2))) * (1 + mottle)
        views.append(rng.poisson(np.clip(line * background, 0, None) * dose).astype(np.float32) / dose)
    return views
