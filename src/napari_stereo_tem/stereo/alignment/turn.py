"""A turn (and scale) of one view relative to the other, found and undone before the tilt fit.

A refocus or a change of the objective current between the exposures turns one view
about the optic axis and may scale it slightly; the displacements then leave the one
line of the tilt model (:mod:`.fit`). With the right view turned by a small ``delta``
and scaled by ``1 + sigma`` about the image centre ``c``, a displacement's part across
the disparity direction ``u`` is ``t_n + delta (u . x) + sigma (n . x)``, ``x = left - c``:
linear in the position whatever the depths, which move points along ``u`` only.
:func:`fit_turned` finds the turn from that, undoes it, fits the axis and says how much
the turn's freedom costs the axis' precision.
"""

from __future__ import annotations

import numpy as np

from ...progress import check_cancelled
from ..projection import rotation_matrix
from .fit import axis_std_limits, fit_epipolar

__all__ = ["turn_affine", "compose_affines", "fit_turned"]


def _centre(shape) -> np.ndarray:
    rows, cols = shape[:2]
    return np.array([(cols - 1) / 2.0, (rows - 1) / 2.0])


def turn_affine(shape, turn_deg: float, scale: float) -> np.ndarray:
    """``2x3`` affine that undoes a turn and scale of a view about the image centre (raw to un-turned)."""
    centre = _centre(shape)
    linear = rotation_matrix(-turn_deg) / float(scale)
    return np.column_stack([linear, centre - linear @ centre])


def compose_affines(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The ``2x3`` affine ``outer(inner(p))``."""
    return np.column_stack([outer[:, :2] @ inner[:, :2], outer[:, :2] @ inner[:, 2] + outer[:, 2]])


def _across_model(x: np.ndarray, disp: np.ndarray, theta_rad: float) -> tuple[np.ndarray, np.ndarray]:
    """The displacements' part across the direction ``theta`` and the design ``[1, u . x, n . x]`` of its model."""
    u, n = np.array([np.cos(theta_rad), np.sin(theta_rad)]), np.array([-np.sin(theta_rad), np.cos(theta_rad)])
    return disp @ n, np.column_stack([np.ones(len(x)), x @ u, x @ n])


def _turn_from_residuals(left, right, shape, theta_deg: float, threshold: float) -> tuple[float, float, int]:
    """Turn (deg) and scale of the right view that explain how the displacements across ``u`` vary over the field.

    Robust least squares (Tukey's biweight) of the model in the module notes; returns
    ``(delta_deg, 1 + sigma, inliers)``.
    """
    x = np.asarray(left, float) - _centre(shape)
    across, design = _across_model(x, np.asarray(right, float) - np.asarray(left, float), np.deg2rad(theta_deg))
    weights = np.ones(len(x))
    coef = np.zeros(3)
    for _ in range(8):
        sw = np.sqrt(weights)
        coef, *_ = np.linalg.lstsq(design * sw[:, None], across * sw, rcond=None)
        resid = across - design @ coef
        r = resid / (4.685 * max(1.4826 * np.median(np.abs(resid)), 0.5 * threshold))
        weights = np.where(np.abs(r) < 1, (1 - r ** 2) ** 2, 0.0)
        if np.count_nonzero(weights) < 10:
            return 0.0, 1.0, 0
    return float(np.degrees(coef[1])), float(1.0 + coef[2]), int(np.sum(np.abs(resid) < threshold))


def _search_turn(left, right, shape, threshold: float, *, step_deg: float = 1.0) -> tuple[float, float]:
    """Turn and scale of the right view, the disparity direction unknown: the direction (on a grid) whose
    across-residuals a turn and a scale explain best."""
    best = (-1, 0.0, 1.0)
    for theta in np.arange(0.0, 180.0, step_deg):
        turn, scale, count = _turn_from_residuals(left, right, shape, theta, threshold)
        if count > best[0]:
            best = (count, turn, scale)
    return best[1], best[2]


def _turn_freedom(left, right, shape, theta_deg: float, *, half_range_deg: float = 4.0) -> float:
    """How much a free turn and scale of the right view widen the uncertainty of the axis angle (>= 1).

    The across-axis residuals of the (un-turned, inlier) correspondences are profiled over the axis
    angle twice: with only the shift across the axis free, and with the turn and the scale free too.
    The ratio of the two profiles' widths (from their curvature at the minimum) scales the angle's
    standard error. A specimen whose depth is one plane makes the displacements an affine field, which
    a turn, a scale and another axis explain as well: the free profile is then flat (ratio infinite).
    """
    x = np.asarray(left, float) - _centre(shape)
    disp = np.asarray(right, float) - np.asarray(left, float)
    grid = np.deg2rad(theta_deg + np.linspace(-half_range_deg, half_range_deg, 65))
    free, fixed = [], []
    for th in grid:
        across, design = _across_model(x, disp, th)
        coef, *_ = np.linalg.lstsq(design, across, rcond=None)
        free.append(float(np.sum((across - design @ coef) ** 2)))
        fixed.append(float(np.sum((across - across.mean()) ** 2)))

    def width(chi):
        chi = np.asarray(chi)
        k = int(np.argmin(chi))
        near = slice(max(k - 8, 0), min(k + 9, len(chi)))
        curvature = np.polyfit(grid[near] - grid[k], chi[near], 2)[0]
        noise = max(chi[k] / max(len(x) - 3, 1), 1e-12)
        return float(1.0 / np.sqrt(curvature / noise)) if curvature > 0 else float("inf")

    ratio = width(free) / max(width(fixed), 1e-12)
    return float(max(ratio, 1.0)) if np.isfinite(ratio) else float("inf")


def fit_turned(corr, shape, fit_options: dict, threshold: float, *, min_coverage: float = 0.15,
               min_inliers: int = 50):
    """The tilt geometry fitted after undoing a turn and scale of the right view: (fit, turn, scale, right points).

    The turn is found from the across-axis residuals (:func:`_search_turn`), then refined twice
    with the fitted axis (:func:`_turn_from_residuals`); the fitted axis' standard error is widened
    by :func:`_turn_freedom` and judged again against :func:`~.fit.axis_std_limits`. ``fit_options``
    are :func:`~.fit.fit_epipolar`'s. ``None`` when no turn is found, or when the correspondences it
    fits cover less than ``min_coverage`` of the field: a turn about the centre of points gathered in
    one small region is a shift there, and its two extra parameters then bend any axis into a fit (a
    bundle of dislocations covering 7 % of the field gave an axis 84 degrees off). ``None`` too when it
    fits fewer than ``min_inliers`` correspondences: the two extra parameters then bend a wrong axis into a
    fit as easily (a pile-up drawn with a bright fringe, 22 correspondences: a "turn" of 3.3 degrees and an
    axis 68 degrees off, claimed +- 1.7).
    """
    turn, scale = _search_turn(corr.left, corr.right, shape, threshold)
    if abs(turn) < 0.02 and abs(scale - 1.0) < 2e-4:
        return None
    fit, right = None, corr.right
    for _ in range(3):
        undo = turn_affine(shape, turn, scale)
        right = corr.right @ undo[:, :2].T + undo[:, 2]
        check_cancelled()
        fit = fit_epipolar(corr.left, right, **fit_options)
        if fit.n_inliers < 10:
            return None
        more_turn, more_scale, _ = _turn_from_residuals(corr.left[fit.inliers], right[fit.inliers], shape,
                                                        fit.theta_deg, threshold)
        if abs(more_turn) < 1e-3 and abs(more_scale - 1.0) < 1e-5:
            break
        turn, scale = turn + more_turn, scale * more_scale
    if not fit.coverage >= min_coverage or fit.n_inliers < min_inliers:
        return None
    if fit.theta_given:
        return fit, turn, scale, right
    fit.theta_std_deg = float(fit.theta_std_deg * _turn_freedom(corr.left[fit.inliers], right[fit.inliers], shape,
                                                                fit.theta_deg))
    span = fit.disparity_span_px if np.isfinite(fit.disparity_span_px) else 0.0
    _, limit, loud = axis_std_limits(span, max_theta_std_deg=fit_options.get("max_theta_std_deg"))
    fit.warnings = [w for w in fit.warnings if "tilt-axis angle" not in w]
    if not fit.theta_std_deg <= limit:
        fit.problems.append(f"the tilt-axis angle is not determined once the right view's turn ({turn:.2f} degrees) "
                            f"is free ({fit.theta_deg:.2f} +- {fit.theta_std_deg:.2f} degrees): the depths vary "
                            "too evenly over the field (one inclined surface) to tell a turn of the view from "
                            "a turn of the axis")
    elif fit.theta_std_deg > loud:
        fit.warnings.append(f"the tilt-axis angle is POORLY DETERMINED ({fit.theta_deg:.2f} +- "
                            f"{fit.theta_std_deg:.2f} degrees, the right view's turn being fitted too); give the "
                            "tilt axis if the microscope's calibration knows it")
    return fit, turn, scale, right
