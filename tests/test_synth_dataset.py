"""Training-set builder: splits from disjoint seed ranges, documented layout, resumable."""

from __future__ import annotations

import json

import pytest

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.progress import Cancelled, drive
from napari_stereo_tem.synth.dataset import build_training_set, split_counts
from napari_stereo_tem.synth.seeds import SPLITS


def test_split_counts_sum_to_total():
    assert split_counts(10) == {"train": 8, "val": 1, "test": 1}
    assert sum(split_counts(7, (0.5, 0.25, 0.25)).values()) == 7
    with pytest.raises(InputError):
        split_counts(5, (1.0, -0.5, 0.5))


def test_build_training_set_layout_and_resume(tmp_path):
    reports = []
    folder = drive(build_training_set(tmp_path / "ts", 10, seed=1, shape=(48, 64)), reports.append)
    assert reports[-1].done == reports[-1].total == 10
    layout = json.loads((folder / "layout.json").read_text())
    assert layout["counts"] == {"train": 8, "val": 1, "test": 1}
    assert (folder / "README.md").read_text().startswith("# Synthetic")
    for split, count in layout["counts"].items():
        names = sorted(p.name for p in (folder / split).iterdir() if p.is_dir())
        assert len(names) == count
        seeds = [int(n.split("_s")[1]) for n in names]
        assert all(s in SPLITS[split] for s in seeds)
        assert (folder / split / "index.csv").read_text().count("\n") == count + 1
        for name in names:
            assert (folder / split / name / "params.json").exists()
    before = (folder / "train" / sorted(p.name for p in (folder / "train").iterdir() if p.is_dir())[0]
              / "left.tif").stat().st_mtime_ns
    drive(build_training_set(tmp_path / "ts", 10, seed=1, shape=(48, 64)))  # resume: nothing rewritten
    after = (folder / "train" / sorted(p.name for p in (folder / "train").iterdir() if p.is_dir())[0]
             / "left.tif").stat().st_mtime_ns
    assert before == after
    with pytest.raises(InputError):
        drive(build_training_set(tmp_path / "ts", 12, seed=1, shape=(48, 64)))


def test_build_can_be_cancelled(tmp_path):
    with pytest.raises(Cancelled):
        drive(build_training_set(tmp_path / "ts", 5, shape=(32, 32)), should_stop=lambda: True)
    assert not list((tmp_path / "ts").glob("*/.*partial"))
