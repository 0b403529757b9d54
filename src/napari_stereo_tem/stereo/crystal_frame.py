"""Crystal frame of a 3D reconstruction (DESIGN 3.6, thesis 4.3.1).

Frames and conventions
----------------------
* **Image (lab) frame**: ``(x, y, z)`` in pixels as everywhere (DESIGN section 2):
  ``x`` = column, ``y`` = row, ``z`` along the beam, into the image. It is
  right-handed (``x`` cross ``y`` = ``z``).
* **Crystal Cartesian frame**: the usual one, ``a`` along ``X``, ``b`` in the
  ``XY`` plane, ``c`` completing a right-handed set. ``A`` is the matrix whose
  columns are ``a, b, c`` in this frame; the direct metric tensor is
  ``G = A^T A`` and the reciprocal basis (without 2 pi) is the columns of
  ``B = A^{-T}``, with metric ``G* = G^{-1}``.
* A direction ``[uvw]`` is the vector ``A [uvw]``; a plane ``(hkl)`` has normal
  ``B (hkl)``. Conversely a vector ``v`` has direct indices ``A^{-1} v`` and a
  plane of normal ``n`` has Miller indices ``A^T n`` (the dot products ``a_i . n``).

Orientation
-----------
The zone axis ``[uvw]`` is put along ``+z`` (the beam), and the diffraction
vector ``g = (hkl)`` (its part normal to the zone axis, if it is not exactly in
the zone) along the image direction ``psi`` (degrees from ``+x`` towards ``+y``).
The specimen is then tilted away from the zone axis by ``tilt_from_zone_deg``
about ``g`` (a two-beam condition keeps ``g`` excited while tilting about it),
right-handed about ``+g``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import gcd

import numpy as np

from ..checks import InputError, parse_numbers

__all__ = ["CrystalFrame", "lattice_matrix", "reduce_indices", "parse_indices"]


def lattice_matrix(a: float, b: float, c: float, alpha: float, beta: float, gamma: float) -> np.ndarray:
    """Columns ``a, b, c`` (lengths in the lattice unit, angles in degrees) in the crystal Cartesian frame."""
    lengths = np.array([a, b, c], dtype=float)
    angles = np.array([alpha, beta, gamma], dtype=float)
    if not (np.all(np.isfinite(lengths)) and np.all(lengths > 0)):
        raise InputError(f"lattice lengths a, b, c must be positive, got {lengths.tolist()}")
    if not (np.all(np.isfinite(angles)) and np.all((angles > 0) & (angles < 180))):
        raise InputError(f"lattice angles alpha, beta, gamma must lie in (0, 180) degrees, got {angles.tolist()}")
    ca, cb, cg = np.cos(np.deg2rad(angles))
    sg = np.sin(np.deg2rad(gamma))
    cx = c * cb
    cy = c * (ca - cb * cg) / sg
    cz2 = c**2 - cx**2 - cy**2
    if cz2 <= 1e-12 * c**2:
        raise InputError(f"lattice angles {angles.tolist()} do not make a cell with volume; check alpha, beta, gamma")
    return np.array([[a, b * cg, cx], [0.0, b * sg, cy], [0.0, 0.0, np.sqrt(cz2)]])


def reduce_indices(vector, *, max_index: int = 6, tolerance_deg: float = 3.0) -> np.ndarray:
    """Smallest integer triple within ``tolerance_deg`` of ``vector``'s direction.

    Returns ints when such a triple with entries up to ``max_index`` exists, else
    the vector scaled so its largest entry is 1 (floats). The sign is chosen so
    that the first non-zero entry is positive.
    """
    v = np.asarray(vector, dtype=float)
    norm = np.linalg.norm(v)
    if not np.isfinite(norm) or norm == 0:
        raise InputError(f"cannot index the zero or non-finite vector {v.tolist()}")
    v = v / np.abs(v).max()
    first = v[np.flatnonzero(np.abs(v) > 1e-9)[0]]
    v = v * np.sign(first)
    best = None
    for n in range(1, max_index + 1):  # the first (lowest-index) triple within tolerance wins
        cand = np.round(v * n)
        cos = cand @ v / (np.linalg.norm(cand) * np.linalg.norm(v)) if np.any(cand) else -1.0
        if np.degrees(np.arccos(np.clip(cos, -1, 1))) < tolerance_deg:
            best = cand
            break
    if best is None:
        return v
    ints = best.astype(int)
    common = gcd(*(abs(int(i)) for i in ints))
    return ints // max(common, 1)


def parse_indices(text: str, *, name: str) -> tuple[int, int, int]:
    """Miller indices typed as text: ``"1,-1,0"`` or ``"1 -1 0"`` -> ``(1, -1, 0)``."""
    values = parse_numbers(text, name=name, count=3, kind=int, example="1,1,0")
    if values is None or not any(values):
        raise InputError(f"{name} must be three integers, not all zero; got {text!r}")
    return values


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


def _axis_rotation(axis, angle_deg: float) -> np.ndarray:
    """Right-handed rotation about a unit ``axis`` (Rodrigues)."""
    k = _unit(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    a = np.deg2rad(angle_deg)
    return np.eye(3) + np.sin(a) * kx + (1 - np.cos(a)) * kx @ kx


@dataclass
class CrystalFrame:
    """A crystal lattice oriented in the image frame.

    Parameters
    ----------
    a, b, c : float
        Lattice lengths (any length unit, e.g. nm).
    alpha, beta, gamma : float
        Lattice angles in degrees.
    zone_axis : (3,) ints
        ``[uvw]`` along the beam (before the tilt).
    g : (3,) ints
        Diffraction vector ``(hkl)``.
    g_angle_deg : float
        Direction of ``g`` in the image, from ``+x`` towards ``+y``.
    tilt_from_zone_deg : float
        Tilt away from the zone axis, about ``g``.
    pixel_size : float
        Length of one pixel in the lattice unit (points are in pixels).
    origin : (3,) float
        Image-frame point ``(x, y, z)`` taken as the crystal origin.
    """

    a: float
    b: float
    c: float
    alpha: float
    beta: float
    gamma: float
    zone_axis: tuple = (0, 0, 1)
    g: tuple = (1, 0, 0)
    g_angle_deg: float = 0.0
    tilt_from_zone_deg: float = 0.0
    pixel_size: float = 1.0
    origin: tuple = (0.0, 0.0, 0.0)
    warnings: list = field(default_factory=list)

    def __post_init__(self):
        self.direct = lattice_matrix(self.a, self.b, self.c, self.alpha, self.beta, self.gamma)
        self.reciprocal = np.linalg.inv(self.direct).T
        if not (np.isfinite(self.pixel_size) and self.pixel_size > 0):
            raise InputError(f"pixel_size must be a positive length, got {self.pixel_size!r}")
        zone = self.direct @ np.asarray(self.zone_axis, dtype=float)
        gvec = self.reciprocal @ np.asarray(self.g, dtype=float)
        if np.linalg.norm(zone) == 0 or np.linalg.norm(gvec) == 0:
            raise InputError(f"zone axis {self.zone_axis} and g {self.g} must be non-zero")
        e3 = _unit(zone)
        off_zone = np.degrees(np.arcsin(np.clip(abs(_unit(gvec) @ e3), 0, 1)))
        if off_zone > 80:
            raise InputError(f"g = {tuple(self.g)} is (nearly) parallel to the zone axis {tuple(self.zone_axis)}; "
                             "g must lie (close to) the zone's plane")
        if off_zone > 1e-6:
            self.warnings.append(f"g = {tuple(self.g)} is {off_zone:.2f} degrees out of the zone "
                                 f"{tuple(self.zone_axis)}; its in-zone part is used")
        e1 = _unit(gvec - (gvec @ e3) * e3)
        e2 = np.cross(e3, e1)
        psi = np.deg2rad(self.g_angle_deg)
        f1 = np.array([np.cos(psi), np.sin(psi), 0.0])
        f3 = np.array([0.0, 0.0, 1.0])
        f2 = np.cross(f3, f1)
        untilted = np.column_stack([f1, f2, f3]) @ np.column_stack([e1, e2, e3]).T
        #: rotation taking crystal Cartesian vectors to the image frame
        self.rotation = _axis_rotation(f1, self.tilt_from_zone_deg) @ untilted

    @property
    def metric(self) -> np.ndarray:
        """Direct metric tensor ``G`` (3, 3)."""
        return self.direct.T @ self.direct

    @property
    def reciprocal_metric(self) -> np.ndarray:
        """Reciprocal metric tensor ``G* = G^-1`` (3, 3)."""
        return np.linalg.inv(self.metric)

    def direction_in_image(self, uvw) -> np.ndarray:
        """Unit image-frame vector of the lattice direction ``[uvw]``."""
        return _unit(self.rotation @ self.direct @ np.asarray(uvw, dtype=float))

    def plane_normal_in_image(self, hkl) -> np.ndarray:
        """Unit image-frame normal of the plane ``(hkl)``."""
        return _unit(self.rotation @ self.reciprocal @ np.asarray(hkl, dtype=float))

    def to_fractional(self, points_xyz) -> np.ndarray:
        """Fractional crystal coordinates ``(n, 3)`` of image-frame points ``(n, 3)`` in pixels."""
        pts = _points(points_xyz)
        cart = (pts - np.asarray(self.origin, dtype=float)) * self.pixel_size @ self.rotation  # R^T p
        return cart @ np.linalg.inv(self.direct).T

    def from_fractional(self, fractional) -> np.ndarray:
        """Image-frame points (pixels) of fractional coordinates ``(n, 3)``."""
        frac = _points(fractional)
        return frac @ self.direct.T @ self.rotation.T / self.pixel_size + np.asarray(self.origin, dtype=float)

    def axes_for_display(self, origin, length: float) -> np.ndarray:
        """The a, b, c axes as 3D segments ``(3, 2, 3)``: ``[axis, start/end, (x, y, z)]`` in pixels.

        Each segment starts at ``origin`` and is ``length`` pixels long (a, b, c
        are conventionally drawn red, green, blue).
        """
        start = np.asarray(origin, dtype=float).reshape(3)
        segs = [np.stack([start, start + length * _unit(self.rotation @ self.direct[:, i])]) for i in range(3)]
        return np.stack(segs)

    def line_direction(self, points, *, max_index: int = 6, tolerance_deg: float = 3.0) -> np.ndarray:
        """Best-fit direction ``[uvw]`` of a 3D line ``(n, 3)`` (pixels, image frame).

        The principal axis of the points; reduced to small integers when one lies
        within ``tolerance_deg`` (see :func:`reduce_indices`).
        """
        pts = _points(points, min_points=2)
        _, _, vt = np.linalg.svd(pts - pts.mean(axis=0), full_matrices=False)
        return reduce_indices(np.linalg.solve(self.direct, self.rotation.T @ vt[0]),
                              max_index=max_index, tolerance_deg=tolerance_deg)

    def habit_plane(self, points, *, max_index: int = 6, tolerance_deg: float = 3.0) -> np.ndarray:
        """Best-fit plane ``(hkl)`` through 3D points ``(n, 3)`` (pixels, image frame).

        The normal is the points' least principal axis; Miller indices are its dot
        products with ``a, b, c``. Raises :class:`InputError` for a straight line,
        which lies in many planes.
        """
        pts = _points(points, min_points=3)
        _, s, vt = np.linalg.svd(pts - pts.mean(axis=0), full_matrices=False)
        if s[1] <= 1e-3 * s[0] or s[1] < 1e-9:
            raise InputError("the points lie on a straight line, which lies in many planes; "
                             "a habit plane needs a curved line or several lines")
        return reduce_indices(self.direct.T @ (self.rotation.T @ vt[2]),
                              max_index=max_index, tolerance_deg=tolerance_deg)


def _points(points, *, min_points: int = 1) -> np.ndarray:
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise InputError(f"3D points must have shape (n, 3) as (x, y, z), got {pts.shape}")
    if len(pts) < min_points:
        raise InputError(f"at least {min_points} points are needed, got {len(pts)}")
    if not np.all(np.isfinite(pts)):
        raise InputError("3D points hold NaN or inf; drop them first")
    return pts
