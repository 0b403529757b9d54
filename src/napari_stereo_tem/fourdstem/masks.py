"""Virtual-detector masks: discs (and annuli) on the diffraction pattern.

Pixel convention (DESIGN section 5): detector pixel ``(ky, kx)`` has its centre
at the integer coordinates ``(ky, kx)``; a disc ``(CY, CX, R)`` holds the pixels
with ``(ky - CY)**2 + (kx - CX)**2 <= R**2``. An annulus additionally drops the
pixels with a squared distance ``< inner_radius**2`` (as HyperSpy's ``r_inner``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..checks import InputError

__all__ = ["Disc", "as_disc", "disc_mask", "detector_masks", "masks_bbox", "group_detectors"]


@dataclass(frozen=True)
class Disc:
    """A circular virtual detector in detector pixels: centre ``(cy, cx)``, ``radius``.

    ``inner_radius > 0`` makes it an annulus (for annular dark field).
    ``bounds = (row_start, row_stop, col_start, col_stop)``, if given, leaves out the
    pixels outside those index ranges (HyperSpy's ``CircleROI`` cuts its circle to
    such a rectangle; see :func:`~napari_stereo_tem.fourdstem.rois.from_circle_roi`).
    """

    cy: float
    cx: float
    radius: float
    inner_radius: float = 0.0
    bounds: tuple[int, int, int, int] | None = None

    @property
    def centre(self) -> tuple[float, float]:
        """``(cy, cx)``."""
        return (self.cy, self.cx)

    def to_dict(self) -> dict:
        out = {k: float(v) for k, v in asdict(self).items() if k != "bounds"}
        if self.bounds is not None:
            out["bounds"] = [int(v) for v in self.bounds]
        return out


def as_disc(disc) -> Disc:
    """Return ``disc`` as a :class:`Disc` (accepts a Disc, a mapping or a ``(cy, cx, r[, r_inner])`` sequence)."""
    if isinstance(disc, Disc):
        out = disc
    elif isinstance(disc, dict):
        try:
            bounds = disc.get("bounds")
            out = Disc(float(disc["cy"]), float(disc["cx"]), float(disc["radius"]),
                       float(disc.get("inner_radius", 0.0)), tuple(int(v) for v in bounds) if bounds else None)
        except KeyError as err:
            raise InputError(f"a disc given as a mapping needs keys cy, cx, radius; missing {err}") from None
    else:
        try:
            values = [float(v) for v in disc]
        except (TypeError, ValueError):
            raise InputError(f"a disc must be (cy, cx, radius) in detector pixels, got {disc!r}") from None
        if len(values) not in (3, 4):
            raise InputError(f"a disc must be (cy, cx, radius) in detector pixels, got {disc!r}")
        out = Disc(*values)
    values = (out.cy, out.cx, out.radius, out.inner_radius)
    if not all(np.isfinite(values)):
        raise InputError(f"disc {out} holds NaN or inf; give finite centre and radius")
    if out.radius <= 0:
        raise InputError(f"disc radius must be positive, got {out.radius}")
    if not 0 <= out.inner_radius < out.radius:
        raise InputError(f"disc inner radius must be in [0, radius), got {out.inner_radius}")
    return out


def disc_mask(detector_shape: tuple[int, int], cy: float, cx: float, r: float, *,
              inner_radius: float = 0.0, bounds=None) -> np.ndarray:
    """Boolean mask ``(det_y, det_x)`` of the pixels whose centres lie in the disc.

    Parameters
    ----------
    detector_shape : (int, int)
        ``(det_y, det_x)``.
    cy, cx : float
        Disc centre in detector pixels (pixel centres at integer coordinates).
    r : float
        Radius in pixels; the boundary is included: ``d**2 <= r**2``.
    inner_radius : float, optional
        Pixels with ``d**2 < inner_radius**2`` are left out (annulus).
    bounds : (row_start, row_stop, col_start, col_stop), optional
        Pixels outside these index ranges are left out.
    """
    ny, nx = (int(s) for s in detector_shape)
    ky = (np.arange(ny, dtype=float) - cy)[:, None] ** 2
    kx = (np.arange(nx, dtype=float) - cx)[None, :] ** 2
    d2 = ky + kx
    mask = d2 <= float(r) ** 2
    if inner_radius > 0:
        mask &= d2 >= float(inner_radius) ** 2
    if bounds is not None:
        r0, r1, c0, c1 = (int(v) for v in bounds)
        keep = np.zeros_like(mask)
        keep[max(r0, 0):max(r1, 0), max(c0, 0):max(c1, 0)] = True
        mask &= keep
    return mask


def detector_masks(detectors, detector_shape: tuple[int, int]) -> np.ndarray:
    """Stack detectors (discs or 2D masks/weights) into a float32 array ``(n, det_y, det_x)``.

    Raises
    ------
    InputError
        No detector, a mask of the wrong shape, or a detector with no pixel on the detector.
    """
    detectors = list(detectors)
    if not detectors:
        raise InputError("no virtual detector given; pass at least one disc (cy, cx, radius)")
    out = np.zeros((len(detectors), *detector_shape), dtype=np.float32)
    for i, det in enumerate(detectors):
        if isinstance(det, np.ndarray) and det.ndim == 2:
            if det.shape != tuple(detector_shape):
                raise InputError(f"mask {i} has shape {det.shape}, the detector is {tuple(detector_shape)}")
            out[i] = det
        else:
            d = as_disc(det)
            out[i] = disc_mask(detector_shape, d.cy, d.cx, d.radius, inner_radius=d.inner_radius, bounds=d.bounds)
        if not out[i].any():
            raise InputError(f"detector {i} ({det if not isinstance(det, np.ndarray) else 'mask'}) covers no "
                             f"pixel of the {detector_shape[0]}x{detector_shape[1]} detector; move it onto the pattern")
    return out


def masks_bbox(masks: np.ndarray) -> tuple[slice, slice]:
    """Smallest ``(rows, cols)`` slices of the detector holding every non-zero mask pixel."""
    nz = np.asarray(masks).reshape(-1, *masks.shape[-2:]).any(axis=0)
    rows = np.flatnonzero(nz.any(axis=1))
    cols = np.flatnonzero(nz.any(axis=0))
    if rows.size == 0:
        raise InputError("the virtual detectors cover no detector pixel")
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def group_detectors(masks: np.ndarray, *, slack: float = 1.25) -> list[tuple[slice, slice, np.ndarray]]:
    """Group detectors whose bounding boxes are best read together.

    Starting from one group per detector, two groups are merged while the
    bounding box of the merge holds at most ``slack`` times the pixels of the two
    boxes apart (overlapping or nearby discs are read once, distant ones each in
    its own small box, so the pixels read stay close to the pixels used).

    Returns
    -------
    list of ``(rows, cols, indices)``
        Detector slices of each group's box and the indices of its detectors.
    """
    boxes = []
    for i, m in enumerate(np.asarray(masks)):
        r, c = masks_bbox(m[None])
        boxes.append([r.start, r.stop, c.start, c.stop, [i]])

    def area(b):
        return (b[1] - b[0]) * (b[3] - b[2])

    merged = True
    while merged and len(boxes) > 1:
        merged = False
        best = None
        for a in range(len(boxes)):
            for b in range(a + 1, len(boxes)):
                u = [min(boxes[a][0], boxes[b][0]), max(boxes[a][1], boxes[b][1]),
                     min(boxes[a][2], boxes[b][2]), max(boxes[a][3], boxes[b][3])]
                cost = area(u) - slack * (area(boxes[a]) + area(boxes[b]))
                if cost <= 0 and (best is None or cost < best[0]):
                    best = (cost, a, b, u)
        if best is not None:
            _, a, b, u = best
            boxes[a] = u + [boxes[a][4] + boxes[b][4]]
            del boxes[b]
            merged = True
    return [(slice(b[0], b[1]), slice(b[2], b[3]), np.array(sorted(b[4]))) for b in boxes]
