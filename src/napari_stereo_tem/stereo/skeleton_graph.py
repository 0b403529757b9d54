"""Branches of a 2D skeleton as pixel paths, in numpy and SciPy (no JIT compilation).

:class:`SkeletonGraph` gives the paths skan's ``Skeleton`` gives (same pixel
graph: 8-connected, junction clusters reduced to their minimum spanning tree;
same walk from every end and junction, then the isolated cycles; same order),
for the few methods the pipeline uses: ``n_paths``, ``degrees``, ``path``,
``path_coordinates`` and ``path_lengths``. skan builds its graph with numba
kernels and a jitclass that compile on first use in every process (several
seconds, on napari's UI thread too); a command-line run pays that on each
start. The walk here is a plain loop over skeleton pixels, a few milliseconds
for the skeleton of a 512x512 micrograph.

:func:`skeleton_branches` is :func:`napari_stereo_tem.stereo.detection.skeleton_polylines`
(spur pruning included) on this graph; a test checks the two agree.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from ..checks import InputError

__all__ = ["SkeletonGraph", "skeleton_branches", "split_at_corners"]

_OFFSETS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


def _pixel_graph(skeleton: np.ndarray) -> tuple[sparse.csr_matrix, np.ndarray]:
    """8-connected graph of the skeleton pixels (raster order), edge weights 1 or sqrt(2)."""
    rows, cols = skeleton.shape
    yy, xx = np.nonzero(skeleton)
    index = np.full(skeleton.shape, -1, dtype=np.int64)
    index[yy, xx] = np.arange(len(yy))
    src, dst, weight = [], [], []
    for dy, dx in _OFFSETS:
        ny, nx = yy + dy, xx + dx
        inside = (ny >= 0) & (ny < rows) & (nx >= 0) & (nx < cols)
        j = np.full(len(yy), -1, dtype=np.int64)
        j[inside] = index[ny[inside], nx[inside]]
        ok = j >= 0
        src.append(np.flatnonzero(ok))
        dst.append(j[ok])
        weight.append(np.full(int(ok.sum()), np.hypot(dy, dx)))
    n = len(yy)
    graph = sparse.csr_matrix((np.concatenate(weight), (np.concatenate(src), np.concatenate(dst))), shape=(n, n))
    return graph, np.column_stack([yy, xx])


def _mst_junctions(graph: sparse.csr_matrix) -> sparse.csr_matrix:
    """Keep, between pixels of degree 3 or more, only the edges of their minimum spanning tree (as skan)."""
    csc_graph = graph.tocsc()
    degrees = np.asarray(graph.astype(bool).astype(int).sum(axis=0))
    non_junction = np.flatnonzero(degrees < 3)
    for start, end in zip(csc_graph.indptr[non_junction], csc_graph.indptr[non_junction + 1]):
        csc_graph.data[start:end] = 0
    csr_graph = csc_graph.tocsr()
    for start, end in zip(csr_graph.indptr[non_junction], csr_graph.indptr[non_junction + 1]):
        csr_graph.data[start:end] = 0
    csr_graph.eliminate_zeros()
    mst = csgraph.minimum_spanning_tree(csr_graph)
    non_tree_edges = csr_graph - (mst + mst.T)
    return graph - non_tree_edges


class SkeletonGraph:
    """The branches of a 2D skeleton image.

    Parameters
    ----------
    skeleton : ndarray of bool, shape (rows, cols)
        A one-pixel-wide skeleton (e.g. from :func:`skimage.morphology.skeletonize`).

    Attributes
    ----------
    coordinates : ndarray of int, shape (n_pixels, 2)
        ``(row, col)`` of each skeleton pixel, in raster order.
    degrees : ndarray of int, shape (n_pixels,)
        Number of graph neighbours of each pixel.
    n_paths : int
        Number of branches (pixel paths between ends and junctions, and isolated cycles).
    """

    def __init__(self, skeleton):
        skeleton = np.asarray(skeleton, dtype=bool)
        if skeleton.ndim != 2:
            raise InputError(f"skeleton must be 2-D, got shape {skeleton.shape}")
        graph, self.coordinates = _pixel_graph(skeleton)
        self.graph = _mst_junctions(graph).tocsr()
        self.degrees = np.diff(self.graph.indptr)
        self._paths = self._walk_all()
        self.n_paths = len(self._paths)

    def _walk_all(self) -> list[np.ndarray]:
        indptr, indices = self.graph.indptr, self.graph.indices
        degrees = self.degrees
        visited: set = set()
        paths = []

        def neighbours(node):
            return indices[indptr[node]:indptr[node + 1]]

        def walk(node, neighbour):
            path, start = [node], node
            while (node, neighbour) not in visited:
                visited.add((node, neighbour))
                visited.add((neighbour, node))
                path.append(neighbour)
                if degrees[neighbour] != 2 or neighbour == start:
                    break
                n1, n2 = neighbours(neighbour)
                node, neighbour = neighbour, (n1 if n1 != node else n2)
            return np.asarray(path, dtype=np.int64)

        for node in np.flatnonzero((degrees > 2) | (degrees == 1)):
            for neighbour in neighbours(node):
                if (node, neighbour) not in visited:
                    paths.append(walk(int(node), int(neighbour)))
        for node in np.flatnonzero(degrees > 0):  # what is left lies on isolated cycles
            neighbour = int(neighbours(node)[0])
            if (int(node), neighbour) not in visited:
                paths.append(walk(int(node), neighbour))
        return paths

    def path(self, index: int) -> np.ndarray:
        """Pixel indices (rows of :attr:`coordinates`) of branch ``index``, in order."""
        return self._paths[index]

    def path_coordinates(self, index: int) -> np.ndarray:
        """``(row, col)`` of the pixels of branch ``index``, in order, shape ``(n, 2)``."""
        return self.coordinates[self._paths[index]].astype(np.float64)

    def path_lengths(self) -> np.ndarray:
        """Length of every branch in pixels (1 per straight step, sqrt(2) per diagonal one)."""
        # the edge weights are the distances between neighbouring pixel centres
        return np.array([float(np.hypot(*np.diff(self.coordinates[p], axis=0).T).sum()) for p in self._paths])


def _drop_lone_pixels(skeleton: np.ndarray) -> np.ndarray:
    from scipy.ndimage import convolve

    neighbours = convolve(skeleton.astype(np.uint8), np.ones((3, 3), np.uint8), mode="constant") - skeleton
    return skeleton & (neighbours > 0)


def _prune_spurs(skeleton: np.ndarray, min_branch_length: float, max_rounds: int = 10, *,
                 graph_class=SkeletonGraph) -> SkeletonGraph | None:
    """Remove short branches with a free end (spurs, isolated bits) until none is left.

    ``graph_class`` builds the branch graph of a skeleton (:class:`SkeletonGraph`;
    the tests pass skan's ``Skeleton`` as the reference).
    """
    from skimage.morphology import skeletonize

    for _ in range(max_rounds):
        skeleton = _drop_lone_pixels(skeleton)
        if not skeleton.any():
            return None
        graph = graph_class(skeleton)
        lengths = graph.path_lengths()
        drop = []
        for i in range(graph.n_paths):
            nodes = graph.path(i)
            free_end = graph.degrees[nodes[0]] == 1 or graph.degrees[nodes[-1]] == 1
            if free_end and lengths[i] < min_branch_length:
                drop.append(i)
        if not drop:
            return graph
        skeleton = skeleton.copy()
        for i in drop:
            nodes = graph.path(i)
            keep = graph.degrees[nodes] > 2  # junction pixels stay
            yx = np.round(graph.path_coordinates(i)).astype(int)[~keep]
            skeleton[yx[:, 0], yx[:, 1]] = False
        skeleton = skeletonize(skeleton)
    skeleton = _drop_lone_pixels(skeleton)
    return graph_class(skeleton) if skeleton.any() else None


def skeleton_branches(mask, *, min_branch_length: float = 5) -> list[np.ndarray]:
    """One polyline per skeleton branch of a binary mask, junctions kept, spurs removed.

    What :func:`napari_stereo_tem.stereo.detection.skeleton_polylines` returns; the
    spurs are pruned as skan's graph would prune them, without compiling anything.

    Parameters
    ----------
    mask : array_like of bool, shape (rows, cols)
        Dislocation pixels (e.g. ``labels == 1``).
    min_branch_length : float
        Branches ending in a free end shorter than this (pixels) are removed,
        repeatedly until none is left.

    Returns
    -------
    list of ndarray, float64, shape (n, 2)
        ``(x, y)`` pixel coordinates along each branch, in path order.
    """
    from skimage.morphology import skeletonize

    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise InputError(f"mask must be 2-D, got shape {mask.shape}")
    graph = _prune_spurs(skeletonize(mask > 0), float(min_branch_length))
    if graph is None:
        return []
    return [np.ascontiguousarray(graph.path_coordinates(i)[:, ::-1], dtype=np.float64) for i in range(graph.n_paths)]


def split_at_corners(line: np.ndarray, *, max_turn_deg: float, window: int = 5) -> list:
    """Cut a chain of points where its direction over ``window`` points turns by more than ``max_turn_deg``.

    A dislocation line is smooth; a corner in a skeleton path is most often where
    the path runs from one line onto another through a shallow crossing. The pieces
    share the corner point.
    """
    if len(line) < 2 * window + 1:
        return [line]
    before = line[window:-window] - line[:-2 * window]
    after = line[2 * window:] - line[window:-window]
    cosine = np.sum(before * after, axis=1) / np.maximum(
        np.linalg.norm(before, axis=1) * np.linalg.norm(after, axis=1), 1e-12)
    sharp = cosine < np.cos(np.deg2rad(max_turn_deg))
    if not sharp.any():
        return [line]
    cuts = []
    for run in np.split(np.flatnonzero(sharp), np.flatnonzero(np.diff(np.flatnonzero(sharp)) > 1) + 1):
        turn = run[np.argmin(cosine[run])]
        cuts.append(int(turn) + window)
    pieces, start = [], 0
    for cut in cuts:
        pieces.append(line[start:cut + 1])
        start = cut
    pieces.append(line[start:])
    return [piece for piece in pieces if len(piece) >= 2]
