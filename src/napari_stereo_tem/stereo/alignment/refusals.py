"""Reasons to refuse a fitted tilt geometry beyond the fit's own checks (:mod:`.fit`).

Each looks at what the geometry rests on: which finders support it, how many of
the correspondences and what share, how much depth it implies. A wrong axis with a
small claimed error is the worst outcome of an alignment; these catch the chance
alignments seen on synthetic pairs (see the notes of each).
"""

from __future__ import annotations

import numpy as np

from .fit import axis_std_limits
from .matches import SOURCES

__all__ = ["geometry_refusals", "sources_disagree", "rests_on_few_blobs", "few_agree", "span_too_large"]


def geometry_refusals(corr, fit, shape) -> list:
    """Every problem of the four checks below for ``fit`` on correspondences ``corr`` in views of ``shape``."""
    return (sources_disagree(corr, fit.inliers) + rests_on_few_blobs(corr, fit) + span_too_large(fit, shape)
            + few_agree(fit, len(corr)))


def sources_disagree(corr, inliers, *, min_count: int = 20, min_fraction: float = 0.4) -> list:
    """A problem when the dense patches and the blob votes, each plentiful, do not support one geometry.

    Each of the two finds correct correspondences on its own in its own regime; a
    geometry that one of them supports while most of the other's matches miss it
    is more likely a chance alignment (e.g. of blob pairs) than the tilt.
    """
    shares = {}
    for name in ("dense", "blob"):
        sel = corr.source == SOURCES.index(name)
        if sel.sum() >= min_count:
            shares[name] = (float(inliers[sel].mean()), int(sel.sum()))
    if len(shares) == 2 and min(v[0] for v in shares.values()) < min_fraction:
        text = " and ".join(f"{100 * share:.0f} % of the {n} {name} matches" for name, (share, n) in shares.items())
        return [f"the correspondence finders disagree: the geometry found fits {text}"]
    return []


def rests_on_few_blobs(corr, fit, *, min_blobs: int = 60, warn_row_error_px: float = 0.25,
                        reach_px: float = 32.0) -> list:
    """A problem when the axis rests mostly on a few blob pairs.

    Blob pairs are chosen by the line they vote for, so they confirm their own
    geometry; a few dozen of them can line up by chance in displacement space (a
    dislocation scene with 32 blob pairs among 45 consistent correspondences gave an
    axis 65 degrees off with a claimed +- 0.4 degrees). An axis that other
    correspondences do not pin down is not accepted on them alone, however small its
    standard error.
    """
    if fit.theta_given or not np.isfinite(fit.theta_std_deg) or fit.n_inliers == 0:
        return []
    blobs = int(np.sum(fit.inliers & (corr.source == SOURCES.index("blob"))))
    poorly = fit.theta_std_deg > axis_std_limits(0.0, warn_row_error_px=warn_row_error_px,
                                                 disparity_reach_px=reach_px)[2]
    if blobs > fit.n_inliers / 2 and blobs < min_blobs:
        return [f"the tilt axis rests mostly on {blobs} blob pairs (of {fit.n_inliers} consistent correspondences), "
                "which can line up by chance" + (f", and it is poorly determined ({fit.theta_deg:.2f} +- "
                                                 f"{fit.theta_std_deg:.2f} degrees)" if poorly else "")]
    return []


def few_agree(fit, n_correspondences: int, *, min_share: float = 0.3, min_count: int = 50) -> list:
    """A problem when the geometry rests on few correspondences that are also a small share of all.

    Either alone is common in a good fit (few features; many wrong matches on moving contrast);
    together (e.g. 25 of 113) a wrong line through a chance group is as likely as the tilt.
    """
    n_in = fit.n_inliers
    if fit.theta_given or n_correspondences == 0 or n_in >= min_count or n_in >= min_share * n_correspondences:
        return []
    return [f"only {n_in} of {n_correspondences} correspondences ({100 * n_in / n_correspondences:.0f} %) fit the "
            "geometry found: too few, and too small a share, to tell it from a chance alignment"]


def span_too_large(fit, shape, *, max_fraction: float = 1.0 / 3.0) -> list:
    """A problem when the consistent correspondences' disparities span more than a third of the field.

    A foil seen at the usual tilt steps moves its features by a small part of the
    field relative to each other; a wider span comes from matches between repeated
    features (parallel lines, stripes of a boundary) that line up along one direction.
    """
    limit = max_fraction * min(shape)
    if fit.theta_given or not np.isfinite(fit.disparity_span_px) or fit.disparity_span_px <= limit:
        return []
    return [f"the consistent correspondences' disparities span {fit.disparity_span_px:.0f} px, "
            f"{100 * fit.disparity_span_px / min(shape):.0f} % of the field: more depth than a tilt pair of a foil "
            "shows; they are likely matches between repeated features (parallel lines, stripes)"]
