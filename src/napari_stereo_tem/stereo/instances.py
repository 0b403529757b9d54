"""Single dislocations as instances, also inside pile-ups where lines nearly touch (DESIGN 3.13).

A skeleton of the thresholded probability merges two lines as soon as the
threshold bridges the valley between them. This module works on the
probability map itself (optionally sharpened by the image):

1. **orientation**: the local line normal from the structure tensor of the
   surface, smoothed over a few pixels (a pile-up is a band of nearly parallel
   lines; its normal is steady even where the lines are too close to resolve
   one by one);
2. **ridges** (Steger's sub-pixel centreline): along that normal, the first
   and second derivatives of the surface (Gaussian derivatives at ``sigma``)
   give the offset of the profile's maximum; a pixel is a ridge pixel when the
   maximum lies inside it and the profile bends down strongly enough. Two
   close lines give two ridges wherever the surface has a valley between
   them, however shallow (lines closer than the detector draws them wide,
   about 3 px, have none and stay merged);
3. **linking**: each ridge pixel joins its best neighbour ahead and behind
   (within 2 px, running the same way, at most ``max_offset`` px to the side),
   kept only where the choice is mutual, so chains never jump to the
   neighbouring line nor turn at a junction or a crossing;
4. **corners and gaps**: a chain is cut where it turns sharply (a line
   running into a slip trace or another line); chain ends facing each other
   across a short gap (a crossing, a faint stretch) are joined when their
   directions agree;
5. the **label image**: every pixel of the support goes to the nearest
   instance's centreline within ``label_radius`` px.

Typical use::

    found = line_instances(detection.probability[0], threshold=detection.settings["threshold"],
                           scale=detection.settings["scale"])
    found.labels        # (rows, cols) int32: 0 background, k + 1 on instance k
    found.lines[k]      # (n, 2) sub-pixel (x, y) along instance k, in order
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..checks import InputError
from .skeleton_graph import split_at_corners

__all__ = ["LineInstances", "line_instances", "ridge_points", "skeleton_instances", "instances_from_lines",
           "apart_from_others"]


@dataclass
class LineInstances:
    """Dislocation instances of one image.

    Attributes
    ----------
    labels : ndarray, int32, (rows, cols)
        0 background, ``k + 1`` on the pixels of instance ``k`` (a napari Labels layer).
    lines : list of ndarray, (n, 2)
        ``(x, y)`` along each instance's centreline, in order (sub-pixel).
    settings : dict
        The parameters used.
    """

    labels: np.ndarray
    lines: list
    settings: dict = field(default_factory=dict)

    @property
    def n_instances(self) -> int:
        return len(self.lines)


def _check_surface(surface, name: str) -> np.ndarray:
    array = np.asarray(surface, dtype=np.float64)
    if array.ndim == 3 and array.shape[0] >= 1:
        array = array[0]           # a detector's (n_classes, rows, cols): class 0 is dislocation
    if array.ndim != 2:
        raise InputError(f"{name} must be a 2-D map (rows, cols) or (n_classes, rows, cols), got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{name} holds NaN or infinite values; replace them before finding instances")
    return array


def ridge_points(surface, *, sigma: float = 1.0, orientation_sigma: float = 2.0, min_curvature: float = 0.02,
                 along_sigma: float = 0.0, support=None):
    """Sub-pixel ridge (centreline) points of a surface whose lines are bright.

    Parameters
    ----------
    surface : array_like, shape (rows, cols)
        E.g. a dislocation probability map.
    sigma : float
        Scale of the Gaussian derivatives (px); below about half the spacing of
        the closest lines to be told apart.
    orientation_sigma : float
        Window of the structure tensor that gives the line normal (px).
    min_curvature : float
        Least downward bending of the profile across the line (surface units per px^2).
    along_sigma : float
        The derivatives across the line are averaged along it with a Gaussian of
        this width (px; 0: not at all).
    support : array_like of bool, optional
        Only these pixels may be ridge pixels.

    Returns
    -------
    yx : ndarray, int, (m, 2)
        Row and column of each ridge pixel.
    points : ndarray, (m, 2)
        Sub-pixel ``(x, y)`` of the centreline in that pixel.
    normals : ndarray, (m, 2)
        Unit ``(x, y)`` normal of the line there.
    strength : ndarray, (m,)
        Minus the second derivative across the line.
    """
    from skimage.feature import hessian_matrix, structure_tensor

    surface = _check_surface(surface, "surface")
    h_rr, h_rc, h_cc = hessian_matrix(surface, sigma=sigma, order="rc", use_gaussian_derivatives=True)
    g_r = ndimage.gaussian_filter(surface, sigma, order=(1, 0))
    g_c = ndimage.gaussian_filter(surface, sigma, order=(0, 1))
    a_rr, a_rc, a_cc = structure_tensor(surface, sigma=orientation_sigma, order="rc")
    # the normal is the structure tensor's leading eigenvector: angle of (row, col) components
    theta = 0.5 * np.arctan2(2 * a_rc, a_rr - a_cc)
    n_r, n_c = np.cos(theta), np.sin(theta)
    if along_sigma > 0:
        # average the derivatives along the line (an oriented filter): a faint, broken
        # valley between two close lines adds up along them, the noise does not
        rows, cols = surface.shape
        rr, cc = np.mgrid[0:rows, 0:cols].astype(np.float64)
        t_r, t_c = -n_c, n_r
        reach = int(np.ceil(2 * along_sigma))
        fields = (h_rr, h_rc, h_cc, g_r, g_c)
        sums = [np.zeros_like(h_rr) for _ in fields]
        total = 0.0
        for k in range(-reach, reach + 1):
            weight = float(np.exp(-0.5 * (k / along_sigma) ** 2))
            where = [rr + k * t_r, cc + k * t_c]
            for acc, values in zip(sums, fields):
                acc += weight * ndimage.map_coordinates(values, where, order=1, mode="nearest")
            total += weight
        h_rr, h_rc, h_cc, g_r, g_c = (acc / total for acc in sums)
    h_nn = n_r * n_r * h_rr + 2 * n_r * n_c * h_rc + n_c * n_c * h_cc
    g_n = n_r * g_r + n_c * g_c
    bends = h_nn <= -float(min_curvature)
    t = np.zeros_like(h_nn)
    t[bends] = -g_n[bends] / h_nn[bends]
    # the profile's maximum lies inside the pixel (a little slack: a ridge between two rows is kept)
    on = bends & (np.abs(t * n_r) <= 0.55) & (np.abs(t * n_c) <= 0.55)
    if support is not None:
        support = np.asarray(support, bool)
        if support.shape != surface.shape:
            raise InputError(f"support has shape {support.shape}, the surface {surface.shape}")
        on &= support
    rr, cc = np.nonzero(on)
    tt = t[rr, cc]
    points = np.column_stack([cc + tt * n_c[rr, cc], rr + tt * n_r[rr, cc]])
    normals = np.column_stack([n_c[rr, cc], n_r[rr, cc]])
    return np.column_stack([rr, cc]), points, normals, -h_nn[rr, cc]


def _link_chains(yx, points, normals, shape, *, max_offset: float, max_turn_deg: float) -> list[np.ndarray]:
    """Ridge pixels into ordered chains: mutual best neighbours ahead and behind (indices into ``points``)."""
    n = len(points)
    if n == 0:
        return []
    index = np.full(shape, -1, np.int64)
    index[yx[:, 0], yx[:, 1]] = np.arange(n)
    tangents = np.column_stack([-normals[:, 1], normals[:, 0]])
    cos_turn = np.cos(np.deg2rad(max_turn_deg))
    best = np.full((n, 2), -1, np.int64)          # [ahead, behind]
    best_cost = np.full((n, 2), np.inf)
    rows, cols = shape
    for dr in range(-2, 3):
        for dc in range(-2, 3):
            if dr == 0 and dc == 0:
                continue
            r2, c2 = yx[:, 0] + dr, yx[:, 1] + dc
            inside = (r2 >= 0) & (r2 < rows) & (c2 >= 0) & (c2 < cols)
            j = np.full(n, -1, np.int64)
            j[inside] = index[r2[inside], c2[inside]]
            i = np.flatnonzero(j >= 0)
            j = j[i]
            step = points[j] - points[i]
            along = np.sum(step * tangents[i], axis=1)
            side = np.abs(np.sum(step * normals[i], axis=1))
            aligned = np.abs(np.sum(tangents[i] * tangents[j], axis=1))
            ok = (side <= max_offset) & (aligned >= cos_turn) & (np.abs(along) >= 0.3)
            i, j, along, side, aligned = i[ok], j[ok], along[ok], side[ok], aligned[ok]
            cost = np.hypot(along, 2 * side) + 2 * (1 - aligned)
            slot = (along < 0).astype(int)
            better = cost < best_cost[i, slot]
            # several candidates of one pixel in one offset cannot collide (one j per (i, offset))
            best[i[better], slot[better]] = j[better]
            best_cost[i[better], slot[better]] = cost[better]
    # keep a link only where the choice is mutual (j's best in one direction is i)
    edges = set()
    for i in range(n):
        for slot in (0, 1):
            j = best[i, slot]
            if j >= 0 and i in (best[j, 0], best[j, 1]):
                edges.add((min(i, j), max(i, j)))
    neighbours = [[] for _ in range(n)]
    for i, j in edges:
        neighbours[i].append(j)
        neighbours[j].append(i)
    seen = np.zeros(n, bool)
    chains = []
    # open chains from their ends, then what is left (closed loops)
    for start in [i for i in range(n) if len(neighbours[i]) <= 1] + list(range(n)):
        if seen[start]:
            continue
        chain, previous, current = [start], -1, start
        seen[start] = True
        while True:
            nxt = [k for k in neighbours[current] if k != previous and not seen[k]]
            if not nxt:
                break
            previous, current = current, nxt[0]
            seen[current] = True
            chain.append(current)
        chains.append(np.array(chain, np.int64))
    return chains


def _end_direction(line: np.ndarray, at_start: bool, reach: int = 5) -> np.ndarray:
    """Unit direction pointing out of the line at one end."""
    part = line[:reach] if at_start else line[::-1][:reach]
    vec = part[0] - part[-1]
    norm = np.linalg.norm(vec)
    return vec / norm if norm > 0 else vec


def _close_gaps(lines: list, *, max_gap: float, max_turn_deg: float, max_offset: float) -> list:
    """Join chain ends that face each other across a short gap with matching directions (greedy, nearest first)."""
    if len(lines) < 2:
        return lines
    from scipy.spatial import cKDTree

    ends = []           # (line, at_start, point, outward direction)
    for k, line in enumerate(lines):
        if len(line) < 2:
            continue
        ends.append((k, True, line[0], _end_direction(line, True)))
        ends.append((k, False, line[-1], _end_direction(line, False)))
    if len(ends) < 2:
        return lines
    tree = cKDTree(np.array([e[2] for e in ends]))
    cos_turn = np.cos(np.deg2rad(max_turn_deg))
    candidates = []
    for a, b in tree.query_pairs(max_gap):
        ka, sa, pa, da = ends[a]
        kb, sb, pb, db = ends[b]
        if ka == kb:
            continue
        gap = pb - pa
        dist = np.linalg.norm(gap)
        if np.dot(da, -db) < cos_turn:         # the two ends must continue each other
            continue
        if dist > 0:
            side = max(abs(da[0] * gap[1] - da[1] * gap[0]), abs(db[0] * gap[1] - db[1] * gap[0]))
            if side > max_offset + 0.25 * dist or np.dot(gap, da) < -0.5 or np.dot(-gap, db) < -0.5:
                continue
        candidates.append((dist + 2 * (1 - np.dot(da, -db)), a, b))
    used = set()
    parent = list(range(len(lines)))

    def root(k):
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    joins = {}
    for _, a, b in sorted(candidates):
        if a in used or b in used or root(ends[a][0]) == root(ends[b][0]):
            continue
        used.update((a, b))
        parent[root(ends[a][0])] = root(ends[b][0])
        joins[a], joins[b] = b, a
    if not joins:
        return lines
    # walk each joined group from a free end
    end_of = {(e[0], e[1]): idx for idx, e in enumerate(ends)}
    done = set()
    out = []
    for k in range(len(lines)):
        if k in done:
            continue
        group = {j for j in range(len(lines)) if root(j) == root(k)}
        start_line, start_first = k, True
        for j in group:       # a free end to start from
            for first in (True, False):
                idx = end_of.get((j, first))
                if idx is not None and idx not in joins:
                    start_line, start_first = j, first
        pieces, line, first = [], start_line, start_first
        while line is not None and line not in done:
            done.add(line)
            pieces.append(lines[line] if first else lines[line][::-1])
            far = end_of.get((line, not first))
            if far is None or far not in joins:
                break
            nxt = ends[joins[far]]
            line, first = nxt[0], nxt[1]
        out.append(np.vstack(pieces))
    return out


def apart_from_others(lines, *, distance: float = 2.0, min_points: int = 2) -> list:
    """The stretches of each line farther than ``distance`` px from every other line.

    Where two instances cross or run into each other their points cannot be told
    apart in a second view; a stereo fit per instance leaves those stretches out
    (as a skeleton cuts its branches at junctions).
    """
    from scipy.spatial import cKDTree

    lines = [np.asarray(line, float) for line in lines]
    out = []
    for k, line in enumerate(lines):
        others = [other for j, other in enumerate(lines) if j != k and len(other)]
        if not others:
            out.append(line)
            continue
        dense = np.vstack([_dense(other) for other in others])
        dist, _ = cKDTree(dense).query(line)
        keep = dist > distance
        for run in np.split(np.arange(len(line)), np.flatnonzero(np.diff(keep.astype(int)) != 0) + 1):
            if keep[run[0]] and len(run) >= min_points:
                out.append(line[run])
    return out


def _dense(line: np.ndarray) -> np.ndarray:
    from ..synth.curves import resample

    return resample(line, 0.5) if len(line) > 1 else line


def _polyline_length(line: np.ndarray) -> float:
    return float(np.sum(np.linalg.norm(np.diff(line, axis=0), axis=1))) if len(line) > 1 else 0.0


def instances_from_lines(lines, support, *, label_radius: float = 3.0) -> np.ndarray:
    """Label image: each pixel of ``support`` gets ``k + 1`` of the nearest line ``k`` within ``label_radius`` px.

    Parameters
    ----------
    lines : sequence of ndarray, shape (n, 2)
        ``(x, y)`` centrelines.
    support : array_like of bool, shape (rows, cols)
        Pixels that may be labelled (e.g. the thresholded probability); every
        centreline pixel is labelled too.
    label_radius : float

    Returns
    -------
    ndarray, int32, (rows, cols)
    """
    from ..synth.curves import resample

    support = np.asarray(support, bool)
    rows, cols = support.shape
    seeds = np.zeros(support.shape, np.int32)
    for k, line in enumerate(lines):
        dense = resample(np.asarray(line, float), 0.5)
        ix = np.clip(np.round(dense[:, 0]).astype(int), 0, cols - 1)
        iy = np.clip(np.round(dense[:, 1]).astype(int), 0, rows - 1)
        seeds[iy, ix] = k + 1
    if not seeds.any():
        return seeds
    dist, (ny, nx) = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    labels = seeds[ny, nx]
    labels[~((support & (dist <= label_radius)) | (seeds > 0))] = 0
    return labels.astype(np.int32)


def line_instances(probability, *, image=None, threshold: float = 0.5, sigma: float = 1.0,
                   orientation_sigma: float = 2.0, min_curvature: float = 0.02, max_offset: float = 1.0,
                   max_turn_deg: float = 30.0, max_corner_deg: float = 45.0, max_gap: float = 8.0,
                   min_length: float = 8.0, label_radius: float = 3.0, image_weight: float = 0.0,
                   along_sigma: float = 0.0, scale: float = 1.0) -> LineInstances:
    """One instance per dislocation, from a probability map (and optionally the image).

    Parameters
    ----------
    probability : array_like, shape (rows, cols) or (n_classes, rows, cols)
        The detector's dislocation probability in [0, 1] (class 0 of a multi-class map).
    image : array_like, shape (rows, cols), optional
        The image normalised with dark lines (as the detector saw it); used only
        when ``image_weight`` > 0.
    threshold : float
        The support: pixels whose probability is at least ``threshold`` (the
        model's labelling threshold) may hold a centreline and be labelled.
    sigma : float
        Scale of the ridge derivatives (px).
    orientation_sigma : float
        Window of the structure tensor giving the line direction (px).
    min_curvature : float
        Least bending of the profile across a line.
    max_offset : float
        Largest sideways step between linked ridge pixels (px); below the
        closest spacing of lines to be kept apart.
    max_turn_deg : float
        Largest change of direction between linked pixels and across a closed gap.
    max_corner_deg : float
        A chain is cut where its direction over 5 px turns by more than this
        (where a line meets a slip trace or another line at a corner).
    max_gap : float
        Longest gap closed between two chain ends (px).
    min_length : float
        Shorter instances are dropped (px).
    label_radius : float
        How far from its centreline a pixel is given to an instance (px).
    image_weight : float
        Weight of the image's own line contrast (``1 - image``, scaled to
        [0, 1]) added to the probability before the ridges are found; 0 uses
        the probability alone.
    scale : float
        The resize factor the detector worked at
        (``LineDetection.settings["scale"]``): the ridges are found on the map
        resized by it, where lines are as wide as the detector draws them, and
        brought back; ``min_length`` and ``label_radius`` stay in the image's pixels.

    Returns
    -------
    LineInstances
    """
    prob = _check_surface(probability, "probability")
    if not 0 <= threshold <= 1:
        raise InputError(f"threshold must lie in [0, 1], got {threshold}")
    if sigma <= 0 or orientation_sigma <= 0 or max_offset <= 0 or label_radius < 0 or max_gap < 0:
        raise InputError("sigma, orientation_sigma and max_offset must be positive; label_radius and max_gap "
                         "not negative")
    surface = prob
    if image_weight > 0:
        if image is None:
            raise InputError("image_weight > 0 needs the image (normalised, dark lines)")
        img = _check_surface(image, "image")
        if img.shape != prob.shape:
            raise InputError(f"image has shape {img.shape}, the probability {prob.shape}")
        lo, hi = np.percentile(img, [1, 99])
        dark = np.clip((hi - img) / max(hi - lo, 1e-9), 0, 1)
        surface = prob + float(image_weight) * dark
    support = prob >= threshold
    scale = float(scale)
    if not np.isfinite(scale) or not 0 < scale <= 4:
        raise InputError(f"scale must be the detector's resize factor in (0, 4], got {scale}")
    work, work_prob = surface, prob
    if scale != 1.0:
        import cv2

        rows, cols = prob.shape
        size = (max(8, round(cols * scale)), max(8, round(rows * scale)))
        work, work_prob = (cv2.resize(a.astype(np.float32), size, interpolation=cv2.INTER_AREA).astype(np.float64)
                           for a in (surface, prob))
    yx, points, normals, _ = ridge_points(work, sigma=sigma, orientation_sigma=orientation_sigma,
                                          min_curvature=min_curvature, along_sigma=along_sigma,
                                          support=work_prob >= threshold)
    chains = _link_chains(yx, points, normals, work.shape, max_offset=max_offset, max_turn_deg=max_turn_deg)
    lines = [points[c] for c in chains if len(c) >= 2]
    lines = [piece for line in lines for piece in split_at_corners(line, max_turn_deg=max_corner_deg)]
    lines = _close_gaps(lines, max_gap=max_gap, max_turn_deg=max_turn_deg, max_offset=max_offset)
    if work.shape != prob.shape:   # pixel centres of the resized map back to the image's
        factor = np.array([prob.shape[1] / work.shape[1], prob.shape[0] / work.shape[0]])
        lines = [(line + 0.5) * factor - 0.5 for line in lines]
    lines = [line for line in lines if _polyline_length(line) >= min_length]
    lines.sort(key=lambda line: (float(np.min(line[:, 1])), float(np.min(line[:, 0]))))
    labels = instances_from_lines(lines, support, label_radius=label_radius)
    settings = {"method": "ridges", "threshold": float(threshold), "sigma": float(sigma),
                "orientation_sigma": float(orientation_sigma), "min_curvature": float(min_curvature),
                "max_offset": float(max_offset), "max_turn_deg": float(max_turn_deg),
                "max_corner_deg": float(max_corner_deg), "max_gap": float(max_gap),
                "min_length": float(min_length), "label_radius": float(label_radius),
                "image_weight": float(image_weight), "scale": scale}
    return LineInstances(labels=labels, lines=lines, settings=settings)


def skeleton_instances(mask, *, min_length: float = 8.0, min_branch_length: float = 5.0,
                       label_radius: float = 3.0) -> LineInstances:
    """The baseline: one instance per skeleton branch of a binary mask (at least ``min_length`` px)."""
    from .detection import skeleton_polylines

    mask = np.asarray(mask, bool)
    if mask.ndim != 2:
        raise InputError(f"mask must be 2-D, got shape {mask.shape}")
    lines = [line for line in skeleton_polylines(mask, min_branch_length=min_branch_length)
             if _polyline_length(line) >= min_length]
    labels = instances_from_lines(lines, mask, label_radius=label_radius)
    return LineInstances(labels=labels, lines=lines, settings={"method": "skeleton branches",
                                                              "min_length": float(min_length),
                                                              "min_branch_length": float(min_branch_length)})
