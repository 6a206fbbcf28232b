"""The MMT tab's result maps and net, and the Compare view's three maps, are built when first
wanted (a map to show, the view shown): a window that never shows them never pays for their
plots, and once shown they are there, visible, in their place."""

from __future__ import annotations

import numpy as np
from PyQt6 import QtGui, QtWidgets

from gui.compare_view import ROLES, CompareView
from gui.mmt_view import MMTView
from smm_daq.instruments.profile import load_profile
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import EntryInfo

UM = 1e-6


def plots_in(widget: QtWidgets.QWidget) -> int:
    import pyqtgraph as pg

    return len(widget.findChildren(pg.GraphicsView))


def test_the_mmt_result_maps_wait_for_the_tab_or_a_result_to_be_shown(qtbot):
    view = MMTView(load_profile())
    qtbot.addWidget(view)
    assert plots_in(view) == 0  # nothing of the result's maps or net yet
    view.show()
    qtbot.waitExposed(view)
    maps = (view.data_view, view.grain_view, view.residual_view, view.net)
    assert plots_in(view) > 0
    for widget in maps:
        assert widget.isVisible() and view.isAncestorOf(widget)
    assert view.data_view.plot.items.count(view.highlight) == 1  # drawn over the measured map
    assert view.data_view is maps[0]  # built once

    hidden = MMTView(load_profile())  # a result shown while the tab is not
    qtbot.addWidget(hidden)
    grain = hidden.grain_view
    assert hidden.isAncestorOf(grain) and hidden.isAncestorOf(hidden.net)
    hidden.show()
    qtbot.waitExposed(hidden)
    assert grain.isVisible() and hidden.grain_view is grain


def test_the_compare_views_wait_for_a_map_or_the_view_to_be_shown(qtbot):
    asked: list[str] = []
    compare = CompareView(lambda entry, _show: asked.append(entry))
    qtbot.addWidget(compare)
    compare.set_entries([])  # a file with no maps: every role emptied
    assert plots_in(compare) == 0 and asked == []
    compare.show()
    qtbot.waitExposed(compare)
    assert plots_in(compare) == len(ROLES)
    for role in ROLES:
        assert compare.views[role].isVisible()

    # a map read while the view is hidden is shown in its view
    bz = np.zeros((4, 5))
    bz[1, 2] = 1e-6
    m = MapData(bz=bz, x=np.arange(5) * 5 * UM, y=np.arange(4) * 5 * UM, height=50 * UM,
                sensor_size=(1e-6, 1e-6), applied_field=np.zeros(3), name="rem")
    hidden = CompareView(lambda _entry, show: show(m))
    qtbot.addWidget(hidden)
    hidden.choosers["remanent"].addItems(["", "rem"])
    hidden.choosers["remanent"].setCurrentText("rem")
    assert hidden.views["remanent"].map is m
    assert hidden.isAncestorOf(hidden.views["remanent"])


def an_entry(name: str, field: float) -> EntryInfo:
    return EntryInfo(name=name, kind="scan", status="finished", title=name, shape=(4, 5),
                     applied_field=np.array([0.0, 0.0, field]), measured_field=None,
                     lines_done=4, start_time="", end_time="", sources=(), height=50 * UM,
                     step=(5 * UM, 5 * UM))


def test_a_file_opened_while_compare_is_hidden_is_read_for_it_only_when_shown(qtbot):
    """Opening a session file offers its maps to compare, with the grains' outlines and the
    registered image over them: none of it is read or drawn until the Compare tab is shown,
    then all of it is, in each of the three views."""
    asked: list[str] = []
    maps: dict[str, MapData] = {}

    def load(entry: str, show) -> None:
        asked.append(entry)
        show(maps.setdefault(entry, MapData(
            bz=np.full((4, 5), 1e-6), x=np.arange(5) * 5 * UM, y=np.arange(4) * 5 * UM,
            height=50 * UM, sensor_size=(1e-6, 1e-6), applied_field=np.zeros(3), name=entry)))

    compare = CompareView(load)
    qtbot.addWidget(compare)
    compare.set_entries([an_entry("rem", 0.0), an_entry("inf", 50e-6)])
    compare.set_outlines(np.array([[[0.0, 0.0], [10 * UM, 10 * UM]]]))
    compare.set_underlay(np.zeros((3, 3, 3), dtype=np.uint8), QtGui.QTransform())
    compare.fit()
    assert asked == [] and plots_in(compare) == 0  # nothing read, nothing built

    compare.show()
    qtbot.waitExposed(compare)
    assert sorted(asked) == ["inf", "rem"]
    views = compare.views
    assert views["remanent"].map is maps["rem"] and views["in-field"].map is maps["inf"]
    assert views["induced"].map is None
    for view in views.values():
        xs, _ys = view.outlines.getData()
        assert xs is not None and xs.size == 2
        assert view.underlay.isVisible()

    compare.clear_underlay()  # a file with no image: cleared in the built views
    assert not any(view.underlay.isVisible() for view in views.values())
