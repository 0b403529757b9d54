"""Turn an ideal (rectified) stereo pair into a raw, misaligned one with known truth.

The test oracle of :mod:`napari_stereo_tem.stereo.rectification`. An ideal pair has its
correspondences on one row, ``x_right = x_left + d``. A raw pair from a
microscope has its tilt axis at ``theta`` off the vertical and a stage
translation ``t`` between the exposures (DESIGN 3.3), so that a rectified point
``r`` appears at

    left:   p_L = R(theta) (r_L - centre) + centre
    right:  p_R = R(theta) (r_R - centre) + centre - t

and the raw displacement is ``p_R - p_L = d (cos theta, sin theta) - t``.
``R(theta)`` rotates from ``+x`` towards ``+y``; ``centre = ((cols-1)/2, (rows-1)/2)``.
``theta`` may be any angle and ``t`` a large part of the field; with
``out_shape`` the raw views are a central window of the ideal frame (so that a
rotated, shifted field has no empty corners), at ``origin`` in it.

:func:`textured_pair` makes an ideal pair of a textured, smoothly curved
specimen with its exact disparity map, for when no other synthetic pair is at hand.
:func:`vary_contrast` changes each raw view on its own the way a second tilt
does (bend contours that move, different contrast and gamma, illumination,
different noise), and :func:`burn_overlay` adds what video frames carry (black
frames, title text, a scale bar), with its mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..checks import InputError, check_pair
from ..stereo.projection import rotation_matrix

__all__ = ["MisalignTruth", "misalign_pair", "textured_pair", "foil_pair", "vary_contrast", "burn_overlay"]


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
        ``(rows, cols)`` of the ideal pair.
    origin : (float, float)
        ``(x, y)`` of the raw views' top-left pixel in the ideal frame (0, 0 unless ``out_shape`` was given).
    """

    theta_deg: float
    translation: np.ndarray
    shape: tuple
    origin: tuple = (0.0, 0.0)

    @property
    def shift(self) -> np.ndarray:
        """``-t``: displacement of a zero-disparity feature from the left to the right view."""
        return -np.asarray(self.translation, dtype=float)

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
        raw = (pts - centre) @ rotation_matrix(self.theta_deg).T + centre - np.asarray(self.origin, dtype=float)
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
    return (points - centre) @ rotation_matrix(-truth.theta_deg).T + centre


def misalign_pair(left, right, *, theta_deg: float | None = None, translation=None, seed=None,
                  noise_std: float = 0.0, out_shape=None):
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
    out_shape : (rows, cols), optional
        Shape of the raw views: a central window of the ideal frame (default the
        ideal shape). A larger ideal pair then fills the corners of a rotated field.

    Returns
    -------
    raw_left, raw_right : ndarray, shape out_shape, float32
        Views sampled (cubic spline) from the ideal pair; outside it, the image median.
    truth : MisalignTruth
    """
    left, right = check_pair(left, right)
    rng = np.random.default_rng(seed)
    theta = float(rng.uniform(-3, 3)) if theta_deg is None else float(theta_deg)
    t = rng.uniform(-40, 40, size=2) if translation is None else np.asarray(translation, dtype=float)
    if t.shape != (2,) or not np.all(np.isfinite(t)) or not np.isfinite(theta):
        raise InputError(f"translation must be two finite numbers (t_x, t_y) and theta finite; got {t}, {theta}")
    rows, cols = left.shape
    out_rows, out_cols = (rows, cols) if out_shape is None else (int(v) for v in out_shape)
    if not (0 < out_rows <= rows and 0 < out_cols <= cols):
        raise InputError(f"out_shape {out_shape} must be positive and fit in the ideal pair {left.shape}")
    origin = ((cols - out_cols) / 2.0, (rows - out_rows) / 2.0)
    truth = MisalignTruth(theta, t, tuple(left.shape), origin)
    ys, xs = np.mgrid[0:out_rows, 0:out_cols].astype(float)
    xs, ys = xs + origin[0], ys + origin[1]
    out = []
    for image, shift in ((left, np.zeros(2)), (right, t)):
        # ideal position of raw pixel p: R(-theta) (p + shift - centre) + centre (inverse of raw_from_rectified)
        ideal = _ideal_from_raw(np.column_stack([xs.ravel(), ys.ravel()]) + shift, truth)
        image = np.asarray(image, dtype=np.float64)
        raw = ndimage.map_coordinates(image, [ideal[:, 1], ideal[:, 0]], order=3, mode="constant",
                                      cval=float(np.median(image))).reshape(out_rows, out_cols)
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


def _smooth_field(shape, rng: np.random.Generator, *, n_waves: int = 4, wavelengths=(150.0, 600.0)) -> np.ndarray:
    """A smooth random field in about [-1, 1]: a few long-wavelength sinusoids."""
    rows, cols = shape
    ys, xs = np.mgrid[0:rows, 0:cols].astype(float)
    field = np.zeros(shape)
    for _ in range(n_waves):
        angle, phase = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
        k = 2 * np.pi / rng.uniform(*wavelengths)
        field += np.sin(k * (np.cos(angle) * xs + np.sin(angle) * ys) + phase)
    return field / np.sqrt(n_waves / 2.0)


def vary_contrast(image, *, seed, bend_contours: int = 3, bend_depth: float = 0.45, gain=(0.5, 1.6),
                  gamma=(0.6, 1.6), illumination: float = 0.25, dose=(20.0, 400.0)) -> np.ndarray:
    """One view as a different tilt shows it: moved bend contours, other contrast, other noise.

    Applied to each raw view with its own seed, so that the same specimen looks
    different in the two views, as diffraction contrast does between tilts.

    Parameters
    ----------
    image : array_like, shape (rows, cols)
        A view with intensities in about [0, 1].
    seed : int
    bend_contours : int
        Number of dark bend-contour bands (smooth curves that do not follow the specimen).
    bend_depth : float
        Largest darkening at a band's centre (0-1).
    gain, gamma : (float, float)
        Ranges of the contrast gain about the mean and of the gamma.
    illumination : float
        Largest relative illumination gradient across the field.
    dose : (float, float) or None
        Range (log-uniform) of electrons per pixel at intensity 1 for Poisson
        noise; ``None``: no noise.

    Returns
    -------
    ndarray, float32, shape (rows, cols)
    """
    rng = np.random.default_rng(seed)
    img = np.asarray(image, dtype=np.float64)
    rows, cols = img.shape
    lo, hi = np.percentile(img, [0.5, 99.5])
    norm = np.clip((img - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    norm = norm ** rng.uniform(*gamma)
    mean = norm.mean()
    norm = mean + rng.uniform(*gain) * (norm - mean)
    field = _smooth_field(img.shape, rng, wavelengths=(400.0, 1500.0))  # a bent foil: bands tens of px wide
    for level in rng.uniform(-1.2, 1.2, int(bend_contours)):
        width = rng.uniform(0.08, 0.25)
        norm = norm * (1.0 - rng.uniform(0.3, 1.0) * bend_depth * np.exp(-0.5 * ((field - level) / width) ** 2))
    ys, xs = np.mgrid[0:rows, 0:cols].astype(float)
    gx, gy = rng.uniform(-illumination, illumination, 2)
    norm = norm * (1.0 + gx * (xs / cols - 0.5) + gy * (ys / rows - 0.5))
    norm = 0.15 + 0.7 * np.clip(norm, 0.0, None)
    if dose is not None:
        electrons = float(np.exp(rng.uniform(np.log(dose[0]), np.log(dose[1]))))
        norm = rng.poisson(norm * electrons) / electrons
    return norm.astype(np.float32)


def burn_overlay(image, *, text: str = "TEM  x40000  200 kV  tilt 12.5", seed=0, frame_px: int | None = None,
                 scale_bar: bool = True, levels=(0.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """Add a video frame's burned-in overlay: black borders, a title bar with text, a scale bar.

    The overlay sits at the same pixels in every view, as in frames grabbed from
    a microscope's video output.

    Parameters
    ----------
    image : array_like, shape (rows, cols)
        A view with intensities in about [0, 1].
    text : str
        Title burned in (white on a black bar at the bottom).
    seed : int
        Draws the frame widths and the scale bar's place.
    frame_px : int, optional
        Width of the black frame at the left and right; default drawn 2-5 % of the width.
    scale_bar : bool
        Draw a white scale bar with a label inside the image.
    levels : (float, float)
        Grey levels of black and white (the display range of the video; the same for every frame).

    Returns
    -------
    image : ndarray, float32, shape (rows, cols)
    overlay : ndarray of bool, shape (rows, cols)
        Pixels the overlay covers (the truth a mask must find).
    """
    import cv2

    rng = np.random.default_rng(seed)
    img = np.asarray(image, dtype=np.float32).copy()
    rows, cols = img.shape
    black_level, white = (float(v) for v in levels)
    marks = np.zeros((rows, cols), np.uint8)
    frame = int(frame_px if frame_px is not None else round(rng.uniform(0.02, 0.05) * cols))
    bar = max(12, int(0.07 * rows))
    black = np.zeros((rows, cols), bool)
    black[:, :frame] = black[:, cols - frame:] = True
    black[rows - bar:] = True
    scale = bar / 40.0
    cv2.putText(marks, text, (frame + 4, rows - int(0.3 * bar)), cv2.FONT_HERSHEY_SIMPLEX, scale, 255,
                max(1, int(round(2 * scale))), cv2.LINE_AA)
    if scale_bar:
        x0 = int(rng.uniform(0.55, 0.7) * cols)
        y0 = int(rng.uniform(0.75, 0.85) * rows)
        length, height = int(0.18 * cols), max(3, int(0.012 * rows))
        cv2.rectangle(marks, (x0, y0), (x0 + length, y0 + height), 255, -1)
        cv2.putText(marks, "200 nm", (x0, y0 - height), cv2.FONT_HERSHEY_SIMPLEX, max(0.45, 0.8 * scale), 255,
                    max(1, int(round(2 * scale))), cv2.LINE_AA)
    alpha = marks.astype(np.float32) / 255.0
    img[black] = black_level
    img = img * (1.0 - alpha) + white * alpha
    return img.astype(np.float32), black | (marks > 0)


def foil_pair(seed: int, *, shape=(512, 512), stereo_angle_deg: float = 12.0, thickness_px: float = 150.0,
              density: float = 0.004, background: float = 0.6):
    """An ideal stereo pair of a foil holding small particles through its thickness, with their positions.

    Unlike :func:`textured_pair` (a texture on one smooth surface), depth here
    varies from feature to feature, as for precipitates, dislocations and surface
    marks in a real foil: a patch holds several depths, and the disparities span
    ``2 sin(phi/2) thickness_px``.

    Parameters
    ----------
    seed : int
    shape : (rows, cols)
    stereo_angle_deg : float
        ``phi``; the views are at ``-phi/2`` and ``+phi/2`` about the central column.
    thickness_px : float
        Foil thickness; particle depths are uniform in ``+-thickness_px / 2``.
    density : float
        Particles per pixel of the field.
    background : float
        Mean intensity; particles darken it (bright-field).

    Returns
    -------
    left, right : ndarray, float32, shape (rows, cols)
    points_left, points_right : ndarray, shape (n, 2)
        ``(x, y)`` of each particle's centre in the ideal views (``x_right - x_left`` is its disparity).
    """
    import cv2

    rng = np.random.default_rng([int(seed), 15])
    rows, cols = (int(s) for s in shape)
    margin = 0.5 * thickness_px * np.sin(np.deg2rad(stereo_angle_deg)) + 8
    n = int(density * rows * cols)
    xyz = np.column_stack([rng.uniform(-margin, cols - 1 + margin, n), rng.uniform(-8, rows + 7, n),
                           rng.uniform(-thickness_px / 2, thickness_px / 2, n)])
    sigma = rng.choice([1.2, 2.0, 3.2], n, p=[0.5, 0.3, 0.2])
    contrast = rng.uniform(0.15, 0.5, n) * rng.choice([1.0, -0.5], n, p=[0.8, 0.2])
    c = (cols - 1) / 2.0
    views, points = [], []
    for a in np.deg2rad([-stereo_angle_deg / 2.0, stereo_angle_deg / 2.0]):
        x = c + (xyz[:, 0] - c) * np.cos(a) + xyz[:, 2] * np.sin(a)
        image = np.zeros((rows, cols))
        for s in np.unique(sigma):
            pick = sigma == s
            acc = np.zeros((rows, cols))
            xi, yi = np.floor(x[pick]).astype(int), np.floor(xyz[pick, 1]).astype(int)
            fx, fy = x[pick] - xi, xyz[pick, 1] - yi
            for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy),
                              (1, 1, fx * fy)):
                ok = (xi + dx >= 0) & (xi + dx < cols) & (yi + dy >= 0) & (yi + dy < rows)
                np.add.at(acc, (yi[ok] + dy, xi[ok] + dx), (w * contrast[pick])[ok])
            image += cv2.GaussianBlur(acc, (0, 0), float(s)) * 2 * np.pi * s * s
        views.append((background * (1.0 - np.clip(image, -0.5, 0.9))).astype(np.float32))
        points.append(np.column_stack([x, xyz[:, 1]]))
    inside = np.all([(p[:, 0] >= 0) & (p[:, 0] <= cols - 1) & (p[:, 1] >= 0) & (p[:, 1] <= rows - 1)
                     for p in points], axis=0)
    return views[0], views[1], points[0][inside], points[1][inside]
