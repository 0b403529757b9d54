"""Moved to :mod:`napari_stereo_tem.stereo.detection`; this path stays importable for this release."""

import sys

from .stereo import detection as _moved

sys.modules[__name__] = _moved
