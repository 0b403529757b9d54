"""Descan correction: the direct-beam centre at every scan position, and patterns shifted back.

When the descan coils do not cancel the scan, the direct beam wanders over the
detector as the probe moves. :func:`beam_centres` measures its centre of mass
(inside a window around the mean-pattern disc) in one pass on the chosen
executor. The virtual images use the centres directly, sub-pixel, inside their
own pass (``virtual_images(..., descan=centres)``); :func:`correct_descan`
instead gives the patterns shifted by whole pixels so the centre sits at a
reference, lazily (counts are moved, never interpolated).
"""

from __future__ import annotations

import dask.array as da
import numpy as np

from ..checks import InputError
from ..progress import ProgressGenerator, drive
from .calibration import find_direct_beam, iter_patterns
from .executors import band_source, bands_of, iter_bands
from .loading import open_4dstem
from .masks import as_disc, disc_mask

__all__ = ["beam_centres", "iter_beam_centres", "correct_descan"]


def _centres_block(block: np.ndarray, window: np.ndarray, y0: int, x0: int) -> np.ndarray:
    by, bx, h, w = block.shape
    b = block.reshape(by * bx, h, w).astype(np.float32) * window
    # threshold at half of each pattern's windowed maximum: the disc, not the diffuse background
    b = np.where(b >= 0.5 * b.max(axis=(1, 2), keepdims=True), b, 0)
    total = b.sum(axis=(1, 2))
    total[total == 0] = np.nan
    ky = (b.sum(axis=2) * np.arange(h)).sum(axis=1) / total + y0
    kx = (b.sum(axis=1) * np.arange(w)).sum(axis=1) / total + x0
    return np.stack([ky, kx], axis=-1).reshape(by, bx, 2).astype(np.float32)


def _window(ds, direct, margin: float):
    ny, nx = ds.detector_shape
    half = margin * direct.radius
    y0, y1 = max(int(np.floor(direct.cy - half)), 0), min(int(np.ceil(direct.cy + half)) + 1, ny)
    x0, x1 = max(int(np.floor(direct.cx - half)), 0), min(int(np.ceil(direct.cx + half)) + 1, nx)
    if y1 <= y0 or x1 <= x0:
        raise InputError(f"the direct disc {direct} lies off the detector")
    window = disc_mask((y1 - y0, x1 - x0), direct.cy - y0, direct.cx - x0, half).astype(np.float32)
    return (slice(y0, y1), slice(x0, x1)), window


def _band_centres(frames, a: int, b: int, box, window) -> np.ndarray:
    rows, cols = box
    return _centres_block(frames[a:b, :, rows, cols], window, rows.start, cols.start)


def iter_beam_centres(data, *, direct=None, margin: float = 2.0, executor="threads",
                      max_workers: int | None = None,
                      rows_per_task: int | None = None) -> ProgressGenerator[np.ndarray]:
    """Direct-beam centre ``(cy, cx)`` per scan position, ``(scan_y, scan_x, 2)`` float32 (a progress generator).

    One pass over the detector window around the beam, on ``executor``
    (:mod:`.executors`). Positions without a beam are NaN.

    Parameters
    ----------
    data : anything :func:`open_4dstem` opens
    direct : Disc, optional
        The direct disc on the mean pattern (found with :func:`find_direct_beam` if not given).
    margin : float
        The search window is ``margin x radius`` around ``direct``'s centre.
    """
    ds = open_4dstem(data)
    if direct is None:
        patterns = yield from iter_patterns(ds, executor=executor, max_workers=max_workers)
        direct = find_direct_beam(patterns[0])
    direct = as_disc(direct)
    box, window = _window(ds, direct, margin)
    out = np.full((*ds.scan_shape, 2), np.nan, dtype=np.float32)

    def put(band, values):
        out[band[0]:band[1]] = values

    yield from iter_bands(_band_centres, band_source(ds, executor), bands_of(ds, rows_per_task), box, window,
                          executor=executor, max_workers=max_workers, stage="beam centres", on_result=put)
    return out


def beam_centres(data, *, direct=None, margin: float = 2.0, executor="threads", on_progress=None,
                 should_stop=None) -> np.ndarray:
    """Direct-beam centre ``(cy, cx)`` per scan position: ``(scan_y, scan_x, 2)`` float32.

    Drives :func:`iter_beam_centres` (same parameters).
    """
    return drive(iter_beam_centres(data, direct=direct, margin=margin, executor=executor), on_progress,
                 should_stop)


def _shift_block(block: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    out = np.zeros_like(block)
    h, w = block.shape[2:]
    for iy in range(block.shape[0]):
        for ix in range(block.shape[1]):
            dy, dx = int(shifts[iy, ix, 0]), int(shifts[iy, ix, 1])
            ys, yd = slice(max(-dy, 0), min(h - dy, h)), slice(max(dy, 0), min(h + dy, h))
            xs, xd = slice(max(-dx, 0), min(w - dx, w)), slice(max(dx, 0), min(w + dx, w))
            out[iy, ix, yd, xd] = block[iy, ix, ys, xs]
    return out


def correct_descan(data, centres, *, reference=None) -> da.Array:
    """Patterns shifted by whole pixels so the direct beam sits at ``reference`` everywhere (lazy).

    Parameters
    ----------
    data : anything :func:`open_4dstem` opens
    centres : array ``(scan_y, scan_x, 2)``
        From :func:`beam_centres` (computed or not).
    reference : (cy, cx), optional
        Where the centre should go; default the median centre.

    Returns
    -------
    dask array ``(scan_y, scan_x, det_y, det_x)``, same dtype; pixels shifted in are 0.
    """
    ds = open_4dstem(data)
    c = np.asarray(centres.compute() if isinstance(centres, da.Array) else centres, dtype=float)
    if c.shape != (*ds.scan_shape, 2):
        raise InputError(f"centres must have shape {(*ds.scan_shape, 2)}, got {c.shape}")
    ref = np.nanmedian(c.reshape(-1, 2), axis=0) if reference is None else np.asarray(reference, float)[:2]
    shifts = np.rint(ref - c)
    shifts[~np.isfinite(shifts)] = 0
    arr = ds.data.rechunk({2: -1, 3: -1})
    shift_arr = da.from_array(shifts.astype(np.int64), chunks=arr.chunks[:2] + ((2,),))
    return da.map_blocks(_shift_block, arr, shift_arr, dtype=arr.dtype)
