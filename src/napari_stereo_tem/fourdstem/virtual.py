"""Virtual images: any number of detectors in one pass over a 4D-STEM dataset.

For every block of scan positions the detector is cropped to the bounding box
of the detectors (of each group of nearby detectors, when they lie far apart:
:func:`~.masks.group_detectors`), the block is flattened to ``(positions,
pixels)`` and multiplied once by the stacked masks ``(pixels, n_detectors)``.
Each detector pixel is read at most once per pass whatever the number of
detectors; the product is done in small cache-sized pieces, so the cost follows
the bytes read.

Executors: ``"inline"``, ``"threads"`` or ``dask.distributed`` (a ``Client`` or a
scheduler address string), through :mod:`.executors`. The work is a progress
generator (:func:`iter_virtual_images`); :func:`virtual_images` drives it.

Descan: given the beam centre at every scan position (:func:`~.descan.beam_centres`),
each pattern's detectors move with its beam, sub-pixel, inside the same pass
(:func:`reduce_block_shifted`).
"""

from __future__ import annotations

import numpy as np

from ..checks import InputError
from ..progress import Progress, ProgressGenerator, drive
from .executors import band_source, bands_of, check_executor, iter_bands
from .loading import open_4dstem
from .masks import Disc, detector_masks, disc_mask, group_detectors, masks_bbox
from .rois import from_circle_roi, roi_mask

__all__ = ["Disc", "disc_mask", "virtual_images", "iter_virtual_images", "reduce_block", "reduce_block_shifted",
           "virtual_images_from_rois"]

#: Bytes of float32 converted at a time inside a block (stays in cache).
_PIECE_BYTES = 4 * 2**20


def reduce_block(block: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Virtual-detector sums of one block.

    Parameters
    ----------
    block : array ``(by, bx, h, w)``
        Scan positions by cropped detector pixels (any numeric dtype, any strides).
    weights : float32 array ``(h * w, n)``
        The cropped masks, flattened and stacked as columns.

    Returns
    -------
    float32 array ``(by, bx, n)``
    """
    by, bx, h, w = block.shape
    n = weights.shape[1]
    out = np.empty((by, bx, n), dtype=np.float32)
    step = max(1, _PIECE_BYTES // max(h * w * 4, 1))
    try:
        flat = block.view()
        flat.shape = (by * bx, h, w)  # refuses (AttributeError) rather than copying
        groups = [(flat, out.reshape(by * bx, n))]
    except AttributeError:
        groups = [(block[y], out[y]) for y in range(by)]
    buffer = np.empty((min(step, by * bx), h, w), dtype=np.float32)  # reused: no page faults per piece
    for frames, target in groups:
        for i in range(0, frames.shape[0], step):
            m = min(step, frames.shape[0] - i)
            np.copyto(buffer[:m], frames[i:i + m], casting="unsafe")
            np.matmul(buffer[:m].reshape(m, h * w), weights, out=target[i:i + m])
    return out


def _plan(masks: np.ndarray, *, moving: bool = False) -> list[tuple]:
    """``(rows, cols, indices, weights)`` per group of detectors (:func:`group_detectors`).

    ``weights`` are the group's masks cut to its box, flattened to columns; with
    ``moving`` (descan), the group's :class:`_ShiftedKernel` instead, made once
    for every band.
    """
    plan = []
    for rows, cols, idx in group_detectors(masks):
        if moving:
            plan.append((rows, cols, idx, _ShiftedKernel(masks[idx])))
        else:
            weights = np.ascontiguousarray(masks[idx][:, rows, cols].reshape(len(idx), -1).T)
            plan.append((rows, cols, idx, weights))
    return plan


def _band_from_frames(frames, y0: int, y1: int, plan, shifts=None) -> np.ndarray:
    """Virtual images ``(y1 - y0, scan_x, n)`` of scan rows ``y0:y1``, reading only each group's box.

    With ``shifts`` (per-position beam shifts), each box is widened by the whole
    pixels the band's shifts span (and one more, for the bilinear weights).
    """
    n = sum(len(p[2]) for p in plan)
    out = np.empty((y1 - y0, frames.shape[1], n), dtype=np.float32)
    if shifts is not None:
        band_shifts = shifts[y0:y1]
        lo = np.floor(band_shifts.reshape(-1, 2).min(axis=0)).astype(int)
        hi = np.floor(band_shifts.reshape(-1, 2).max(axis=0)).astype(int) + 1
    ny, nx = frames.shape[2:]
    for rows, cols, idx, weights in plan:
        if shifts is None:
            out[..., idx] = reduce_block(frames[y0:y1, :, rows, cols], weights)
            continue
        rows = slice(max(rows.start + lo[0], 0), min(rows.stop + hi[0], ny))
        cols = slice(max(cols.start + lo[1], 0), min(cols.stop + hi[1], nx))
        out[..., idx] = weights.reduce(frames[y0:y1, :, rows, cols], band_shifts, origin=(rows.start, cols.start))
    return out


class _ShiftedKernel:
    """Detectors that move with the beam: the masks cut to a window one pixel larger than their box.

    ``base (wh*ww, n)`` is the window's masks flattened; ``edge`` the window pixels
    where the masks moved by one pixel in x, in y and in both differ from them,
    and ``steps (len(edge), 3n)`` those differences (:func:`_bilinear_masks`).
    Made once per group of detectors; :meth:`reduce` is
    :func:`reduce_block_shifted` with it.
    """

    def __init__(self, masks: np.ndarray):
        masks = np.asarray(masks, dtype=np.float32)
        self.n = masks.shape[0]
        self.rows, self.cols = masks_bbox(masks)
        self.wh = self.rows.stop - self.rows.start + 1
        self.ww = self.cols.stop - self.cols.start + 1
        window = np.zeros((self.n, self.wh, self.ww), dtype=np.float32)
        window[:, :self.wh - 1, :self.ww - 1] = masks[:, self.rows, self.cols]
        self.base, self.edge, self.steps = _bilinear_masks(window, 0, 0)

    def reduce(self, block: np.ndarray, shifts: np.ndarray, origin=(0, 0)) -> np.ndarray:
        """Sums ``(by, bx, n)`` of ``block (by, bx, h, w)`` with the detectors moved by ``shifts``.

        ``origin`` is the detector pixel of ``block``'s first row and column
        (the block may be a cut-out of the patterns).
        """
        by, bx, h, w = block.shape
        n, wh, ww = self.n, self.wh, self.ww
        try:
            flat = block.view()
            flat.shape = (by * bx, h, w)  # refuses (AttributeError) rather than copying
        except AttributeError:
            flat = block.reshape(by * bx, h, w)
        s = np.nan_to_num(np.asarray(shifts, dtype=np.float64).reshape(-1, 2))
        whole = np.floor(s).astype(np.int64)
        frac = (s - whole).astype(np.float32)
        corner = np.stack([(1 - frac[:, 0]) * frac[:, 1], frac[:, 0] * (1 - frac[:, 1]),
                           frac[:, 0] * frac[:, 1]], axis=1)  # weights of the corners (0,1), (1,0), (1,1)
        change = np.flatnonzero(np.any(whole[1:] != whole[:-1], axis=1)) + 1
        edges = np.concatenate([[0], change, [by * bx]])
        piece = max(1, _PIECE_BYTES // max(wh * ww * 4, 1))
        buffer = np.empty((min(piece, by * bx), wh, ww), dtype=np.float32)
        flat_buffer = buffer.reshape(len(buffer), wh * ww)
        out = np.empty((by * bx, n), dtype=np.float32)
        starts_r = self.rows.start - origin[0] + whole[:, 0]
        starts_c = self.cols.start - origin[1] + whole[:, 1]
        inside_box = ((starts_r >= 0) & (starts_r + wh <= h) & (starts_c >= 0) & (starts_c + ww <= w)).tolist()
        starts_r, starts_c = starts_r.tolist(), starts_c.tolist()
        for i in range(0, by * bx, piece):
            j = min(i + piece, by * bx)
            cuts = [i, *edges[(edges > i) & (edges < j)].tolist(), j]
            for a, b in zip(cuts[:-1], cuts[1:]):
                r0, c0 = starts_r[a], starts_c[a]
                if inside_box[a]:
                    np.copyto(buffer[a - i:b - i], flat[a:b, r0:r0 + wh, c0:c0 + ww], casting="unsafe")
                else:
                    _copy_window(buffer[a - i:b - i], flat[a:b], r0, c0)
            part = flat_buffer[:j - i]
            # base . p, plus the three other corners as corrections read on the discs' edges alone
            np.matmul(part, self.base, out=out[i:j])
            if self.edge.size:
                d = (part[:, self.edge] @ self.steps).reshape(j - i, 3, n)
                out[i:j] += np.einsum("pkn,pk->pn", d, corner[i:j])
        return out.reshape(by, bx, n)


def reduce_block_shifted(block: np.ndarray, masks: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Virtual-detector sums of one block, each pattern's detectors moved with its beam (sub-pixel).

    The sum over ``mask(k - s)`` of ``pattern(k)`` equals the sum over ``mask(k)``
    of the pattern shifted back by ``s`` with bilinear interpolation, so this
    is the virtual image of descan-corrected patterns, read once and never
    shifted. Each pattern is converted from a window moved by the whole-pixel
    part of its shift (runs of positions share it: descan drifts smoothly), so
    that in the windows the detectors stand still and one product serves every
    position; the masks moved by one more pixel in y, in x and in both differ
    only on the discs' edges, so those three sums are corrections read from the
    edge pixels alone, combined with the bilinear weights of the fractional part.

    Parameters
    ----------
    block : array ``(by, bx, h, w)``
    masks : float32 array ``(n, h, w)``
        The detectors in the coordinates of ``block`` (for zero shift).
    shifts : array ``(by, bx, 2)``
        Beam shift ``(dy, dx)`` in pixels of each position from the reference
        (the beam centre minus the reference centre); NaN counts as zero.

    Returns
    -------
    float32 array ``(by, bx, n)``
    """
    return _ShiftedKernel(masks).reduce(block, shifts)


def _copy_window(target: np.ndarray, source: np.ndarray, r0: int, c0: int) -> None:
    """``target[:] = source[:, r0:r0+h, c0:c0+w]`` as float32, zeros where the window leaves ``source``."""
    h, w = target.shape[1:]
    sh, sw = source.shape[1:]
    ra, rb, ca, cb = max(r0, 0), min(r0 + h, sh), max(c0, 0), min(c0 + w, sw)
    if ra != r0 or ca != c0 or rb != r0 + h or cb != c0 + w:
        target[...] = 0
    if rb > ra and cb > ca:
        np.copyto(target[:, ra - r0:rb - r0, ca - c0:cb - c0], source[:, ra:rb, ca:cb], casting="unsafe")


def _bilinear_masks(masks: np.ndarray, dy: int, dx: int):
    """The masks moved by ``(dy, dx)``, and the pixels and values where the other three corners differ.

    Returns ``(base (h*w, n), edge (k,), steps (k, 3n))``: the corner ``(dy, dx)``
    flattened, the indices of the pixels where the corners ``(dy, dx+1)``,
    ``(dy+1, dx)``, ``(dy+1, dx+1)`` differ from it, and those differences.
    """
    base = _moved_by_whole_pixels(masks, dy, dx)
    others = np.concatenate([_moved_by_whole_pixels(masks, dy + oy, dx + ox) - base
                             for oy, ox in ((0, 1), (1, 0), (1, 1))], axis=1)
    edge = np.flatnonzero(np.any(others != 0, axis=1))
    return np.ascontiguousarray(base), edge, np.ascontiguousarray(others[edge])


def _moved_by_whole_pixels(masks: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Masks moved by ``(dy, dx)`` whole pixels (pixels moved off the box are lost), as ``(h * w, n)``."""
    n, h, w = masks.shape
    moved = np.zeros_like(masks)
    ys, yd = slice(max(-dy, 0), min(h - dy, h)), slice(max(dy, 0), min(h + dy, h))
    xs, xd = slice(max(-dx, 0), min(w - dx, w)), slice(max(dx, 0), min(w + dx, w))
    moved[:, yd, xd] = masks[:, ys, xs]
    return moved.reshape(n, h * w).T


def iter_virtual_images(data, detectors, *, executor="inline", max_workers: int | None = None,
                        rows_per_task: int | None = None, descan=None, descan_reference=None,
                        out: np.ndarray | None = None) -> ProgressGenerator[np.ndarray]:
    """Progress generator computing virtual images; returns ``(n, scan_y, scan_x)`` float32.

    Parameters are those of :func:`virtual_images`, and ``out``: a float32 array
    ``(n, scan_y, scan_x)`` to fill (default: a new one, zeros). Each band of scan
    rows is written into it as it completes, and one :class:`Progress` is yielded
    per band, so a front end that passed ``out`` can show partial images; closing
    the generator cancels the pending bands.
    """
    check_executor(executor)
    ds = open_4dstem(data)
    masks = detector_masks([_from_roi(d, ds) for d in detectors], ds.detector_shape)
    sy, sx = ds.scan_shape
    shifts = None if descan is None else _descan_shifts(descan, descan_reference, (sy, sx))
    plan = _plan(masks, moving=shifts is not None)
    if out is None:
        out = np.zeros((len(masks), sy, sx), dtype=np.float32)
    elif out.shape != (len(masks), sy, sx) or out.dtype != np.float32:
        raise InputError(f"out must be float32 of shape {(len(masks), sy, sx)}, got {out.dtype} {out.shape}")
    bands = bands_of(ds, rows_per_task)

    def put(band, values):
        out[:, band[0]:band[1]] = np.moveaxis(np.asarray(values), 2, 0)

    args = (plan,) if shifts is None else (plan, shifts)
    yield from iter_bands(_band_from_frames, band_source(ds, executor), bands, *args, executor=executor,
                          max_workers=max_workers, stage="virtual images", on_result=put)
    return out


def _descan_shifts(descan, reference, scan_shape) -> np.ndarray:
    """Per-position beam shifts ``(scan_y, scan_x, 2)`` from beam centres and a reference centre."""
    centres = np.asarray(descan.compute() if hasattr(descan, "compute") else descan, dtype=np.float64)
    if centres.shape != (*scan_shape, 2):
        raise InputError(f"descan must hold a beam centre (cy, cx) per scan position, shape "
                         f"{(*scan_shape, 2)}; got {centres.shape} (use beam_centres(dataset))")
    if not np.isfinite(centres).any():
        raise InputError("descan holds no finite beam centre; is there a direct beam in the patterns?")
    ref = np.nanmedian(centres.reshape(-1, 2), axis=0) if reference is None else \
        np.asarray(reference, dtype=np.float64)[:2]
    return np.nan_to_num(centres - ref)


def _from_roi(detector, ds):
    """A HyperSpy CircleROI becomes its exact pixel mask (what pyxem integrates)."""
    if isinstance(detector, (Disc, np.ndarray, tuple, list, dict)) or not hasattr(detector, "r"):
        return detector
    if ds.signal is None:
        raise InputError("a CircleROI is in calibrated units: pass the HyperSpy/pyxem signal as the data, "
                         "or convert it with from_circle_roi(roi, signal)")
    return roi_mask(detector, ds.signal)


def virtual_images(data, detectors, *, executor="inline", on_progress=None, should_stop=None,
                   max_workers: int | None = None, rows_per_task: int | None = None, descan=None,
                   descan_reference=None) -> np.ndarray:
    """Virtual images of several detectors, computed in one pass over the data.

    ``I_k[y, x] = sum over detector pixels of mask_k * pattern[y, x]``.

    Parameters
    ----------
    data : path, array ``(scan_y, scan_x, det_y, det_x)``, signal or FourDStem
        Anything :func:`~napari_stereo_tem.fourdstem.loading.open_4dstem` opens.
    detectors : sequence
        Discs ``(cy, cx, r)`` / :class:`Disc` in detector pixels (DESIGN section 5
        convention), 2D masks/weights ``(det_y, det_x)``, or HyperSpy ``CircleROI``s
        when ``data`` is a HyperSpy/pyxem signal (then equal to pyxem's result).
    executor : "inline", "threads", dask.distributed Client or address str
        Where the work runs. ``"threads"`` uses ``max_workers`` threads.
    on_progress, should_stop : callable, optional
        As in :func:`napari_stereo_tem.progress.drive`.
    rows_per_task : int, optional
        Split the work into bands of at most this many scan rows (default: the
        data's own chunks).
    descan : array ``(scan_y, scan_x, 2)``, optional
        The direct-beam centre ``(cy, cx)`` at every scan position
        (:func:`~napari_stereo_tem.fourdstem.descan.beam_centres`); the detectors
        follow the beam, sub-pixel. Detectors are given for the beam at
        ``descan_reference`` (default: the median centre).

    Returns
    -------
    float32 array ``(n_detectors, scan_y, scan_x)``
    """
    gen = iter_virtual_images(data, detectors, executor=executor, max_workers=max_workers,
                              rows_per_task=rows_per_task, descan=descan, descan_reference=descan_reference)
    return drive(gen, on_progress, should_stop)


def virtual_images_from_rois(signal, rois, *, exact: bool = True, executor="inline", on_progress=None,
                             should_stop=None) -> np.ndarray:
    """Virtual images of a pyxem ``Diffraction2D`` / HyperSpy 4D signal for ``CircleROI``s, in one pass.

    Parameters
    ----------
    signal : HyperSpy/pyxem signal, lazy or not, navigation ``(scan_x, scan_y)``
    rois : CircleROI or sequence of them
    exact : bool
        ``True`` (default) uses :func:`~.rois.roi_mask`, equal to pyxem's
        ``get_integrated_intensity`` for every ROI; ``False`` uses the discs of
        :func:`~.rois.from_circle_roi`.

    Returns
    -------
    float32 array ``(n_rois, scan_y, scan_x)``
        Image ``k`` equals ``signal.get_integrated_intensity(rois[k]).data``.
    """
    if not isinstance(rois, (list, tuple)):
        rois = [rois]
    detectors = [roi_mask(r, signal) if exact else from_circle_roi(r, signal) for r in rois]
    return virtual_images(open_4dstem(signal), detectors, executor=executor, on_progress=on_progress,
                          should_stop=should_stop)
