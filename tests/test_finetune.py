"""Fine-tuning on the training set: the loss falls, the prediction follows the correction, cancel, resume, safety."""

import pickle

import numpy as np
import pytest
import torch

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.stereo.detection import predict_probability
from napari_stereo_tem.nets.matcher import StereoNet
from napari_stereo_tem.nets.unet import DislocationUNet
from napari_stereo_tem.progress import Cancelled, drive
from napari_stereo_tem.synth import make_stereo_pair
from napari_stereo_tem.training.finetune import checkpoint_path, finetune_detector, finetune_matcher, version_name
from napari_stereo_tem.models.training_set import add_entry
from napari_stereo_tem.models.store import (
    list_versions, load_detector, load_model, read_metadata, save_model, select_version, selected_version,
    user_models_dir,
)

TINY = {"steps": 40, "batch_size": 4, "crop": 64, "synth_fraction": 0.0, "lr": 3e-3, "n_threads": 1}


@pytest.fixture
def models(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    monkeypatch.setenv("NAPARI_STEREO_TEM_MODELS", str(folder))
    torch.manual_seed(0)
    save_model(DislocationUNet(base_channels=4, depth=3, n_classes=1), folder / "detector_tiny",
               {"command": "test: untrained tiny UNet"})
    return folder


@pytest.fixture
def corrected_set(tmp_path):
    """A synthetic view whose (deliberately wrong) segmentation was corrected, added to a set."""
    sample = make_stereo_pair(4321, shape=(96, 128))
    truth = (sample.mask_left == 1).astype(np.uint8)
    wrong = truth.copy()
    wrong[:, 64:] = 0  # the detector missed the lines of the right half...
    wrong[10:20, 10:30] = 1  # ...and painted a false blob
    corrected = truth  # the user's correction: the missed lines painted in, the blob erased
    assert (wrong != corrected).sum() > 100
    add_entry(tmp_path / "set", sample.left, corrected, right=sample.right, mask_right=(sample.mask_right == 1),
              disparity_left=np.where(truth == 1, sample.disparity_left, np.nan), source="synthetic seed 4321",
              stereo_angle_deg=sample.stereo_angle_deg, model_version="detector_tiny")
    return tmp_path / "set", sample.left, corrected


def _iou(prob, mask):
    pred, true = prob >= 0.5, mask == 1
    return float((pred & true).sum() / (pred | true).sum())


def _contrast(prob, mask):
    return float(prob[mask == 1].mean() - prob[mask == 0].mean())


def test_finetune_learns_the_correction(models, corrected_set):
    set_dir, image, corrected = corrected_set
    # the image as fine-tuning saw it (a tiny model's own choice of contrast and resize would be noise)
    seen = {"contrast": "bright_field", "scale": None}
    before = predict_probability(image, load_detector("detector_tiny"), **seen)
    reports = []
    result = drive(finetune_detector(set_dir, name="mine", init="detector_tiny", **TINY), reports.append)
    assert result["version"] == "detector_mine" and result["steps"] == 40
    losses = result["losses"]
    assert len(losses) == 40 and np.mean(losses[-8:]) < 0.8 * np.mean(losses[:8])
    assert all("loss" in r.info for r in reports if r.stage == "fine-tune detector")
    model = load_detector("detector_mine")
    after = predict_probability(image, model, **seen)
    # the prediction moves towards the correction: lines stand out more, the false blob fades
    assert _contrast(after, corrected) > _contrast(before, corrected) + 0.1
    assert _iou(after, corrected) > _iou(before, corrected) + 0.2
    blob = np.zeros(corrected.shape, bool)
    blob[10:20, 10:30] = True  # the erased false blob now reads as background, well below the lines
    assert after[blob & (corrected == 0)].mean() < after[corrected == 1].mean() - 0.1
    meta = read_metadata(result["path"])
    assert meta["init"] == "detector_tiny" and meta["kind"] == "detector"
    assert meta["entries"][0]["name"] == "entry-000001" and meta["steps"] == 40
    assert not checkpoint_path("detector_mine").exists()  # finished runs leave no checkpoint
    with pytest.raises(InputError, match="already exists"):
        drive(finetune_detector(set_dir, name="mine", init="detector_tiny", **TINY))


def test_cancel_stops_within_one_step_and_resume_continues(models, corrected_set):
    set_dir = corrected_set[0]
    seen = []

    def stop():
        return len(seen) >= 3

    with pytest.raises(Cancelled):
        drive(finetune_detector(set_dir, name="cut", init="detector_tiny", checkpoint_every=100, **TINY),
              seen.append, stop)
    assert [r.done for r in seen] == [1, 2, 3]  # no step ran after the request
    ckpt = checkpoint_path("detector_cut")
    assert ckpt.is_file() and torch.load(ckpt, weights_only=True)["step"] == 3
    assert "detector_cut" not in list_versions("detector")
    resumed = []
    result = drive(finetune_detector(set_dir, name="cut", init="detector_tiny", resume=True, **TINY), resumed.append)
    assert resumed[0].done == 4 and result["steps"] == 40 and len(result["losses"]) == 40
    assert "detector_cut" in list_versions("detector")


def test_selector_chooses_the_version_the_pipeline_loads(models, corrected_set):
    assert selected_version("detector") is None
    drive(finetune_detector(corrected_set[0], name="picked", init="detector_tiny", **{**TINY, "steps": 2}))
    select_version("detector", "detector_picked")
    assert selected_version("detector") == "detector_picked"
    assert load_detector().version == "detector_picked"
    with pytest.raises(InputError, match="not found"):
        select_version("detector", "detector_nope")
    select_version("detector", None)
    assert load_detector().version != "detector_picked"


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_weights_that_carry_code_are_refused(models, corrected_set, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    state = DislocationUNet(base_channels=4, depth=3).state_dict()
    state["payload"] = _Payload(str(marker))
    torch.save(state, evil)
    with pytest.raises(InputError, match="pickled code"):
        load_detector(str(evil))
    with pytest.raises(InputError, match="pickled code"):
        load_model(DislocationUNet, evil)
    with pytest.raises(InputError, match="pickled code"):
        drive(finetune_detector(corrected_set[0], name="x", init=str(evil), **TINY))
    disguised = tmp_path / "disguised.safetensors"
    disguised.write_bytes(pickle.dumps(_Payload(str(marker))))
    with pytest.raises(InputError, match="safetensors"):
        load_detector(str(disguised))
    # a checkpoint carrying code is refused too
    checkpoint_path("detector_y").parent.mkdir(parents=True, exist_ok=True)
    torch.save({"version": "detector_y", "payload": _Payload(str(marker))}, checkpoint_path("detector_y"))
    with pytest.raises(InputError, match="pickled code"):
        drive(finetune_detector(corrected_set[0], name="y", init="detector_tiny", resume=True, **TINY))
    assert not marker.exists()


def test_version_names_and_empty_set(models, tmp_path):
    assert version_name("foil2", "detector") == "detector_foil2"
    assert version_name("matcher_a", "matcher") == "matcher_a"
    with pytest.raises(InputError, match="letters"):
        version_name("../escape", "detector")
    with pytest.raises(InputError, match="no entries"):
        drive(finetune_detector(tmp_path / "empty", name="e", init="detector_tiny", **TINY))
    assert user_models_dir() == models


def test_finetune_matcher_on_linked_disparities(models, corrected_set):
    torch.manual_seed(0)
    net = StereoNet(unet={"base_channels": 4, "depth": 4, "n_classes": 1},
                    matcher={"width": 4, "n_hourglass": 1, "disparity_range": (-16, 16)})
    save_model(net, models / "matcher_tiny")
    reports = []
    result = drive(finetune_matcher(corrected_set[0], name="mine", init="matcher_tiny", steps=4, batch_size=2,
                                    crop=(64, 96), synth_fraction=0.0, n_threads=1), reports.append)
    assert result["version"] == "matcher_mine" and len(result["losses"]) == 4
    assert np.isfinite(result["losses"]).all()
    assert [r.done for r in reports] == [1, 2, 3, 4]
    from napari_stereo_tem.stereo.matching import load_matcher

    assert load_matcher("matcher_mine").version == "matcher_mine"
    assert read_metadata(result["path"])["kind"] == "matcher"


def test_cli_train_from_set(models, corrected_set, capsys):
    from napari_stereo_tem.cli import main

    set_dir = str(corrected_set[0])
    code = main(["train", "detector", "--from-set", set_dir, "--init", "detector_tiny", "--name", "cli",
                 "--steps", "3", "--batch-size", "2", "--crop", "64", "--synth-fraction", "0", "--threads", "1"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "detector_cli" in out.out and "detector_cli" in list_versions("detector")
    assert read_metadata(models / "detector_cli.safetensors")["command"].startswith("stereo-tem train detector")
    assert main(["train", "detector", "--from-set", set_dir, "--init", "detector_tiny"]) == 1
    assert "--name" in capsys.readouterr().err
    torch.manual_seed(0)
    save_model(StereoNet(unet={"base_channels": 4, "depth": 4, "n_classes": 1},
                         matcher={"width": 4, "n_hourglass": 1, "disparity_range": (-16, 16)}),
               models / "matcher_tiny")
    code = main(["train", "matcher", "--from-set", set_dir, "--init", "matcher_tiny", "--name", "cli",
                 "--steps", "2", "--batch-size", "1", "--crop", "64,96", "--synth-fraction", "0", "--threads", "1"])
    assert code == 0, capsys.readouterr().err
    assert "matcher_cli" in list_versions("matcher")


def test_touching_instances_get_a_valley_in_the_training_mask(tmp_path):
    from napari_stereo_tem.training.finetune import detector_samples, separate_instances

    labels = np.zeros((20, 20), np.uint8)
    labels[:, 5:12] = 1                 # one merged band painted over two dislocations
    labels[2, 15] = 2                   # a distractor pixel stays
    instances = np.zeros_like(labels, dtype=np.int32)
    instances[:, 5:8], instances[:, 9:12] = 1, 2   # the user split them, 1 px apart
    out = separate_instances(labels, instances)
    assert (out[:, 8] == 0).all()                                    # the valley between the two
    assert (out[:, 5:8] == 1).all() and (out[:, 9:12] == 1).all() and out[2, 15] == 2
    touching = instances.copy()
    touching[:, 8] = 2                                               # no gap: both sides of the seam go
    assert (separate_instances(labels, touching)[:, 7:9] == 0).all()
    assert separate_instances(labels, None) is labels
    one = np.where(labels == 1, 3, 0)            # one instance only: nothing to separate
    np.testing.assert_array_equal(separate_instances(labels, one), labels)
    with pytest.raises(InputError, match="instances"):
        separate_instances(labels, instances[:, :10])

    image = np.random.default_rng(0).random((20, 20)).astype(np.float32)
    add_entry(tmp_path / "set", image, labels, instances_left=instances, source="test")
    ((_, mask),) = detector_samples(tmp_path / "set")
    np.testing.assert_array_equal(mask, out)     # fine-tuning reads the stored instances
