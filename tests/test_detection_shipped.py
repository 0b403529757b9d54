"""The detector weights shipped in the package: present, documented, and they find lines."""

from __future__ import annotations

import numpy as np
import pytest

from napari_stereo_tem.stereo.detection import (
    label_settings,
    predict_probability,
    probability_to_labels,
    skeleton_polylines,
)
from napari_stereo_tem.evaluation.metrics import centreline_scores
from napari_stereo_tem.models.store import DEFAULT_DETECTOR, PACKAGE_WEIGHTS_DIR, list_versions, load_detector


def _scene():
    import cv2

    rng = np.random.default_rng(4)
    rows = cols = 128
    yy, xx = np.mgrid[:rows, :cols]
    image = 0.6 + 0.08 * np.sin(xx / 17.0) * np.cos(yy / 23.0) + 0.03 * rng.standard_normal((rows, cols))
    mask = np.zeros((rows, cols), np.uint8)
    cv2.polylines(mask, [np.array([[10, 20], [60, 50], [118, 60]], np.int32)], False, 1, thickness=1)
    cv2.polylines(mask, [np.array([[30, 120], [50, 70], [90, 10]], np.int32)], False, 1, thickness=1)
    lines = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.2) * 2.5
    return (image - 0.25 * np.clip(lines, 0, 1)).astype(np.float32), mask


def test_shipped_detector_is_present_and_documented():
    assert (PACKAGE_WEIGHTS_DIR / f"{DEFAULT_DETECTOR}.safetensors").is_file()
    assert DEFAULT_DETECTOR in list_versions("detector")
    model = load_detector(DEFAULT_DETECTOR)
    meta = model.metadata
    assert meta["command"].startswith("stereo-tem train ")
    assert "architecture" in meta
    # a trained version records its run; an averaged one (stereo-tem train average) the runs of both parents
    trained = [meta] if "averaged" not in meta else [meta["averaged"]["base_metadata"],
                                                      meta["averaged"]["tuned_metadata"]]
    for record in trained:
        assert record["command"].startswith("stereo-tem train detector")
        for key in ("seed", "data_version", "metric", "architecture"):
            assert key in record
    recipe = meta.get("recipe", [meta["command"]])
    assert recipe and all(line.startswith("stereo-tem train ") for line in recipe)
    assert meta["command"] in " ".join(recipe)
    assert label_settings(model)["threshold"] >= 0.5
    assert (PACKAGE_WEIGHTS_DIR / f"{DEFAULT_DETECTOR}.safetensors").stat().st_size < 10_000_000


@pytest.mark.parametrize("dark_field", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.uint16])
def test_shipped_detector_finds_lines_in_both_contrasts(dark_field, dtype):
    image, mask = _scene()
    if dark_field:
        image = 1.0 - image
    if dtype == np.uint16:
        image = (image * 30000).astype(np.uint16)
    model = load_detector(DEFAULT_DETECTOR)
    prob = predict_probability(image, model)
    labels = probability_to_labels(prob, **label_settings(model))
    assert centreline_scores(labels == 1, mask)["f1"] > 0.8
    assert 1 <= len(skeleton_polylines(labels == 1)) <= 8


def test_shipped_detector_v2_is_its_recipe(tmp_path):
    """detector_v2 is exactly the weight average its sidecar records (the fine-tuned run is kept in the repository)."""
    import json
    from pathlib import Path

    import torch
    from safetensors.torch import load_file

    from napari_stereo_tem.training.average import average_weights

    repo = Path(__file__).resolve().parents[1]
    meta = json.loads((PACKAGE_WEIGHTS_DIR / "detector_v2.json").read_text())
    averaged = meta["averaged"]
    assert averaged["base"] == "detector_v1"
    out = average_weights("detector_v1", repo / averaged["tuned"], weight=averaged["weight_of_tuned"],
                          out_path=tmp_path / "again")
    again, shipped = load_file(str(out)), load_file(str(PACKAGE_WEIGHTS_DIR / "detector_v2.safetensors"))
    assert again.keys() == shipped.keys()
    assert all(torch.equal(again[k], shipped[k]) for k in shipped)
    assert any(line.startswith("stereo-tem train average detector_v1") for line in meta["recipe"])
