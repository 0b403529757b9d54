"""File > Open Sample: synthetic data with its ground truth, made on the fly (nothing is downloaded)."""

from __future__ import annotations

import numpy as np

from ..synth import TEST_SEEDS, make_stereo_pair
from .layers import lines_layer

__all__ = ["sample_stereo_pair"]

#: Fixed held-out seeds, so every user sees the same samples.
STEREO_SEED = TEST_SEEDS.start + 1


def sample_stereo_pair() -> list:
    """A 256x256 synthetic stereo pair at 8 degrees, its masks, disparity and the true 3D lines."""
    sample = make_stereo_pair(STEREO_SEED, shape=(256, 256), stereo_angle_deg=8.0)
    meta = {"stereo_angle_deg": sample.stereo_angle_deg, "pixel_size_nm": None, "synthetic_seed": STEREO_SEED}
    return [
        (sample.left, {"name": "left (synthetic)", "colormap": "gray",
                       "metadata": {**meta, "stereo_role": "left"}}, "image"),
        (sample.right, {"name": "right (synthetic)", "colormap": "gray",
                        "metadata": {**meta, "stereo_role": "right"}}, "image"),
        (sample.mask_left, {"name": "true mask left", "visible": False}, "labels"),
        (sample.mask_right, {"name": "true mask right", "visible": False}, "labels"),
        (np.nan_to_num(sample.disparity_left, nan=0.0), {"name": "true disparity left", "visible": False,
                                                         "colormap": "turbo"}, "image"),
        lines_layer(sample.lines_3d, name="true 3D lines", visible=False, metadata=meta),
    ]
