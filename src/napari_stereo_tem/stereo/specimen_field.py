"""What of an image the detector is to look at: the specimen, without a frame, vacuum or a scale bar.

Real micrographs carry what is not specimen: the flat padding or black corners of a turned field, a
data bar along an edge with its text, vacuum seen through a hole in the foil, a burned-in scale bar
and its label. Their edges are strong steps that a detector draws as lines, and they sway the
automatic contrast and resize decisions. :func:`without_frame` finds them
(:mod:`.alignment.masks`) and fills them from the specimen beside them; :func:`ignored_share` says
what was left out (and what camera defects were filled in) for a report.
"""

from __future__ import annotations

import numpy as np

from ..checks import check_image

__all__ = ["without_frame", "ignored_share"]


def without_frame(image) -> tuple[np.ndarray, np.ndarray | None]:
    """``image`` with what is not specimen filled, and its mask: a flat frame (padding, black corners of a
    rotated field, a data bar), vacuum (a hole in the foil, seen bright in bright field) and a burned-in
    scale bar with its label.

    The fill is a smooth average of the field beside it, so the edge of the frame or of the hole is no
    line to the detector; the mask is ``None`` when there is none (the image is returned as it is).
    """
    import cv2
    from scipy import ndimage

    from .alignment.masks import fill_masked, frame_mask, scale_bar_mask, vacuum_mask

    array = check_image(image, name="image")
    frame = frame_mask(array) | vacuum_mask(array) | scale_bar_mask(array)
    if not frame.any():
        return array, None
    # the text on a data bar (strokes narrower than 21 px between parts of the bar) and small pockets the mask
    # then encloses (the counters of letters) go with it; a field framed all round is no small pocket
    frame |= cv2.morphologyEx(frame.astype(np.uint8), cv2.MORPH_CLOSE,
                              cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (21, 21))) > 0
    pockets, n = ndimage.label(ndimage.binary_fill_holes(frame) & ~frame)
    if n:
        sizes = np.bincount(pockets.ravel(), minlength=n + 1)
        small = sizes < 0.001 * frame.size
        small[0] = False
        frame |= small[pockets]
    return fill_masked(array.astype(np.float32), frame).astype(np.float32), frame


def ignored_share(settings: dict) -> str:
    """What the detection left out or filled in, for a report: "a flat frame or vacuum of 7.8 % of the image
    ignored", "1 defective camera column (x 301) filled in from the neighbours" (empty when nothing was);
    ``settings`` as :func:`~napari_stereo_tem.stereo.detect.detect_lines` records them."""
    from ..camera_defects import CameraDefects

    share = settings.get("frame_share")
    notes = [f"a flat frame or vacuum of {100 * share:.1f} % of the image ignored"] if share else []
    if settings.get("camera_defects"):
        notes.append(CameraDefects.from_dict(settings["camera_defects"]).describe())
    return ", ".join(notes)
