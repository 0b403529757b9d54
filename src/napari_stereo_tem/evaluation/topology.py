"""Imaging-condition score: persistent homology of a segmentation against a reference (thesis chapter 5).

A binary segmentation (the detector's labels) is turned into grey-level images,
the **filtrations** of the thesis (section 5.1, Fig. 5.1), each giving a value to
every pixel; the growing sublevel sets of each are summarised by their
persistence diagrams of connected components (H0) and loops (H1), computed as
cubical persistence by cripser. Every filtration is scaled to ``[0, 1]``, and
pixels outside the segmentation enter last, at 1, except for dilation:

- ``dilation``: distance to the segmentation (capped at ``dilation_cap`` px), so
  the sublevel set at ``t`` is the mask dilated by a disc of radius ``t``;
- ``density``: ``1 -`` the share of segmented pixels within ``density_radius`` px, for
  segmented pixels (dense parts of the mask first);
- ``height``: the projection of the pixel on a direction (four: along ``x``, ``y`` and
  both diagonals, as the thesis' four height vectors);
- ``radial``: the distance to a centre (nine: a 3 x 3 grid over the image, as the
  thesis' nine radial filtrations).

Two segmentations are compared by the 1-Wasserstein distance (L-infinity ground
metric, points may go to the diagonal) between their diagrams, per filtration and
dimension, computed exactly by an assignment (:func:`scipy.optimize.linear_sum_assignment`).
Each distance ``d(A, R)`` is divided by ``d(A, empty) + d(R, empty)`` (the total
persistence both hold; by the triangle inequality the share lies in ``[0, 1]``: 0 for the
same diagrams, 1 when nothing of one is matched in the other), and the shares are
averaged, with a weight per filtration family, into one **topological distance**
(0: the same topology as the reference; lower is better). The thesis fitted the
weights to hand-annotated images. Here every term is computed and reported, and the
default weights (:data:`DEFAULT_WEIGHTS`) keep the dilation filtration only: on
synthetic 4D-STEM radius sweeps with known lines (seeds 9 300 000-9 300 004 of
``benchmarks/bench_topology_rank.py``) its ranking agreed best with the true
centreline F1 (mean Spearman 0.71 over the four settings, against 0.61 with equal
weights); ``weights="equal"`` weighs every term alike.

Without a reference label, :func:`consensus_mask` makes one from several
segmentations of the same scene (a pixel is in it when at least half of them hold
it within ``tolerance`` px): images of a radius sweep share their view, so their
consensus is the scene's lines as the detector sees them on the whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..checks import InputError

__all__ = ["FILTRATIONS", "filtration_images", "persistence_diagrams", "diagram_distance", "topological_terms",
           "TopologicalScore", "topological_score", "consensus_mask", "rank_by_topology", "DEFAULT_WEIGHTS",
           "iter_rank_by_topology"]

#: The filtration families of the thesis, in the order their terms are listed.
FILTRATIONS = ("dilation", "density", "height", "radial")

#: Weight of each filtration family in the distance (chosen on training seeds, see the module text).
DEFAULT_WEIGHTS = {"dilation": 1.0, "density": 0.0, "height": 0.0, "radial": 0.0}

#: Directions (x, y) of the height filtrations.
HEIGHT_DIRECTIONS = ((1.0, 0.0), (0.0, 1.0), (np.sqrt(0.5), np.sqrt(0.5)), (np.sqrt(0.5), -np.sqrt(0.5)))


def _mask(mask, name: str = "segmentation") -> np.ndarray:
    array = np.asarray(mask)
    if array.ndim != 2:
        raise InputError(f"the {name} must be a 2D mask (rows, cols), got shape {array.shape}")
    if min(array.shape) < 8:
        raise InputError(f"the {name} of shape {array.shape} is too small for a topological score (8 x 8 at least)")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise InputError(f"the {name} holds NaN or infinite values; give labels or a probability map")
    return array > 0 if array.dtype.kind != "f" else array >= 0.5


def filtration_images(mask, *, filtrations=FILTRATIONS, dilation_cap: float = 16.0,
                      density_radius: float = 3.0) -> dict[str, np.ndarray]:
    """The grey-level images of the filtrations of a binary ``mask (rows, cols)``, each in ``[0, 1]``.

    Returns ``{name: float64 image}``, with names ``dilation``, ``density``,
    ``height_0`` .. ``height_3`` and ``radial_0`` .. ``radial_8`` for the families asked.
    A probability map is thresholded at 0.5; labels count as segmented where non-zero.
    """
    from scipy import ndimage

    seg = _mask(mask)
    unknown = set(filtrations) - set(FILTRATIONS)
    if unknown:
        raise InputError(f"unknown filtration(s) {sorted(unknown)}; choose among {', '.join(FILTRATIONS)}")
    rows, cols = seg.shape
    out: dict[str, np.ndarray] = {}
    y, x = np.mgrid[0:rows, 0:cols].astype(float)
    diagonal = float(np.hypot(rows - 1, cols - 1))
    if "dilation" in filtrations:
        distance = ndimage.distance_transform_edt(~seg) if seg.any() else np.full(seg.shape, np.inf)
        out["dilation"] = np.minimum(distance, dilation_cap) / dilation_cap
    if "density" in filtrations:
        r = int(np.ceil(density_radius))
        yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
        disc = (yy ** 2 + xx ** 2 <= density_radius ** 2).astype(float)
        share = ndimage.convolve(seg.astype(float), disc / disc.sum(), mode="constant")
        out["density"] = np.where(seg, 1.0 - share, 1.0)
    if "height" in filtrations:
        for i, (dx, dy) in enumerate(HEIGHT_DIRECTIONS):
            h = x * dx + y * dy
            h = (h - h.min()) / max(h.max() - h.min(), 1e-12)
            out[f"height_{i}"] = np.where(seg, 0.999 * h, 1.0)
    if "radial" in filtrations:
        i = 0
        for fy in (0.25, 0.5, 0.75):
            for fx in (0.25, 0.5, 0.75):
                d = np.hypot(x - fx * (cols - 1), y - fy * (rows - 1)) / diagonal
                out[f"radial_{i}"] = np.where(seg, 0.999 * d / max(d.max(), 1e-12), 1.0)
                i += 1
    return out


def persistence_diagrams(image) -> tuple[np.ndarray, np.ndarray]:
    """Sublevel-set persistence of a grey-level image (values in ``[0, 1]``) by cripser.

Pixels are the squares of the cubical complex (cripser's T-construction), so two
pixels touching at a corner are connected: an 8-connected line is one component.

    Returns the diagrams ``(H0, H1)``, each ``(n, 2)`` of ``(birth, death)``; a class
    that never dies (the last component) dies at 1, the top of the filtration.
    """
    import cripser

    values = np.ascontiguousarray(np.asarray(image, dtype=np.float64))
    result = np.asarray(cripser.computePH_T(values, maxdim=1))
    if result.size == 0:
        return np.zeros((0, 2)), np.zeros((0, 2))
    dims, pairs = result[:, 0].astype(int), result[:, 1:3].copy()
    pairs[:, 1] = np.minimum(pairs[:, 1], 1.0)
    keep = pairs[:, 1] > pairs[:, 0]  # features born and dead at one value carry nothing
    return pairs[keep & (dims == 0)], pairs[keep & (dims == 1)]


def diagram_distance(a, b) -> float:
    """1-Wasserstein distance between two persistence diagrams (L-infinity ground metric).

    Each point is matched to a point of the other diagram or to the diagonal
    (cost: half its persistence); the optimal matching is an assignment problem,
    solved exactly by :func:`scipy.optimize.linear_sum_assignment`.
    """
    from scipy.optimize import linear_sum_assignment

    a = np.asarray(a, float).reshape(-1, 2)
    b = np.asarray(b, float).reshape(-1, 2)
    n, m = len(a), len(b)
    if n == 0 and m == 0:
        return 0.0
    to_diag_a = (a[:, 1] - a[:, 0]) / 2.0
    to_diag_b = (b[:, 1] - b[:, 0]) / 2.0
    if n == 0:
        return float(to_diag_b.sum())
    if m == 0:
        return float(to_diag_a.sum())
    cost = np.zeros((n + m, n + m))
    cost[:n, :m] = np.max(np.abs(a[:, None, :] - b[None, :, :]), axis=2)
    cost[:n, m:] = np.inf
    cost[:n, m:][np.arange(n), np.arange(n)] = to_diag_a  # a_i to the diagonal
    cost[n:, :m] = np.inf
    cost[n:, :m][np.arange(m), np.arange(m)] = to_diag_b  # b_j to the diagonal
    # diagonal to diagonal: free (cost[n:, m:] stays 0)
    big = np.where(np.isfinite(cost), cost, 0).max() * (n + m) + 1.0
    rows, cols = linear_sum_assignment(np.where(np.isfinite(cost), cost, big))
    return float(cost[rows, cols].sum())


def _diagrams(mask, options) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {name: persistence_diagrams(image) for name, image in filtration_images(mask, **options).items()}


def topological_terms(mask, reference, **options) -> dict[str, float]:
    """Raw distances ``{"<filtration> H0": d, "<filtration> H1": d, ...}`` between two masks' diagrams."""
    seg, ref = _mask(mask), _mask(reference, "reference")
    if seg.shape != ref.shape:
        raise InputError(f"the segmentation {seg.shape} and the reference {ref.shape} differ in shape; "
                         "they must be images of one scan")
    mine, theirs = _diagrams(seg, options), _diagrams(ref, options)
    out = {}
    for name in mine:
        for h in (0, 1):
            out[f"{name} H{h}"] = diagram_distance(mine[name][h], theirs[name][h])
    return out


@dataclass
class TopologicalScore:
    """One segmentation against a reference.

    Attributes
    ----------
    distance : float
        Weighted mean of the normalised terms; 0 when the topology equals the reference's; lower is better.
    terms : dict
        Normalised distance per filtration and dimension (``"dilation H0"``, ...).
    raw : dict
        The distances before normalisation.
    """

    distance: float
    terms: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict)


def topological_score(mask, reference, *, weights: dict | None = None, _reference_norms=None,
                      **options) -> TopologicalScore:
    """Topological distance of a segmentation from a reference segmentation (thesis chapter 5).

    Parameters
    ----------
    mask, reference : array_like (rows, cols)
        Labels (non-zero = line) or probability maps (>= 0.5 = line).
    weights : dict or "equal", optional
        Weight per term name (``"dilation H0"``, ``"radial_4 H1"``, ...) or per family
        (``"radial"``); terms not named weigh 1. Default :data:`DEFAULT_WEIGHTS`;
        ``"equal"``: every term weighs 1.
    **options
        :func:`filtration_images` options (``filtrations``, ``dilation_cap``, ``density_radius``).

    Returns
    -------
    TopologicalScore
    """
    ref = _mask(reference, "reference")
    if not ref.any():
        raise InputError("the reference segmentation is empty: there is no topology to compare with; draw or "
                         "give a label that holds the lines")
    seg = _mask(mask)
    raw = topological_terms(seg, ref, **options)
    if _reference_norms is None:
        _reference_norms = topological_terms(np.zeros_like(ref), ref, **options)
    own = topological_terms(np.zeros_like(seg), seg, **options) if seg.any() else dict.fromkeys(raw, 0.0)
    weights = _weights(weights)
    terms, total, weight_sum = {}, 0.0, 0.0
    for name, value in raw.items():
        # d(A, R) <= d(A, empty) + d(empty, R): the share lies in [0, 1]
        norm = _reference_norms[name] + own[name]
        terms[name] = value / norm if norm > 1e-12 else 0.0
        family = name.split()[0].split("_")[0]
        w = float(weights.get(name, weights.get(family, 1.0)))
        total += w * terms[name]
        weight_sum += w
    if weight_sum <= 0:
        raise InputError(f"the weights {weights} leave no filtration to score with; give at least one positive weight")
    return TopologicalScore(distance=total / weight_sum, terms=terms, raw=raw)


def _weights(weights) -> dict:
    if weights is None:
        return dict(DEFAULT_WEIGHTS)
    if isinstance(weights, str):
        if weights == "equal":
            return {}
        raise InputError(f"weights must be a mapping (family or term -> weight) or 'equal', got {weights!r}")
    try:
        out = {str(k): float(v) for k, v in dict(weights).items()}
    except (TypeError, ValueError):
        raise InputError(f"weights must map filtration families or terms to numbers, got {weights!r}") from None
    if any(not np.isfinite(v) or v < 0 for v in out.values()):
        raise InputError(f"weights must be finite and not negative, got {weights!r}")
    return out


def consensus_mask(masks, *, tolerance: float = 1.0, min_share: float = 0.5) -> np.ndarray:
    """Pixels that at least ``min_share`` of the segmentations hold within ``tolerance`` px.

    Parameters
    ----------
    masks : sequence of (rows, cols) arrays, at least two
    tolerance : float
        Each mask is dilated by a disc of this radius before the vote (detectors place
        a line a pixel apart on different noise).
    min_share : float
        Share of the masks that must agree.

    Returns
    -------
    bool array (rows, cols)
        The vote, thinned back to the width of the inputs (the pixels of the vote that
        at least one input holds).
    """
    from scipy import ndimage

    stack = [_mask(m, "segmentation") for m in masks]
    if len(stack) < 2:
        raise InputError("a consensus needs at least two segmentations; give a reference label instead")
    if len({m.shape for m in stack}) > 1:
        raise InputError(f"the segmentations differ in shape ({sorted({m.shape for m in stack})})")
    r = int(np.ceil(tolerance))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    disc = yy ** 2 + xx ** 2 <= tolerance ** 2
    votes = sum(ndimage.binary_dilation(m, structure=disc) if tolerance > 0 else m for m in stack)
    agreed = votes >= min_share * len(stack)
    return agreed & np.any(stack, axis=0)


def iter_rank_by_topology(masks, reference=None, *, names=None, weights=None, **options):
    """Progress-generator form of :func:`rank_by_topology` (one report per segmentation scored)."""
    from ..progress import Progress

    masks = list(masks)
    if not masks:
        raise InputError("no segmentations to rank")
    names = [str(i) for i in range(len(masks))] if names is None else [str(n) for n in names]
    if len(names) != len(masks):
        raise InputError(f"{len(names)} names for {len(masks)} segmentations")
    ref = consensus_mask(masks) if reference is None else _mask(reference, "reference")
    if not ref.any():
        raise InputError("the reference is empty (no segmentation agrees with the others, or the label holds no "
                         "line): nothing to rank against; give a label")
    norms = topological_terms(np.zeros_like(ref), ref, **options)
    scores = []
    for i, mask in enumerate(masks):
        yield Progress(i, len(masks), "topology", {"segmentation": names[i]})
        scores.append(topological_score(mask, ref, weights=weights, _reference_norms=norms, **options))
    yield Progress(len(masks), len(masks), "topology")
    order = np.argsort([s.distance for s in scores], kind="stable")
    return [{"name": names[i], "index": int(i), "rank": rank, "distance": float(scores[i].distance),
             "terms": scores[i].terms} for rank, i in enumerate(order, start=1)]


def rank_by_topology(masks, reference=None, *, names=None, weights=None, **options) -> list[dict]:
    """Score several segmentations of one scene against a reference (or their consensus) and rank them.

    Parameters
    ----------
    masks : sequence of (rows, cols) arrays
    reference : array (rows, cols), optional
        A label of the scene; default: :func:`consensus_mask` of ``masks``.
    names : sequence of str, optional
        One per mask (a detector's description); default ``"0"``, ``"1"``, ...
    weights, **options
        As in :func:`topological_score`.

    Returns
    -------
    list of dict
        One per mask, best first: ``name``, ``index``, ``rank`` (1 = best), ``distance`` and ``terms``.
    """
    from ..progress import drive

    return drive(iter_rank_by_topology(masks, reference, names=names, weights=weights, **options))
