"""Many stereo pairs for one run (``stereo-tem reconstruct --pairs LIST``): start-up is paid once.

``LIST`` is either

- a text file with one pair per line, ``LEFT RIGHT [NAME]`` (separated by
  commas or white space; relative paths are relative to the list's folder;
  blank lines and ``#`` comments are skipped), or
- a folder of pair folders, each holding one ``left.*`` and one ``right.*``
  image (the layout ``stereo-tem synth stereo`` writes), named after the folder.

Each pair gets a name (``NAME``, else the folder's name, else the left file's
stem) that becomes its result folder ``DIR/NAME``; names must be unique.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..checks import InputError

__all__ = ["read_pair_list"]

_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]*\Z")


def _from_folder(folder: Path) -> list[tuple[str, Path, Path]]:
    pairs = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        lefts = sorted(p for p in sub.glob("left.*") if p.is_file())
        rights = sorted(p for p in sub.glob("right.*") if p.is_file())
        if len(lefts) == 1 and len(rights) == 1:
            pairs.append((sub.name, lefts[0], rights[0]))
    if not pairs:
        raise InputError(f"--pairs {folder}: no pair folders in it (sub-folders holding one left.* and one "
                         "right.* image each); or give a text file with LEFT RIGHT [NAME] per line")
    return pairs


def _from_text(path: Path) -> list[tuple[str, Path, Path]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"--pairs {path}: cannot read it as a text list ({err}); give one "
                         "'LEFT RIGHT [NAME]' per line") from None
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = [f for f in re.split(r"[,\s]+", line) if f]
        if len(fields) not in (2, 3):
            raise InputError(f"--pairs {path}, line {number}: expected 'LEFT RIGHT [NAME]', got {line!r}")
        left, right = ((path.parent / f) if not Path(f).is_absolute() else Path(f) for f in fields[:2])
        name = fields[2] if len(fields) == 3 else left.stem
        if not _NAME.match(name):
            raise InputError(f"--pairs {path}, line {number}: the name {name!r} cannot be a folder name; use "
                             "letters, digits, '.', '_' and '-'")
        pairs.append((name, left, right))
    if not pairs:
        raise InputError(f"--pairs {path} lists no pairs; write one 'LEFT RIGHT [NAME]' per line")
    return pairs


def read_pair_list(source) -> list[tuple[str, Path, Path]]:
    """The pairs of a list file or a folder of pair folders: ``[(name, left, right), ...]``.

    Raises
    ------
    InputError
        A missing list, a malformed line, a missing image, or a name used twice.
    """
    source = Path(source)
    if not source.exists():
        raise InputError(f"--pairs {source} does not exist; give a text file of 'LEFT RIGHT [NAME]' lines "
                         "or a folder of pair folders")
    pairs = _from_folder(source) if source.is_dir() else _from_text(source)
    seen: dict[str, Path] = {}
    for name, left, right in pairs:
        for view in (left, right):
            if not view.is_file():
                raise InputError(f"--pairs {source}: pair {name!r} names {view}, which does not exist")
        if name in seen:
            raise InputError(f"--pairs {source}: the name {name!r} is used twice ({seen[name]} and {left}); "
                             "give each pair its own NAME (third column)")
        seen[name] = left
    return pairs
