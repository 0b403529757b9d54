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


def test_stereo_pair_sample_is_made_off_the_ui_thread(make_napari_viewer, monkeypatch):
    """napari calls the sample on the UI thread: the synthetic pair is made in another thread meanwhile."""
    import threading

    import napari_stereo_tem.synth as synth
    from napari_stereo_tem._napari import samples

    made_in = []
    make = synth.make_stereo_pair

    def spy(*args, **kwargs):
        made_in.append(threading.get_ident())
        return make(*args, **kwargs)

    monkeypatch.setattr(synth, "make_stereo_pair", spy)
    monkeypatch.delenv("NAPARI_STEREO_TEM_SYNC", raising=False)
    samples._stereo_sample.cache_clear()
    viewer = make_napari_viewer()
    try:
        viewer.open_sample("napari-stereo-tem", "stereo_pair")
    finally:
        samples._stereo_sample.cache_clear()  # no spied sample left for the other tests
    assert made_in and made_in[0] != threading.get_ident()
    assert viewer.layers["right (synthetic)"].data.shape == (256, 256)


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
