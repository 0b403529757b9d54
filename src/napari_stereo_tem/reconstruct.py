"""Moved to :mod:`napari_stereo_tem.stereo.pipeline`; this path stays importable for this release."""

import sys

from .stereo import pipeline as _moved

sys.modules[__name__] = _moved
