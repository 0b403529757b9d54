"""Moved to :mod:`napari_stereo_tem.stereo.lines_io`; this path stays importable for this release."""

import sys

from .stereo import lines_io as _moved

sys.modules[__name__] = _moved
