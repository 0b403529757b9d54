"""Moved to :mod:`napari_stereo_tem.stereo.corrections`; this path stays importable for this release."""

import sys

from .stereo import corrections as _moved

sys.modules[__name__] = _moved
