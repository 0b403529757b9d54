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

The readers are in :mod:`.formats`; what dask slices (a ``.npy`` read by
``pread``, an HDF5 dataset, an in-memory array) in :mod:`.frames`.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field
from pathlib import Path

import dask.array as da
import numpy as np

from ..checks import InputError
from .axes import AxesDecision, decide_axes
from .formats import axes_from_rsciio, mib_check, open_zarr, read_rsciio
from .frames import ArrayFrames, NpyFrames, _auto_chunks_nd, _to_dask

__all__ = ["FourDStem", "NpyFrames", "ArrayFrames", "open_4dstem"]


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
            data, extra = open_zarr(path)
        except InputError:
            raise
        except Exception as err:  # noqa: BLE001
            raise InputError(f"could not read {path} as zarr: {err}") from None
        data, meta["axes"], decision = _apply_axes(data, extra.pop("axes", []), what=what)
        meta.update(extra)
        _note_decision(meta, decision, data)
        return _fix_dims(data, scan_shape=scan_shape, from_file=True, what=what), meta
    mib_frames = mib_check(path, scan_shape) if ext == ".mib" else None
    if path.is_dir() and ext != ".zspy":
        raise InputError(f"{path} is a folder; give the dataset file (or a .zarr/.zspy folder)")
    found, extra = read_rsciio(path, lazy=lazy, scan_shape=scan_shape)
    read = int(np.prod(found["data"].shape[:-2]))
    if mib_frames is not None and read != mib_frames:
        # Without a .hdr, RosettaSciIO guesses a scan and drops the frames that do not fit it.
        raise InputError(f"{path} holds {mib_frames} frames, but without {path.with_suffix('.hdr').name} "
                         f"the scan is unknown (the reader kept {read}); give the scan shape whose product is "
                         f"{mib_frames} (--scan-shape SY,SX, or scan_shape=(SY, SX))")
    meta.update(extra)
    data, axes, decision = _apply_axes(found["data"], found.get("axes", []), what=what)
    meta["axes"] = axes_from_rsciio(axes)
    stack = decision is None and len(data.shape) == 3 and scan_shape is not None
    data = _fix_dims(data, scan_shape=scan_shape, from_file=True, what=what)
    if stack:  # a stack of frames: the scan is the scan_shape given, the frames in raster order
        frame_axes = [str(a.get("name") or "") for a in axes][-2:] if len(axes) == 3 else ["", ""]
        decision = AxesDecision(order=(0, 1, 2, 3), by="the scan_shape given", names=("", "", *frame_axes),
                                note=f"the file holds a stack of {int(np.prod(data.shape[:2]))} frames, "
                                     "taken in raster order (along a row first)")
    _note_decision(meta, decision, data)
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
