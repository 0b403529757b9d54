"""Instance scores of dislocation lines: precision/recall at IoU 0.5 and seed 001's length error.

Each line (found or true) becomes a band: the pixels within ``radius`` px of
its centreline. Found and true lines are paired one-to-one by the Hungarian
assignment on the IoU of their bands; a pair counts when its IoU is at least
``min_iou``. For the pairs, seed 001's length metric: the relative error of
the smoothing-spline length, ``|L_found - L_true| / L_true``.

Typical use::

    score = score_instances(found.lines, pile.curves, pile.image.shape)
    score["precision"], score["recall"], score["length_error"]
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

__all__ = ["line_bands", "score_instances"]


def line_bands(lines, shape, *, radius: float = 1.5) -> np.ndarray:
    """Boolean bands ``(n_lines, rows, cols)``: pixels within ``radius`` px of each polyline."""
    from ..synth.curves import resample

    rows, cols = (int(v) for v in shape)
    out = np.zeros((len(lines), rows, cols), bool)
    for k, line in enumerate(lines):
        dense = resample(np.asarray(line, float).reshape(-1, 2), 0.25)
        ix, iy = np.round(dense[:, 0]).astype(int), np.round(dense[:, 1]).astype(int)
        inside = (ix >= 0) & (ix < cols) & (iy >= 0) & (iy < rows)
        if not inside.any():
            continue
        pad = int(np.ceil(radius)) + 2
        y0, y1 = max(0, iy[inside].min() - pad), min(rows, iy[inside].max() + pad + 1)
        x0, x1 = max(0, ix[inside].min() - pad), min(cols, ix[inside].max() + pad + 1)
        gy, gx = np.mgrid[y0:y1, x0:x1]
        near = np.zeros(gy.shape, bool)
        near[iy[inside] - y0, ix[inside] - x0] = True
        near = ndimage.binary_dilation(near, iterations=pad)
        dist, _ = cKDTree(dense).query(np.column_stack([gx[near], gy[near]]))
        band = np.zeros(gy.shape, bool)
        band[near] = dist <= radius
        out[k, y0:y1, x0:x1] = band
    return out


def score_instances(found, truth, shape, *, radius: float = 1.5, min_iou: float = 0.5) -> dict:
    """Precision, recall and length error of found lines against true lines.

    Parameters
    ----------
    found, truth : sequence of ndarray, shape (n, 2)
        ``(x, y)`` polylines.
    shape : (rows, cols)
    radius : float
        Half-width of the bands compared (px).
    min_iou : float
        IoU at which a found line and a true line are the same instance.

    Returns
    -------
    dict
        ``n_found``, ``n_true``, ``matched``, ``precision``, ``recall``, ``f1``,
        ``length_error`` (median relative spline-length error of the pairs; NaN
        without pairs), ``length_errors`` (every pair's), ``pairs`` (indices
        ``(found, true, iou)``).
    """
    from scipy.optimize import linear_sum_assignment

    from ..stereo.line_geometry import line_geometry

    found = [np.asarray(line, float) for line in found if len(line) >= 2]
    truth = [np.asarray(line, float) for line in truth if len(line) >= 2]
    pairs = []
    if found and truth:
        a = line_bands(found, shape, radius=radius).reshape(len(found), -1).astype(np.float32)
        b = line_bands(truth, shape, radius=radius).reshape(len(truth), -1).astype(np.float32)
        inter = a @ b.T
        union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
        rows, cols = linear_sum_assignment(-iou)
        pairs = [(int(i), int(j), float(iou[i, j])) for i, j in zip(rows, cols) if iou[i, j] >= min_iou]
    errors = []
    if pairs:
        found_len = [g["length"] for g in line_geometry([found[i] for i, _, _ in pairs])]
        true_len = [g["length"] for g in line_geometry([truth[j] for _, j, _ in pairs])]
        errors = [abs(f - t) / t for f, t in zip(found_len, true_len)]
    matched = len(pairs)
    precision = matched / len(found) if found else float("nan")
    recall = matched / len(truth) if truth else float("nan")
    f1 = 2 * matched / (len(found) + len(truth)) if (found or truth) else float("nan")
    return {"n_found": len(found), "n_true": len(truth), "matched": matched, "precision": precision,
            "recall": recall, "f1": f1, "length_error": float(np.median(errors)) if errors else float("nan"),
            "length_errors": errors, "pairs": pairs}
