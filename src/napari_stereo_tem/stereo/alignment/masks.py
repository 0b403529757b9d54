"""What of an image is specimen, and the band-passed image that alignment matches on.

Real micrographs and video frames carry things that do not move with the
specimen: black (or white) frames, burned-in title text, scale bars and
annotations. They are found without help from the user:

- **flat** pixels: a neighbourhood with (almost) no variation, which a noisy
  micrograph never has (padding, frames, the fill outside a rotated field);
- **saturated marks**: clusters of pixels at the image's extreme value with a
  sharp neighbourhood (white or black text, scale bars), and bars near an
  extreme with little variation;
- **identical in both views**: pixels equal in the two views over a whole
  neighbourhood (an overlay burned in at the same place in every frame).

The mask is grown by a few pixels so that anti-aliased edges go too.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

from ...checks import InputError
from ...robust import robust_std

__all__ = ["overlay_mask", "frame_mask", "vacuum_mask", "scale_bar_mask", "bandpass", "fill_masked", "gaussian",
           "erode"]


def erode(mask: np.ndarray, reach: int, *, outside: bool = False) -> np.ndarray:
    """Pixels of ``mask`` whose whole ``(2 reach + 1)^2`` square lies in it (OpenCV's erosion).

    ``outside``: whether pixels beyond the image count as in the mask. The same as
    ``ndimage.binary_erosion(mask, np.ones((3, 3)), iterations=reach)`` (``outside=False``) or
    ``ndimage.minimum_filter`` (``outside=True``, its mirrored edge), several times faster.
    """
    square = np.ones((2 * int(reach) + 1, 2 * int(reach) + 1), np.uint8)
    border = dict(borderType=cv2.BORDER_REFLECT) if outside else dict(borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return cv2.erode(np.asarray(mask, bool).astype(np.uint8), square, **border) > 0


def gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    """:func:`scipy.ndimage.gaussian_filter` (mode "reflect", truncated at 4 sigma) by OpenCV's separable filter.

    The same kernel and border, several times faster; float32 stays float32, anything else becomes float64.
    """
    img = np.asarray(image)
    img = np.ascontiguousarray(img if img.dtype in (np.float32, np.float64) else img.astype(np.float64))
    radius = int(4.0 * float(sigma) + 0.5)
    if img.ndim != 2 or radius >= min(img.shape):  # a kernel wider than the image reflects more than once
        return ndimage.gaussian_filter(img, sigma)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / float(sigma)) ** 2)
    kernel /= kernel.sum()
    return cv2.sepFilter2D(img, -1, kernel, kernel, borderType=cv2.BORDER_REFLECT)


def _local_std(image: np.ndarray, size: int) -> np.ndarray:
    mean = ndimage.uniform_filter(image, size)
    square = ndimage.uniform_filter(image * image, size)
    return np.sqrt(np.maximum(square - mean * mean, 0.0))


def frame_mask(image, *, dilate_px: int = 6, min_share: float = 0.001) -> np.ndarray:
    """The flat fill around a field: padding, black frames, the corners of a rotated or aligned image.

    Only flat pixels (a 7x7 neighbourhood with almost no variation, which a noisy micrograph
    never has) in regions that touch the image's edge and hold at least ``min_share`` of it,
    grown by ``dilate_px`` (the flat test stops 3 px short of the field; the rest reaches over
    its anti-aliased edge). Unlike :func:`overlay_mask` nothing dark or bright is taken for a
    mark, so the darkest lines of a micrograph are never masked.
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise InputError(f"frame_mask needs a 2D image, got shape {img.shape}")
    span = float(img.max() - img.min())
    if span <= 0:
        return np.zeros(img.shape, bool)
    flat = _local_std(img, 7) < 1e-3 * (robust_std(img) or span / 4.0)
    if not flat.any():
        return flat
    pieces, n = ndimage.label(flat)
    edge = np.unique(np.concatenate([pieces[0], pieces[-1], pieces[:, 0], pieces[:, -1]]))
    sizes = np.bincount(pieces.ravel(), minlength=n + 1)
    keep = np.zeros(n + 1, bool)
    keep[edge] = True
    keep &= sizes >= min_share * img.size
    keep[0] = False
    frame = keep[pieces]
    if not frame.any():
        return frame
    return cv2.dilate(frame.astype(np.uint8), np.ones((2 * dilate_px + 1,) * 2, np.uint8)) > 0


def vacuum_mask(image, *, dilate_px: int = 6, min_share: float = 0.01, smooth_px: float = 3.0,
                structure_px: int = 15) -> np.ndarray:
    """Vacuum seen in a bright-field image: a hole in the foil or the space beyond its edge.

    The thinnest, best areas of a foil lie at its holes, so real micrographs often show one. The
    vacuum is the brightest part of the image and featureless but for shot noise; its edge is a
    strong step that a detector draws as a line. Taken as vacuum: connected regions of at least
    ``min_share`` of the image whose smoothed intensity (Gaussian ``smooth_px``) hardly varies
    (local spread over ``structure_px`` under 1.5 % of the image's range) and lies in the upper
    half between the median and the maximum, and whose median is brighter than 99.5 % of the rest of
    the image by a tenth of its range; grown by ``dilate_px``. Specimen areas, however bright, hold
    lines, dots or thickness changes, and are darker than the vacuum.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise InputError(f"vacuum_mask needs a 2D image, got shape {img.shape}")
    smooth = gaussian(img, smooth_px)
    low, median, high = np.percentile(smooth, [1, 50, 99.9])
    if not high > low:
        return np.zeros(img.shape, bool)
    # vacuum varies by a few thousandths of the image's range over the window, the brightest specimen
    # areas (thin foil between bend contours) by a few hundredths (real micrographs: 0.03-0.04)
    quiet = _local_std(smooth, structure_px) < 0.015 * (high - low)
    candidate = quiet & (smooth > median + 0.5 * (high - median))
    if candidate.sum() < min_share * img.size:
        return np.zeros(img.shape, bool)
    pieces, n = ndimage.label(candidate)
    sizes = np.bincount(pieces.ravel(), minlength=n + 1)
    # the rest of the image, less the rim the quiet test left out around each candidate (still vacuum)
    rim = cv2.dilate(candidate.astype(np.uint8), np.ones((2 * structure_px + 1,) * 2, np.uint8)) > 0
    rest = smooth[~rim]
    ceiling = float(np.percentile(rest, 99.5)) if rest.size else float("inf")
    medians = ndimage.median(smooth, pieces, index=np.arange(1, n + 1)) if n else np.zeros(0)
    keep = np.zeros(n + 1, bool)
    # clearly brighter than all the specimen (a uniform background is as bright as its own brightest part)
    keep[1:] = (sizes[1:] >= min_share * img.size) & (np.asarray(medians) > ceiling + 0.1 * (high - low))
    vacuum = keep[pieces]
    if not vacuum.any():
        return vacuum
    # the quiet test stops short of the edge (its window reaches over it): grow over the step
    reach = dilate_px + structure_px // 2
    return cv2.dilate(vacuum.astype(np.uint8), np.ones((2 * reach + 1,) * 2, np.uint8)) > 0


def _grown(box: tuple, reach: int, shape) -> tuple:
    """The slices ``box`` grown by ``reach`` px on every side, within ``shape``."""
    return tuple(slice(max(0, b.start - reach), min(size, b.stop + reach)) for b, size in zip(box, shape))


def _step_around(image: np.ndarray, piece: np.ndarray, level: float, *, inner: int, outer: int) -> float:
    """Mean ``|image - level|`` over the ring ``inner`` to ``outer`` px outside ``piece`` (0 when there is none)."""
    ring = ndimage.binary_dilation(piece, iterations=outer) & ~ndimage.binary_dilation(piece, iterations=inner)
    return float(np.mean(np.abs(image[ring] - level))) if ring.any() else 0.0


def scale_bar_mask(image, *, dilate_px: int = 3, min_area: int = 20, min_aspect: float = 4.0) -> np.ndarray:
    """A burned-in scale bar inside the field and the label beside it (white or black, any place).

    A scale bar is a solid, axis-aligned bar at an extreme grey level with a sharp edge: taken as one,
    connected pixels above the 99th (or below the 1st) percentile whose 5x5 spread is under 2 % of the
    range between those percentiles, at least ``min_area`` px, filling at least 70 % of their bounding box, at
    least ``min_aspect`` times longer than thick, and differing from the pixels 2-4 px beside them by a
    fifth of that range on average, away from the image's edge (a data bar along the edge is
    :func:`frame_mask`'s) and at most 4 % of the image thick. Its label (e.g. "200 nm") is the pixels at
    the bar's level within a box about it (six bar thicknesses, at least 20 px and at most 6 % of the
    image, above and below; a tenth of its length beyond its ends). A micrograph's own features, however
    dark or clipped, are not bars with a step around them.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise InputError(f"scale_bar_mask needs a 2D image, got shape {img.shape}")
    mask = np.zeros(img.shape, bool)
    low, high = np.percentile(img, [1, 99])
    span = float(high - low)
    if span <= 0:
        return mask
    flat = _local_std(img, 5) < 0.02 * span
    rows, cols = img.shape
    for near in (img >= high, img <= low):
        pieces, n = ndimage.label(near & flat)
        for k, box in enumerate(ndimage.find_objects(pieces), start=1):
            if box is None:
                continue
            piece = pieces[box] == k
            level = float(np.median(img[box][piece]))
            height, width = piece.shape
            area = int(piece.sum())
            if area < min_area or area < 0.7 * height * width or max(height, width) < min_aspect * min(height, width):
                continue
            at_edge = box[0].start <= 2 or box[1].start <= 2 or box[0].stop >= rows - 2 or box[1].stop >= cols - 2
            if at_edge or min(height, width) > 0.04 * min(rows, cols):  # a data bar or frame: frame_mask's
                continue
            # (the flat core stops 2 px inside the bar's edge: the ring lies 2-4 px outside the edge)
            around = _grown(box, 6, img.shape)
            core = pieces[around] == k
            if _step_around(img[around], core, level, inner=4, outer=6) < 0.2 * span:
                continue
            # the label: across the bar up to six thicknesses (at least 20 px, at most 6 % of the image),
            # along it a tenth of its length beyond each end
            across = int(min(max(20, 6 * min(height, width)), 0.06 * min(rows, cols)))
            along = max(height, width) // 10
            reach_rows, reach_cols = (across, along) if width >= height else (along, across)
            r0, r1 = max(0, box[0].start - reach_rows), min(rows, box[0].stop + reach_rows)
            c0, c1 = max(0, box[1].start - reach_cols), min(cols, box[1].stop + reach_cols)
            mask[around] |= core
            # the label's strokes: pieces at the bar's level with the same sharp step around them (not the
            # specimen's own bright or dark specks beside the bar)
            window = img[r0:r1, c0:c1]
            strokes, _ = ndimage.label(np.abs(window - level) < 0.1 * span)
            for j, piece_box in enumerate(ndimage.find_objects(strokes), start=1):
                if piece_box is None:
                    continue
                near = _grown(piece_box, 3, window.shape)
                stroke = strokes[near] == j
                if stroke.sum() >= 4 and _step_around(window[near], stroke, level, inner=1, outer=3) >= 0.2 * span:
                    mask[r0:r1, c0:c1][near] |= stroke
    if dilate_px > 0 and mask.any():
        mask = ndimage.binary_dilation(mask, np.ones((3, 3)), iterations=int(dilate_px))
    return mask


def overlay_mask(image, *, other=None, dilate_px: int = 4, border_px: int | None = None,
                 min_mark_px: int = 6) -> np.ndarray:
    """Pixels of ``image`` that are not specimen: frames, burned-in overlays, the border.

    Parameters
    ----------
    image : array_like, shape (rows, cols)
        One view, raw grey levels.
    other : array_like, shape (rows, cols), optional
        The other view: pixels equal in both over a 5x5 neighbourhood are masked
        (an overlay burned in at the same place in both frames).
    dilate_px : int
        Growth of the mask (px), to cover anti-aliased edges.
    border_px : int, optional
        Width of the always-masked frame at the image edge; default 1 % of the
        smaller side (at least 3 px).
    min_mark_px : int
        Smallest cluster of saturated pixels taken as a mark (text, scale bar);
        smaller ones are left (shot noise can touch the extremes).

    Returns
    -------
    ndarray of bool, shape (rows, cols)
        True where the pixel must not be used for alignment.
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise InputError(f"overlay_mask needs a 2D image, got shape {img.shape}")
    rows, cols = img.shape
    lo, hi = float(img.min()), float(img.max())
    span = hi - lo
    mask = np.zeros(img.shape, dtype=bool)
    if span <= 0:
        return ~mask
    spread = robust_std(img) or span / 4.0
    local = _local_std(img, 7)
    mask |= local < 1e-3 * spread                                   # flat padding and fills
    tol = 0.01 * span  # anti-aliased marks reach the extreme only in their strokes' centres
    saturated = (img >= hi - tol) | (img <= lo + tol)
    near_extreme = (img >= hi - 0.03 * span) | (img <= lo + 0.03 * span)
    mask |= near_extreme & (local < 0.1 * spread)                   # black or white bars with a little noise
    if saturated.any():
        marks = ndimage.binary_closing(saturated, np.ones((3, 3)), iterations=1)
        labels, n = ndimage.label(marks)
        if n:
            sizes = ndimage.sum(marks, labels, index=np.arange(1, n + 1))
            big = np.flatnonzero(sizes >= min_mark_px) + 1
            if len(big) and np.mean(saturated) < 0.3:  # a mostly clipped image is clipping, not text
                mask |= np.isin(labels, big)
    if other is not None:
        oth = np.asarray(other, dtype=np.float64)
        if oth.shape != img.shape:
            raise InputError(f"the two views differ in shape: {img.shape} vs {oth.shape}")
        same = ndimage.uniform_filter((img == oth).astype(np.float64), 5) > 0.3
        mask |= same
    # flat regions smaller than a few pixels are texture that happens to be smooth
    labels, n = ndimage.label(mask)
    if n:
        sizes = ndimage.sum(mask, labels, index=np.arange(1, n + 1))
        mask = np.isin(labels, np.flatnonzero(sizes >= min_mark_px) + 1)
    if mask.any():  # text written on a bar: close the bar over its strokes
        mask = ndimage.binary_closing(mask, np.ones((5, 5)), iterations=2, border_value=1)
    if dilate_px > 0 and mask.any():
        mask = ndimage.binary_dilation(mask, np.ones((3, 3)), iterations=int(dilate_px))
    edge = max(3, int(round(0.01 * min(rows, cols)))) if border_px is None else int(border_px)
    if edge > 0:
        mask[:edge] = mask[-edge:] = True
        mask[:, :edge] = mask[:, -edge:] = True
    return mask


def fill_masked(image, mask, *, sigma: float = 6.0) -> np.ndarray:
    """``image`` with masked pixels replaced by a smooth average of their unmasked surroundings."""
    img = np.asarray(image, dtype=np.float64)
    keep = (~np.asarray(mask, dtype=bool)).astype(np.float64)
    if keep.sum() == 0:
        raise InputError("the whole image is masked (frames or overlays everywhere); crop it to the specimen")
    num = gaussian(img * keep, sigma)
    den = gaussian(keep, sigma)
    fallback = float(np.median(img[keep > 0]))
    smooth = np.where(den > 1e-3, num / np.maximum(den, 1e-12), fallback)
    return np.where(keep > 0, img, smooth)


def bandpass(image, mask=None, *, low_sigma: float = 1.0, high_sigma: float = 4.0) -> np.ndarray:
    """Band-passed, locally contrast-normalised image (float32), zero on masked pixels.

    A difference of Gaussians keeps the structure between ``low_sigma`` (noise)
    and ``high_sigma`` (bend contours, thickness and illumination gradients are broader) px;
    dividing by the local RMS over ``2 * high_sigma`` gives every region the same
    weight, so views whose contrast differs strongly still correlate.
    """
    img = np.asarray(image, dtype=np.float64)
    masked = np.zeros(img.shape, bool) if mask is None else np.asarray(mask, dtype=bool)
    filled = fill_masked(img, masked) if masked.any() else img
    dog = gaussian(filled, low_sigma) - gaussian(filled, high_sigma)
    dog[masked] = 0.0
    rms = np.sqrt(gaussian(dog * dog, 2.0 * high_sigma))
    floor = 0.05 * float(np.median(rms[~masked])) if (~masked).any() else 0.0
    out = dog / np.maximum(rms, max(floor, 1e-12))
    out[masked] = 0.0
    return out.astype(np.float32)
