"""Stereo geometry of two virtual detectors (tilt-less stereo, DESIGN section 3.2).

A detector pixel at ``k`` (relative to the direct-beam centre) sees the specimen
along a ray tilted by ``|k| * mrad_per_px`` towards ``k``. Two discs therefore
give two views whose **stereo angle** is the angular separation of their centres,
``|k1 - k2| * mrad_per_px``, and whose disparities run along ``k2 - k1`` turned
into the image frame by the scan-to-diffraction rotation.

Angles in the plane are in degrees, measured from ``+x`` (columns) towards
``+y`` (rows) of the array, as ``atan2(dy, dx)``. ``scan_rotation_deg`` is the
angle by which a direction on the detector must be turned to give the same
direction in the scan image.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from ..checks import InputError
from .masks import Disc, as_disc

__all__ = [
    "stereo_angle_deg",
    "pair_stereo_angles",
    "epipolar_direction_deg",
    "rotation_to_horizontal_deg",
    "rotate_image",
    "estimate_scan_rotation_deg",
    "estimate_scan_rotation",
    "mirror_disc",
]


def _check_calibration(mrad_per_px: float) -> float:
    try:
        value = float(mrad_per_px)
    except (TypeError, ValueError):
        raise InputError(f"mrad_per_px must be a number, got {mrad_per_px!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise InputError(f"mrad_per_px must be positive; calibrate with the convergence semi-angle "
                         f"(mrad_per_px = convergence_mrad / direct-disc radius), got {mrad_per_px!r}")
    return value


def stereo_angle_deg(disc1, disc2, mrad_per_px: float) -> float:
    """Stereo angle (degrees) between the views of two discs: ``|k1 - k2| px * mrad/px``.

    Examples
    --------
    Discs on opposite edges of a 60 mrad direct disc are 120 mrad apart: 6.88 degrees.
    """
    a, b = as_disc(disc1), as_disc(disc2)
    mrad = float(np.hypot(a.cy - b.cy, a.cx - b.cx)) * _check_calibration(mrad_per_px)
    return float(np.rad2deg(mrad * 1e-3))


def pair_stereo_angles(discs, mrad_per_px: float) -> list[dict]:
    """Stereo angle of every pair of discs: ``[{"pair": [i, j], "stereo_angle_deg": ...}, ...]``."""
    discs = [as_disc(d) for d in discs]
    return [{"pair": [i, j], "stereo_angle_deg": stereo_angle_deg(discs[i], discs[j], mrad_per_px)}
            for i, j in combinations(range(len(discs)), 2)]


def epipolar_direction_deg(disc1, disc2, *, scan_rotation_deg: float = 0.0) -> float:
    """Direction (degrees, in the scan image) along which disparities between the two views run.

    The direction of ``k2 - k1`` on the detector, turned by ``scan_rotation_deg``;
    in ``(-180, 180]``.
    """
    a, b = as_disc(disc1), as_disc(disc2)
    if np.isclose(a.cy, b.cy) and np.isclose(a.cx, b.cx):
        raise InputError("the two discs share a centre: they see the specimen from one direction, "
                         "so there is no stereo; move one of them")
    angle = np.rad2deg(np.arctan2(b.cy - a.cy, b.cx - a.cx)) + float(scan_rotation_deg)
    wrapped = -((-angle + 180.0) % 360.0 - 180.0)  # in (-180, 180]
    return float(wrapped) + 0.0


def rotation_to_horizontal_deg(disc_left, disc_right, *, scan_rotation_deg: float = 0.0) -> float:
    """Angle to pass to :func:`rotate_image` so that disparities run along ``+x``.

    After the rotation, the direction ``k_right - k_left`` points along ``+x`` in both
    views, so a pair (left, right) has horizontal epipolar lines. Whether depth
    comes out positive into the specimen depends on the instrument; swap the views
    if it does not.
    """
    return -epipolar_direction_deg(disc_left, disc_right, scan_rotation_deg=scan_rotation_deg)


def rotate_image(image, angle_deg: float, *, order: int = 1) -> np.ndarray:
    """Rotate ``image (rows, cols)`` about its centre so that a direction at ``a`` degrees goes to ``a + angle_deg``.

    Same shape as the input; outside pixels take the image mean.
    """
    from scipy import ndimage as ndi

    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise InputError(f"rotate_image needs a 2D image, got shape {img.shape}")
    # ndi.rotate turns (rows, cols) arrays the other way round from our (x right, y down) angles
    return ndi.rotate(img, -float(angle_deg), reshape=False, order=order, mode="constant", cval=float(img.mean()))


def _rotation_from_shift(a: np.ndarray, b: np.ndarray, detector_deg: float, upsample: int) -> float | None:
    """The rotation one windowed cross-correlation gives, or ``None`` when the images are not shifted."""
    from skimage.registration import phase_cross_correlation

    window = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
    # plain (not phase-normalised) cross-correlation of windowed images: robust for smooth images
    shift, _, _ = phase_cross_correlation((b - b.mean()) * window, (a - a.mean()) * window,
                                          upsample_factor=upsample, normalization=None)
    dy, dx = float(shift[0]), float(shift[1])
    if np.hypot(dy, dx) < 0.05:
        return None
    measured = np.rad2deg(np.arctan2(dy, dx))
    rotation = (measured - detector_deg + 90.0) % 180.0 - 90.0
    return float(90.0 if rotation == -90.0 else rotation)


def estimate_scan_rotation(image1, image2, disc1, disc2, *, upsample: int = 20,
                           max_std_deg: float = 5.0) -> tuple[float, float]:
    """Estimate the scan-to-diffraction rotation from two virtual images of the same area, with its spread.

    The images of two discs are shifted against each other along the epipolar
    direction (in proportion to the defocus / depth of the features); the angle
    between that measured shift and ``k2 - k1`` on the detector is the rotation.
    The sign of the shift is unknown, so the result is in ``(-90, 90]``. The same
    estimate on the four half-images (top, bottom, left, right) gives its spread:
    where features at several depths shift by different amounts, or the shift is
    small against the noise, the halves disagree and the estimate is refused
    rather than applied.

    Parameters
    ----------
    image1, image2 : arrays ``(scan_y, scan_x)``
        Virtual images of ``disc1`` and ``disc2``.
    max_std_deg : float
        Largest spread (degrees) of an estimate that is returned.

    Returns
    -------
    rotation_deg, std_deg : float
    """
    a = np.asarray(image1, dtype=float)
    b = np.asarray(image2, dtype=float)
    if a.shape != b.shape or a.ndim != 2:
        raise InputError(f"the two virtual images must be 2D and of one shape, got {a.shape} and {b.shape}")
    detector = epipolar_direction_deg(disc1, disc2)
    whole = _rotation_from_shift(a, b, detector, upsample)
    if whole is None:
        raise InputError("the two virtual images are not shifted against each other (< 0.05 px): "
                         "the rotation cannot be estimated; use a defocused probe or discs further apart")
    rows, cols = a.shape
    halves = [(slice(0, rows // 2), slice(None)), (slice(rows // 2, None), slice(None)),
              (slice(None), slice(0, cols // 2)), (slice(None), slice(cols // 2, None))]
    parts = [_rotation_from_shift(a[h], b[h], detector, upsample) for h in halves]
    if any(p is None for p in parts):
        std = 90.0
    else:  # angles of a line: compare them doubled, on the circle
        doubled = np.deg2rad(2.0 * (np.array(parts) - whole))
        std = float(np.rad2deg(np.sqrt(np.mean(np.angle(np.exp(1j * doubled)) ** 2))) / 2.0)
    if std > max_std_deg:
        raise InputError(f"the scan rotation is not determined by these images: {whole:.1f} deg from the whole "
                         f"images, but the half-images disagree by {std:.1f} deg; enter it from the microscope's "
                         "calibration, or use a defocused probe or discs further apart")
    return whole, std


def estimate_scan_rotation_deg(image1, image2, disc1, disc2, *, upsample: int = 20) -> float:
    """The rotation of :func:`estimate_scan_rotation` (refused the same way when it is not determined)."""
    return estimate_scan_rotation(image1, image2, disc1, disc2, upsample=upsample)[0]


def mirror_disc(disc, centre, axis_deg: float | None) -> Disc:
    """The counterpart of ``disc``: its mirror image across the line through ``centre`` at ``axis_deg``.

    With the axis along the excited reflection ``g`` the counterpart has the same
    excitation error. ``axis_deg=None`` reflects through the centre point instead.

    Parameters
    ----------
    disc : Disc or (cy, cx, r)
    centre : (cy, cx) or Disc
        Usually the direct-beam centre.
    axis_deg : float or None
        Direction of the mirror line, from ``+x`` towards ``+y``.
    """
    d = as_disc(disc)
    if isinstance(centre, Disc):
        cy, cx = centre.cy, centre.cx
    else:
        cy, cx = (float(v) for v in centre[:2])
    vy, vx = d.cy - cy, d.cx - cx
    if axis_deg is None:
        my, mx = -vy, -vx
    else:
        t = np.deg2rad(float(axis_deg))
        uy, ux = np.sin(t), np.cos(t)
        along = vy * uy + vx * ux
        my, mx = 2 * along * uy - vy, 2 * along * ux - vx
    return Disc(float(cy + my), float(cx + mx), d.radius, d.inner_radius)
