"""Moved to :mod:`napari_stereo_tem.stereo.detect`; this path stays importable for this release."""

import sys

from .stereo import detect as _moved

sys.modules[__name__] = _moved
