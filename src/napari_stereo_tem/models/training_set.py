"""The user's training set: corrected labels added one entry at a time (DESIGN 3.9).

A training set is a folder; each entry is a sub-folder ``entry-000001``,
``entry-000002``, ... holding

- ``left.tif`` (and ``right.tif`` when the pair is known): the view(s) as given;
- ``mask_left.tif`` (and ``mask_right.tif``): uint8, 0 background,
  1 dislocation, 2 distractor (napari's Labels as corrected by the user);
- ``disparity_left.tif`` where disparities are known: float32, ``x_right - x_left``
  on the left view's pixels, NaN where unknown;
- ``instances_left.tif`` (and ``instances_right.tif``) where instances are
  given: int32, 0 background, one id per dislocation (the instance Labels layer
  as corrected by the user; kept beside the mask, which it does not replace);
- ``entry.json``: provenance (source file and its sha256, stereo angle, pixel
  size, model version, time) and the sha256 of every file above.

Writes are append-only and atomic: an entry is written into a hidden temporary
folder inside the set, then renamed to its final name in one ``os.rename``, so
a reader sees either the whole entry or nothing; an existing entry is never
overwritten. There is no index file to corrupt: the list of entries is the list
of complete entry folders. Removing an entry moves it to ``.trash/``, from
where :func:`restore_entry` brings it back.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..checks import InputError, check_image

__all__ = ["TrainingEntry", "add_entry", "list_entries", "load_entry", "remove_entry", "restore_entry",
           "list_trash", "clean_unfinished", "file_sha256", "array_sha256", "ENTRY_FILE", "TRASH"]

#: The JSON written last into each entry.
ENTRY_FILE = "entry.json"
#: Folder (inside the set) that holds removed entries.
TRASH = ".trash"
_PATTERN = re.compile(r"\Aentry-(\d{6,})\Z")
_TMP_PREFIX = ".tmp-entry-"
_ARRAYS = ("left", "right", "mask_left", "mask_right", "disparity_left", "instances_left", "instances_right")


@dataclass
class TrainingEntry:
    """One entry of a training set (arrays are read by :func:`load_entry` on demand)."""

    path: Path
    record: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def number(self) -> int:
        match = _PATTERN.match(self.path.name)
        return int(match.group(1)) if match else -1

    @property
    def has_pair(self) -> bool:
        return "right" in self.record.get("files", {})

    @property
    def has_disparity(self) -> bool:
        return "disparity_left" in self.record.get("files", {})

    @property
    def has_instances(self) -> bool:
        return "instances_left" in self.record.get("files", {})

    def describe(self) -> str:
        """A one-line summary for a browser."""
        prov = self.record.get("provenance", {})
        parts = [self.name, str(prov.get("created_utc", "")), Path(str(prov.get("source") or "?")).name]
        parts.append("pair" if self.has_pair else "single view")
        if self.has_disparity:
            parts.append("disparity")
        return " | ".join(parts)


def file_sha256(path) -> str:
    """Hex sha256 of a file's bytes (read in chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def array_sha256(array) -> str:
    """Hex sha256 of an array's shape, dtype and bytes (for data that came from no file)."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.shape}{array.dtype.str}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def _set_dir(set_dir, *, create: bool = False) -> Path:
    folder = Path(set_dir).expanduser()
    if folder.exists() and not folder.is_dir():
        raise InputError(f"training set {folder} is a file, not a folder; choose a folder")
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def _entry_numbers(folder: Path) -> list[int]:
    numbers = []
    for parent in (folder, folder / TRASH):
        if parent.is_dir():
            for child in parent.iterdir():
                match = _PATTERN.match(child.name.split("~")[0])
                if match:
                    numbers.append(int(match.group(1)))
    return numbers


def _integer_layer(values, shape, name, *, layer: str, holds: str) -> np.ndarray:
    """``values`` as an array, refused unless it has the view's ``shape`` and an integer (or bool) dtype."""
    values = np.asarray(values)
    if values.shape != tuple(shape):
        raise InputError(f"{name} has shape {values.shape} but its view has shape {tuple(shape)}; "
                         f"give the {layer} drawn on that view")
    if not (np.issubdtype(values.dtype, np.integer) or values.dtype == bool):
        raise InputError(f"{name} must hold integer {holds}, got dtype {values.dtype}")
    return values


def _check_mask(mask, shape, name) -> np.ndarray:
    mask = _integer_layer(mask, shape, name, layer="Labels layer", holds="labels")
    if mask.min() < 0:
        raise InputError(f"{name} holds negative labels; use 0 background, 1 dislocation, 2 distractor")
    return np.minimum(mask, 255).astype(np.uint8)


def _check_instances(instances, shape, name) -> np.ndarray:
    instances = _integer_layer(instances, shape, name, layer="instance Labels layer", holds="instance ids")
    if instances.size and (instances.min() < 0 or instances.max() > np.iinfo(np.int32).max):
        raise InputError(f"{name} holds ids outside 0..2^31-1; use 0 for background and one positive id "
                         "per dislocation")
    return instances.astype(np.int32)


def _write_fsync(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _tiff_bytes(array: np.ndarray) -> bytes:
    import io

    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.ascontiguousarray(array))
    return buffer.getvalue()


def add_entry(set_dir, left, mask_left, *, right=None, mask_right=None, disparity_left=None,
              instances_left=None, instances_right=None, source=None, stereo_angle_deg: float | None = None, pixel_size_nm: float | None = None,
              model_version: str | None = None, extra: dict | None = None,
              on_file_written: Callable[[Path], None] | None = None) -> Path:
    """Append one entry to a training set; atomic, never overwriting.

    Parameters
    ----------
    set_dir : str or Path
        The training-set folder (created if missing).
    left : array_like, shape (rows, cols)
        The (left) view, any numeric dtype.
    mask_left : array_like of int, shape (rows, cols)
        The corrected labels: 0 background, 1 dislocation, 2 distractor.
    right, mask_right : array_like, shape (rows, cols), optional
        The right view and its labels.
    disparity_left : array_like of float, shape (rows, cols), optional
        Known disparities ``x_right - x_left`` on left pixels, NaN elsewhere.
    instances_left, instances_right : array_like of int, shape (rows, cols), optional
        The corrected instances: 0 background, one id per dislocation (stored
        beside the mask as int32).
    source : str, Path or dict, optional
        Where the views came from: a file path (hashed with sha256), or a dict
        ``{"left": path, "right": path}``. Without a file, the arrays are hashed.
    stereo_angle_deg, pixel_size_nm : float, optional
    model_version : str, optional
        The model(s) whose output was corrected (e.g. ``"detector_v1"``).
    extra : dict, optional
        More JSON-serialisable provenance.
    on_file_written : callable, optional
        Called with each file's path after it is written (a hook for tests).

    Returns
    -------
    Path
        The new entry folder.
    """
    left = check_image(left, name="left view")
    arrays = {"left": left, "mask_left": _check_mask(mask_left, left.shape, "mask_left")}
    if right is not None:
        arrays["right"] = check_image(right, name="right view")
        if arrays["right"].shape != left.shape:
            raise InputError(f"the right view {arrays['right'].shape} differs in shape from the left "
                             f"{left.shape}; rectify or crop the pair first")
        if mask_right is not None:
            arrays["mask_right"] = _check_mask(mask_right, left.shape, "mask_right")
    elif mask_right is not None:
        raise InputError("mask_right given without the right view; pass right= as well")
    if instances_left is not None:
        arrays["instances_left"] = _check_instances(instances_left, left.shape, "instances_left")
    if instances_right is not None:
        if right is None:
            raise InputError("instances_right given without the right view; pass right= as well")
        arrays["instances_right"] = _check_instances(instances_right, left.shape, "instances_right")
    if disparity_left is not None:
        disp = np.asarray(disparity_left, dtype=np.float32)
        if disp.shape != left.shape:
            raise InputError(f"disparity_left has shape {disp.shape}, expected {left.shape}")
        if right is None:
            raise InputError("disparities need the right view; pass right= as well")
        if np.isfinite(disp).any():
            arrays["disparity_left"] = disp
    if stereo_angle_deg is not None and not np.isfinite(float(stereo_angle_deg)):
        raise InputError(f"stereo angle must be finite, got {stereo_angle_deg}")

    folder = _set_dir(set_dir, create=True)
    sources = source if isinstance(source, dict) else ({"left": source} if source is not None else {})
    source_info = {}
    for view, path in sources.items():
        if path is None:
            continue
        path = Path(str(path))
        source_info[view] = {"path": str(path), "sha256": file_sha256(path) if path.is_file() else None}
    provenance = {
        "source": str(sources.get("left")) if sources.get("left") is not None else None,
        "sources": source_info,
        "array_sha256": {k: array_sha256(arrays[k]) for k in ("left", "right") if k in arrays},
        "stereo_angle_deg": None if stereo_angle_deg is None else float(stereo_angle_deg),
        "pixel_size_nm": None if pixel_size_nm is None else float(pixel_size_nm),
        "model_version": model_version,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "created_unix": time.time(),
        **(extra or {}),
    }
    tmp = folder / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        files = {}
        for key in _ARRAYS:
            if key not in arrays:
                continue
            path = tmp / f"{key}.tif"
            data = _tiff_bytes(arrays[key])
            _write_fsync(path, data)
            files[key] = {"file": path.name, "sha256": hashlib.sha256(data).hexdigest(),
                          "shape": list(arrays[key].shape), "dtype": str(arrays[key].dtype)}
            if on_file_written is not None:
                on_file_written(path)
        record = {"format": "napari-stereo-tem training entry", "version": 1, "files": files,
                  "provenance": provenance}
        text = json.dumps(record, indent=2, sort_keys=True, default=str)
        _write_fsync(tmp / ENTRY_FILE, (text + "\n").encode())
        if on_file_written is not None:
            on_file_written(tmp / ENTRY_FILE)
        number = max(_entry_numbers(folder), default=0) + 1
        while True:
            final = folder / f"entry-{number:06d}"
            if not final.exists():
                try:
                    os.rename(tmp, final)  # atomic; fails rather than replace a non-empty folder
                    break
                except OSError:
                    if not final.exists():
                        raise
            number += 1
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(folder)
    return final


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_record(path: Path) -> dict | None:
    try:
        record = json.loads((path / ENTRY_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "files" in record else None


def list_entries(set_dir) -> list[TrainingEntry]:
    """The complete entries of a training set, oldest first (half-written ones never appear).

    Parameters
    ----------
    set_dir : str or Path
        A missing folder is an empty set.
    """
    folder = _set_dir(set_dir)
    if not folder.is_dir():
        return []
    entries = []
    for child in folder.iterdir():
        if child.is_dir() and _PATTERN.match(child.name):
            record = _read_record(child)
            if record is not None:
                entries.append(TrainingEntry(child, record))
    return sorted(entries, key=lambda e: e.number)


def _entry_path(set_dir, entry) -> Path:
    if isinstance(entry, TrainingEntry):
        return entry.path
    path = Path(str(entry))
    return path if path.is_absolute() or path.parent != Path(".") else _set_dir(set_dir) / path


def _listing(folder: Path) -> set:
    return {child.name for child in folder.iterdir() if child.is_file() and not child.is_symlink()}


def load_entry(entry, *, verify: bool = True) -> dict:
    """Read an entry's arrays and record.

    Parameters
    ----------
    entry : TrainingEntry, str or Path
        The entry or its folder.
    verify : bool
        Check each file's sha256 against the record (raises on a damaged file).

    Returns
    -------
    dict
        ``left``, ``mask_left`` and, when present, ``right``, ``mask_right``,
        ``disparity_left``, ``instances_left``, ``instances_right`` (ndarrays, shape (rows, cols)); ``record`` (the JSON).
    """
    import tifffile

    path = entry.path if isinstance(entry, TrainingEntry) else Path(entry)
    record = _read_record(path)
    if record is None:
        raise InputError(f"{path} is not a complete training-set entry (no readable {ENTRY_FILE})")
    out = {"record": record}
    for key, info in record["files"].items():
        name = str(info.get("file", "")) if isinstance(info, dict) else ""
        if not name or Path(name).name != name or name in (".", "..") or name not in _listing(path):
            raise InputError(f"{path / ENTRY_FILE} names a file {name!r} that is not a file of the entry "
                             f"{path.name}; remove the entry (it goes to .trash) or restore its {ENTRY_FILE}")
        file = path / name
        if verify and file_sha256(file) != info["sha256"]:
            raise InputError(f"{file} does not match the sha256 in {ENTRY_FILE}: the file was changed or "
                             "damaged; remove the entry (it goes to .trash) or restore the file")
        out[key] = tifffile.imread(file)
    return out


def remove_entry(set_dir, entry) -> Path:
    """Move an entry to the set's ``.trash/`` folder (recoverable with :func:`restore_entry`).

    Returns
    -------
    Path
        Where the entry now lies.
    """
    folder = _set_dir(set_dir)
    path = _entry_path(set_dir, entry)
    listed = {e.name: e.path for e in list_entries(folder)}
    # Only a name the set itself lists, in the set itself (never "../x", a link or an outside path).
    if not (path.name in listed and path.parent.resolve() == folder.resolve() and not path.is_symlink()):
        shown = ", ".join(list(listed)[:5]) + (", ..." if len(listed) > 5 else "") or "none"
        raise InputError(f"{entry} is not an entry of the training set {folder}; its entries: {shown}")
    path = listed[path.name]
    trash = path.parent / TRASH
    trash.mkdir(exist_ok=True)
    target = trash / path.name
    k = 1
    while target.exists():
        target = trash / f"{path.name}~{k}"
        k += 1
    os.rename(path, target)
    return target


def list_trash(set_dir) -> list[TrainingEntry]:
    """Removed entries (in ``.trash/``), oldest number first."""
    trash = _set_dir(set_dir) / TRASH
    if not trash.is_dir():
        return []
    out = [TrainingEntry(child, _read_record(child) or {}) for child in trash.iterdir()
           if child.is_dir() and _PATTERN.match(child.name.split("~")[0])]
    return sorted(out, key=lambda e: (int(_PATTERN.match(e.name.split("~")[0]).group(1)), e.name))


def restore_entry(set_dir, name) -> Path:
    """Bring a removed entry back from ``.trash/`` (under a new number if its own is taken).

    Parameters
    ----------
    name : str or TrainingEntry
        The entry's folder name in the trash (as :func:`list_trash` gives it).
    """
    folder = _set_dir(set_dir)
    trashed = {e.name: e.path for e in list_trash(folder)}
    given = name.path if isinstance(name, TrainingEntry) else Path(str(name))
    # The name must be one that list_trash gives, in this set's own trash: a path ("../entry-000001",
    # "/elsewhere") would move a folder from outside the trash into the set.
    inside = isinstance(name, TrainingEntry) or given.name == str(name)
    if not (inside and given.name in trashed) or (isinstance(name, TrainingEntry)
                                                  and given.parent.resolve() != (folder / TRASH).resolve()):
        available = ", ".join(trashed) or "none"
        raise InputError(f"{name} is not a removed entry of {folder}; give one of the names list_trash gives "
                         f"(removed entries: {available})")
    source = trashed[given.name]
    if source.is_symlink():
        raise InputError(f"{source} is a link, not a removed entry; delete it from {folder / TRASH}")
    target = folder / source.name.split("~")[0]
    if target.exists():
        target = folder / f"entry-{max(_entry_numbers(folder), default=0) + 1:06d}"
    os.rename(source, target)
    return target


def clean_unfinished(set_dir, *, older_than_s: float = 3600.0) -> list[Path]:
    """Delete the temporary folders of saves that died (never listed as entries anyway).

    Only folders untouched for ``older_than_s`` seconds go, so a save in
    progress in another process is left alone. Returns the folders deleted.
    """
    folder = _set_dir(set_dir)
    if not folder.is_dir():
        return []
    now = time.time()
    gone = []
    for child in folder.iterdir():
        if child.is_dir() and child.name.startswith(_TMP_PREFIX) and now - child.stat().st_mtime >= older_than_s:
            shutil.rmtree(child, ignore_errors=True)
            gone.append(child)
    return gone

