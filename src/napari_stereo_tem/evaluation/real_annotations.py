"""Hand-annotated dislocation centrelines on real micrographs, and scoring against them.

An annotation file (JSON, one per image; the set lives in ``tests/data/real_tem``)
holds:

- ``image``: the image file name; ``source``: its folder, relative to the
  repository root (the images themselves are not in the repository);
- ``dislocations``: polylines of ``[x, y]`` full-image pixel coordinates
  (x = column, y = row) along dislocation centres; a closed loop repeats its
  first point;
- ``ignore``: regions where a prediction is neither right nor wrong (black
  dots, blobs, bend contours, doubtful lines), each ``{"circle": [x, y, r]}``,
  ``{"polygon": [[x, y], ...]}`` or ``{"polyline": [[x, y], ...], "width": w}``;
- ``licence_note`` and ``annotator_note``: where the image comes from and how
  the lines were drawn.

Typical use::

    annotation = load_annotation("tests/data/real_tem/dalong1.json")
    scores = score_centrelines(labels == 1, annotation)   # precision, recall, f1, ...
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..checks import InputError
from .metrics import centreline_scores

__all__ = ["RealAnnotation", "load_annotation", "rasterise", "score_centrelines"]

_IGNORE_KINDS = ("circle", "polygon", "polyline")


@dataclass(frozen=True)
class RealAnnotation:
    """Dislocation centrelines and ignore regions of one real image.

    Attributes
    ----------
    path : Path
        The JSON file it was read from (named in error messages).
    image : str
        Image file name, e.g. ``"dalong1.jpg"``.
    source : str
        Folder of the image, relative to the repository root.
    dislocations : list of ndarray, float64, shape (n, 2)
        ``(x, y)`` centreline polylines; closed loops repeat their first point.
    ignore : list of dict
        Ignore regions, as in the file.
    licence_note, annotator_note : str
        Provenance of the image and of the lines.
    """

    path: Path
    image: str
    source: str
    dislocations: list = field(repr=False)
    ignore: list = field(repr=False)
    licence_note: str = ""
    annotator_note: str = ""

    @property
    def stem(self) -> str:
        """The image name without its extension."""
        return Path(self.image).stem


def _points(value, where: str, path: Path, *, min_points: int) -> np.ndarray:
    try:
        points = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        points = None
    if points is None or points.ndim != 2 or points.shape[1] != 2 or len(points) < min_points:
        raise InputError(f"{path}: {where} must be a list of at least {min_points} [x, y] points")
    if not np.isfinite(points).all():
        raise InputError(f"{path}: {where} holds a non-finite coordinate")
    return points


def _check_ignore(item, where: str, path: Path) -> dict:
    kinds = [k for k in _IGNORE_KINDS if isinstance(item, dict) and k in item]
    if len(kinds) != 1:
        raise InputError(f"{path}: {where} must be a dict with exactly one of {_IGNORE_KINDS}, got {item!r:.80}")
    kind = kinds[0]
    if kind == "circle":
        circle = np.asarray(item["circle"], dtype=np.float64) if isinstance(item["circle"], list) else None
        if circle is None or circle.shape != (3,) or not np.isfinite(circle).all() or circle[2] <= 0:
            raise InputError(f"{path}: {where} circle must be [x, y, r] with r > 0")
        return {"circle": circle}
    if kind == "polygon":
        return {"polygon": _points(item["polygon"], f"{where} polygon", path, min_points=3)}
    width = item.get("width")
    if not isinstance(width, (int, float)) or not width > 0:
        raise InputError(f"{path}: {where} polyline needs a positive 'width' in pixels")
    return {"polyline": _points(item["polyline"], f"{where} polyline", path, min_points=2), "width": float(width)}


def load_annotation(path) -> RealAnnotation:
    """Read and check one annotation file.

    Parameters
    ----------
    path : str or Path
        A JSON file in the format of this module's docstring.

    Returns
    -------
    RealAnnotation

    Raises
    ------
    InputError
        When the file is missing, is not JSON, or breaks the format; the
        message names the file and the faulty entry.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InputError(f"{path}: cannot read the annotation file ({err.strerror})") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: the annotation must be a JSON object with keys image, dislocations, ignore")
    for key in ("image", "source"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise InputError(f"{path}: key {key!r} must be a non-empty string")
    lines, ignore = data.get("dislocations"), data.get("ignore", [])
    if not isinstance(lines, list) or not isinstance(ignore, list):
        raise InputError(f"{path}: 'dislocations' and 'ignore' must be lists")
    dislocations = [_points(line, f"dislocations[{i}]", path, min_points=2) for i, line in enumerate(lines)]
    regions = [_check_ignore(item, f"ignore[{i}]", path) for i, item in enumerate(ignore)]
    return RealAnnotation(path=path, image=data["image"], source=data["source"], dislocations=dislocations,
                          ignore=regions, licence_note=str(data.get("licence_note", "")),
                          annotator_note=str(data.get("annotator_note", "")))


def _pixels(points: np.ndarray) -> np.ndarray:
    return np.round(points).astype(np.int32).reshape(-1, 1, 2)


def _check_inside(annotation: RealAnnotation, shape: tuple[int, int]) -> None:
    rows, cols = shape
    for i, line in enumerate(annotation.dislocations):
        x, y = line[:, 0], line[:, 1]
        if x.min() < -0.5 or y.min() < -0.5 or x.max() > cols - 0.5 or y.max() > rows - 0.5:
            raise InputError(f"{annotation.path}: dislocations[{i}] leaves the {rows}x{cols} image; "
                             "is the annotation for another image size?")


def rasterise(annotation: RealAnnotation, shape) -> tuple[np.ndarray, np.ndarray]:
    """Draw an annotation as 1-px centrelines and an ignore mask.

    Parameters
    ----------
    annotation : RealAnnotation
    shape : (int, int)
        ``(rows, cols)`` of the annotated image.

    Returns
    -------
    centrelines, ignore : ndarray of bool, shape (rows, cols)
        8-connected 1-px lines through the polylines' points, and the filled
        ignore regions.
    """
    import cv2

    rows, cols = (int(n) for n in shape)
    _check_inside(annotation, (rows, cols))
    lines = np.zeros((rows, cols), np.uint8)
    for line in annotation.dislocations:
        cv2.polylines(lines, [_pixels(line)], False, 1, thickness=1, lineType=cv2.LINE_8)
    ignore = np.zeros((rows, cols), np.uint8)
    for region in annotation.ignore:
        if "circle" in region:
            x, y, r = region["circle"]
            cv2.circle(ignore, (int(round(x)), int(round(y))), int(round(r)), 1, thickness=-1)
        elif "polygon" in region:
            cv2.fillPoly(ignore, [_pixels(region["polygon"])], 1)
        else:
            width = max(1, int(round(region["width"])))
            cv2.polylines(ignore, [_pixels(region["polyline"])], False, 1, thickness=width, lineType=cv2.LINE_8)
    return lines.astype(bool), ignore.astype(bool)


def score_centrelines(pred_mask, annotation: RealAnnotation, *, tolerance: float = 2.0) -> dict:
    """Centreline precision, recall and F1 of a predicted mask against an annotation.

    Uses :func:`napari_stereo_tem.evaluation.metrics.centreline_scores`: the prediction
    is skeletonised; a predicted centreline pixel within ``tolerance`` of an
    annotated one is right, and an annotated pixel within ``tolerance`` of a
    predicted one is recalled. Predicted pixels inside the ignore regions,
    grown by ``tolerance``, count neither way.

    Parameters
    ----------
    pred_mask : array_like of bool, shape (rows, cols)
        Predicted dislocation pixels (e.g. ``labels == 1``) or centrelines.
    annotation : RealAnnotation
    tolerance : float
        Matching distance in pixels.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1`` and the counts of
        :func:`~napari_stereo_tem.evaluation.metrics.centreline_scores`, plus
        ``n_ignored`` (predicted centreline pixels left out).
    """
    from scipy.ndimage import distance_transform_edt
    from skimage.morphology import skeletonize

    pred = np.asarray(pred_mask) > 0
    if pred.ndim != 2:
        raise InputError(f"pred_mask must be a 2-D mask (rows, cols), got shape {pred.shape}")
    true, ignore = rasterise(annotation, pred.shape)
    if ignore.any():
        ignore = distance_transform_edt(~ignore) <= tolerance
    scores = centreline_scores(pred, true, tolerance=tolerance, ignore=ignore)
    skeleton = skeletonize(pred) if pred.any() else pred
    scores["n_ignored"] = int(np.count_nonzero(skeleton & ignore))
    return scores
