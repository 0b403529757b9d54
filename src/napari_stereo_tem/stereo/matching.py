"""Disparity helpers around the learned matcher: inference, refinement, a classical baseline, metrics.

- :func:`predict_disparity` runs a :class:`~napari_stereo_tem.nets.matcher.StereoNet`
  on a rectified pair (numpy in, numpy out).
- :func:`refine_disparity` is the refinement of DESIGN 3.5 / seed 000 section 2.3:
  each left dislocation pixel is warped by its disparity into the right view and
  snapped to the nearest right dislocation pixel within 3 px on the same row
  (or a neighbouring row); pixels without a candidate are dropped.
- :func:`sgbm_disparity` is OpenCV's StereoSGBM in this project's sign convention
  (``d = x_right - x_left``), the baseline of the benchmark.
- :func:`disparity_metrics` gives EPE and the share of pixels off by more than 1, 3 and 5 px.
"""

from __future__ import annotations

import numpy as np

from ..checks import InputError
from ..progress import cancel_between_layers, check_cancelled

__all__ = ["DEFAULT_MATCHER", "load_matcher", "predict_disparity", "refine_disparity", "sgbm_disparity", "disparity_metrics", "REFINE_MODES"]

#: ``"pixel"``: snap to the nearest right dislocation pixel (the paper's rule);
#: ``"centre"``: snap to the nearest right run of dislocation pixels on the row and
#: take the disparity between the centres of the left and right runs (sub-pixel,
#: insensitive to the line width), falling back to ``"pixel"`` on long runs
#: (lines nearly parallel to the rows, whose run centres do not correspond).
REFINE_MODES = ("pixel", "centre")

#: The matcher version ``load_matcher("default")`` loads.
DEFAULT_MATCHER = "matcher_v1"


def load_matcher(version: str = "default", *, device="cpu"):
    """Load a matcher version (``"default"``: the one chosen with :func:`~napari_stereo_tem.models.store.select_version`,
    else the shipped one; a name from :func:`~napari_stereo_tem.models.store.list_versions`; or a path).

    Returns
    -------
    StereoNet
        In eval mode on ``device``, with ``version`` and ``metadata`` attributes.

    Raises
    ------
    InputError
        When the weights file is missing or does not fit.
    """
    from ..nets.matcher import StereoNet
    from ..models.store import load_version

    return load_version("matcher", StereoNet, version, default=DEFAULT_MATCHER, device=device)


def predict_disparity(left, right, model, *, device=None, disparity_range=None) -> tuple[np.ndarray, np.ndarray]:
    """Disparity and its softmax spread for a rectified pair.

    Parameters
    ----------
    left, right : ndarray, shape (rows, cols)
        Normalised views (float in [0, 1], lines dark: see
        :func:`napari_stereo_tem.stereo.detection.normalise_image`).
    model : StereoNet
        The matcher (with its feature network), in eval mode.
    device : str or torch.device, optional
        Defaults to where the model's parameters are.
    disparity_range : (int, int), optional
        Smallest and largest disparity to consider, in pixels (default: the range the
        matcher was trained with). The model is not changed.

    Returns
    -------
    disparity, std : ndarray, float32, shape (rows, cols)
        ``x_right - x_left`` in pixels and its standard deviation.
    """
    import torch

    from ..nets.inference import inference_copy

    left = np.asarray(left, dtype=np.float32)
    right = np.asarray(right, dtype=np.float32)
    if left.shape != right.shape or left.ndim != 2:
        raise InputError(f"left and right must be 2-D of one shape, got {left.shape} and {right.shape}")
    param = next(model.parameters())
    device = param.device if device is None else torch.device(device)
    multiple = model.size_multiple
    rows, cols = left.shape
    # Padded (mirrored) to a multiple of the network's stride, and to at least two
    # strides: the hourglass pools twice and needs that much to work on.
    pad = tuple((0, max(n + (-n) % multiple, 2 * multiple) - n) for n in (rows, cols))
    tensors = [torch.from_numpy(np.pad(view, pad, mode="reflect") if any(p[1] for p in pad) else view)
               [None, None].to(device=device, dtype=param.dtype) for view in (left, right)]
    net = inference_copy(model)  # the feature network's BatchNorm folded, channels-last
    with torch.no_grad(), cancel_between_layers(net):  # a cancel does not wait for the whole pass
        out = net(*tensors, with_logits=False, disparity_range=disparity_range)
    disparity = out["disparity"][0, 0, :rows, :cols].float().cpu().numpy()
    std = out["std"][0, 0, :rows, :cols].float().cpu().numpy()
    return disparity, std


def _runs(row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (inclusive) columns of the runs of true values in a 1-D bool array."""
    padded = np.concatenate([[False], row, [False]])
    change = np.flatnonzero(padded[1:] != padded[:-1])
    return change[0::2], change[1::2] - 1


def _run_centres(starts, ends, weights_row) -> np.ndarray:
    if weights_row is None:
        return (starts + ends) / 2.0
    centres = np.empty(len(starts))
    for i, (a, b) in enumerate(zip(starts, ends)):
        w = weights_row[a:b + 1].astype(float)
        centres[i] = (a + b) / 2.0 if w.sum() <= 0 else float((np.arange(a, b + 1) * w).sum() / w.sum())
    return centres


def refine_disparity(disparity, mask_left, mask_right, *, max_distance: float = 3.0, max_row_offset: int = 1,
                     mode: str = "centre", max_run: int = 8, weights_left=None, weights_right=None,
                     return_positions: bool = False):
    """Snap warped left dislocation pixels to right dislocation pixels.

    Parameters
    ----------
    disparity : ndarray, shape (rows, cols)
        Raw disparity ``x_right - x_left`` (e.g. from :func:`predict_disparity`).
    mask_left, mask_right : ndarray of bool, shape (rows, cols)
        Dislocation pixels of each (rectified) view.
    max_distance : float
        Largest distance in pixels from the warped position ``(x + d, y)`` to a candidate.
    max_row_offset : int
        Candidates may lie this many rows above or below (distance counts the row offset).
    mode : {"centre", "pixel"}
        See :data:`REFINE_MODES`.
    max_run : int
        In ``"centre"`` mode, runs longer than this (on either side) use the ``"pixel"`` rule.
    weights_left, weights_right : ndarray, optional
        Detection probabilities; when given, run centres are probability-weighted (sub-pixel).
    return_positions : bool
        Also return the left ``x`` each disparity refers to.

    Returns
    -------
    disparity : ndarray, float32, shape (rows, cols)
        Refined disparity at the kept left dislocation pixels; NaN elsewhere
        (background and dropped pixels).
    positions : ndarray, float32, shape (rows, cols)
        Only with ``return_positions``: the left column the disparity is measured
        from, the (sub-pixel) centre of the left run where the centre rule was
        used, the pixel's own column otherwise; NaN where the disparity is. A 3D
        point belongs at ``(positions, row)``, seen in the right view at
        ``positions + disparity``.
    """
    if mode not in REFINE_MODES:
        raise InputError(f"mode must be one of {REFINE_MODES}, got {mode!r}")
    disparity = np.asarray(disparity, dtype=float)
    mask_left = np.asarray(mask_left) > 0
    mask_right = np.asarray(mask_right) > 0
    if not (disparity.shape == mask_left.shape == mask_right.shape) or disparity.ndim != 2:
        raise InputError(f"disparity and masks must be 2-D of one shape, got {disparity.shape}, "
                         f"{mask_left.shape}, {mask_right.shape}")
    rows = disparity.shape[0]
    out = np.full(disparity.shape, np.nan, dtype=np.float32)
    positions = np.full(disparity.shape, np.nan, dtype=np.float32)
    right_runs = []
    for y in range(rows):
        a, b = _runs(mask_right[y])
        wr = None if weights_right is None else np.asarray(weights_right)[y]
        right_runs.append((a, b, _run_centres(a, b, wr)))
    for y in range(rows):
        if y % 16 == 0:
            check_cancelled()
        la, lb = _runs(mask_left[y])
        if not len(la):
            continue
        wl = None if weights_left is None else np.asarray(weights_left)[y]
        lc = _run_centres(la, lb, wl)
        cand = [(right_runs[yy], abs(yy - y)) for yy in range(max(0, y - max_row_offset),
                                                             min(rows, y + max_row_offset + 1))]
        cand = [(r, dy) for r, dy in cand if len(r[0])]
        if not cand:
            continue
        ra = np.concatenate([r[0] for r, _ in cand])
        rb = np.concatenate([r[1] for r, _ in cand])
        rc = np.concatenate([r[2] for r, _ in cand])
        rdy = np.concatenate([np.full(len(r[0]), dy, dtype=float) for r, dy in cand])
        for a, b, c in zip(la, lb, lc):
            xs = np.arange(a, b + 1)
            d = disparity[y, a:b + 1]
            ok = np.isfinite(d)
            target = xs + np.where(ok, d, 0.0)
            gap = np.maximum(0.0, np.maximum(ra[None, :] - target[:, None], target[:, None] - rb[None, :]))
            dist = np.hypot(gap, rdy[None, :])
            best = np.argmin(dist, axis=1)
            best_dist = dist[np.arange(len(xs)), best]
            keep = ok & (best_dist <= max_distance)
            snapped = np.clip(target, ra[best], rb[best])
            refined = snapped - xs
            origin = xs.astype(float)
            if mode == "centre" and (b - a + 1) <= max_run:
                short = (rb[best] - ra[best] + 1) <= max_run
                refined = np.where(short, rc[best] - c, refined)
                origin = np.where(short, c, origin)
            out[y, a:b + 1] = np.where(keep, refined, np.nan)
            positions[y, a:b + 1] = np.where(keep, origin, np.nan)
    return (out, positions) if return_positions else out


def sgbm_disparity(left, right, *, disparity_range: tuple[int, int] = (-24, 24), block_size: int = 5) -> np.ndarray:
    """OpenCV StereoSGBM disparity ``x_right - x_left`` for a rectified pair (the baseline).

    Parameters
    ----------
    left, right : ndarray, shape (rows, cols)
        Views (any numeric dtype; scaled to uint8 together).
    disparity_range : (int, int)
        Signed range searched.
    block_size : int
        SGBM matching block size (odd).

    Returns
    -------
    ndarray, float32, shape (rows, cols)
        Disparity; NaN where SGBM found no valid match.
    """
    import cv2

    left = np.asarray(left, dtype=float)
    right = np.asarray(right, dtype=float)
    low = min(left.min(), right.min())
    span = max(left.max(), right.max()) - low or 1.0
    l8 = np.round((left - low) / span * 255).astype(np.uint8)
    r8 = np.round((right - low) / span * 255).astype(np.uint8)
    dmin, dmax = int(disparity_range[0]), int(disparity_range[1])
    # OpenCV's disparity is x_left - x_right = -d, searched in [minDisparity, minDisparity + num).
    num = int(np.ceil((dmax - dmin + 1) / 16.0) * 16)
    sgbm = cv2.StereoSGBM_create(minDisparity=-dmax, numDisparities=num, blockSize=block_size,
                                 P1=8 * block_size ** 2, P2=32 * block_size ** 2, uniquenessRatio=5,
                                 disp12MaxDiff=2, speckleWindowSize=50, speckleRange=2,
                                 mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY)
    raw = sgbm.compute(l8, r8).astype(np.float32) / 16.0
    out = -raw
    out[raw < -dmax] = np.nan
    return out


def disparity_metrics(pred, truth, mask=None) -> dict:
    """End-point error and outlier shares over the pixels of ``mask`` where ``truth`` is known.

    Parameters
    ----------
    pred, truth : ndarray, shape (rows, cols)
        Disparities; NaN in ``pred`` means "no estimate" (counted in ``coverage``,
        left out of the errors), NaN in ``truth`` means "unknown" (left out).
    mask : ndarray of bool, optional
        Pixels to score (default: every pixel with a known truth).

    Returns
    -------
    dict
        ``epe`` (mean absolute error, px), ``gt1``, ``gt3``, ``gt5`` (percent of scored
        pixels with error above 1, 3, 5 px), ``n`` (scored pixels) and ``coverage``
        (percent of the known pixels that have an estimate).
    """
    pred = np.asarray(pred, dtype=float)
    truth = np.asarray(truth, dtype=float)
    if pred.shape != truth.shape:
        raise InputError(f"pred and truth differ in shape: {pred.shape} vs {truth.shape}")
    known = np.isfinite(truth) if mask is None else (np.asarray(mask) > 0) & np.isfinite(truth)
    scored = known & np.isfinite(pred)
    n_known, n = int(known.sum()), int(scored.sum())
    if n == 0:
        return {"epe": float("nan"), "gt1": float("nan"), "gt3": float("nan"), "gt5": float("nan"),
                "n": 0, "coverage": 0.0}
    err = np.abs(pred[scored] - truth[scored])
    return {"epe": float(err.mean()), "gt1": float(100 * (err > 1).mean()), "gt3": float(100 * (err > 3).mean()),
            "gt5": float(100 * (err > 5).mean()), "n": n, "coverage": float(100 * n / max(n_known, 1))}
