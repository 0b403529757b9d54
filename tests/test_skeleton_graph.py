"""Skeleton branches without JIT: the same paths as skan's Skeleton, the same polylines as pruning with skan."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import skan
from scipy import ndimage as ndi
from skimage.morphology import skeletonize

from napari_stereo_tem.stereo.detection import skeleton_polylines
from napari_stereo_tem.stereo.skeleton_graph import SkeletonGraph, _prune_spurs, skeleton_branches
from napari_stereo_tem.synth import make_stereo_pair


def _drawn(text: str) -> np.ndarray:
    return np.array([[c == "#" for c in row] for row in textwrap.dedent(text).strip().splitlines()])


T_JUNCTION = _drawn("""
    .........
    .#######.
    ....#....
    ....#....
    ....#....
    .........
""")
CYCLE = _drawn("""
    .......
    ..###..
    .#...#.
    .#...#.
    ..###..
    .......
""")
CROSS_AND_DIAGONAL = _drawn("""
    ..........
    ....#.....
    ....#.....
    .#######..
    ....#...#.
    ....#....#
""")


def _polylines_pruned_with_skan(mask, length):
    """The reference: spurs pruned on skan's graphs, branches as (x, y) polylines."""
    graph = _prune_spurs(skeletonize(mask > 0), length, graph_class=skan.Skeleton)
    if graph is None:
        return []
    return [np.ascontiguousarray(graph.path_coordinates(i)[:, ::-1], dtype=np.float64) for i in range(graph.n_paths)]


def _same_as_skan(skeleton):
    ours, theirs = SkeletonGraph(skeleton), skan.Skeleton(skeleton)
    assert ours.n_paths == theirs.n_paths
    np.testing.assert_array_equal(ours.degrees, theirs.degrees)
    for i in range(ours.n_paths):
        np.testing.assert_array_equal(ours.path(i), theirs.path(i))
        np.testing.assert_array_equal(ours.path_coordinates(i), theirs.path_coordinates(i))
    np.testing.assert_allclose(ours.path_lengths(), theirs.path_lengths())


@pytest.mark.parametrize("skeleton", [T_JUNCTION, CYCLE, CROSS_AND_DIAGONAL], ids=["T", "cycle", "cross"])
def test_hand_drawn_skeletons_give_skans_paths(skeleton):
    _same_as_skan(skeleton)


def test_t_junction_has_three_branches_meeting_at_the_junction():
    graph = SkeletonGraph(T_JUNCTION)
    assert graph.n_paths == 3
    assert sorted(graph.path_lengths()) == [3.0, 3.0, 3.0]
    for i in range(3):  # every branch holds the junction pixel at one of its ends
        ends = graph.path_coordinates(i)[[0, -1]]
        assert (ends == (1, 4)).all(axis=1).any()


@pytest.mark.parametrize("seed", [9_000_301, 9_000_302, 9_000_303])
def test_generated_masks_give_the_polylines_of_skan(seed):
    sample = make_stereo_pair(seed, shape=(192, 192), loops=True)
    rng = np.random.default_rng(seed)
    blobs = ndi.gaussian_filter(rng.random((96, 96)), 3) > 0.52  # junction clusters and cycles
    for mask in (sample.mask_left == 1, sample.mask_right > 0, blobs):
        _same_as_skan(skeletonize(mask))
        for length in (5.0, 10.0):
            ours, theirs = skeleton_branches(mask, min_branch_length=length), _polylines_pruned_with_skan(
                mask, length)
            assert len(ours) == len(theirs)
            for a, b in zip(ours, theirs):
                np.testing.assert_array_equal(a, b)
            for a, b in zip(skeleton_polylines(mask, min_branch_length=length), ours):
                np.testing.assert_array_equal(a, b)


def test_empty_and_bad_masks():
    assert skeleton_branches(np.zeros((16, 16), bool)) == []
    with pytest.raises(ValueError, match="2-D"):
        skeleton_branches(np.zeros((2, 16, 16), bool))


def test_lines_from_disparity_compiles_nothing():
    """The reconstruction's last stage imports neither skan nor numba (no JIT on every start)."""
    code = textwrap.dedent("""
        import sys
        import numpy as np
        from napari_stereo_tem.stereo.pipeline import lines_from_disparity
        mask = np.zeros((64, 64), bool)
        mask[10:50, 20] = True
        lines = lines_from_disparity(mask, np.where(mask, 2.0, np.nan), 8.0)
        assert len(lines) == 1, lines
        print(sorted(m for m in ("skan", "numba") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
