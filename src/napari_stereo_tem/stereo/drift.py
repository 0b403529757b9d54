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

__all__ = ["estimate_drift", "iter_drift_steps", "static_overlay", "unusable_frames"]


def static_overlay(frames, *, max_frames: int = 8, min_piece_px: int = 30) -> np.ndarray:
    """Pixels that do not change through the series: an overlay burned into a video (time stamp, title
    bar, scale bar, black side frames), which stays where it is while the specimen drifts beneath it.

    Up to ``max_frames`` frames spread over the series are compared: a pixel whose spread over them is
    under a fifth of the median pixel's (the specimen's shot noise and motion) is static; pieces of
    fewer than ``min_piece_px`` pixels are dropped, the rest closed over the strokes of text, their holes
    filled (the changing digits of a time stamp inside its bar) and grown by 3 px. Empty when more than
    half of the field is static (a still series: nothing tells an overlay from the specimen) or the
    series has fewer than three frames.
    """
    from scipy import ndimage

    frames = np.asarray(frames)
    n = len(frames)
    none = np.zeros(frames.shape[1:], bool)
    if n < 3:
        return none
    picked = frames[np.unique(np.linspace(0, n - 1, min(n, max_frames)).round().astype(int))].astype(np.float32)
    spread = picked.std(axis=0)
    level = float(np.median(spread))
    if not level > 0:
        return none
    static = spread < 0.2 * level
    if static.mean() > 0.5:
        return none
    pieces, count = ndimage.label(static)
    if count:
        sizes = np.bincount(pieces.ravel(), minlength=count + 1)
        static = (sizes >= min_piece_px)[pieces] & static
    if not static.any():
        return static
    static = ndimage.binary_closing(static, np.ones((5, 5)), iterations=2)
    static = ndimage.binary_fill_holes(static)  # a time stamp changes, the bar around it does not
    return ndimage.binary_dilation(static, np.ones((3, 3)), iterations=3)


#: Sigma of the local mean taken from each frame before the drift is found, as a share of the frame's
#: side. Illumination gradients do not move, and a bend contour sweeping across a strained foil moves
#: on its own: a tenth of the side kept much of such a contour (half width a tenth of the side), and
#: its sweep pulled the drift (``benchmarks/bench_tracking.py --bend-contour 8``, validation seeds:
#: largest drift error 1.24 px at 192 px, 0.34 px with three hundredths).
LOCAL_MEAN_SIDE = 0.03
#: ... and never below this many pixels (small frames: the drift then rests on more than the noise).
MIN_LOCAL_MEAN_PX = 6.0
#: Pixels around the ignored ones (the dislocations, which glide on their own) also left out of the
#: drift: their blurred edges moved with them and biased every step towards their glide (validation
#: series of 256 px: largest drift error 2.35 px with 2 px, 0.29 px with 4 px).
IGNORE_MARGIN_PX = 4


def _high_pass(frame: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The frame less its local mean over ``keep`` pixels (:data:`LOCAL_MEAN_SIDE`).

    The local mean is so smooth that it is computed on the frame shrunk by a quarter of its sigma and
    enlarged back (a 1024 px frame: 0.03 s, not 1.4 s).
    """
    import cv2
    from scipy import ndimage

    f = frame.astype(np.float64)
    rows, cols = f.shape
    sigma = max(LOCAL_MEAN_SIDE * min(f.shape), MIN_LOCAL_MEAN_PX)
    weight = keep.astype(np.float64)
    value, share = f * weight, weight
    step = max(1, int(sigma // 4))
    if step > 1:
        small = (max(2, round(cols / step)), max(2, round(rows / step)))
        value, share = (cv2.resize(a, small, interpolation=cv2.INTER_AREA) for a in (value, share))
        sigma = sigma * small[0] / cols
    local = ndimage.gaussian_filter(value, sigma) / np.maximum(ndimage.gaussian_filter(share, sigma), 1e-3)
    if step > 1:
        local = cv2.resize(local, (cols, rows), interpolation=cv2.INTER_LINEAR)
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


#: Frames at least this many px a side are correlated at half size first (4x less work), then the
#: whole-pixel shift is found at full size around it.
COARSE_SIDE = 512
#: Frames at least this many px a side (a 4k camera's) are halved again, level by level, before that.
LARGE_SIDE = 2048


def _binned(image: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2x2 means of ``image`` and the 2x2 blocks whose four pixels are all kept."""
    rows, cols = (s - s % 2 for s in image.shape)
    blocks = image[:rows, :cols].reshape(rows // 2, 2, cols // 2, 2)
    kept = keep[:rows, :cols].reshape(rows // 2, 2, cols // 2, 2)
    return blocks.mean(axis=(1, 3)), kept.all(axis=(1, 3))


def _whole_pixel_step(reference, moving, keep_ref, keep_mov) -> tuple[int, int]:
    """The whole-pixel ``(dx, dy)`` of the masked cross-correlation's peak."""
    from skimage.registration import phase_cross_correlation

    def correlated(ref, mov, k_ref, k_mov):
        shift = phase_cross_correlation(ref, mov, reference_mask=k_ref, moving_mask=k_mov, overlap_ratio=0.5)
        shift = shift[0] if isinstance(shift, tuple) else shift
        dy, dx = (-np.round(np.asarray(shift, float))).astype(int)
        return int(dx), int(dy)

    if min(reference.shape) < COARSE_SIDE:
        return correlated(reference, moving, keep_ref, keep_mov)
    # at half size, then uphill at full size from twice that shift (the half-size peak is within a pixel);
    # a large frame finds its half-size shift the same way, from a quarter size, and so on
    (ref_small, keep_ref_small), (mov_small, keep_mov_small) = _binned(reference, keep_ref), _binned(moving, keep_mov)
    if min(reference.shape) >= LARGE_SIDE:
        dx, dy = _whole_pixel_step(ref_small, mov_small, keep_ref_small, keep_mov_small)
    else:
        dx, dy = correlated(ref_small, mov_small, keep_ref_small, keep_mov_small)
    dx, dy = 2 * dx, 2 * dy
    score = {}

    def at(x, y):
        if (x, y) not in score:
            score[x, y] = _overlap_correlation(reference, moving, keep_ref, keep_mov, x, y)
        return score[x, y]

    for _ in range(8):
        best = max(((dx + ox, dy + oy) for ox in (-1, 0, 1) for oy in (-1, 0, 1)), key=lambda p: at(*p))
        if best == (dx, dy):
            break
        dx, dy = best
    return dx, dy


def _frame_step(reference, moving, keep_ref, keep_mov) -> np.ndarray:
    """How far the content of ``moving`` moved relative to ``reference``, ``(dx, dy)`` (sub-pixel).

    Masked normalised cross-correlation (ignored pixels take no part, so features
    that move on their own do not pull the result), then a parabola through the
    correlation at the best whole-pixel shift and its neighbours.
    """
    dx, dy = _whole_pixel_step(reference, moving, keep_ref, keep_mov)
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
            keep = ~ndimage.binary_dilation(np.asarray(ignore[k], bool), iterations=IGNORE_MARGIN_PX)
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


def _likeness_images(frames: np.ndarray, side: int) -> list:
    """Every frame shrunk to at most ``side`` px a side and high-passed (``None`` for a blank frame)."""
    import cv2

    spread = np.array([np.subtract(*np.percentile(f, [99, 1])) for f in frames])
    typical = float(np.median(spread))
    out = []
    for frame, width in zip(frames, spread):
        if not width > 0.02 * typical:  # constant, or nearly: a blanked beam, a frame the camera dropped
            out.append(None)
            continue
        factor = max(1.0, max(frame.shape) / side)
        small = cv2.resize(frame.astype(np.float32), (max(8, round(frame.shape[1] / factor)),
                                                     max(8, round(frame.shape[0] / factor))),
                           interpolation=cv2.INTER_AREA)
        out.append(_high_pass(small, np.ones(small.shape, bool)))
    return out


def _likeness(a, b) -> float:
    """Correlation of two shrunk frames at the shift that lines them up best (0 for a blank one)."""
    if a is None or b is None:
        return 0.0
    keep = np.ones(a.shape, bool)
    dx, dy = _whole_pixel_step(a, b, keep, keep)
    return max(0.0, _overlap_correlation(a, b, keep, keep, dx, dy))


def unusable_frames(frames, *, side: int = 128, min_share: float = 0.3, min_typical: float = 0.05) -> list:
    """Frames of a series that show nothing of the specimen: ``[(index, reason), ...]``.

    A frame is *blank* when its grey levels span under 2 % of a typical frame's (a blanked beam, a
    frame the camera dropped as a constant), *a copy of the frame before* when every pixel is the same (a
    camera repeating a frame it had no new one for: the lines would seem to stop), and *unlike its
    neighbours* when its likeness to each of
    them (the correlation of the shrunk, high-passed frames at the shift that lines them up best) is
    under ``min_share`` of the series' typical likeness of consecutive frames (a frame of noise while
    the beam was blanked, a flash). Such a frame breaks a drift accumulated from frame to frame; a series
    whose consecutive frames are hardly alike at all (typical likeness under ``min_typical``: very noisy
    frames) is left as it is.
    """
    frames = np.asarray(frames)
    copies = {k for k in range(1, len(frames)) if np.array_equal(frames[k], frames[k - 1])}
    small = _likeness_images(frames, side)
    links = np.array([_likeness(small[k - 1], small[k]) for k in range(1, len(frames))])
    typical = float(np.median(links)) if len(links) else 0.0
    found = []
    for k in range(len(frames)):
        if small[k] is None:
            found.append((k, "blank"))
            continue
        if k in copies:
            found.append((k, "a copy of the frame before"))
            continue
        own = [links[j] for j in (k - 1, k) if 0 <= j < len(links)]
        if typical >= min_typical and own and max(own) < min_share * typical:
            found.append((k, "unlike its neighbours"))
    return found
