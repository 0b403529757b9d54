"""Every dock widget the manifest lists can be added through the plugin menu."""

from importlib.resources import files

import pytest
import yaml

MANIFEST = yaml.safe_load(files("napari_stereo_tem").joinpath("napari.yaml").read_text())
WIDGETS = [w["display_name"] for w in MANIFEST["contributions"].get("widgets", [])]


def test_manifest_has_widgets():
    assert "Open stereo pair" in WIDGETS and "Reconstruct 3D dislocations" in WIDGETS


@pytest.mark.parametrize("display_name", WIDGETS)
def test_dock_widget_adds(make_napari_viewer, display_name):
    viewer = make_napari_viewer()
    dock, widget = viewer.window.add_plugin_dock_widget("napari-stereo-tem", display_name)
    assert dock is not None and widget is not None
    assert dock.name == display_name or display_name in dock.name
