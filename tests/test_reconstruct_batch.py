"""``stereo-tem reconstruct --pairs LIST``: many pairs in one process, each result as a single run gives it."""

import numpy as np
import pytest
import tifffile

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.cli import main
from napari_stereo_tem.stereo.pair_list import read_pair_list
from napari_stereo_tem.synth import make_stereo_pair


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("cases")
    for seed in (9_000_401, 9_000_402):
        make_stereo_pair(seed, shape=(96, 128)).save(root / f"case{seed}")
    return root


def test_folder_of_pairs_gives_what_single_runs_give(cases, tmp_path, capsys):
    assert main(["reconstruct", "--pairs", str(cases), "--angle", "8", "--no-rectify", "-o", str(tmp_path / "b")]) == 0
    names = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert names == ["case9000401", "case9000402"]
    for name in names:
        single = tmp_path / f"single_{name}"
        assert main(["reconstruct", str(cases / name / "left.tif"), str(cases / name / "right.tif"), "--angle", "8",
                     "--no-rectify", "-o", str(single)]) == 0
        assert (tmp_path / "b" / name / "lines.csv").read_text() == (single / "lines.csv").read_text()
        assert (tmp_path / "b" / name / "result.json").is_file()


def test_a_failing_pair_is_reported_and_the_others_go_on(cases, tmp_path, capsys):
    flat = tmp_path / "flat.tif"
    tifffile.imwrite(flat, np.zeros((96, 128), np.float32))
    listing = tmp_path / "pairs.txt"
    listing.write_text(f"# left right name\n{cases}/case9000401/left.tif {cases}/case9000401/right.tif good\n"
                       f"flat.tif, {cases}/case9000402/right.tif, bad\n")
    argv = ["reconstruct", "--pairs", str(listing), "--angle", "8", "--no-rectify", "-o", str(tmp_path / "o")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "bad: error:" in err and "constant" in err and "1 of 2 pairs failed: bad" in err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["good"]


@pytest.mark.parametrize("text, message", [
    ("a.tif\n", "expected 'LEFT RIGHT \\[NAME\\]'"),
    ("a.tif b.tif x y\n", "expected 'LEFT RIGHT \\[NAME\\]'"),
    ("a.tif missing.tif\n", "missing.tif, which does not exist"),
    ("a.tif b.tif same\nb.tif a.tif same\n", "the name 'same' is used twice"),
    ("a.tif b.tif ../up\n", "cannot be a folder name"),
    ("# nothing\n\n", "lists no pairs"),
])
def test_bad_pair_lists(tmp_path, text, message):
    for name in ("a.tif", "b.tif"):
        tifffile.imwrite(tmp_path / name, np.zeros((8, 8), np.uint8))
    (tmp_path / "pairs.txt").write_text(text)
    with pytest.raises(InputError, match=message):
        read_pair_list(tmp_path / "pairs.txt")


def test_pairs_and_views_together_or_neither(cases, tmp_path, capsys):
    assert main(["reconstruct", str(cases / "case9000401" / "left.tif"), "--pairs", str(cases),
                 "-o", str(tmp_path / "o")]) == 1
    assert "not both" in capsys.readouterr().err
    assert main(["reconstruct", "-o", str(tmp_path / "o")]) == 1
    assert "give the two views LEFT RIGHT, --pairs LIST for many pairs, or --series STACK" in capsys.readouterr().err
    assert main(["reconstruct", "--pairs", str(tmp_path / "none"), "-o", str(tmp_path / "o")]) == 1
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["reconstruct", "--pairs", str(tmp_path / "empty"), "-o", str(tmp_path / "o")]) == 1
    assert "no pair folders" in capsys.readouterr().err


def test_an_earlier_result_of_one_pair_stops_the_batch_before_any_work(cases, tmp_path, capsys):
    (tmp_path / "o" / "case9000402").mkdir(parents=True)
    (tmp_path / "o" / "case9000402" / "lines.csv").write_text("earlier")
    assert main(["reconstruct", "--pairs", str(cases), "--angle", "8", "-o", str(tmp_path / "o")]) == 1
    assert "already holds files" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["case9000402"]
