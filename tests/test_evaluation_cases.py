"""`stereo-tem evaluate` on a tiny generated directory."""

import csv

import numpy as np
import pytest

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.cli import main
from napari_stereo_tem.evaluation.cases import evaluate_directory, find_cases
from napari_stereo_tem.evaluation.table import markdown_table, mean_row
from napari_stereo_tem.stereo.lines_io import write_lines_csv

STEREO_COLUMNS = ["case", "kind", "seg_precision", "seg_recall", "seg_f1", "cldice", "epe", "gt1", "gt3", "gt5",
                  "line_mean_px", "line_median_px", "depth_err_px", "depth_offset_px", "reproj_err_px"]


@pytest.fixture(scope="module")
def stereo_dir(tmp_path_factory):
    from napari_stereo_tem.synth import make_stereo_pair

    root = tmp_path_factory.mktemp("cases")
    for k, seed in enumerate((9_000_011, 9_000_013)):
        sample = make_stereo_pair(seed, shape=(96, 96), n_groups=1, dose=0)
        folder = sample.save(root / f"case{k}")
        # predictions: the true lines, the second case moved 6 px in depth (a free depth origin)
        lines = [np.asarray(v) + [0.0, 0.0, 6.0 * k] for v in sample.lines_3d]
        write_lines_csv(folder / "pred" / "lines.csv", lines)
    return root


def test_evaluate_writes_the_table_with_the_expected_columns(stereo_dir, tmp_path):
    assert main(["evaluate", str(stereo_dir), "--kind", "stereo", "-o", str(tmp_path)]) == 0
    with open(tmp_path / "evaluation.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["case"] for r in rows] == ["case0", "case1", "mean"]
    for col in STEREO_COLUMNS:
        assert col in rows[0], col
    for r in rows[:2]:
        assert float(r["line_mean_px"]) < 1e-3  # lines.csv keeps 4 decimals
        assert float(r["seg_f1"]) > 0.95
    assert float(rows[0]["epe"]) < 0.1
    # the disparity is not offset-corrected: 6 px of depth is 6 * 2 sin(4 deg) px of disparity
    assert float(rows[1]["epe"]) == pytest.approx(6 * 2 * np.sin(np.deg2rad(4)), abs=0.05)
    assert float(rows[1]["depth_offset_px"]) == pytest.approx(-6.0, abs=1e-3)
    text = (tmp_path / "evaluation.md").read_text()
    assert "| case | kind |" in text and "| mean | stereo |" in text


def test_depth_origin_can_be_kept(stereo_dir):
    rows = evaluate_directory(stereo_dir, remove_depth_offset=False)
    assert rows[1]["depth_err_px"] == pytest.approx(6.0, abs=1e-3)


def test_particle_case(tmp_path):
    from napari_stereo_tem.synth.particles import simulate_particle_views

    sample = simulate_particle_views(60, seed=9_000_021, shape=(160, 160), dose=None)
    folder = sample.save(tmp_path / "p0")
    (folder / "pred").mkdir()
    pts = np.column_stack([sample.positions + [0.0, 0.0, 2.0], sample.radii])[5:]  # 5 missed, depth moved
    # as stereo-tem particles writes it: the standard deviations after x,y,z,radius
    std = np.full((len(pts), 3), 0.3)
    np.savetxt(folder / "pred" / "points.csv", np.column_stack([pts, std]), delimiter=",",
               header="x,y,z,radius,std_x,std_y,std_z", comments="")
    rows = evaluate_directory(tmp_path, kind="particles")
    r = rows[0]
    assert r["precision"] == pytest.approx(1.0)
    assert 0.85 < r["recall"] < 1.0
    assert r["rmse_3d_px"] < 1e-6
    assert np.isfinite(r["g_rmse"])


def test_missing_predictions_and_empty_folder(stereo_dir, tmp_path):
    with pytest.raises(InputError, match="no stereo cases"):
        find_cases(tmp_path, kind="stereo")
    rows = evaluate_directory(stereo_dir, predictions=tmp_path / "nowhere")
    assert all("lines.csv is missing" in r["error"] for r in rows)


def test_table_helpers():
    rows = [{"case": "a", "x": 1.0, "n": 2}, {"case": "b", "x": float("nan"), "n": 4, "note": "z"}]
    m = mean_row(rows)
    assert m == {"case": "mean", "x": 1.0, "n": 3.0}
    text = markdown_table(rows + [m], digits=2)
    assert text.splitlines()[0] == "| case | x | n | note |"
    assert "| b | n/a | 4 | z |" in text
