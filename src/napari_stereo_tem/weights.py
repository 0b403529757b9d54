"""Moved to :mod:`napari_stereo_tem.models.store`; this path stays importable for this release."""

import sys

from .models import store as _moved

sys.modules[__name__] = _moved
