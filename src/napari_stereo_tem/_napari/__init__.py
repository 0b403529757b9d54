"""The napari face: widgets, readers, writers and sample data.

Only this package imports napari, Qt or magicgui. Every widget is a short
adapter: layers in, one core call, layers out.
"""
