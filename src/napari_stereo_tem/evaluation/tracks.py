"""Scores of a tracked time series against the truth of a synthetic one (DESIGN 3.13).

Typical use::

    series = make_time_series(3)
    result = track_lines(series.frames)
    score_tracks(result, series)   # {"link_accuracy": ..., "velocity_error": ..., ...}
"""

from __future__ import annotations

import numpy as np

__all__ = ["assign_to_truth", "score_tracks"]


def assign_to_truth(result, series, *, tolerance: float = 3.0) -> dict:
    """The detected instance of every true line in every frame it is present in.

    An instance belongs to the true line of its frame that its points lie
    closest to on average, if that mean distance is at most ``tolerance`` px;
    where several instances belong to one line in a frame (a broken line), the
    longest one counts.

    Returns
    -------
    dict
        ``(line_id, frame) -> instance`` (a dict of ``result.instances``).
    """
    from scipy.spatial import cKDTree

    trees = {}
    for line in series.lines:
        for frame, curve in zip(line["frames"], line["curves"]):
            trees.setdefault(frame, []).append((line["line_id"], cKDTree(curve)))
    best: dict = {}
    for inst in result.instances:
        candidates = trees.get(inst["frame"], [])
        if not candidates:
            continue
        means = [float(np.mean(tree.query(inst["points"])[0])) for _, tree in candidates]
        k = int(np.argmin(means))
        if means[k] > tolerance:
            continue
        key = (candidates[k][0], inst["frame"])
        if key not in best or inst["length"] > best[key]["length"]:
            best[key] = inst
    return best


def score_tracks(result, series, *, tolerance: float = 3.0) -> dict:
    """Tracking accuracy, velocity error and drift error of ``result`` on the synthetic ``series``.

    Returns
    -------
    dict
        ``link_accuracy``: of the links between consecutive detections of a true
        line (across frames where it was missed), the fraction that carry one track id;
        ``frames_in_main_track``: of the frames where a true line was detected,
        the fraction in the track holding most of its detections;
        ``detected``: fraction of (line, frame) with an instance (the detector's share);
        ``velocity_error``: mean over true lines of ``|v_track - v_true|`` (px/frame),
        ``v_track`` the least-squares velocity of the track holding most of the
        line's instances; ``speed_error_rel``: mean ``|v_track - v_true| / |v_true|``;
        ``drift_error``: largest ``|drift - true drift|`` over frames (px); with only some frames tracked
        (``result.frame_numbers``), over those;
        ``n_true_lines``, ``n_tracks``.
    """
    from ..stereo.tracking import track_summary

    found = assign_to_truth(result, series, tolerance=tolerance)
    summary = {row["track_id"]: row for row in track_summary(result)}
    taken = {int(f) for f in result.frame_numbers}   # every frame, or the frames tracked (e.g. every other)
    links = correct = present = detected = in_main = 0
    errors, relative = [], []
    for line in series.lines:
        frames = [f for f in line["frames"] if f in taken]
        present += len(frames)
        ids = [found[(line["line_id"], f)]["track_id"] for f in frames if (line["line_id"], f) in found]
        detected += len(ids)
        links += max(len(ids) - 1, 0)
        correct += sum(a == b for a, b in zip(ids[:-1], ids[1:]))
        if ids:
            track = max(set(ids), key=ids.count)
            in_main += ids.count(track)
            estimate = np.array([summary[track]["velocity_x"], summary[track]["velocity_y"]])
            truth = np.asarray(line["velocity"], float)
            if np.all(np.isfinite(estimate)):
                errors.append(float(np.linalg.norm(estimate - truth)))
                relative.append(errors[-1] / max(float(np.linalg.norm(truth)), 1e-9))
    truth = np.asarray(series.drift)[np.asarray(result.frame_numbers, int)]
    drift_error = float(np.max(np.linalg.norm(np.asarray(result.drift) - truth, axis=1)))
    return {"link_accuracy": correct / links if links else float("nan"),
            "frames_in_main_track": in_main / detected if detected else float("nan"),
            "detected": detected / present if present else float("nan"),
            "velocity_error": float(np.mean(errors)) if errors else float("nan"),
            "speed_error_rel": float(np.mean(relative)) if relative else float("nan"),
            "drift_error": drift_error, "n_true_lines": len(series.lines), "n_tracks": result.n_tracks}
