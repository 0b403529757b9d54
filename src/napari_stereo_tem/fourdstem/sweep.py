"""Radius sweep: one disc centre, several radii, one label (thesis 4.4.3).

Images of the same scene from the same direction with different numbers of
detector pixels have different noise levels but the same dislocations, so one
label serves all of them: a cheap way to grow a training set. The set is the
project's own (:mod:`napari_stereo_tem.models.training_set`): one append-only entry
per radius, all with the same mask, tied together by a sweep id.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np

from ..checks import InputError
from .loading import open_4dstem
from .masks import Disc
from .virtual import virtual_images

__all__ = ["radius_sweep", "write_sweep"]


def radius_sweep(data, centre, radii, *, label=None, directory=None, executor="inline",
                 on_progress=None, should_stop=None) -> np.ndarray:
    """Virtual images of discs sharing ``centre`` with each radius in ``radii``, in one pass.

    Parameters
    ----------
    data : anything :func:`open_4dstem` opens
    centre : (cy, cx)
        Disc centre in detector pixels.
    radii : sequence of float
        Radii in pixels.
    label : int array ``(scan_y, scan_x)``, optional
        The label (0 background, 1 dislocation, 2 distractor) all images share.
    directory : path, optional
        A training-set folder: with ``label``, one entry per radius is appended
        (see :func:`write_sweep`).

    Returns
    -------
    float32 array ``(n_radii, scan_y, scan_x)``
    """
    ds = open_4dstem(data)
    radii = [float(r) for r in np.atleast_1d(radii)]
    if not radii or min(radii) <= 0:
        raise InputError(f"radii must be positive numbers of pixels, got {radii}")
    if directory is not None and label is None:
        raise InputError("a sweep is written as training entries that share one label: pass label= "
                         "(draw it on one of the images first)")
    if label is not None and np.shape(label) != tuple(ds.scan_shape):
        raise InputError(f"the label has shape {np.shape(label)}, the virtual images {tuple(ds.scan_shape)}; "
                         "draw the label on one of these virtual images")
    cy, cx = (float(v) for v in centre[:2])
    discs = [Disc(cy, cx, r) for r in radii]
    images = virtual_images(ds, discs, executor=executor, on_progress=on_progress, should_stop=should_stop)
    if directory is not None:
        write_sweep(directory, images, discs, label=label, source=str(ds.metadata.get("source", "")))
    return images


def write_sweep(directory, images, discs, *, label, source: str = "") -> list[Path]:
    """Append one training-set entry per image, all with ``label`` as the mask.

    Each entry's provenance holds ``kind = "virtual radius sweep"``, the disc,
    the sweep's radii and a ``sweep_id`` shared by the entries of one sweep.
    Returns the entry folders, in the order of ``images``.
    """
    from ..models.training_set import add_entry

    images = np.asarray(images, dtype=np.float32)
    if len(images) != len(discs):
        raise InputError(f"{len(images)} images for {len(discs)} discs")
    sweep_id = uuid.uuid4().hex
    radii = [d.radius for d in discs]
    entries = []
    for image, disc in zip(images, discs):
        entries.append(add_entry(directory, image, label, extra={
            "kind": "virtual radius sweep", "sweep_id": sweep_id, "dataset": source,
            "disc": disc.to_dict(), "radius": disc.radius, "radii": radii}))
    return entries
