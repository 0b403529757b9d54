"""Virtual-detector dock, four quadrants: four discs around the direct beam -> particles in 3D from one scan.

Adds to :class:`~._napari.virtual_widget.VirtualDetectorWidget`:

- ``Four quadrants``: four discs at the chosen offset around the direct beam
  (:func:`~napari_stereo_tem.fourdstem.quadrants.quadrant_discs`), replacing the discs;
- ``Particles from the discs``: the view angle beta and the azimuths from the disc
  positions, the virtual images in one pass and the four-view particle workflow
  (:func:`~napari_stereo_tem.fourdstem.quadrants.iter_particles_from_4dstem`, the call
  ``stereo-tem particles --4dstem`` makes), in the background with the dock's progress and
  Cancel; the particles are drawn over ``virtual 0``, their 3D points beside it.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import FloatSpinBox, LineEdit, PushButton

from ..checks import InputError, parse_numbers
from ..fourdstem.quadrants import iter_particles_from_4dstem, quadrant_discs, view_geometry
from ..particles.geometry import format_beta
from .notify import report_input_errors
from .particles_widget import format_counts, particle_layers
from .task_widget import wrapping_label

__all__ = ["QuadrantsPanel", "add_quadrants_panel"]


class QuadrantsPanel:
    """The four-quadrant layout and the particle action of a virtual-detector dock (``host``)."""

    def __init__(self, host):
        self.host = host
        self.offset = FloatSpinBox(value=0.0, min=0.0, max=1000.0, step=0.5, label="quadrant offset (px)",
                                   tooltip="distance of the four disc centres from the direct beam; 0: 55 % of "
                                           "the direct disc's radius")
        self.disc_radius = FloatSpinBox(value=0.0, min=0.0, max=1000.0, step=0.5, label="quadrant radius (px)",
                                        tooltip="radius of each quadrant disc; 0: 35 % of the direct disc's radius")
        self.layout_button = PushButton(text="Four quadrants")
        self.particle_radii = LineEdit(value="2, 10", label="particle radii (px)",
                                       tooltip="smallest and largest particle radius to look for, scan pixels")
        self.particles_button = PushButton(text="Particles from the discs")
        self.report = wrapping_label("")
        self.widgets = [self.offset, self.disc_radius, self.layout_button, self.particle_radii,
                        self.particles_button, self.report]
        self.layout_button.changed.connect(self.four_quadrants)
        self.particles_button.changed.connect(self.particles)

    def _direct(self):
        if self.host._direct is None:
            raise InputError("press 'Mean pattern' first: the quadrants are placed around the direct beam it finds")
        return self.host._direct

    @report_input_errors()
    def four_quadrants(self, *_) -> list:
        """Replace the discs by four discs in quadrants around the direct beam."""
        direct = self._direct()
        offset = self.offset.value or 0.55 * direct.radius
        radius = self.disc_radius.value or 0.35 * direct.radius
        discs = quadrant_discs(direct, offset, radius)
        self.host.set_discs(discs)
        self._show_geometry()
        return discs

    def _show_geometry(self) -> None:
        scale = self.host._mrad_per_px()
        if scale is None or len(self.host._discs) < 3:
            return
        try:
            beta, azimuths, _ = view_geometry(self.host._discs, self.host._direct, mrad_per_px=scale,
                                              scan_rotation_deg=self.host.scan_rotation.value)
        except InputError as err:
            self.report.value = str(err)
            return
        self.report.value = (f"{len(azimuths)} views: {format_beta(beta)}, azimuths "
                             + ", ".join(f"{a:.0f}" for a in azimuths) + " deg")

    @report_input_errors()
    def particles(self, *_):
        """The particle workflow on the virtual images of the current discs (three or more)."""
        host = self.host
        direct = self._direct()
        scale = host._mrad_per_px()
        if scale is None:
            raise InputError("no calibration: the view angle needs the direct disc and the convergence semi-angle; "
                             "press 'Mean pattern' on a dataset with a clear direct beam")
        radii = parse_numbers(self.particle_radii.value, name="particle radii", count=2, form="MIN,MAX")
        discs = list(host._discs)
        # refuses (in the dock) layouts that give no depth (two discs at one place) before reading anything
        beta, azimuths, _ = view_geometry(discs, direct, mrad_per_px=scale,
                                          scan_rotation_deg=host.scan_rotation.value)
        work = iter_particles_from_4dstem(host._dataset(), discs, direct, mrad_per_px=scale,
                                          scan_rotation_deg=host.scan_rotation.value, executor=host._executor(),
                                          radius_range=tuple(radii))
        return host._start(work, self.show, "particles")

    def show(self, scan) -> None:
        """Particles over ``virtual 0`` (2D, coloured by depth) and in 3D beside it."""
        viewer = self.host._viewer
        offset = viewer.layers["virtual 0"].translate if "virtual 0" in viewer.layers else np.zeros(2)
        for k, image in enumerate(scan.views):  # the exact images the particles came from
            name = f"virtual {k}"
            if name in viewer.layers:
                viewer.layers[name].data = image
                viewer.layers[name].reset_contrast_limits()
        meta = {"discs": [d.to_dict() for d in scan.discs], "beta_deg": scan.beta_deg,
                "azimuths_deg": scan.azimuths_deg}
        for data, attrs, kind in particle_layers(scan.result, metadata=meta):
            attrs["translate"] = tuple(offset) if attrs["ndim"] == 2 else (0.0, *tuple(offset))
            if attrs["name"] in viewer.layers:
                viewer.layers.remove(attrs["name"])
            getattr(viewer, f"add_{kind}")(data, **attrs)
        self.report.value = (f"{format_beta(scan.beta_deg)}, azimuths "
                             + ", ".join(f"{a:.0f}" for a in scan.azimuths_deg) + " deg\n"
                             + format_counts(scan.result))
        self.host.show_result(f"{len(scan.result.reconstruction.points)} particles from {len(scan.discs)} discs")


def add_quadrants_panel(host) -> QuadrantsPanel:
    """Build the panel and put its widgets into ``host`` after its 'Use as stereo pair' button."""
    panel = QuadrantsPanel(host)
    at = list(host).index(host.pair_button) + 1
    for k, widget in enumerate(panel.widgets):
        host.insert(at + k, widget)
    return panel
