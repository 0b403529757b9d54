"""Rendering works under the virtual X server: a 3D path layer shows up in a screenshot."""

import numpy as np


def test_3d_path_screenshot_is_not_black(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    t = np.linspace(0, 1, 50)
    path = np.column_stack([40 * t, 60 * t, 30 * np.sin(3 * t)])  # (z, y, x)
    viewer.add_shapes([path], shape_type="path", edge_width=3, edge_color="yellow", ndim=3)
    viewer.dims.ndisplay = 3
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot.ndim == 3 and shot.shape[-1] == 4
    rgb = shot[..., :3].astype(int)
    lit = (rgb.max(axis=-1) > 60).mean()
    assert lit > 0.001, f"screenshot is black ({lit:.5f} of pixels lit)"
    # The path is yellow: red and green high, blue low, on some pixels.
    yellow = ((rgb[..., 0] > 150) & (rgb[..., 1] > 150) & (rgb[..., 2] < 100)).sum()
    assert yellow > 20
