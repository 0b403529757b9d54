"""Moved to :mod:`napari_stereo_tem.stereo.skeleton_graph`; this path stays importable for this release."""

import sys

from .stereo import skeleton_graph as _moved

sys.modules[__name__] = _moved
