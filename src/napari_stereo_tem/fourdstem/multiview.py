"""3D dislocation lines from three or more virtual detectors on one 4D-STEM dataset (DESIGN 3.12).

Stages (:data:`STAGES`), one progress generator (:func:`iter_reconstruct_views`):

1. ``virtual images``: the N discs' images in one pass over the data;
2. ``detect``: the shipped detector on every view (contrast and resize factor
   decided once, on view 0; class 1, dislocations, only);
3. ``match`` and 4. ``fuse``: every useful pair of views measures the reference
   view's lines and the measurements are fused per point and along each line
   (:mod:`.fusion`).

Frame of the points: the scan frame (``x`` = scan column, ``y`` = scan row) at
zero tilt, ``z`` along the beam with ``z = 0`` where every view agrees (the
probe's focal plane); pixels of the scan. A point is at ``(x, y) = p_ref - z s_ref``
with ``p_ref`` its place in the reference view.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..checks import InputError
from ..progress import Progress, ProgressGenerator, drive, within_step
from .fusion import (CROSS_CHECK_PX, MAX_CORNER_DEG, PATCH_HALF_WIDTH, STD_CALIBRATION, DetectedViews,
                     confirming_pairs, iter_fuse_views)
from .masks import as_disc
from .views_geometry import check_view_discs, view_shifts

__all__ = ["MultiViewReconstruction", "DetectedViews", "iter_reconstruct_views", "reconstruct_views",
           "iter_detect_views", "iter_fuse_views", "STAGES", "RESULT_FILES", "STD_CALIBRATION"]

#: Stages of :func:`iter_reconstruct_views`, in order.
STAGES = ("virtual images", "detect", "match", "fuse")

#: What :meth:`MultiViewReconstruction.save` writes.
RESULT_FILES = ("lines.csv", "result.json")

#: Below this widest stereo angle (degrees) a pixel of disparity is a large depth: worth saying.
SMALL_STEREO_ANGLE_DEG = 2.0

@dataclass
class MultiViewReconstruction:
    """Fused 3D lines of N views and everything needed to check them.

    Attributes
    ----------
    lines : list of ndarray, shape (n, 3)
        ``(x, y, z)`` of each line in order (scan pixels, frame of the module docstring).
    depth_std : list of ndarray, shape (n,)
        Standard deviation of each point's ``z``.
    n_pairs : list of ndarray of int, shape (n,)
        How many pairs measured each point (after outlier rejection; 0: filled in
        along the line from measured neighbours).
    views : DetectedViews
    discs : list of Disc
    shifts : ndarray, shape (n_views, 2)
        View shift ``s_k`` (:func:`~.views_geometry.view_shifts`).
    pairs : list of dict
        Geometry of each pair used, with the number of measurements it gave and kept.
    reference : int
    timings, provenance : dict
    """

    lines: list
    depth_std: list
    n_pairs: list
    views: DetectedViews
    discs: list
    shifts: np.ndarray
    pairs: list
    reference: int
    timings: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)

    def line_summaries(self) -> list[dict]:
        out = []
        for line, std, used in zip(self.lines, self.depth_std, self.n_pairs):
            line = np.asarray(line, dtype=float)
            out.append({"n_points": int(len(line)),
                        "length_px": float(np.linalg.norm(np.diff(line[:, :2], axis=0), axis=1).sum()),
                        "z_min": float(line[:, 2].min()), "z_max": float(line[:, 2].max()),
                        "depth_std_median": float(np.median(std)), "depth_std_max": float(np.max(std)),
                        "pairs_per_point_median": float(np.median(used))})
        return out

    def hints(self) -> list[str]:
        """Why no line came out, in words a user can act on (empty when lines did)."""
        if self.lines:
            return []
        out = []
        blank = [k for k, labels in enumerate(self.views.labels) if not (np.asarray(labels) == 1).any()]
        if blank:
            out.append(f"the detector found no dislocation in view(s) {', '.join(map(str, blank))}: look at their "
                       "virtual images (disc placement, contrast)")
        widest = max((float(p["stereo_angle_deg"]) for p in self.pairs), default=0.0)
        if widest < SMALL_STEREO_ANGLE_DEG:
            out.append(f"the widest stereo angle between the discs is {widest:.2f} degrees: place them further apart "
                       "(a larger ring radius), nearer the direct beam's edge")
        rows, cols = np.shape(self.views.probability)[1:]
        if min(rows, cols) < 5 * PATCH_HALF_WIDTH:
            out.append(f"the scan is only {rows}x{cols} px: a pair measures no point within {PATCH_HALF_WIDTH} px of "
                       "the scan's edge along its direction, so little of the field is left")
        if not out:
            out.append("the lines of the reference view were not matched consistently in enough of the other views "
                       "(try other discs, or fewer)")
        return out

    def record(self) -> dict:
        """The JSON record written as ``result.json``."""
        return {"provenance": self.provenance, "timings_s": self.timings, "hints": self.hints(),
                "discs": [{**d.to_dict(), "view_shift": s.tolist()} for d, s in zip(self.discs, self.shifts)],
                "reference_view": self.reference, "pairs": self.pairs,
                "detection": self.views.settings,
                "summary": {"n_lines": len(self.lines), "n_points": int(sum(len(v) for v in self.lines)),
                            "units": "scan pixels",
                            "frame": "scan frame at zero tilt: x = scan column, y = scan row, z along the beam, "
                                     "z = 0 where all views agree"},
                "lines": self.line_summaries()}

    def save(self, directory, *, overwrite: bool = False) -> Path:
        """Write ``lines.csv`` (``line_id,x,y,z,depth_std``) and ``result.json`` into ``directory``, as a whole."""
        from ..atomic import result_folder
        from ..stereo.lines_io import write_json, write_lines_csv

        with result_folder(directory, overwrite=overwrite, option="directory", produces=RESULT_FILES) as folder:
            write_lines_csv(folder / "lines.csv", self.lines, columns={"depth_std": self.depth_std})
            write_json(folder / "result.json", self.record())
        return Path(directory)


def iter_detect_views(images, detector, *, contrast: str = "auto", detect_scale="auto", threshold=None,
                      flips: int = 4) -> ProgressGenerator[DetectedViews]:
    """The detector on every view: contrast and resize factor decided on view 0, then kept for all."""
    from ..stereo.detect import iter_detect_lines
    from ..stereo.detection import choose_settings, normalise_image

    images = np.asarray(images, dtype=np.float32)
    settings = choose_settings(images[0], detector, contrast=contrast, scale=detect_scale)
    probs, labels, norms, record = [], [], [], None
    for k, image in enumerate(images):
        found = yield from within_step(iter_detect_lines(image, detector, contrast=settings.contrast,
                                                         scale=settings.scale, threshold=threshold, flips=flips),
                                       k, len(images), "detect")
        probs.append(found.probability[0])
        labels.append(found.labels)
        norms.append(normalise_image(image, contrast=settings.contrast))
        record = record or {**found.settings, "density": settings.as_dict()["density"]}
        yield Progress(k + 1, len(images), "detect")
    return DetectedViews(images, np.asarray(norms, np.float32), np.asarray(probs, np.float32),
                         np.asarray(labels, np.uint8), record or {})


def iter_reconstruct_views(data, discs, *, direct, mrad_per_px: float | None, scan_rotation_deg: float = 0.0,
                           reference: int | None = None, detector=None, matcher=None, device="cpu",
                           contrast: str = "auto", detect_scale="auto", threshold: float | None = None,
                           flips: int = 4, min_baseline_fraction: float = 0.3, min_line_points: int = 10,
                           executor="inline", descan=None,
                           provenance: dict | None = None) -> ProgressGenerator[MultiViewReconstruction]:
    """Reconstruct 3D dislocation lines from N >= 3 discs on one 4D-STEM dataset; a progress generator.

    Parameters
    ----------
    data : path, FourDStem, numpy/dask array ``(scan_y, scan_x, det_y, det_x)`` or HyperSpy signal
    discs : sequence of Disc or (cy, cx, r)
        At least three, inside the detector, not all on one line
        (:func:`~.views_geometry.check_view_discs`); see
        :func:`~.views_geometry.ring_of_discs` for a ring.
    direct : Disc or (cy, cx, r)
        The direct-beam disc (e.g. ``calibrate(...).direct``).
    mrad_per_px : float
        Detector calibration (``convergence_mrad / direct radius``); None is refused.
    scan_rotation_deg : float
        Detector-to-scan rotation.
    reference : int, optional
        View whose lines are reconstructed (default: the one with the most line length).
    detector, matcher : model or version name, optional
        Default: the selected (shipped) versions.
    device : str
    contrast, detect_scale, threshold, flips
        Detector options (see :func:`~napari_stereo_tem.stereo.detect.detect_lines`).
    min_baseline_fraction : float
        Pairs with a baseline below this share of the largest are not matched.
    min_line_points : int
        Shorter lines (and skeleton spurs) are dropped.
    executor, descan
        Where the pass over the data runs, and a descan correction
        (see :func:`~napari_stereo_tem.fourdstem.virtual.iter_virtual_images`).
    provenance : dict, optional
        Added to the record (input names, say).

    Yields
    ------
    Progress
        Bands of the pass (``virtual images``), then views (``detect``), pairs
        (``match``) and ``fuse``.

    Returns
    -------
    MultiViewReconstruction
    """
    from .. import __version__
    from ..models.store import load_detector
    from ..stereo.matching import load_matcher
    from .loading import open_4dstem
    from .virtual import iter_virtual_images

    if mrad_per_px is None:
        raise InputError("no calibration: the views' directions need the direct disc and the convergence "
                         "semi-angle (mrad/px); give --convergence-mrad (and --direct-disc if it is not found)")
    ds = open_4dstem(data)
    discs = check_view_discs(discs, ds.detector_shape)
    direct = as_disc(direct)
    shifts = view_shifts(discs, direct=direct, mrad_per_px=mrad_per_px, scan_rotation_deg=scan_rotation_deg,
                         detector_shape=ds.detector_shape)
    if reference is not None and not 0 <= int(reference) < len(discs):
        raise InputError(f"reference view {reference} does not exist: give a disc number 0..{len(discs) - 1}")
    timings = {}
    t0 = time.perf_counter()
    if detector is None or isinstance(detector, (str, Path)):
        detector = load_detector("default" if detector is None else str(detector), device=device)
    if matcher is None or isinstance(matcher, (str, Path)):
        matcher = load_matcher("default" if matcher is None else str(matcher), device=device)
    timings["load"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    images = yield from iter_virtual_images(ds, discs, executor=executor, descan=descan)
    timings["virtual images"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    views = yield from iter_detect_views(images, detector, contrast=contrast, detect_scale=detect_scale,
                                         threshold=threshold, flips=flips)
    timings["detect"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    lines, stds, n_used, pairs, ref = yield from iter_fuse_views(
        views, shifts, matcher=matcher, reference=reference, min_baseline_fraction=min_baseline_fraction,
        min_line_points=min_line_points)
    timings["match and fuse"] = time.perf_counter() - t0
    meta = getattr(detector, "metadata", {}) or {}
    record = {"source": str(ds.metadata.get("source", "")), "scan_shape": list(ds.scan_shape),
              "detector_shape": list(ds.detector_shape), "direct_beam": direct.to_dict(),
              "mrad_per_px": float(mrad_per_px), "scan_rotation_deg": float(scan_rotation_deg),
              "detector": {"version": getattr(detector, "version", None), "command": meta.get("command")},
              "matcher": {"version": getattr(matcher, "version", None)},
              "parameters": {"min_baseline_fraction": min_baseline_fraction, "min_line_points": min_line_points,
                             "flips": flips, "threshold": threshold, "contrast": contrast,
                             "std_calibration": STD_CALIBRATION, "max_corner_deg": MAX_CORNER_DEG,
                             "cross_check_px": CROSS_CHECK_PX, "min_pairs": confirming_pairs(len(pairs))},
              "package": f"napari-stereo-tem {__version__}",
              "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **(provenance or {})}
    return MultiViewReconstruction(lines, stds, n_used, views, list(discs), shifts, pairs, ref, timings, record)


def reconstruct_views(data, discs, *, on_progress=None, should_stop=None, **options) -> MultiViewReconstruction:
    """Run :func:`iter_reconstruct_views` to the end (same arguments) and return its result."""
    return drive(iter_reconstruct_views(data, discs, **options), on_progress, should_stop)
