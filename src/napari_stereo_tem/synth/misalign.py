"""Turn an ideal (rectified) stereo pair into a raw, misaligned one with known truth.

The test oracle of :mod:`napari_stereo_tem.rectification`. An ideal pair has its
correspondences on one row, ``x_right = x_left + d``. A raw pair from a
microscope has its tilt axis at ``theta`` off the vertical and a stage
translation ``t`` between the exposures (DESIGN 3.3), so that a rectified point
``r`` appears at

    left:   p_L = R(theta) (r_L - centre) + centre
    right:  p_R = R(theta) (r_R - centre) + centre - t

and the raw displacement is ``p_R - p_L = d (cos theta, sin theta) - t``.
``R(theta)`` rotates from ``+x`` towards ``+y``; ``centre = ((cols-1)/2, (rows-1)/2)``.

:func:`textured_pair` makes an ideal pair of a textured, smoothly curved
specimen with its exact disparity map, for when no other synthetic pair is at hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..checks import InputError, check_pair

__all__ = ["MisalignTruth", "misalign_pair", "textured_pair"]


def _rotation(theta_deg: float) -> np.ndarray:
    th = np.deg2rad(theta_deg)
    return np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])


@dataclass(frozen=True)
class MisalignTruth:
    """Ground truth of :func:`misalign_pair`.

    Attributes
    ----------
    theta_deg : float
        Angle of the raw disparity direction from ``+x`` towards ``+y``.
    translation : ndarray, shape (2,)
        ``t = (t_x, t_y)`` in pixels.
    shape : tuple of int
        ``(rows, cols)``.
    """

    theta_deg: float
    translation: np.ndarray
    shape: tuple

    @property
    def direction(self) -> np.ndarray:
        """Unit raw disparity direction ``u = (cos theta, sin theta)``."""
        th = np.deg2rad(self.theta_deg)
        return np.array([np.cos(th), np.sin(th)])

    @property
    def perpendicular_shift(self) -> float:
        """Component of ``t`` across ``u``: ``t . (-sin theta, cos theta)`` (what rectification can recover)."""
        u = self.direction
        return float(np.dot(self.translation, [-u[1], u[0]]))

    def raw_from_rectified(self, points_xy, *, view: str) -> np.ndarray:
        """Raw ``(x, y)`` positions of ideal-pair points ``(n, 2)`` of ``view`` ('left' or 'right')."""
        if view not in ("left", "right"):
            raise InputError(f"view must be 'left' or 'right', got {view!r}")
        rows, cols = self.shape
        centre = np.array([(cols - 1) / 2.0, (rows - 1) / 2.0])
        pts = np.asarray(points_xy, dtype=float).reshape(-1, 2)
        raw = (pts - centre) @ _rotation(self.theta_deg).T + centre
        return raw - self.translation if view == "right" else raw

    def correspondences(self, disparity, *, step: int = 4, margin: int = 0):
        """True raw correspondences from the ideal pair's disparity map.

        Parameters
        ----------
        disparity : array_like, shape (rows, cols)
            ``x_right - x_left`` at each left pixel of the ideal pair (NaN where unknown).
        step : int
            Grid spacing (px) of the sampled left pixels.
        margin : int
            Pixels left out at each border.

        Returns
        -------
        raw_left, raw_right : ndarray, shape (n, 2)
            Raw ``(x, y)`` of each correspondence.
        disparity : ndarray, shape (n,)
            Its ideal disparity.
        """
        disparity = np.asarray(disparity, dtype=float)
        if disparity.shape != tuple(self.shape):
            raise InputError(f"disparity has shape {disparity.shape}, the pair {tuple(self.shape)}")
        rows, cols = self.shape
        ys, xs = np.mgrid[margin:rows - margin:step, margin:cols - margin:step]
        d = disparity[ys, xs].ravel()
        keep = np.isfinite(d)
        left = np.column_stack([xs.ravel(), ys.ravel()]).astype(float)[keep]
        right = left + np.column_stack([d[keep], np.zeros(keep.sum())])
        return self.raw_from_rectified(left, view="left"), self.raw_from_rectified(right, view="right"), d[keep]


def _ideal_from_raw(points: np.ndarray, truth: MisalignTruth) -> np.ndarray:
    rows, cols = truth.shape
    centre = np.array([(cols - 1) / 2.0, (rows - 1) / 2.0])
    return (points - centre) @ _rotation(-truth.theta_deg).T + centre


def misalign_pair(left, right, *, theta_deg: float | None = None, translation=None, seed=None,
                  noise_std: float = 0.0):
    """Make a raw tilted pair from an ideal rectified one.

    Parameters
    ----------
    left, right : array_like, shape (rows, cols)
        Ideal pair: correspondences on one row, ``x_right = x_left + d``.
    theta_deg : float, optional
        Tilt-axis angle off vertical; drawn uniformly in [-3, 3] from ``seed`` when omitted.
    translation : (float, float), optional
        ``(t_x, t_y)`` in pixels; drawn uniformly in [-40, 40]^2 from ``seed`` when omitted.
    seed : int, optional
        Seed for the drawn values and the noise.
    noise_std : float
        Standard deviation of independent Gaussian noise added to each raw view.

    Returns
    -------
    raw_left, raw_right : ndarray, shape (rows, cols), float32
        Views sampled (cubic spline) from the ideal pair; outside it, the image median.
    truth : MisalignTruth
    """
    left, right = check_pair(left, right)
    rng = np.random.default_rng(seed)
    theta = float(rng.uniform(-3, 3)) if theta_deg is None else float(theta_deg)
    t = rng.uniform(-40, 40, size=2) if translation is None else np.asarray(translation, dtype=float)
    if t.shape != (2,) or not np.all(np.isfinite(t)) or not np.isfinite(theta):
        raise InputError(f"translation must be two finite numbers (t_x, t_y) and theta finite; got {t}, {theta}")
    truth = MisalignTruth(theta, t, tuple(left.shape))
    rows, cols = left.shape
    ys, xs = np.mgrid[0:rows, 0:cols].astype(float)
    out = []
    for image, shift in ((left, np.zeros(2)), (right, t)):
        # ideal position of raw pixel p: R(-theta) (p + shift - centre) + centre (inverse of raw_from_rectified)
        ideal = _ideal_from_raw(np.column_stack([xs.ravel(), ys.ravel()]) + shift, truth)
        image = np.asarray(image, dtype=np.float64)
        raw = ndimage.map_coordinates(image, [ideal[:, 1], ideal[:, 0]], order=3, mode="constant",
                                      cval=float(np.median(image))).reshape(rows, cols)
        if noise_std > 0:
            raw = raw + rng.normal(0.0, noise_std, raw.shape)
        out.append(raw.astype(np.float32))
    return out[0], out[1], truth


def textured_pair(seed: int, *, shape=(256, 256), stereo_angle_deg: float = 8.0, depth_px: float = 60.0,
                  noise_std: float = 0.0):
    """An ideal stereo pair of a textured, smoothly curved specimen, with its exact disparity.

    The specimen is a random multi-scale texture on the surface ``Z(X, Y)`` (a sum
    of a few long-wavelength sinusoids of amplitude up to ``depth_px``), seen at
    ``-phi/2`` (left) and ``+phi/2`` (right) about the central column (DESIGN section 2).

    Parameters
    ----------
    seed : int
    shape : (rows, cols)
    stereo_angle_deg : float
        ``phi``.
    depth_px : float
        Largest ``|Z|`` in pixels.
    noise_std : float
        Gaussian noise added to each view (texture std is about 1).

    Returns
    -------
    left, right : ndarray, shape (rows, cols), float32
    disparity : ndarray, shape (rows, cols)
        ``x_right - x_left`` of each left pixel, exact.
    """
    rng = np.random.default_rng(seed)
    rows, cols = (int(s) for s in shape)
    margin = 48 + int(np.ceil(depth_px))
    noise = rng.normal(size=(rows + 2 * margin, cols + 2 * margin))
    texture = sum(w * ndimage.gaussian_filter(noise, s) / ndimage.gaussian_filter(noise, s).std()
                  for w, s in ((1.0, 1.2), (0.8, 3.0), (0.6, 8.0)))
    texture /= texture.std()
    waves = [(rng.uniform(0.5, 1.0), rng.uniform(0, 2 * np.pi), rng.uniform(300, 800), rng.uniform(0, 2 * np.pi))
             for _ in range(3)]
    total = sum(w[0] for w in waves)

    def depth(x, y):
        z = np.zeros_like(x)
        for amp, angle, wavelength, phase in waves:
            k = 2 * np.pi / wavelength
            z += amp * np.sin(k * (np.cos(angle) * x + np.sin(angle) * y) + phase)
        return depth_px * z / total

    c = (cols - 1) / 2.0
    ys, xs = np.mgrid[0:rows, 0:cols].astype(float)
    half = np.deg2rad(stereo_angle_deg) / 2.0
    views, x_spec = [], None
    for a in (-half, half):
        spec_x = xs.copy()
        for _ in range(30):  # x = c + (X - c) cos a + Z(X, y) sin a, solved for X
            spec_x = c + (xs - c - depth(spec_x, ys) * np.sin(a)) / np.cos(a)
        coords = np.stack([ys + margin, spec_x + margin])
        view = ndimage.map_coordinates(texture, coords, order=3, mode="reflect")
        if noise_std > 0:
            view = view + rng.normal(0.0, noise_std, view.shape)
        views.append(view.astype(np.float32))
        x_spec = spec_x if x_spec is None else x_spec
    disparity = 2.0 * np.sin(half) * depth(x_spec, ys)
    return views[0], views[1], disparity
