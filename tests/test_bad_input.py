"""Bad input and faults at the entry points: each case ends in one clear line naming the problem and the fix.

One test per case of the reliability audit (DESIGN section 6): output folders
(``-o`` a file, an existing result, a full disk), the same view twice, bool and
tiny images, devices, damaged weights sidecars, a .mib without its .hdr, a
missing training set, unreadable files (without the readers' own log noise).
Each CLI case checks the exit status, that the message is a single
``stereo-tem CMD: error: ...`` line on a line of its own, and what it says.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.cli import main
from napari_stereo_tem.images import read_stereo_pair

REPO = Path(__file__).resolve().parents[1]
STEREO = REPO / "sample_data" / "stereo"
PARTICLES = REPO / "sample_data" / "particles"
WEIGHTS = REPO / "src" / "napari_stereo_tem" / "weights"
REAL_MIB = REPO.parent / "shared" / "realdata" / "001_4x2_6bit.mib"


def _fail(argv, capsys, *fragments) -> str:
    """Run the CLI, expect exit 1 and one error line holding every fragment; return that line."""
    assert main([str(a) for a in argv]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith(f"stereo-tem {argv[0]}: error: "), err  # on a line of its own, not after a bar
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in line, line
    return line


@pytest.fixture
def no_work(monkeypatch):
    """Make any reconstruction fail loudly: the case must be refused before the work starts."""

    def refuse(*args, **kwargs):
        raise AssertionError("the work started although the output could not be written")

    monkeypatch.setattr("napari_stereo_tem.stereo.pipeline.reconstruct_stereo", refuse)
    monkeypatch.setattr("napari_stereo_tem.particles.pipeline.reconstruct_particles_iter", refuse)
    monkeypatch.setattr("napari_stereo_tem.fourdstem.iter_virtual_images", refuse)
    monkeypatch.setattr("napari_stereo_tem.evaluation.cases.evaluate_directory_iter", refuse)


def _reconstruct(out, *extra):
    return ["reconstruct", STEREO / "left.tif", STEREO / "right.tif", "--angle", "8", "-o", out, *extra]


def _particles(out, *extra):
    return ["particles", *(PARTICLES / f"view_{k}.tif" for k in "ABCD"), "--beta", "5", "-o", out, *extra]


def _virtual(tmp_path, out, *extra):
    np.save(tmp_path / "d.npy", np.random.default_rng(0).integers(0, 9, (4, 4, 16, 16), dtype=np.uint16))
    return ["virtual", tmp_path / "d.npy", "--disc", "8,8,3", "-o", out, *extra]


def _old_result(folder: Path, *names) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text("earlier result")
    return folder


# -- output folders: checked before any work, never mixed, never silently replaced ---------------

def test_reconstruct_output_is_an_existing_file(tmp_path, capsys, no_work):
    (tmp_path / "out").write_text("x")
    _fail(_reconstruct(tmp_path / "out"), capsys, "is an existing file, not a folder")


def test_reconstruct_output_under_a_file(tmp_path, capsys, no_work):
    (tmp_path / "file").write_text("x")
    _fail(_reconstruct(tmp_path / "file" / "out"), capsys, "is a file, not a folder")


def test_reconstruct_into_an_earlier_result_is_refused(tmp_path, capsys, no_work):
    out = _old_result(tmp_path / "out", "lines.csv", "result.json", "preview.png")
    _fail(_reconstruct(out), capsys, "already holds files", "--overwrite")
    assert (out / "preview.png").read_text() == "earlier result"


def test_reconstruct_overwrite_keeps_foreign_files(tmp_path, capsys, no_work):
    out = _old_result(tmp_path / "out", "lines.csv", "my_notes.txt")
    _fail(_reconstruct(out, "--overwrite"), capsys, "does not write (my_notes.txt)")
    assert (out / "my_notes.txt").read_text() == "earlier result"


def test_virtual_into_an_earlier_result_is_refused(tmp_path, capsys, no_work):
    out = _old_result(tmp_path / "out", "virtual_00.tif", "virtual_01.tif", "virtual_02.tif", "detectors.json")
    _fail(_virtual(tmp_path, out), capsys, "already holds files", "--overwrite")


def test_virtual_output_is_an_existing_file(tmp_path, capsys, no_work):
    (tmp_path / "out").write_text("x")
    _fail(_virtual(tmp_path, tmp_path / "out"), capsys, "is an existing file")


def test_particles_into_an_earlier_result_is_refused(tmp_path, capsys, no_work):
    out = _old_result(tmp_path / "out", "points.csv", "rdf.csv")
    _fail(_particles(out), capsys, "already holds files", "--overwrite")


def test_particles_output_is_an_existing_file(tmp_path, capsys, no_work):
    (tmp_path / "out").write_text("x")
    _fail(_particles(tmp_path / "out"), capsys, "is an existing file")


def test_evaluate_over_earlier_tables_is_refused(tmp_path, capsys, no_work):
    out = _old_result(tmp_path / "cases", "evaluation.md", "evaluation.csv")
    _fail(["evaluate", out], capsys, "already holds evaluation.md, evaluation.csv", "--overwrite")


def test_virtual_rerun_with_fewer_discs_leaves_no_stale_image(tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(a) for a in _virtual(tmp_path, out)] + ["--disc", "8,4,2", "--disc", "8,12,2"]) == 0
    assert main([str(a) for a in _virtual(tmp_path, out, "--overwrite")]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["detectors.json", "virtual_00.tif"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_full_disk_during_save_keeps_the_earlier_result(tmp_path, monkeypatch):
    from napari_stereo_tem.stereo.pipeline import StereoReconstruction

    image = np.zeros((16, 16), np.float32)
    result = StereoReconstruction(lines=[np.zeros((3, 3))], left=image, right=image, prob_left=image,
                                  prob_right=image, labels_left=image.astype(np.uint8),
                                  labels_right=image.astype(np.uint8), disparity=image, disparity_std=image,
                                  disparity_refined=image)
    out = result.save(tmp_path / "out")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def full(path, record):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("napari_stereo_tem.stereo.lines_io.write_json", full)
    with pytest.raises(InputError, match=f"could not write the result to {out} \\(No space left on device\\); "
                                         "nothing in .* was changed"):
        result.save(out, overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


# -- the two views -------------------------------------------------------------------------------

def test_same_file_as_both_views(tmp_path, capsys, no_work):
    _fail(["reconstruct", STEREO / "left.tif", STEREO / "left.tif", "--angle", "8", "-o", tmp_path / "o"],
          capsys, "LEFT and RIGHT are the same file")


def test_identical_views_are_refused():
    image = tifffile.imread(STEREO / "left.tif")
    with pytest.raises(InputError, match="the two views are identical"):
        read_stereo_pair(image, image.copy(), stereo_angle_deg=8.0)


def test_bool_views_become_grey_levels():
    rng = np.random.default_rng(0)
    pair = read_stereo_pair(rng.random((32, 32)) > 0.5, rng.random((32, 32)) > 0.5, stereo_angle_deg=8.0)
    assert pair.left.dtype == np.float32 and pair.right.dtype == np.float32 and pair.left.max() == 1.0


def test_tiny_rectified_pair_runs_through_the_matcher():
    from napari_stereo_tem.stereo.matching import load_matcher, predict_disparity

    rng = np.random.default_rng(0)
    disparity, std = predict_disparity(rng.random((8, 8)), rng.random((8, 8)), load_matcher("default"))
    assert disparity.shape == (8, 8) and np.isfinite(disparity).all() and std.shape == (8, 8)


# -- devices and weights -------------------------------------------------------------------------

@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda(tmp_path, capsys):
    _fail(_reconstruct(tmp_path / "o", "--device", "cuda"), capsys, "device 'cuda'", "--device cpu")


def test_unknown_device(tmp_path, capsys):
    _fail(_reconstruct(tmp_path / "o", "--device", "tpu"), capsys, "device 'tpu' is not a torch device")


def _weights_copy(tmp_path, kind, edit=None, text=None) -> Path:
    target = tmp_path / f"{kind}_copy.safetensors"
    shutil.copy(WEIGHTS / f"{kind}_v1.safetensors", target)
    meta = json.loads((WEIGHTS / f"{kind}_v1.json").read_text())
    if edit:
        edit(meta)
    target.with_suffix(".json").write_text(text if text is not None else json.dumps(meta))
    return target


def test_sidecar_with_an_unknown_architecture_key(tmp_path, capsys):
    weights = _weights_copy(tmp_path, "detector", edit=lambda m: m["architecture"].update(bogus=1))
    _fail(_reconstruct(tmp_path / "o", "--detector", weights), capsys,
          f"the architecture in {weights.with_suffix('.json')} does not fit DislocationUNet", "bogus")


def test_matcher_weights_given_as_detector(tmp_path, capsys):
    _fail(_reconstruct(tmp_path / "o", "--detector", WEIGHTS / "matcher_v1.safetensors"), capsys,
          "holds a StereoNet (matcher), not a DislocationUNet (detector)", "--matcher")


def test_detector_weights_given_as_matcher(tmp_path, capsys):
    _fail(_reconstruct(tmp_path / "o", "--matcher", WEIGHTS / "detector_v1.safetensors"), capsys,
          "holds a DislocationUNet (detector), not a StereoNet (matcher)", "--detector")


def test_malformed_sidecar_names_the_file(tmp_path, capsys):
    weights = _weights_copy(tmp_path, "detector", text="{not json")
    _fail(_reconstruct(tmp_path / "o", "--detector", weights), capsys,
          f"the weights sidecar {weights.with_suffix('.json')} is not valid JSON")


def test_sidecar_that_is_not_a_record(tmp_path, capsys):
    weights = _weights_copy(tmp_path, "detector", text="[1, 2]")
    _fail(_reconstruct(tmp_path / "o", "--detector", weights), capsys, "is not a metadata record")


# -- files ---------------------------------------------------------------------------------------

def test_mib_without_hdr_cut_to_five_frames(tmp_path, capsys):
    data = REAL_MIB.read_bytes()
    (tmp_path / "cut.mib").write_bytes(data[:5 * (len(data) // 8)])
    _fail(["virtual", tmp_path / "cut.mib", "--disc", "128,128,10", "-o", tmp_path / "o"], capsys,
          "holds 5 frames", "cut.hdr", "--scan-shape")


def test_garbage_microscope_file_without_reader_noise(tmp_path, capfd):
    (tmp_path / "g.dm3").write_bytes(np.random.default_rng(0).bytes(1000))
    assert main(["reconstruct", str(tmp_path / "g.dm3"), str(STEREO / "right.tif"), "--angle", "8",
                 "-o", str(tmp_path / "o")]) == 1
    err = capfd.readouterr().err
    assert "could not read g.dm3" in err
    assert "please report" not in err and "RosettaSciIO developers" not in err


def test_training_set_that_does_not_exist(tmp_path, capsys):
    _fail(["train", "detector", "--from-set", tmp_path / "missing", "--name", "x", "--steps", "1"], capsys,
          "does not exist", "Add to training set")


def test_error_after_a_progress_bar_starts_a_new_line(tmp_path, capsys, monkeypatch):
    from napari_stereo_tem.progress import Progress, text_progress

    def work(*args, **kwargs):
        text_progress()(Progress(1, 6, "load"))
        raise InputError("the pair cannot be rectified")
        yield

    monkeypatch.setattr("napari_stereo_tem.stereo.pipeline.reconstruct_stereo", work)
    line = _fail(_reconstruct(tmp_path / "o"), capsys, "cannot be rectified")
    assert line.startswith("stereo-tem reconstruct: error:")


# -- arguments and images at the command line (one row per case) ---------------------------------

def _image_file(tmp_path, name, array):
    tifffile.imwrite(tmp_path / name, array)
    return tmp_path / name


@pytest.mark.parametrize("extra, fragment", [
    (["--angle", "0"], "non-zero number of degrees"),
    (["--angle", "120"], "absurd"),
    (["--angle", "nan"], "non-zero number of degrees"),
    (["--pixel-size", "-1"], "pixel size must be a positive number"),
    (["--disparity-range=5"], "--disparity-range must be MIN,MAX"),
    (["--disparity-range=8,-8"], "--disparity-range needs MIN < MAX"),
], ids=["angle-zero", "angle-absurd", "angle-nan", "pixel-size", "range-form", "range-order"])
def test_reconstruct_bad_arguments(tmp_path, capsys, extra, fragment):
    argv = _reconstruct(tmp_path / "o")
    if "--angle" in extra:
        argv = argv[:argv.index("--angle")] + argv[argv.index("--angle") + 2:]
    _fail(argv + extra, capsys, fragment)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("make, fragment", [
    (lambda t: np.full((64, 64), np.nan, np.float32), "NaN or infinite"),
    (lambda t: np.zeros((64, 64), np.float32), "constant"),
    # an RGB file is read as grey levels (the mean of its colours): here one constant grey
    (lambda t: np.zeros((64, 64, 3), np.uint8) + np.arange(3, dtype=np.uint8), "constant"),
    (lambda t: np.random.default_rng(0).random((48, 64)), "differ in shape"),
    (lambda t: np.random.default_rng(0).random((4, 4)), "too small"),
], ids=["nan", "constant", "rgb", "shape", "tiny"])
def test_reconstruct_bad_left_image(tmp_path, capsys, make, fragment):
    right = _image_file(tmp_path, "right.tif", np.random.default_rng(1).random((64, 64)).astype(np.float32))
    left = _image_file(tmp_path, "left.tif", make(tmp_path))
    _fail(["reconstruct", left, right, "--angle", "8", "--no-rectify", "-o", tmp_path / "o"], capsys, fragment)


def test_reconstruct_missing_view(tmp_path, capsys):
    _fail(["reconstruct", tmp_path / "nope.tif", STEREO / "right.tif", "--angle", "8", "-o", tmp_path / "o"],
          capsys, "nope.tif")


@pytest.mark.parametrize("disc, fragment", [("8,8", "--disc must be CY,CX,R"), ("a,b,c", "--disc must be CY,CX,R")],
                         ids=["two-numbers", "letters"])
def test_virtual_bad_disc(tmp_path, capsys, disc, fragment):
    argv = _virtual(tmp_path, tmp_path / "o")
    argv[argv.index("--disc") + 1] = disc
    _fail(argv, capsys, fragment)


def test_virtual_bad_scan_shape(tmp_path, capsys):
    _fail(_virtual(tmp_path, tmp_path / "o", "--scan-shape", "4"), capsys, "--scan-shape must be SY,SX")


def test_particles_radius_range_needs_two_numbers(tmp_path, capsys):
    _fail(_particles(tmp_path / "o", "--radius-range", "3"), capsys, "--radius-range needs MIN,MAX")


def test_particles_output_under_a_file(tmp_path, capsys, no_work):
    (tmp_path / "file").write_text("x")
    _fail(_particles(tmp_path / "file" / "o"), capsys, "is a file, not a folder")


def test_evaluate_output_is_an_existing_file(tmp_path, capsys, no_work):
    (tmp_path / "out").write_text("x")
    _fail(["evaluate", tmp_path, "-o", tmp_path / "out"], capsys, "is an existing file")


def test_evaluate_run_over_earlier_predictions_is_refused_before_any_work(tmp_path, monkeypatch):
    from napari_stereo_tem.evaluation.cases import evaluate_directory
    from napari_stereo_tem.synth import make_stereo_pair

    make_stereo_pair(9_000_501, shape=(64, 64)).save(tmp_path / "case1")
    (tmp_path / "predictions" / "case1").mkdir(parents=True)
    (tmp_path / "predictions" / "case1" / "lines.csv").write_text("earlier")
    monkeypatch.setattr("napari_stereo_tem.stereo.pipeline.reconstruct",
                        lambda *a, **k: pytest.fail("the work started"))
    with pytest.raises(InputError, match="already holds files.*--overwrite"):
        evaluate_directory(tmp_path, run=True)
    assert (tmp_path / "predictions" / "case1" / "lines.csv").read_text() == "earlier"


def test_particles_same_file_twice(tmp_path, capsys, no_work):
    views = [PARTICLES / f"view_{k}.tif" for k in "ABCA"]
    _fail(["particles", *views, "--beta", "5", "-o", tmp_path / "o"], capsys, "are the same file")
