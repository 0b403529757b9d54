"""Dock widget: nanoparticle centroids in 3D from four views, and their g(r).

Layers in (four images A-D), one core call (the particle pipeline, run off the
UI thread with a progress bar and a cancel button), layers out: a 3D Points
layer of the particles every view saw (napari ``(z, y, x)``, ``size = 2 r``),
another for those only three views saw, the same particles projected on the
image plane and coloured by depth (so they show in the 2D view), each with the
standard deviations of ``x, y, z`` as features; counts, the depth precision and
where the 3D view is in a label, and g(r) plotted in its own dock widget.
"""

from __future__ import annotations

import threading

import napari
import numpy as np
from magicgui.widgets import CheckBox, FloatSpinBox, LineEdit, create_widget
from napari.utils.notifications import show_error

from ..checks import InputError, parse_numbers
from ..images import grey_levels
from ..particles import reconstruct_particles_iter
from .layers import points_to_napari
from .plot import FigureWidget
from .task_widget import TaskWidget

__all__ = ["ParticlesWidget", "RdfPlot", "particle_layers", "format_counts", "place_points"]

LETTERS = "ABCD"
RDF_DOCK = "g(r)"
PROJECTED = "particles (2D, colour = depth)"


def particle_layers(result, *, scale=None, metadata=None) -> list:
    """Points layer-data tuples: all-view particles and three-view ones in 3D, and all of them in 2D.

    The 3D layers are napari ``(z, y, x)`` with ``size = 2 r``; the 2D layer holds the same
    particles projected on the image plane ``(y, x)``, coloured by depth, so a run shows in
    the 2D view too. Every layer carries the features ``radius``, ``z``, ``std_x``,
    ``std_y``, ``std_z`` (standard deviations from the fit, pixels; NaN without it) and
    ``residual``. ``result`` is a :class:`~napari_stereo_tem.particles.ParticleResult`.
    """
    rec = result.reconstruction
    points = np.asarray(rec.points, dtype=float).reshape(-1, 3)
    radii = np.nan_to_num(np.asarray(rec.radii, dtype=float), nan=1.0)
    std = (np.asarray(rec.std, float).reshape(-1, 3) if rec.std is not None
           else np.full((len(points), 3), np.nan))
    features = {"radius": radii, "z": points[:, 2], "std_x": std[:, 0], "std_y": std[:, 1], "std_z": std[:, 2],
                "residual": np.asarray(rec.residuals, float), "n_views": np.asarray(rec.n_views, int)}
    every = np.asarray(rec.all_views, dtype=bool)
    meta = {"kind": "stereo-tem particles", "provenance": result.params, "counts": rec.counts,
            "units": "pixels", **(metadata or {})}
    common = {"face_color": "transparent"}
    if scale is not None:
        common["scale"] = scale
    layers = []
    for name, keep, colour, views in (("particles (all views)", every, "lime", "all"),
                                      ("particles (three views)", ~every, "orange", "three")):
        layers.append((points_to_napari(points[keep]),
                       {"name": name, "ndim": 3, "size": 2.0 * radii[keep], "border_color": colour,
                        "features": {key: value[keep] for key, value in features.items()},
                        "metadata": {**meta, "views": views}, **common}, "points"))
    # rings coloured by depth, so the particle under each stays visible
    flat = {"name": PROJECTED, "ndim": 2, "size": 2.0 * radii + 2.0, "features": features,
            "face_color": "transparent", "border_color": "z", "border_colormap": "turbo", "border_width": 0.12,
            "border_width_is_relative": True, "metadata": {**meta, "views": "projected"}}
    if len(points) and np.ptp(points[:, 2]) > 0:
        flat["border_contrast_limits"] = (float(points[:, 2].min()), float(points[:, 2].max()))
    if scale is not None:
        flat["scale"] = scale[1:]
    layers.append((points[:, [1, 0]].copy(), flat, "points"))
    return layers


def format_counts(result) -> str:
    """One line per view, the matched totals, the depth precision and where the 3D view is."""
    rec = result.reconstruction
    counts = rec.counts
    detected = ", ".join(f"{LETTERS[k] if k < 4 else k}: {n}" for k, n in enumerate(counts["detected_per_view"]))
    lines = [f"detected {detected}",
             f"matched in all views: {counts['matched_all_views']}, in three views: {counts['matched_three_views']}"]
    floor = rec.params.get("refinement", {}).get("localisation_floor_px")
    if rec.std is not None and np.isfinite(rec.std).all(axis=1).any():
        median = np.nanmedian(rec.std, axis=0)
        text = f"depth std: median {median[2]:.2g} px"
        if floor:
            text += f" (floor {floor['z']:.2g} px at this dose and beta)"
        lines.append(text)
    lines.append(f"2D: '{PROJECTED}', coloured by depth. 3D: switch the viewer to 3D (the 2D/3D button "
                 "at the bottom left, or Ctrl+Y) to see 'particles (all views)'")
    return "\n".join(lines)


def _import_plot_modules() -> None:
    """Import what the dock's results need before they are shown: matplotlib's figure modules
    (the g(r) plot) and napari's Points layer (a tiny one built once); and compute the fit's
    profile tables.

    The first g(r) plot otherwise imports them on the UI thread after the run (about 2 s);
    importing defines classes only, no Qt widget is made off the UI thread.
    """
    import matplotlib.backends.backend_qtagg  # noqa: F401
    import matplotlib.figure  # noqa: F401
    from napari.layers import Points

    from ..particles.fit import blurred_sphere_profile

    blurred_sphere_profile(np.zeros(1), 1.0, 1.0)

    Points(np.zeros((2, 2)), features={"z": [0.0, 1.0]}, border_color="z", border_colormap="turbo")


_warming = threading.Lock()
_warmed = threading.Event()


def _warm_up_in_background() -> None:
    """:func:`_import_plot_modules` in a daemon thread, once per process (the dock does not need the
    plugin's heavy warm-up: no torch, no stereo pipeline)."""

    def run():
        with _warming:
            if not _warmed.is_set():
                try:
                    _import_plot_modules()
                finally:
                    _warmed.set()

    if not _warmed.is_set():
        threading.Thread(target=run, name="stereo-tem particles warm-up", daemon=True).start()


def _importing_plot_modules(work):
    """``work``, after :func:`_import_plot_modules` in the worker thread (waits for the background one)."""
    with _warming:
        if not _warmed.is_set():
            _import_plot_modules()
            _warmed.set()
    return (yield from work)


def place_points(viewer, layer, attrs) -> None:
    """Put a Points layer built elsewhere into the viewer.

    A Points layer of the same name and dimensions is updated in place (data, features,
    sizes, colours, metadata): a rerun then costs no layer removal (a full garbage
    collection in napari), no new layer controls and no new visual. ``attrs`` are the
    keyword arguments ``layer`` was made with.
    """
    from napari.layers import Points

    old = viewer.layers[layer.name] if layer.name in viewer.layers else None
    if old is None:
        viewer.layers.append(layer)
        return
    if not (isinstance(old, Points) and old.ndim == layer.ndim):
        index = viewer.layers.index(old)
        viewer.layers.remove(old)
        viewer.layers.insert(index, layer)
        return
    old.metadata = layer.metadata
    old.scale = layer.scale
    old.data = layer.data
    old.features = layer.features
    old.size = layer.size
    # colours last: a colour given by a feature ("z") is mapped from the features just set
    for key in ("border_width", "border_width_is_relative", "face_color", "border_colormap",
                "border_contrast_limits", "border_color"):
        if key in attrs:
            setattr(old, key, attrs[key])


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


def _views_stack(layer) -> bool:
    """Whether an image layer holds the views as its frames: a stack of 3 to 8 grey 2D images."""
    return layer.ndim == 3 and not getattr(layer, "rgb", False) and 3 <= layer.data.shape[0] <= 8


class ParticlesWidget(TaskWidget):
    """Particles: four views -> 3D points and g(r)."""

    warm_up = False  # no torch, no stereo pipeline: the dock warms up only what it uses

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(viewer, run_text="Find particles", description="particles")
        _warm_up_in_background()
        self.rdf_plot: RdfPlot | None = None
        self.views = [create_widget(annotation=napari.layers.Image, label=f"view {c}") for c in LETTERS]
        self.beta = FloatSpinBox(value=2.0, min=0.01, max=89.0, step=0.1, label="beta (deg)",
                                 tooltip="view angle: a particle at height z shifts by z sin(beta)")
        self.azimuths = LineEdit(value="0, 90, 180, 270", label="azimuths (deg)",
                                 tooltip="direction of each view's shift, from +x towards +y")
        self.pixel_size = FloatSpinBox(value=0.0, min=0.0, max=1e4, step=0.01, label="pixel size (nm)",
                                       tooltip="0 = pixels")
        self.auto_radius = CheckBox(value=True, text="radii from the views",
                                    tooltip="look for radii of 2-10 px, or, when the views show far larger "
                                            "particles (a camera image at high magnification), find them in views "
                                            "shrunk to that size; unticked: the radii below")
        self.radius_min = FloatSpinBox(value=2.0, min=0.5, max=500.0, step=0.5, label="radius min (px)",
                                       enabled=False)
        self.radius_max = FloatSpinBox(value=10.0, min=0.5, max=500.0, step=0.5, label="radius max (px)",
                                       enabled=False)
        self.auto_radius.changed.connect(self._radius_fields)
        self.threshold = FloatSpinBox(value=0.0, min=0.0, max=1e3, step=0.5, label="threshold",
                                      tooltip="0 = automatic; else in standard deviations of the noise")
        self.refine = CheckBox(value=True, text="fit touching particles to all views",
                               tooltip="refine particles that touch in projection by one fit to the four views, "
                                       "and split points that are two particles merged in every view")
        self.extend([*self.views, self.beta, self.azimuths, self.pixel_size, self.auto_radius, self.radius_min,
                     self.radius_max, self.threshold, self.refine, *self.controls()])
        self.views[0].changed.connect(self._geometry_from_metadata)
        self.reset_choices()

    def _radius_fields(self, *_) -> None:
        """The radius fields count (and can be edited) only when the radii are not taken from the views."""
        for field in (self.radius_min, self.radius_max):
            field.enabled = not self.auto_radius.value

    def reset_choices(self, *_) -> None:
        super().reset_choices()
        self._assign_views()

    def _assign_views(self) -> None:
        """Fill A-D from the layers' ``view`` metadata (the sample's and the quadrant reader's)."""
        if len({id(w.value) for w in self.views}) == 4:
            return
        images = [layer for layer in self._viewer.layers if isinstance(layer, napari.layers.Image)]
        by_letter = {layer.metadata.get("view"): layer for layer in images if layer.ndim == 2}
        stacks = [layer for layer in images if _views_stack(layer)]
        if all(c in by_letter for c in LETTERS):
            for widget, letter in zip(self.views, LETTERS):
                widget.value = by_letter[letter]
            self._geometry_from_metadata()
        elif len(stacks) == 1 and not by_letter:  # the four views exported as the frames of one file
            for widget in self.views:
                widget.value = stacks[0]

    def _geometry_from_metadata(self, *_) -> None:
        layer = self.views[0].value
        if layer is None:
            return
        beta = layer.metadata.get("beta_deg")
        if beta and np.ndim(beta) == 0:  # one beta per view (virtual discs) has no single value to show here
            self.beta.value = float(beta)
        if layer.metadata.get("azimuths_deg"):
            self.azimuths.value = ", ".join(f"{a:g}" for a in layer.metadata["azimuths_deg"])
        if layer.metadata.get("pixel_size_nm"):
            self.pixel_size.value = float(layer.metadata["pixel_size_nm"])

    def _azimuths(self) -> list[float]:
        return list(parse_numbers(self.azimuths.value, name="azimuths (degrees)", count=4,
                                  example="0, 90, 180, 270") or ())

    def make_work(self):
        """The particle pipeline on the four chosen views (``None`` if they are not set)."""
        layers = [w.value for w in self.views]
        if any(layer is None for layer in layers):
            show_error("choose four image layers: views A, B, C and D")
            return None
        if len({id(layer) for layer in layers}) == 1 and _views_stack(layers[0]):
            # one layer holding the views as frames (a segmented detector's export): its frames are A, B, C, D
            views = [grey_levels(np.asarray(frame)) for frame in layers[0].data]
            names = [f"{layers[0].name} [{k}]" for k in range(len(views))]
        else:
            views, names = [grey_levels(layer.data) for layer in layers], [layer.name for layer in layers]
        try:
            work = reconstruct_particles_iter(views,
                                              beta_deg=self.beta.value,
                                              azimuths_deg=self._azimuths(), pixel_size=self.pixel_size.value or None,
                                              radius_range=None if self.auto_radius.value else
                                              (self.radius_min.value, self.radius_max.value),
                                              threshold=self.threshold.value or None,
                                              refine=self.refine.value)
        except InputError as err:
            show_error(str(err))
            return None
        self._names = names
        size = self.pixel_size.value or None
        self._scale = (size,) * 3 if size else None
        return _importing_plot_modules(work)

    def prepare_result(self, result):
        """In the worker thread: the result's Points layers, built (colours, features) before they reach the UI."""
        from napari.layers import Layer

        made = [(Layer.create(data, attrs, kind), attrs)
                for data, attrs, kind in particle_layers(result, scale=self._scale, metadata={"layers": self._names})]
        return result, made

    def show_result(self, prepared) -> None:
        result, made = prepared
        for layer, attrs in made:
            place_points(self._viewer, layer, attrs)
        self.report.value = format_counts(result)
        self._viewer.status = (f"{len(result.reconstruction.points)} particles; " +
                               self.report.value.splitlines()[-1])
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
