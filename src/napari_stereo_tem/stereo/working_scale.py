"""Large camera images of wide lines reconstructed shrunk, and the results given back at full size.

A 4k pair at high magnification draws dislocations tens of pixels wide; the detector and the
matcher were trained on lines a few pixels wide. :func:`working_scale` says at which factor
:func:`~.pipeline.reconstruct_stereo` detects, matches and triangulates such a pair;
:func:`to_full_size` gives its 3D lines, depth errors and maps back in the image's own pixels.
"""

from __future__ import annotations

import numpy as np

__all__ = ["working_scale", "resized", "to_full_size", "LARGE_SIDE", "WORKING_SIDE"]

#: Views whose shorter side is at least this (px) and whose lines the detector sees shrunk are
#: reconstructed shrunk (:func:`working_scale`).
LARGE_SIDE = 2048
#: Shorter side (px) a large pair is shrunk to at the least for matching and triangulation.
WORKING_SIDE = 1024


def working_scale(shape, detect_scale: float) -> float:
    """Factor at which a pair of views of ``shape`` is matched and triangulated (1: as is).

    A large camera image (shorter side :data:`LARGE_SIDE` px or more) whose lines the detector
    sees shrunk (``detect_scale`` < 1: wide lines) is matched at the detector's factor, but not
    below :data:`WORKING_SIDE` px a side: the matcher, like the detector, was trained on lines a
    few pixels wide, and a 4k pair at full size takes minutes and gigabytes for little. The 3D
    lines and the maps are given back in the image's own pixels.
    """
    side = min(shape[:2])
    if side < LARGE_SIDE or not detect_scale < 1.0:
        return 1.0
    return float(min(1.0, max(detect_scale, WORKING_SIDE / side)))


def resized(image: np.ndarray, factor: float) -> np.ndarray:
    """``image`` (float32) resized by ``factor`` (area average), at least 16 px a side."""
    import cv2

    rows, cols = image.shape
    size = (max(16, round(cols * factor)), max(16, round(rows * factor)))
    return cv2.resize(np.asarray(image, dtype=np.float32), size, interpolation=cv2.INTER_AREA)


def to_full_size(result, full_shape):
    """A :class:`~.pipeline.StereoReconstruction` made from the pair shrunk, in the full image's pixels.

    ``x, y`` of pixel centres and ``z`` (proportional to the disparity) are scaled alike, the depth
    errors and disparities multiplied; the maps are resized back (labels by the nearest pixel, NaN
    where the nearest shrunk pixel had none).
    """
    import dataclasses

    import cv2

    small_shape = result.left.shape
    sx, sy = full_shape[1] / small_shape[1], full_shape[0] / small_shape[0]
    scale = np.array([sx, sy, sx])
    offset = np.array([(sx - 1) / 2.0, (sy - 1) / 2.0, 0.0])
    size = (full_shape[1], full_shape[0])

    def grown(values, factor=1.0):
        values = np.asarray(values)
        out = cv2.resize(np.nan_to_num(values.astype(np.float32), nan=0.0), size, interpolation=cv2.INTER_LINEAR)
        out = out * factor
        if np.isnan(values).any():
            gone = cv2.resize(np.isnan(values).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
            out[gone] = np.nan
        return out.astype(values.dtype if values.dtype.kind == "f" else np.float32)

    return dataclasses.replace(
        result, lines=[np.asarray(line, dtype=float) * scale + offset for line in result.lines],
        line_depth_std=[np.asarray(v, dtype=float) * sx for v in result.line_depth_std],
        left=grown(result.left), right=grown(result.right),
        prob_left=grown(result.prob_left), prob_right=grown(result.prob_right),
        labels_left=cv2.resize(result.labels_left, size, interpolation=cv2.INTER_NEAREST),
        labels_right=cv2.resize(result.labels_right, size, interpolation=cv2.INTER_NEAREST),
        disparity=grown(result.disparity, sx), disparity_std=grown(result.disparity_std, sx),
        disparity_refined=grown(result.disparity_refined, sx))
