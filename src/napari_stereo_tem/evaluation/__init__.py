"""Evaluation: metrics over directories of cases, a 3D line metric, the tomography baseline (DESIGN 3.10).

Modules: :mod:`.lines3d` (distance between 3D line sets), :mod:`.cases`
(scoring a directory of stereo or particle cases against their truth; the
``stereo-tem evaluate`` command), :mod:`.table` (Markdown and CSV tables),
:mod:`.tomography` (WBP / SART from a tilt series against stereo from two views).
"""

from .cases import evaluate_directory, evaluate_directory_iter, find_cases
from .lines3d import densify_lines, line_set_distance
from .table import markdown_table, write_tables
from .tomography import compare_tomography, compare_tomography_iter

__all__ = ["densify_lines", "line_set_distance", "find_cases", "evaluate_directory", "evaluate_directory_iter",
           "markdown_table", "write_tables", "compare_tomography", "compare_tomography_iter"]
