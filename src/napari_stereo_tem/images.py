"""Reading 2D images and stereo pairs, with stereo angle and pixel size from metadata.

TIFF and PNG are read with tifffile/imageio; microscope formats (.dm3/.dm4,
.emd, .hspy, .ser, ...) through RosettaSciIO. Tilts and pixel size are taken
from the file where it records them; whatever is missing must be given.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .checks import InputError, check_image, check_pair, check_stereo_angle

__all__ = ["Image2D", "ImageStack", "StereoPair", "read_image", "read_image_stack", "read_stereo_pair", "as_image",
           "quiet_reader_logs", "grey_levels", "binned", "read_image_stacks", "read_image_and_stacks"]

_PLAIN_SUFFIXES = {".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", ".npy"}


def binned(image: np.ndarray, factor: int, *, reduce=np.mean) -> np.ndarray:
    """``factor x factor`` binning (the image cropped to a multiple of ``factor``)."""
    if factor == 1:
        return image
    rows, cols = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    blocks = image[:rows, :cols].reshape(rows // factor, factor, cols // factor, factor)
    return reduce(blocks, axis=(1, 3))


def grey_levels(data) -> np.ndarray:
    """An image as the grey levels the pipeline reads: colours averaged, a missing frame set flat.

    - An RGB(A) image (``(rows, cols, 3 or 4)``) becomes the mean of its colours. Micrographs
      exported as PNG or JPEG, or saved by viewers, are often RGB with equal channels: their grey
      levels come back unchanged (the alpha channel is dropped); a grey image with an alpha channel
      (``(rows, cols, 2)``) keeps its grey channel.
    - One image saved as a stack of one frame (``(1, rows, cols)``, as many acquisition programs
      and ImageJ write single frames) or with one channel (``(rows, cols, 1)``) is that image.
    - Non-finite pixels (NaN, inf) that lie in regions touching the image's edge, as aligned stacks
      saved as floating point mark the corners outside the field, are set to the median of the
      field: a flat frame, which detection fills and ignores
      (:func:`napari_stereo_tem.stereo.alignment.masks.frame_mask`). Non-finite pixels inside the
      field are left for the checks to refuse.
    """
    array = np.asarray(data)
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 3 and array.shape[-1] in (1, 2):
        array = array[..., 0]
    elif array.ndim == 3 and array.shape[-1] in (3, 4):
        array = array[..., :3].astype(np.float32).mean(axis=-1)
    if array.ndim == 2 and np.issubdtype(array.dtype, np.floating):
        missing = ~np.isfinite(array)
        if missing.any() and not missing.all():
            from scipy import ndimage

            pieces, _ = ndimage.label(missing, structure=np.ones((3, 3), bool))
            edge = np.unique(np.concatenate([pieces[0], pieces[-1], pieces[:, 0], pieces[:, -1]]))
            inside = np.setdiff1d(np.unique(pieces[missing]), edge)
            if inside.size == 0:  # all of it is frame
                array = np.where(missing, np.median(array[~missing]), array).astype(array.dtype)
    return array


@dataclass
class Image2D:
    """A 2D image with what its file says about it."""

    data: np.ndarray
    name: str = "image"
    pixel_size_nm: float | None = None
    tilt_deg: float | None = None
    metadata: dict = field(default_factory=dict)


@dataclass
class StereoPair:
    """Two views of one specimen: ``left`` at ``-phi/2``, ``right`` at ``+phi/2``."""

    left: np.ndarray
    right: np.ndarray
    stereo_angle_deg: float
    pixel_size_nm: float | None = None
    names: tuple[str, str] = ("left", "right")
    metadata: dict = field(default_factory=dict)


def _tiff_pixel_size_nm(path: Path) -> float | None:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if tif.imagej_metadata and tif.imagej_metadata.get("unit") in ("nm", "nanometer"):
                res = tif.pages[0].tags.get("XResolution")
                if res is not None:
                    num, den = res.value
                    return den / num if num else None
    except (tifffile.TiffFileError, KeyError, ValueError, ZeroDivisionError):
        return None
    return None


@contextlib.contextmanager
def quiet_reader_logs():
    """Silence HyperSpy's and RosettaSciIO's own log lines while a file is read.

    On a file they cannot read they log "please report this error to the
    RosettaSciIO developers" (and guesses such as a missing ``.hdr``) before
    raising; the caller turns the failure into one message naming the file.
    """
    loggers = [logging.getLogger(name) for name in ("hyperspy", "rsciio")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _signals(path: Path, *, lazy: bool = False) -> list:
    """Every signal HyperSpy (RosettaSciIO) reads from ``path``, its own log lines silenced."""
    try:
        import hyperspy.api as hs
    except ImportError as err:  # pragma: no cover - hyperspy is a dependency
        raise InputError(f"reading {path.suffix} files needs HyperSpy ({err})") from err
    try:
        with quiet_reader_logs():
            signal = hs.load(str(path), lazy=lazy)
    except Exception as err:  # RosettaSciIO raises many types; name the file
        raise InputError(f"could not read {path.name}: {err}") from err
    return signal if isinstance(signal, list) else [signal]


#: Nanometres per unit of the length units microscope files use for their pixel size.
_NM_PER_UNIT = {"nm": 1.0, "µm": 1e3, "um": 1e3, "Å": 0.1, "A": 0.1}


def _pixel_size_nm(signal) -> float | None:
    axes = signal.axes_manager.signal_axes
    if len(axes) == 2 and str(axes[0].units) in _NM_PER_UNIT:
        return float(axes[0].scale) * _NM_PER_UNIT[str(axes[0].units)]
    return None


def _held(signals) -> str:
    """What the signals of a file are, for a message: ``'HAADF (64 x 64), EDS (64 x 64 | 2048)'``."""
    def one(signal) -> str:
        navigation, frame = (" x ".join(str(n) for n in shape[::-1]) for shape in
                             (signal.axes_manager.navigation_shape, signal.axes_manager.signal_shape))
        return f"{signal.metadata.General.title or 'untitled'} ({navigation + ' | ' if navigation else ''}{frame})"

    return ", ".join(one(signal) for signal in signals)


def _read_with_rosettasciio(path: Path, signals: list | None = None) -> Image2D:
    """The first 2D image of a microscope file; ``signals`` from an opening already made (lazy).

    The file is opened lazily, so a 4D-STEM dataset or a long movie given here is not read
    whole just to find that it holds no 2D image.
    """
    if signals is None:
        signals = _signals(path, lazy=True)
    images = [s for s in signals if s.axes_manager.signal_dimension == 2 and s.axes_manager.navigation_dimension == 0]
    if not images:
        raise InputError(f"{path.name} holds no single 2D image (it holds {_held(signals)})")
    signal = images[0]
    tilt = None
    md = signal.metadata
    if md.has_item("Acquisition_instrument.TEM.Stage.tilt_alpha"):
        tilt = float(md.get_item("Acquisition_instrument.TEM.Stage.tilt_alpha"))
    return Image2D(np.asarray(signal.data), name=path.stem, pixel_size_nm=_pixel_size_nm(signal), tilt_deg=tilt,
                   metadata={"source": str(path)})


@dataclass
class ImageStack:
    """A stack of 2D frames from a microscope file (an in-situ movie, a tilt series).

    ``data`` is ``(n_frames, rows, cols)``, lazy (dask) where the format allows, so that taking some
    frames reads only those. ``frame_interval_s`` is the time between frames where the file says so.
    """

    data: object
    name: str
    pixel_size_nm: float | None = None
    frame_interval_s: float | None = None
    title: str = ""
    others: tuple = ()


#: Suffixes of MRC stacks (tilt series as IMOD and SerialEM write them), read through RosettaSciIO's MRC reader.
MRC_SUFFIXES = (".mrc", ".st", ".ali", ".preali")


def _mrc_stack(path: Path) -> ImageStack:
    from rsciio.mrc import file_reader

    try:
        with quiet_reader_logs():
            found = file_reader(str(path), lazy=True)[0]
    except Exception as err:  # RosettaSciIO raises many types; name the file
        raise InputError(f"could not read {path.name} as an MRC stack: {err}") from err
    data = found["data"]
    if data.ndim != 3:
        raise InputError(f"{path.name} holds an MRC volume of shape {tuple(data.shape)}, not a stack of 2D frames")
    frame_axis = found["axes"][-1]
    units = _NM_PER_UNIT.get(str(frame_axis.get("units")))
    pixel = float(frame_axis["scale"]) * units if units and frame_axis.get("scale") else None
    return ImageStack(data, name=path.stem, pixel_size_nm=pixel)


def _title(signal) -> str:
    return str(signal.metadata.General.title or "untitled")


def _chosen_stack(path: Path, stacks: list, choice) -> int:
    """Index in ``stacks`` of the one ``choice`` names: its number (from 0) or its title (case ignored)."""
    listing = ", ".join(f"{k} '{_title(s)}'" for k, s in enumerate(stacks))
    text = str(choice).strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < len(stacks):
            raise InputError(f"{path.name} holds {len(stacks)} stack(s) of frames, numbered from 0: {listing}; "
                             f"there is no number {index}")
        return index
    titles = [_title(s).lower() for s in stacks]
    exact = [k for k, t in enumerate(titles) if t == text.lower()]
    partial = [k for k, t in enumerate(titles) if text.lower() in t]
    if len(exact) == 1 or (not exact and len(partial) == 1):
        return (exact or partial)[0]
    why = "several are" if len(exact) > 1 or len(partial) > 1 else "none is"
    raise InputError(f"{path.name} holds the stacks of frames {listing}; {why} titled {text!r}: give a number "
                     "or a title that names one")


def _stack_signals(path: Path, signals: list | None = None) -> list:
    """The lazy signals of a microscope file that are stacks of 2D frames (one navigation axis), in file order;
    ``signals`` from an opening already made."""
    if signals is None:
        signals = _signals(path, lazy=True)
    stacks = [s for s in signals if s.axes_manager.signal_dimension == 2 and s.axes_manager.navigation_dimension == 1]
    if not stacks:
        raise InputError(f"{path.name} holds no stack of 2D frames (one axis of frames; it holds {_held(signals)})")
    return stacks


def _image_stack(path: Path, stacks: list, index: int) -> ImageStack:
    signal = stacks[index]
    axis = signal.axes_manager.navigation_axes[0]
    seconds = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "min": 60.0}.get(str(axis.units))
    interval = float(axis.scale) * seconds if seconds and float(axis.scale) > 0 else None
    return ImageStack(signal.data, name=path.stem, pixel_size_nm=_pixel_size_nm(signal), frame_interval_s=interval,
                      title=str(signal.metadata.General.title or ""),
                      others=tuple(_title(s) for k, s in enumerate(stacks) if k != index))


def _existing(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError(f"no such file: {path}")
    return path


def read_image_stack(path, *, signal=None) -> ImageStack:
    """A stack of 2D frames (one navigation axis) in a microscope file: .dm3/.dm4, .emd, .hspy, .ser, an MRC
    stack (.mrc, .st, .ali), ... (through RosettaSciIO).

    A Velox ``.emd`` may hold several (one movie per detector): ``signal`` chooses one by its number
    (from 0) or its title (case ignored; a part of it that names one); default the first. The
    titles of the others are listed in ``others``.

    Raises
    ------
    InputError
        Unreadable file, no stack of 2D frames in it (the message says what it holds), or no
        stack that ``signal`` names (the message lists them).
    """
    path = _existing(path)
    if path.suffix.lower() in MRC_SUFFIXES:
        if signal is not None and str(signal).strip() != "0":
            raise InputError(f"{path.name} is an MRC file: it holds one stack of frames (number 0), not {signal!r}")
        return _mrc_stack(path)
    stacks = _stack_signals(path)
    return _image_stack(path, stacks, 0 if signal is None else _chosen_stack(path, stacks, signal))


def read_image_stacks(path) -> list[ImageStack]:
    """Every stack of 2D frames in a microscope file, in file order, from one opening of the file
    (:func:`read_image_stack` for each, without opening it once per stack)."""
    path = _existing(path)
    if path.suffix.lower() in MRC_SUFFIXES:
        return [_mrc_stack(path)]
    stacks = _stack_signals(path)
    return [_image_stack(path, stacks, k) for k in range(len(stacks))]


def read_image_and_stacks(path) -> tuple[Image2D | None, list[ImageStack]]:
    """A microscope file's first 2D image and every stack of 2D frames in it, from one (lazy) opening.

    A Velox session holds an overview image and a movie per detector; a .dm4 one image. Either part
    may be missing (``None``, ``[]``); a file holding neither raises :class:`InputError` saying what it holds.
    """
    path = _existing(path)
    if path.suffix.lower() in MRC_SUFFIXES:
        return None, [_mrc_stack(path)]
    if path.suffix.lower() in _PLAIN_SUFFIXES:
        return read_image(path), []
    signals = _signals(path, lazy=True)
    try:
        image = _finished(_read_with_rosettasciio(path, signals), path)
    except InputError:
        image = None
    try:
        found = _stack_signals(path, signals)
    except InputError:
        if image is None:
            raise InputError(f"{path.name} holds no 2D image and no stack of 2D frames (it holds "
                             f"{_held(signals)})") from None
        found = []
    return image, [_image_stack(path, found, k) for k in range(len(found))]


def _finished(image: Image2D, path: Path) -> Image2D:
    """Grey levels of one 2D image as read; a stack refused with the commands that take one."""
    image.data = grey_levels(image.data)  # colours and a NaN frame, whatever the format
    if image.data.ndim == 3:
        raise InputError(f"{path.name} holds a stack of {image.data.shape[0]} frames of {image.data.shape[1:]}, "
                         "not one image: give one frame per view, a tilt series with `stereo-tem reconstruct "
                         "--series`, or a movie with `stereo-tem track`")
    check_image(image.data, name=path.name)
    return image


def read_image(path) -> Image2D:
    """Read one 2D image from ``path`` (TIFF, PNG, .npy or a RosettaSciIO format)."""
    path = _existing(path)
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        import tifffile

        try:
            data = tifffile.imread(path)
        except Exception as err:
            raise InputError(f"could not read TIFF {path.name}: {err}") from err
        if data.size == 0:
            raise InputError(f"could not read TIFF {path.name}: it holds no image data (truncated or not a TIFF?)")
        image = Image2D(data, name=path.stem, pixel_size_nm=_tiff_pixel_size_nm(path),
                        metadata={"source": str(path)})
    elif suffix == ".npy":
        image = Image2D(np.load(path, allow_pickle=False), name=path.stem, metadata={"source": str(path)})
    elif suffix in _PLAIN_SUFFIXES:
        import imageio.v3 as iio

        try:
            data = iio.imread(path)
        except Exception as err:
            raise InputError(f"could not read {path.name}: {err}") from err
        image = Image2D(data, name=path.stem, metadata={"source": str(path)})
    else:
        image = _read_with_rosettasciio(path)
    return _finished(image, path)


def as_image(source, *, name: str = "image") -> Image2D:
    """Turn a path, an array or a HyperSpy signal into an :class:`Image2D`."""
    if isinstance(source, Image2D):
        return source
    if isinstance(source, (str, Path)):
        return read_image(source)
    if hasattr(source, "axes_manager") and hasattr(source, "data"):
        return Image2D(np.asarray(source.data), name=getattr(source.metadata.General, "title", name) or name)
    return Image2D(check_image(source, name=name), name=name)


def read_stereo_pair(left, right, *, stereo_angle_deg: float | None = None,
                     pixel_size_nm: float | None = None, swap: bool = False) -> StereoPair:
    """Read a stereo pair from paths, arrays or signals.

    The stereo angle is taken from ``stereo_angle_deg`` when given, otherwise
    from the difference of the stage tilts recorded in the two files; the
    pixel size likewise. ``swap`` exchanges the views (which one is "left"
    depends on the instrument).
    """
    first, second = as_image(left, name="left"), as_image(right, name="right")
    if swap:
        first, second = second, first
    check_pair(first.data, second.data, names=(first.name, second.name))
    if np.array_equal(first.data, second.data):
        raise InputError(f"the two views are identical ({first.name} and {second.name}): the same image given "
                         "twice? a stereo pair needs the two tilts (the depth would come out flat)")
    for view in (first, second):
        if view.data.dtype == bool:  # masks saved as images: 0/1 grey levels
            view.data = view.data.astype(np.float32)
    if stereo_angle_deg is None:
        if first.tilt_deg is None or second.tilt_deg is None:
            raise InputError(
                "the stereo angle is not recorded in the files; give it (degrees, e.g. --angle 8)"
            )
        stereo_angle_deg = second.tilt_deg - first.tilt_deg
    angle = check_stereo_angle(stereo_angle_deg)
    if pixel_size_nm is None:
        pixel_size_nm = first.pixel_size_nm
    if pixel_size_nm is not None and not (np.isfinite(pixel_size_nm) and pixel_size_nm > 0):
        raise InputError(f"pixel size must be a positive number of nm, got {pixel_size_nm}")
    return StereoPair(first.data, second.data, angle, pixel_size_nm, names=(first.name, second.name),
                      metadata={"left": first.metadata, "right": second.metadata, "swapped": bool(swap)})
