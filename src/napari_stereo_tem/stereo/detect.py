"""Dislocations in one image: probability, labels and polylines (the ``detect`` command and widget).

Typical use::

    result = detect_lines(image)                # shipped detector, contrast and scale decided
    result.labels                               # uint8: 1 dislocation, 2 distractor
    result.lines                                # [(n, 2) arrays of (x, y)], one per skeleton branch

The stereo reconstruction runs the same steps on each view
(:func:`napari_stereo_tem.stereo.pipeline.reconstruct_stereo`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..camera_defects import repair_camera_defects
from ..checks import check_image
from ..progress import Progress, ProgressGenerator, drive

__all__ = ["LineDetection", "iter_detect_lines", "detect_lines"]


@dataclass
class LineDetection:
    """What the detector found in one image.

    Attributes
    ----------
    probability : ndarray, float32, (n_classes, rows, cols)
        Class 0: dislocation; class 1 (two-class models): distractor.
    labels : ndarray, uint8, (rows, cols)
        0 background, 1 dislocation, 2 distractor (slip trace, boundary, bend contour).
    lines : list of ndarray, (n, 2)
        ``(x, y)`` along each branch of the skeleton of ``labels == 1``.
    settings : dict
        Contrast, resize factor and how they were decided.
    seconds : float
    """

    probability: np.ndarray
    labels: np.ndarray
    lines: list
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0


#: Mirrored copies averaged by default: on the four hand-annotated real micrographs
#: (``benchmarks/bench_real_detector.py --detect-option flips=4``) the mean centreline F1
#: goes from 0.735 to 0.745, for four times the network's work.
DETECT_FLIPS = 4


def iter_detect_lines(image, model=None, *, contrast: str = "auto", scale="auto", threshold: float | None = None,
                      min_size: int | None = None, min_branch_length: float = 5.0,
                      device="cpu", flips: int = DETECT_FLIPS) -> ProgressGenerator[LineDetection]:
    """Generator form of :func:`detect_lines` (progress per tile, then per step)."""
    from .detection import (
        _choose_settings,
        _iter_predict_filled,
        label_settings,
        probability_to_labels,
        skeleton_polylines,
    )
    from .specimen_field import without_frame

    if model is None:
        from ..models.store import load_detector

        model = load_detector(device=device)
    array = check_image(image, name="image")
    t0 = time.perf_counter()
    array, defects = repair_camera_defects(array)  # a dead camera column is no dislocation
    filled, frame = without_frame(array)  # once for the settings and the detection (frame, vacuum, scale bar)
    settings = _choose_settings(filled, frame, model, contrast=contrast, scale=scale)
    yield Progress(0, 1, "decide contrast and scale")
    probability = yield from _iter_predict_filled(filled, frame, model, settings, all_classes=True, flips=flips)
    post = label_settings(model)
    if threshold is not None:
        post["threshold"] = float(threshold)
    if min_size is not None:
        post["min_size"] = int(min_size)
    labels = probability_to_labels(probability, **post)
    lines = skeleton_polylines(labels == 1, min_branch_length=min_branch_length)
    yield Progress(1, 1, "skeleton")
    record = {**settings.as_dict(), **post, "min_branch_length": float(min_branch_length), "flips": int(flips)}
    if defects:
        record["camera_defects"] = defects.as_dict()
    return LineDetection(probability=probability, labels=labels, lines=lines, settings=record,
                         seconds=time.perf_counter() - t0)


def detect_lines(image, model=None, *, contrast: str = "auto", scale="auto", threshold: float | None = None,
                 min_size: int | None = None, min_branch_length: float = 5.0, device="cpu",
                 flips: int = DETECT_FLIPS, on_progress=None, should_stop=None) -> LineDetection:
    """Detect dislocations in one image.

    Parameters
    ----------
    image : array_like, shape (rows, cols)
        Any numeric dtype; bright or dark field.
    model : DislocationUNet, optional
        Default: the selected detector version (:func:`~napari_stereo_tem.models.store.load_detector`).
    contrast : {"auto", "bright_field", "dark_field"}
    scale : "auto", float or None
        Resize factor before detection (see :func:`~napari_stereo_tem.stereo.detection.choose_settings`).
    threshold, min_size : optional
        Override the model's recommended post-processing (its metadata).
    min_branch_length : float
        Skeleton spurs shorter than this (px) are pruned.
    device : str
        Where a default model runs.
    flips : {1, 2, 4}
        Probabilities averaged over this many mirrored copies of the image
        (:data:`DETECT_FLIPS`; 1 is four times faster).
    on_progress, should_stop : callable, optional
        Progress callback and cancel check (see :func:`~napari_stereo_tem.progress.drive`).

    Returns
    -------
    LineDetection
    """
    return drive(iter_detect_lines(image, model, contrast=contrast, scale=scale, threshold=threshold,
                                   min_size=min_size, min_branch_length=min_branch_length, device=device,
                                   flips=flips),
                 on_progress, should_stop=should_stop)
