"""Moved to :mod:`napari_stereo_tem.stereo.alignment`; this path stays importable for this release."""

import sys

from .stereo import alignment as _moved

sys.modules[__name__] = _moved
