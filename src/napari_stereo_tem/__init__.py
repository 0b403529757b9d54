"""napari-stereo-tem: 3D dislocations and nanoparticles from 2D electron-microscopy data.

The package is a GUI-free core (importing it loads no napari or Qt) and a thin
napari face in :mod:`napari_stereo_tem._napari`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
