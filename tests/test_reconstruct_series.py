"""``stereo-tem reconstruct --series STACK``: a tilt series, one tilt axis for all its adjacent pairs."""

import json

import numpy as np
import pytest
import tifffile

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.cli import main
from napari_stereo_tem.stereo.frame_stack import read_stack

TRUE_AXIS = -20.0


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """Three dislocation views 12 degrees apart, each misaligned about one axis (-20 degrees) with its own shift."""
    from napari_stereo_tem.synth.misalign import misalign_pair
    from napari_stereo_tem.synth.render import render_views
    from napari_stereo_tem.synth.scene import make_scene

    size, tilts = 320, [-12.0, 0.0, 12.0]
    scene = make_scene(5, shape=(448, 448), max_tilt_deg=12.0)
    views = render_views(scene, tilts, seed=5, dose=300, view_jitter=0.5).images
    shifts = [(0.0, 0.0), (9.0, -6.0), (15.0, 4.0)]
    raw = [misalign_pair(views[0], v, theta_deg=TRUE_AXIS, translation=t, out_shape=(size, size))[1]
           for v, t in zip(views, shifts)]
    path = tmp_path_factory.mktemp("series") / "series.tif"
    tifffile.imwrite(path, np.stack(raw).astype(np.float32), photometric="minisblack")
    return path


def test_a_tilt_series_is_aligned_to_one_axis_and_every_pair_reconstructed(series, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["reconstruct", "--series", str(series), "--angle", "12", "-o", str(out)]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "tilt series: 3 views, common tilt axis" in printed and "2 of 2 pairs reconstructed" in printed
    assert "align the series" in captured.err and "reconstruct views_01-02" in captured.err  # progress
    record = json.loads((out / "series.json").read_text())
    assert record["n_views"] == 3 and record["tilts_deg"] == [-12.0, 0.0, 12.0]
    axis, std = record["tilt_axis_deg"], record["tilt_axis_std_deg"]
    assert abs(axis - TRUE_AXIS) < max(3 * std, 0.5) and std < 2.0
    assert [p["folder"] for p in record["pairs"]] == ["views_00-01", "views_01-02"]
    for pair in record["pairs"]:
        assert np.isfinite(pair["own_tilt_axis_deg"]) and pair["n_lines"] > 0
        result = json.loads((out / pair["folder"] / "result.json").read_text())
        rect = result["rectification"]
        assert rect["theta_deg"] == pytest.approx(axis, abs=1e-6) and rect["theta_given"]  # the common axis
        assert result["provenance"]["tilts_deg"] == pair["tilts_deg"]
        assert (out / pair["folder"] / "lines.csv").read_text().startswith("line_id,")
    # the same folder again: refused without --overwrite, nothing lost
    before = (out / "views_00-01" / "lines.csv").read_text()
    assert main(["reconstruct", "--series", str(series), "--angle", "12", "-o", str(out)]) == 1
    assert "already holds" in capsys.readouterr().err
    assert (out / "views_00-01" / "lines.csv").read_text() == before


def test_a_known_tilt_axis_skips_the_alignment(series, tmp_path, capsys):
    out = tmp_path / "given"
    assert main(["reconstruct", "--series", str(series), "--tilts=-12,0,12", "--tilt-axis", "-20",
                 "-o", str(out)]) == 0
    assert "align the series" not in capsys.readouterr().err
    record = json.loads((out / "series.json").read_text())
    assert record["tilt_axis_given"] and record["tilt_axis_deg"] == -20.0
    assert all(p["own_tilt_axis_deg"] is None for p in record["pairs"])


def test_signal_chooses_the_tilt_series_of_a_file_holding_several(series, tmp_path, monkeypatch, capsys):
    """A microscope file holding an overview movie and the tilt series: --signal takes the series by title."""
    import hyperspy.api as hs

    from napari_stereo_tem import images

    stacks = []
    for title, frames in (("overview", np.random.default_rng(0).random((5, 64, 64)).astype(np.float32)),
                          ("tilt series", tifffile.imread(series))):
        stack = hs.signals.Signal2D(frames).as_lazy()
        stack.metadata.General.title = title
        stacks.append(stack)
    path = tmp_path / "session.emd"
    path.write_bytes(b"not read: the reader is replaced")
    monkeypatch.setattr(images, "_signals", lambda p, lazy=False: stacks)
    out = tmp_path / "chosen"
    assert main(["reconstruct", "--series", str(path), "--signal", "tilt", "--tilts=-12,0,12", "--tilt-axis", "-20",
                 "-o", str(out)]) == 0
    record = json.loads((out / "series.json").read_text())
    assert record["n_views"] == 3 and len(record["pairs"]) == 2
    assert main(["reconstruct", "--series", str(path), "--tilts=-12,0,12", "--tilt-axis", "-20",
                 "-o", str(tmp_path / "first")]) == 1   # the first stack (5 views) does not fit 3 tilts
    assert "one tilt per view of the series (5)" in capsys.readouterr().err


def test_tilts_from_the_file_beside_the_stack_put_the_views_in_tilt_order(series, tmp_path, capsys):
    """A stack saved in another order than its tilts' (high to low here; dose-symmetric schemes too), with the
    IMOD/SerialEM tilt file beside it: the views are sorted by tilt, and series.json says which view is which."""
    stack = tmp_path / "reversed.tif"
    tifffile.imwrite(stack, tifffile.imread(series)[::-1], photometric="minisblack")
    (tmp_path / "reversed.rawtlt").write_text("12.0\n0.0\n-12.0\n")
    out = tmp_path / "out"
    assert main(["reconstruct", "--series", str(stack), "--tilt-axis", "-20", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "tilts from reversed.rawtlt, the views put in tilt order (stack indices [2, 1, 0])" in printed
    record = json.loads((out / "series.json").read_text())
    assert record["tilts_deg"] == [-12.0, 0.0, 12.0] and record["stack_index_of_view"] == [2, 1, 0]
    assert record["tilts_from"] == "reversed.rawtlt" and all(p["n_lines"] > 0 for p in record["pairs"])


@pytest.mark.parametrize("content, message", [
    ("-12\n0\n", "reversed.rawtlt holds 2 tilts but the stack has 3 views"),
    ("-12\nzero\n12\n", "reversed.rawtlt line 2: 'zero' is not a tilt in degrees"),
])
def test_a_wrong_tilt_file_is_named(series, tmp_path, capsys, content, message):
    stack = tmp_path / "reversed.tif"
    tifffile.imwrite(stack, tifffile.imread(series), photometric="minisblack")
    (tmp_path / "reversed.rawtlt").write_text(content)
    assert main(["reconstruct", "--series", str(stack), "-o", str(tmp_path / "x")]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("extra, message", [
    (["--tilts=-8,0"], "one tilt per view of the series (3)"),
    (["--tilts=0,0,8"], "two views have the same tilt (0 degrees)"),
    ([], "needs --angle STEP"),
    (["--angle", "8", "--shift=3,4"], "--shift and --points belong to one pair"),
    (["--angle", "8", "--no-rectify"], "--no-rectify cannot be used with --series"),
    (["--angle", "8", "--signal", "BF"], "is for microscope files that hold several"),
])
def test_series_options_are_checked(series, tmp_path, capsys, extra, message):
    assert main(["reconstruct", "--series", str(series), *extra, "-o", str(tmp_path / "x")]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # checked before any work


def test_series_and_two_views_together_are_refused(series, tmp_path, capsys):
    assert main(["reconstruct", str(series), str(series), "--series", str(series), "--angle", "8",
                 "-o", str(tmp_path / "x")]) == 1
    assert "one of LEFT RIGHT, --pairs LIST or --series STACK" in capsys.readouterr().err
    assert main(["reconstruct", str(series), str(series), "--signal", "1", "--angle", "8",
                 "-o", str(tmp_path / "x")]) == 1
    assert "--signal chooses the stack of a --series file" in capsys.readouterr().err


def test_the_core_reports_progress_and_a_failing_pair_does_not_stop_the_others(series):
    from napari_stereo_tem.progress import drive
    from napari_stereo_tem.stereo.series import reconstruct_series

    frames = list(read_stack(series))
    frames[2] = np.full_like(frames[2], 0.5)  # a blank last view: its pair cannot be reconstructed
    reports = []
    result = drive(reconstruct_series(frames, tilts_deg=[-12, 0, 12], tilt_axis_deg=TRUE_AXIS), reports.append)
    assert result.results[0] is not None and result.results[1] is None
    assert result.errors[0] is None and "constant" in result.errors[1]
    assert result.record()["pairs"][1]["error"] == result.errors[1]
    assert reports[-1].done == reports[-1].total == 2
    assert {r.stage for r in reports} == {"reconstruct views_00-01", "reconstruct views_01-02"}


@pytest.mark.parametrize("kwargs, message", [
    ({"tilts_deg": [0, 12]}, "one tilt per view of the series \\(3\\)"),
    ({"tilts_deg": [0, 0, 12]}, "must increase"),
    ({"tilts_deg": [-12, 0, 12], "stereo_angle_deg": 8}, "stereo_angle_deg cannot be given for a series"),
])
def test_the_core_checks_its_arguments(kwargs, message):
    from napari_stereo_tem.progress import drive
    from napari_stereo_tem.stereo.series import reconstruct_series

    frames = np.random.default_rng(0).random((3, 64, 64))
    with pytest.raises(InputError, match=message):
        drive(reconstruct_series(frames, **kwargs))


def _write_mrc(path, data: np.ndarray) -> None:
    """A minimal MRC2014 file of float32 sections (mode 2), as IMOD writes a tilt series."""
    nz, ny, nx = data.shape
    header = np.zeros(256, dtype="<i4")
    header[0:4] = [nx, ny, nz, 2]
    header[7:10] = [nx, ny, nz]
    header.view("<f4")[10:16] = [nx, ny, nz, 90, 90, 90]
    header[16:19] = [1, 2, 3]
    raw = header.view("u1")
    raw[208:212] = np.frombuffer(b"MAP ", dtype="u1")
    raw[212:216] = [0x44, 0x44, 0, 0]
    path.write_bytes(header.tobytes() + data.astype("<f4").tobytes())


def test_an_mrc_tilt_series_is_read_frame_by_frame(tmp_path):
    data = np.random.default_rng(0).random((3, 40, 50)).astype(np.float32)
    for suffix in (".mrc", ".st"):
        _write_mrc(tmp_path / f"tilts{suffix}", data)
        np.testing.assert_array_equal(read_stack(tmp_path / f"tilts{suffix}"), data)
    with pytest.raises(InputError, match="a tilt series needs at least two"):
        read_stack(data[:1], name="--series", what="a tilt series")
