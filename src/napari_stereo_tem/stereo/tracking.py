"""Dislocations tracked through an in-situ time series (DESIGN 3.13, the ``track`` command).

A stack of frames (a TIFF stack, a folder of images, a video that imageio reads,
a ``.npy`` or an array ``(n_frames, rows, cols)``) goes through

1. **detection** in every frame (:func:`~napari_stereo_tem.stereo.detect.iter_detect_lines`;
   contrast and resize factor decided on the first frame and kept);
2. **drift correction**: the shift between consecutive frames by masked
   normalised cross-correlation (:func:`skimage.registration.phase_cross_correlation`
   with masks, refined to sub-pixel by a parabola), the detected dislocations
   masked out (they glide on their own; the texture, dots, slip traces and
   boundaries do not), accumulated into the drift of every frame relative to frame 0;
3. **instances**: every line of at least ``min_length`` px, one per dislocation
   (:func:`~napari_stereo_tem.stereo.instances.line_instances`: sub-pixel ridges
   of the probability map, so the lines of a pile-up stay apart; or, with
   ``instances="skeleton"``, the skeleton branches of the thresholded map), with its
   centroid in the specimen's frame (drift removed) and its geometry
   (:func:`~napari_stereo_tem.stereo.line_geometry.line_geometry`);
4. **tracking** of the centroids by linear assignment with gap closing
   (`laptrack <https://github.com/yfukai/laptrack>`_);
5. per track: frames, position, velocity (px/frame, drift removed) and length.

Typical use::

    result = track_lines("in_situ.tif", max_distance=10)
    result.drift                 # (n_frames, 2): (dx, dy) of each frame relative to frame 0
    track_rows(result)           # rows of tracks.csv

Reading lives in :mod:`.frame_stack`, the drift in :mod:`.drift`, the distance
and step between two lines in :mod:`.line_motion`.

Coordinates: ``x`` = column, ``y`` = row (pixels). A position "in the specimen's
frame" is the image position of frame 0: the image position in frame ``k``
minus ``drift[k]``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..checks import InputError
from ..progress import Progress, ProgressGenerator, drive, within_step
from ..camera_defects import fill_camera_defects, find_camera_defects
from .drift import estimate_drift, iter_drift_steps, static_overlay, unusable_frames
from .frame_stack import VIDEO_SUFFIXES, frame_numbers, read_stack

__all__ = ["read_stack", "estimate_drift", "line_instances", "frame_lines", "INSTANCE_METHODS", "link_instances",
           "TrackingResult",
           "iter_track_lines", "track_lines", "track_rows", "track_summary", "TRACK_COLUMNS", "VIDEO_SUFFIXES",
           "in_physical_units", "median_speed"]

#: Columns of :func:`track_rows` (the header of ``tracks.csv``).
TRACK_COLUMNS = ("track_id", "frame", "x", "y", "length", "velocity_x", "velocity_y")


def line_instances(lines, *, min_length: float = 8.0) -> list[dict]:
    """Branches long enough to be a line, with their centroid and geometry.

    Parameters
    ----------
    lines : sequence of ndarray, shape (n, 2)
        Polylines of ``(x, y)`` (one frame).
    min_length : float
        Shorter branches (skeleton spurs, fragments) are dropped (px).

    Returns
    -------
    list of dict
        ``x``, ``y`` (centroid of the branch, weighted by arc length), ``length``
        (spline length), ``mean_curvature``, ``points`` (the polyline), ``branch``
        (its index in ``lines``).
    """
    from ..synth.curves import resample
    from .line_geometry import line_geometry

    polylines = [np.asarray(line, float).reshape(-1, 2) for line in lines]
    geometry = line_geometry(polylines)
    out = []
    for k, (line, geom) in enumerate(zip(polylines, geometry)):
        if geom["length"] < min_length or len(line) < 2:
            continue
        centroid = resample(line, 0.5).mean(axis=0)
        out.append({"x": float(centroid[0]), "y": float(centroid[1]), "length": float(geom["length"]),
                    "mean_curvature": float(geom["mean_curvature"]), "points": line, "branch": k})
    return out


def link_instances(frame, x, y, *, lines=None, max_distance: float = 10.0, gap_frames: int = 1) -> np.ndarray:
    """Track ids for instances seen in ``frame`` (laptrack's linear-assignment tracker).

    Parameters
    ----------
    frame, x, y : array_like, shape (n,)
        Frame index and centroid (in the specimen's frame) of every instance.
    lines : sequence of ndarray (n, 2), optional
        The instances' polylines in the specimen's frame. When given, the cost of a
        link is the distance between the two lines
        (:func:`~napari_stereo_tem.stereo.line_motion.curve_distance`), which does
        not jitter with the ends of a branch as its centroid does; otherwise the
        distance between centroids.
    max_distance : float
        Largest move between two linked frames (px).
    gap_frames : int
        A line missed in up to this many frames is still linked across the gap
        (0: no gap closing); across a gap it may move ``max_distance`` per frame.

    Returns
    -------
    ndarray of int, shape (n,)
        Track id of every instance, ``0, 1, ...`` in order of first appearance.
    """
    import pandas as pd
    from laptrack import LapTrack

    from .line_motion import curve_distance

    frame = np.asarray(frame, int)
    x, y = np.asarray(x, float), np.asarray(y, float)
    if not np.isfinite(max_distance) or max_distance <= 0:
        raise InputError(f"the largest move between frames must be a positive number of pixels, got {max_distance}")
    if gap_frames < 0:
        raise InputError(f"gap_frames must be 0 or more, got {gap_frames}")
    if len(frame) == 0:
        return np.zeros(0, int)
    table = pd.DataFrame({"frame": frame - frame.min(), "y": y, "x": x, "row": np.arange(len(frame), dtype=float)})
    reach = float(max_distance) * (gap_frames + 1)
    if lines is None:
        metric, columns = "sqeuclidean", ["y", "x"]
    else:
        if len(lines) != len(frame):
            raise InputError(f"{len(lines)} lines for {len(frame)} instances")

        boxes = np.array([np.concatenate([np.min(line, axis=0), np.max(line, axis=0)]) if len(line) else
                          np.full(4, np.nan) for line in (np.asarray(line, float).reshape(-1, 2) for line in lines)])
        beyond = (2.0 * reach + 1.0) ** 2   # any cost above every cutoff: not linked
        known: dict[tuple[int, int], float] = {}

        def metric(first, second):
            i, j = int(first[0]), int(second[0])
            if (i, j) not in known:
                # every point of one line is at least the gap between their boxes from the other
                gap = np.hypot(max(boxes[j, 0] - boxes[i, 2], boxes[i, 0] - boxes[j, 2], 0.0),
                               max(boxes[j, 1] - boxes[i, 3], boxes[i, 1] - boxes[j, 3], 0.0))
                known[i, j] = beyond if not gap <= reach else curve_distance(lines[i], lines[j]) ** 2
            return known[i, j]

        columns = ["row"]
    tracker = LapTrack(metric=metric, cutoff=float(max_distance) ** 2, gap_closing_metric=metric,
                       gap_closing_cutoff=reach ** 2 if gap_frames > 0 else False,
                       gap_closing_max_frame_count=int(gap_frames) + 1,
                       splitting_cutoff=False, merging_cutoff=False)
    tracks, _, _ = tracker.predict_dataframe(table, columns, only_coordinate_cols=False)
    tracks = tracks.reset_index(drop=True)
    ids = np.full(len(frame), -1, int)
    ids[tracks["row"].to_numpy(float).astype(int)] = tracks["track_id"].to_numpy(int)
    # renumber in order of first appearance (frame, then position in the input)
    order = {}
    for row in np.lexsort((np.arange(len(frame)), frame)):
        order.setdefault(ids[row], len(order))
    return np.array([order[i] for i in ids], int)


@dataclass
class TrackingResult:
    """What :func:`track_lines` found.

    Attributes
    ----------
    drift : ndarray, (n_frames, 2)
        ``(dx, dy)`` of each frame relative to the first (px).
    instances : list of dict
        One per line branch and frame: ``frame`` (its number in the file: with every n-th frame taken,
        velocities come out per frame of the file), ``track_id``, ``x``, ``y`` (centroid in
        the specimen's frame), ``x_image``, ``y_image`` (in the frame's image),
        ``length``, ``mean_curvature``, ``points`` (the polyline in the frame's image),
        ``specimen_points`` (the same, drift removed).
    n_frames : int
        Frames tracked.
    shape : (rows, cols)
    settings : dict
        Detection (as decided on the first frame) and tracking settings.
    seconds : dict
        Timings per stage.
    frame_numbers : ndarray, (n_frames,)
        Each tracked frame's number in the file (``0, 1, 2, ...`` unless only some frames were taken).
    """

    drift: np.ndarray
    instances: list
    n_frames: int
    shape: tuple
    settings: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    frame_numbers: np.ndarray | None = None

    def __post_init__(self):
        if self.frame_numbers is None:
            self.frame_numbers = np.arange(self.n_frames)

    @property
    def n_tracks(self) -> int:
        return len({inst["track_id"] for inst in self.instances})


#: How a frame's detection becomes line instances (see :func:`frame_lines`).
INSTANCE_METHODS = ("ridges", "skeleton")


def frame_lines(detection, *, instances: str = "ridges", min_length: float = 8.0) -> list:
    """Polylines of one frame's dislocations, one per instance.

    ``"ridges"``: :func:`~napari_stereo_tem.stereo.instances.line_instances` on the
    probability map (lines of a pile-up kept apart where they nearly touch);
    ``"skeleton"``: the skeleton branches of the thresholded map (close lines merge).
    """
    if instances == "skeleton":
        return detection.lines
    if instances != "ridges":
        raise InputError(f"instances must be one of {INSTANCE_METHODS}, got {instances!r}")
    from .instances import line_instances as ridge_instances

    return ridge_instances(detection.probability[0], threshold=detection.settings.get("threshold", 0.5),
                           scale=detection.settings.get("scale", 1.0), min_length=min_length).lines


def _mostly_in(points, mask: np.ndarray) -> bool:
    """Whether at least half of the ``(x, y)`` points lie on ``mask``."""
    if not mask.any() or len(points) == 0:
        return False
    xy = np.round(np.asarray(points, dtype=float)).astype(int)
    cols = np.clip(xy[:, 0], 0, mask.shape[1] - 1)
    rows = np.clip(xy[:, 1], 0, mask.shape[0] - 1)
    return bool(mask[rows, cols].mean() >= 0.5)


def iter_track_lines(stack, model=None, *, max_distance: float = 10.0, gap_frames: int = 1,
                     min_length: float = 8.0, contrast: str = "auto", scale="auto", flips: int = 1,
                     device="cpu", instances: str = "ridges", frames: slice | None = None,
                     name: str = "stack", signal=None) -> ProgressGenerator[TrackingResult]:
    """Generator form of :func:`track_lines` (progress per frame; cancel between frames)."""
    from .detect import iter_detect_lines

    if instances not in INSTANCE_METHODS:
        raise InputError(f"instances must be one of {INSTANCE_METHODS}, got {instances!r}")

    selection = frames
    frames = read_stack(stack, name=name, frames=selection, signal=signal)
    numbers = frame_numbers(selection, len(frames))
    # a blank frame (beam blanked, frame dropped) or one of noise shows nothing to link and breaks the drift
    skipped = unusable_frames(frames)
    if skipped:
        usable = np.setdiff1d(np.arange(len(frames)), [k for k, _ in skipped])
        if len(usable) < 2:
            raise InputError(f"{name}: {len(skipped)} of {len(frames)} frames are blank or unlike their neighbours; "
                             "fewer than two frames show the specimen")
        skipped = [{"frame": int(numbers[k]), "why": why} for k, why in skipped]
        frames, numbers = frames[usable], numbers[usable]
    if model is None:
        from ..models.store import load_detector

        model = load_detector(device=device)
    n = len(frames)
    seconds = {}
    t0 = time.perf_counter()
    # a dead camera column stays put while the specimen drifts: filled in before the drift or the lines see it
    defects = find_camera_defects(frames.mean(axis=0))
    for k in range(n if defects else 0):
        frames[k] = fill_camera_defects(frames[k], defects)
    # a video's burned-in overlay stays put too: neither lines nor drift come from it
    overlay = static_overlay(frames)
    found, ignored, settings = [], np.zeros(frames.shape, bool), {}
    for k in range(n):
        detection = yield from within_step(iter_detect_lines(frames[k], model, contrast=contrast, scale=scale,
                                                             flips=flips, device=device), k, n, "detect frames")
        if k == 0:      # the first frame decides; later frames keep it (no flicker between frames)
            settings = dict(detection.settings)
            contrast, scale = settings["contrast"], settings["scale"]
        ignored[k] = (detection.labels == 1) | overlay  # the drift comes from neither
        lines = line_instances(frame_lines(detection, instances=instances, min_length=min_length),
                               min_length=min_length)
        found.append([inst for inst in lines if not _mostly_in(inst["points"], overlay)])
        yield Progress(k + 1, n, "detect frames")
    seconds["detect"] = time.perf_counter() - t0

    # the dislocations glide on their own: the drift comes from everything else
    t0 = time.perf_counter()
    steps = []
    for k, step in enumerate(iter_drift_steps(frames, ignored)):
        steps.append(step)
        yield Progress(k + 1, n, "drift")
    drift = np.cumsum(np.array(steps), axis=0)
    seconds["drift"] = time.perf_counter() - t0
    records = [{"frame": k, "track_id": -1, "x": inst["x"] - drift[k, 0], "y": inst["y"] - drift[k, 1],
                "x_image": inst["x"], "y_image": inst["y"], "length": inst["length"],
                "mean_curvature": inst["mean_curvature"], "points": inst["points"],
                "specimen_points": inst["points"] - drift[k]}
               for k, frame_instances in enumerate(found) for inst in frame_instances]

    yield Progress(0, 1, "link")   # the bar appears while the links are made, not after
    t0 = time.perf_counter()
    ids = link_instances([i["frame"] for i in records], [i["x"] for i in records],
                         [i["y"] for i in records], lines=[i["specimen_points"] for i in records],
                         max_distance=max_distance, gap_frames=gap_frames)
    for inst, track_id in zip(records, ids):
        inst["track_id"] = int(track_id)
        inst["frame"] = int(numbers[inst["frame"]])   # linked frame by frame as read; numbered as in the file
    seconds["link"] = time.perf_counter() - t0
    yield Progress(1, 1, "link")
    settings.update(max_distance=float(max_distance), gap_frames=int(gap_frames), min_length=float(min_length),
                    tracker="laptrack", instances=instances, static_overlay_share=round(float(overlay.mean()), 4),
                    camera_defects=defects.as_dict(), skipped_frames=skipped,
                    frames=None if selection is None else [selection.start, selection.stop, selection.step])
    return TrackingResult(drift=drift, instances=records, n_frames=n, shape=tuple(frames.shape[1:]),
                          settings=settings, seconds={k: round(v, 3) for k, v in seconds.items()},
                          frame_numbers=numbers)


def track_lines(stack, model=None, *, max_distance: float = 10.0, gap_frames: int = 1, min_length: float = 8.0,
                contrast: str = "auto", scale="auto", flips: int = 1, device="cpu", instances: str = "ridges",
                frames: slice | None = None, signal=None, on_progress=None, should_stop=None) -> TrackingResult:
    """Track the dislocations of a time series: drift, detection, instances, tracks.

    Parameters
    ----------
    stack : str, Path or array_like, shape (n_frames, rows, cols)
        See :func:`read_stack`.
    model : DislocationUNet, optional
        Default: the selected detector version.
    max_distance : float
        Largest move of a line's centroid between two linked frames (px, drift removed; between two frames
        taken, with ``frames`` taking every n-th).
    gap_frames : int
        Frames (of those taken) a line may be missed and still be linked (0: none).
    min_length : float
        Shorter branches are not instances (px).
    contrast, scale :
        As for :func:`~napari_stereo_tem.stereo.detect.detect_lines`; decided on the first frame.
    flips : {1, 2, 4}
        Mirrored copies averaged by the detector (1 is fastest).
    device : str
    instances : {"ridges", "skeleton"}
        How a frame's dislocations become instances (:func:`frame_lines`).
    frames : slice, optional
        Only these frames of the series (e.g. every fifth of a long video,
        :func:`~.frame_stack.parse_frames`); the others are not read.
    signal : int or str, optional
        Which movie of a microscope file holding several (number or title; see :func:`read_stack`).
    on_progress, should_stop : callable, optional
        Progress callback and cancel check (:func:`~napari_stereo_tem.progress.drive`).

    Returns
    -------
    TrackingResult
    """
    return drive(iter_track_lines(stack, model, max_distance=max_distance, gap_frames=gap_frames,
                                  min_length=min_length, contrast=contrast, scale=scale, flips=flips,
                                  device=device, instances=instances, frames=frames, signal=signal),
                 on_progress, should_stop=should_stop)


def _track_motion(mine: list) -> tuple[np.ndarray, np.ndarray]:
    """Frames of a track and its position along them, integrated from line-to-line steps.

    The first position is the first centroid; each later one adds the step
    between the two lines (:func:`~napari_stereo_tem.stereo.line_motion.curve_displacement`),
    so the jitter of a branch's ends along the line does not count as motion.
    """
    from .line_motion import curve_displacement

    frames = np.array([i["frame"] for i in mine], float)
    position = [np.array([mine[0]["x"], mine[0]["y"]])]
    for before, after in zip(mine[:-1], mine[1:]):
        if "specimen_points" in before and "specimen_points" in after:
            step = curve_displacement(before["specimen_points"], after["specimen_points"])
        else:
            step = np.array([after["x"] - before["x"], after["y"] - before["y"]])
        position.append(position[-1] + step)
    return frames, np.array(position)


def _by_track(result: TrackingResult):
    for track_id in sorted({inst["track_id"] for inst in result.instances}):
        yield track_id, sorted((i for i in result.instances if i["track_id"] == track_id), key=lambda i: i["frame"])


def track_rows(result: TrackingResult) -> list[dict]:
    """One row per track and frame, with the keys of :data:`TRACK_COLUMNS`.

    ``x``, ``y``: centroid in the specimen's frame (px); ``length``: spline length
    (px); ``velocity_x``, ``velocity_y``: px/frame, drift removed, from the steps
    between the track's lines (central differences over its frames; NaN for a
    track seen once).
    """
    rows = []
    for track_id, mine in _by_track(result):
        frames, position = _track_motion(mine)
        if len(mine) >= 2:
            velocity = np.column_stack([np.gradient(position[:, 0], frames), np.gradient(position[:, 1], frames)])
        else:
            velocity = np.full((1, 2), np.nan)
        for inst, (vx, vy) in zip(mine, velocity):
            rows.append({"track_id": track_id, "frame": inst["frame"], "x": inst["x"], "y": inst["y"],
                         "length": inst["length"], "velocity_x": float(vx), "velocity_y": float(vy)})
    return rows


def in_physical_units(rows: list[dict], *, pixel_size_nm: float | None = None,
                      frame_interval_s: float | None = None) -> tuple[list[dict], list[str]]:
    """Rows of :func:`track_rows` (or :func:`track_summary`) with their lengths in nm and velocities in nm/s.

    ``length_nm`` (or ``mean_length_nm``) is added where the pixel size is known; ``velocity_x_nm_s``,
    ``velocity_y_nm_s`` (and ``speed_nm_s`` where the rows carry a speed) where the frame interval is known
    as well. Returns the new rows and the names of the columns added (none without a pixel size).
    """
    added: list[str] = []
    if not pixel_size_nm:
        return [dict(r) for r in rows], added
    nm, per_s = float(pixel_size_nm), (float(pixel_size_nm) / float(frame_interval_s) if frame_interval_s else None)
    out = []
    for r in rows:
        row = dict(r)
        for key in ("length", "mean_length"):
            if key in r:
                row[f"{key}_nm"] = float(r[key]) * nm
        if per_s is not None:
            for key in ("velocity_x", "velocity_y", "speed"):
                if key in r:
                    row[f"{key}_nm_s"] = float(r[key]) * per_s
        out.append(row)
    if out:
        added = [k for k in out[0] if k not in rows[0]]
    return out, added


def track_summary(result: TrackingResult) -> list[dict]:
    """Per track: first and last frame, frames seen, mean velocity (least squares over its frames), mean length."""
    out = []
    for track_id, mine in _by_track(result):
        frames, position = _track_motion(mine)
        if len(mine) >= 2 and np.ptp(frames) > 0:
            velocity = np.polyfit(frames, position, 1)[0]
        else:
            velocity = np.full(2, np.nan)
        out.append({"track_id": track_id, "first_frame": int(frames[0]), "last_frame": int(frames[-1]),
                    "n_frames": len(mine), "velocity_x": float(velocity[0]), "velocity_y": float(velocity[1]),
                    "speed": float(np.hypot(*velocity)), "mean_length": float(np.mean([i["length"] for i in mine]))})
    return out


def median_speed(summary: list[dict], *, min_frames: int = 3) -> tuple[int, float | None, float | None]:
    """The tracks of :func:`track_summary` seen in ``min_frames`` frames or more: how many, and the speed of
    the median one (px/frame, and nm/s where the summary went through :func:`in_physical_units` with a frame
    interval; ``None`` where there is none)."""
    seen = sorted((t for t in summary if t["n_frames"] >= min_frames), key=lambda t: t["speed"])
    if not seen:
        return 0, None, None
    middle = seen[len(seen) // 2]
    return len(seen), middle["speed"], middle.get("speed_nm_s")
