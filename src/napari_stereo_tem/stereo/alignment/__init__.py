"""Finding correspondences between two tilts and fitting the tilt geometry to them (DESIGN 3.3).

The pieces behind :func:`napari_stereo_tem.stereo.rectification.rectify_pair`:

- :mod:`.masks`: what is not specimen (black frames, burned-in text and scale
  bars, pixels identical in both views), and the band-passed, contrast-normalised
  images the matching works on;
- :mod:`.matches`: the global shift by phase correlation, dense patch
  correlation refined by ECC, and SIFT on the band-passed images;
- :mod:`.fit`: the robust fit of ``Delta_q = d_q u - t`` over every tilt-axis
  angle, and the checks that say when the fit cannot be trusted;
- :mod:`.refusals`: what a geometry rests on (finders, count and share of the correspondences,
  depth) when that is too little to trust it;
- :mod:`.turn`: a turn (and scale) of one view relative to the other (a refocus between the
  exposures), found from the displacements across the axis and undone before the fit;
- :mod:`.series`: one tilt axis for all adjacent pairs of a tilt series.
"""

from .fit import EpipolarFit, fit_epipolar
from .masks import bandpass, overlay_mask
from .matches import Correspondences, find_correspondences
from .series import SeriesAlignment, align_series

__all__ = ["overlay_mask", "bandpass", "find_correspondences", "Correspondences", "fit_epipolar", "EpipolarFit",
           "align_series", "SeriesAlignment"]
