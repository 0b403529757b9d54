"""One tilt axis for a whole tilt series.

Every image of a series is taken with one goniometer at one magnification, so
every adjacent pair has the same tilt axis in the image. :func:`align_series`
aligns each adjacent pair on its own, combines their axes (weighted by their
errors, modulo 180 degrees), says whether they agree, and aligns every pair again
with the common axis fixed, so that all pairs share it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...checks import InputError

__all__ = ["SeriesAlignment", "align_series"]


@dataclass
class SeriesAlignment:
    """The common tilt axis of a series and each adjacent pair aligned with it.

    Attributes
    ----------
    theta_deg, theta_std_deg : float
        The common axis (degrees off the vertical, in (-90, 90]) and its standard error.
    pair_theta_deg, pair_theta_std_deg : list of float
        Each adjacent pair's own axis (NaN where its fit was refused).
    chi2 : float
        Sum of the squared, error-weighted deviations of the pairs' axes from the common one
        (about the number of pairs minus one when they agree).
    pairs : list of Rectification
        Each adjacent pair ``(k, k + 1)`` aligned with the common axis.
    warnings : list of str
    """

    theta_deg: float
    theta_std_deg: float
    pair_theta_deg: list
    pair_theta_std_deg: list
    chi2: float
    pairs: list
    warnings: list = field(default_factory=list)

    def summary(self) -> str:
        """The common axis and each adjacent pair's own figures, for the console (warnings last, in capitals)."""
        lines = [f"tilt series: {len(self.pairs) + 1} views, common tilt axis {self.theta_deg:.3f} +- "
                 f"{self.theta_std_deg:.3f} deg from vertical (chi2 {self.chi2:.1f} for {len(self.pairs)} pairs)"]
        for k, (own, own_std, rect) in enumerate(zip(self.pair_theta_deg, self.pair_theta_std_deg, self.pairs)):
            alone = "refused alone" if not np.isfinite(own) else f"alone {own:.3f} +- {own_std:.3f} deg"
            dx, dy = rect.shift
            lines.append(f"  views {k}-{k + 1}: {alone}; shift ({dx:.2f}, {dy:.2f}) px, {rect.n_inliers} inliers "
                         f"of {rect.n_matches}, residual across the epipolar direction "
                         f"{rect.residual_vertical_px:.3f} px")
        lines += [f"WARNING (tilt series): {w}" for w in self.warnings]
        return "\n".join(lines)


def align_series(images, *, max_chi2_per_pair: float = 4.0, **options) -> SeriesAlignment:
    """Align the adjacent pairs of a tilt series to one tilt axis.

    Parameters
    ----------
    images : sequence of array_like, each shape (rows, cols)
        The series in tilt order.
    max_chi2_per_pair : float
        Warn when the pairs' axes scatter more than their errors allow by this factor.
    **options
        Passed to :func:`~napari_stereo_tem.stereo.rectification.rectify_pair` (not ``theta_deg``).
        Each pair's angle counts by its standard error however large; ``max_theta_std_deg``
        (default :func:`~napari_stereo_tem.stereo.rectification.rectify_pair`'s) applies to the common axis.

    Returns
    -------
    SeriesAlignment

    Raises
    ------
    InputError
        Fewer than two images, no pair whose axis could be found, a common axis
        that is not determined, or a pair that does not align with it.
    """
    from ..rectification import rectify_pair
    from .fit import axis_std_limits, normalise_theta

    if len(images) < 2:
        raise InputError(f"a tilt series needs at least two images, got {len(images)}")
    if "theta_deg" in options:
        raise InputError("align_series finds the common axis itself; to impose one, call rectify_pair per pair")
    given_limit = options.pop("max_theta_std_deg", None)
    thetas, stds, refusals, limits = [], [], [], []
    for k in range(len(images) - 1):
        try:  # an imprecise pair still counts, by its error: the series may fix what one pair cannot
            rect = rectify_pair(images[k], images[k + 1], max_theta_std_deg=90.0, **options)
            thetas.append(rect.theta_deg)
            stds.append(max(rect.theta_std_deg, 1e-3))
            # this pair's limits as rectify_pair judges them (rows at its disparities' span when that is known
            # well), its scatter across the axis taken from the rows' median residual (the fit uses the MAD)
            limits.append(axis_std_limits(rect.disparity_span_px, noise_px=1.4826 * rect.residual_vertical_px)[1:])
        except InputError as err:
            thetas.append(float("nan"))
            stds.append(float("nan"))
            refusals.append(f"pair {k}-{k + 1}: {err}")
    ok = np.isfinite(thetas)
    if not ok.any():
        raise InputError("no adjacent pair of the series could be aligned: " + " | ".join(refusals))
    t, s = np.asarray(thetas)[ok], np.asarray(stds)[ok]
    ref = t[np.argmin(s)]
    wrapped = ref + (t - ref + 90.0) % 180.0 - 90.0  # the axis is a line: average modulo 180 degrees
    w = 1.0 / s ** 2
    common = float((w * wrapped).sum() / w.sum())
    chi2 = float((w * (wrapped - common) ** 2).sum())
    std = float(1.0 / np.sqrt(w.sum())) * max(1.0, np.sqrt(chi2 / max(len(t) - 1, 1)))
    warnings = list(refusals)
    if len(t) > 1 and chi2 > max_chi2_per_pair * (len(t) - 1):
        warnings.append(f"the pairs' tilt axes disagree more than their errors allow (chi2 {chi2:.1f} for "
                        f"{len(t)} pairs): {', '.join(f'{v:.2f}' for v in t)} degrees")
    # the common axis serves every pair: the strictest pair's limits (or the one given) apply
    limit = float(given_limit) if given_limit is not None else min(v[0] for v in limits)
    poorly = min(v[1] for v in limits)
    if std > limit:
        raise InputError(f"the tilt series' common axis is not determined ({normalise_theta(common):.2f} +- "
                         f"{std:.2f} degrees from {len(t)} pairs); give the tilt axis if the microscope's "
                         "calibration knows it" + ("; " + " | ".join(refusals) if refusals else ""))
    if std > poorly:
        warnings.append(f"the common tilt axis is POORLY DETERMINED ({normalise_theta(common):.2f} +- {std:.2f} "
                        "degrees); give the tilt axis if the microscope's calibration knows it")
    common = normalise_theta(common)
    pairs = []
    for k in range(len(images) - 1):
        try:
            pairs.append(rectify_pair(images[k], images[k + 1], theta_deg=common, **options))
        except InputError as err:
            raise InputError(f"views {k}-{k + 1} of the series do not align even with the common axis "
                             f"{common:.2f} degrees: {err}") from None
    return SeriesAlignment(common, std, list(map(float, thetas)), list(map(float, stds)), chi2, pairs, warnings)
