"""Moved to :mod:`napari_stereo_tem.stereo.crystal_frame`; this path stays importable for this release."""

import sys

from .stereo import crystal_frame as _moved

sys.modules[__name__] = _moved
