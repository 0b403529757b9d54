"""Frames of an in-situ time series (or of a tilt series) from a TIFF or MRC stack, a video, a ``.npy``, a
folder of images or an array.

Typical use::

    frames = read_stack("in_situ.tif")     # (n_frames, rows, cols) float32
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..checks import InputError, check_finite

__all__ = ["read_stack", "VIDEO_SUFFIXES"]

#: Suffixes read as videos (through imageio).
VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".wmv", ".mpg", ".mpeg", ".gif", ".webm")
_IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", ".dm3", ".dm4", ".emd", ".npy")
#: Suffixes read as MRC stacks (tilt series as IMOD and SerialEM write them), through RosettaSciIO.
MRC_SUFFIXES = (".mrc", ".st", ".ali", ".preali")


def _grey(frames: np.ndarray) -> np.ndarray:
    if frames.ndim == 4 and frames.shape[-1] in (3, 4):
        frames = frames[..., :3].mean(axis=-1)
    return frames


def read_stack(source, *, name: str = "stack", what: str = "a time series") -> np.ndarray:
    """Frames of a time series as one ``(n_frames, rows, cols)`` float32 array.

    Parameters
    ----------
    source : str, Path or array_like
        A multi-page TIFF, an MRC stack (``.mrc``, ``.st``, ``.ali``), a ``.npy``, a video (``.avi``, ``.mp4``,
        ``.gif``, ...: through imageio, or OpenCV where imageio has no video backend), a folder of single images
        (read in the order of their names), or an array ``(n_frames, rows, cols)``. Colour frames become grey.
    name : str
        What the source is called in messages (an option or argument name).
    what : str
        What the frames are, for messages ("a time series", "a tilt series").

    Raises
    ------
    InputError
        Unreadable file, fewer than two frames, frames of different shapes,
        frames too small, NaN/inf.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise InputError(f"{name} {path} does not exist; give a TIFF or MRC stack, a video or a folder of images")
        if path.is_dir():
            frames = _read_folder(path)
        else:
            frames = _read_file(path)
        label = path.name
    else:
        frames = np.asarray(source)
        if not (np.issubdtype(frames.dtype, np.number) or frames.dtype == bool):
            raise InputError(f"{name} must hold numbers, got dtype {frames.dtype}")
        label = name
    frames = _grey(frames)
    if frames.ndim == 2:
        raise InputError(f"{label} is a single image {frames.shape}; {what} needs at least two frames "
                         "(a TIFF or MRC stack, a video or a folder of images)")
    if frames.ndim != 3:
        raise InputError(f"{label} must be a stack of shape (n_frames, rows, cols), got shape {frames.shape}")
    if frames.shape[0] < 2:
        raise InputError(f"{label} holds {frames.shape[0]} frame; {what} needs at least two")
    if min(frames.shape[1:]) < 16:
        raise InputError(f"{label}: frames of {frames.shape[1:]} are too small; at least 16 pixels per side")
    frames = frames.astype(np.float32)
    check_finite(frames, name=label)
    return frames


def _read_file(path: Path) -> np.ndarray:
    suffix = path.suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            import tifffile

            frames = tifffile.imread(path)
        elif suffix == ".npy":
            frames = np.load(path, allow_pickle=False)
        elif suffix in MRC_SUFFIXES:
            from rsciio.mrc import file_reader

            frames = file_reader(str(path))[0]["data"]
        else:
            import imageio.v3 as iio

            if suffix in VIDEO_SUFFIXES:
                try:
                    frames = iio.imread(path, index=None)
                except Exception:
                    frames = _read_with_opencv(path)   # no ffmpeg/pyav backend for imageio: OpenCV's own
            else:
                frames = iio.imread(path)
    except Exception as err:
        raise InputError(f"could not read {path.name} as a stack of frames: {err}") from err
    frames = np.asarray(frames)
    if frames.size == 0:
        raise InputError(f"{path.name} holds no image data (truncated, or not an image file?)")
    return frames


def _read_with_opencv(path: Path) -> np.ndarray:
    """Every frame of a video, through OpenCV's video reader (grey levels)."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame)
    finally:
        capture.release()
    if not frames:
        raise ValueError("no frame could be decoded (not a video, or a codec this installation lacks)")
    return np.stack(frames)


def _read_folder(folder: Path) -> np.ndarray:
    from ..images import read_image

    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES)
    if not paths:
        raise InputError(f"folder {folder} holds no images ({', '.join(_IMAGE_SUFFIXES)})")
    frames = [np.asarray(read_image(p).data) for p in paths]
    frames = [f[..., :3].mean(axis=-1) if f.ndim == 3 and f.shape[-1] in (3, 4) else f for f in frames]
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        first = frames[0].shape
        odd = next(p for p, f in zip(paths, frames) if f.shape != first)
        raise InputError(f"the frames in {folder} differ in shape: {paths[0].name} {first} vs {odd.name} "
                         f"{np.asarray(read_image(odd).data).shape}; crop or bin them to one size")
    return np.stack(frames)
