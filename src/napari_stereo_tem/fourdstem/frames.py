"""What dask slices: a ``.npy`` file read by ``pread``, one HDF5 dataset, an in-memory array.

A memory map handed to ``dask.array.from_array`` is copied into RAM (DESIGN
section 7), so arrays and files are wrapped in small objects exposing only
``shape``/``dtype``/``ndim``/``__getitem__``; the file-backed ones pickle as a
path, so dask.distributed workers on the same file system read them themselves.
"""

from __future__ import annotations

import mmap
import os

import dask.array as da
import numpy as np

__all__ = ["NpyFrames", "H5Frames", "ArrayFrames", "CHUNK_BYTES"]

#: Target bytes of one dask chunk when this module chooses the chunking.
CHUNK_BYTES = 64 * 2**20


class NpyFrames:
    """A read-only ``.npy`` file that dask can slice without copying it whole.

    Only ``shape``, ``dtype``, ``ndim`` and ``__getitem__`` are exposed. A block of
    a C-ordered 4D file is read with one ``pread`` per pattern (its detector rows
    only), so the file is never mapped and its pages never count in the process's
    resident memory; other keys map the file, copy the block and unmap it.
    Pickles as its path, so dask.distributed workers on the same file system read
    it themselves.
    """

    def __init__(self, path, *, shape, dtype, offset: int, fortran_order: bool = False):
        self.path = str(path)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)
        self.offset = int(offset)
        self.order = "F" if fortran_order else "C"

    @classmethod
    def open(cls, path) -> "NpyFrames":
        mm = np.load(path, mmap_mode="r")
        try:
            return cls(path, shape=mm.shape, dtype=mm.dtype, offset=mm.offset,
                       fortran_order=mm.flags.f_contiguous and not mm.flags.c_contiguous)
        finally:
            del mm

    def __getitem__(self, key):
        boxes = self._boxes(key)
        if boxes is not None and boxes[1].step == 1:  # bands of whole scan rows: pread
            return self._pread(*boxes)
        # strided or other keys: map the file without read-ahead (each page read is one the key needs)
        with open(self.path, "rb") as fh:
            mapping = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            if hasattr(mapping, "madvise"):
                mapping.madvise(mmap.MADV_RANDOM)
            view = np.ndarray(self.shape, dtype=self.dtype, buffer=mapping, offset=self.offset, order=self.order)
            out = np.array(view[key])
            del view
        finally:
            mapping.close()  # unmapped: its pages leave this process's resident memory
        return out

    def read_strided(self, key) -> np.ndarray:
        """Read a strided subset (a live preview) through a mapping kept open between calls.

        Pages read once stay mapped, so the next move of a drag costs a copy, not
        page faults; the mapping holds at most the pages of the strided patterns
        a drag has reached (their resident memory is the price of the speed).
        Not pickled; :meth:`close_preview` drops it.
        """
        view = getattr(self, "_preview_view", None)
        if view is None:
            with open(self.path, "rb") as fh:
                mapping = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            if hasattr(mapping, "madvise"):
                mapping.madvise(mmap.MADV_RANDOM)
            view = np.ndarray(self.shape, dtype=self.dtype, buffer=mapping, offset=self.offset, order=self.order)
            self._preview_view = view
        return np.array(view[key])

    def close_preview(self) -> None:
        """Unmap what :meth:`read_strided` mapped (its pages leave this process's resident memory)."""
        view = self.__dict__.pop("_preview_view", None)
        if view is not None:
            mapping = view.base
            del view
            mapping.close()

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_preview_view"}

    def prefetch(self, key) -> None:
        """Ask the kernel to read the patterns' detector rows of ``key`` in the background (no memory here).

        The live preview calls it with the rows around the disc, so that the next
        moves of a drag find their pages in the page cache.
        """
        boxes = self._boxes(key)
        if boxes is None or not hasattr(os, "posix_fadvise"):
            return
        ys, xs, rows, _, _ = boxes
        dy, dx = self.shape[2:]
        item = self.dtype.itemsize
        length = len(rows) * dx * item
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for y in ys:
                for x in xs:
                    offset = self.offset + (((y * self.shape[1] + x) * dy) + rows.start) * dx * item
                    os.posix_fadvise(fd, offset, length, os.POSIX_FADV_WILLNEED)
        finally:
            os.close(fd)

    def _boxes(self, key):
        """``(scan_y, scan_x, rows, cols, squeeze)`` for a C-ordered 4D file sliced by ints and slices, else None."""
        if self.order != "C" or self.ndim != 4:
            return None
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis or k is None for k in key) or len(key) > 4:
            return None
        key = key + (slice(None),) * (4 - len(key))
        ranges, squeeze = [], []
        for axis, k in enumerate(key):
            if isinstance(k, (int, np.integer)):
                i = int(k) + (self.shape[axis] if k < 0 else 0)
                if not 0 <= i < self.shape[axis]:
                    raise IndexError(f"index {k} is out of bounds for axis {axis} of size {self.shape[axis]}")
                ranges.append(range(i, i + 1))
                squeeze.append(axis)
            elif isinstance(k, slice):
                ranges.append(range(*k.indices(self.shape[axis])))
            else:
                return None
        if ranges[2].step != 1 and len(ranges[2]) > 1:
            return None
        return ranges[0], ranges[1], ranges[2], ranges[3], tuple(squeeze)

    def _pread(self, ys, xs, rows, cols, squeeze):
        """Read the detector rows ``rows`` of each selected pattern with one ``pread`` each.

        Nothing is mapped, so the file's pages never count in this process's
        resident memory, and the kernel reads ahead only where reads are sequential.
        """
        dy, dx = self.shape[2:]
        item = self.dtype.itemsize
        out = np.empty((len(ys), len(xs), len(rows), dx), dtype=self.dtype)
        if len(rows) and len(ys) and len(xs):
            r0 = rows.start
            length = len(rows) * dx * item
            fd = os.open(self.path, os.O_RDONLY)
            try:
                for j, y in enumerate(ys):
                    base = self.offset + ((y * self.shape[1]) * dy + r0) * dx * item
                    if xs.step == 1 and len(rows) == dy:  # whole patterns of a scan row: one read
                        _read_exact(fd, out[j], base + xs.start * dy * dx * item)
                        continue
                    for i, x in enumerate(xs):
                        _read_exact(fd, out[j, i], base + x * dy * dx * item, length)
            finally:
                os.close(fd)
        if cols != range(dx):
            out = out[..., cols.start:cols.stop:cols.step] if len(cols) else out[..., :0]
        if squeeze:
            out = out.reshape([n for a, n in enumerate(out.shape) if a not in squeeze])
        return out

    def __repr__(self) -> str:
        return f"NpyFrames({self.path!r}, shape={self.shape}, dtype={self.dtype})"


def _read_exact(fd: int, target: np.ndarray, offset: int, length: int | None = None) -> None:
    view = memoryview(target).cast("B")
    length = view.nbytes if length is None else length
    done = 0
    while done < length:
        n = os.preadv(fd, [view[done:length]], offset + done)
        if n <= 0:
            raise OSError(f"the file ends before byte {offset + length} (truncated?)")
        done += n


class ArrayFrames:
    """An in-memory array that dask slices without copying it (``from_array`` copies ndarrays).

    Exposes only ``shape``/``dtype``/``ndim``/``__getitem__`` (which returns views).
    """

    def __init__(self, array: np.ndarray):
        self.array = array
        self.shape = tuple(array.shape)
        self.dtype = array.dtype
        self.ndim = array.ndim

    def __getitem__(self, key):
        return self.array[key]


class H5Frames:
    """One dataset of an HDF5 file, opened for each read (so it pickles as a path and a name)."""

    def __init__(self, path, name: str, *, shape, dtype):
        self.path, self.name = str(path), str(name)
        self.shape = tuple(int(v) for v in shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key):
        import h5py

        _hdf5_filters()
        with h5py.File(self.path, "r") as fh:
            return fh[self.name][key]


def _hdf5_filters() -> None:
    """Register the HDF5 compression filters of detector files (DECTRIS Arina: bitshuffle/LZ4)."""
    try:
        import hdf5plugin  # noqa: F401 - importing registers the filters with h5py
    except ImportError:
        pass


def _auto_chunks(shape, dtype) -> tuple:
    """Whole detector frames, whole scan rows, about :data:`CHUNK_BYTES` per chunk."""
    frame = int(np.prod(shape[2:])) * np.dtype(dtype).itemsize
    row = max(frame * shape[1], 1)
    rows = int(max(1, min(shape[0], CHUNK_BYTES // row)))
    if rows >= 1 and CHUNK_BYTES // row >= 1:
        return (rows, shape[1], shape[2], shape[3])
    cols = int(max(1, min(shape[1], CHUNK_BYTES // max(frame, 1))))
    return (1, cols, shape[2], shape[3])


def _auto_chunks_nd(shape, dtype) -> tuple:
    """About :data:`CHUNK_BYTES` per chunk, cut along the first stored axis only."""
    per = int(np.prod(shape[1:])) * np.dtype(dtype).itemsize
    return (int(max(1, min(shape[0], CHUNK_BYTES // max(per, 1)))),) + tuple(int(s) for s in shape[1:])


def _to_dask(array, *, name=False) -> da.Array:
    if isinstance(array, da.Array):
        return array
    chunks = _auto_chunks(array.shape, array.dtype) if len(array.shape) == 4 else "auto"
    if isinstance(array, np.ndarray):
        array = ArrayFrames(array)
    if isinstance(array, da.Array):
        return array
    return da.from_array(array, chunks=chunks, name=name)
