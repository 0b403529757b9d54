"""File > Open Sample entries give layers of the right kind, shape and dimensionality."""

import numpy as np


def test_stereo_pair_sample(make_napari_viewer):
    viewer = make_napari_viewer()
    layers = viewer.open_sample("napari-stereo-tem", "stereo_pair")
    kinds = {layer.name: type(layer).__name__ for layer in layers}
    assert kinds["left (synthetic)"] == "Image" and kinds["right (synthetic)"] == "Image"
    assert kinds["true mask left"] == "Labels"
    lines = viewer.layers["true 3D lines"]
    assert type(lines).__name__ == "Shapes" and lines.ndim == 3
    assert set(lines.shape_type) == {"path"} and len(lines.data) >= 1
    left = viewer.layers["left (synthetic)"].data
    assert left.shape == (256, 256)
    assert lines.metadata["stereo_angle_deg"] == 8.0
    # Paths are (z, y, x): their rows and columns lie inside the image.
    zyx = np.concatenate(lines.data)
    assert np.isfinite(zyx).all()
    assert zyx[:, 1].min() > -5 and zyx[:, 1].max() < 261 and zyx[:, 2].min() > -5 and zyx[:, 2].max() < 261
