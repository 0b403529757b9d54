"""Atomic writes of files and result folders: all or nothing, with the usual file permissions."""

import os
import stat

import pytest

from napari_stereo_tem.atomic import (
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    check_output_folder,
    result_folder,
    write_files_atomically,
)
from napari_stereo_tem.checks import InputError


def test_write_replaces_and_has_normal_permissions(tmp_path):
    target = atomic_write_text(tmp_path / "sub" / "a.csv", "x,y\n1,2\n")
    assert target.read_text() == "x,y\n1,2\n"
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["a.csv"]


def test_failure_leaves_the_old_file(tmp_path):
    target = atomic_write_text(tmp_path / "labels.json", "old")

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["labels.json"]


def test_writer_sees_the_target_suffix(tmp_path):
    seen = []
    atomic_write(tmp_path / "image.tif", lambda tmp: (seen.append(tmp.suffix), tmp.write_bytes(b"")))
    assert seen == [".tif"]


# -- result folders -------------------------------------------------------------------------------

def _write(folder, **files):
    for name, text in files.items():
        (folder / name).write_text(text)


def test_result_folder_appears_whole_and_leaves_no_temporary(tmp_path):
    with result_folder(tmp_path / "out") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.tmp-")
        _write(tmp, **{"a.csv": "1", "b.json": "2"})
        assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.csv", "b.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_existing_result_is_refused_and_kept(tmp_path):
    out = tmp_path / "out"
    with result_folder(out) as tmp:
        _write(tmp, **{"a.csv": "old"})
    with pytest.raises(InputError, match=r"already holds files \(a.csv\).*--overwrite"):
        check_output_folder(out)
    with pytest.raises(InputError, match="overwrite=True"):
        with result_folder(out, option="directory"):
            pass
    assert (out / "a.csv").read_text() == "old"


def test_overwrite_replaces_the_result_as_a_whole(tmp_path):
    out = tmp_path / "out"
    with result_folder(out) as tmp:
        _write(tmp, **{"virtual_00.tif": "old", "virtual_01.tif": "old", "detectors.json": "old"})
    with result_folder(out, overwrite=True, produces=("virtual_*.tif", "detectors.json")) as tmp:
        _write(tmp, **{"virtual_00.tif": "new", "detectors.json": "new"})
    assert sorted(p.name for p in out.iterdir()) == ["detectors.json", "virtual_00.tif"]  # no stale file
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_overwrite_never_deletes_foreign_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    _write(out, **{"lines.csv": "old", "my_notes.txt": "mine"})
    with pytest.raises(InputError, match="does not write \\(my_notes.txt\\)"):
        check_output_folder(out, overwrite=True, produces=("lines.csv",))
    assert (out / "my_notes.txt").read_text() == "mine"


def test_failed_write_keeps_the_earlier_result_and_names_the_folder(tmp_path):
    out = tmp_path / "out"
    with result_folder(out) as tmp:
        _write(tmp, **{"lines.csv": "old", "preview.png": "old"})
    with pytest.raises(InputError, match=f"could not write the result to {out}.*No space left.*nothing in"):
        with result_folder(out, overwrite=True) as tmp:
            _write(tmp, **{"lines.csv": "new"})
            raise OSError(28, "No space left on device")
    assert (out / "lines.csv").read_text() == "old" and (out / "preview.png").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_output_that_is_a_file_or_under_a_file_is_refused(tmp_path):
    file = tmp_path / "taken"
    file.write_text("x")
    with pytest.raises(InputError, match="is an existing file, not a folder"):
        check_output_folder(file)
    with pytest.raises(InputError, match="is a file, not a folder"):
        check_output_folder(file / "sub")


def test_empty_existing_folder_is_used(tmp_path):
    (tmp_path / "out").mkdir()
    with result_folder(tmp_path / "out") as tmp:
        _write(tmp, **{"a.csv": "1"})
    assert (tmp_path / "out" / "a.csv").read_text() == "1"


def test_files_written_together_or_not_at_all(tmp_path):
    def broken(path):
        raise OSError(28, "No space left on device")

    with pytest.raises(InputError, match="No space left"):
        write_files_atomically(tmp_path, {"a.md": lambda p: p.write_text("a"), "a.csv": broken})
    assert list(tmp_path.iterdir()) == []
    write_files_atomically(tmp_path, {"a.md": lambda p: p.write_text("a")})
    with pytest.raises(InputError, match="already holds a.md"):
        write_files_atomically(tmp_path, {"a.md": lambda p: p.write_text("b")})
    write_files_atomically(tmp_path, {"a.md": lambda p: p.write_text("b")}, overwrite=True)
    assert (tmp_path / "a.md").read_text() == "b"


def test_dot_as_output_names_the_folder_itself(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.csv").write_text("old")
    monkeypatch.chdir(out)
    with pytest.raises(InputError, match=f"{out} already holds files"):
        check_output_folder(".")
    with result_folder(".", overwrite=True, produces=("*.csv",)) as tmp:
        assert tmp.parent == tmp_path
        (tmp / "b.csv").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["b.csv"]
