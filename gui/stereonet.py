"""Directions on an equal-area (Schmidt) stereonet, as palaeomagnetists plot them.

Declination D is measured clockwise from +y (north up the map) towards +x (east);
inclination I is positive downwards, i.e. against the frame's z (up). A direction plots at
radius r = √2 · sin((90° − |I|) / 2) (1 on the horizontal, 0 straight down or up), so equal
areas of the sphere map to equal areas of the net. Lower-hemisphere (downward) directions are
drawn filled, upper-hemisphere ones open.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtWidgets

from gui.lazy_menu import LazyMenuViewBox


def declination_inclination(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Declination and inclination (degrees) of vectors (N, 3) in the sample frame."""
    m = np.atleast_2d(np.asarray(m, dtype=float))
    dec = np.degrees(np.arctan2(m[:, 0], m[:, 1])) % 360.0
    inc = np.degrees(np.arctan2(-m[:, 2], np.hypot(m[:, 0], m[:, 1])))
    return dec, inc


def equal_area(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Net coordinates (x east, y north, radius 1 at the rim) and whether each points down."""
    dec, inc = declination_inclination(m)
    r = np.sqrt(2.0) * np.sin(np.radians(90.0 - np.abs(inc)) / 2.0)
    d = np.radians(dec)
    return r * np.sin(d), r * np.cos(d), inc >= 0


class Stereonet(QtWidgets.QWidget):
    """A pyqtgraph equal-area net; `set_directions` plots (N, 3) vectors, optionally labelled."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = pg.PlotWidget(viewBox=LazyMenuViewBox())
        self.plot.setAspectLocked(True)
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.plot.setMouseEnabled(False, False)
        self.plot.setRange(xRange=(-1.15, 1.15), yRange=(-1.15, 1.15), padding=0)
        t = np.linspace(0, 2 * np.pi, 361)
        self.plot.plot(np.cos(t), np.sin(t), pen=pg.mkPen("k", width=1.5))
        for angle in range(0, 360, 10):  # declination ticks on the rim
            a = np.radians(angle)
            inner = 0.95 if angle % 90 else 0.9
            self.plot.plot(
                [inner * np.sin(a), np.sin(a)], [inner * np.cos(a), np.cos(a)], pen="k"
            )
        self.plot.plot([0], [0], symbol="+", symbolSize=10, pen=None, symbolPen="k")
        for text, (x, y) in {"N": (0, 1.08), "E": (1.08, 0)}.items():
            label = pg.TextItem(text, color="k", anchor=(0.5, 0.5))
            label.setPos(x, y)
            self.plot.addItem(label)
        self.lower = pg.ScatterPlotItem(size=9, pen=pg.mkPen("k"), brush=pg.mkBrush(30, 80, 200))
        self.upper = pg.ScatterPlotItem(size=9, pen=pg.mkPen(30, 80, 200, width=1.5),
                                        brush=pg.mkBrush(255, 255, 255))
        self.plot.addItem(self.lower)
        self.plot.addItem(self.upper)
        legend = QtWidgets.QLabel("● down (lower hemisphere)   ○ up (upper hemisphere)")
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot, 1)
        layout.addWidget(legend)

    def set_directions(self, m: np.ndarray, labels: list[str] | None = None) -> None:
        m = np.asarray(m, dtype=float).reshape(-1, 3)
        if m.shape[0] == 0:
            self.lower.clear()
            self.upper.clear()
            return
        x, y, down = equal_area(m)
        data = labels if labels is not None else [str(i) for i in range(m.shape[0])]
        self.lower.setData(x[down], y[down], data=[d for d, k in zip(data, down, strict=True) if k])
        self.upper.setData(
            x[~down], y[~down], data=[d for d, k in zip(data, down, strict=True) if not k]
        )
