"""A tiny matcher training run: progress, checkpoint, weights with metadata, resume."""

import numpy as np
import pytest

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.progress import drive
from napari_stereo_tem.training.matcher import stereo_crop, train_matcher


def test_stereo_crop_keeps_disparity_consistent():
    rng = np.random.default_rng(0)
    left = rng.random((64, 96)).astype(np.float32)
    k = 3
    right = np.roll(left, k, axis=1)  # right(x) = left(x - k): disparity +k everywhere
    mask = np.zeros_like(left, bool)
    mask[10:50, 30:60] = True
    pair = {"left": left, "right": right, "mask_left": mask, "mask_right": np.roll(mask, k, axis=1),
            "disparity": np.where(mask, float(k), np.nan).astype(np.float32)}
    for i in range(20):
        c = stereo_crop(pair, np.random.default_rng(i), crop=(32, 48), max_shift=4)
        ys, xs = np.nonzero(np.isfinite(c["disparity"]))
        # every labelled pixel must satisfy right(x + d) == left(x) up to the per-view brightness change
        d = c["disparity"][ys, xs].astype(int)
        inside = (xs + d >= 0) & (xs + d < 48)
        if inside.sum() > 10:
            a = c["left"][ys[inside], xs[inside]]
            b = c["right"][ys[inside], xs[inside] + d[inside]]
            assert np.corrcoef(a, b)[0, 1] > 0.8


def test_train_matcher_tiny_run_and_resume(tmp_path):
    out = tmp_path / "m"
    kwargs = dict(out_path=out, batch_size=1, crop=(64, 96), seed=0, width=4, n_hourglass=1, base_channels=4,
                  scene_shape=(128, 160), pool_size=1, n_val=1, val_every=2, n_threads=1)
    reports = []
    result = drive(train_matcher(steps=2, **kwargs), reports.append)
    assert [r.stage for r in reports].count("train") == 2
    assert (tmp_path / "m.safetensors").is_file() and (tmp_path / "m.json").is_file()
    import json

    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["seed"] == 0 and "epe" in meta["metric"] and meta["class"] == "StereoNet"
    result = drive(train_matcher(steps=3, resume=result["checkpoint"], **kwargs))
    assert result["history"][-1]["step"] == 3
    from napari_stereo_tem.stereo.matching import load_matcher

    model = load_matcher(str(tmp_path / "m.safetensors"))
    assert model.matcher.width == 4
    with pytest.raises(InputError):
        drive(train_matcher(steps=1, g_disp=0, g_var=0, g_warp=0, **kwargs))


def test_train_matcher_cli(tmp_path):
    from napari_stereo_tem.cli import main

    rc = main(["train", "matcher", "--steps", "1", "--batch-size", "1", "--crop", "64,96", "--pool-size", "1",
               "--scene-shape", "128,160", "--n-val", "1", "--threads", "1", "--g-var", "0",
               "--out", str(tmp_path / "cli_m")])
    assert rc == 0
    import json

    meta = json.loads((tmp_path / "cli_m.json").read_text())
    assert meta["command"].startswith("stereo-tem train matcher") and meta["loss_weights"]["g_var"] == 0.0
