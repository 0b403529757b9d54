"""Rectification of stereo pairs: epipolar lines become image rows.

A mechanically tilted pair is off in two ways (DESIGN 3.3, thesis 3.2): the
stage moved by a translation ``t = (t_x, t_y)`` between the exposures, and the
tilt axis lies at an angle ``theta`` off the image's vertical (any angle: it
turns with the magnification). The raw displacement of a correspondence ``q``
(right minus left, ``(x, y)`` pixels) is

    Delta_q = d_q * u - t,       u = (cos theta, sin theta),

with one free disparity ``d_q`` per point. In displacement space every correct
match therefore lies on one straight line of direction ``u``: its direction gives
``theta`` and its offset gives the component of ``t`` across ``u`` (the
perpendicular shift). The component of ``t`` along ``u`` cannot be told apart
from the disparities: it is a free depth origin, fixed here by putting the median
disparity at zero (or at ``pin_disparity``, or by a shift the user gives).

Correspondences come from :mod:`napari_stereo_tem.stereo.alignment`: dense patch
correlation (refined by ECC) and SIFT on band-passed, contrast-normalised views
with frames and burned-in overlays masked, optionally the detector's probability
maps, or points the user clicked. The fit (:func:`~napari_stereo_tem.stereo.alignment.fit_epipolar`)
refuses when it cannot be trusted.

Both views are then rotated by ``-theta`` about the image centre and shifted by
half the estimated translation each (in opposite directions), so that in the
rectified pair ``x_right - x_left = d`` on the same row, the tilt axis is the
vertical line through the central column ``(cols - 1) / 2`` and the scene stays
centred in both views. ``theta`` is measured from ``+x`` towards ``+y`` (rows
grow downwards), in ``(-90, 90]``; it is also the tilt axis' angle off the vertical.
The **shift** reported to the user is ``-t``: how far a feature at zero disparity
moves from the left to the right view.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..checks import InputError, check_pair
from ..images import binned
from ..progress import check_cancelled, map_threads
from .projection import rotation_matrix

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
        'correspondences' (fitted), 'manual' (points clicked by the user), 'given'
        (theta and shift both given) or 'tiltless'.
    theta_std_deg : float
        Standard error of the fitted theta (NaN when theta was given or assumed).
    warnings : list of str
        Conditions the user should know about (e.g. too little depth to fix theta).
    sources : dict
        Number of correspondences per source ('dense', 'sift', 'blob', 'sift-plain', 'guide', 'manual').
    inlier_sources : dict
        Number of inliers per source.
    coverage : float
        Share of the usable field covered by the inliers (convex hull), 0-1.
    disparity_span_px : float
        5-95 percentile range of the inliers' disparities (their depth spread).
    masked_fraction : float
        Share of the left view masked as frame, border or overlay.
    theta_given, shift_given : bool
        Whether theta / the shift came from the user.
    mask_left, mask_right : ndarray of bool or None
        The masks used (True = not used).
    view_turn_deg, view_scale : float
        Turn (degrees, from ``+x`` towards ``+y``) and scale of the right view relative to the
        left about the image centre, found and undone before the tilt geometry was fitted
        (0 and 1 when the views were not turned; see :func:`rectify_pair`).
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
    method: str = "correspondences"
    theta_std_deg: float = float("nan")
    warnings: list = field(default_factory=list)
    sources: dict = field(default_factory=dict)
    inlier_sources: dict = field(default_factory=dict)
    coverage: float = float("nan")
    disparity_span_px: float = float("nan")
    masked_fraction: float = 0.0
    theta_given: bool = False
    shift_given: bool = False
    mask_left: np.ndarray | None = field(default=None, repr=False)
    mask_right: np.ndarray | None = field(default=None, repr=False)
    view_turn_deg: float = 0.0
    view_scale: float = 1.0

    @property
    def shift(self) -> np.ndarray:
        """``-t``: displacement of a zero-disparity feature from the left to the right view, ``(dx, dy)`` px."""
        return -np.asarray(self.translation, dtype=float)

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
            "theta_given": bool(self.theta_given),
            "translation_px": [num(v) for v in self.translation],
            "shift_px": [num(v) for v in self.shift],
            "shift_given": bool(self.shift_given),
            "n_matches": int(self.n_matches),
            "n_inliers": int(self.n_inliers),
            "sources": dict(self.sources),
            "inlier_sources": dict(self.inlier_sources),
            "residual_vertical_px": num(self.residual_vertical_px),
            "coverage": num(self.coverage),
            "disparity_span_px": num(self.disparity_span_px),
            "masked_fraction": num(self.masked_fraction),
            "view_turn_deg": num(self.view_turn_deg),
            "view_scale": num(self.view_scale),
            "affine_left": [[num(v) for v in row] for row in self.affine_left],
            "affine_right": [[num(v) for v in row] for row in self.affine_right],
            "warnings": list(self.warnings),
            "summary": self.summary(),
        }

    def summary(self) -> str:
        """The figures in a few lines for the console (warnings last, in capitals)."""
        if self.method == "tiltless":
            return f"rectification: tilt-less pair turned by {self.theta_deg:.2f} deg (detector geometry)"
        sources = ", ".join(f"{v} {k}" for k, v in self.sources.items()) or "none"
        how = "given" if self.theta_given else f"+- {self.theta_std_deg:.3f} deg, fitted"
        if self.shift_given:
            along = "given"
        else:
            along = "fitted across the axis; along it, the median disparity is the depth origin"
        dx, dy = self.shift
        lines = [f"rectification ({self.method}: {sources}; "
                 f"{100 * self.masked_fraction:.1f} % of the left view masked as border/frame/overlay)",
                 f"  tilt axis {self.theta_deg:.3f} deg from vertical ({how})",
                 f"  shift left -> right ({dx:.2f}, {dy:.2f}) px ({along})",
                 f"  {self.n_inliers} inliers of {self.n_matches}, residual across the epipolar direction "
                 f"{self.residual_vertical_px:.3f} px, covering {100 * self.coverage:.0f} % of the field, "
                 f"disparities spanning {self.disparity_span_px:.1f} px"]
        if self.view_turn_deg != 0.0 or self.view_scale != 1.0:
            lines.append(f"  the right view was turned by {self.view_turn_deg:.3f} deg and scaled by "
                         f"{self.view_scale:.4f} relative to the left (undone before the fit)")
        lines += [f"WARNING (rectification): {w}" for w in self.warnings]
        return "\n".join(lines)


def rectifying_affines(shape, theta_deg: float, translation=(0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """Raw-to-rectified ``2x3`` affines of the left and right view.

    ``rect = R(-theta) (p -/+ t/2 - centre) + centre``: left shifted by ``-t/2``,
    right by ``+t/2``, both rotated about the image centre ``((cols-1)/2, (rows-1)/2)``.
    A raw displacement ``d u - t`` becomes ``(d, 0)``.
    """
    rows, cols = shape[:2]
    centre = np.array([(cols - 1) / 2.0, (rows - 1) / 2.0])
    rot = rotation_matrix(-theta_deg)
    half = np.asarray(translation, dtype=float) / 2.0
    affines = []
    for shift in (-half, half):
        offset = centre - rot @ (centre - shift)
        affines.append(np.column_stack([rot, offset]))
    return affines[0], affines[1]


def _warp(image: np.ndarray, affine: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float32)
    rows, cols = image.shape
    fill = float(np.median(image))
    return cv2.warpAffine(image, affine.astype(np.float64), (cols, rows), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=fill)


def _as_pair_of_points(points_left, points_right, shape) -> tuple[np.ndarray, np.ndarray]:
    if points_left is None or points_right is None:
        raise InputError("manual correspondences need both points_left and points_right")
    pl = np.asarray(points_left, dtype=float)
    pr = np.asarray(points_right, dtype=float)
    if pl.ndim != 2 or pl.shape[1] != 2 or pr.shape != pl.shape:
        raise InputError(f"points_left and points_right must be (n, 2) arrays of (x, y) of one shape, got "
                         f"{pl.shape} and {pr.shape}; click the same number of points in both views, in the same order")
    if len(pl) < 3:
        raise InputError(f"give at least 3 corresponding point pairs (got {len(pl)}): click each feature in "
                         "both views, in the same order")
    if not (np.all(np.isfinite(pl)) and np.all(np.isfinite(pr))):
        raise InputError("the clicked points hold NaN or inf")
    rows, cols = shape
    for name, pts in (("left", pl), ("right", pr)):
        if np.any(pts < -0.5) or np.any(pts[:, 0] > cols - 0.5) or np.any(pts[:, 1] > rows - 0.5):
            raise InputError(f"a clicked {name} point lies outside the image ({rows}x{cols}); points are (x, y)")
    return pl, pr


def _check_angle(value, name: str) -> float:
    try:
        angle = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number of degrees, got {value!r}") from None
    if not np.isfinite(angle):
        raise InputError(f"{name} must be finite, got {value!r}")
    return angle


def _check_shift(value, shape) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float).reshape(2)
    except (TypeError, ValueError):
        raise InputError(f"shift must be two numbers (dx, dy) in pixels, got {value!r}") from None
    if not np.all(np.isfinite(arr)):
        raise InputError(f"shift must be finite, got {value!r}")
    if np.any(np.abs(arr) > np.asarray(shape[::-1])):
        raise InputError(f"shift {tuple(arr)} px is larger than the field {shape[::-1]} (x, y); "
                         "the views would not overlap")
    return arr


def _one_blas_thread():
    """BLAS in one thread while the correspondences are found.

    The finders and the refinement already run in two threads; a BLAS thread pool beside them (the
    descriptor distances are one large matrix product) only competes for the same cores and keeps
    spinning after each call: a fifth of the CPU time of a rectification.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _auto_correspondences(left, right, mask_l, mask_r, *, methods, guides, working_size: int, refine: bool = True):
    """Correspondences at a working scale of at most ``working_size`` px, in full-resolution ``(x, y)``."""
    from .alignment import Correspondences, bandpass, find_correspondences
    from .alignment.matches import dense_matches

    factor = max(1, int(np.ceil(max(left.shape) / float(working_size))))
    lb, rb = binned(left.astype(np.float64), factor), binned(right.astype(np.float64), factor)
    ml, mr = binned(mask_l, factor, reduce=np.max), binned(mask_r, factor, reduce=np.max)
    a, b = bandpass(lb, ml), bandpass(rb, mr)

    def keypoints(plain: bool):
        """SIFT on the band-passed views, or on the plain ones (clean views keep their fine detail best)."""
        from .alignment.masks import fill_masked
        from .alignment.matches import SOURCES, sift_matches

        if "sift" not in methods:
            return Correspondences.empty()
        if plain:
            pl, pr = sift_matches(fill_masked(lb, ml).astype(np.float32), fill_masked(rb, mr).astype(np.float32),
                                  ~ml, ~mr)
        else:
            pl, pr = sift_matches(a, b, ~ml, ~mr)
        return Correspondences(pl, pr, np.full(len(pl), SOURCES.index("sift-plain" if plain else "sift")))

    def patches_and_blobs():
        return find_correspondences(a, b, ~ml, ~mr, methods=[m for m in methods if m not in ("guide", "sift")])

    # OpenCV's SIFT releases the interpreter: the keypoints are found beside the patches and blobs
    (corr, shifts), sift, sift_plain = map_threads(lambda job: job(), [
        patches_and_blobs, lambda: keypoints(False), lambda: keypoints(True)], workers=3)
    corr = corr.concat(sift).concat(sift_plain)
    check_cancelled()
    if guides is not None:
        ga, gb = (binned(np.asarray(g, dtype=np.float64), factor) for g in guides)
        ga, gb = (np.where(m, 0.0, g - np.median(g)).astype(np.float32) for g, m in ((ga, ml), (gb, mr)))
        size = min(a.shape)
        patch = max(32, min(64, 2 * (size // 20)))
        pl, pr, _ = dense_matches(ga, gb, ~ml, ~mr, shifts, patch=patch, step=patch // 2,
                                  search=max(12, size // 24))
        corr = corr.concat(Correspondences(pl, pr, np.full(len(pl), 2)))
    check_cancelled()
    if refine:
        from .alignment.refine import refine_all

        corr = refine_all(a, b, corr, ~ml, ~mr)
    if factor > 1:
        corr.left = corr.left * factor + (factor - 1) / 2.0
        corr.right = corr.right * factor + (factor - 1) / 2.0
        corr.sigma = corr.sigma * factor
    return corr, factor


def rectify_pair(left, right, *, theta_deg: float | None = None, shift=None, points_left=None, points_right=None,
                 pin_disparity: float | None = None, guides=None, masks=None, auto_mask: bool = True,
                 methods=("dense", "blob", "sift"), min_matches: int = 20, ransac_threshold_px: float = 1.0,
                 strict: bool = True, max_theta_std_deg: float | None = None, working_size: int = 1024,
                 seed: int = 0) -> Rectification:
    """Rectify a mechanically tilted stereo pair: find the tilt axis and the shift, then warp.

    Run under :func:`~napari_stereo_tem.progress.drive` (or a front end's cancel check), a cancel stops it
    between its steps and inside them (:func:`~napari_stereo_tem.progress.check_cancelled`).

    Parameters
    ----------
    left, right : array_like, shape (rows, cols)
        Raw views; ``left`` is the ``-phi/2`` view (DESIGN section 2).
    theta_deg : float, optional
        Known tilt-axis angle off the vertical (degrees, any value; e.g. from the
        microscope's calibration). Default: fitted.
    shift : (float, float), optional
        Known displacement ``(dx, dy)`` px of a feature at zero disparity from the
        left to the right view (``-t``); it also fixes the depth origin. Default: fitted.
    points_left, points_right : array_like, shape (n, 2), optional
        At least 3 corresponding ``(x, y)`` points clicked by the user; when given,
        the fit uses only them (no automatic matching).
    pin_disparity : float, optional
        Disparity (rectified px) given to the median correspondence; default 0
        (median depth at 0). Ignored when ``shift`` is given.
    guides : (ndarray, ndarray), optional
        Extra images of the two views matched densely as well, e.g. the detector's
        probability maps (:func:`napari_stereo_tem.stereo.detection.predict_probability`).
    masks : (ndarray, ndarray) of bool, optional
        Pixels of each view not to use (True), added to the automatic masks.
    auto_mask : bool
        Mask frames, burned-in overlays and pixels identical in both views
        (:func:`~napari_stereo_tem.stereo.alignment.overlay_mask`).
    methods : sequence of {"dense", "blob", "sift"}
        Correspondence finders.
    min_matches : int
        Fewest inliers accepted (automatic correspondences).
    ransac_threshold_px : float
        Largest distance (px at the working scale) of an inlier's displacement from the model line.
    strict : bool
        Refuse (raise) when the fit cannot be trusted; False goes on with loud
        warnings (keeping a fitted angle whose error is below 10 degrees, else a vertical axis).
    max_theta_std_deg : float, optional
        Largest standard error of the fitted angle accepted; default the angle that
        would move rows by 1 px at a disparity of 32 px (1.8 degrees; see
        :func:`~napari_stereo_tem.stereo.alignment.fit_epipolar`); clicked points: 5 degrees.
        A warning comes from 0.05 degrees, a loud one (POORLY DETERMINED) from 0.45 degrees.
    working_size : int
        Views larger than this are binned for matching (the fit is in full-resolution pixels).
    seed : int
        Seed of the robust fit's sampler.

    Returns
    -------
    Rectification

    Raises
    ------
    InputError
        Mismatched shapes, constant images, too few, too concentrated or
        inconsistent correspondences, too little depth to fix the axis.
    """
    from .alignment import Correspondences, fit_epipolar, overlay_mask
    from .alignment.masks import fill_masked
    from .alignment.refusals import geometry_refusals
    from .alignment.turn import compose_affines, fit_turned, turn_affine

    left, right = check_pair(left, right)
    rows, cols = left.shape
    theta_given = theta_deg is not None
    theta_in = _check_angle(theta_deg, "theta_deg (the tilt axis)") if theta_given else None
    shift_in = None if shift is None else _check_shift(shift, left.shape)
    manual = points_left is not None or points_right is not None
    overlay_l = overlay_mask(left, other=right, border_px=0) if auto_mask else np.zeros(left.shape, bool)
    check_cancelled()
    overlay_r = overlay_mask(right, other=left, border_px=0) if auto_mask else np.zeros(left.shape, bool)
    if masks is not None:
        extra_l, extra_r = (np.asarray(m, dtype=bool) for m in masks)
        if extra_l.shape != left.shape or extra_r.shape != left.shape:
            raise InputError(f"masks must have the views' shape {left.shape}")
        overlay_l, overlay_r = overlay_l | extra_l, overlay_r | extra_r
    edge = max(3, int(round(0.01 * min(rows, cols))))
    border = np.zeros(left.shape, bool)
    border[:edge], border[-edge:], border[:, :edge], border[:, -edge:] = True, True, True, True
    use_l, use_r = overlay_l | border, overlay_r | border
    if use_l.mean() > 0.9 or use_r.mean() > 0.9:
        raise InputError(f"{100 * max(use_l.mean(), use_r.mean()):.0f} % of a view is frame, border or overlay; "
                         "crop the views to the specimen (or pass auto_mask=False)")
    factor = 1
    check_cancelled()
    if manual:
        pl, pr = _as_pair_of_points(points_left, points_right, left.shape)
        corr = Correspondences(pl, pr, np.full(len(pl), 3))
    else:
        try:
            with _one_blas_thread():
                corr, factor = _auto_correspondences(left, right, use_l, use_r, methods=methods, guides=guides,
                                                     working_size=working_size)
        except InputError:
            if not (theta_given and shift_in is not None):
                raise
            corr = Correspondences.empty()
    check_cancelled()
    t_known = None if shift_in is None else -shift_in
    fit_options = dict(theta_deg=theta_in, shift=t_known, threshold_px=ransac_threshold_px * factor,
                       robust=not manual, usable_area=float((~use_l).sum()),
                       min_inliers=3 if manual else min_matches,
                       max_theta_std_deg=5.0 if manual else max_theta_std_deg, groups=corr.source,
                       point_sigma=None if manual else corr.sigma, seed=seed)
    fit = fit_epipolar(corr.left, corr.right, **fit_options)
    right_pts, turn, scale = corr.right, 0.0, 1.0
    if (not manual and shift_in is None and len(corr) >= min_matches
            and (fit.problems or fit.n_inliers < 0.9 * len(corr))):
        # A tilt moves features along one direction only; views also turned (or scaled) relative to each
        # other, e.g. by a refocus between the exposures, spread the displacements off that line. Undone
        # first, the geometry is kept only when it fits clearly more correspondences (its problems, if
        # any, then refuse: the plain geometry explains too few of them to be trusted). A turn and a scale
        # can also invent depth where there is little: a plain fit refused for too little depth, with most
        # correspondences consistent, is not rescued by one.
        turned = fit_turned(corr, left.shape, fit_options, ransac_threshold_px * factor)
        if turned is not None and turned[0].n_inliers > 1.2 * fit.n_inliers:
            fit, turn, scale, right_pts = turned
    warnings = list(fit.warnings)
    problems = [] if (theta_given and shift_in is not None) else list(fit.problems)
    if not manual and not problems:
        problems += geometry_refusals(corr, fit, left.shape)
    if problems:
        fix = ("give the tilt axis (--tilt-axis DEG / theta_deg) and/or the shift (--shift DX,DY / shift) if the "
               "microscope's calibration knows them, click at least 3 corresponding points in both views, or crop "
               "the views to the specimen")
        if strict:
            found = ", ".join(f"{v} {k}" for k, v in corr.counts().items()) or "none"
            raise InputError(f"rectification refused ({found} correspondences, {fit.n_inliers} consistent): "
                             + "; ".join(problems) + ". Fix: " + fix)
        warnings += [f"NOT TRUSTED: {p}" for p in problems]
        usable = np.isfinite(fit.theta_std_deg) and fit.theta_std_deg <= 10.0 and fit.n_inliers >= 3
        if not theta_given and usable and any("not determined" in p for p in problems):
            warnings.append(f"the FITTED tilt axis was kept although it is not determined "
                            f"({fit.theta_deg:.2f} +- {fit.theta_std_deg:.2f} degrees); pass theta_deg if it is known")
        elif not theta_given and any("not determined" in p for p in problems):
            warnings.append("the tilt axis was ASSUMED vertical (0 degrees); pass theta_deg if it is known")
            fit = fit_epipolar(corr.left, corr.right, theta_deg=0.0, shift=t_known,
                               threshold_px=ransac_threshold_px * factor, robust=not manual,
                               usable_area=float((~use_l).sum()), min_inliers=1, seed=seed)
            fit.theta_given = False
    theta = fit.theta_deg
    th = np.deg2rad(theta)
    u, normal = np.array([np.cos(th), np.sin(th)]), np.array([-np.sin(th), np.cos(th)])
    inliers = fit.inliers
    disp = (right_pts - corr.left)[inliers]
    if t_known is not None:
        correction = t_known.astype(float)
    else:
        target = 0.0 if pin_disparity is None else float(pin_disparity)
        t_along = target - float(np.median(disp @ u)) if len(disp) else 0.0
        correction = fit.t_perp * normal + t_along * u  # its part along u is the depth origin
    check_cancelled()
    aff_l, aff_r = rectifying_affines(left.shape, theta, correction)
    if turn != 0.0 or scale != 1.0:
        aff_r = compose_affines(aff_r, turn_affine(left.shape, turn, scale))
        warnings.append(f"the right view is turned by {turn:.2f} degrees and scaled by {scale:.4f} relative to the "
                        "left (e.g. a refocus between the exposures); undone before the tilt geometry was fitted")
    keep_l, keep_r = corr.left[inliers], corr.right[inliers]
    inlier_sources = Correspondences(keep_l, keep_r, corr.source[inliers]).counts()
    out_l = fill_masked(left, overlay_l) if overlay_l.any() else left
    out_r = fill_masked(right, overlay_r) if overlay_r.any() else right
    method = "manual" if manual else ("given" if theta_given and shift_in is not None else "correspondences")
    rect = Rectification(
        left=_warp(out_l, aff_l), right=_warp(out_r, aff_r), theta_deg=theta, theta_std_deg=fit.theta_std_deg,
        translation=correction, n_matches=len(corr), n_inliers=int(inliers.sum()),
        residual_vertical_px=float("nan"), affine_left=aff_l, affine_right=aff_r,
        keypoints_left=keep_l, keypoints_right=keep_r, warnings=warnings, method=method,
        sources=corr.counts(), inlier_sources=inlier_sources, coverage=fit.coverage,
        disparity_span_px=fit.disparity_span_px,
        masked_fraction=float(use_l.mean()), theta_given=theta_given, shift_given=shift_in is not None,
        mask_left=use_l, mask_right=use_r, view_turn_deg=float(turn), view_scale=float(scale),
    )
    if len(keep_l):
        dy = rect.map_points(keep_r, view="right")[:, 1] - rect.map_points(keep_l, view="left")[:, 1]
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
