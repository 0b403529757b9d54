"""Dock widget: nanoparticle centroids in 3D from four views, and their g(r).

Layers in (four images A-D), one core call (the particle pipeline, run off the
UI thread with a progress bar and a cancel button), layers out: a 3D Points
layer of the particles every view saw (napari ``(z, y, x)``, ``size = 2 r``),
another for those only three views saw, counts in a label, and g(r) plotted in
its own dock widget.
"""

from __future__ import annotations

import napari
import numpy as np
from magicgui.widgets import CheckBox, FloatSpinBox, LineEdit, create_widget
from napari.utils.notifications import show_error

from ..checks import InputError
from ..particles import reconstruct_particles_iter
from .layers import points_to_napari
from .plot import FigureWidget
from .task_widget import TaskWidget

__all__ = ["ParticlesWidget", "RdfPlot", "particle_layers", "format_counts"]

LETTERS = "ABCD"
RDF_DOCK = "g(r)"


def format_counts(result) -> str:
    """One line per view and the matched totals."""
    counts = result.reconstruction.counts
    detected = ", ".join(f"{LETTERS[k] if k < 4 else k}: {n}" for k, n in enumerate(counts["detected_per_view"]))
    return (f"detected {detected}\nmatched in all views: {counts['matched_all_views']}, "
            f"in three views: {counts['matched_three_views']}")


def particle_layers(result, *, scale=None, metadata=None) -> list:
    """Points layer-data tuples (``(z, y, x)``, ``size = 2 r``): all-view particles, then three-view ones.

    ``result`` is a :class:`~napari_stereo_tem.particles.ParticleResult`.
    """
    rec = result.reconstruction
    points = np.asarray(rec.points, dtype=float).reshape(-1, 3)
    radii = np.nan_to_num(np.asarray(rec.radii, dtype=float), nan=1.0)
    every = np.asarray(rec.all_views, dtype=bool)
    meta = {"kind": "stereo-tem particles", "provenance": result.params, "counts": rec.counts,
            "units": "pixels", **(metadata or {})}
    common = {"ndim": 3, "face_color": "transparent"}
    if scale is not None:
        common["scale"] = scale
    layers = []
    for name, keep, colour, views in (("particles (all views)", every, "lime", "all"),
                                      ("particles (three views)", ~every, "orange", "three")):
        layers.append((points_to_napari(points[keep]),
                       {"name": name, "size": 2.0 * radii[keep], "border_color": colour,
                        "features": {"radius": radii[keep], "residual": np.asarray(rec.residuals, float)[keep]},
                        "metadata": {**meta, "views": views}, **common}, "points"))
    return layers


class RdfPlot(FigureWidget):
    """A plot of g(r)."""

    def __init__(self, parent=None):
        super().__init__(parent, figsize=(4, 3), min_height=240)
        self.r = np.zeros(0)
        self.g = np.zeros(0)

    def plot(self, r, g, *, unit: str = "px") -> None:
        self.r, self.g = np.asarray(r, float), np.asarray(g, float)
        ax = self.axes
        ax.clear()
        ax.plot(self.r, self.g, "-o", ms=3)
        ax.axhline(1.0, color="0.6", lw=0.8, ls="--")
        ax.set_xlabel(f"r ({unit})")
        ax.set_ylabel("g(r)")
        ax.set_title("radial distribution (edge-corrected)")
        self.canvas.draw_idle()


class ParticlesWidget(TaskWidget):
    """Particles: four views -> 3D points and g(r)."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(viewer, run_text="Find particles", description="particles")
        self.rdf_plot: RdfPlot | None = None
        self.views = [create_widget(annotation=napari.layers.Image, label=f"view {c}") for c in LETTERS]
        self.beta = FloatSpinBox(value=2.0, min=0.01, max=89.0, step=0.1, label="beta (deg)",
                                 tooltip="view angle: a particle at height z shifts by z sin(beta)")
        self.azimuths = LineEdit(value="0, 90, 180, 270", label="azimuths (deg)",
                                 tooltip="direction of each view's shift, from +x towards +y")
        self.pixel_size = FloatSpinBox(value=0.0, min=0.0, max=1e4, step=0.01, label="pixel size (nm)",
                                       tooltip="0 = pixels")
        self.radius_min = FloatSpinBox(value=2.0, min=0.5, max=500.0, step=0.5, label="radius min (px)")
        self.radius_max = FloatSpinBox(value=10.0, min=0.5, max=500.0, step=0.5, label="radius max (px)")
        self.threshold = FloatSpinBox(value=0.0, min=0.0, max=1e3, step=0.5, label="threshold",
                                      tooltip="0 = automatic; else in standard deviations of the noise")
        self.refine = CheckBox(value=True, text="fit touching particles to all views",
                               tooltip="refine particles that touch in projection by one fit to the four views, "
                                       "and split points that are two particles merged in every view")
        self.extend([*self.views, self.beta, self.azimuths, self.pixel_size, self.radius_min, self.radius_max,
                     self.threshold, self.refine, *self.controls()])
        self.views[0].changed.connect(self._geometry_from_metadata)
        self.reset_choices()

    def reset_choices(self, *_) -> None:
        super().reset_choices()
        self._assign_views()

    def _assign_views(self) -> None:
        """Fill A-D from the layers' ``view`` metadata (the sample's and the quadrant reader's)."""
        if len({id(w.value) for w in self.views}) == 4:
            return
        by_letter = {layer.metadata.get("view"): layer for layer in self._viewer.layers
                     if isinstance(layer, napari.layers.Image) and layer.ndim == 2}
        if all(c in by_letter for c in LETTERS):
            for widget, letter in zip(self.views, LETTERS):
                widget.value = by_letter[letter]
            self._geometry_from_metadata()

    def _geometry_from_metadata(self, *_) -> None:
        layer = self.views[0].value
        if layer is None:
            return
        if layer.metadata.get("beta_deg"):
            self.beta.value = float(layer.metadata["beta_deg"])
        if layer.metadata.get("azimuths_deg"):
            self.azimuths.value = ", ".join(f"{a:g}" for a in layer.metadata["azimuths_deg"])
        if layer.metadata.get("pixel_size_nm"):
            self.pixel_size.value = float(layer.metadata["pixel_size_nm"])

    def _azimuths(self) -> list[float]:
        try:
            return [float(v) for v in self.azimuths.value.replace(";", ",").split(",") if v.strip()]
        except ValueError:
            raise InputError(f"azimuths must be four angles in degrees separated by commas, "
                             f"got {self.azimuths.value!r}") from None

    def make_work(self):
        """The particle pipeline on the four chosen views (``None`` if they are not set)."""
        layers = [w.value for w in self.views]
        if any(layer is None for layer in layers):
            show_error("choose four image layers: views A, B, C and D")
            return None
        try:
            work = reconstruct_particles_iter([np.asarray(layer.data) for layer in layers],
                                              beta_deg=self.beta.value,
                                              azimuths_deg=self._azimuths(), pixel_size=self.pixel_size.value or None,
                                              radius_range=(self.radius_min.value, self.radius_max.value),
                                              threshold=self.threshold.value or None,
                                              refine=self.refine.value)
        except InputError as err:
            show_error(str(err))
            return None
        self._names = [layer.name for layer in layers]
        return work

    def show_result(self, result) -> None:
        size = self.pixel_size.value or None
        scale = (size,) * 3 if size else None
        meta = {"layers": self._names}
        for data, attrs, kind in particle_layers(result, scale=scale, metadata=meta):
            if attrs["name"] in self._viewer.layers:
                self._viewer.layers.remove(attrs["name"])
            getattr(self._viewer, f"add_{kind}")(data, **attrs)
        self.report.value = format_counts(result)
        if len(result.rdf_r):
            self.show_rdf(result.rdf_r, result.rdf_g, unit=result.units)

    def show_rdf(self, r, g, *, unit: str = "px") -> RdfPlot:
        """Plot g(r) in its dock widget (created on first use)."""
        if self.rdf_plot is not None:
            try:
                self.rdf_plot.plot(r, g, unit=unit)
                return self.rdf_plot
            except RuntimeError:  # the user closed the dock: Qt deleted the widget
                self.rdf_plot = None
        self.rdf_plot = RdfPlot()
        self._viewer.window.add_dock_widget(self.rdf_plot, name=RDF_DOCK, area="right")
        self.rdf_plot.plot(r, g, unit=unit)
        return self.rdf_plot
