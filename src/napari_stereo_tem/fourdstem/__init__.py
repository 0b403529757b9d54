"""4D-STEM: lazy loading, calibration, one-pass virtual detectors, stereo of two discs, 3D lines from N discs.

GUI-free; the napari face and the ``stereo-tem virtual`` command call these.
"""

from .calibration import (
    BeamFit,
    find_diffracted_discs,
    find_direct_beam,
    fit_direct_beam,
    iter_patterns,
    max_pattern,
    mean_pattern,
    mrad_per_px,
    open_pattern,
)
from .descan import beam_centres, correct_descan, iter_beam_centres
from .loading import FourDStem, open_4dstem
from .masks import Disc, as_disc, detector_masks, disc_mask
from .multiview import MultiViewReconstruction, iter_reconstruct_views, reconstruct_views
from .pair import (
    Calibration,
    VirtualStereoPair,
    calibrate,
    compose_stereo_pair,
    iter_virtual_stereo_pair,
    pair_geometry,
    virtual_stereo_pair,
)
from .preview import preview_virtual_image
from .rois import from_circle_roi, roi_mask
from .stereo import (
    epipolar_direction_deg,
    estimate_scan_rotation,
    estimate_scan_rotation_deg,
    mirror_disc,
    pair_stereo_angles,
    rotate_image,
    rotation_to_horizontal_deg,
    stereo_angle_deg,
)
from .sweep import radius_sweep, write_sweep
from .views_geometry import ring_of_discs
from .virtual import iter_virtual_images, virtual_images, virtual_images_from_rois

__all__ = [
    "FourDStem", "open_4dstem", "open_pattern",
    "mean_pattern", "max_pattern", "iter_patterns", "find_direct_beam", "fit_direct_beam", "BeamFit",
    "find_diffracted_discs", "mrad_per_px",
    "beam_centres", "iter_beam_centres", "correct_descan",
    "Disc", "as_disc", "disc_mask", "detector_masks",
    "virtual_images", "iter_virtual_images", "preview_virtual_image",
    "from_circle_roi", "roi_mask", "virtual_images_from_rois",
    "stereo_angle_deg", "pair_stereo_angles", "epipolar_direction_deg", "rotation_to_horizontal_deg",
    "rotate_image", "estimate_scan_rotation", "estimate_scan_rotation_deg", "mirror_disc",
    "radius_sweep", "write_sweep",
    "Calibration", "calibrate", "pair_geometry", "VirtualStereoPair", "compose_stereo_pair",
    "iter_virtual_stereo_pair", "virtual_stereo_pair",
    "ring_of_discs", "MultiViewReconstruction", "iter_reconstruct_views", "reconstruct_views",
]
