"""Weight-space averaging of two versions of one network (``stereo-tem train average``)."""

import json

import numpy as np
import pytest
import torch

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.cli import main
from napari_stereo_tem.models.store import load_detector, save_model
from napari_stereo_tem.nets.unet import DislocationUNet
from napari_stereo_tem.training.average import average_weights


def _model(seed: int, **arch) -> DislocationUNet:
    torch.manual_seed(seed)
    model = DislocationUNet(base_channels=4, depth=3, n_classes=2, **arch)
    with torch.no_grad():  # BatchNorm statistics that differ between the two
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
                module.num_batches_tracked.fill_(10 * seed + 1)
    return model


@pytest.fixture
def two_versions(tmp_path):
    base, tuned = _model(1), _model(2)
    a = save_model(base, tmp_path / "base", {"command": "train base", "postprocess": {"threshold": 0.6}})
    b = save_model(tuned, tmp_path / "tuned", {"command": "train tuned", "init": str(a)})
    return base, tuned, a, b


def test_average_is_the_weighted_mean_of_the_float_tensors_and_keeps_the_base_counters(two_versions, tmp_path):
    base, tuned, a, b = two_versions
    out = average_weights(a, b, weight=0.25, out_path=tmp_path / "mixed")
    mixed = load_detector(str(out))
    sa, sb, sm = base.state_dict(), tuned.state_dict(), mixed.state_dict()
    for name, value in sm.items():
        if value.is_floating_point():
            np.testing.assert_allclose(value.numpy(), 0.75 * sa[name].numpy() + 0.25 * sb[name].numpy(),
                                       rtol=1e-6, atol=1e-7)
        else:
            assert torch.equal(value, sa[name]), name
    assert any(not torch.equal(sm[k], sa[k]) for k in sm if sm[k].is_floating_point())
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["averaged"]["weight_of_tuned"] == 0.25
    assert meta["averaged"]["tuned_metadata"]["init"] == str(a)
    assert meta["postprocess"]["threshold"] == 0.6  # the base's, marked to be retuned
    assert "retune" in meta["postprocess"]["note"]
    with torch.no_grad():  # the average is a working network of the same shape
        assert mixed(torch.zeros(1, 1, 32, 32)).shape == (1, 2, 32, 32)


def test_weight_zero_and_one_give_the_end_points(two_versions, tmp_path):
    base, tuned, a, b = two_versions
    for weight, model in ((0.0, base), (1.0, tuned)):
        out = average_weights(a, b, weight=weight, out_path=tmp_path / f"w{weight}")
        state = load_detector(str(out)).state_dict()
        for name, value in state.items():
            if value.is_floating_point():
                assert torch.equal(value, model.state_dict()[name]), (weight, name)


def test_refuses_bad_weights_other_networks_and_an_existing_output(two_versions, tmp_path):
    _, _, a, b = two_versions
    with pytest.raises(InputError, match="between 0 and 1"):
        average_weights(a, b, weight=1.5, out_path=tmp_path / "x")
    with pytest.raises(InputError, match="number"):
        average_weights(a, b, weight="half", out_path=tmp_path / "x")
    other = save_model(DislocationUNet(base_channels=8, depth=3, n_classes=2), tmp_path / "other")
    with pytest.raises(InputError, match="different networks"):
        average_weights(a, other, weight=0.5, out_path=tmp_path / "x")
    out = average_weights(a, b, weight=0.5, out_path=tmp_path / "kept")
    before = out.read_bytes()
    with pytest.raises(InputError, match="exists"):
        average_weights(a, b, weight=0.3, out_path=tmp_path / "kept")
    assert out.read_bytes() == before
    average_weights(a, b, weight=0.3, out_path=tmp_path / "kept", overwrite=True)
    assert out.read_bytes() != before


def test_cli_average(two_versions, tmp_path, capsys):
    _, _, a, b = two_versions
    assert main(["train", "average", str(a), str(b), "--weight", "0.5", "--out", str(tmp_path / "cli")]) == 0
    meta = json.loads((tmp_path / "cli.json").read_text())
    assert meta["command"].startswith("stereo-tem train average")
    assert "--weight 0.5" in meta["command"]
    assert main(["train", "average", str(a), str(b), "--weight", "2", "--out", str(tmp_path / "bad")]) != 0
    assert "between 0 and 1" in capsys.readouterr().err
    assert not (tmp_path / "bad.safetensors").exists()


def test_postprocess_tuned_on_several_validation_mixes_takes_the_mean(two_versions):
    from napari_stereo_tem.training.detector import tune_postprocess

    _, _, a, _ = two_versions
    record = tune_postprocess(a, n_val=1, thresholds=(0.5, 0.7), min_sizes=(0,), data="stereo,wide")
    per = record["grid_per_data"]
    assert set(per) == {"stereo", "wide"}
    for key, value in record["grid"].items():
        assert value == pytest.approx((per["stereo"][key] + per["wide"][key]) / 2, abs=1e-4)
    assert record["grid"][f"{record['threshold']}/{record['min_size']}"] == max(record["grid"].values())
    assert json.loads(a.with_suffix(".json").read_text())["postprocess"]["threshold"] == record["threshold"]
    with pytest.raises(InputError, match="mixes"):
        tune_postprocess(a, n_val=1, data="stereo,bogus")
