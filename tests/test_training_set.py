"""The training set: append-only, atomic entries, derived index, recoverable removal."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.models.training_set import (
    add_entry, clean_unfinished, file_sha256, list_entries, list_trash, load_entry, remove_entry, restore_entry,
)


def _views(seed=0, shape=(48, 64)):
    rng = np.random.default_rng(seed)
    left = rng.integers(0, 4000, shape).astype(np.uint16)
    right = rng.integers(0, 4000, shape).astype(np.uint16)
    mask = np.zeros(shape, np.uint8)
    mask[10:30, 20:22] = 1
    mask[40:44, 5:9] = 2
    return left, right, mask


def test_add_list_load_round_trip_with_provenance(tmp_path):
    left, right, mask = _views()
    source = tmp_path / "pair_left.tif"
    source.write_bytes(b"raw microscope file")
    disparity = np.full(left.shape, np.nan, np.float32)
    disparity[10:30, 20:22] = 3.5
    path = add_entry(tmp_path / "set", left, mask, right=right, mask_right=mask, disparity_left=disparity,
                     source=source, stereo_angle_deg=8.0, pixel_size_nm=0.5, model_version="detector_v1")
    assert path.name == "entry-000001"
    entries = list_entries(tmp_path / "set")
    assert [e.name for e in entries] == ["entry-000001"]
    assert entries[0].has_pair and entries[0].has_disparity
    data = load_entry(entries[0])
    np.testing.assert_array_equal(data["left"], left)
    np.testing.assert_array_equal(data["right"], right)
    np.testing.assert_array_equal(data["mask_left"], mask)
    np.testing.assert_array_equal(data["disparity_left"], disparity)
    prov = data["record"]["provenance"]
    assert prov["source"] == str(source)
    assert prov["sources"]["left"]["sha256"] == file_sha256(source)
    assert prov["stereo_angle_deg"] == 8.0 and prov["pixel_size_nm"] == 0.5
    assert prov["model_version"] == "detector_v1" and prov["created_utc"].endswith("Z")
    assert "entry-000001" in entries[0].describe()


def test_entries_are_never_overwritten_and_numbers_never_reused(tmp_path):
    left, _, mask = _views()
    first = add_entry(tmp_path, left, mask)
    second = add_entry(tmp_path, left + 1, mask)
    assert (first.name, second.name) == ("entry-000001", "entry-000002")
    before = (first / "entry.json").read_bytes()
    remove_entry(tmp_path, second.name)
    third = add_entry(tmp_path, left + 2, mask)
    assert third.name == "entry-000003"  # the removed entry's number stays its own
    assert (first / "entry.json").read_bytes() == before


def test_remove_goes_to_trash_and_restore_brings_it_back(tmp_path):
    left, _, mask = _views()
    add_entry(tmp_path, left, mask)
    entry = add_entry(tmp_path, left + 5, mask)
    trashed = remove_entry(tmp_path, entry.name)
    assert trashed.parent.name == ".trash" and trashed.is_dir()
    assert [e.name for e in list_entries(tmp_path)] == ["entry-000001"]
    assert [e.name for e in list_trash(tmp_path)] == ["entry-000002"]
    restored = restore_entry(tmp_path, "entry-000002")
    assert restored.name == "entry-000002"
    np.testing.assert_array_equal(load_entry(restored)["left"], left + 5)
    assert list_trash(tmp_path) == []
    with pytest.raises(InputError, match="is not a removed entry"):
        restore_entry(tmp_path, "entry-000009")


def test_half_written_and_damaged_entries_are_not_listed(tmp_path):
    left, _, mask = _views()
    add_entry(tmp_path, left, mask)
    (tmp_path / ".tmp-entry-abc").mkdir()  # a writer that died
    (tmp_path / "entry-000007").mkdir()  # no entry.json
    (tmp_path / "entry-000008").mkdir()
    (tmp_path / "entry-000008" / "entry.json").write_text("{ truncated")
    assert [e.name for e in list_entries(tmp_path)] == ["entry-000001"]
    # a file changed after the save is caught by its hash
    entry = list_entries(tmp_path)[0]
    (entry.path / "mask_left.tif").write_bytes(b"garbage")
    with pytest.raises(InputError, match="sha256"):
        load_entry(entry)


def test_bad_inputs_are_refused(tmp_path):
    left, right, mask = _views()
    with pytest.raises(InputError, match="shape"):
        add_entry(tmp_path, left, mask[:10])
    with pytest.raises(InputError, match="right view"):
        add_entry(tmp_path, left, mask, disparity_left=np.zeros(left.shape))
    with pytest.raises(InputError, match="constant"):
        add_entry(tmp_path, np.zeros((32, 32)), np.zeros((32, 32), np.uint8))
    assert list_entries(tmp_path) == []


WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from napari_stereo_tem.models.training_set import add_entry

    folder = sys.argv[1]
    rng = np.random.default_rng(1)
    left = rng.random((40, 40)).astype(np.float32)
    mask = (rng.random((40, 40)) > 0.9).astype(np.uint8)

    def slow(path):
        print("wrote", path.name, flush=True)
        time.sleep(60)

    add_entry(folder, left, mask, right=left[::-1].copy(), mask_right=mask, on_file_written=slow)
""")


def test_killing_the_writer_mid_save_leaves_earlier_entries_intact(tmp_path):
    left, right, mask = _views()
    folder = tmp_path / "set"
    add_entry(folder, left, mask, right=right, mask_right=mask)
    add_entry(folder, left + 1, mask)
    snapshot = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen([sys.executable, str(script), str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # the writer has written its first file and sleeps before the next
        assert line.startswith("wrote"), line
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    # the half entry exists on disk but is never listed; earlier entries are byte for byte as they were
    assert any(p.name.startswith(".tmp-entry-") for p in folder.iterdir())
    entries = list_entries(folder)
    assert [e.name for e in entries] == ["entry-000001", "entry-000002"]
    for rel, data in snapshot.items():
        assert (folder / rel).read_bytes() == data
    for entry in entries:
        load_entry(entry, verify=True)
    # a recent unfinished save is left alone (it could be another process's); an old one is cleaned
    assert clean_unfinished(folder) == []
    assert len(clean_unfinished(folder, older_than_s=0)) == 1
    assert not any(p.name.startswith(".tmp-entry-") for p in folder.iterdir())
    # the set stays usable: the next save gets the next number
    assert add_entry(folder, left + 2, mask).name == "entry-000003"
    assert json.loads((folder / "entry-000003" / "entry.json").read_text())["files"]["left"]["file"] == "left.tif"


@pytest.mark.parametrize("name", ["../../outside", "../entry-000001", "/tmp", "entry-000001", ".trash",
                                  "entry-000002/../../outside", "entry-000002\n"])
def test_restore_takes_only_names_of_the_trash(tmp_path, name):
    """A path instead of a trash name never moves a folder into the set or renames a live entry."""
    root = tmp_path / "set"
    left, _, mask = _views()
    first = add_entry(root, left, mask)
    second = add_entry(root, left, mask)
    remove_entry(root, second.name)
    outside = tmp_path / "outside"
    outside.mkdir()
    before = sorted(p.name for p in root.iterdir())
    with pytest.raises(InputError, match="is not a removed entry.*removed entries: entry-000002"):
        restore_entry(root, name)
    assert outside.is_dir() and first.is_dir()
    assert sorted(p.name for p in root.iterdir()) == before


@pytest.mark.parametrize("name", ["../outside", "/tmp", ".trash", "entry-000009"])
def test_remove_takes_only_listed_entries(tmp_path, name):
    root = tmp_path / "set"
    left, _, mask = _views()
    add_entry(root, left, mask)
    (tmp_path / "outside").mkdir()
    with pytest.raises(InputError, match="is not an entry of the training set.*its entries: entry-000001"):
        remove_entry(root, name)
    assert (tmp_path / "outside").is_dir() and [e.name for e in list_entries(root)] == ["entry-000001"]


def test_entry_record_cannot_point_outside_the_entry(tmp_path):
    root = tmp_path / "set"
    left, _, mask = _views()
    entry = add_entry(root, left, mask)
    record = json.loads((entry / "entry.json").read_text())
    key = next(iter(record["files"]))
    record["files"][key]["file"] = "../../secret.tif"
    (entry / "entry.json").write_text(json.dumps(record))
    with pytest.raises(InputError, match="names a file '../../secret.tif' that is not a file of the entry"):
        load_entry(entry)
