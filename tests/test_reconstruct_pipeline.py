"""End-to-end reconstruction on a small synthetic pair with stand-in models (no shipped weights needed)."""

import json

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.stereo.lines_io import LINES_HEADER, read_lines_csv, read_lines_table, write_lines_csv
from napari_stereo_tem.nets.matcher import StereoNet
from napari_stereo_tem.stereo.pipeline import STAGES, lines_from_disparity, load_reconstruction, reconstruct


class DarkLineDetector(nn.Module):
    """Stand-in detector: a pixel is 'dislocation' when it is clearly darker than its neighbourhood."""

    n_classes = 1
    size_multiple = 8

    def __init__(self):
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(40.0))

    def forward(self, x):
        return self.gain * (F.avg_pool2d(x, 9, stride=1, padding=4, count_include_pad=False) - x - 0.12)


@pytest.fixture(scope="module")
def pair():
    from napari_stereo_tem.synth import make_stereo_pair

    return make_stereo_pair(11, shape=(128, 160), stereo_angle_deg=8.0, dose=0)


@pytest.fixture(scope="module")
def matcher():
    torch.manual_seed(0)
    return StereoNet(unet={"base_channels": 4}, matcher={"width": 4, "n_hourglass": 1,
                                                        "disparity_range": (-12, 12)}).eval()


@pytest.mark.slow  # the first skeleton call compiles skan's numba kernels (~15 s)
def test_reconstruct_writes_contract_files(pair, matcher, tmp_path):
    seen = []
    result = reconstruct(pair.left, pair.right, stereo_angle_deg=8.0, pixel_size=2.5, detector=DarkLineDetector(),
                         matcher=matcher, rectify=True, tilt_axis_deg=0.0, on_progress=lambda p: seen.append(p.stage))
    assert tuple(seen) == STAGES
    assert result.disparity.shape == pair.left.shape and result.labels_left.dtype == np.uint8
    for line in result.lines:
        assert line.ndim == 2 and line.shape[1] == 3 and np.isfinite(line).all()
    folder = result.save(tmp_path / "out")
    # the contract's four columns first, then each point's depth standard deviation
    assert (folder / "lines.csv").read_text().splitlines()[0] == "line_id,x,y,z,depth_std"
    lines, extra = read_lines_table(folder / "lines.csv")
    assert len(extra["depth_std"]) == len(lines) == len(result.lines)
    assert all(len(s) == len(line) and np.all(s > 0) for s, line in zip(extra["depth_std"], lines))
    assert (folder / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = json.loads((folder / "result.json").read_text())
    assert set(STAGES) <= set(record["timings_s"])
    prov = record["provenance"]
    assert prov["stereo_angle_deg"] == 8.0 and prov["pixel_size_nm"] == 2.5 and prov["rectify"] is True
    assert record["rectification"]["n_inliers"] > 0 and "theta_deg" in record["rectification"]
    assert prov["matcher"]["class"] == "StereoNet" and "parameters" in prov
    lines, record2 = load_reconstruction(folder)
    assert len(lines) == len(result.lines) and record2["summary"]["n_lines"] == len(result.lines)


def test_reconstruct_cli_writes_files_when_nothing_is_detected(pair, matcher, tmp_path):
    import tifffile

    from napari_stereo_tem.cli import main
    from napari_stereo_tem.nets.unet import DislocationUNet
    from napari_stereo_tem.models.store import save_model

    torch.manual_seed(0)
    det = DislocationUNet(base_channels=4)
    with torch.no_grad():
        det.head.bias.fill_(-20.0)  # detects nothing: the pipeline must still write every file
    save_model(det, tmp_path / "det")
    save_model(matcher, tmp_path / "match")
    left, right = tmp_path / "l.tif", tmp_path / "r.tif"
    tifffile.imwrite(left, pair.left)
    tifffile.imwrite(right, pair.right)
    rc = main(["reconstruct", str(left), str(right), "--angle", "8", "--no-rectify", "--detector",
               str(tmp_path / "det.safetensors"), "--matcher", str(tmp_path / "match.safetensors"),
               "-o", str(tmp_path / "out"), "--disparity-range=-8,8"])
    assert rc == 0
    assert read_lines_csv(tmp_path / "out" / "lines.csv") == []
    record = json.loads((tmp_path / "out" / "result.json").read_text())
    assert record["provenance"]["parameters"]["disparity_range"] == [-8, 8]
    assert record["provenance"]["detector"]["class"] == "DislocationUNet"


def test_reconstruct_bad_input(pair, matcher, tmp_path):
    det = DarkLineDetector()
    with pytest.raises(InputError, match="differ in shape"):
        reconstruct(pair.left, pair.right[:, :-8], stereo_angle_deg=8.0, detector=det, matcher=matcher)
    with pytest.raises(InputError, match="non-zero"):
        reconstruct(pair.left, pair.right, stereo_angle_deg=0.0, detector=det, matcher=matcher)
    with pytest.raises(InputError, match="not found"):
        reconstruct(pair.left, pair.right, stereo_angle_deg=8.0, detector="no_such_detector_v9", matcher=matcher)
    from napari_stereo_tem.cli import main

    assert main(["reconstruct", str(tmp_path / "missing.tif"), str(tmp_path / "missing2.tif"), "--angle", "8",
                 "-o", str(tmp_path / "o")]) == 1


def test_lines_follow_the_skeleton_and_triangulate():
    mask = np.zeros((40, 40), bool)
    mask[5:35, 20] = True
    disparity = np.where(mask, 2.0, np.nan)
    disparity[18:21, 20] = np.nan  # a gap splits the line
    lines = lines_from_disparity(mask, disparity, 8.0, smooth_sigma=0)
    assert len(lines) == 2
    z = 2.0 / (2 * np.sin(np.deg2rad(4.0)))
    for line in lines:
        np.testing.assert_allclose(line[:, 2], z, rtol=1e-6)
        assert np.all(np.abs(np.diff(line[:, 1])) == 1)  # ordered along the line
    # with the positions the disparities were measured from, the points move there
    positions = np.where(mask, 20.4, np.nan)
    shifted = lines_from_disparity(mask, disparity, 8.0, smooth_sigma=0, positions=positions)
    for plain, moved in zip(lines, shifted):
        np.testing.assert_allclose(moved[:, 0] - plain[:, 0], 0.4 / np.cos(np.deg2rad(4.0)), atol=1e-9)
        np.testing.assert_allclose(moved[:, 2], plain[:, 2], atol=1e-9)


def test_lines_csv_round_trip(tmp_path):
    lines = [np.array([[1.0, 2.0, 3.0], [1.5, 3.0, 3.5]]), np.array([[0.0, 0.0, -1.0]])]
    path = write_lines_csv(tmp_path / "lines.csv", lines)
    assert path.read_text().splitlines()[0] == LINES_HEADER
    back = read_lines_csv(path)
    assert len(back) == 2 and np.allclose(back[0], lines[0]) and np.allclose(back[1], lines[1])
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError):
        read_lines_csv(tmp_path / "bad.csv")


def test_one_writer_for_2d_and_3d_line_tables(tmp_path):
    write_lines_csv(tmp_path / "flat.csv", [np.array([[1.0, 2.0], [3.25, 4.5]])], decimals=3)
    assert (tmp_path / "flat.csv").read_text() == "line_id,x,y\n0,1.000,2.000\n0,3.250,4.500\n"
    write_lines_csv(tmp_path / "deep.csv", [np.array([[1.0, 2.0, 3.0]]), np.array([[0.5, 0.5, -1.0]])], decimals=6)
    assert read_lines_csv(tmp_path / "deep.csv")[1].tolist() == [[0.5, 0.5, -1.0]]
    assert "0,1.000000,2.000000,3.000000" in (tmp_path / "deep.csv").read_text()
    with pytest.raises(InputError, match="line 1"):
        write_lines_csv(tmp_path / "mixed.csv", [np.zeros((2, 3)), np.zeros((2, 2))])


def test_line_search_and_disparity_std_limit_are_options_of_the_fit(pair, matcher):
    options = dict(stereo_angle_deg=8.0, detector=DarkLineDetector(), matcher=matcher, rectify=False)
    plain = reconstruct(pair.left, pair.right, **options)
    unlimited = reconstruct(pair.left, pair.right, line_search=True, **options)
    searched = reconstruct(pair.left, pair.right, line_search=True, max_disparity_std=0.5, **options)
    # the untrained stand-in matcher is mostly wrong: searching along each whole line recovers more of them
    assert sum(map(len, unlimited.lines)) > sum(map(len, plain.lines)) > 0
    depth_per_disparity = 1 / (2 * np.sin(np.deg2rad(4.0)))
    assert max(s.max() for s in unlimited.line_depth_std) > 0.5 * depth_per_disparity
    assert searched.lines
    params = searched.provenance["parameters"]
    assert params["line_search"] is True and params["max_disparity_std"] == 0.5
    assert plain.provenance["parameters"]["line_search"] is False
    for line, std in zip(searched.lines, searched.line_depth_std):
        assert len(std) == len(line) and np.isfinite(line).all()
        assert np.all(std <= 0.5 * depth_per_disparity + 1e-9)
