"""Moved to :mod:`napari_stereo_tem.stereo.projection`; this path stays importable for this release."""

import sys

from .stereo import projection as _moved

sys.modules[__name__] = _moved
