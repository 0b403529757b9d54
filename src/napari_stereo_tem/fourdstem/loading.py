"""Open 4D-STEM datasets lazily as dask arrays ``(scan_y, scan_x, det_y, det_x)``.

Files go through RosettaSciIO (MerlinEM ``.mib`` with or without ``.hdr``,
NanoMegas ``.blo``, ``.hspy``/``.zspy``, ``.emd``/``.h5`` and the other formats
it reads), ``.npy`` is memory-mapped and ``.zarr`` opened in place; nothing is
read whole unless ``lazy=False``. Arrays (numpy, dask) and HyperSpy/pyxem
signals are accepted as they are.

A memory map handed to ``dask.array.from_array`` is copied into RAM (DESIGN
section 7), so ``.npy`` files are wrapped in :class:`NpyFrames`, which exposes
only ``shape``/``dtype``/``ndim``/``__getitem__`` and maps the file anew for
each read, so that pages read once do not stay in the process's memory.
"""

from __future__ import annotations

import importlib
import mmap
from dataclasses import dataclass, field
from pathlib import Path

import dask.array as da
import numpy as np

from ..checks import InputError
from ..images import quiet_reader_logs

__all__ = ["FourDStem", "NpyFrames", "ArrayFrames", "open_4dstem", "open_pattern"]

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

    Only ``shape``, ``dtype``, ``ndim`` and ``__getitem__`` are exposed; each read
    maps the file, copies the requested block and unmaps it. Pickles as its path,
    so dask.distributed workers on the same file system read it themselves.
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
        mm = np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.offset,
                       shape=self.shape, order=self.order)
        out = np.array(mm[key])
        del mm  # the last reference: the file is unmapped and its pages leave this process
        return out

    def __repr__(self) -> str:
        return f"NpyFrames({self.path!r}, shape={self.shape}, dtype={self.dtype})"


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


def _read_rsciio(path: Path, *, lazy: bool, scan_shape) -> tuple[object, dict]:
    plugins = _rsciio_candidates(path)
    if not plugins:
        raise InputError(f"{path}: no reader for '{path.suffix}' files; give a .mib, .blo, .hspy, .zspy, "
                         ".emd, .h5, .npy or .zarr 4D-STEM dataset")
    errors = []
    for plugin in plugins:
        api = importlib.import_module(plugin["api"])
        kwargs = {"lazy": lazy}
        if plugin["name"] == "QuantumDetector" and scan_shape is not None:
            kwargs["navigation_shape"] = tuple(int(s) for s in scan_shape)[::-1]
        try:
            with quiet_reader_logs():
                dicts = api.file_reader(str(path), **kwargs)
        except Exception as err:  # noqa: BLE001 - readers raise anything on a bad file
            errors.append(f"{plugin['name']}: {type(err).__name__}: {err}")
            continue
        dicts = [d for d in dicts if len(getattr(d["data"], "shape", ())) >= 2] if dicts else []
        if not dicts:
            errors.append(f"{plugin['name']}: no image data in the file")
            continue
        best = max(dicts, key=lambda d: (len(d["data"].shape) == 4, len(d["data"].shape), int(np.prod(d["data"].shape))))
        return best, {"reader": f"rsciio.{plugin['name']}"}
    raise InputError(f"could not read {path} as a 4D-STEM dataset (is it complete and in a supported format?): "
                     + "; ".join(errors))


def _axes_from_rsciio(axes: list[dict]) -> list[dict]:
    keep = ("name", "scale", "offset", "units", "size")
    return [{k: (a.get(k) if not isinstance(a.get(k), np.generic) else a.get(k).item()) for k in keep}
            for a in axes]


def _axes_from_signal(signal) -> list[dict]:
    am = signal.axes_manager
    ordered = list(am.navigation_axes[::-1]) + list(am.signal_axes[::-1])
    return [{"name": str(ax.name), "scale": float(ax.scale), "offset": float(ax.offset),
             "units": str(ax.units), "size": int(ax.size)} for ax in ordered]


def _open_zarr(path: Path):
    import zarr

    node = zarr.open(str(path), mode="r")
    if isinstance(node, zarr.Array):
        return da.from_zarr(node), {"reader": "zarr"}
    arrays = []
    node.visititems(lambda name, obj: arrays.append((name, obj)) if isinstance(obj, zarr.Array) else None)
    four = [(n, a) for n, a in arrays if a.ndim == 4]
    if not four:
        raise InputError(f"{path} holds no 4D array (found {[(n, a.shape) for n, a in arrays]}); "
                         "store the dataset as one (scan_y, scan_x, det_y, det_x) array")
    name, arr = max(four, key=lambda item: item[1].size)
    return da.from_zarr(arr), {"reader": "zarr", "zarr_path": name}


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
        data = _fix_dims(signal.data, scan_shape=scan_shape, from_file=False,
                         what=f"signal {signal.metadata.get_item('General.title') or type(signal).__name__}")
        meta = {"source": str(signal.metadata.get_item("General.original_filename") or "signal"),
                "reader": type(signal).__name__, "axes": _axes_from_signal(signal)}
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
        return data, meta
    if ext == ".zarr" or (path.is_dir() and (path / ".zarray").exists()):
        try:
            data, extra = _open_zarr(path)
        except InputError:
            raise
        except Exception as err:  # noqa: BLE001
            raise InputError(f"could not read {path} as zarr: {err}") from None
        meta.update(extra)
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
    meta["axes"] = _axes_from_rsciio(found.get("axes", []))
    data = _fix_dims(found["data"], scan_shape=scan_shape, from_file=True, what=what)
    _probe(data, path)
    return data, meta


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


def open_pattern(source) -> np.ndarray:
    """Read one diffraction pattern ``(det_y, det_x)`` as float64.

    ``source`` is a file holding one frame (a CBED pattern, a vacuum reference),
    a 2D array, or a 4D dataset (its mean pattern is returned).
    """
    if isinstance(source, (str, Path)):
        ds = open_4dstem(source)
    elif np.ndim(source) == 2:
        return np.asarray(source, dtype=float)
    else:
        ds = open_4dstem(source)
    from .calibration import mean_pattern

    return mean_pattern(ds)
