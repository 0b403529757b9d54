"""File > Open Sample entries give layers of the right kind, shape and dimensionality."""

import numpy as np


def test_stereo_pair_sample(make_napari_viewer):
    viewer = make_napari_viewer()
    layers = viewer.open_sample("napari-stereo-tem", "stereo_pair")
    kinds = {layer.name: type(layer).__name__ for layer in layers}
    assert kinds["left (synthetic)"] == "Image" and kinds["right (synthetic)"] == "Image"
    assert kinds["true mask left"] == "Labels"
    assert viewer.layers["left (synthetic)"].data.shape == (256, 256)
    # all 2D: no depth slider in the 2D view
    assert all(layer.ndim == 2 for layer in viewer.layers) and viewer.dims.ndim == 2
    # the truth is marked so that no widget chooses it by default
    assert viewer.layers["true disparity left"].metadata["truth"]
    assert viewer.layers["left (synthetic)"].metadata["stereo_role"] == "left"


def test_stereo_pair_true_lines_sample(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-stereo-tem", "stereo_pair")
    viewer.open_sample("napari-stereo-tem", "stereo_pair_lines")
    lines = viewer.layers["true 3D lines"]
    assert type(lines).__name__ == "Shapes" and lines.ndim == 3
    assert set(lines.shape_type) == {"path"} and len(lines.data) >= 1
    assert lines.metadata["stereo_angle_deg"] == 8.0 and lines.metadata["truth"]
    # Paths are (z, y, x): their rows and columns lie inside the image.
    zyx = np.concatenate(lines.data)
    assert np.isfinite(zyx).all()
    assert zyx[:, 1].min() > -5 and zyx[:, 1].max() < 261 and zyx[:, 2].min() > -5 and zyx[:, 2].max() < 261
