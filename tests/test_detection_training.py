"""Detector training: augmentation, loss falling, checkpoints and resume, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_stereo_tem.progress import drive
from napari_stereo_tem.training.detector import train_detector
from napari_stereo_tem.training.detector_data import augment_sample
from napari_stereo_tem.models.store import load_model, read_metadata


def tiny_scene(seed: int, shape=(64, 64)) -> list:
    """A stand-in for the synthetic generator: dark random lines on a smooth background."""
    import cv2

    rng = np.random.default_rng(seed)
    rows, cols = shape
    yy, xx = np.mgrid[:rows, :cols]
    background = 0.6 + 0.1 * np.sin(xx / rng.uniform(5, 15) + rng.uniform(0, 6))
    views = []
    for shift in (0, 3):
        mask = np.zeros(shape, np.uint8)
        for _ in range(2):
            pts = np.stack([rng.uniform(0, cols, 3), rng.uniform(0, rows, 3)], 1).astype(np.int32)
            cv2.polylines(mask, [pts + [shift, 0]], False, 1, thickness=2)
        image = background - 0.3 * mask + 0.03 * rng.standard_normal(shape)
        views.append((image.astype(np.float32), mask))
    return views


def test_augment_sample_shapes_and_mask_values():
    image, mask = tiny_scene(0)[0]
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, m = augment_sample(image, mask, rng, crop=48, invert_prob=0.5)
        assert a.shape == m.shape == (48, 48) and a.dtype == np.float32
        assert set(np.unique(m)) <= {0, 1}


@pytest.mark.slow
def test_training_loss_falls_and_resumes(tmp_path):
    from napari_stereo_tem.synth.seeds import TEST_SEEDS, TRAIN_SEEDS, VAL_SEEDS

    scene_seeds = []

    def recording_source(seed):
        scene_seeds.append(int(seed))
        return tiny_scene(seed)

    out = tmp_path / "det"
    kwargs = dict(out_path=out, batch_size=4, crop=48, seed=0, n_threads=1, lr=3e-3, val_every=20, n_val=2,
                  pool_size=4, base_channels=4, n_classes=1, scene_source=recording_source, command="test")
    losses = []
    result = drive(train_detector(steps=40, **kwargs),
                   lambda p: losses.append(p.info["loss"]) if p.stage == "train" else None)
    assert len(losses) == 40
    # scenes come from the train and validation ranges only, never from the test range
    assert any(s in TRAIN_SEEDS for s in scene_seeds) and any(s in VAL_SEEDS for s in scene_seeds)
    assert not any(s in TEST_SEEDS for s in scene_seeds)
    assert np.mean(losses[-8:]) < 0.9 * np.mean(losses[:4])
    assert [h["step"] for h in result["history"]] == [20, 40]
    weights = out.with_suffix(".safetensors")
    meta = read_metadata(weights)
    assert meta["command"] == "test" and meta["seed"] == 0 and "val_centreline_f1_2px" in meta["metric"]
    model = load_model(__import__("napari_stereo_tem.nets", fromlist=["x"]).DislocationUNet, weights)
    assert model.n_classes == 1

    # a run stopped after its step-20 checkpoint and resumed ends with the same weights as the full run
    from napari_stereo_tem.progress import Cancelled

    kwargs["out_path"] = tmp_path / "again"
    seen = []
    with pytest.raises(Cancelled):
        drive(train_detector(steps=40, **kwargs), seen.append,
              lambda: bool(seen) and seen[-1].stage == "train" and seen[-1].done == 20)
    checkpoint = tmp_path / "again.ckpt.pt"
    assert torch.load(checkpoint, weights_only=True)["step"] == 20
    kwargs["out_path"] = tmp_path / "resumed"
    resumed = drive(train_detector(steps=40, resume=checkpoint, **kwargs))
    assert [h["step"] for h in resumed["history"]] == [20, 40]
    full = torch.load(result["checkpoint"], weights_only=True)["model"]
    again = torch.load(resumed["checkpoint"], weights_only=True)["model"]
    for key in full:
        assert torch.allclose(full[key].float(), again[key].float(), atol=1e-4), key


@pytest.mark.slow
def test_cli_train_detector_tiny(tmp_path, capsys):
    from napari_stereo_tem.cli import main

    out = tmp_path / "cli_det"
    code = main(["train", "detector", "--steps", "2", "--batch-size", "2", "--crop", "32", "--pool-size", "1",
                 "--val-every", "2", "--seed", "5", "--threads", "1", "--out", str(out)])
    assert code == 0
    assert "best validation centreline F1" in capsys.readouterr().out
    meta = read_metadata(out.with_suffix(".safetensors"))
    assert meta["command"].startswith("stereo-tem train detector --steps 2 ") and meta["seed"] == 5
    assert meta["architecture"]["n_classes"] == 2
    assert meta["recipe"]["loop"] == "training.loop.Trainer" and meta["recipe"]["grad_clip_norm"] > 0
    assert main(["train", "detector", "--steps", "2", "--crop", "30", "--out", str(out)]) == 1
