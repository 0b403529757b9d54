"""A small colour bar with its units, drawn with Qt (no plotting library to import on the UI thread)."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QLinearGradient, QPainter
from qtpy.QtWidgets import QSizePolicy, QWidget

from .layers import depth_rgba

__all__ = ["DepthColorBar"]


class DepthColorBar(QWidget):
    """The depth colours of the 3D lines, from ``low`` (shallow) to ``high`` (deep), with their unit."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.low, self.high, self.unit = 0.0, 0.0, "px"
        self.setMinimumHeight(44)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setVisible(False)

    def set_range(self, low: float, high: float, unit: str = "px") -> None:
        self.low, self.high, self.unit = float(low), float(high), unit
        self.setToolTip(f"depth z along the beam, {unit}: {low:.1f} (shallow) to {high:.1f} (deep)")
        self.setVisible(True)
        self.update()

    def label(self) -> str:
        return f"depth z ({self.unit}), into the image"

    def paintEvent(self, event):  # noqa: N802 - Qt's name
        painter = QPainter(self)
        width = self.width()
        bar = QRectF(6, 4, max(10, width - 12), 14)
        gradient = QLinearGradient(QPointF(bar.left(), 0), QPointF(bar.right(), 0))
        stops = np.linspace(0.0, 1.0, 17)
        colours = depth_rgba(stops, 0.0, 1.0)
        for t, rgba in zip(stops, colours):
            gradient.setColorAt(float(t), QColor.fromRgbF(*map(float, rgba)))
        painter.fillRect(bar, gradient)
        painter.setPen(self.palette().windowText().color())
        text_box = QRectF(bar.left(), bar.bottom() + 2, bar.width(), 20)
        painter.drawText(text_box, Qt.AlignmentFlag.AlignLeft, f"{self.low:.1f}")
        painter.drawText(text_box, Qt.AlignmentFlag.AlignHCenter, self.label())
        painter.drawText(text_box, Qt.AlignmentFlag.AlignRight, f"{self.high:.1f}")
        painter.end()
