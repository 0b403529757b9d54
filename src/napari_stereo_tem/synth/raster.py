"""Nearest-point rasterisation of polylines, vectorised.

The curves are sampled every <= 0.5 px; each sample is splatted into a small
window of pixels, and for every pixel the nearest sample wins (one
``np.minimum.at`` on keys that pack the squared distance above the sample
index). The exact nearest point of the piecewise-linear curve is then found on
the segments next to that sample.
"""

from __future__ import annotations

import numpy as np

__all__ = ["densify_polylines", "nearest_sample_map", "foot_on_polyline"]

_IDX_BITS = 24


def densify_polylines(lines, spacing: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Subdivide every segment so 3D (hence projected) spacing is <= ``spacing`` px; same curve.

    Returns the samples ``(N, 3)``, their line index ``(N,)``, and for each
    sample the start index of the segment ending at it and of the segment
    starting at it (``-1``: none); a closed line (first point == last) wraps.
    """
    if not lines:
        empty = np.zeros(0, np.int64)
        return np.zeros((0, 3)), empty.astype(np.int32), empty, empty
    pts, ids, seg_in, seg_out = [], [], [], []
    offset = 0
    for k, line in enumerate(lines):
        line = np.asarray(line, dtype=np.float64)
        parts = np.maximum(np.ceil(np.linalg.norm(np.diff(line, axis=0), axis=1) / spacing), 1).astype(np.int64)
        seg = np.repeat(np.arange(len(parts)), parts)
        frac = (np.arange(len(seg)) - np.repeat(np.cumsum(parts) - parts, parts)) / np.repeat(parts, parts)
        dense = np.concatenate([line[seg] + frac[:, None] * (line[seg + 1] - line[seg]), line[-1:]])
        n = len(dense)
        local = np.arange(n) + offset
        into, out = local - 1, local.copy()
        into[0], out[-1] = -1, -1
        if n > 2 and np.array_equal(dense[0], dense[-1]):
            into[0], out[-1] = offset + n - 2, offset
        pts.append(dense)
        ids.append(np.full(n, k, np.int32))
        seg_in.append(into)
        seg_out.append(out)
        offset += n
    return np.concatenate(pts), np.concatenate(ids), np.concatenate(seg_in), np.concatenate(seg_out)


def nearest_sample_map(xy: np.ndarray, shape, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest sample (-1: none within ``radius``) and squared distance, per pixel (flat)."""
    rows, cols = shape
    keymap = np.full(rows * cols, np.iinfo(np.int64).max, np.int64)
    if len(xy):
        base = np.rint(xy).astype(np.int64)
        d = np.arange(-radius, radius + 1)
        dx, dy = (v.ravel() for v in np.meshgrid(d, d))
        keep = (dx ** 2 + dy ** 2) <= (radius + 0.5) ** 2
        dx, dy = dx[keep], dy[keep]
        px = base[:, 0:1] + dx[None, :]
        py = base[:, 1:2] + dy[None, :]
        d2 = (px - xy[:, 0:1]) ** 2 + (py - xy[:, 1:2]) ** 2
        ok = (px >= 0) & (px < cols) & (py >= 0) & (py < rows)
        key = (np.minimum(d2, 63.0) * (1 << 24)).astype(np.int64) << _IDX_BITS
        key |= np.arange(len(xy), dtype=np.int64)[:, None]
        np.minimum.at(keymap, (py * cols + px)[ok], key[ok])
    hit = keymap != np.iinfo(np.int64).max
    index = np.where(hit, keymap & ((1 << _IDX_BITS) - 1), -1)
    d2 = np.where(hit, (keymap >> _IDX_BITS) / float(1 << 24), np.inf)
    return index, d2


def foot_on_polyline(pix_xy, idx, xy, seg_in, seg_out):
    """Exact nearest point on the polyline segments next to sample ``idx``: (segment start, t, distance)."""
    best_start = idx.copy()
    best_t = np.zeros(len(idx))
    best_d = np.hypot(*(pix_xy - xy[idx]).T)
    for start in (seg_in[idx], seg_out[idx]):
        valid = start >= 0
        start_c = np.where(valid, start, 0)
        a, b = xy[start_c], xy[np.minimum(start_c + 1, len(xy) - 1)]
        ab = b - a
        t = np.clip(np.einsum("ij,ij->i", pix_xy - a, ab) / np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-12), 0, 1)
        dist = np.hypot(*(pix_xy - a - t[:, None] * ab).T)
        better = valid & (dist < best_d)
        best_start = np.where(better, start_c, best_start)
        best_t = np.where(better, t, best_t)
        best_d = np.where(better, dist, best_d)
    return best_start, best_t, best_d
