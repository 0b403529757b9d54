"""Which array axes are the scan and which the detector, decided from a file's own metadata.

A 4D-STEM file names its axes (``scanY``, ``detX``, ``qx``, ``x``, ...) and many
readers flag them as navigation (scan) or signal (detector). The decision, in
order of trust:

1. **axis names**, when they split the axes into two scan and two detector
   axes (``scan``/``nav``/``probe``/``real``/``R`` and bare ``x``/``y`` are the
   scan; ``det``/``sig``/``diff``/``k``/``q`` the detector). Explicit names
   (``scanY``, ``det_x``) also say which axis is the row: ``y`` is the row,
   ``x`` the column (DESIGN section 2). Short names (``x``, ``qx``, ``Rx``)
   follow opposite conventions in different programs (py4DSTEM's ``Rx`` is the
   first array axis, HyperSpy's ``x`` the column), so with them the rows are
   the reader's array order;
2. **units**, when they split the axes into two real-space lengths (``nm``,
   ``Å``, ``m``: the scan) and two reciprocal or angular ones (``1/nm``,
   ``nm^-1``, ``mrad``: the detector). A DigitalMicrograph file keeps nothing
   else: the reader's names and flags for it are guesses by position, and its
   scan may be DM's first two dimensions or its last two;
3. **navigation/signal flags**, when exactly two axes are navigation axes;
4. **position**: ``(scan_y, scan_x, det_y, det_x)`` as stored, said so.

Where names or units and flags disagree, the names (then the units) win and the
description says so.
Axes of length 1 beyond the fourth (a channel axis) are dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["AxesDecision", "decide_axes", "axis_role", "unit_role"]

_DET = re.compile(r"^(det(ector)?|sig(nal)?|diff(raction)?|camera|cam|k|q|recip(rocal)?|theta)"
                  r"(x|y|row|rows|col|cols|column|width|height|u|v|\d*)$")
_SCAN = re.compile(r"^(scan|nav(igation)?|probe|real|r|pos(ition)?|raster|stage|beam)?"
                   r"(x|y|row|rows|col|cols|column|\d*)$")
_LONG_PREFIX = re.compile(r"^(det(ector)?|sig(nal)?|diff(raction)?|camera|scan|nav(igation)?|probe|raster|pos(ition)?)")
_LENGTH_UNITS = {"m", "mm", "um", "µm", "μm", "nm", "pm", "a", "å", "angstrom", "angstroms", "meters", "metres"}
_RECIPROCAL_UNITS = re.compile(r"^(1/.+|.+(\^-1|⁻¹|-1)|[mµμu]?rads?|°|deg(rees)?)$")


def _norm(name) -> str:
    if isinstance(name, bytes):
        name = name.decode(errors="replace")
    return re.sub(r"[^a-z0-9]", "", str(name or "").lower())


def axis_role(name) -> tuple[str | None, str | None]:
    """``(kind, letter)`` of an axis name: kind ``"scan"``/``"detector"``/``None``, letter ``"y"``/``"x"``/``None``.

    The letter is given only for explicit names (``scanY``, ``det_x``, ``detector row``).
    """
    n = _norm(name)
    if not n or n in ("undefined", "none"):
        return None, None
    if _DET.match(n) and n not in ("x", "y"):
        kind = "detector"
    elif _SCAN.match(n) and n != "" and not n.isdigit():
        kind = "scan"
    else:
        return None, None
    letter = None
    if _LONG_PREFIX.match(n):
        tail = _LONG_PREFIX.sub("", n)
        if tail in ("y", "row", "rows", "height"):
            letter = "y"
        elif tail in ("x", "col", "cols", "column", "width"):
            letter = "x"
    return kind, letter


def unit_role(units) -> str | None:
    """``"scan"`` for a real-space length unit, ``"detector"`` for a reciprocal or angular one, else ``None``."""
    if isinstance(units, bytes):
        units = units.decode(errors="replace")
    u = re.sub(r"\s+", "", str(units or "")).lower()
    if u in _LENGTH_UNITS:
        return "scan"
    if _RECIPROCAL_UNITS.match(u):
        return "detector"
    return None


@dataclass(frozen=True)
class AxesDecision:
    """How a stored array becomes ``(scan_y, scan_x, det_y, det_x)``.

    ``drop``: stored axes of length 1 removed first (indices in the stored array);
    ``order``: the transpose, in indices of the array after the drop;
    ``by``: ``"axis names"``, ``"axis units"``, ``"navigation flags"`` or ``"position"``
    (or two of them, when they agree);
    ``names``: the stored names of the four axes, in the final order.
    """

    order: tuple[int, int, int, int]
    by: str
    names: tuple[str, str, str, str]
    drop: tuple[int, ...] = ()
    note: str = ""

    @property
    def changed(self) -> bool:
        return self.order != (0, 1, 2, 3) or bool(self.drop)

    def describe(self, shape=None) -> str:
        """One line saying what was decided, e.g. for the console and the layer's metadata."""
        sizes = ["" if shape is None else f" ({int(shape[i])})" for i in range(4)]
        label = [f"{self.names[i] or '?'!s}{sizes[i]}" for i in range(4)]
        text = (f"scan (rows, cols) = {label[0]}, {label[1]}; detector (rows, cols) = {label[2]}, {label[3]}; "
                f"decided by {self.by}")
        if self.changed:
            text += f" (stored axes reordered as {list(self.order)}" + (
                f", length-1 axes {list(self.drop)} dropped" if self.drop else "") + ")"
        if self.by == "position":
            text += "; the file names no axis roles: if scan and detector look swapped, save the data as " \
                    "(scan_y, scan_x, det_y, det_x)"
        return text + (f"; {self.note}" if self.note else "")

    def to_dict(self, shape=None) -> dict:
        return {"by": self.by, "order": list(self.order), "drop": list(self.drop),
                "names": [str(n) for n in self.names], "text": self.describe(shape)}


def decide_axes(shape, axes=None) -> AxesDecision:
    """Decide the scan and detector axes of a stored array.

    Parameters
    ----------
    shape : tuple of int
        The stored array's shape (4D, or more with length-1 axes).
    axes : list of dict, optional
        One entry per stored axis, in array order (RosettaSciIO's axes
        dictionaries: ``name``, ``navigate``, ``size``, ``index_in_array``).

    Returns
    -------
    AxesDecision
    """
    shape = tuple(int(s) for s in shape)
    axes = list(axes or [])
    if len(axes) != len(shape):
        axes = [{} for _ in shape]
    elif all("index_in_array" in a for a in axes):
        axes = sorted(axes, key=lambda a: int(a["index_in_array"]))
    names = [str(a.get("name") or "") for a in axes]
    roles = [axis_role(n) for n in names]
    drop: list[int] = []
    keep = list(range(len(shape)))
    # length-1 axes beyond four: a channel axis first, named roles last
    for i in sorted(keep, key=lambda i: roles[i][0] is not None):
        if len(keep) <= 4:
            break
        if shape[i] == 1:
            keep.remove(i)
            drop.append(i)
    if len(keep) != 4:
        raise ValueError(f"{len(keep)} axes of length > 1 in shape {shape}; 4 are needed")
    names = [names[i] for i in keep]
    roles = [roles[i] for i in keep]
    flags = [axes[i].get("navigate") for i in keep]
    kinds = [r[0] for r in roles]
    units = [unit_role(axes[i].get("units")) for i in keep]
    by_flags = sum(f is True for f in flags) == 2 and sum(f is False for f in flags) == 2
    note = ""
    if kinds.count("scan") == 2 and kinds.count("detector") == 2:
        scan = [i for i in range(4) if kinds[i] == "scan"]
        det = [i for i in range(4) if kinds[i] == "detector"]
        by = "axis names"
        if by_flags and [i for i in range(4) if flags[i]] != scan:
            note = "the file's navigation flags say otherwise; the axis names were followed"
        scan, det = _rows_first(scan, roles), _rows_first(det, roles)
        if by_flags and not note and (scan, det) == ([i for i in range(4) if flags[i]],
                                                      [i for i in range(4) if not flags[i]]):
            by = "axis names and navigation flags"
    elif units.count("scan") == 2 and units.count("detector") == 2:
        scan = [i for i in range(4) if units[i] == "scan"]
        det = [i for i in range(4) if units[i] == "detector"]
        by = "axis units"
        if by_flags:
            if [i for i in range(4) if flags[i]] == scan:
                by = "axis units and navigation flags"
            else:
                note = "the file's navigation flags say otherwise; the units were followed"
        scan, det = _rows_first(scan, roles), _rows_first(det, roles)
    elif by_flags:
        scan = [i for i in range(4) if flags[i]]
        det = [i for i in range(4) if not flags[i]]
        by = "navigation flags"
    elif (kinds.count("scan") == 2 and kinds.count("detector") == 0) or \
            (kinds.count("detector") == 2 and kinds.count("scan") == 0):
        named = "scan" if "scan" in kinds else "detector"
        first = [i for i in range(4) if kinds[i] == named]
        rest = [i for i in range(4) if kinds[i] is None]
        scan, det = (first, rest) if named == "scan" else (rest, first)
        scan, det = _rows_first(scan, roles), _rows_first(det, roles)
        by = "axis names"
    else:
        scan, det, by = [0, 1], [2, 3], "position"
    order = tuple(scan + det)
    return AxesDecision(order=order, by=by, names=tuple(names[i] for i in order), drop=tuple(drop), note=note)


def _rows_first(pair: list[int], roles) -> list[int]:
    """Put the ``y`` axis first when both axes of the pair carry a letter; else keep the stored order."""
    letters = [roles[i][1] for i in pair]
    if sorted(letters, key=str) == ["x", "y"]:
        return [pair[letters.index("y")], pair[letters.index("x")]]
    return list(pair)
