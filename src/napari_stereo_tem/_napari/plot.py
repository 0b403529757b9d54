"""A matplotlib figure inside a Qt widget, for plots in dock widgets (no pyplot)."""

from __future__ import annotations

from qtpy.QtWidgets import QVBoxLayout, QWidget

__all__ = ["FigureWidget"]


class FigureWidget(QWidget):
    """A widget holding one matplotlib figure with one axes; subclasses draw into ``self.axes``."""

    def __init__(self, parent=None, *, figsize=(4, 3), min_height: int = 220):
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        super().__init__(parent)
        self.figure = Figure(figsize=figsize, tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.axes = self.figure.add_subplot(111)
        layout = QVBoxLayout(self)
        layout.addWidget(self.canvas)
        self.setMinimumHeight(min_height)
