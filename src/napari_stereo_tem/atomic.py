"""Atomic writes: a failure or a kill mid-write leaves the earlier file or folder as it was.

Files: data goes to a temporary file in the target's folder (same suffix, so
libraries that look at it pick the right format), is flushed to disk, gets the
usual permissions (``0o666`` less the umask: ``mkstemp`` alone would leave
``0o600``), and is renamed over the target in one step.

Result folders (DESIGN section 5): :func:`check_output_folder` is called before
any work (``-o`` is a file, not writable, or already holds a result: one clear
line at once, not after the computation); :func:`result_folder` then gives a
temporary sibling folder to write into and renames it to the target when every
file is written. An existing result is never mixed with a new one: it is
refused, or, with ``overwrite=True``, replaced as a whole (and only when it
holds nothing but files the command itself writes).
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "check_output_folder", "result_folder",
           "check_output_files", "write_files_atomically"]


def _temporary_path(folder: Path, prefix: str, suffix: str = "", *, directory: bool = False) -> Path:
    """Create a new, uniquely named file or folder in ``folder`` with the usual permissions.

    ``tempfile.mkstemp``/``mkdtemp`` create them private (0o600/0o700); here the
    system's umask applies as for any new file, so the result is readable as usual.
    """
    for _ in range(100):
        path = folder / f"{prefix}{secrets.token_hex(4)}{suffix}"
        try:
            if directory:
                os.mkdir(path, 0o777)
            else:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free temporary name in {folder}")


def atomic_write(path, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary_path)`` and move the result to ``path`` atomically.

    The folder of ``path`` is created if needed. If ``write`` raises, the
    temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_path(path.parent, f".{path.name}.", f".tmp{path.suffix}")
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _output_error(message: str):
    from .checks import InputError

    return InputError(message)


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def _check_writable_folder(folder: Path, option: str, target: Path) -> None:
    """``folder`` (an existing ancestor of ``target``) must be a folder one can create entries in."""
    if not folder.is_dir():
        raise _output_error(f"{option} {target}: {folder} is a file, not a folder; choose a folder path")
    try:  # os.access says yes to root even on a read-only disk: try it for real
        probe = tempfile.mkdtemp(dir=folder, prefix=".stereo-tem-probe-")
    except OSError as err:
        raise _output_error(f"{option} {target}: cannot write in {folder} ({err.strerror}); "
                            "choose a folder you can write to") from None
    os.rmdir(probe)


def _listing(folder: Path, limit: int = 4) -> str:
    names = sorted(p.name for p in folder.iterdir())
    return ", ".join(names[:limit]) + (f", ... ({len(names)} entries)" if len(names) > limit else "")


def check_output_folder(path, *, overwrite: bool = False, produces: Sequence[str] | None = None,
                        option: str = "-o") -> Path:
    """Check, before any work, that a result folder can be written at ``path``.

    Parameters
    ----------
    path : str or Path
        The result folder (created, with its parents, when the result is written).
    overwrite : bool
        Allow replacing an existing, non-empty folder.
    produces : sequence of str, optional
        Glob patterns of the files the command writes (``"virtual_*.tif"``). With
        ``overwrite``, a folder holding anything else is refused, so that
        replacing it never deletes the user's own files.
    option : str
        How the front end names the path in messages (``"-o"``, ``"directory"``).

    Returns
    -------
    Path

    Raises
    ------
    InputError
        ``path`` is a file, lies under a file, cannot be written, or already holds
        a result (without ``overwrite``) or foreign files (with it).
    """
    path = Path(os.path.abspath(Path(path).expanduser()))  # "-o ." and "-o x/.." name their folder too
    if path.exists() and not path.is_dir():
        raise _output_error(f"{option} {path} is an existing file, not a folder; give a folder path "
                            "(it is created if needed)")
    _check_writable_folder(_nearest_existing(path.parent), option, path)
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise _output_error(f"{option} {path} already holds files ({_listing(path)}); choose a new folder, "
                                f"or pass {_flag(option)} to replace that result as a whole")
        if produces is not None:
            foreign = sorted(p.name for p in path.iterdir()
                             if not (p.is_file() and any(fnmatch.fnmatch(p.name, pat) for pat in produces)))
            if foreign:
                raise _output_error(f"{option} {path} holds entries this command does not write "
                                    f"({', '.join(foreign[:4])}{', ...' if len(foreign) > 4 else ''}); "
                                    f"{_flag(option)} replaces the whole folder, so move them or choose another "
                                    "folder")
        _check_writable_folder(path, option, path)
    return path


def _flag(option: str) -> str:
    """How the user asks for replacement: ``--overwrite`` on the command line, ``overwrite=True`` in Python."""
    return "--overwrite" if option.startswith("-") else "overwrite=True"


def _write_failed(target: Path, err: OSError, option: str):
    reason = err.strerror or str(err)
    where = f" at {err.filename}" if err.filename else ""
    with_option = f" with {option}" if option.startswith("-") else ""
    return _output_error(f"could not write the result to {target} ({reason}{where}); nothing in {target} was "
                         f"changed: free some space, or choose another folder{with_option}")


@contextlib.contextmanager
def result_folder(path, *, overwrite: bool = False, produces: Sequence[str] | None = None,
                  option: str = "-o") -> Iterator[Path]:
    """Write a result folder as a whole: ``with result_folder(DIR) as tmp: ...write into tmp...``.

    The block writes into a fresh temporary folder beside ``path``; when it ends
    normally the temporary folder is renamed to ``path`` (an existing folder is
    replaced only with ``overwrite``, see :func:`check_output_folder`). When the
    block fails, the temporary folder is removed and ``path`` is untouched; an
    ``OSError`` (a full disk, say) becomes an :class:`~napari_stereo_tem.checks.InputError`
    naming ``path``.
    """
    path = check_output_folder(path, overwrite=overwrite, produces=produces, option=option)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temporary_path(path.parent, f".{path.name}.tmp-", directory=True)
    except OSError as err:
        raise _write_failed(path, err, option) from None
    try:
        yield tmp
        for file in tmp.rglob("*"):
            if file.is_file():
                with open(file, "rb+") as handle:
                    os.fsync(handle.fileno())
        _move_into_place(tmp, path, overwrite=overwrite, produces=produces, option=option)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _write_failed(path, err, option) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _move_into_place(tmp: Path, path: Path, *, overwrite: bool, produces, option: str) -> None:
    if path.is_dir() and any(path.iterdir()):
        # Checked again: something may have appeared during the work.
        check_output_folder(path, overwrite=overwrite, produces=produces, option=option)
        old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old-"))
        os.rename(path, old / "result")
        try:
            os.rename(tmp, path)
        except BaseException:
            os.rename(old / "result", path)
            shutil.rmtree(old, ignore_errors=True)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)  # onto nothing or an empty folder


def check_output_files(folder, names: Sequence[str], *, overwrite: bool = False, option: str = "-o") -> Path:
    """Check, before any work, that files ``names`` may be written into the existing or new ``folder``.

    For results that are a few files beside other data (evaluation tables in a
    case folder): refused when ``folder`` is a file or not writable, or when a
    file of ``names`` already exists and ``overwrite`` is false.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise _output_error(f"{option} {folder} is an existing file, not a folder; give a folder path")
    _check_writable_folder(_nearest_existing(folder), option, folder)
    existing = [n for n in names if (folder / n).exists()]
    if existing and not overwrite:
        raise _output_error(f"{option} {folder} already holds {', '.join(existing)}; choose another folder, "
                            f"or pass {_flag(option)} to replace them")
    return folder


def write_files_atomically(folder, writers: dict, *, overwrite: bool = False, option: str = "-o") -> dict:
    """Write several files into ``folder`` together: all new files, or none.

    ``writers`` maps a file name to ``write(temporary_path)``. Every file is
    written to a temporary name first; only when all succeeded are they renamed
    into place (each rename is atomic). Returns ``{name: path}``.
    """
    folder = check_output_files(folder, list(writers), overwrite=overwrite, option=option)
    done: list[Path] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, write in writers.items():
            tmp_name = _temporary_path(folder, f".{name}.", f".tmp{Path(name).suffix}")
            done.append(tmp_name)
            write(Path(tmp_name))
            with open(tmp_name, "rb+") as handle:
                os.fsync(handle.fileno())
        paths = {}
        for name, tmp in zip(writers, done):
            os.replace(tmp, folder / name)
            paths[name] = folder / name
        return paths
    except OSError as err:
        raise _write_failed(folder, err, option) from None
    finally:
        for tmp in done:
            tmp.unlink(missing_ok=True)
