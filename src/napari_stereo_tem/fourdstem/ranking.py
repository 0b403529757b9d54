"""Which virtual detectors to use: rank discs by the topological score of their segmentation (thesis 5.4.2).

Each candidate disc (a radius sweep around one centre, or any set of discs) gives
a virtual image in one pass over the data; the shipped line detector segments
each; :func:`~napari_stereo_tem.evaluation.topology.rank_by_topology` compares every
segmentation with a reference (a label of the scan when one is drawn, otherwise the
consensus of the candidates) and ranks them, best first. The command
``stereo-tem rank-detectors`` and the virtual-detector widget both call
:func:`iter_rank_detectors`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..checks import InputError
from ..progress import Progress, ProgressGenerator, drive, within_step
from .loading import open_4dstem
from .masks import Disc, as_disc
from .virtual import iter_virtual_images

__all__ = ["DetectorRanking", "sweep_discs", "iter_rank_detectors", "rank_detectors"]


@dataclass
class DetectorRanking:
    """Candidate discs ranked by the topological distance of their segmentation from the reference.

    Attributes
    ----------
    ranking : list of dict
        Best first: ``name``, ``index`` (into ``discs``), ``rank``, ``distance``, ``terms``, ``disc``.
    discs : list of Disc
    images : ndarray (n, scan_y, scan_x)
        The virtual images.
    labels : ndarray (n, scan_y, scan_x) uint8
        The detector's labels (1 dislocation, 2 distractor).
    reference : ndarray (scan_y, scan_x) bool
    reference_kind : str
        ``"label"`` or ``"consensus"``.
    """

    ranking: list
    discs: list
    images: np.ndarray
    labels: np.ndarray
    reference: np.ndarray
    reference_kind: str
    params: dict = field(default_factory=dict)

    @property
    def best(self) -> Disc:
        """The disc ranked first."""
        return self.discs[self.ranking[0]["index"]]

    def summary(self) -> str:
        """One line per candidate, best first (what the command prints)."""
        lines = [f"reference: {self.reference_kind}; topological distance (0 = same topology, lower is better)"]
        for row in self.ranking:
            d = row["disc"]
            lines.append(f"{row['rank']:>2}. {row['name']:<28} distance {row['distance']:.3f}  "
                         f"disc ({d['cy']:.1f}, {d['cx']:.1f}, r {d['radius']:.1f})")
        lines.append(f"use: {self.ranking[0]['name']}")
        if self.params.get("note"):
            lines.append(f"note: {self.params['note']}")
        return "\n".join(lines)


def sweep_discs(centre, radii) -> list[Disc]:
    """Discs sharing ``centre = (cy, cx)`` with each radius of ``radii`` (a radius sweep)."""
    try:
        cy, cx = (float(v) for v in list(centre)[:2])
        radii = [float(r) for r in np.atleast_1d(radii)]
    except (TypeError, ValueError):
        raise InputError(f"a sweep needs a centre (cy, cx) and radii, got {centre!r} and {radii!r}") from None
    if not radii or min(radii) <= 0 or not np.all(np.isfinite(radii)):
        raise InputError(f"sweep radii must be positive numbers of pixels, got {radii}")
    return [Disc(cy, cx, r) for r in radii]


def iter_rank_detectors(data, discs, *, reference=None, names=None, model=None, contrast: str = "auto",
                        executor="inline", device="cpu", flips: int = 1, weights=None,
                        **topology_options) -> ProgressGenerator[DetectorRanking]:
    """Virtual images of the candidate discs, their segmentations, and the ranking (a progress generator).

    Parameters
    ----------
    data : anything :func:`~.loading.open_4dstem` opens
    discs : sequence of Disc or (cy, cx, r)
        At least two candidates.
    reference : array (scan_y, scan_x), optional
        A label of the scene (non-zero = line); default: the consensus of the candidates'
        segmentations (meaningful when they share a view: a radius sweep).
    names : sequence of str, optional
        Default: ``"r 4.0 at (cy, cx)"`` per disc.
    model : DislocationUNet, optional
        Default: the selected detector version.
    contrast : {"auto", "bright_field", "dark_field"}
        Decided on the candidate with the most signal and used for all (one scene, one contrast).
    flips : int
        Mirrored copies averaged by the detector (1 is fastest).
    weights, **topology_options
        :func:`~napari_stereo_tem.evaluation.topology.topological_score` options.

    Yields
    ------
    Progress
        ``"virtual images"``, then ``"segment"`` and ``"topology"``, one per candidate.

    Returns
    -------
    DetectorRanking
    """
    from ..evaluation.topology import consensus_mask, iter_rank_by_topology
    from ..stereo.detect import iter_detect_lines
    from ..stereo.detection import choose_settings

    discs = [as_disc(d) for d in discs]
    if len(discs) < 2:
        raise InputError(f"{len(discs)} candidate disc(s): ranking needs at least two (a radius sweep, or several "
                         "discs)")
    if names is None:
        names = [f"r {d.radius:g} at ({d.cy:.1f}, {d.cx:.1f})" for d in discs]
    names = [str(n) for n in names]
    if len(names) != len(discs):
        raise InputError(f"{len(names)} names for {len(discs)} discs")
    dataset = open_4dstem(data)
    if reference is not None and np.shape(reference) != tuple(dataset.scan_shape):  # refused before reading
        raise InputError(f"the reference label has shape {np.shape(reference)}, the virtual images "
                         f"{tuple(dataset.scan_shape)}; draw the label on one of these virtual images")
    images = yield from iter_virtual_images(dataset, discs, executor=executor)
    if model is None:
        from ..models.store import load_detector

        model = load_detector(device=device)
    if contrast == "auto":  # one scene, one contrast: decided where the signal is largest
        strongest = int(np.argmax([float(np.sum(img)) for img in images]))
        contrast = choose_settings(images[strongest], model, contrast="auto", scale=None).contrast
    labels = np.zeros(images.shape, np.uint8)
    for i, image in enumerate(images):
        yield Progress(i, len(discs), "segment", {"candidate": names[i]})
        detection = yield from within_step(iter_detect_lines(image, model, contrast=contrast, scale=None, flips=flips),
                                           i, len(discs), "segment", {"candidate": names[i]})
        labels[i] = detection.labels
    masks = labels == 1
    reference_kind = "label" if reference is not None else "consensus"
    ref = np.asarray(reference) > 0 if reference is not None else consensus_mask(masks)
    ranking = yield from iter_rank_by_topology(masks, ref, names=names, weights=weights, **topology_options)
    for row in ranking:
        row["disc"] = discs[row["index"]].to_dict()
    note = ""
    centres = {(round(d.cy, 3), round(d.cx, 3)) for d in discs}
    if reference is None and len(centres) > 1:
        note = ("the candidates sit at different places on the detector, so they see the specimen from different "
                "directions and their consensus is blurred by parallax: a label of the scan gives a firmer ranking")
    params = {"contrast": contrast, "reference": reference_kind, "flips": int(flips), "note": note,
              "detector": getattr(model, "version", None), "topology_options": topology_options,
              "weights": weights}
    return DetectorRanking(ranking=ranking, discs=discs, images=np.asarray(images), labels=labels, reference=ref,
                           reference_kind=reference_kind, params=params)


def rank_detectors(data, discs, *, on_progress=None, should_stop=None, **options) -> DetectorRanking:
    """Drives :func:`iter_rank_detectors` (same parameters)."""
    return drive(iter_rank_detectors(data, discs, **options), on_progress, should_stop)
