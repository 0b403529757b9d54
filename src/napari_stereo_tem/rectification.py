"""Moved to :mod:`napari_stereo_tem.stereo.rectification`; this path stays importable for this release."""

import sys

from .stereo import rectification as _moved

sys.modules[__name__] = _moved
