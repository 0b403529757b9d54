"""Defective camera columns, rows and pixels: found and filled in before anything looks for lines.

A CCD or CMOS camera can carry a dead, dim, hot or bright column (or row): a straight line
one pixel wide at the same place in every image it takes. A detector of dislocations draws it
as a line, and since it sits at the same pixel in both views of a stereo pair it is matched at
one depth and pulls the alignment towards no shift. Such a column differs from *both* its
neighbours, in the same direction, along much of its length, which a dislocation (wider,
never exactly along one pixel column for hundreds of rows) and a step edge (different from
one neighbour only) do not. Hot (or dead) single pixels are the same at a point: fixed in the
sensor, they are matched at no shift in both views of a pair (a few thousand made a pair's
alignment fail), and they stand far above (below) all but one of their neighbours.

Typical use::

    repaired, found = repair_camera_defects(image)
    found.columns, found.rows            # [(index, start, stop), ...] of what was filled in
    found.pixels                         # (n, 2) (row, col) of hot or dead pixels filled in
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .checks import check_image
from .robust import robust_std

__all__ = ["CameraDefects", "find_camera_defects", "fill_camera_defects", "repair_camera_defects",
           "sorted_neighbours"]

#: Each column (row) is judged over its whole length and over each of this many equal pieces, so a
#: defect over a part of the sensor (a column dead from some row on) is found too.
PIECES = 4
#: Columns longer than this are judged on every second (third, ...) row: as sure, and fast on 4k images.
SAMPLED_ROWS = 1024


@dataclass
class CameraDefects:
    """Columns and rows found defective, each as ``(index, start, stop)`` (the stretch along it), and the
    hot or dead single pixels as ``(row, col)`` (an array ``(n, 2)``)."""

    columns: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    pixels: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), int))

    def __bool__(self) -> bool:
        return bool(self.columns or self.rows or len(self.pixels))

    def __eq__(self, other) -> bool:
        return (isinstance(other, CameraDefects) and self.columns == other.columns and self.rows == other.rows
                and np.array_equal(self.pixels, other.pixels))

    def describe(self) -> str:
        """One line for the console, e.g. ``"1 defective camera column (x 301) filled in"``."""
        parts = []
        for name, found, axis in (("column", self.columns, "x"), ("row", self.rows, "y")):
            if found:
                where = ", ".join(str(index) for index in sorted({index for index, _, _ in found}))
                count = len({index for index, _, _ in found})
                parts.append(f"{count} defective camera {name}{'s' if count > 1 else ''} ({axis} {where})")
        if len(self.pixels):
            parts.append(f"{len(self.pixels)} hot or dead pixel{'s' if len(self.pixels) > 1 else ''}")
        return ", ".join(parts) + " filled in from the neighbours" if parts else ""

    def as_dict(self) -> dict:
        return {"columns": [list(map(int, item)) for item in self.columns],
                "rows": [list(map(int, item)) for item in self.rows],
                "pixels": int(len(self.pixels))}

    @classmethod
    def from_dict(cls, record: dict) -> "CameraDefects":
        """What :meth:`as_dict` wrote (the pixels by their count only, enough for :meth:`describe`)."""
        return cls(columns=[tuple(item) for item in record.get("columns", [])],
                   rows=[tuple(item) for item in record.get("rows", [])],
                   pixels=np.zeros((int(record.get("pixels", 0)), 2), int))


def _defective_columns(image: np.ndarray, *, min_offset: float, max_share: float) -> list:
    """``(column, start, stop)`` of columns that differ from both neighbours the same way (see module)."""
    rows, cols = image.shape
    if cols < 5 or rows < 4 * PIECES:
        return []
    every = max(1, rows // SAMPLED_ROWS)
    steps = np.diff(image[::every], axis=1)   # steps[:, j] = column j + 1 less column j (every few rows)
    noise = robust_std(steps[::4])
    bounds = np.linspace(0, rows, PIECES + 1).astype(int)
    found: dict[int, list] = {}
    for start, stop in [(0, rows)] + list(zip(bounds[:-1], bounds[1:])):
        sampled = steps[-(-start // every):-(-stop // every)]
        step = np.median(sampled, axis=0)
        from_left, from_right = step[:-1], -step[1:]        # column c (1 .. cols-2) less c-1, less c+1
        both = np.minimum(np.abs(from_left), np.abs(from_right))
        # one pixel wide: the neighbours hardly differ from theirs (a thin line's blur reaches beside it)
        beside = np.zeros_like(both)
        beside[1:] = np.abs(step[:-2])                       # column c-1 less c-2
        beside[:-1] = np.maximum(beside[:-1], np.abs(step[2:]))  # column c+2 less c+1
        # the median of n steps scatters by about 1.25 noise / sqrt(n): five of those, the offset the caller
        # takes as visible, and six times the spread of all columns' offsets (a scanned image's rows all
        # differ a little), whichever is largest
        spread = robust_std(0.5 * (from_left + from_right))
        limit = max(min_offset, 5.0 * 1.25 * noise / np.sqrt(len(sampled)), 6.0 * spread)
        same_way = np.sign(from_left) == np.sign(from_right)
        for column in np.flatnonzero(same_way & (both > limit) & (beside < 0.25 * both)) + 1:
            found.setdefault(int(column), []).append((int(start), int(stop)))
    if len(found) > max(3, max_share * cols):
        return []  # many: a pattern of the scan or of the specimen, not a few bad columns
    out = []
    for column, pieces in sorted(found.items()):
        whole = (0, rows) in pieces
        pieces = sorted(piece for piece in pieces if piece != (0, rows))
        # a column that fails part-way fails from a charge trap to the read-out: the stretch reaches an end
        contiguous = all(a == b for (_, b), (a, _) in zip(pieces[:-1], pieces[1:]))
        if 0 < len(pieces) < PIECES and contiguous and (pieces[0][0] == 0 or pieces[-1][1] == rows):
            out.append((column, *_onset(image[:, column - 1:column + 2], pieces[0][0], pieces[-1][1])))
        elif whole:  # all of it (or faint: seen over its whole length only)
            out.append((column, 0, rows))
    return out


def _onset(three: np.ndarray, start: int, stop: int, *, window: int = 15) -> tuple[int, int]:
    """The stretch ``[start, stop)`` of a partly failed column (``three``: it and its two neighbours), grown
    row by row away from the end it reaches while the column still differs from both neighbours by at least
    half its offset in the stretch (a running median over ``window`` rows)."""
    offset = three[:, 1] - 0.5 * (three[:, 0] + three[:, 2])
    level = float(np.median(offset[start:stop]))
    running = ndimage.median_filter(offset, size=window, mode="nearest")
    still = np.sign(running) == np.sign(level)
    still &= np.abs(running) >= 0.5 * abs(level)
    if stop == len(offset):
        while start > 0 and still[start - 1]:
            start -= 1
    else:
        while stop < len(offset) and still[stop]:
            stop += 1
    return int(start), int(stop)


def sorted_neighbours(image: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
    """The 8 neighbours of every pixel, sorted along the first axis: ``(8, rows, cols)``; or of the pixels
    ``where`` (``(n, 2)`` row, col) only: ``(8, n)``. The image's edge is repeated beyond it."""
    padded = np.pad(image, 1, mode="edge")
    if where is None:
        rows, cols = image.shape
        shifted = [padded[1 + dy:1 + dy + rows, 1 + dx:1 + dx + cols] for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                   if dy or dx]
    else:
        rows, cols = where[:, 0] + 1, where[:, 1] + 1
        shifted = [padded[rows + dy, cols + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
    return np.sort(np.stack(shifted), axis=0)


def _bad_pixels(image: np.ndarray, *, limit: float = 12.0) -> np.ndarray:
    """``(row, col)`` of single pixels (or pairs) brighter than all but one of their 8 neighbours, or darker
    than all but one, by ``limit`` times the image's pixel noise and by a tenth of its 1-99 % range, while
    those neighbours agree within half that margin; a blurred image's own detail is never that sharp."""
    import cv2

    image = np.asarray(image, np.float32)
    # the noise: each pixel less the mean of its four neighbours (every other row), which white noise of
    # standard deviation s spreads by 1.118 s
    inner = image[1:-1:2, 1:-1]
    rest = image[:-2:2, 1:-1] + image[2::2, 1:-1] + image[1:-1:2, :-2] + image[1:-1:2, 2:]
    sample = inner - 0.25 * rest
    noise = 1.4826 * float(np.median(np.abs(sample - np.median(sample)))) / 1.118
    if noise <= 0:
        return np.zeros((0, 2), int)   # a quantised or synthetic flat image: no noise scale to judge by
    # and by a tenth of the image's range (JPEG smooths the noise, not the detail: its noise scale is small)
    low, high = np.percentile(image[::2, ::2], [1, 99])
    margin = max(limit * noise, 0.1 * float(high - low))
    # a pixel beyond all but one neighbour by the margin is beyond the 3x3 median by as much: candidates first
    candidates = np.argwhere(np.abs(image - cv2.medianBlur(image, 3)) > margin)
    if len(candidates) > 0.03 * image.size:
        return np.zeros((0, 2), int)   # many: a texture of the image (a lattice, speckle), not a few bad pixels
    if not len(candidates):
        return candidates
    value = image[candidates[:, 0], candidates[:, 1]]
    neighbours = sorted_neighbours(image, candidates)
    bad = (value > neighbours[-2] + margin) | (value < neighbours[1] - margin)
    # on a quiet surround: the neighbours (but the brightest and the darkest) agree within half the margin, which
    # the ring around the centre of a small dark dot (a defect cluster a pixel or two wide) does not
    bad &= neighbours[-2] - neighbours[1] < 0.5 * margin
    return candidates[bad]


def find_camera_defects(image, *, min_offset: float | None = None, max_share: float = 0.01) -> CameraDefects:
    """Defective columns, rows and single pixels of one camera image.

    Parameters
    ----------
    image : ndarray, (rows, cols)
    min_offset : float, optional
        The least difference (in grey levels) from both neighbours, as a median along the column, taken as
        a defect. Default: half the pixel noise, and at least 1 % of the image's 0.5-99.5 % range.
    max_share : float
        More defective columns (rows) than this share of them (and more than 3) are taken as a pattern of the
        image (scan noise, a striped specimen) and none is reported. (Single pixels: more than 3 % of them
        are a texture of the image, and none is reported.)

    Returns
    -------
    CameraDefects
    """
    array = check_image(image, name="image").astype(np.float64)
    if min_offset is None:
        every = max(1, max(array.shape) // SAMPLED_ROWS)
        sample = array[::every, ::every]
        low, high = np.percentile(sample, [0.5, 99.5])
        sample = sample[::2]
        second = sample[:, 1:-1] - 0.5 * (sample[:, :-2] + sample[:, 2:])
        min_offset = max(0.5 * robust_std(second) / 1.22, 0.01 * float(high - low))
        # 1.22: a white-noise pixel's second difference scatters by that many times its own noise
    if not np.isfinite(min_offset) or min_offset <= 0:
        return CameraDefects()
    return CameraDefects(columns=_defective_columns(array, min_offset=min_offset, max_share=max_share),
                         rows=_defective_columns(array.T, min_offset=min_offset, max_share=max_share),
                         pixels=_bad_pixels(array))


def fill_camera_defects(image, found: CameraDefects) -> np.ndarray:
    """A float32 copy of ``image`` with the columns and rows of ``found`` replaced by the mean of their neighbours
    (``found`` from another image of the same camera, e.g. the median of a series, applies as well)."""
    out = np.array(image, dtype=np.float32, copy=True)
    for column, start, stop in found.columns:
        out[start:stop, column] = 0.5 * (out[start:stop, column - 1] + out[start:stop, column + 1])
    for row, start, stop in found.rows:
        out[row, start:stop] = 0.5 * (out[row - 1, start:stop] + out[row + 1, start:stop])
    if len(found.pixels):
        out[found.pixels[:, 0], found.pixels[:, 1]] = sorted_neighbours(out, found.pixels)[3:5].mean(axis=0)
    return out


def repair_camera_defects(image, *, min_offset: float | None = None) -> tuple[np.ndarray, CameraDefects]:
    """``image`` with its defective columns and rows replaced by the mean of their neighbours.

    Returns the image unchanged (the same array) when none is found, else a float32 copy, and what was found.
    """
    array = check_image(image, name="image")
    found = find_camera_defects(array, min_offset=min_offset)
    return (fill_camera_defects(array, found) if found else array), found
