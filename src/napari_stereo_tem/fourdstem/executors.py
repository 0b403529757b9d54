"""One way to run a pass over the scan in bands of rows: inline, on threads, or on dask.distributed.

Every pass over a 4D-STEM dataset here (mean/max pattern, beam centres,
virtual images) is a function ``task(frames, y0, y1) -> result`` applied to
bands of scan rows. ``frames`` is sliced like the dataset,
``frames[y0:y1, :, rows, cols]`` giving a numpy array, and pickles cheaply:
a ``.npy`` file pickles as its path (workers on the same file system read it
themselves), a dask array as its graph. :func:`iter_bands` runs the tasks on
the chosen executor and hands each result back, in this thread, as its band
completes; closing the generator cancels the bands not yet started.

Executors: ``"inline"`` (this thread), ``"threads"`` (a thread pool; numpy
releases the GIL), a ``dask.distributed.Client``, or a scheduler address
string (``"tcp://host:8786"``), to which a client is connected for the pass.
"""

from __future__ import annotations

import os
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import dask.array as da
import numpy as np

from ..checks import InputError
from ..progress import Progress, check_cancelled
from .frames import NpyFrames

__all__ = ["DaskFrames", "band_source", "bands_of", "check_executor", "iter_bands", "one_blas_thread"]

EXECUTOR_HELP = ("executor must be 'inline', 'threads', a dask.distributed Client or a scheduler address "
                 "like 'tcp://host:8786'")


class DaskFrames:
    """A dask array sliced into numpy arrays (computed with the synchronous scheduler).

    What a band task reads when the dataset is only readable through dask (a
    RosettaSciIO lazy reader, a zarr store); pickles as the dask graph.
    """

    def __init__(self, array: da.Array):
        self.array = array
        self.shape = tuple(int(s) for s in array.shape)
        self.dtype = array.dtype
        self.ndim = array.ndim

    def __getitem__(self, key) -> np.ndarray:
        return np.asarray(self.array[key].compute(scheduler="synchronous"))


def is_client(executor) -> bool:
    return hasattr(executor, "submit") and hasattr(executor, "scheduler_info")


def is_local(executor) -> bool:
    return isinstance(executor, str) and executor in ("inline", "threads")


def check_executor(executor) -> None:
    """Raise InputError unless ``executor`` is one this module runs on."""
    if not (is_local(executor) or is_client(executor) or (isinstance(executor, str) and "://" in executor)):
        raise InputError(f"{EXECUTOR_HELP}, got {executor!r}")


def band_source(ds, executor):
    """What band tasks slice: the dataset's own frames where it has them, else its dask array.

    An in-memory array is sliced directly by local executors and sent through
    dask to a cluster.
    """
    frames = ds.frames
    if isinstance(frames, NpyFrames) or (frames is not None and is_local(executor)):
        return frames
    return DaskFrames(ds.data)


def bands_of(ds, rows_per_task: int | None = None) -> list[tuple[int, int]]:
    """Bands ``(y0, y1)`` of scan rows: the data's own row chunks, cut to at most ``rows_per_task`` rows."""
    sy = ds.scan_shape[0]
    edges = np.cumsum((0,) + tuple(ds.data.chunks[0]))
    if rows_per_task is not None:
        step = max(1, int(rows_per_task))
        edges = np.unique(np.concatenate([edges, np.arange(0, sy, step), [sy]]))
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def one_blas_thread():
    """Limit BLAS to one thread while we compute (restored by ``.restore_original_limits()``).

    The products here are skinny; a multi-threaded OpenBLAS spends more time
    waking its threads than computing (5-10x slower on a loaded 2-core machine),
    and the parallelism comes from our own workers anyway.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _client(executor):
    if is_client(executor):
        return executor, False
    from distributed import Client

    try:
        return Client(executor, timeout="10s"), True
    except OSError as err:
        raise InputError(f"could not reach the dask scheduler at {executor}: {err}; is it running?") from None


def iter_bands(task, source, bands, *args, executor="inline", max_workers: int | None = None, stage: str = "",
               on_result):
    """Run ``task(source, y0, y1, *args)`` for every band; a progress generator.

    ``on_result((y0, y1), result)`` is called in the caller's thread as each band
    completes (in any order); one :class:`Progress` is yielded per completion.
    Closing the generator cancels the bands not yet started (a band being read
    finishes first; keep bands short for a quick cancel).
    """
    check_executor(executor)
    n = len(bands)
    if executor == "inline":
        limiter = one_blas_thread()
        try:
            for i, (a, b) in enumerate(bands):
                on_result((a, b), task(source, a, b, *args))
                yield Progress(i + 1, n, stage)
        finally:
            limiter.restore_original_limits()
        return
    if executor == "threads":
        limiter = one_blas_thread()
        pool = ThreadPoolExecutor(max_workers=max_workers or min(n, os.cpu_count() or 1) or 1)
        try:
            futures = {pool.submit(task, source, a, b, *args): (a, b) for a, b in bands}
            pending, done_count = set(futures), 0
            while pending:
                done, pending = wait(pending, timeout=0.05, return_when=FIRST_COMPLETED)
                check_cancelled()  # a cancel is seen within 50 ms, not only when a band ends
                if not done:
                    continue
                for fut in done:
                    on_result(futures[fut], fut.result())
                    done_count += 1
                yield Progress(done_count, n, stage)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            limiter.restore_original_limits()
        return
    client, own = _client(executor)
    try:
        from distributed import as_completed

        # arrays and plans go to the workers once, not with every band
        args = [client.scatter([arg], broadcast=True)[0] if isinstance(arg, (np.ndarray, list, tuple)) else arg
                for arg in args]
        futures = [client.submit(_blas1, task, source, a, b, *args, pure=False) for a, b in bands]
        where = {f.key: band for f, band in zip(futures, bands)}
        try:
            for i, fut in enumerate(as_completed(futures)):
                on_result(where[fut.key], fut.result())
                yield Progress(i + 1, n, stage)
        finally:
            client.cancel([f for f in futures if not f.done()])
    finally:
        if own:
            client.close()


def _blas1(task, source, a, b, *args):
    """A band on a dask worker, with one BLAS thread (the worker's threads are the parallelism)."""
    limiter = one_blas_thread()
    try:
        return task(source, a, b, *args)
    finally:
        limiter.restore_original_limits()
