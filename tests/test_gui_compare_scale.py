"""The Compare tab's colour scales: a weaker map looks weaker."""

from __future__ import annotations

import numpy as np
import pytest

from gui.compare_view import CompareView
from smm_daq.storage.mapdata import MapData

UM = 1e-6
UT = 1e-6


def a_map(name: str, peak_T: float) -> MapData:
    bz = np.zeros((4, 5))
    bz[1, 2] = -peak_T
    return MapData(bz=bz, x=np.arange(5) * 5 * UM, y=np.arange(4) * 5 * UM, height=50 * UM,
                   sensor_size=(1e-6, 1e-6), applied_field=np.zeros(3), name=name)


def test_the_three_maps_share_one_colour_scale_or_each_says_its_own(qtbot):
    """Each map had its own symmetric range and no word of it: a ±2 µT remanent map and a
    ±10 µT in-field map looked alike. Now one range for the three (the largest), said in
    each title; unticked, each its own, said alike."""
    maps = {"rem": a_map("rem", 2 * UT), "inf": a_map("inf", 10 * UT),
            "ind": a_map("ind", 8 * UT)}
    view = CompareView(lambda entry, show: show(maps[entry]))
    qtbot.addWidget(view)
    for role, entry in zip(("remanent", "in-field", "induced"), maps, strict=True):
        view.choosers[role].addItems(["", *maps])
        view.choosers[role].setCurrentText(entry)
    for role in ("remanent", "in-field", "induced"):
        assert view.views[role].colour_bar.levels() == pytest.approx((-10.0, 10.0))
        assert view.views[role].plot.titleLabel.text.endswith("(colours ±10 µT)")
    assert view.shared_scale.isChecked()
    view.shared_scale.setChecked(False)
    own = {"remanent": 2.0, "in-field": 10.0, "induced": 8.0}
    for role, level in own.items():
        assert view.views[role].colour_bar.levels() == pytest.approx((-level, level))
        assert view.views[role].plot.titleLabel.text.endswith(f"(colours ±{level:g} µT)")
    view.shared_scale.setChecked(True)
    view.choosers["in-field"].setCurrentText("")  # the largest gone: the others' largest
    assert view.views["remanent"].colour_bar.levels() == pytest.approx((-8.0, 8.0))
    assert view.views["in-field"].map is None


def test_the_fit_is_held_as_the_views_are_resized(qtbot):
    """The tab's fit (as it is shown again after a zoom) is held as the views are resized, as
    a map's fit is; without a remanent map it fits the maps shown, not the empty lead."""
    from PyQt6 import QtWidgets

    maps = {"inf": a_map("inf", 10 * UT), "ind": a_map("ind", 8 * UT)}  # 25 × 20 µm
    view = CompareView(lambda entry, show: show(maps[entry]))
    qtbot.addWidget(view)
    view.resize(300, 700)  # tall, narrow panes
    view.show()
    qtbot.waitExposed(view)
    for role, entry in (("in-field", "inf"), ("induced", "ind")):
        view.choosers[role].addItems(["", *maps])
        view.choosers[role].setCurrentText(entry)
    zoomed = view.views["in-field"]
    zoomed.view_box.scaleBy((0.3, 0.3))
    zoomed.keep_range()
    view.fit()
    view.resize(1500, 350)  # wide, low panes
    QtWidgets.QApplication.processEvents()
    for role in ("in-field", "induced"):
        (x0, x1), (y0, y1) = view.views[role].view_box.viewRange()
        assert x0 <= -2.5 and x1 >= 22.5 and y0 <= -2.5 and y1 >= 17.5  # the whole map
        assert max(25 / (x1 - x0), 20 / (y1 - y0)) > 0.9  # filling the view
