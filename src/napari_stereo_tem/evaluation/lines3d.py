"""Distance between a reconstructed 3D line set and the true one (DESIGN 3.10).

Both sets are densified (points every ``spacing`` pixels along each polyline;
a line of one point stays a point, so a bare point cloud, e.g. the voxels of
a tomogram skeleton, is scored the same way). Then:

- ``pred -> true``: for every predicted point, the distance to the nearest true
  point (how far the reconstruction strays: an accuracy figure);
- ``true -> pred``: for every true point, the distance to the nearest predicted
  point (how much of the truth is covered: a completeness figure);
- the **symmetric mean distance** is the mean of all those distances together
  (each point of either set counted once);
- the **depth error** is ``|z_pred - z_true|`` where the true point is the one
  nearest in ``(x, y)`` (seen along the beam), over the predicted points: the
  error of the depth assigned to a line seen at that place, as in the paper's
  Table 1.

The depth origin of a stereo reconstruction is free (rectification puts the
median disparity at zero), so ``remove_depth_offset=True`` first shifts the
prediction along ``z`` by the median of ``z_true - z_pred`` over those
``(x, y)`` pairs (twice, the second time on pairs whose ``(x, y)`` distance is
at most ``xy_tolerance``) and reports the shift applied.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from ..checks import InputError

__all__ = ["densify_lines", "line_set_distance"]


def _as_line_list(lines, name: str) -> list[np.ndarray]:
    if isinstance(lines, np.ndarray) and lines.ndim == 2:
        lines = [lines]
    out = []
    for k, line in enumerate(lines):
        arr = np.asarray(line, dtype=float)
        if arr.ndim == 1 and arr.shape == (3,):
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[1] != 3:
            raise InputError(f"{name}[{k}] must have shape (n, 3) as (x, y, z), got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{name}[{k}] holds NaN or infinite coordinates; drop those points first")
        if len(arr):
            out.append(arr)
    return out


def densify_lines(lines, *, spacing: float = 0.5) -> np.ndarray:
    """Points every ``spacing`` pixels (or closer) along each 3D polyline.

    Parameters
    ----------
    lines : sequence of ndarray, each shape (n_i, 3), or one (n, 3) array
        ``(x, y, z)`` polylines; each array is one line (a single point is kept as is).
    spacing : float
        Largest gap between consecutive output points of a segment, pixels.

    Returns
    -------
    ndarray, shape (m, 3)
    """
    if not spacing > 0:
        raise InputError(f"spacing must be > 0, got {spacing}")
    parts = []
    for line in _as_line_list(lines, "lines"):
        if len(line) == 1:
            parts.append(line)
            continue
        seg = np.diff(line, axis=0)
        n = np.maximum(np.ceil(np.linalg.norm(seg, axis=1) / spacing).astype(int), 1)
        idx = np.repeat(np.arange(len(seg)), n)
        frac = np.concatenate([np.arange(k) / k for k in n])
        parts.append(np.vstack([line[idx] + frac[:, None] * seg[idx], line[-1:]]))
    return np.vstack(parts) if parts else np.zeros((0, 3))


def _depth_pairs(pred: np.ndarray, true_tree_xy: cKDTree, true: np.ndarray):
    dist_xy, j = true_tree_xy.query(pred[:, :2])
    return dist_xy, true[j, 2] - pred[:, 2]


def line_set_distance(pred_lines, true_lines, *, spacing: float = 0.5, remove_depth_offset: bool = False,
                      xy_tolerance: float = 3.0, tolerance: float = 3.0) -> dict:
    """Symmetric distance between two 3D line sets, with the depth error apart.

    Parameters
    ----------
    pred_lines, true_lines : sequence of ndarray, each shape (n_i, 3)
        ``(x, y, z)`` polylines in pixels (or any one unit); a one-point array is a
        point, so point clouds are accepted too.
    spacing : float
        Densification step, pixels (distances are exact to about ``spacing / 2``).
    remove_depth_offset : bool
        Shift the prediction along ``z`` by the robust offset that best aligns it
        with the truth first (the free depth origin of stereo).
    xy_tolerance : float
        For the offset estimate and the depth error's ``within`` figures: ``(x, y)``
        pairs farther apart than this are ignored (the line was not found there).
    tolerance : float
        3D distance for ``coverage`` and ``precision``.

    Returns
    -------
    dict
        ``mean``, ``median`` (symmetric, all points of both sets), ``mean_pred_to_true``,
        ``mean_true_to_pred``, ``depth_mean``, ``depth_median`` (``|dz|`` over predicted
        points whose ``(x, y)`` distance to the truth is at most ``xy_tolerance``),
        ``depth_offset`` (added to the prediction's ``z``; 0 without removal),
        ``n_pred``, ``n_true`` (densified points) and ``xy_coverage`` (share of predicted
        points within ``xy_tolerance`` of the truth in ``(x, y)``); ``coverage`` (share of
        true points with a predicted point within ``tolerance`` in 3D), ``precision``
        (share of predicted points with a true point within ``tolerance``) and
        ``depth_rmse`` (root mean square ``dz`` over the same points as ``depth_mean``).
        All distances in the unit of the input. Empty prediction: distances are
        ``inf``/NaN and counts 0.
    """
    true = densify_lines(true_lines, spacing=spacing)
    if len(true) == 0:
        raise InputError("the true line set is empty")
    pred = densify_lines(pred_lines, spacing=spacing)
    if len(pred) == 0:
        return {"mean": float("inf"), "median": float("inf"), "mean_pred_to_true": float("nan"),
                "mean_true_to_pred": float("inf"), "depth_mean": float("nan"), "depth_median": float("nan"),
                "depth_offset": 0.0, "n_pred": 0, "n_true": int(len(true)), "xy_coverage": 0.0,
                "coverage": 0.0, "precision": float("nan"), "depth_rmse": float("nan")}
    tree_xy = cKDTree(true[:, :2])
    offset = 0.0
    if remove_depth_offset:
        for tol in (np.inf, xy_tolerance):
            dist_xy, dz = _depth_pairs(pred + [0.0, 0.0, offset], tree_xy, true)
            near = dist_xy <= tol
            if near.any():
                offset += float(np.median(dz[near]))
    pred = pred + np.array([0.0, 0.0, offset])
    d_pt = cKDTree(true).query(pred)[0]
    d_tp = cKDTree(pred).query(true)[0]
    both = np.concatenate([d_pt, d_tp])
    dist_xy, dz = _depth_pairs(pred, tree_xy, true)
    near = dist_xy <= xy_tolerance
    adz = np.abs(dz[near])
    return {"mean": float(both.mean()), "median": float(np.median(both)),
            "mean_pred_to_true": float(d_pt.mean()), "mean_true_to_pred": float(d_tp.mean()),
            "depth_mean": float(adz.mean()) if len(adz) else float("nan"),
            "depth_median": float(np.median(adz)) if len(adz) else float("nan"),
            "depth_offset": offset, "n_pred": int(len(pred)), "n_true": int(len(true)),
            "xy_coverage": float(near.mean()), "coverage": float((d_tp <= tolerance).mean()),
            "precision": float((d_pt <= tolerance).mean()),
            "depth_rmse": float(np.sqrt(np.mean(adz ** 2))) if len(adz) else float("nan")}
