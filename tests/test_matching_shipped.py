"""The shipped matcher weights load and match a generated pair (loose bounds; the figures are in the benchmark)."""

import numpy as np

from napari_stereo_tem.stereo.matching import disparity_metrics, load_matcher, predict_disparity, refine_disparity


def test_shipped_matcher_loads_with_provenance():
    model = load_matcher("default")
    assert model.version == "matcher_v1"
    meta = model.metadata
    assert meta["command"] and "seed" in meta and "epe" in meta["metric"]


def test_shipped_matcher_matches_a_generated_pair():
    from napari_stereo_tem.synth import make_stereo_pair
    from napari_stereo_tem.training.matcher import prepare_pair

    pair = prepare_pair(make_stereo_pair(9_999_001, shape=(256, 256), stereo_angle_deg=8.0))
    model = load_matcher("default")
    disparity, std = predict_disparity(pair["left"], pair["right"], model)
    assert np.isfinite(disparity).all() and (std >= 0).all()
    raw = disparity_metrics(disparity, pair["disparity"], pair["mask_left"])
    refined = disparity_metrics(refine_disparity(disparity, pair["mask_left"], pair["mask_right"]),
                                pair["disparity"], pair["mask_left"])
    assert raw["epe"] < 3.0
    assert refined["epe"] < 1.5 and refined["coverage"] > 70
