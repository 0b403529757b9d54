"""Detector network, inference, post-processing, metrics and weights I/O."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.stereo.detection import (
    normalise_image,
    predict_probability,
    probability_to_labels,
    skeleton_polylines,
)
from napari_stereo_tem.evaluation.metrics import centreline_scores, cl_dice
from napari_stereo_tem.nets import DislocationUNet
from napari_stereo_tem.models.store import list_versions, load_detector, load_model, save_model


def _tiny_model(seed=0, **kwargs):
    torch.manual_seed(seed)
    model = DislocationUNet(base_channels=4, **kwargs)
    # give BatchNorm non-trivial running statistics so eval mode is exercised
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(2, 1, 32, 32))
    return model.eval()


def _line_image(rows=96, cols=96, seed=0):
    rng = np.random.default_rng(seed)
    image = 0.7 + 0.05 * rng.standard_normal((rows, cols))
    mask = np.zeros((rows, cols), np.uint8)
    mask[:, cols // 3] = 1
    mask[rows // 2, :] = 1
    image[mask == 1] -= 0.4
    return image.astype(np.float32), mask


def test_default_size_and_forward_shapes():
    model = DislocationUNet()
    n_params = sum(p.numel() for p in model.parameters())
    assert 200_000 < n_params < 2_000_000
    x = torch.rand(2, 1, 64, 40)
    logits, features = model.forward_with_features(x)
    assert logits.shape == (2, 1, 64, 40)
    assert features.shape == (2, model.feature_channels, 16, 10)
    assert model.features(x).shape == features.shape
    assert torch.allclose(model.features(x), features)


def test_two_classes_and_bad_sizes():
    model = DislocationUNet(base_channels=4, n_classes=2)
    assert model(torch.rand(1, 1, 24, 16)).shape == (1, 2, 24, 16)
    with pytest.raises(ValueError, match="multiples of 8"):
        model(torch.rand(1, 1, 30, 32))
    with pytest.raises(ValueError):
        DislocationUNet(depth=2)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64, np.int32])
def test_normalise_any_dtype(dtype):
    image, _ = _line_image()
    scaled = (image * 200).clip(0, 255).astype(dtype)
    out = normalise_image(scaled, contrast="bright_field")
    assert out.dtype == np.float32 and out.shape == image.shape
    assert 0.0 <= out.min() and out.max() <= 1.0 and out.max() - out.min() > 0.9


def test_normalise_dark_field_inverts_and_auto_detects_contrast():
    image, mask = _line_image()
    bright = normalise_image(image, contrast="bright_field")
    assert bright[mask == 1].mean() < bright[mask == 0].mean()
    dark = normalise_image(1.0 - image, contrast="dark_field")
    assert np.allclose(dark, bright, atol=0.02)
    assert normalise_image(1.0 - image, contrast="auto")[mask == 1].mean() < 0.3
    assert normalise_image(image, contrast="auto")[mask == 1].mean() < 0.3
    with pytest.raises(InputError, match="contrast"):
        normalise_image(image, contrast="weird")
    with pytest.raises(InputError):
        normalise_image(np.zeros((5, 5, 5)))


def test_tiled_prediction_matches_untiled():
    model = _tiny_model()
    rng = np.random.default_rng(1)
    image = rng.random((150, 200)).astype(np.float32)
    whole = predict_probability(image, model, tile=512, contrast="bright_field")
    tiled = predict_probability(image, model, tile=96, overlap=40, contrast="bright_field")
    assert whole.shape == tiled.shape == (150, 200) and whole.dtype == np.float32
    assert np.abs(whole - tiled).mean() < 0.01
    assert np.abs(whole - tiled).max() < 0.1


def test_prediction_cpu_any_size_and_dtype():
    model = _tiny_model(n_classes=2)
    image = (np.random.default_rng(2).random((37, 51)) * 4000).astype(np.uint16)
    prob = predict_probability(image, model, n_threads=1)
    assert prob.shape == (37, 51) and 0 <= prob.min() and prob.max() <= 1
    both = predict_probability(image, model, all_classes=True)
    assert both.shape == (2, 37, 51)
    labels = probability_to_labels(both, threshold=0.5)
    assert labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1, 2}


def test_probability_to_labels():
    prob = np.array([[0.1, 0.5], [0.9, 0.49]], np.float32)
    assert probability_to_labels(prob).tolist() == [[0, 1], [1, 0]]
    two = np.stack([prob, np.array([[0.9, 0.9], [0.0, 0.0]])])
    assert probability_to_labels(two).tolist() == [[2, 1], [1, 0]]
    specks = np.zeros((20, 20), np.float32)
    specks[2, 2] = 1.0
    specks[10, 3:15] = 0.9
    cleaned = probability_to_labels(specks, min_size=5)
    assert cleaned[2, 2] == 0 and cleaned[10, 3:15].all()


def _y_junction():
    mask = np.zeros((60, 60), bool)
    mask[5:30, 30] = True
    for i in range(25):
        mask[30 + i, 30 - i] = True
        mask[30 + i, 30 + i] = True
    return mask


def test_skeleton_polylines_y_junction_three_branches_spur_removed():
    mask = _y_junction()
    mask[20, 31:33] = True  # a 2 px spur
    mask[50, 5:7] = True  # an isolated speck
    lines = skeleton_polylines(mask, min_branch_length=5)
    assert len(lines) == 3
    junction = np.array([30.0, 30.0])  # (x, y)
    for line in lines:
        assert line.shape[1] == 2 and len(line) >= 20
        ends = [line[0], line[-1]]
        assert any(np.allclose(end, junction, atol=1.5) for end in ends)
    tips = {tuple(np.round(line[0] if not np.allclose(line[0], junction, atol=1.5) else line[-1]))
            for line in lines}
    assert tips == {(30.0, 5.0), (6.0, 54.0), (54.0, 54.0)}
    assert skeleton_polylines(np.zeros((10, 10), bool)) == []


def test_centreline_metrics():
    true = np.zeros((50, 50), np.uint8)
    true[25, 5:45] = 1
    shifted = np.roll(true, 2, axis=0)
    assert centreline_scores(shifted, true)["f1"] == pytest.approx(1.0)
    assert centreline_scores(np.roll(true, 4, axis=0), true)["f1"] == 0.0
    half = true.copy()
    half[25, 25:] = 0
    scores = centreline_scores(half, true)
    assert scores["precision"] == pytest.approx(1.0) and 0.45 < scores["recall"] < 0.6
    assert cl_dice(true, true) == pytest.approx(1.0)
    assert cl_dice(np.zeros_like(true), true) == 0.0


def test_save_load_round_trip(tmp_path):
    model = _tiny_model(n_classes=2)
    path = save_model(model, tmp_path / "detector_test", {"seed": 3, "metric": {"f1": 0.5}})
    assert path.suffix == ".safetensors" and path.with_suffix(".json").is_file()
    loaded = load_model(DislocationUNet, path, "cpu")
    assert loaded.architecture() == model.architecture()
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x))


def test_user_versions_and_missing_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_STEREO_TEM_MODELS", str(tmp_path))
    save_model(_tiny_model(), tmp_path / "detector_mine", {"seed": 1})
    assert "detector_mine" in list_versions("detector")
    model = load_detector("detector_mine")
    assert model.version == "detector_mine" and model.metadata["seed"] == 1
    with pytest.raises(InputError, match="detector_nothere"):
        load_detector("detector_nothere")
    with pytest.raises(InputError, match="nothere.safetensors"):
        load_model(DislocationUNet, tmp_path / "nothere.safetensors")


class _Payload:
    def __reduce__(self):
        return (print, ("this code should never run",))


def test_pickled_code_is_refused(tmp_path):
    model = _tiny_model()
    legacy = tmp_path / "evil.pt"
    state = dict(model.state_dict())
    state["payload"] = _Payload()
    torch.save(state, legacy)
    with pytest.raises(InputError, match="pickled code"):
        load_model(DislocationUNet, legacy)
    fake = tmp_path / "evil.safetensors"
    fake.write_bytes(legacy.read_bytes())
    with pytest.raises(InputError, match="pickled code"):
        load_model(DislocationUNet, fake)


def test_skeleton_polylines_edge_cases():
    mask = np.zeros((30, 30), bool)
    mask[5, 5] = True  # a lone pixel
    mask[10, 2:6] = True  # a short isolated bit
    assert skeleton_polylines(mask, min_branch_length=5) == []
    assert len(skeleton_polylines(mask, min_branch_length=2)) == 1
    cross = np.zeros((30, 30), bool)
    cross[15, 3:28] = True
    cross[3:28, 15] = True
    assert len(skeleton_polylines(cross)) == 4
    ring = np.zeros((30, 30), bool)
    ring[5:25, 5:25] = True
    ring[7:23, 7:23] = False
    assert len(skeleton_polylines(ring)) == 1


def test_iter_predict_probability_reports_tiles():
    from napari_stereo_tem.stereo.detection import iter_predict_probability
    from napari_stereo_tem.progress import drive

    model = _tiny_model()
    reports = []
    image = np.random.default_rng(3).random((200, 260)).astype(np.float32)
    prob = drive(iter_predict_probability(image, model, tile=96, overlap=16), reports.append)
    assert prob.shape == (200, 260)
    assert reports[-1].done == reports[-1].total == len(reports) > 4
    with pytest.raises(InputError):
        predict_probability(image, model, tile=96, overlap=60)


def test_fused_model_gives_same_output():
    model = _tiny_model(n_classes=2)
    fused = model.fused()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    x = torch.rand(2, 1, 48, 32)
    with torch.no_grad():
        a, fa = model.forward_with_features(x)
        b, fb = fused.forward_with_features(x)
    assert torch.allclose(a, b, atol=1e-4) and torch.allclose(fa, fb, atol=1e-4)


def test_prediction_follows_weight_changes():
    model = _tiny_model()
    image = np.random.default_rng(5).random((32, 32)).astype(np.float32)
    before = predict_probability(image, model, contrast="bright_field")
    with torch.no_grad():
        model.head.bias += 3.0  # in-place change, as an optimiser step makes
    after = predict_probability(image, model, contrast="bright_field")
    assert after.mean() > before.mean() + 0.1


@pytest.mark.parametrize("flips", [2, 4])
def test_mirror_averaging_is_mirror_symmetric(flips):
    torch.manual_seed(3)
    model = DislocationUNet(base_channels=4, depth=3, n_classes=1).eval()
    rng = np.random.default_rng(0)
    image = rng.random((48, 64)).astype(np.float32)
    plain = predict_probability(image, model, contrast="bright_field", scale=None)
    averaged = predict_probability(image, model, contrast="bright_field", scale=None, flips=flips)
    mirrored = predict_probability(image[:, ::-1], model, contrast="bright_field", scale=None, flips=flips)
    np.testing.assert_allclose(mirrored[:, ::-1], averaged, atol=1e-5)  # left-right mirroring commutes
    assert not np.allclose(plain, averaged, atol=1e-4)  # a random network is not symmetric by itself
    with pytest.raises(InputError, match="flips"):
        predict_probability(image, model, flips=3)
