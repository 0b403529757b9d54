"""Synthetic ground truth: 3D dislocation scenes, stereo pairs and 4D-STEM datasets.

The generator is both the training set of the networks and the test oracle of
every accuracy figure, so its truth is exact: the 3D lines, the masks, the
signed disparity maps and a JSON of every parameter and seed.

Modules: :mod:`.seeds` (train/val/test seed ranges), :mod:`.background`
(Perlin backgrounds of seed 001, bend contours, shot noise), :mod:`.scene`
(the 3D model), :mod:`.render` (projection into any tilts), :mod:`.stereo`
(stereo pairs on disk), :mod:`.raster` (nearest-point line drawing),
:mod:`.fourdstem` (4D-STEM datasets), :mod:`.fringed` (a second renderer of the stereo truth),
:mod:`.dataset` (training-set builder).
"""

from .seeds import TEST_SEEDS, TRAIN_SEEDS, VAL_SEEDS
from .scene import DislocationScene, make_scene
from .render import RenderedViews, render_views
from .stereo import GENERATOR_VERSION, StereoSample, load_stereo_sample, make_stereo_pair
from .fourdstem import FourDStemSample, simulate_4dstem, stereo_angle_deg
from .dataset import build_training_set

#: Version of the generated data: bumped whenever a seed would give different data
#: (training records it as provenance).
DATA_VERSION = GENERATOR_VERSION

__all__ = [
    "DATA_VERSION",
    "TRAIN_SEEDS",
    "VAL_SEEDS",
    "TEST_SEEDS",
    "DislocationScene",
    "make_scene",
    "RenderedViews",
    "render_views",
    "StereoSample",
    "make_stereo_pair",
    "load_stereo_sample",
    "FourDStemSample",
    "simulate_4dstem",
    "stereo_angle_deg",
    "build_training_set",
]
