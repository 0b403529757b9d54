"""File > Open Sample: synthetic data with its ground truth, made on the fly (nothing is downloaded).

napari calls these functions on the UI thread and adds their layers when they
return. Each sample is made in a thread while the window keeps drawing
(:func:`~.responsive.call_answering`), with the imports it needs (the synthetic
generators are imported only there) and the first use of the napari layers it
holds (a unit registry, colormaps, compiled path meshing); what stays on the UI
thread is napari adding the layers.
"""

from __future__ import annotations

import functools

import numpy as np

from .layers import lines_layer
from .responsive import call_answering
from .warmup import start_warm_up

__all__ = ["sample_stereo_pair", "sample_stereo_pair_lines", "sample_4dstem", "sample_4dstem_ring",
           "sample_particles"]

#: Marks a layer as ground truth: no widget chooses it as an input by default.
TRUTH = {"truth": True}

#: Fixed held-out seeds (``TEST_SEEDS.start`` plus these), so every user sees the same samples.
STEREO, FOURDSTEM, PARTICLES, FOURDSTEM_RING = 1, 2, 3, 4


def _seed(sample: int) -> int:
    from ..synth import TEST_SEEDS

    return TEST_SEEDS.start + sample


@functools.lru_cache(maxsize=1)
def _stereo_sample():
    from ..synth import make_stereo_pair

    return make_stereo_pair(_seed(STEREO), shape=(256, 256), stereo_angle_deg=8.0)


def _warm_layer_kinds(*, paths: bool = False) -> None:
    """napari's layers used once: their first use (unit registry, colormaps) is slow.

    ``paths``: also a Shapes layer of a 3D path, whose first meshing compiles
    napari's numba functions (else done on the UI thread when the sample's lines
    layer is made).
    """
    from napari.layers import Image, Labels, Shapes

    Image(np.zeros((2, 2), np.float32), colormap="turbo")
    Labels(np.zeros((2, 2), np.uint8))
    if paths:
        Shapes([np.array([[0.0, 0, 0], [1, 2, 3], [2, 3, 5]])], shape_type="path", ndim=3)


def _stereo_meta(sample) -> dict:
    # drawn rectified (tilt axis along the columns, no shift) and with little depth: rectification
    # would rightly refuse it (an inclined plane cannot tell a turn of the axis), so the dock skips it
    return {"stereo_angle_deg": sample.stereo_angle_deg, "pixel_size_nm": None, "synthetic_seed": _seed(STEREO),
            "rectified": True}


def sample_stereo_pair() -> list:
    """A 256x256 synthetic stereo pair at 8 degrees, its true masks and true disparity (all 2D).

    The true 3D lines are a sample of their own (:func:`sample_stereo_pair_lines`):
    a 3D layer would add a depth slider to the 2D view, where it does nothing useful.
    """
    layers = call_answering(_stereo_pair_layers)
    start_warm_up()  # after: its imports would compete with the sample's
    return layers


def _stereo_pair_layers() -> list:
    sample = _stereo_sample()
    _warm_layer_kinds()
    meta = _stereo_meta(sample)
    return [
        (sample.left, {"name": "left (synthetic)", "colormap": "gray",
                       "metadata": {**meta, "stereo_role": "left"}}, "image"),
        (sample.right, {"name": "right (synthetic)", "colormap": "gray",
                        "metadata": {**meta, "stereo_role": "right"}}, "image"),
        (sample.mask_left, {"name": "true mask left", "visible": False, "metadata": {**meta, **TRUTH}}, "labels"),
        (sample.mask_right, {"name": "true mask right", "visible": False, "metadata": {**meta, **TRUTH}}, "labels"),
        (np.nan_to_num(sample.disparity_left, nan=0.0), {"name": "true disparity left", "visible": False,
                                                         "colormap": "turbo", "metadata": {**meta, **TRUTH}}, "image"),
    ]


def sample_stereo_pair_lines() -> list:
    """The true 3D lines of :func:`sample_stereo_pair` (a Shapes layer of 3D paths, ``(z, y, x)``)."""
    def layers():
        sample = _stereo_sample()
        _warm_layer_kinds(paths=True)
        return [lines_layer(sample.lines_3d, name="true 3D lines", metadata={**_stereo_meta(sample), **TRUTH})]

    return call_answering(layers)


def sample_4dstem() -> list:
    """A 48x48-scan, 32x32-detector synthetic 4D-STEM dataset (20 mrad), its mean pattern and true lines.

    The dataset is one 4D image layer whose ``metadata["fourdstem"]`` holds the
    core ``FourDStem``, as the reader makes it.
    """
    layers = call_answering(_4dstem_layers)
    start_warm_up()  # after: its imports would compete with the sample's
    return layers


def sample_4dstem_ring() -> list:
    """A 128x128-scan synthetic 4D-STEM dataset at 60 mrad for a ring of discs (multi-view 3D lines).

    Wide enough in angle (stereo angles of 2-5 degrees between discs 8 px from the
    direct beam) and in the scan for "Ring of N" and "Reconstruct from all discs";
    the small :func:`sample_4dstem` is not. About 4 s to make.
    """
    layers = call_answering(_4dstem_ring_layers)
    start_warm_up()
    return layers


def _4dstem_layers() -> list:
    return _4dstem_sample_layers(FOURDSTEM, scan=48, disc_radius=8.0, convergence_mrad=20.0, suffix="")


def _4dstem_ring_layers() -> list:
    return _4dstem_sample_layers(FOURDSTEM_RING, scan=128, disc_radius=12.0, convergence_mrad=60.0,
                                 suffix=", ring")


def _4dstem_sample_layers(sample_id: int, *, scan: int, disc_radius: float, convergence_mrad: float,
                          suffix: str) -> list:
    from ..fourdstem import mean_pattern, open_4dstem
    from ..synth.fourdstem import simulate_4dstem

    _warm_layer_kinds(paths=True)
    seed = _seed(sample_id)
    sample = simulate_4dstem(seed=seed, scan_shape=(scan, scan), detector_shape=(32, 32),
                             disc_radius_px=disc_radius, convergence_mrad=convergence_mrad)
    dataset = open_4dstem(sample.data)
    np.asarray(dataset.data[:1, :1, :1, :1])  # dask's first compute looks for a distributed client (an import)
    dataset.metadata["source"] = f"synthetic 4D-STEM (seed {seed})"
    meta = {"kind": "4D-STEM", "source": dataset.metadata["source"], "fourdstem": dataset,
            "convergence_mrad": convergence_mrad, "synthetic_seed": seed, "synthetic_params": sample.params}
    return [
        (dataset.data, {"name": f"4D-STEM (synthetic{suffix})", "colormap": "gray", "metadata": meta}, "image"),
        (mean_pattern(dataset).astype(np.float32), {"name": f"mean pattern (synthetic{suffix})", "colormap": "gray",
                                                    "visible": False}, "image"),
        lines_layer(sample.lines_3d, name=f"true 3D lines (4D-STEM{suffix})", visible=False,
                    metadata={"synthetic_seed": seed, **TRUTH}),
    ]


def sample_particles() -> list:
    """Four 192x192 views (A-D) of 40 synthetic particles at beta = 5 deg, and the true 3D points."""
    return call_answering(_particle_layers)


def _particle_layers() -> list:
    from ..synth.particles import VIEW_LETTERS, simulate_particle_views
    from .layers import points_to_napari

    _warm_layer_kinds()
    sample = simulate_particle_views(40, seed=_seed(PARTICLES), beta_deg=5.0, shape=(192, 192),
                                     radius_px=(3.0, 5.0), slab_thickness_px=40.0, dose=2000.0)
    meta = {"beta_deg": sample.beta_deg, "azimuths_deg": list(sample.azimuths_deg), "pixel_size_nm": None,
            "synthetic_seed": _seed(PARTICLES)}
    layers = [(view, {"name": f"view {VIEW_LETTERS[k]} (synthetic)", "colormap": "gray",
                      "metadata": {**meta, "view": VIEW_LETTERS[k], "azimuth_deg": sample.azimuths_deg[k]}}, "image")
              for k, view in enumerate(sample.views)]
    layers.append((points_to_napari(sample.positions),
                   {"name": "true particles", "size": 2.0 * sample.radii, "face_color": "transparent",
                    "border_color": "cyan", "visible": False, "ndim": 3,
                    "metadata": {**meta, **TRUTH, "kind": "stereo-tem particles (truth)"}}, "points"))
    return layers
