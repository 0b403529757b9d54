"""Atomic writes: all or nothing, with the usual file permissions."""

import os
import stat

import pytest

from napari_stereo_tem.atomic import atomic_write, atomic_write_bytes, atomic_write_text


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
