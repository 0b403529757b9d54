"""Frames of an in-situ time series (or of a tilt series) from a TIFF or MRC stack, a video, a microscope
file (a Gatan .dm4 or Velox .emd movie, ...), a ``.npy``, a folder of images or an array.

Typical use::

    frames = read_stack("in_situ.tif")     # (n_frames, rows, cols) float32
    every_fifth = read_stack("in_situ.avi", frames=parse_frames("0:3000:5"))   # only those are read

A series is held in memory as float32; one that would take more than half the memory free is refused
with a message that says how to take a part of it or every n-th frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..checks import InputError, check_finite

__all__ = ["read_stack", "stack_info", "parse_frames", "frame_numbers", "VIDEO_SUFFIXES"]

#: Suffixes read as videos (through imageio).
VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".wmv", ".mpg", ".mpeg", ".gif", ".webm")
_PLAIN_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
_IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", ".dm3", ".dm4", ".emd", ".npy")


def _grey(frames: np.ndarray) -> np.ndarray:
    if frames.ndim == 4 and frames.shape[-1] in (3, 4):
        frames = frames[..., :3].mean(axis=-1)
    return frames


def parse_frames(text, *, name: str = "--frames") -> slice | None:
    """``"START:STOP[:STEP]"`` (either end may be left out: ``"::5"``, ``"100:"``) -> a ``slice``; blank -> ``None``.

    Frame numbers count from 0 in the file's order; STOP is not included.
    """
    if text is None or not str(text).strip():
        return None
    fields = str(text).strip().split(":")
    example = "e.g. 0:3000:5 for every fifth of the first 3000 frames, or ::2"
    if len(fields) not in (2, 3):
        raise InputError(f"{name} must be START:STOP or START:STOP:STEP ({example}), got {text!r}")
    try:
        start, stop, step = (int(f) if f.strip() else None for f in (fields + [""])[:3])
    except ValueError:
        raise InputError(f"{name} must be whole numbers START:STOP[:STEP] ({example}), got {text!r}") from None
    if any(v is not None and v < 0 for v in (start, stop)) or (step is not None and step < 1):
        raise InputError(f"{name}: frame numbers count from 0 and the step is 1 or more ({example}), got {text!r}")
    if start is not None and stop is not None and stop <= start:
        raise InputError(f"{name}: STOP ({stop}) must be after START ({start}), got {text!r}")
    return slice(start, stop, step)


def frame_numbers(selection: slice | None, n_frames: int) -> np.ndarray:
    """The file's frame number of each of the ``n_frames`` frames that ``selection`` kept."""
    start, step = (0, 1) if selection is None else (selection.start or 0, selection.step or 1)
    return start + step * np.arange(n_frames)


def _kept(index: int, selection: slice | None) -> bool:
    if selection is None:
        return True
    start, step = selection.start or 0, selection.step or 1
    return index >= start and (index - start) % step == 0 and (selection.stop is None or index < selection.stop)


def _past(index: int, selection: slice | None) -> bool:
    return selection is not None and selection.stop is not None and index >= selection.stop


def _free_memory() -> int | None:
    """Bytes of memory available now (``None`` where it cannot be told)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - no psutil, or no answer from the system
        return None


class _Budget:
    """Refuses a series whose frames, as float32, would take more than half the memory free when reading began."""

    def __init__(self, label: str, what: str):
        free = _free_memory()
        self.limit = None if free is None else free // 2
        self.label, self.what, self.used, self.count = label, what, 0, 0

    def add(self, shape, count: int = 1) -> None:
        """``count`` more frames of ``shape`` (rows, cols)."""
        self.count += count
        self.used += 4 * count * int(np.prod(shape[-2:]))
        if self.limit is not None and self.used > self.limit:
            raise InputError(
                f"{self.label}: {self.what} of {self.count} frames of {tuple(shape[-2:])} px takes "
                f"{self.used / 2**30:.1f} GB as float32, over half the memory free ({2 * self.limit / 2**30:.1f} GB); "
                + ("take a part of it or every n-th frame (--frames START:STOP:STEP, e.g. ::5), or bin the frames"
                   if self.what == "a time series" else "bin the images, or give part of it"))


def read_stack(source, *, name: str = "stack", what: str = "a time series", frames: slice | None = None,
               signal=None) -> np.ndarray:
    """Frames of a time series as one ``(n_frames, rows, cols)`` float32 array.

    Parameters
    ----------
    source : str, Path or array_like
        A multi-page TIFF, an MRC stack (``.mrc``, ``.st``, ``.ali``), a ``.npy``, a video (``.avi``, ``.mp4``,
        ``.gif``, ...: through imageio, or OpenCV where imageio has no video backend), a movie or series in a
        microscope format (``.dm3``/``.dm4``, Velox ``.emd``, ``.hspy``, ``.ser``, ...: the first stack of 2D
        frames in it, through RosettaSciIO, :func:`~napari_stereo_tem.images.read_image_stack`), a folder of
        single images (read in the order of their names), or an array ``(n_frames, rows, cols)``. Colour frames
        become grey.
    name : str
        What the source is called in messages (an option or argument name).
    what : str
        What the frames are, for messages ("a time series", "a tilt series").
    frames : slice, optional
        Only these frames (:func:`parse_frames`); the others of a video, a folder or a multi-page TIFF are
        not read at all. :func:`frame_numbers` gives their numbers in the file.
    signal : int or str, optional
        Which stack of a microscope file holding several (a Velox ``.emd`` with one movie per detector): its
        number (from 0) or title (:func:`~napari_stereo_tem.images.read_image_stack`); default the first.

    Raises
    ------
    InputError
        Unreadable file, fewer than two frames, frames of different shapes,
        frames too small, NaN/inf, more than half the memory free.
    """
    selection = frames
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise InputError(f"{name} {path} does not exist; give a TIFF or MRC stack, a video, a microscope movie "
                             "(.dm4, .emd, ...) or a folder of images")
        label = path.name
        budget = _Budget(label, what)
        _check_signal(path, signal, name)
        if path.is_dir():
            frames = _read_folder(path, selection, budget)
        else:
            frames = _read_file(path, selection, budget, signal)
    else:
        if selection is not None and np.ndim(source) >= 3:
            source = source[selection]  # before anything is read: a lazy (dask) stack reads only these frames
        if np.ndim(source) >= 3:  # a lazy stack (a movie opened in napari) is read only if it fits
            _Budget(name, what).add(np.shape(source)[1:3], count=int(np.shape(source)[0]))
        frames = np.asarray(source)
        if not (np.issubdtype(frames.dtype, np.number) or frames.dtype == bool):
            raise InputError(f"{name} must hold numbers, got dtype {frames.dtype}")
        label = name
    frames = _grey(frames)
    if frames.ndim == 2:
        raise InputError(f"{label} is a single image {frames.shape}; {what} needs at least two frames "
                         "(a TIFF or MRC stack, a video, a microscope movie or a folder of images)")
    if frames.ndim != 3:
        raise InputError(f"{label} must be a stack of shape (n_frames, rows, cols), got shape {frames.shape}")
    if frames.shape[0] < 2:
        raise InputError(f"{label} holds {frames.shape[0]} frame; {what} needs at least two")
    if min(frames.shape[1:]) < 16:
        raise InputError(f"{label}: frames of {frames.shape[1:]} are too small; at least 16 pixels per side")
    frames = frames.astype(np.float32)
    check_finite(frames, name=label)
    return frames


def _microscope_format(path: Path) -> bool:
    suffix = path.suffix.lower()
    return path.is_file() and suffix not in (".tif", ".tiff", ".npy", *VIDEO_SUFFIXES, *_PLAIN_IMAGE_SUFFIXES)


def _check_signal(path: Path, signal, name: str) -> None:
    if signal is not None and not _microscope_format(path):
        raise InputError(f"{name} {path.name}: choosing a stack by number or title (--signal) is for microscope "
                         "files that hold several (.emd, .dm4, .hspy, ...); this holds one")


def stack_info(source, *, signal=None, name: str = "stack") -> dict:
    """What a microscope movie's file says of the stack taken (``signal``, default the first): ``pixel_size_nm``,
    ``frame_interval_s``, its ``title`` and the titles of the ``others`` it holds (``None``, ``None``, ``""``, ``()``
    for other sources and where unreadable: reading the frames names the problem); nothing of the frames is read.

    Raises
    ------
    InputError
        ``signal`` given for a source that is not a microscope file, or naming no stack in it.
    """
    found = {"pixel_size_nm": None, "frame_interval_s": None, "title": "", "others": ()}
    if signal is not None and isinstance(source, (str, Path)):
        _check_signal(Path(source), signal, name)
    if isinstance(source, (str, Path)) and _microscope_format(Path(source)):
        from ..images import read_image_stack

        try:
            stack = read_image_stack(source, signal=signal)
        except InputError:
            if signal is not None:
                raise
            return found
        found.update(pixel_size_nm=stack.pixel_size_nm, frame_interval_s=stack.frame_interval_s, title=stack.title,
                     others=stack.others)
    return found


def _read_file(path: Path, selection: slice | None, budget: _Budget, signal=None) -> np.ndarray:
    suffix = path.suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            frames = _read_tiff(path, selection, budget)
        elif suffix == ".npy":
            frames = _selected(np.load(path, allow_pickle=False, mmap_mode="r"), selection, budget)
        elif suffix in VIDEO_SUFFIXES:
            import imageio.v3 as iio

            try:
                frames = _stacked(iio.imiter(path), selection, budget)
            except InputError:
                raise
            except Exception:
                frames = _read_with_opencv(path, selection, budget)  # no ffmpeg/pyav backend: OpenCV's own
        elif suffix in _PLAIN_IMAGE_SUFFIXES:
            import imageio.v3 as iio

            frames = _selected(iio.imread(path), selection, budget)
        else:  # a microscope format (.dm3/.dm4, .emd, .hspy, .ser, MRC, ...): lazily, only the frames taken read
            from ..images import read_image_stack

            frames = _selected(read_image_stack(path, signal=signal).data, selection, budget)
    except InputError:
        raise
    except Exception as err:
        raise InputError(f"could not read {path.name} as a stack of frames: {err}") from err
    frames = np.asarray(frames)
    if frames.size == 0 and selection is not None:
        asked = ":".join("" if v is None else str(v) for v in (selection.start, selection.stop, selection.step))
        raise InputError(f"{path.name} holds none of the frames asked for ({asked}): it has fewer")
    if frames.size == 0:
        raise InputError(f"{path.name} holds no image data (truncated, or not an image file?)")
    return frames


def _selected(frames, selection: slice | None, budget: _Budget) -> np.ndarray:
    """The selected frames of a stack read (or mapped) whole, copied into memory once their size is checked."""
    if selection is not None and np.ndim(frames) >= 3:
        frames = frames[selection]
    if np.ndim(frames) >= 3:
        budget.add(np.shape(frames)[1:3] if np.ndim(frames) == 4 else np.shape(frames), count=int(np.shape(frames)[0]))
    return np.array(frames)


def _stacked(frames, selection: slice | None, budget: _Budget) -> np.ndarray:
    """The selected frames of an iterator over frames (a video read frame by frame), the others skipped."""
    kept = []
    for index, frame in enumerate(frames):
        if _past(index, selection):
            break
        if _kept(index, selection):
            frame = _grey(np.asarray(frame)[None])[0]
            budget.add(frame.shape)
            kept.append(frame)
    return np.stack(kept) if kept else np.zeros((0, 0, 0))


def _read_tiff(path: Path, selection: slice | None, budget: _Budget) -> np.ndarray:
    """A multi-page TIFF page by page (only the selected pages); other layouts whole."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        pages = tif.pages
        if len(pages) > 1 and len(tif.series) == 1 and tif.series[0].shape[0] == len(pages) and pages[0].ndim == 2:
            return _stacked((pages[k].asarray() for k in range(len(pages))), selection, budget)
        return _selected(tif.asarray(), selection, budget)


def _read_with_opencv(path: Path, selection: slice | None, budget: _Budget) -> np.ndarray:
    """The selected frames of a video, through OpenCV's video reader (grey levels)."""
    import cv2

    capture = cv2.VideoCapture(str(path))

    def frames():
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame

    try:
        stack = _stacked(frames(), selection, budget)
    finally:
        capture.release()
    if not stack.size and selection is None:
        raise ValueError("no frame could be decoded (not a video, or a codec this installation lacks)")
    return stack


def _read_folder(folder: Path, selection: slice | None, budget: "_Budget") -> np.ndarray:
    from ..images import read_image

    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES)
    if not paths:
        raise InputError(f"folder {folder} holds no images ({', '.join(_IMAGE_SUFFIXES)})")
    if selection is not None:
        paths = paths[selection]
    frames = []
    for p in paths:
        frames.append(np.asarray(read_image(p).data))
        budget.add(frames[-1].shape[:2])
    frames = [f[..., :3].mean(axis=-1) if f.ndim == 3 and f.shape[-1] in (3, 4) else f for f in frames]
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        first = frames[0].shape
        odd = next(p for p, f in zip(paths, frames) if f.shape != first)
        raise InputError(f"the frames in {folder} differ in shape: {paths[0].name} {first} vs {odd.name} "
                         f"{np.asarray(read_image(odd).data).shape}; crop or bin them to one size")
    return np.stack(frames)
