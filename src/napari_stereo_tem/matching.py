"""Moved to :mod:`napari_stereo_tem.stereo.matching`; this path stays importable for this release."""

import sys

from .stereo import matching as _moved

sys.modules[__name__] = _moved
