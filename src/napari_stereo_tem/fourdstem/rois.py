"""HyperSpy ``CircleROI``s as virtual detectors, giving what pyxem gives for the same ROI.

HyperSpy decides which pixels a ``CircleROI(cx, cy, r)`` holds with the ROI
centre moved by ``0.5001`` pixel (``cx + 0.5001 * scale``) and the circle cut to
the rectangle ``round(c - r) .. round(c + r)`` (end excluded); a naively centred
mask misses or adds a pixel (DESIGN section 7). :func:`roi_mask` therefore asks
the ROI itself which pixels it holds (on an index image with the signal's
detector axes), and :func:`from_circle_roi` returns the disc in this project's
pixel convention with that shift applied.
"""

from __future__ import annotations

import numpy as np

from ..checks import InputError
from .masks import Disc, disc_mask

__all__ = ["HYPERSPY_CENTRE_SHIFT", "from_circle_roi", "roi_mask"]

#: HyperSpy's CircleROI centre shift, in pixels.
HYPERSPY_CENTRE_SHIFT = 0.5001


def _signal_axes(signal):
    am = signal.axes_manager
    if am.signal_dimension != 2:
        raise InputError(f"the signal has {am.signal_dimension} signal dimension(s); a 4D-STEM signal "
                         "has 2 (the detector)")
    ax_x, ax_y = am.signal_axes
    for ax in (ax_x, ax_y):
        if not ax.is_uniform:
            raise InputError("CircleROIs need uniform (linear) detector axes")
    return ax_x, ax_y


def _check_roi(roi):
    for name in ("cx", "cy", "r"):
        if not hasattr(roi, name):
            raise InputError(f"expected a hyperspy CircleROI, got {type(roi).__name__}")
    if not all(np.isfinite([roi.cx, roi.cy, roi.r])) or roi.r <= 0:
        raise InputError(f"the CircleROI {roi} is not set (give cx, cy and a positive r)")


def from_circle_roi(roi, signal) -> Disc:
    """Disc (detector pixels, DESIGN section 5 convention) for a HyperSpy ``CircleROI``.

    Parameters
    ----------
    roi : hyperspy.roi.CircleROI
        ``cx``, ``cy``, ``r`` (and ``r_inner``) in the signal's calibrated units.
    signal : HyperSpy/pyxem signal
        Gives the detector axes (scale and offset).

    Returns
    -------
    Disc
        Centre ``((cy - offset) / scale + 0.5001, (cx - offset) / scale + 0.5001)``,
        radius ``r / scale``, and ``bounds``: HyperSpy cuts the circle to the
        rectangle ``round(c - r) .. round(c + r)`` (end excluded), which drops the
        last row and/or column of the circle in about three cases out of four; the
        bounds reproduce that, so the disc holds exactly the ROI's pixels and the
        virtual image equals pyxem's ``get_integrated_intensity``.
    """
    _check_roi(roi)
    ax_x, ax_y = _signal_axes(signal)
    if not np.isclose(abs(ax_x.scale), abs(ax_y.scale)):
        raise InputError(f"the detector axes have different scales ({ax_x.scale}, {ax_y.scale}); a circle "
                         "ROI is then an ellipse in pixels: use roi_mask")
    scale = float(ax_x.scale)
    cx = (roi.cx - ax_x.offset) / scale + HYPERSPY_CENTRE_SHIFT
    cy = (roi.cy - ax_y.offset) / float(ax_y.scale) + HYPERSPY_CENTRE_SHIFT
    inner = float(getattr(roi, "r_inner", 0.0) or 0.0) / abs(scale)
    exact = roi_mask(roi, signal)
    rows = np.flatnonzero(exact.any(axis=1))
    cols = np.flatnonzero(exact.any(axis=0))
    if rows.size == 0:
        raise InputError(f"the CircleROI {roi} holds no detector pixel of this signal; move it onto the pattern")
    bounds = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
    return Disc(float(cy), float(cx), float(roi.r) / abs(scale), inner, bounds)


def roi_mask(roi, signal) -> np.ndarray:
    """Boolean mask ``(det_y, det_x)`` of exactly the pixels HyperSpy's ``roi`` holds on ``signal``."""
    import hyperspy.api as hs

    _check_roi(roi)
    ax_x, ax_y = _signal_axes(signal)
    index = hs.signals.Signal2D(np.arange(ax_y.size * ax_x.size, dtype=float).reshape(ax_y.size, ax_x.size))
    for src, dst in zip((ax_x, ax_y), index.axes_manager.signal_axes):
        dst.scale, dst.offset, dst.units = src.scale, src.offset, src.units
    inside = roi(index, axes=index.axes_manager.signal_axes).data
    mask = np.zeros(ax_y.size * ax_x.size, dtype=bool)
    mask[inside[np.isfinite(inside)].astype(np.int64)] = True
    return mask.reshape(ax_y.size, ax_x.size)


def disc_matches_roi(roi, signal) -> bool:
    """Whether the disc of :func:`from_circle_roi` holds exactly the ROI's pixels (for tests/diagnostics)."""
    d = from_circle_roi(roi, signal)
    ax_x, ax_y = _signal_axes(signal)
    mask = disc_mask((ax_y.size, ax_x.size), d.cy, d.cx, d.radius, inner_radius=d.inner_radius, bounds=d.bounds)
    return bool(np.array_equal(mask, roi_mask(roi, signal)))
