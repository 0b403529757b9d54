"""Virtual images: any number of detectors in one pass over a 4D-STEM dataset.

For every block of scan positions the detector is cropped to the bounding box
of the detectors (of each group of nearby detectors, when they lie far apart:
:func:`~.masks.group_detectors`), the block is flattened to ``(positions,
pixels)`` and multiplied once by the stacked masks ``(pixels, n_detectors)``.
Each detector pixel is read at most once per pass whatever the number of
detectors; the product is done in small cache-sized pieces, so the cost follows
the bytes read.

Executors: ``"inline"`` (this thread), ``"threads"`` (a thread pool; numpy
releases the GIL), or ``dask.distributed`` (a ``Client`` or a scheduler address
string). The work is a progress generator (:func:`iter_virtual_images`);
:func:`virtual_images` drives it.
"""

from __future__ import annotations

import os
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import dask.array as da
import numpy as np

from ..checks import InputError
from ..progress import Progress, ProgressGenerator, drive
from .masks import Disc, detector_masks, disc_mask, group_detectors

__all__ = ["Disc", "disc_mask", "virtual_images", "iter_virtual_images", "reduce_block"]

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


def _one_blas_thread():
    """Limit BLAS to one thread while we compute (restored by ``.restore_original_limits()``).

    The products here are skinny; a multi-threaded OpenBLAS spends more time
    waking its threads than computing (5-10x slower on a loaded 2-core machine),
    and the parallelism comes from our own workers anyway.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return None
    return threadpool_limits(limits=1, user_api="blas")


def _is_client(executor) -> bool:
    return hasattr(executor, "compute") and hasattr(executor, "scheduler_info")


def _plan(masks: np.ndarray) -> list[tuple[slice, slice, np.ndarray, np.ndarray]]:
    """``(rows, cols, indices, weights)`` per group of detectors (:func:`group_detectors`)."""
    plan = []
    for rows, cols, idx in group_detectors(masks):
        weights = np.ascontiguousarray(masks[idx][:, rows, cols].reshape(len(idx), -1).T)
        plan.append((rows, cols, idx, weights))
    return plan


def _band_from_frames(frames, plan, y0: int, y1: int) -> np.ndarray:
    """Virtual images ``(y1 - y0, scan_x, n)`` of scan rows ``y0:y1``, reading only each group's box."""
    n = sum(len(p[2]) for p in plan)
    out = np.empty((y1 - y0, frames.shape[1], n), dtype=np.float32)
    for rows, cols, idx, weights in plan:
        out[..., idx] = reduce_block(frames[y0:y1, :, rows, cols], weights)
    return out


def _reduced_dask(arr: da.Array, plan) -> da.Array:
    """The same as a lazy dask array ``(scan_y, scan_x, n)`` (for data that only dask can read)."""
    parts, order = [], []
    for rows, cols, idx, weights in plan:
        cropped = arr[:, :, rows, cols]
        if len(cropped.chunks[2]) > 1 or len(cropped.chunks[3]) > 1:
            cropped = cropped.rechunk({2: -1, 3: -1})
        parts.append(cropped.map_blocks(reduce_block, weights, dtype=np.float32, drop_axis=[2, 3], new_axis=2,
                                        chunks=cropped.chunks[:2] + ((len(idx),),),
                                        meta=np.empty((0, 0, 0), np.float32)))
        order.extend(int(i) for i in idx)
    reduced = parts[0] if len(parts) == 1 else da.concatenate(parts, axis=2).rechunk({2: -1})
    if order != sorted(order):
        reduced = reduced[:, :, np.argsort(order)]
    return reduced


def _bands(row_chunks, sy: int, rows_per_task: int | None) -> list[tuple[int, int]]:
    edges = np.cumsum((0,) + tuple(row_chunks))
    if rows_per_task is not None:
        step = max(1, int(rows_per_task))
        edges = np.unique(np.concatenate([edges, np.arange(0, sy, step), [sy]]))
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def iter_virtual_images(data, detectors, *, executor="inline", max_workers: int | None = None,
                        rows_per_task: int | None = None) -> ProgressGenerator[np.ndarray]:
    """Progress generator computing virtual images; returns ``(n, scan_y, scan_x)`` float32.

    Parameters are those of :func:`virtual_images`. Yields one :class:`Progress`
    per band of scan rows; closing the generator cancels the pending bands.
    """
    from .loading import ArrayFrames, NpyFrames, open_4dstem

    if not (_is_local(executor) or _is_client(executor) or (isinstance(executor, str) and ":" in executor)):
        raise InputError(f"executor must be 'inline', 'threads', a dask.distributed Client or a scheduler "
                         f"address like 'tcp://host:8786', got {executor!r}")
    ds = open_4dstem(data)
    masks = detector_masks([_from_roi(d, ds) for d in detectors], ds.detector_shape)
    plan = _plan(masks)
    sy, sx = ds.scan_shape
    out = np.empty((len(masks), sy, sx), dtype=np.float32)
    bands = _bands(ds.data.chunks[0], sy, rows_per_task)
    stage = "virtual images"

    def put(band, values):
        out[:, band[0]:band[1]] = np.moveaxis(np.asarray(values), 2, 0)

    # Arrays we wrapped ourselves are sliced directly: only each group's box is read.
    direct = isinstance(ds.frames, NpyFrames) or (isinstance(ds.frames, ArrayFrames) and _is_local(executor))
    if _is_local(executor):
        if direct:
            def band_task(a, b):
                return _band_from_frames(ds.frames, plan, a, b)
        else:
            reduced = _reduced_dask(ds.data, plan)

            def band_task(a, b):
                return reduced[a:b].compute(scheduler="synchronous")
        limiter = _one_blas_thread()
        try:
            yield from _run_local(band_task, bands, executor, max_workers, put, stage)
        finally:
            if limiter is not None:
                limiter.restore_original_limits()
        return out
    client, own = _client(executor)
    try:
        from distributed import as_completed

        if direct:
            futures = [client.submit(_band_from_frames, ds.frames, plan, a, b, pure=False) for a, b in bands]
        else:
            reduced = _reduced_dask(ds.data, plan)
            futures = client.compute([reduced[a:b] for a, b in bands])
        where = {f.key: band for f, band in zip(futures, bands)}
        try:
            for i, fut in enumerate(as_completed(futures)):
                put(where[fut.key], fut.result())
                yield Progress(i + 1, len(bands), stage)
        finally:
            client.cancel([f for f in futures if not f.done()])
    finally:
        if own:
            client.close()
    return out


def _from_roi(detector, ds):
    """A HyperSpy CircleROI becomes its exact pixel mask (what pyxem integrates)."""
    if isinstance(detector, (Disc, np.ndarray, tuple, list, dict)) or not hasattr(detector, "r"):
        return detector
    if ds.signal is None:
        raise InputError("a CircleROI is in calibrated units: pass the HyperSpy/pyxem signal as the data, "
                         "or convert it with from_circle_roi(roi, signal)")
    from .rois import roi_mask

    return roi_mask(detector, ds.signal)


def _is_local(executor) -> bool:
    return isinstance(executor, str) and executor in ("inline", "threads")


def _run_local(band_task, bands, executor, max_workers, put, stage):
    if executor == "inline":
        for i, band in enumerate(bands):
            put(band, band_task(*band))
            yield Progress(i + 1, len(bands), stage)
        return
    workers = max_workers or min(len(bands), os.cpu_count() or 1)
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = {pool.submit(band_task, a, b): (a, b) for a, b in bands}
        pending, done_count = set(futures), 0
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                put(futures[fut], fut.result())
                done_count += 1
            yield Progress(done_count, len(bands), stage)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _client(executor):
    if _is_client(executor):
        return executor, False
    if isinstance(executor, str) and ":" in executor:  # a scheduler address, tcp://host:port
        from distributed import Client

        try:
            return Client(executor, timeout="10s"), True
        except OSError as err:
            raise InputError(f"could not reach the dask scheduler at {executor}: {err}; is it running?") from None
    raise InputError(f"executor must be 'inline', 'threads', a dask.distributed Client or a scheduler "
                     f"address like 'tcp://host:8786', got {executor!r}")


def virtual_images(data, detectors, *, executor="inline", on_progress=None, should_stop=None,
                   max_workers: int | None = None, rows_per_task: int | None = None) -> np.ndarray:
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

    Returns
    -------
    float32 array ``(n_detectors, scan_y, scan_x)``
    """
    gen = iter_virtual_images(data, detectors, executor=executor, max_workers=max_workers,
                              rows_per_task=rows_per_task)
    return drive(gen, on_progress, should_stop)
