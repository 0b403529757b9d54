"""``stereo-tem virtual``: files, order, dtype, detectors.json."""

import json

import numpy as np
import pytest

from napari_stereo_tem.cli import main
from napari_stereo_tem.fourdstem import disc_mask


def _dataset(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 50, (6, 5, 32, 32), dtype=np.uint16)
    yy, xx = np.mgrid[:32, :32]
    data += (((yy - 15.6) ** 2 + (xx - 16.2) ** 2) <= 8.0**2) * np.uint16(1000)
    np.save(tmp_path / "d.npy", data)
    return data


def test_virtual_writes_images_and_detectors_json(tmp_path, capsys):
    import tifffile

    data = _dataset(tmp_path)
    discs = [(15.6, 12.2, 3.0), (15.6, 20.2, 3.0), (10, 16, 2.5)]
    args = ["virtual", str(tmp_path / "d.npy"), "--convergence-mrad", "24", "-o", str(tmp_path / "out")]
    for d in discs:
        args += ["--disc", ",".join(map(str, d))]
    assert main(args) == 0
    for i, (cy, cx, r) in enumerate(discs):
        image = tifffile.imread(tmp_path / "out" / f"virtual_{i:02d}.tif")
        assert image.dtype == np.float32 and image.shape == (6, 5)
        ref = (data.astype(np.float64) * disc_mask((32, 32), cy, cx, r)).sum(axis=(2, 3))
        np.testing.assert_allclose(image, ref, rtol=1e-6)
    record = json.loads((tmp_path / "out" / "detectors.json").read_text())
    assert [d["cx"] for d in record["discs"]] == [12.2, 20.2, 16.0]
    cal = record["calibration"]
    assert cal["direct_beam"]["radius"] == pytest.approx(8.0, abs=0.5)
    assert cal["mrad_per_px"] == pytest.approx(24 / cal["direct_beam"]["radius"])
    pair = record["pairs"][0]
    assert pair["pair"] == [0, 1]
    assert pair["stereo_angle_deg"] == pytest.approx(np.rad2deg(8.0 * cal["mrad_per_px"] * 1e-3))
    assert len(record["pairs"]) == 3 and pair["epipolar_direction_deg"] == pytest.approx(0)
    assert "0-1:" in capsys.readouterr().out


def test_virtual_bad_input_is_one_line(tmp_path, capsys):
    np.save(tmp_path / "three.npy", np.zeros((4, 8, 8), np.uint8))
    assert main(["virtual", str(tmp_path / "three.npy"), "--disc", "4,4,2", "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "3D" in err and "Traceback" not in err
    _dataset(tmp_path)
    assert main(["virtual", str(tmp_path / "d.npy"), "--disc", "4,4", "-o", str(tmp_path / "o")]) == 1
    assert "CY,CX,R" in capsys.readouterr().err
    assert not (tmp_path / "o" / "detectors.json").exists()
