"""Moved to :mod:`napari_stereo_tem.evaluation.metrics`; this path stays importable for this release."""

import sys

from .evaluation import metrics as _moved

sys.modules[__name__] = _moved
