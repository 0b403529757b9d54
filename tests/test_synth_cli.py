"""``stereo-tem synth``: each kind writes its files."""

from __future__ import annotations

import json

import numpy as np

from napari_stereo_tem.cli import main


def test_cli_synth_stereo(tmp_path):
    out = tmp_path / "pair"
    assert main(["synth", "stereo", "--seed", "9000000", "--shape", "64,80", "--angle", "6", "--loops",
                 "-o", str(out)]) == 0
    for name in ("left.tif", "right.tif", "mask_left.tif", "mask_right.tif", "disparity_left.tif",
                 "disparity_right.tif", "lines_3d.csv", "params.json"):
        assert (out / name).exists(), name
    params = json.loads((out / "params.json").read_text())
    assert params["seed"] == 9000000 and params["stereo_angle_deg"] == 6.0
    assert (out / "lines_3d.csv").read_text().startswith("line_id,x,y,z\n")


def test_cli_synth_4dstem(tmp_path):
    out = tmp_path / "4d"
    assert main(["synth", "4dstem", "--seed", "9000001", "--scan", "20,24", "--detector", "16,16",
                 "--radius", "5", "-o", str(out)]) == 0
    data = np.load(out / "data.npy", mmap_mode="r")
    assert data.shape == (20, 24, 16, 16)
    params = json.loads((out / "params.json").read_text())
    assert params["mrad_per_px"] == 4.0 and len(params["centre"]) == 2
    assert (out / "lines_3d.csv").exists()


def test_cli_synth_bad_input_is_one_line(tmp_path, capsys):
    assert main(["synth", "stereo", "--shape", "64", "-o", str(tmp_path / "x")]) == 1
    assert "--shape" in capsys.readouterr().err


def test_cli_synth_particles(tmp_path):
    out = tmp_path / "particles"
    assert main(["synth", "particles", "--seed", "9000002", "--n-particles", "10", "--shape", "96,96",
                 "-o", str(out)]) == 0
    assert any(out.iterdir())


def test_cli_synth_dataset(tmp_path):
    out = tmp_path / "ts"
    assert main(["synth", "dataset", "-n", "3", "--shape", "40,48", "--seed", "2", "-o", str(out)]) == 0
    assert (out / "layout.json").exists() and (out / "train" / "index.csv").exists()
