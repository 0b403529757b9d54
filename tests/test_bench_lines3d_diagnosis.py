"""The 3D-line loss decomposition of benchmarks/bench_lines3d.py on a hand-made scene with known causes."""

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_lines3d import diagnose_pair  # noqa: E402

from napari_stereo_tem.stereo.projection import project_points, triangulate  # noqa: E402

ANGLE = 8.0
SHAPE = (100, 160)
AXIS = (SHAPE[1] - 1) / 2.0


def _vertical(x_left, z, rows=(10, 90)):
    """A true 3D line seen at column ``x_left`` in the left view, at depth ``z``."""
    y = np.arange(rows[0], rows[1] + 1, dtype=float)
    d = 2 * np.sin(np.deg2rad(ANGLE / 2)) * z
    return triangulate(np.full(len(y), x_left), y, np.full(len(y), x_left + d), ANGLE, axis_col=AXIS)


def _entry(line_3d, reason=None, line=-1, lr=False):
    xy = project_points(line_3d, -ANGLE / 2, axis_col=AXIS)
    n = len(xy)
    return {"x": xy[:, 0], "y": xy[:, 1], "reason": reason, "measured": np.ones(n, bool),
            "lr_rejected": np.full(n, lr), "line": np.full(n, line), "start": np.zeros(n),
            "d": np.zeros(n), "std": np.full(n, 0.1)}


def test_diagnosis_names_the_cause_of_each_loss():
    found, dropped, missed, shifted = _vertical(30, 5.0), _vertical(60, -5.0), _vertical(90, 0.0), _vertical(120, 3.0)
    also_found = _vertical(10, 1.0)  # two right lines: the depth offset the metric removes stays 0
    truth = [found, dropped, missed, shifted, also_found]
    labels = np.zeros(SHAPE, np.uint8)
    for line in (found, dropped, shifted, also_found):  # 'missed' is not detected in the left view
        xy = np.round(project_points(line, -ANGLE / 2, axis_col=AXIS)).astype(int)
        labels[xy[:, 1], xy[:, 0]] = 1
    wrong_depth = shifted + [0.0, 0.0, 12.0]  # on its line in (x, y) of the left view, 12 px too deep
    false_line = _vertical(150, 0.0, rows=(20, 40))
    rec = SimpleNamespace(labels_left=labels, lines=[found, wrong_depth, false_line, also_found])
    report = [_entry(found, line=0), _entry(dropped, reason="few_inliers", lr=True),
              _entry(shifted, line=1), _entry(false_line, line=2), _entry(also_found, line=3)]
    sample = SimpleNamespace(lines_3d=truth)
    coverage, _, points, depth_sq, line_sq, n_true, n_pred = diagnose_pair(rec, sample, ANGLE, report)
    per_line = n_true / 5
    assert abs(coverage["lr_check"] - per_line) <= 3
    assert abs(coverage["not_detected"] - per_line) <= 3
    assert coverage["wrong_depth"] + coverage["wrong_partner"] >= per_line - 6
    assert coverage["few_inliers"] == coverage["short"] == coverage["no_branch"] == 0
    assert n_pred == sum(map(len, rec.lines))
    assert points["false_line"] == len(false_line)
    assert points["other"] + points["line_end"] + points["row_parallel"] + points["wrong_partner"] == len(wrong_depth)
    assert line_sq[0] < 1e-6 < line_sq[1] and line_sq[3] < 1e-6
    assert abs(sum(depth_sq.values()) - 12.0 ** 2 * len(wrong_depth)) < 1e-6 * len(wrong_depth)
