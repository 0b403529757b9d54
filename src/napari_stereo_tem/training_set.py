"""Moved to :mod:`napari_stereo_tem.models.training_set`; this path stays importable for this release."""

import sys

from .models import training_set as _moved

sys.modules[__name__] = _moved
