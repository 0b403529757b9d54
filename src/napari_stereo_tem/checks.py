"""Input checks shared by every stage.

Each check raises :class:`InputError` with a message that names the argument,
the problem and the fix, so the CLI and napari can show it as it is.
"""

from __future__ import annotations

import numpy as np

__all__ = ["InputError", "check_image", "check_pair", "check_stereo_angle", "check_finite", "parse_numbers"]


class InputError(ValueError):
    """A problem with the user's input (not a bug); front ends show the message as it is."""


def check_finite(array: np.ndarray, *, name: str = "image") -> None:
    """Refuse arrays holding NaN or inf."""
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise InputError(
            f"{name} holds {bad} NaN or infinite value(s); replace them (e.g. with the image median) before processing"
        )


def check_image(image, *, name: str = "image", ndim: int = 2, min_size: int = 8,
                allow_constant: bool = False) -> np.ndarray:
    """Return ``image`` as a numpy array after checking it is a usable ``ndim``-D image.

    Raises
    ------
    InputError
        Wrong dimensionality, too small, not numeric, NaN/inf, or constant.
    """
    array = np.asarray(image)
    if array.ndim == ndim + 1 and array.shape[-1] in (3, 4) and ndim == 2:
        raise InputError(f"{name} is an RGB(A) image of shape {array.shape}; convert it to grey levels first "
                         "(napari_stereo_tem.images.grey_levels)")
    if array.ndim != ndim:
        raise InputError(f"{name} must be {ndim}-D, got an array of shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise InputError(f"{name} must hold numbers, got dtype {array.dtype}")
    if min(array.shape) < min_size:
        raise InputError(f"{name} is too small ({array.shape}); at least {min_size} pixels per side are needed")
    if np.issubdtype(array.dtype, np.floating):
        check_finite(array, name=name)
    if not allow_constant and array.size and array.min() == array.max():
        raise InputError(f"{name} is constant (every pixel is {array.flat[0]}); is it empty or saturated?")
    return array


def check_pair(left, right, *, names: tuple[str, str] = ("left", "right")) -> tuple[np.ndarray, np.ndarray]:
    """Check two views of a stereo pair: each a usable 2D image, both of one shape."""
    left = check_image(left, name=names[0])
    right = check_image(right, name=names[1])
    if left.shape != right.shape:
        raise InputError(
            f"the two views differ in shape: {names[0]} {left.shape} vs {names[1]} {right.shape}; "
            "crop or bin them to the same size"
        )
    return left, right


def check_stereo_angle(angle_deg: float, *, name: str = "stereo angle", limit_deg: float = 90.0,
                       typical: str = "1-15 degrees for a stereo pair") -> float:
    """An angle in degrees must be finite, non-zero and below ``limit_deg`` in magnitude."""
    try:
        angle = float(angle_deg)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number of degrees, got {angle_deg!r}") from None
    if not np.isfinite(angle) or angle == 0:
        raise InputError(f"{name} must be a non-zero number of degrees (typically {typical}), got {angle_deg!r}")
    if abs(angle) >= limit_deg:
        raise InputError(f"{name} of {angle} degrees is absurd; typical values are {typical}")
    return angle


def parse_numbers(text, *, name: str, count=None, kind=float, example: str = "", form: str = "") -> tuple | None:
    """Numbers typed as text, ``"-3, 9.5"`` -> ``(-3.0, 9.5)``; ``None`` or blank -> ``None``.

    Commas, semicolons, white space and ``x`` (as in ``512x512``) separate the numbers.

    Parameters
    ----------
    name : str
        What the numbers are, as the user knows it (an option such as ``--crop``, or a field).
    count : int or tuple of int, optional
        How many numbers are allowed (one count, or the allowed counts); any number when omitted.
    kind : type
        ``float`` or ``int`` (whole numbers only: ``"2.5"`` is refused, ``"2.0"`` is 2).
    example : str
        A valid value for the message, e.g. ``"-24,24"``.
    form : str
        What the numbers stand for, e.g. ``"MIN,MAX"`` (message: "--disparity-range must be MIN,MAX: ...").
    """
    if text is None or not str(text).strip():
        return None
    fields = str(text).replace(",", " ").replace(";", " ").replace("x", " ").split()
    counts = (count,) if isinstance(count, int) else tuple(count or ())
    what = " or ".join(str(c) for c in counts) + " " if counts else ""
    unit = "whole numbers" if kind is int else "numbers"
    hint = f" (e.g. {example})" if example else ""
    if form:
        name = f"{name} must be {form}:"
    else:
        name = f"{name} must be"
    values = []
    for field in fields:
        try:
            value = float(field)
        except ValueError:
            raise InputError(f"{name} {what}{unit} separated by commas{hint}; {field!r} in {text!r} "
                             "is not a number") from None
        if not np.isfinite(value) or (kind is int and not value.is_integer()):
            raise InputError(f"{name} {what}finite {unit}{hint}; got {text!r}")
        values.append(int(value) if kind is int else value)
    if counts and len(values) not in counts:
        raise InputError(f"{name} {what}{unit} separated by commas{hint}; got {len(values)} in {text!r}")
    return tuple(values)
