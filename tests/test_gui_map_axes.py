"""A map view's axes: none over no map (the Scan tab showed "last map" over axes of -0.5 …
0.5 µm), and x labels that do not run into each other in a narrow pane (the MMT tab's wrote
"12200124001260012800")."""

from __future__ import annotations

import numpy as np
from PyQt6 import QtGui, QtWidgets

from gui.map_view import MapView
from smm_daq.storage.mapdata import MapData

UM = 1e-6


def demo_like_map() -> MapData:
    """51 × 51 pixels of 20 µm from 12000 µm, as the demo's scans."""
    x = 12000 * UM + np.arange(51) * 20 * UM
    bz = np.outer(np.sin(x / (200 * UM)), np.cos(x / (300 * UM))) * 1e-5
    return MapData(bz=bz, x=x, y=x, height=100 * UM, sensor_size=(0.0, 0.0),
                   applied_field=np.zeros(3), name="m", title="m")


def axes_shown(view: MapView) -> list[bool]:
    return [view.plot.getAxis(a).isVisible() and view.plot.getAxis(a).opacity() > 0
            for a in ("bottom", "left")]


def test_no_axes_over_no_map(qtbot) -> None:
    view = MapView(title="no map yet")
    qtbot.addWidget(view)
    view.show()
    assert axes_shown(view) == [False, False]
    view.set_map(demo_like_map())
    assert axes_shown(view) == [True, True]
    view.clear()
    assert axes_shown(view) == [False, False]
    view.set_underlay(np.zeros((4, 4, 3), np.uint8), QtGui.QTransform())
    assert axes_shown(view) == [True, True]  # an image of the sample to read them by
    view.clear_underlay()
    assert axes_shown(view) == [False, False]


def test_x_labels_of_a_narrow_view_keep_apart(qtbot) -> None:
    for width in (260, 330, 420, 900):
        view = MapView()
        qtbot.addWidget(view)
        view.resize(width, 300)
        view.show()
        view.set_map(demo_like_map())
        QtWidgets.QApplication.processEvents()
        axis = view.plot.getAxis("bottom")
        size = axis.geometry().width()
        low, high = axis.range
        (major, _), *_ = axis.tickSpacing(low, high, size)
        values = axis.tickValues(low, high, size)[0][1]
        texts = axis.tickStrings(values, 1.0, major)
        metrics = QtGui.QFontMetricsF(axis.style.get("tickFont") or axis.font())
        widest = max(metrics.horizontalAdvance(t) for t in texts)
        assert len(values) >= 2, (width, values)
        assert major * size / (high - low) >= widest + 4, (width, texts, size)

