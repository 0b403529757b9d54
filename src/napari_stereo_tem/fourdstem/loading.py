"""Open 4D-STEM datasets lazily as dask arrays ``(scan_y, scan_x, det_y, det_x)``.

Files go through RosettaSciIO (MerlinEM ``.mib`` with or without ``.hdr``,
NanoMegas ``.blo``, ``.hspy``/``.zspy``, ``.emd``/``.h5`` and the other formats
it reads), ``.npy`` is memory-mapped and ``.zarr`` opened in place; nothing is
read whole unless ``lazy=False``. Arrays (numpy, dask) and HyperSpy/pyxem
signals are accepted as they are.

Which axes are the scan and which the detector is decided from the file's own
metadata (axis names, navigation/signal flags; :mod:`.axes`), never by position
alone when the file says more; ``metadata["axes_decision"]`` says what was
decided and why.

A memory map handed to ``dask.array.from_array`` is copied into RAM (DESIGN
section 7), so ``.npy`` files are wrapped in :class:`NpyFrames`, which exposes
only ``shape``/``dtype``/``ndim``/``__getitem__`` and maps the file anew for
each read, so that pages read once do not stay in the process's memory.
"""

from __future__ import annotations

import importlib
import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path

import dask.array as da
import numpy as np

from ..checks import InputError
from ..images import quiet_reader_logs
from .axes import AxesDecision, decide_axes

__all__ = ["FourDStem", "NpyFrames", "ArrayFrames", "open_4dstem"]

#: Target bytes of one dask chunk when this module chooses the chunking.
CHUNK_BYTES = 64 * 2**20

# RosettaSciIO plugins to try, in order, for extensions several plugins claim.
_H5_ORDER = ("HSPY", "EMD", "Arina", "USID", "NeXus", "Delmic", "Tofwerk")


@dataclass(eq=False)
class FourDStem:
    """A 4D-STEM dataset: ``data`` is a dask array ``(scan_y, scan_x, det_y, det_x)``.

    ``metadata`` holds at least ``source`` (a path or a description), ``reader`` and
    ``axes`` (name, scale, offset, units of the four axes, where known).
    ``signal`` keeps the HyperSpy signal it came from, if any; ``frames`` the
    :class:`ArrayFrames`/:class:`NpyFrames` behind ``data``, if any. Results computed
    from the whole dataset (mean and max patterns) are cached on the object.
    """

    data: da.Array
    metadata: dict = field(default_factory=dict)
    signal: object = field(default=None, repr=False)
    frames: object = field(default=None, repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return tuple(int(s) for s in self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def scan_shape(self) -> tuple[int, int]:
        return self.shape[:2]

    @property
    def detector_shape(self) -> tuple[int, int]:
        return self.shape[2:]


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


def _auto_chunks(shape, dtype) -> tuple:
    """Whole detector frames, whole scan rows, about :data:`CHUNK_BYTES` per chunk."""
    frame = int(np.prod(shape[2:])) * np.dtype(dtype).itemsize
    row = max(frame * shape[1], 1)
    rows = int(max(1, min(shape[0], CHUNK_BYTES // row)))
    if rows >= 1 and CHUNK_BYTES // row >= 1:
        return (rows, shape[1], shape[2], shape[3])
    cols = int(max(1, min(shape[1], CHUNK_BYTES // max(frame, 1))))
    return (1, cols, shape[2], shape[3])


def _to_dask(array, *, name=False) -> da.Array:
    if isinstance(array, da.Array):
        return array
    chunks = _auto_chunks(array.shape, array.dtype) if len(array.shape) == 4 else "auto"
    if isinstance(array, np.ndarray):
        array = ArrayFrames(array)
    if isinstance(array, da.Array):
        return array
    return da.from_array(array, chunks=chunks, name=name)


def _mib_check(path: Path, scan_shape) -> int | None:
    """Refuse a truncated MerlinEM file (RosettaSciIO silently drops the missing frames).

    Returns the number of whole frames in the file (``None`` for raw frames, left to the reader).
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(384)
    try:
        fields = head.decode("ascii", errors="replace").split(",")
        header_bytes = int(fields[2])
        nx, ny = int(fields[4]), int(fields[5])
        kind = fields[6]
    except (IndexError, ValueError):
        raise InputError(f"{path} is not a MerlinEM .mib file (no MQ1 frame header at its start)") from None
    if not fields[0].startswith("MQ1"):
        raise InputError(f"{path} is not a MerlinEM .mib file (it starts with {fields[0][:8]!r}, not 'MQ1')")
    depth = {"U01": 1, "U08": 1, "U16": 2, "U32": 4}.get(kind)
    if depth is None:  # raw (R64) frames: leave the checks to the reader
        return None
    frame_bytes = header_bytes + nx * ny * depth
    n_frames, rest = divmod(size, frame_bytes)
    if rest:
        raise InputError(
            f"{path} is truncated: it holds {size} bytes, {n_frames} whole frame(s) of {frame_bytes} bytes "
            f"and {rest} bytes of an incomplete one; copy the file again or cut it to whole frames")
    hdr = path.with_suffix(".hdr")
    if hdr.exists():
        promised = None
        for line in hdr.read_text(errors="replace").splitlines():
            if line.startswith("Frames in Acquisition"):
                try:
                    promised = int(line.split(":", 1)[1].strip())
                except ValueError:
                    promised = None
        if promised and promised > n_frames:
            raise InputError(
                f"{path} is truncated: {hdr.name} promises {promised} frames, the file holds {n_frames}; "
                "the acquisition was interrupted or the copy is incomplete")
    if scan_shape is not None and int(np.prod(scan_shape)) != n_frames:
        raise InputError(f"scan_shape {tuple(scan_shape)} needs {int(np.prod(scan_shape))} frames, "
                         f"{path} holds {n_frames}")
    return n_frames


def _rsciio_candidates(path: Path) -> list[dict]:
    import rsciio

    ext = path.suffix.lstrip(".").lower()
    plugins = [p for p in rsciio.IO_PLUGINS if ext in [e.lower() for e in p["file_extensions"]]]
    if ext in ("h5", "hdf5", "hspy", "emd"):
        extra = [p for p in rsciio.IO_PLUGINS if p["name"] in ("HSPY", "EMD") and p not in plugins]
        plugins = plugins + extra
        rank = {name: i for i, name in enumerate(_H5_ORDER)}
        plugins.sort(key=lambda p: rank.get(p["name"], len(rank)))
    return plugins


def _hdf5_filters() -> None:
    """Register the HDF5 compression filters of detector files (DECTRIS Arina: bitshuffle/LZ4)."""
    try:
        import hdf5plugin  # noqa: F401 - importing registers the filters with h5py
    except ImportError:
        pass


_MISSING_PACKAGE = "reading {path} needs the Python package '{name}', which is not installed: pip install {name}"


def _kept_ndim(shape) -> int:
    return sum(int(s) > 1 for s in shape[4:]) + min(len(shape), 4)


def _read_rsciio(path: Path, *, lazy: bool, scan_shape) -> tuple[object, dict]:
    plugins = _rsciio_candidates(path)
    if not plugins:
        raise InputError(f"{path}: no reader for '{path.suffix}' files; give a .mib, .blo, .hspy, .zspy, "
                         ".emd, .h5, .npy or .zarr 4D-STEM dataset")
    if path.suffix.lower() in (".h5", ".hdf5", ".hspy", ".emd", ".nxs", ".app5"):
        _hdf5_filters()
    errors, missing = [], []
    for plugin in plugins:
        try:
            api = importlib.import_module(plugin["api"])
        except ModuleNotFoundError as err:
            missing.append(err.name)
            errors.append(f"{plugin['name']}: needs the package '{err.name}'")
            continue
        kwargs = {"lazy": lazy}
        if plugin["name"] == "QuantumDetector" and scan_shape is not None:
            kwargs["navigation_shape"] = tuple(int(s) for s in scan_shape)[::-1]
        if plugin["name"] == "Arina" and scan_shape is not None:
            kwargs["navigation_shape"] = tuple(int(s) for s in scan_shape)
        note = None
        try:
            dicts = _call_reader(api, path, kwargs)
        except NotImplementedError as err:  # a reader that cannot read lazily (Arina): read it whole
            if not lazy or "lazy" not in str(err).lower():
                errors.append(f"{plugin['name']}: NotImplementedError: {err}")
                continue
            try:
                dicts = _call_reader(api, path, {**kwargs, "lazy": False})
                note = f"the {plugin['name']} reader cannot read lazily: the dataset was read into memory"
            except Exception as err2:  # noqa: BLE001
                errors.append(f"{plugin['name']}: {type(err2).__name__}: {err2}")
                continue
        except ModuleNotFoundError as err:
            missing.append(err.name)
            errors.append(f"{plugin['name']}: needs the package '{err.name}'")
            continue
        except Exception as err:  # noqa: BLE001 - readers raise anything on a bad file
            if "filter" in str(err).lower() and "hdf5plugin" not in _installed():
                missing.append("hdf5plugin")
            errors.append(f"{plugin['name']}: {type(err).__name__}: {err}")
            continue
        dicts = [d for d in dicts if len(getattr(d["data"], "shape", ())) >= 2] if dicts else []
        if not dicts:
            errors.append(f"{plugin['name']}: no image data in the file")
            continue
        best = max(dicts, key=lambda d: (_kept_ndim(d["data"].shape) == 4, _kept_ndim(d["data"].shape),
                                         int(np.prod(d["data"].shape))))
        extra = {"reader": f"rsciio.{plugin['name']}"}
        if note:
            extra["note"] = note
        return best, extra
    fallback = _read_h5_generic(path) if path.suffix.lower() in (".h5", ".hdf5", ".emd", ".nxs") else None
    if fallback is not None:
        return fallback
    if missing:
        first = "hdf5plugin" if "hdf5plugin" in missing else missing[0]
        raise InputError(_MISSING_PACKAGE.format(path=path, name=first) + " ("
                         + "; ".join(errors) + ")")
    raise InputError(f"could not read {path} as a 4D-STEM dataset (is it complete and in a supported format?): "
                     + "; ".join(errors))


def _call_reader(api, path: Path, kwargs: dict):
    import warnings

    with quiet_reader_logs(), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # empty-slice means of length-1 axes
        return api.file_reader(str(path), **kwargs)


def _installed() -> set:
    import importlib.util

    return {name for name in ("hdf5plugin",) if importlib.util.find_spec(name) is not None}


def _read_h5_generic(path: Path):
    """Any HDF5 file holding one 4D dataset: axis names from its dimension scales or labels."""
    import h5py

    _hdf5_filters()
    try:
        fh = h5py.File(path, "r")
    except OSError:
        return None
    found = []
    fh.visititems(lambda name, obj: found.append(obj) if isinstance(obj, h5py.Dataset)
                  and _kept_ndim(obj.shape) == 4 and obj.dtype.kind in "uif" else None)
    if not found:
        fh.close()
        return None
    dset = max(found, key=lambda d: d.size)
    axes = []
    for i, dim in enumerate(dset.dims):
        name = dim.label or ""
        if not name and len(dim):
            name = dim[0].attrs.get("name", b"") or dim[0].name.rsplit("/", 1)[-1]
        if isinstance(name, bytes):
            name = name.decode(errors="replace")
        axes.append({"name": str(name), "size": int(dset.shape[i]), "scale": 1.0, "offset": 0.0, "units": ""})
    parent = dset.parent
    for i in range(dset.ndim):  # EMD v0.2 style: sibling datasets dim1, dim2, ... with a "name" attribute
        sibling = parent.get(f"dim{i + 1}")
        if not axes[i]["name"] and isinstance(sibling, h5py.Dataset) and "name" in sibling.attrs:
            label = sibling.attrs["name"]
            axes[i]["name"] = label.decode(errors="replace") if isinstance(label, bytes) else str(label)
    frames = H5Frames(path, dset.name, shape=dset.shape, dtype=dset.dtype)
    fh.close()
    data = da.from_array(frames, chunks=_auto_chunks_nd(frames.shape, frames.dtype), name=False)
    return {"data": data, "axes": axes}, {"reader": f"h5py ({frames.name})"}


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


def _auto_chunks_nd(shape, dtype) -> tuple:
    """About :data:`CHUNK_BYTES` per chunk, cut along the first stored axis only."""
    per = int(np.prod(shape[1:])) * np.dtype(dtype).itemsize
    return (int(max(1, min(shape[0], CHUNK_BYTES // max(per, 1)))),) + tuple(int(s) for s in shape[1:])


def _axes_from_rsciio(axes: list[dict]) -> list[dict]:
    keep = ("name", "scale", "offset", "units", "size", "navigate")
    return [{k: (a.get(k) if not isinstance(a.get(k), np.generic) else a.get(k).item()) for k in keep if k in a}
            for a in axes]


def _axes_from_signal(signal) -> list[dict]:
    am = signal.axes_manager
    ordered = list(am.navigation_axes[::-1]) + list(am.signal_axes[::-1])
    return [{"name": str(ax.name), "scale": float(ax.scale), "offset": float(ax.offset),
             "units": str(ax.units), "size": int(ax.size), "navigate": bool(ax.navigate)} for ax in ordered]


def _apply_axes(data, axes: list[dict], *, what: str):
    """Reorder a stored array to ``(scan_y, scan_x, det_y, det_x)`` as its metadata says.

    Returns ``(data, axes, decision)``; arrays that are not 4D (after dropping
    length-1 axes beyond the fourth) come back as they are, with ``decision`` None.
    """
    shape = tuple(int(v) for v in data.shape)
    if len(shape) < 4 or (len(shape) > 4 and sum(v > 1 for v in shape) > 4):
        return data, axes, None
    try:
        decision = decide_axes(shape, axes)
    except ValueError:
        return data, axes, None
    if len(axes) == len(shape) and all("index_in_array" in a for a in axes):
        axes = sorted(axes, key=lambda a: int(a["index_in_array"]))
    if decision.drop:
        index = tuple(0 if i in decision.drop else slice(None) for i in range(len(shape)))
        data = data[index]
        axes = [a for i, a in enumerate(axes) if i not in decision.drop] if len(axes) == len(shape) else axes
    if decision.order != (0, 1, 2, 3):
        data = data.transpose(decision.order) if isinstance(data, da.Array) else \
            da.from_array(data, chunks=_auto_chunks_nd(data.shape, data.dtype), name=False).transpose(decision.order)
    if len(axes) == 4:
        axes = [axes[i] for i in decision.order]
    return data, axes, decision


def _open_zarr(path: Path):
    import zarr

    node = zarr.open(str(path), mode="r")
    if isinstance(node, zarr.Array):
        return da.from_zarr(node), {"reader": "zarr", "axes": _zarr_axes(node)}
    arrays = []
    node.visititems(lambda name, obj: arrays.append((name, obj)) if isinstance(obj, zarr.Array) else None)
    four = [(n, a) for n, a in arrays if a.ndim == 4]
    if not four:
        raise InputError(f"{path} holds no 4D array (found {[(n, a.shape) for n, a in arrays]}); "
                         "store the dataset as one (scan_y, scan_x, det_y, det_x) array")
    name, arr = max(four, key=lambda item: item[1].size)
    return da.from_zarr(arr), {"reader": "zarr", "zarr_path": name, "axes": _zarr_axes(arr)}


def _zarr_axes(arr) -> list[dict]:
    """Axis names of a zarr array (xarray's ``_ARRAY_DIMENSIONS``, or ``axes``/``dimension_names``)."""
    attrs = dict(arr.attrs)
    names = attrs.get("_ARRAY_DIMENSIONS") or attrs.get("dimension_names") or attrs.get("axes") or []
    names = [n.get("name", "") if isinstance(n, dict) else n for n in names]
    if len(names) != arr.ndim:
        return []
    return [{"name": str(n or ""), "size": int(s), "scale": 1.0, "offset": 0.0, "units": ""}
            for n, s in zip(names, arr.shape)]


def _fix_dims(data, *, scan_shape, from_file: bool, what: str):
    """Return ``data`` as 4D, or raise InputError naming the problem and the fix."""
    ndim = len(data.shape)
    if ndim == 4:
        if scan_shape is not None and tuple(data.shape[:2]) != tuple(scan_shape):
            raise InputError(f"{what} has scan shape {tuple(data.shape[:2])}, not the scan_shape {tuple(scan_shape)} given")
        return data
    if ndim == 3 and scan_shape is not None:
        sy, sx = (int(s) for s in scan_shape)
        if sy * sx != data.shape[0]:
            raise InputError(f"{what} holds {data.shape[0]} frames; scan_shape {sy}x{sx} needs {sy * sx}")
        return data.reshape(sy, sx, *data.shape[1:])
    if ndim == 2 and from_file:
        return data[None, None]
    if ndim == 3:
        raise InputError(f"{what} is 3D {tuple(data.shape)}, 4D (scan_y, scan_x, det_y, det_x) is needed; "
                         "if it is a stack of frames, pass scan_shape=(scan_y, scan_x)")
    raise InputError(f"{what} has shape {tuple(data.shape)}; a 4D-STEM dataset is 4D "
                     "(scan_y, scan_x, det_y, det_x)")


def open_4dstem(source, *, lazy: bool = True, scan_shape=None) -> FourDStem:
    """Open a 4D-STEM dataset.

    Parameters
    ----------
    source : str, Path, ndarray, dask array, HyperSpy/pyxem signal or FourDStem
        A file (``.mib`` [+ ``.hdr``], ``.blo``, ``.hspy``, ``.zspy``, ``.emd``,
        ``.h5``, ``.npy``, ``.zarr`` or any 4D format RosettaSciIO reads) or data
        of shape ``(scan_y, scan_x, det_y, det_x)``.
    lazy : bool
        ``True`` (default) reads nothing but headers; ``False`` loads the data
        into memory (for small datasets).
    scan_shape : (int, int), optional
        Reshape a stack of frames ``(n, det_y, det_x)`` to ``scan_shape``.

    Returns
    -------
    FourDStem
        ``.data`` a dask array ``(scan_y, scan_x, det_y, det_x)``. A file holding a
        single frame opens as a ``(1, 1, det_y, det_x)`` dataset.

    Raises
    ------
    InputError
        Missing, unreadable or truncated file; data that is not 4D.
    """
    if isinstance(source, FourDStem):
        return source
    signal = None
    if hasattr(source, "axes_manager") and hasattr(source, "data"):
        signal = source
        what = f"signal {signal.metadata.get_item('General.title') or type(signal).__name__}"
        data = signal.data
        meta = {"source": str(signal.metadata.get_item("General.original_filename") or "signal"),
                "reader": type(signal).__name__, "axes": _axes_from_signal(signal)}
        decision = None
        if len(meta["axes"]) == len(data.shape) >= 4:
            if sum(a["navigate"] for a in meta["axes"]) == 2:  # HyperSpy's own roles: navigation first
                decision = decide_axes(data.shape, [{**a, "name": ""} for a in meta["axes"]])
            else:  # a signal without two navigation axes (all signal axes, say): the names decide
                data, meta["axes"], decision = _apply_axes(data, meta["axes"], what=what)
        data = _fix_dims(data, scan_shape=scan_shape, from_file=False, what=what)
        _note_decision(meta, decision, data)
    elif isinstance(source, (str, Path)):
        data, meta = _open_path(Path(source), lazy=lazy, scan_shape=scan_shape)
    elif isinstance(source, (np.ndarray, da.Array)) or hasattr(source, "__array__"):
        if isinstance(source, np.memmap) and isinstance(source.base, mmap.mmap) and source.ndim == 4 \
                and source.flags.c_contiguous and getattr(source, "filename", None):
            source = NpyFrames(source.filename, shape=source.shape, dtype=source.dtype, offset=source.offset)
        elif not isinstance(source, (np.ndarray, da.Array)):
            source = np.asarray(source)
        data = _fix_dims(source, scan_shape=scan_shape, from_file=False, what="the array")
        meta = {"source": "array", "reader": type(source).__name__}
        _note_decision(meta, decide_axes(data.shape), data)
    else:
        raise InputError(f"cannot open {type(source).__name__} as 4D-STEM data; give a path, an array or a signal")
    if not np.issubdtype(np.dtype(data.dtype), np.number):
        raise InputError(f"4D-STEM data must hold numbers, got dtype {data.dtype}")
    if min(data.shape[2:]) < 2:
        raise InputError(f"the detector of shape {tuple(data.shape[2:])} is too small; is the axis order "
                         "(scan_y, scan_x, det_y, det_x)?")
    if isinstance(data, np.ndarray):
        data = ArrayFrames(data)
    if not lazy:
        data = ArrayFrames(np.asarray(data.compute() if isinstance(data, da.Array) else data[...]))
    frames = data if isinstance(data, (ArrayFrames, NpyFrames)) else None
    data = _to_dask(data)
    meta.setdefault("axes", [])
    meta["shape"] = [int(s) for s in data.shape]
    meta["dtype"] = str(data.dtype)
    return FourDStem(data=data, metadata=meta, signal=signal, frames=frames)


def _open_path(path: Path, *, lazy: bool, scan_shape):
    if not path.exists():
        raise InputError(f"{path} does not exist")
    what = str(path)
    ext = path.suffix.lower()
    meta = {"source": str(path.resolve())}
    if ext == ".npy":
        try:
            frames = NpyFrames.open(path)
        except (ValueError, OSError) as err:
            raise InputError(f"could not read {path} as .npy (truncated or not a numpy file?): {err}") from None
        if frames.ndim == 4:
            data = _fix_dims(frames, scan_shape=scan_shape, from_file=True, what=what)
        else:
            data = _fix_dims(da.from_array(frames, chunks="auto", name=False), scan_shape=scan_shape,
                             from_file=True, what=what)
        meta.update(reader="npy")
        if len(data.shape) == 4:
            _note_decision(meta, decide_axes(data.shape), data)
        return data, meta
    if ext == ".zarr" or (path.is_dir() and (path / ".zarray").exists()):
        try:
            data, extra = _open_zarr(path)
        except InputError:
            raise
        except Exception as err:  # noqa: BLE001
            raise InputError(f"could not read {path} as zarr: {err}") from None
        data, meta["axes"], decision = _apply_axes(data, extra.pop("axes", []), what=what)
        meta.update(extra)
        _note_decision(meta, decision, data)
        return _fix_dims(data, scan_shape=scan_shape, from_file=True, what=what), meta
    mib_frames = _mib_check(path, scan_shape) if ext == ".mib" else None
    if path.is_dir() and ext != ".zspy":
        raise InputError(f"{path} is a folder; give the dataset file (or a .zarr/.zspy folder)")
    found, extra = _read_rsciio(path, lazy=lazy, scan_shape=scan_shape)
    read = int(np.prod(found["data"].shape[:-2]))
    if mib_frames is not None and read != mib_frames:
        # Without a .hdr, RosettaSciIO guesses a scan and drops the frames that do not fit it.
        raise InputError(f"{path} holds {mib_frames} frames, but without {path.with_suffix('.hdr').name} "
                         f"the scan is unknown (the reader kept {read}); give the scan shape whose product is "
                         f"{mib_frames} (--scan-shape SY,SX, or scan_shape=(SY, SX))")
    meta.update(extra)
    data, axes, decision = _apply_axes(found["data"], found.get("axes", []), what=what)
    meta["axes"] = _axes_from_rsciio(axes)
    _note_decision(meta, decision, data)
    data = _fix_dims(data, scan_shape=scan_shape, from_file=True, what=what)
    _probe(data, path)
    return data, meta


def _note_decision(meta: dict, decision: AxesDecision | None, data) -> None:
    if decision is not None:
        meta["axes_decision"] = decision.to_dict(tuple(int(v) for v in data.shape))


def _probe(data, path: Path) -> None:
    """Read the first and the last frame, so a truncated file fails now, with a clear message."""
    try:
        for index in ((0, 0), (-1, -1)):
            frame = data[index]
            if isinstance(frame, da.Array):
                frame.compute(scheduler="synchronous")
            else:
                np.asarray(frame)
    except Exception as err:  # noqa: BLE001 - whatever the reader raises on a short file
        raise InputError(f"{path} is truncated or damaged: reading its last frame failed "
                         f"({type(err).__name__}: {err}); copy the file again") from None
