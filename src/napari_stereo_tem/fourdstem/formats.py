"""Reading 4D-STEM files through RosettaSciIO, h5py and zarr, with the axis metadata each keeps.

Every reader returns the stored array and its axes (name, navigation flag, size
where the file says); :mod:`.loading` decides the scan and detector axes from them.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import dask.array as da
import numpy as np

from ..checks import InputError
from ..images import quiet_reader_logs
from .frames import H5Frames, _auto_chunks_nd, _hdf5_filters

__all__ = ["read_rsciio", "open_zarr", "mib_check", "axes_from_rsciio"]

# RosettaSciIO plugins to try, in order, for extensions several plugins claim.
_H5_ORDER = ("HSPY", "EMD", "Arina", "USID", "NeXus", "Delmic", "Tofwerk")


def mib_check(path: Path, scan_shape) -> int | None:
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


# Readers whose axis names and navigation flags are not in the file but guessed from the position of the
# axes (DigitalMicrograph files keep only each dimension's units and scale): the guesses are dropped, so the
# units decide, or the position, said so.
_GUESSED_ROLES = ("DigitalMicrograph",)
# Readers that read the whole file whatever ``lazy`` says (TopSpin stacks every pattern; TIA reads every element
# to parse the header, and lazily would read the whole file again for every chunk): they are asked for the data in
# memory, once, and the note says so.
_NEVER_LAZY = ("Topspin", "TIA")

_MISSING_PACKAGE = "reading {path} needs the Python package '{name}', which is not installed: pip install {name}"


def _kept_ndim(shape) -> int:
    return sum(int(s) > 1 for s in shape[4:]) + min(len(shape), 4)


def read_rsciio(path: Path, *, lazy: bool, scan_shape) -> tuple[object, dict]:
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
        if plugin["name"] == "Topspin":
            kwargs["show_progressbar"] = False
        note = None
        if lazy and plugin["name"] in _NEVER_LAZY:
            kwargs["lazy"] = False
            note = f"the {plugin['name']} reader cannot read lazily: the dataset was read into memory"
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
        if plugin["name"] in _GUESSED_ROLES:
            best = {**best, "axes": [{k: v for k, v in a.items() if k not in ("name", "navigate")}
                                     for a in best.get("axes", [])]}
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


def axes_from_rsciio(axes: list[dict]) -> list[dict]:
    keep = ("name", "scale", "offset", "units", "size", "navigate")
    return [{k: (a.get(k) if not isinstance(a.get(k), np.generic) else a.get(k).item()) for k in keep if k in a}
            for a in axes]


def open_zarr(path: Path):
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
