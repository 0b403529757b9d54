"""Moved to :mod:`napari_stereo_tem.stereo.pair_list`; this path stays importable for this release."""

import sys

from .stereo import pair_list as _moved

sys.modules[__name__] = _moved
