"""End to end with the shipped weights: the 3D lines of a held-out synthetic pair against its truth.

The pair comes from ``TEST_SEEDS`` (never used in training), 256x256 px at an
8 degree stereo angle, rectified as generated. Tolerances, in pixels, after
densifying both line sets every 0.5 px (:func:`~napari_stereo_tem.evaluation.lines3d.line_set_distance`,
depth origin kept): median symmetric 3D distance below 1.5 (measured 0.62),
mean below 3.5 (1.87), median depth error below 1.5 (0.76); 95 % of the
predicted points lie within 3 px of a true line in ``(x, y)`` (100 %).
"""

import numpy as np

from napari_stereo_tem.evaluation.lines3d import line_set_distance
from napari_stereo_tem.stereo.pipeline import reconstruct
from napari_stereo_tem.synth import make_stereo_pair
from napari_stereo_tem.synth.seeds import TEST_SEEDS

SEED = 9_000_202


def test_shipped_models_recover_the_3d_lines_of_a_held_out_pair():
    assert SEED in TEST_SEEDS
    sample = make_stereo_pair(SEED, shape=(256, 256), stereo_angle_deg=8.0)
    result = reconstruct(sample.left, sample.right, stereo_angle_deg=8.0, rectify=False)
    assert result.provenance["detector"]["version"].startswith("detector_")  # the shipped default
    assert result.provenance["matcher"]["version"].startswith("matcher_")
    assert len(result.lines) >= len(sample.lines_3d) // 2
    figures = line_set_distance(result.lines, sample.lines_3d)
    assert figures["median"] < 1.5, figures
    assert figures["mean"] < 3.5, figures
    assert figures["depth_median"] < 1.5, figures
    assert figures["xy_coverage"] > 0.95, figures
    # the depth varies along the lines as the truth does (not a flat model)
    z_true = np.concatenate([line[:, 2] for line in sample.lines_3d])
    z_pred = np.concatenate([line[:, 2] for line in result.lines])
    assert np.ptp(z_pred) > 0.5 * np.ptp(z_true)
