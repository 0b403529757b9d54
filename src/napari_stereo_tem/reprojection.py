"""Moved to :mod:`napari_stereo_tem.stereo.reprojection`; this path stays importable for this release."""

import sys

from .stereo import reprojection as _moved

sys.modules[__name__] = _moved
