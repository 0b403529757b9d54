"""Drift of the frames of a time series: masked cross-correlation of consecutive frames, accumulated.

Features that move on their own (gliding dislocations) are masked out, so the
static specimen (texture, dots, slip traces, boundaries) decides the drift.
A drift ``(dx, dy)`` of frame ``k`` says that a specimen point at ``p`` in
frame 0 lies at ``p + (dx, dy)`` in frame ``k``.
"""

from __future__ import annotations

import numpy as np

from ..checks import InputError
from .frame_stack import read_stack

__all__ = ["estimate_drift", "iter_drift_steps"]


def _high_pass(frame: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The frame less its local mean over ``keep`` pixels (illumination gradients do not move)."""
    from scipy import ndimage

    f = frame.astype(np.float64)
    sigma = 0.1 * min(f.shape)
    weight = keep.astype(np.float64)
    local = ndimage.gaussian_filter(f * weight, sigma) / np.maximum(ndimage.gaussian_filter(weight, sigma), 1e-3)
    return f - local


def _overlap_correlation(reference, moving, keep_ref, keep_mov, dx: int, dy: int) -> float:
    """Pearson correlation of ``reference[y, x]`` and ``moving[y + dy, x + dx]`` over pixels kept in both."""
    rows, cols = reference.shape
    ys, yd = slice(max(0, -dy), min(rows, rows - dy)), slice(max(0, dy), min(rows, rows + dy))
    xs, xd = slice(max(0, -dx), min(cols, cols - dx)), slice(max(0, dx), min(cols, cols + dx))
    both = keep_ref[ys, xs] & keep_mov[yd, xd]
    if both.sum() < 16:
        return -1.0
    a, b = reference[ys, xs][both], moving[yd, xd][both]
    a, b = a - a.mean(), b - b.mean()
    return float(np.sum(a * b) / max(np.sqrt(np.sum(a * a) * np.sum(b * b)), 1e-12))


def _frame_step(reference, moving, keep_ref, keep_mov) -> np.ndarray:
    """How far the content of ``moving`` moved relative to ``reference``, ``(dx, dy)`` (sub-pixel).

    Masked normalised cross-correlation (ignored pixels take no part, so features
    that move on their own do not pull the result), then a parabola through the
    correlation at the best whole-pixel shift and its neighbours.
    """
    from skimage.registration import phase_cross_correlation

    shift = phase_cross_correlation(reference, moving, reference_mask=keep_ref, moving_mask=keep_mov,
                                    overlap_ratio=0.5)
    shift = shift[0] if isinstance(shift, tuple) else shift
    dy, dx = (-np.round(np.asarray(shift, float))).astype(int)
    centre = _overlap_correlation(reference, moving, keep_ref, keep_mov, dx, dy)
    step = np.array([float(dx), float(dy)])
    for axis, (ox, oy) in enumerate(((1, 0), (0, 1))):
        before = _overlap_correlation(reference, moving, keep_ref, keep_mov, dx - ox, dy - oy)
        after = _overlap_correlation(reference, moving, keep_ref, keep_mov, dx + ox, dy + oy)
        curvature = before - 2 * centre + after
        if curvature < 0:
            step[axis] += float(np.clip(0.5 * (before - after) / curvature, -0.5, 0.5))
    return step


def iter_drift_steps(frames: np.ndarray, ignore=None):
    """Per frame, how far its content moved since the previous frame, ``(dx, dy)`` (the first: zero)."""
    from scipy import ndimage

    def prepared(k):
        keep = np.ones(frames.shape[1:], bool)
        if ignore is not None:
            keep = ~ndimage.binary_dilation(np.asarray(ignore[k], bool), iterations=2)
        return _high_pass(frames[k], keep), keep

    previous, keep_previous = prepared(0)
    yield np.zeros(2)
    for k in range(1, len(frames)):
        current, keep_current = prepared(k)
        yield _frame_step(previous, current, keep_previous, keep_current)
        previous, keep_previous = current, keep_current


def estimate_drift(frames, *, ignore=None) -> np.ndarray:
    """Drift of every frame relative to the first, by masked cross-correlation of consecutive frames.

    Parameters
    ----------
    frames : array_like, shape (n_frames, rows, cols)
    ignore : array_like of bool, shape (n_frames, rows, cols), optional
        Pixels of features that move on their own (the dislocations): left out
        of the correlation, so that the static specimen (texture, dots, slip
        traces, boundaries) decides the drift.

    Returns
    -------
    ndarray, shape (n_frames, 2)
        ``(dx, dy)``: a specimen point at ``p`` in frame 0 lies at ``p + drift[k]`` in frame ``k``.
    """
    frames = read_stack(frames, name="frames")
    if ignore is not None and np.shape(ignore) != frames.shape:
        raise InputError(f"ignore must have the shape of the frames {frames.shape}, got {np.shape(ignore)}")
    return np.cumsum(np.array(list(iter_drift_steps(frames, ignore))), axis=0)
