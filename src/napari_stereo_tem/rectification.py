"""Rectification of stereo pairs: epipolar lines become image rows.

A mechanically tilted pair is off in two ways (DESIGN 3.3, thesis 3.2): the
stage moved by a translation ``t = (t_x, t_y)`` between the exposures, and the
tilt axis lies at an angle ``theta`` off the image's vertical. The raw
displacement of a correspondence ``q`` (right minus left, ``(x, y)`` pixels) is

    Delta_q = d_q * u - t,       u = (cos theta, sin theta),

with one free disparity ``d_q`` per point. In displacement space every correct
match therefore lies on one straight line of direction ``u``: its direction gives
``theta`` and its offset gives the component of ``t`` across ``u`` (the
perpendicular shift). The component of ``t`` along ``u`` cannot be told apart
from the disparities: it is a free depth origin, fixed here by putting the median
disparity at zero (or at ``pin_disparity``).

Both views are then rotated by ``-theta`` about the image centre and shifted by
half the estimated translation each (in opposite directions), so that in the
rectified pair ``x_right - x_left = d`` on the same row, the tilt axis is the
vertical line through the central column ``(cols - 1) / 2`` and the scene stays
centred in both views. ``theta`` is measured from ``+x`` towards ``+y`` (rows
grow downwards); it is also the tilt axis' angle off the vertical.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .checks import InputError, check_pair

__all__ = ["Rectification", "rectify_pair", "rectify_tiltless", "rectifying_affines"]


@dataclass
class Rectification:
    """A rectified pair and the figures of its rectification.

    Attributes
    ----------
    left, right : ndarray, shape (rows, cols), float32
        The rectified views (input shape).
    theta_deg : float
        Angle of the raw disparity direction from ``+x`` towards ``+y``, i.e. the
        tilt axis' angle off the vertical.
    translation : ndarray, shape (2,)
        ``(t_x, t_y)`` in raw pixels, in the model ``Delta = d u - t``; its part
        along ``u`` is the chosen depth origin.
    n_matches, n_inliers : int
        Ratio-test matches and RANSAC inliers (0 for the tilt-less path).
    residual_vertical_px : float
        Median ``|y_right - y_left|`` of the inlier matches after rectification
        (NaN for the tilt-less path, which matches nothing).
    affine_left, affine_right : ndarray, shape (2, 3)
        Raw ``(x, y, 1)`` to rectified ``(x, y)`` for each view.
    keypoints_left, keypoints_right : ndarray, shape (n_inliers, 2)
        Inlier keypoints, raw ``(x, y)`` coordinates (swap columns for napari's
        ``(row, col)`` Points).
    method : str
        'sift-ransac' or 'tiltless'.
    theta_std_deg : float
        Standard error of the fitted theta (NaN when theta was given or assumed).
    warnings : list of str
        Conditions the user should know about (e.g. too little depth to fix theta).
    """

    left: np.ndarray
    right: np.ndarray
    theta_deg: float
    translation: np.ndarray
    n_matches: int
    n_inliers: int
    residual_vertical_px: float
    affine_left: np.ndarray
    affine_right: np.ndarray
    keypoints_left: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    keypoints_right: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    method: str = "sift-ransac"
    theta_std_deg: float = float("nan")
    warnings: list = field(default_factory=list)

    def map_points(self, points_xy, *, view: str = "left") -> np.ndarray:
        """Map raw ``(n, 2)`` ``(x, y)`` points of ``view`` ('left'/'right') into the rectified frame."""
        affine = {"left": self.affine_left, "right": self.affine_right}.get(view)
        if affine is None:
            raise InputError(f"view must be 'left' or 'right', got {view!r}")
        pts = np.asarray(points_xy, dtype=float).reshape(-1, 2)
        return pts @ affine[:, :2].T + affine[:, 2]

    def report(self) -> dict:
        """The figures as a JSON-serialisable dict (NaN becomes ``None``)."""
        def num(value):
            value = float(value)
            return value if np.isfinite(value) else None

        return {
            "method": self.method,
            "theta_deg": num(self.theta_deg),
            "theta_std_deg": num(self.theta_std_deg),
            "translation_px": [num(v) for v in self.translation],
            "n_matches": int(self.n_matches),
            "n_inliers": int(self.n_inliers),
            "residual_vertical_px": num(self.residual_vertical_px),
            "affine_left": [[num(v) for v in row] for row in self.affine_left],
            "affine_right": [[num(v) for v in row] for row in self.affine_right],
            "warnings": list(self.warnings),
        }


def rectifying_affines(shape, theta_deg: float, translation=(0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """Raw-to-rectified ``2x3`` affines of the left and right view.

    ``rect = R(-theta) (p -/+ t/2 - centre) + centre``: left shifted by ``-t/2``,
    right by ``+t/2``, both rotated about the image centre ``((cols-1)/2, (rows-1)/2)``.
    A raw displacement ``d u - t`` becomes ``(d, 0)``.
    """
    rows, cols = shape[:2]
    centre = np.array([(cols - 1) / 2.0, (rows - 1) / 2.0])
    th = np.deg2rad(theta_deg)
    rot = np.array([[np.cos(th), np.sin(th)], [-np.sin(th), np.cos(th)]])  # R(-theta)
    half = np.asarray(translation, dtype=float) / 2.0
    affines = []
    for shift in (-half, half):
        offset = centre - rot @ (centre - shift)
        affines.append(np.column_stack([rot, offset]))
    return affines[0], affines[1]


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """Robust 0.5-99.5 percentile stretch to uint8 (what SIFT wants)."""
    lo, hi = np.percentile(image, [0.5, 99.5])
    if hi <= lo:
        lo, hi = float(image.min()), float(image.max())
    if hi <= lo:
        raise InputError("an image has no contrast (constant); rectification needs texture in both views")
    scaled = (image.astype(np.float64) - lo) * (255.0 / (hi - lo))
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def _sift_matches(left: np.ndarray, right: np.ndarray, ratio: float,
                  max_keypoints: int) -> tuple[np.ndarray, np.ndarray]:
    sift = cv2.SIFT_create(nfeatures=int(max_keypoints))
    kp_l, des_l = sift.detectAndCompute(_to_uint8(left), None)
    kp_r, des_r = sift.detectAndCompute(_to_uint8(right), None)
    if des_l is None or des_r is None or len(kp_l) < 2 or len(kp_r) < 2:
        return np.zeros((0, 2)), np.zeros((0, 2))
    if min(len(des_l), len(des_r)) > 500:  # approximate (kd-tree) search; exact below
        matcher = cv2.FlannBasedMatcher({"algorithm": 1, "trees": 4}, {"checks": 64})
    else:
        matcher = cv2.BFMatcher(cv2.NORM_L2)
    pairs = matcher.knnMatch(des_l, des_r, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < ratio * p[1].distance]
    pts_l = np.array([kp_l[m.queryIdx].pt for m in good], dtype=float).reshape(-1, 2)
    pts_r = np.array([kp_r[m.trainIdx].pt for m in good], dtype=float).reshape(-1, 2)
    return pts_l, pts_r


def _fit_line(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Total-least-squares line through 2D points: (mean, unit direction with x >= 0)."""
    mean = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - mean, full_matrices=False)
    direction = vt[0]
    return mean, direction if direction[0] >= 0 else -direction


def _ransac_line(disp: np.ndarray, threshold: float, rng: np.random.Generator, max_theta_deg: float,
                 n_iter: int = 2000) -> np.ndarray:
    """Inlier mask of the best line through the displacement points ``disp`` (n, 2)."""
    n = len(disp)
    best = np.zeros(n, dtype=bool)
    best_cost = np.inf
    for _ in range(n_iter):
        i, j = rng.choice(n, size=2, replace=False)
        direction = disp[j] - disp[i]
        length = np.hypot(*direction)
        if length < 1e-6:
            continue
        if abs(direction[1]) > abs(direction[0]) * np.tan(np.deg2rad(max_theta_deg)):
            continue  # the tilt axis is assumed within max_theta_deg of the vertical
        normal = np.array([-direction[1], direction[0]]) / length
        dist = np.abs((disp - disp[i]) @ normal)
        inliers = dist < threshold
        cost = np.minimum(dist, threshold).sum()  # MSAC: truncated loss picks the tightest line
        if cost < best_cost:
            best_cost, best = cost, inliers
    for _ in range(3):  # refine on the inliers, then re-select them
        if best.sum() < 2:
            break
        mean, direction = _fit_line(disp[best])
        normal = np.array([-direction[1], direction[0]])
        best = np.abs((disp - mean) @ normal) < threshold
    return best


def _robust_line(points: np.ndarray, n_iter: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Line through 2D points by total least squares re-weighted with Tukey's biweight.

    Returns (point on the line, unit direction with x >= 0, final weights).
    """
    mean, direction = _fit_line(points)
    weights = np.ones(len(points))
    for _ in range(n_iter):
        normal = np.array([-direction[1], direction[0]])
        resid = (points - mean) @ normal
        scale = max(1.4826 * np.median(np.abs(resid - np.median(resid))), 1e-3)
        r = resid / (4.685 * scale)
        weights = np.where(np.abs(r) < 1, (1 - r**2) ** 2, 0.0)
        if weights.sum() < 2:
            break
        mean = (weights[:, None] * points).sum(axis=0) / weights.sum()
        centred = (points - mean) * np.sqrt(weights)[:, None]
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        direction = vt[0] if vt[0][0] >= 0 else -vt[0]
    return mean, direction, weights


def _fit_direction(disp: np.ndarray) -> tuple[float, float]:
    """Robust direction of the displacement line: (theta in degrees, its standard error in degrees)."""
    mean, u, weights = _robust_line(disp)
    keep = weights > 0
    normal = np.array([-u[1], u[0]])
    resid = (disp[keep] - mean) @ normal
    along = (disp[keep] - mean) @ u
    sigma = 1.4826 * np.median(np.abs(resid - np.median(resid)))
    spread = np.sqrt(np.sum((along - along.mean()) ** 2))
    theta_std = float(np.degrees(sigma / spread)) if spread > 0 else np.inf
    return float(np.degrees(np.arctan2(u[1], u[0]))), theta_std


def _inliers_for_theta(disp: np.ndarray, theta_deg: float, threshold: float) -> np.ndarray:
    """Matches whose displacement lies within ``threshold`` of the line of direction ``theta``."""
    th = np.deg2rad(theta_deg)
    across = disp @ np.array([-np.sin(th), np.cos(th)])
    ordered = np.sort(across)  # the densest window of width 2 * threshold holds the correct matches
    counts = np.searchsorted(ordered, ordered + threshold) - np.searchsorted(ordered, ordered - threshold)
    centre = ordered[int(np.argmax(counts))]
    for _ in range(3):
        inliers = np.abs(across - centre) < threshold
        centre = np.median(across[inliers])
    return np.abs(across - centre) < threshold


def _warp(image: np.ndarray, affine: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float32)
    rows, cols = image.shape
    fill = float(np.median(image))
    return cv2.warpAffine(image, affine.astype(np.float64), (cols, rows), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=fill)


def rectify_pair(left, right, *, pin_disparity: float | None = None, min_matches: int = 20,
                 ransac_threshold_px: float = 1.0, ratio: float = 0.75, theta_deg: float | None = None,
                 max_theta_deg: float = 5.0, max_theta_std_deg: float = 0.25, max_keypoints: int = 4000,
                 seed: int = 0) -> Rectification:
    """Rectify a mechanically tilted stereo pair from SIFT matches.

    Parameters
    ----------
    left, right : array_like, shape (rows, cols)
        Raw views; ``left`` is the ``-phi/2`` view (DESIGN section 2).
    pin_disparity : float, optional
        Disparity (rectified px) given to the median match; default 0 (median depth at 0).
    min_matches : int
        Fewest RANSAC inliers accepted.
    ransac_threshold_px : float
        Largest distance (px) of an inlier's displacement from the model line.
    ratio : float
        Lowe's ratio-test threshold.
    theta_deg : float, optional
        Fix the tilt-axis angle (e.g. a known calibration) instead of fitting it;
        useful for nearly flat specimens whose disparities hardly vary.
    max_theta_deg : float
        Largest tilt-axis angle off vertical considered by the fit.
    max_theta_std_deg : float
        When the fitted theta's standard error exceeds this (the matched points
        span too little depth), theta is set to 0 and a warning is recorded.
    max_keypoints : int
        Strongest SIFT keypoints kept per view (bounds the matching time).
    seed : int
        Seed of the RANSAC sampler.

    Returns
    -------
    Rectification

    Raises
    ------
    InputError
        Mismatched shapes, constant/textureless images, too few matches or inliers.
    """
    left, right = check_pair(left, right)
    rng = np.random.default_rng(seed)
    pts_l, pts_r = _sift_matches(left, right, ratio, max_keypoints)
    n_matches = len(pts_l)
    if n_matches < max(min_matches, 2):
        raise InputError(
            f"only {n_matches} SIFT matches between the views (at least {min_matches} needed); the images may be "
            "textureless, too noisy, or not of the same region: denoise/bin them, or rectify by hand (--no-rectify)"
        )
    disp = pts_r - pts_l
    warnings = []
    theta_std = float("nan")
    if theta_deg is None:
        inliers = _ransac_line(disp, ransac_threshold_px, rng, max_theta_deg)
        theta, theta_std = _fit_direction(disp[inliers]) if inliers.sum() >= 2 else (0.0, np.inf)
        if not (theta_std <= max_theta_std_deg and abs(theta) <= max_theta_deg):
            warnings.append(
                f"theta could not be determined (fit gives {theta:.2f} +- {theta_std:.2f} degrees): the matched "
                "points span too little depth; assumed 0 (vertical tilt axis). Pass theta_deg if it is known"
            )
            theta, theta_std = 0.0, float("nan")
            inliers = _inliers_for_theta(disp, theta, ransac_threshold_px)
    else:
        theta = float(theta_deg)
        inliers = _inliers_for_theta(disp, theta, ransac_threshold_px)
    n_inliers = int(inliers.sum())
    if n_inliers < max(min_matches, 2):
        raise InputError(
            f"only {n_inliers} of {n_matches} matches fit one tilt geometry (at least {min_matches} needed); "
            "check that both images show the same region, or raise ransac_threshold_px"
        )
    inl = disp[inliers]
    u = np.array([np.cos(np.deg2rad(theta)), np.sin(np.deg2rad(theta))])
    normal = np.array([-u[1], u[0]])
    along = inl @ u
    t_perp = -float(np.median(inl @ normal))
    target = 0.0 if pin_disparity is None else float(pin_disparity)
    t_along = target - float(np.median(along))  # shift that puts the median disparity at `target`
    correction = t_perp * normal + t_along * u  # the estimate of t (its part along u is the depth origin)
    aff_l, aff_r = rectifying_affines(left.shape, theta, correction)
    rect = Rectification(
        left=_warp(left, aff_l), right=_warp(right, aff_r), theta_deg=theta, theta_std_deg=theta_std,
        translation=correction, n_matches=n_matches, n_inliers=n_inliers,
        residual_vertical_px=float("nan"), affine_left=aff_l, affine_right=aff_r,
        keypoints_left=pts_l[inliers], keypoints_right=pts_r[inliers], warnings=warnings,
    )
    dy = rect.map_points(pts_r[inliers], view="right")[:, 1] - rect.map_points(pts_l[inliers], view="left")[:, 1]
    rect.residual_vertical_px = float(np.median(np.abs(dy)))
    return rect


def rectify_tiltless(left, right, *, epipolar_angle_deg: float) -> Rectification:
    """Rotate a tilt-less (4D-STEM virtual detector) pair so that disparities are horizontal.

    Parameters
    ----------
    left, right : array_like, shape (rows, cols)
        Virtual images of the two detectors.
    epipolar_angle_deg : float
        Direction of the disparity in the scan image, from ``+x`` towards ``+y``
        (detector ``k2 - k1`` rotated by the scan-to-diffraction rotation). Both
        views are rotated by ``-epipolar_angle_deg`` about the image centre; no
        translation is applied.

    Returns
    -------
    Rectification
        With ``n_matches = n_inliers = 0`` and ``residual_vertical_px = NaN``.
    """
    left, right = check_pair(left, right)
    try:
        angle = float(epipolar_angle_deg)
    except (TypeError, ValueError):
        raise InputError(f"epipolar_angle_deg must be a number of degrees, got {epipolar_angle_deg!r}") from None
    if not np.isfinite(angle):
        raise InputError(f"epipolar_angle_deg must be finite, got {epipolar_angle_deg!r}")
    aff_l, aff_r = rectifying_affines(left.shape, angle)
    return Rectification(
        left=_warp(left, aff_l), right=_warp(right, aff_r), theta_deg=angle, translation=np.zeros(2),
        n_matches=0, n_inliers=0, residual_vertical_px=float("nan"), affine_left=aff_l, affine_right=aff_r,
        method="tiltless",
    )
