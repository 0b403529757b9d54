"""End-to-end stereo reconstruction of dislocations (DESIGN 3.3-3.6 and the ``reconstruct`` contract of 5).

Stages: load -> rectify -> detect -> match -> refine -> triangulate (ordered 3D
polylines along the skeleton branches of the left view, lightly smoothed).
:func:`reconstruct_stereo` is a progress generator (one report per stage);
:func:`reconstruct` drives it. The result is a :class:`StereoReconstruction`
whose :meth:`~StereoReconstruction.save` writes ``lines.csv``, ``result.json``
and ``preview.png``.

Coordinates: the rectified left view (DESIGN section 2), tilt axis at the
central column ``(cols - 1) / 2``, ``z`` along the beam, in pixels.

Large camera images (a 4k pair at high magnification, lines tens of pixels wide)
are detected, matched and triangulated shrunk (:func:`.working_scale.working_scale`: to the
detector's factor, but at least 1024 px a side), and everything is given back in
the image's own pixels; smaller images, and large ones of thin lines, as they are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..camera_defects import repair_camera_defects
from ..checks import InputError
from ..progress import Progress, ProgressGenerator, cancel_between_layers, check_cancelled, drive
from .working_scale import resized, to_full_size, working_scale

__all__ = ["StereoReconstruction", "reconstruct_stereo", "reconstruct", "load_reconstruction", "lines_from_disparity",
           "STAGES", "RESULT_FILES", "LINE_MODELS", "working_scale"]

#: The stages reported by :func:`reconstruct_stereo`, in order.
STAGES = ("load", "rectify", "detect", "match", "refine", "triangulate")

#: The line models of :func:`reconstruct_stereo`.
LINE_MODELS = ("fit", "legacy")

#: The files :meth:`StereoReconstruction.save` writes.
RESULT_FILES = ("lines.csv", "result.json", "preview.png")


@dataclass
class StereoReconstruction:
    """The 3D model of a stereo pair and everything needed to check it.

    Attributes
    ----------
    lines : list of ndarray, shape (n, 3)
        ``(x, y, z)`` points of each dislocation line in order, pixels.
    left, right : ndarray, float32, shape (rows, cols)
        The rectified views (normalised to [0, 1], lines dark).
    prob_left, prob_right : ndarray, float32, shape (rows, cols)
        Detection probabilities.
    labels_left, labels_right : ndarray, uint8, shape (rows, cols)
        Detection labels (1 = dislocation).
    disparity, disparity_std : ndarray, float32, shape (rows, cols)
        Raw matcher disparity ``x_right - x_left`` and its softmax spread.
    disparity_refined : ndarray, float32, shape (rows, cols)
        Refined disparity at kept left dislocation pixels, NaN elsewhere.
    line_depth_std : list of ndarray, shape (n,)
        Standard deviation of each point's ``z`` (pixels), one array per line
        (empty when the line model gives none).
    rectification : dict or None
        Figures of the rectification (``None`` when it was skipped).
    matches : ndarray, shape (n, 4)
        The rectification's inlier keypoint pairs in the rectified frame,
        ``(x_left, y_left, x_right, y_right)`` (empty when it was skipped).
    timings : dict
        Seconds per stage.
    provenance : dict
        Inputs, stereo angle, pixel size, model versions, parameters.
    """

    lines: list
    left: np.ndarray
    right: np.ndarray
    prob_left: np.ndarray
    prob_right: np.ndarray
    labels_left: np.ndarray
    labels_right: np.ndarray
    disparity: np.ndarray
    disparity_std: np.ndarray
    disparity_refined: np.ndarray
    line_depth_std: list = field(default_factory=list)
    rectification: dict | None = None
    matches: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    timings: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)

    def lines_physical(self) -> list:
        """The lines in nm when the pixel size is known (else in pixels)."""
        size = self.provenance.get("pixel_size_nm")
        return [np.asarray(line) * (size or 1.0) for line in self.lines]

    def record(self) -> dict:
        """The JSON record written as ``result.json``."""
        n_points = int(sum(len(line) for line in self.lines))
        kept = np.isfinite(self.disparity_refined)
        n_left = int((self.labels_left == 1).sum())
        return {"provenance": self.provenance, "timings_s": self.timings, "rectification": self.rectification,
                "summary": {"n_lines": len(self.lines), "n_points": n_points,
                            "dislocation_pixels_left": n_left, "refined_pixels_kept": int(kept.sum()),
                            "units": "pixels (multiply by provenance.pixel_size_nm for nm)",
                            "frame": _frame_text(self.provenance.get("frame", "mean"),
                                                 self.provenance.get("tilts_deg"))},
                "lines": self.line_summaries()}

    def line_summaries(self) -> list[dict]:
        """Per line: geometry (length, curvature, neighbour spacing; see :func:`.line_geometry.line_geometry`),
        median and largest depth standard deviation, and its plane (``None`` if straight)."""
        from .line_fit import line_planes
        from .line_geometry import line_geometry

        planes = line_planes(self.lines)
        geometry = line_geometry(self.lines)
        out = []
        for k, line in enumerate(self.lines):
            std = self.line_depth_std[k] if k < len(self.line_depth_std) else None
            out.append({**geometry[k],
                        "depth_std_median": None if std is None else float(np.nanmedian(std)),
                        "depth_std_max": None if std is None else float(np.nanmax(std)),
                        "plane": planes[k]})
        return out

    def save(self, directory, *, overwrite: bool = False, extra: dict | None = None) -> Path:
        """Write ``lines.csv``, ``result.json`` and ``preview.png`` into ``directory``, as a whole.

        The files go to a temporary sibling folder that is renamed to ``directory``
        once all are written (:func:`~napari_stereo_tem.atomic.result_folder`): a
        failure leaves an earlier result as it was. A non-empty ``directory`` is
        refused unless ``overwrite`` (then it is replaced, if it holds only files of
        a result). ``extra`` maps more file names to ``write(path)`` callables
        written into the same folder.
        """
        from ..atomic import result_folder
        from .lines_io import write_json, write_lines_csv

        with result_folder(directory, overwrite=overwrite, option="directory",
                           produces=RESULT_FILES + tuple(extra or ())) as folder:
            columns = {"depth_std": self.line_depth_std} if len(self.line_depth_std) == len(self.lines) else None
            write_lines_csv(folder / "lines.csv", self.lines, columns=columns)
            write_json(folder / "result.json", self.record())
            self.save_preview(folder / "preview.png")
            for name, write in (extra or {}).items():
                write(folder / name)
        return Path(directory)

    def save_preview(self, path) -> Path:
        """The rectified left view with the lines drawn over it, coloured by depth ``z`` (PNG).

        Drawn with OpenCV, which the pipeline has loaded anyway (matplotlib would add
        most of a second to every command-line start): the view scaled to 640 px wide,
        the lines in viridis from the 1st to the 99th percentile of ``z`` (beyond: the end
        colours), a colour bar with both ends labelled, and a title with the line count and
        the stereo angle.
        """
        import cv2

        rows, cols = self.left.shape
        zoom = 640.0 / cols
        width, height = 640, max(1, int(round(rows * zoom)))
        grey = np.clip(np.nan_to_num(np.asarray(self.left, dtype=np.float32)), 0, 1)
        grey = cv2.resize((grey * 255).astype(np.uint8), (width, height), interpolation=cv2.INTER_AREA)
        bar_w, top = 90, 30
        canvas = np.full((height + top, width + bar_w, 3), 255, np.uint8)
        canvas[top:, :width] = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
        lines = [np.asarray(line, dtype=float) for line in self.lines if len(line) >= 2]
        z = np.concatenate([line[:, 2] for line in lines]) if lines else np.zeros(0)
        # the colour scale spans the 1st to 99th percentile: one stray point does not squash every colour
        z_lo, z_hi = (float(np.percentile(z, 1)), float(np.percentile(z, 99))) if len(z) else (0.0, 1.0)
        span = max(z_hi - z_lo, 1e-9)
        lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_VIRIDIS)[:, 0]
        for line in lines:
            xy = np.round((line[:, :2] + 0.5) * zoom - 0.5 + (0, top)).astype(np.int32)
            level = np.clip((0.5 * (line[:-1, 2] + line[1:, 2]) - z_lo) / span * 255, 0, 255).astype(int)
            for a, b, k in zip(xy[:-1], xy[1:], level):
                cv2.line(canvas, tuple(int(v) for v in a), tuple(int(v) for v in b),
                         tuple(int(c) for c in lut[k]), 2, cv2.LINE_AA)
        if lines:
            x0, y0, y1 = width + 15, top + 20, top + height - 20
            ramp = lut[np.linspace(255, 0, max(y1 - y0, 2)).astype(int)]
            canvas[y0:y0 + len(ramp), x0:x0 + 18] = ramp[:, None, :]
            font = cv2.FONT_HERSHEY_SIMPLEX
            cv2.putText(canvas, f"{z_hi:.1f}", (x0 - 5, y0 - 6), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
            cv2.putText(canvas, f"{z_lo:.1f}", (x0 - 5, y0 + len(ramp) + 14), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
            cv2.putText(canvas, "z (px)", (x0 + 22, (y0 + y1) // 2), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        title = f"{len(self.lines)} lines, stereo angle {self.provenance.get('stereo_angle_deg')} deg"
        cv2.putText(canvas, title, (10, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        ok, png = cv2.imencode(".png", canvas)
        if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
            raise InputError(f"could not encode the preview of {path}")
        from ..atomic import atomic_write_bytes

        return atomic_write_bytes(path, png.tobytes())


def _frame_text(frame: str, tilts) -> str:
    if frame == "specimen":
        return (f"specimen frame: x, y of the rectified left view's axes, tilt axis at column (cols - 1) / 2, z along "
                f"the foil normal at zero tilt (views at tilts {tilts} deg)")
    return ("mean-tilt frame: rectified left view; tilt axis at column (cols - 1) / 2; z along the beam at the mean "
            "tilt of the two views")


def load_reconstruction(directory) -> tuple[list, dict]:
    """Read back what :meth:`StereoReconstruction.save` wrote: ``(lines, record)``."""
    from .lines_io import read_json, read_lines_csv

    folder = Path(directory)
    return read_lines_csv(folder / "lines.csv"), read_json(folder / "result.json")


def _smooth_nan(values: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter1d

    if sigma <= 0 or len(values) < 3:
        return values
    ok = np.isfinite(values).astype(float)
    num = gaussian_filter1d(np.where(ok > 0, values, 0.0), sigma, mode="nearest")
    den = gaussian_filter1d(ok, sigma, mode="nearest")
    return np.where(ok > 0, num / np.maximum(den, 1e-9), np.nan)


def lines_from_disparity(mask_left, disparity, stereo_angle_deg: float, *, min_points: int = 5,
                         smooth_sigma: float = 3.0, min_branch_length: float = 5.0, median_points: int = 11,
                         positions=None, tilts_deg=None) -> list:
    """Ordered 3D polylines from the skeleton of the left mask and a (refined) disparity map.

    Parameters
    ----------
    mask_left : ndarray of bool, shape (rows, cols)
        Left dislocation pixels.
    disparity : ndarray, shape (rows, cols)
        ``x_right - x_left``; NaN where unknown (a branch is split there).
    stereo_angle_deg : float
    min_points : int
        Pieces with fewer valid points are dropped.
    smooth_sigma : float
        Gaussian smoothing of the disparity along each piece (in points; after the median).
    min_branch_length : float
        Spur pruning of :func:`~napari_stereo_tem.stereo.skeleton_graph.skeleton_branches` (the
        branches of :func:`~napari_stereo_tem.stereo.detection.skeleton_polylines`, with nothing to compile).
    median_points : int
        Running median of the disparity along each piece (points), against isolated mismatches.
    positions : ndarray, shape (rows, cols), optional
        The left column each disparity is measured from (the sub-pixel run centres of
        :func:`~napari_stereo_tem.stereo.matching.refine_disparity` with ``return_positions``);
        default the skeleton pixel's own column.
    tilts_deg : (float, float), optional
        The views' own tilts ``(A, B)``: the points are then in the specimen frame
        (``z`` along the foil normal at zero tilt), by the exact asymmetric
        triangulation (:func:`~napari_stereo_tem.stereo.projection.triangulate_asymmetric`);
        default the mean-tilt frame (views at ``-phi/2`` and ``+phi/2``).

    Returns
    -------
    list of ndarray, shape (n, 3)
        ``(x, y, z)`` per line, triangulated with :func:`~napari_stereo_tem.stereo.projection.triangulate`
        (tilt axis at column ``(cols - 1) / 2``).
    """
    from scipy.ndimage import median_filter

    from .line_fit import true_runs
    from .projection import triangulate, triangulate_asymmetric
    from .skeleton_graph import skeleton_branches

    disparity = np.asarray(disparity, dtype=float)
    axis_col = (disparity.shape[1] - 1) / 2.0
    lines = []
    for branch in skeleton_branches(mask_left, min_branch_length=min_branch_length):
        check_cancelled()  # per line: a cancel does not wait for the whole stage
        xy = np.round(branch).astype(int)
        d = disparity[xy[:, 1], xy[:, 0]]
        for a, b in true_runs(np.isfinite(d), min_points):
            piece = d[a:b]
            if median_points > 1 and len(piece) >= median_points:
                piece = median_filter(piece, size=int(median_points), mode="nearest")
            piece = _smooth_nan(piece, smooth_sigma)
            x_left, y = branch[a:b, 0], branch[a:b, 1]
            if positions is not None:
                centre = positions[xy[a:b, 1], xy[a:b, 0]]
                x_left = np.where(np.isfinite(centre), centre, x_left)
            if tilts_deg is None:
                lines.append(triangulate(x_left, y, x_left + piece, stereo_angle_deg, axis_col=axis_col))
            else:
                lines.append(triangulate_asymmetric(x_left, y, x_left + piece, *tilts_deg, axis_col=axis_col))
    return lines


def _input_name(source, fallback: str) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    return f"{fallback} ({type(source).__name__})"


def _model_info(model) -> dict:
    meta = getattr(model, "metadata", {}) or {}
    return {"version": getattr(model, "version", None), "class": type(model).__name__,
            "architecture": model.architecture() if hasattr(model, "architecture") else None,
            "command": meta.get("command"), "metric": meta.get("metric")}


def reconstruct_stereo(left, right, *, stereo_angle_deg: float | None, pixel_size: float | None = None,
                       swap: bool = False, rectify: bool = True, device="cpu", detector=None, matcher=None,
                       disparity_range: tuple[int, int] | None = None, refine: bool = True,
                       refine_mode: str = "centre", max_snap_px: float = 3.0, threshold: float = 0.5,
                       contrast: str = "auto", detect_scale="auto", n_threads: int | None = None,
                       smooth_sigma: float = 3.0, min_line_points: int = 10, tilts_deg=None, frame: str = "mean",
                       tilt_axis_deg: float | None = None, shift=None, manual_points=None,
                       strict_rectify: bool = True, line_model: str = "fit",
                       lr_check: bool = True, line_instances: bool = False,
                       line_search: bool = False,
                       max_disparity_std: float | None = None,
                       min_line_probability: float | None = None) -> ProgressGenerator[StereoReconstruction]:
    """Reconstruct the 3D dislocation lines of a stereo pair; a progress generator.

    Parameters
    ----------
    left, right : str, Path, ndarray (rows, cols) or HyperSpy signal
        The two views (``left`` at ``-phi/2``); files in any format of
        :func:`napari_stereo_tem.images.read_image`.
    stereo_angle_deg : float or None
        The stereo angle ``phi``; ``None`` takes it from ``tilts_deg`` or the files' tilt metadata.
    pixel_size : float, optional
        nm per pixel (recorded; ``lines.csv`` stays in pixels). Default: from the files.
    swap : bool
        Exchange the views.
    rectify : bool
        Find the tilt axis and the shift and rectify (:func:`~napari_stereo_tem.stereo.rectification.rectify_pair`);
        ``False`` when the pair is already rectified.
    device : str or torch.device
        Where the networks run ("cpu", "cuda").
    detector : DislocationUNet or str, optional
        Model or version name; default the shipped ``detector_v2``.
    matcher : StereoNet or str, optional
        Model or version name; default the shipped ``matcher_v1``.
    disparity_range : (int, int), optional
        Signed disparity range searched (px); default the matcher's own.
    refine : bool
        Snap disparities to right dislocation pixels (DESIGN 3.5); without it the raw disparities are used.
    refine_mode, max_snap_px
        See :func:`~napari_stereo_tem.stereo.matching.refine_disparity`.
    threshold : float
        Detection probability threshold.
    contrast : {"auto", "bright_field", "dark_field"}
        Contrast of the images (decided once, from the left view, for both).
    detect_scale : "auto", float or None
        Resize factor for detection (see
        :func:`~napari_stereo_tem.stereo.detection.choose_settings`), decided once
        from the left view; ``None``: as is.
    n_threads : int, optional
        Torch CPU threads during the call.
    smooth_sigma : float
        Smoothing of the disparity along each line (points; ``line_model="legacy"`` only).
    min_line_points : int
        Lines (and skeleton spurs) shorter than this many points are dropped
        (isolated detections are mostly noise).
    tilts_deg : (float, float), optional
        The tilts ``(A, B)`` of the left and right view (asymmetric pairs); the
        stereo angle is then ``B - A``.
    frame : {"mean", "specimen"}
        Frame of the 3D points: the mean-tilt frame (views at ``-phi/2``,
        ``+phi/2``; ``z`` along the beam at the mean tilt) or the specimen frame
        (``z`` along the foil normal at zero tilt; needs the tilts).
    tilt_axis_deg : float, optional
        Known tilt-axis angle off the vertical (e.g. the microscope's calibration).
    shift : (float, float), optional
        Known ``(dx, dy)`` px a zero-disparity feature moves from the left to the right view.
    manual_points : (array_like, array_like), optional
        At least 3 clicked ``(x, y)`` point pairs ``(left, right)`` the rectification fits instead of finding its own.
    strict_rectify : bool
        Refuse when the rectification cannot be trusted (default); False goes on with warnings.
    line_model : {"fit", "legacy"}
        ``"fit"``: disparity measured in the images along each line and one robust
        smooth curve per line, with a depth standard deviation per point
        (:func:`~napari_stereo_tem.stereo.line_fit.fit_lines`); ``"legacy"``: the
        refined disparities with a running median and Gaussian smoothing
        (:func:`lines_from_disparity`), no uncertainty.
    lr_check : bool
        With the ``"fit"`` line model, run the matcher from the right view's side too and
        leave out the points whose disparity the two sides do not agree on within 1.5 px
        (the curve fills them in from their neighbours).
    line_instances : bool
        With ``line_model="fit"``: fit one disparity curve per dislocation instance of
        the left view (:func:`~napari_stereo_tem.stereo.instances.line_instances`:
        the lines of a pile-up kept apart, each matched as a whole) instead of per
        skeleton branch.
    line_search : bool
        With ``line_model="fit"``: choose each line's whole-pixel disparities for the line
        as a whole (:func:`~napari_stereo_tem.stereo.line_fit.line_disparity_search`, up to
        8 px from the matcher's) before the sub-pixel measurement, and with ``lr_check``
        measure the right view's lines the same way, so a stretch the right view's matcher
        alone disputes is kept when both lines agree (``line_disparity_right`` of
        :func:`~napari_stereo_tem.stereo.line_fit.fit_lines`). Off by default: more
        coverage on pile-ups, less precision on other renderings, 10-15 % slower (docs/benchmarks.md).
    max_disparity_std : float, optional
        With ``line_model="fit"``: points whose fitted disparity has a larger standard
        deviation (pixels) are left out (e.g. ``line_fit.MAX_DISPARITY_STD``); default: all kept.
    min_line_probability : float, optional
        With ``line_model="fit"``: lines whose median detection probability along their
        centre is lower are dropped (mostly false detections; ``min_probability`` of
        :func:`~napari_stereo_tem.stereo.line_fit.fit_lines`); default: none dropped.

    Yields
    ------
    Progress
        One per stage of :data:`STAGES`.

    Returns
    -------
    StereoReconstruction

    Raises
    ------
    InputError
        Unreadable or mismatched inputs, a zero or absurd angle, missing weights,
        a pair that cannot be rectified.
    """
    import torch

    from ..images import read_stereo_pair
    from ..models.store import load_detector
    from .detection import choose_settings, normalise_image, predict_probability, probability_to_labels
    from .line_fit import fit_lines
    from .matching import load_matcher, predict_disparity, refine_disparity

    if line_model not in LINE_MODELS:
        raise InputError(f"line_model must be one of {LINE_MODELS}, got {line_model!r}")
    if frame not in ("mean", "specimen"):
        raise InputError(f"frame must be 'mean' or 'specimen', got {frame!r}")
    if tilts_deg is not None:
        from ..checks import check_stereo_angle

        try:
            tilts_deg = tuple(float(v) for v in tilts_deg)
        except (TypeError, ValueError):
            raise InputError(f"tilts must be two angles A,B in degrees, got {tilts_deg!r}") from None
        if len(tilts_deg) != 2 or not all(np.isfinite(tilts_deg)) or max(abs(v) for v in tilts_deg) >= 90:
            raise InputError(f"tilts must be two finite angles A,B below 90 degrees, got {tilts_deg!r}")
        phi = check_stereo_angle(tilts_deg[1] - tilts_deg[0], name="the tilt difference B - A")
        if stereo_angle_deg is not None and abs(float(stereo_angle_deg) - phi) > 1e-6:
            raise InputError(f"the stereo angle {stereo_angle_deg} differs from the tilts' difference {phi}; "
                             "give one of --angle and --tilts")
        stereo_angle_deg = phi
    elif frame == "specimen":
        raise InputError("the specimen frame needs the tilts of both views (--tilts A,B / tilts_deg)")
    timings: dict[str, float] = {}
    total = len(STAGES)
    previous_threads = torch.get_num_threads()
    if n_threads:
        torch.set_num_threads(int(n_threads))
    try:
        t0 = time.perf_counter()
        pair = read_stereo_pair(left, right, stereo_angle_deg=stereo_angle_deg, pixel_size_nm=pixel_size, swap=swap)
        # a dead camera column sits at the same pixel in both views: a line at one depth and a pull towards no shift
        pair.left, found_left = repair_camera_defects(pair.left)
        pair.right, found_right = repair_camera_defects(pair.right)
        defects = {"left": found_left.as_dict(), "right": found_right.as_dict(),
                   "note": "; ".join(f"{side} view: {found.describe()}" for side, found
                                     in (("left", found_left), ("right", found_right)) if found)}
        check_cancelled()  # between the reads and the model loads: a cancel does not wait for the whole stage
        if detector is None or isinstance(detector, (str, Path)):
            detector = load_detector("default" if detector is None else str(detector), device=device)
        check_cancelled()
        if matcher is None or isinstance(matcher, (str, Path)):
            matcher = load_matcher("default" if matcher is None else str(matcher), device=device)
        timings["load"] = time.perf_counter() - t0
        yield Progress(1, total, "load")

        t0 = time.perf_counter()
        rect_report, matches = None, np.zeros((0, 4))
        if rectify:
            from .rectification import rectify_pair

            manual = {} if manual_points is None else {"points_left": manual_points[0],
                                                       "points_right": manual_points[1]}
            rect = rectify_pair(pair.left, pair.right, theta_deg=tilt_axis_deg, shift=shift, strict=strict_rectify,
                                **manual)
            raw_left, raw_right = rect.left, rect.right
            rect_report = rect.report()
            matches = np.column_stack([rect.map_points(rect.keypoints_left, view="left"),
                                       rect.map_points(rect.keypoints_right, view="right")])
        else:
            raw_left, raw_right = pair.left.astype(np.float32), pair.right.astype(np.float32)
        timings["rectify"] = time.perf_counter() - t0
        yield Progress(2, total, "rectify")

        t0 = time.perf_counter()
        # one contrast and one resize factor for both views, decided on the left one
        with cancel_between_layers(detector):  # a cancel does not wait for the detector's passes
            settings = choose_settings(raw_left, detector, contrast=contrast, scale=detect_scale)
            contrast = settings.contrast
            full_shape = raw_left.shape
            work = working_scale(full_shape, settings.scale)
            if work < 1.0:  # a large camera image of wide lines: the rest runs on it shrunk
                raw_left, raw_right = (resized(v, work) for v in (raw_left, raw_right))
            scale_left = settings.scale / work
            norm_left = normalise_image(raw_left, contrast=contrast)
            norm_right = normalise_image(raw_right, contrast=contrast)
            classes_left = predict_probability(raw_left, detector, contrast=contrast, scale=scale_left,
                                               all_classes=True)
            classes_right = predict_probability(raw_right, detector, contrast=contrast, scale=scale_left,
                                                all_classes=True)
        prob_left, prob_right = classes_left[0], classes_right[0]
        # labels 1 = dislocation, 2 = distractor (slip traces, boundaries): only class 1 is matched
        labels_left = probability_to_labels(classes_left, threshold=threshold)
        labels_right = probability_to_labels(classes_right, threshold=threshold)
        timings["detect"] = time.perf_counter() - t0
        yield Progress(3, total, "detect")

        t0 = time.perf_counter()
        disparity, std = predict_disparity(norm_left, norm_right, matcher, disparity_range=disparity_range)
        disparity_right = None
        if line_model == "fit" and lr_check:
            # the same matcher from the right view's side (mirrored, swapped pair: same disparity sign)
            mirrored, _ = predict_disparity(norm_right[:, ::-1].copy(), norm_left[:, ::-1].copy(), matcher,
                                            disparity_range=disparity_range)
            disparity_right = mirrored[:, ::-1]
        timings["match"] = time.perf_counter() - t0
        yield Progress(4, total, "match")

        t0 = time.perf_counter()
        mask_left, mask_right = labels_left == 1, labels_right == 1
        positions = None
        if refine:
            refined, positions = refine_disparity(disparity, mask_left, mask_right, max_distance=max_snap_px,
                                                  mode=refine_mode, weights_left=prob_left, weights_right=prob_right,
                                                  return_positions=True)
        else:
            refined = np.where(mask_left, disparity, np.nan).astype(np.float32)
        timings["refine"] = time.perf_counter() - t0
        yield Progress(5, total, "refine")

        t0 = time.perf_counter()
        frame_tilts = tilts_deg if frame == "specimen" else None
        line_std = []
        if line_model == "fit":
            branches = None
            if line_instances:
                from .instances import apart_from_others, line_instances as find_instances

                branches = apart_from_others(find_instances(prob_left, threshold=threshold,
                                                            scale=scale_left).lines)
            search_options = {"max_disparity_std": max_disparity_std, "min_probability": min_line_probability}
            if line_search:
                search_options["line_search"] = 8
                if disparity_right is not None:
                    from .line_fit import line_disparity_map

                    search_options["line_disparity_right"] = line_disparity_map(
                        mask_right[:, ::-1], prob_right[:, ::-1], prob_left[:, ::-1], disparity_right[:, ::-1],
                        min_branch_length=float(min_line_points))[:, ::-1]
            lines, line_std = fit_lines(mask_left, prob_left, prob_right, disparity, pair.stereo_angle_deg,
                                        refined=refined, positions=positions, tilts_deg=frame_tilts,
                                        min_points=min_line_points, min_branch_length=float(min_line_points),
                                        disparity_right=disparity_right, branches=branches, **search_options)
        else:
            lines = lines_from_disparity(mask_left, refined, pair.stereo_angle_deg, smooth_sigma=smooth_sigma,
                                         positions=positions, tilts_deg=frame_tilts, min_points=min_line_points,
                                         min_branch_length=float(min_line_points))
        timings["triangulate"] = time.perf_counter() - t0
        timings["total"] = float(sum(timings.values()))
        yield Progress(6, total, "triangulate")
    finally:
        if n_threads:
            torch.set_num_threads(previous_threads)

    from .. import __version__

    provenance = {
        "inputs": {"left": _input_name(left, "left"), "right": _input_name(right, "right"),
                   "names": list(pair.names)},
        "stereo_angle_deg": float(pair.stereo_angle_deg), "pixel_size_nm": pair.pixel_size_nm,
        "swap": bool(swap), "rectify": bool(rectify), "device": str(device),
        "tilts_deg": None if tilts_deg is None else list(tilts_deg), "frame": frame,
        "detector": _model_info(detector), "matcher": _model_info(matcher),
        "parameters": {"disparity_range": list(disparity_range) if disparity_range is not None
                       else list(getattr(getattr(matcher, "matcher", matcher), "disparity_range", [])),
                       "refine": bool(refine), "refine_mode": refine_mode, "max_snap_px": max_snap_px,
                       "threshold": threshold, "contrast": contrast, "smooth_sigma": smooth_sigma,
                       "detection": settings.as_dict(), "working_scale": work,
                       "min_line_points": min_line_points, "line_model": line_model, "lr_check": bool(lr_check),
                       "line_instances": bool(line_instances), "line_search": bool(line_search),
                       "max_disparity_std": max_disparity_std, "min_line_probability": min_line_probability,
                       "axis_col": (pair.left.shape[1] - 1) / 2.0, "torch_threads": torch.get_num_threads()},
        "camera_defects": defects,
        "package": f"napari-stereo-tem {__version__}",
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    result = StereoReconstruction(
        lines=lines, left=norm_left, right=norm_right, prob_left=prob_left, prob_right=prob_right,
        labels_left=labels_left, labels_right=labels_right, disparity=disparity, disparity_std=std,
        disparity_refined=refined, line_depth_std=line_std, rectification=rect_report, matches=matches, timings=timings,
        provenance=provenance)
    return result if work == 1.0 else to_full_size(result, full_shape)  # back to the image's own pixels


def reconstruct(left, right, *, on_progress=None, should_stop=None, **options) -> StereoReconstruction:
    """Run :func:`reconstruct_stereo` to the end (same arguments) and return its result.

    ``on_progress`` and ``should_stop`` are passed to :func:`~napari_stereo_tem.progress.drive`.
    """
    if "stereo_angle_deg" not in options:
        raise InputError("give the stereo angle: stereo_angle_deg=DEGREES (None takes it from the files)")
    return drive(reconstruct_stereo(left, right, **options), on_progress, should_stop)
