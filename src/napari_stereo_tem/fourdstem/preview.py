"""A fast approximate virtual image while a disc is dragged; the exact one on release.

The preview reads every ``stride``-th scan position in both directions (so
``1 / stride**2`` of the data) and only the detector pixels of the disc's
bounding box, then repeats each value ``stride x stride`` times so the image
keeps the scan shape (the napari layer does not change size between moves).
"""

from __future__ import annotations

import numpy as np

from .loading import ArrayFrames, NpyFrames, open_4dstem
from .masks import as_disc, detector_masks, masks_bbox
from .executors import one_blas_thread
from .virtual import reduce_block, virtual_images

__all__ = ["preview_stride", "preview_virtual_image"]


def preview_stride(scan_shape: tuple[int, int], max_pixels: int) -> int:
    """Smallest scan stride whose strided scan has at most ``max_pixels`` positions."""
    sy, sx = scan_shape
    stride = 1
    while -(-sy // stride) * -(-sx // stride) > max(int(max_pixels), 1):
        stride += 1
    return stride


def preview_virtual_image(data, disc, *, max_pixels: int = 64 * 64, full: bool = False,
                          prefetch_rows: int = 16) -> np.ndarray:
    """Approximate virtual image ``(scan_y, scan_x)`` float32 of one disc, for live preview.

    Parameters
    ----------
    data : anything :func:`open_4dstem` opens (pass the opened ``FourDStem`` to avoid re-opening)
    disc : Disc or (cy, cx, r)
    max_pixels : int
        At most this many scan positions are read (a scan stride is chosen for it).
    full : bool
        ``True`` computes the exact image (call it when the drag ends).
    prefetch_rows : int
        For a ``.npy`` on disk, the kernel is asked to read this many detector rows
        above and below the disc's box of the same strided patterns in the
        background, so that the next moves of a drag find them in the page cache.

    Returns
    -------
    float32 array ``(scan_y, scan_x)``
        Strided values repeated over ``stride x stride`` blocks, scaled like the exact image.
    """
    ds = open_4dstem(data)
    d = as_disc(disc)
    if full:
        return virtual_images(ds, [d])[0]
    sy, sx = ds.scan_shape
    stride = preview_stride((sy, sx), max_pixels)
    masks = detector_masks([d], ds.detector_shape)
    rows, cols = masks_bbox(masks)
    weights = np.ascontiguousarray(masks[:, rows, cols].reshape(1, -1).T)
    key = (slice(None, None, stride), slice(None, None, stride), rows, cols)
    if isinstance(ds.frames, ArrayFrames):  # in memory: a strided view, nothing copied
        block = ds.frames.array[key]
    elif isinstance(ds.frames, NpyFrames):  # on disk: only the strided box is read
        block = ds.frames.read_strided(key)
        if prefetch_rows:  # the rows a drag reaches next, read ahead by the kernel
            ny = ds.detector_shape[0]
            around = slice(max(rows.start - prefetch_rows, 0), min(rows.stop + prefetch_rows, ny))
            ds.frames.prefetch((key[0], key[1], around, slice(None)))
    else:
        block = np.asarray(ds.data[key].compute(scheduler="threads"))
    limiter = one_blas_thread()
    try:
        small = reduce_block(block, weights)[..., 0]
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
    if stride == 1:
        return small
    big = np.repeat(np.repeat(small, stride, axis=0), stride, axis=1)
    return np.ascontiguousarray(big[:sy, :sx])

