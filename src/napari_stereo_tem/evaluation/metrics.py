"""Segmentation metrics for thin curvilinear structures (DESIGN 3.10).

- :func:`centreline_scores`: precision, recall and F1 of the centrelines with
  a distance tolerance (2 px by default). Both masks are skeletonised; a
  predicted centreline pixel is a true positive when a true centreline pixel
  lies within the tolerance, and a true centreline pixel is recalled when a
  predicted one lies within the tolerance. Predicted pixels inside an
  optional ``ignore`` mask count neither as true nor as false positives.
- :func:`cl_dice`: clDice (Shit et al., CVPR 2021), the harmonic mean of the
  share of the predicted skeleton inside the true mask and the share of the
  true skeleton inside the predicted mask.
"""

from __future__ import annotations

import numpy as np

from ..checks import InputError

__all__ = ["centreline_scores", "cl_dice"]


def _pair(pred, true) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred) > 0
    true = np.asarray(true) > 0
    if pred.shape != true.shape or pred.ndim != 2:
        raise InputError(f"prediction and truth must be 2-D masks of one shape, got {pred.shape} and {true.shape}")
    return pred, true


def _skeleton(mask: np.ndarray) -> np.ndarray:
    from skimage.morphology import skeletonize

    return skeletonize(mask) if mask.any() else mask


def centreline_scores(pred, true, *, tolerance: float = 2.0, ignore=None) -> dict:
    """Centreline precision, recall and F1 with a distance tolerance.

    Parameters
    ----------
    pred, true : array_like of bool, shape (rows, cols)
        Predicted and true masks (non-zero = line).
    tolerance : float
        Largest distance, in pixels, at which two centreline pixels match.
    ignore : array_like of bool, shape (rows, cols), optional
        Predicted centreline pixels here are left out of ``n_pred`` and
        ``tp_pred`` (neither right nor wrong); they still recall true pixels.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1`` (floats; 1.0 when both are empty)
        and the counts ``n_pred``, ``n_true``, ``tp_pred``, ``tp_true``.
    """
    from scipy.ndimage import distance_transform_edt

    pred, true = _pair(pred, true)
    sp, st = _skeleton(pred), _skeleton(true)
    counted = sp
    if ignore is not None:
        ignore = np.asarray(ignore) > 0
        if ignore.shape != true.shape:
            raise InputError(f"ignore mask must have the truth's shape {true.shape}, got {ignore.shape}")
        counted = sp & ~ignore
    n_pred, n_true = int(counted.sum()), int(st.sum())
    if n_pred == 0 and n_true == 0:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0, "n_pred": 0, "n_true": 0, "tp_pred": 0, "tp_true": 0}
    far = np.full(pred.shape, np.inf)
    dist_to_true = distance_transform_edt(~st) if n_true else far
    dist_to_pred = distance_transform_edt(~sp) if sp.any() else far
    tp_pred = int(np.count_nonzero(counted & (dist_to_true <= tolerance)))
    tp_true = int(np.count_nonzero(st & (dist_to_pred <= tolerance)))
    precision = tp_pred / n_pred if n_pred else 0.0
    recall = tp_true / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1,
            "n_pred": n_pred, "n_true": n_true, "tp_pred": tp_pred, "tp_true": tp_true}


def cl_dice(pred, true) -> float:
    """clDice between two binary masks of shape (rows, cols); 1.0 when both are empty."""
    pred, true = _pair(pred, true)
    sp, st = _skeleton(pred), _skeleton(true)
    if not sp.any() and not st.any():
        return 1.0
    t_prec = np.count_nonzero(sp & true) / sp.sum() if sp.any() else 0.0
    t_sens = np.count_nonzero(st & pred) / st.sum() if st.any() else 0.0
    return float(2 * t_prec * t_sens / (t_prec + t_sens)) if t_prec + t_sens else 0.0
