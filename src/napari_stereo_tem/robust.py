"""Robust statistics shared by the modules that judge noise and outliers."""

from __future__ import annotations

import numpy as np

__all__ = ["robust_std"]


def robust_std(values) -> float:
    """The standard deviation of the finite ``values`` from their median absolute deviation (0 if none).

    ``1.4826 * median(|v - median(v)|)``: the standard deviation for normal noise, unmoved by outliers
    (hot pixels, a line, a few wrong matches).
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(values - np.median(values))))
