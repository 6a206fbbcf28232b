"""The map view: symmetric levels from the whole image, read-out, profile, area selection."""

from __future__ import annotations

import numpy as np
import pytest
from PyQt6 import QtCore, QtGui, QtWidgets

from gui.map_geometry import grid_from_rectangle, pixel_at, profile_along, symmetric_level
from gui.map_view import MapView
from smm_daq.storage.mapdata import MapData

UM = 1e-6
UT = 1e-6


def grid_map(bz: np.ndarray, step: float = 10 * UM, origin=(100 * UM, 200 * UM)) -> MapData:
    ny, nx = bz.shape
    return MapData(bz=bz, x=origin[0] + step * np.arange(nx), y=origin[1] + step * np.arange(ny))


@pytest.fixture
def view(qtbot):
    v = MapView()
    qtbot.addWidget(v)
    v.resize(800, 600)
    v.show()
    qtbot.waitExposed(v)
    return v


def test_single_pixel_dipole_sets_the_colour_scale(view):
    rng = np.random.default_rng(1)
    bz = rng.normal(0, 0.2 * UT, (60, 80))
    bz[17, 33] = -9.0 * UT  # one pixel: a percentile would clip it
    bz[3, 3] = np.nan  # not yet measured
    view.set_map(grid_map(bz))
    low, high = view.colour_bar.levels()
    assert high == pytest.approx(9.0)
    assert low == pytest.approx(-9.0)
    assert tuple(view.image.getLevels()) == pytest.approx((-9.0, 9.0))


def test_levels_follow_a_map_being_filled(view):
    bz = np.full((10, 10), np.nan)
    view.set_map(grid_map(bz))
    bz = bz.copy()
    bz[0, :] = 0.5 * UT
    view.set_bz(bz)
    assert view.colour_bar.levels()[1] == pytest.approx(0.5)
    bz = bz.copy()
    bz[1, 4] = -2.0 * UT
    view.set_bz(bz)
    assert view.colour_bar.levels() == pytest.approx((-2.0, 2.0))


def test_symmetric_level_of_a_blank_map_is_small_but_valid():
    assert symmetric_level(np.full((3, 3), np.nan)) > 0


@pytest.mark.parametrize("fill", [np.nan, 0.0])
def test_a_map_with_nothing_measured_yet_is_coloured_on_one_microtesla(view, fill):
    """Not on its least level: the bar read ±1e-06 labelled µT (1 pT) over an empty map."""
    view.set_map(grid_map(np.full((4, 4), fill)))
    assert view.colour_bar.levels() == pytest.approx((-1.0, 1.0))
    assert tuple(view.image.getLevels()) == pytest.approx((-1.0, 1.0))


def test_the_colour_bar_is_shown_only_over_a_map(view):
    """No map (none chosen yet, or its file closed): no colour bar, which gave a scale of
    0 to 1 µT to nothing."""
    assert not view.colour_bar.isVisible()
    view.set_map(grid_map(np.full((4, 4), 2 * UT)))
    assert view.colour_bar.isVisible()
    view.clear()
    assert not view.colour_bar.isVisible()


def test_cursor_readout_names_position_and_bz_of_the_pixel(view):
    bz = np.zeros((5, 6))
    bz[2, 4] = 1.25 * UT
    m = grid_map(bz)
    view.set_map(m)
    # a point inside pixel (2, 4) but off its centre by less than half a step
    text = view.describe(m.x[4] + 3 * UM, m.y[2] - 4 * UM)
    assert "x = 143.0 µm" in text and "y = 216.0 µm" in text
    assert "Bz = 1.250 µT" in text
    assert pixel_at(m, m.x[0] - 6 * UM, m.y[0]) is None
    assert "Bz" not in view.describe(0.0, 0.0)


def test_cursor_readout_follows_the_mouse(view, qtbot):
    bz = np.zeros((5, 6))
    bz[1, 2] = -3.5 * UT
    m = grid_map(bz)
    view.set_map(m)
    scene = view.view_box.mapViewToScene(QtCore.QPointF(m.x[2] / UM, m.y[1] / UM))
    with qtbot.waitSignal(view.readout) as got:
        view.graphics.scene().sigMouseMoved.emit(scene)
    assert "Bz = -3.500 µT" in got.args[0]


def test_the_readout_is_seen_whole_in_a_narrow_view(qtbot):
    """As wide as an MMT tab's pane (about 380 pixels), beside its two buttons: the read-out
    was cut off before its Bz ("x = 143.0 µm, y = 216.0 µm, B")."""
    v = MapView()
    qtbot.addWidget(v)
    v.resize(380, 400)
    v.show()
    qtbot.waitExposed(v)
    m = grid_map(np.full((5, 6), -12.345 * UT), origin=(12345 * UM, 12345 * UM))
    v.set_map(m)
    scene = v.view_box.mapViewToScene(QtCore.QPointF(m.x[2] / UM, m.y[1] / UM))
    v.graphics.scene().sigMouseMoved.emit(scene)
    label = v.readout_label
    assert label.text().endswith("Bz = -12.345 µT")
    qtbot.waitUntil(lambda: label.height() >= label.heightForWidth(label.width()))
    flags = QtCore.Qt.TextFlag.TextWordWrap if label.wordWrap() else QtCore.Qt.TextFlag(0)
    needed = label.fontMetrics().boundingRect(QtCore.QRect(0, 0, label.width(), 10_000),
                                              flags, label.text())
    assert needed.width() <= label.width() and needed.height() <= label.height()


def test_the_readout_follows_the_map_under_a_cursor_held_still(view, qtbot):
    """The cursor still, the read-out said 'not measured' after its pixel was measured (a
    live scan) and the value of the map before after another was shown; now it reads the
    map on show, and is emptied with it."""
    bz = np.full((5, 6), np.nan)
    m = grid_map(bz)
    view.set_map(m)
    scene = view.view_box.mapViewToScene(QtCore.QPointF(m.x[2] / UM, m.y[1] / UM))
    view.graphics.scene().sigMouseMoved.emit(scene)
    assert view.readout_label.text().endswith("Bz = not measured")
    bz = bz.copy()
    bz[1, :] = 2.0 * UT
    view.fill_rows(bz, range(1, 2))
    assert view.readout_label.text().endswith("Bz = 2.000 µT")
    view.set_bz(np.where(np.isfinite(bz), -1.5 * UT, np.nan))
    assert view.readout_label.text().endswith("Bz = -1.500 µT")
    other = np.zeros((5, 6))
    other[1, 2] = 0.75 * UT
    with qtbot.waitSignal(view.readout) as got:
        view.set_map(grid_map(other))
    assert got.args[0].endswith("Bz = 0.750 µT")
    view.clear()
    assert view.readout_label.text() == "x, y, Bz: move the cursor over the map"
    view.set_map(grid_map(other))  # the cursor has not moved since: nothing to read out
    assert view.readout_label.text() == "x, y, Bz: move the cursor over the map"


def test_profile_of_a_linear_field_is_linear():
    x = np.arange(20) * 5 * UM
    y = np.arange(10) * 5 * UM
    bz = np.add.outer(0.3 * y / UM, 0.1 * x / UM) * UT  # Bz = 0.1 µT/µm x + 0.3 µT/µm y
    m = MapData(bz=bz, x=x, y=y)
    start, end = (10 * UM, 5 * UM), (80 * UM, 40 * UM)
    distance, values = profile_along(m, start, end, n=50)
    t = distance / distance[-1]
    xs = start[0] + t * (end[0] - start[0])
    ys = start[1] + t * (end[1] - start[1])
    np.testing.assert_allclose(values, (0.1 * xs / UM + 0.3 * ys / UM) * UT, rtol=1e-9)
    assert distance[-1] == pytest.approx(np.hypot(70, 35) * UM)
    _, off = profile_along(m, (-50 * UM, 0.0), (10 * UM, 0.0), n=7)
    assert np.isnan(off[0]) and np.isfinite(off[-1])


def test_profile_plot_shows_the_map_along_the_line(view):
    bz = np.tile(np.linspace(-1, 1, 30) * UT, (12, 1))
    view.set_map(grid_map(bz))
    view.profile_button.setChecked(True)
    _xs, ys = view.profile_curve.getData()
    start, end = view.profile_ends()
    assert start[1] == pytest.approx(end[1])  # a horizontal line across the middle
    assert ys[0] < 0 < ys[-1]
    assert np.all(np.diff(ys[np.isfinite(ys)]) >= -1e-12)


def _drag(view: MapView, a_um, b_um) -> None:
    vp = view.graphics.viewport()

    def widget_point(p):
        scene = view.view_box.mapViewToScene(QtCore.QPointF(*p))
        return QtCore.QPointF(view.graphics.mapFromScene(scene))

    def send(kind, p, buttons):
        global_p = QtCore.QPointF(vp.mapToGlobal(p.toPoint()))
        event = QtGui.QMouseEvent(
            kind,
            p,
            global_p,
            QtCore.Qt.MouseButton.LeftButton,
            buttons,
            QtCore.Qt.KeyboardModifier.NoModifier,
        )
        QtWidgets.QApplication.sendEvent(vp, event)

    a, b = widget_point(a_um), widget_point(b_um)
    left = QtCore.Qt.MouseButton.LeftButton
    send(QtCore.QEvent.Type.MouseButtonPress, a, left)
    for i in range(1, 9):
        send(QtCore.QEvent.Type.MouseMove, a + (b - a) * (i / 8), left)
    send(QtCore.QEvent.Type.MouseButtonRelease, b, QtCore.Qt.MouseButton.NoButton)


def test_dragging_a_rectangle_selects_an_area(view, qtbot):
    view.set_map(grid_map(np.zeros((30, 40))))
    view.select_button.setChecked(True)
    with qtbot.waitSignal(view.areaSelected) as got:
        _drag(view, (400, 450), (250, 300))  # right-to-left, top-to-bottom
    x0, y0, x1, y1 = got.args
    pixel = 400 / view.graphics.width() * UM  # the drag lands within a screen pixel or so
    assert x0 == pytest.approx(250 * UM, abs=3 * pixel)
    assert x1 == pytest.approx(400 * UM, abs=3 * pixel)
    assert y0 == pytest.approx(300 * UM, abs=3 * pixel)
    assert y1 == pytest.approx(450 * UM, abs=3 * pixel)


def test_without_selection_mode_a_drag_pans(view):
    view.set_map(grid_map(np.zeros((30, 40))))
    before = view.view_box.viewRange()
    _drag(view, (400, 450), (250, 300))
    assert view.area_corners() is None
    assert view.view_box.viewRange() != before


def test_grid_from_rectangle_fits_whole_steps():
    x0, y0, nx, ny = grid_from_rectangle(
        (300 * UM, 100 * UM), (100 * UM, 155 * UM), (10 * UM, 5 * UM)
    )
    assert (x0, y0) == pytest.approx((100 * UM, 100 * UM))
    assert (nx, ny) == (21, 12)


def test_linked_views_zoom_together(qtbot):
    a, b = MapView(), MapView()
    for v in (a, b):
        qtbot.addWidget(v)
        v.set_map(grid_map(np.zeros((10, 10))))
    b.link_to(a)
    a.view_box.setRange(xRange=(120, 150), yRange=(210, 240), padding=0)
    assert b.view_box.viewRange()[0] == pytest.approx(a.view_box.viewRange()[0])


def _right_click_menu(view: MapView, qtbot) -> QtWidgets.QMenu:
    """Right-clicks the middle of the map and returns the menu that pops up."""
    vp = view.graphics.viewport()
    centre = view.view_box.mapRectToScene(view.view_box.boundingRect()).center()
    p = QtCore.QPointF(view.graphics.mapFromScene(centre))
    right = QtCore.Qt.MouseButton.RightButton
    for kind, buttons in ((QtCore.QEvent.Type.MouseButtonPress, right),
                          (QtCore.QEvent.Type.MouseButtonRelease, QtCore.Qt.MouseButton.NoButton)):
        global_p = QtCore.QPointF(vp.mapToGlobal(p.toPoint()))
        event = QtGui.QMouseEvent(kind, p, global_p, right, buttons,
                                  QtCore.Qt.KeyboardModifier.NoModifier)
        QtWidgets.QApplication.sendEvent(vp, event)
    qtbot.waitUntil(lambda: isinstance(QtWidgets.QApplication.activePopupWidget(), QtWidgets.QMenu))
    menu = QtWidgets.QApplication.activePopupWidget()
    assert isinstance(menu, QtWidgets.QMenu)
    return menu


def _texts(menu: QtWidgets.QMenu) -> list[str]:
    return [a.text() for a in menu.actions() if not a.isSeparator()]


def test_right_click_on_the_map_offers_pyqtgraphs_menu(view, qtbot):
    view.set_map(grid_map(np.zeros((30, 40))))
    assert view.view_box.menu is None  # built on first use, not with the view
    menu = _right_click_menu(view, qtbot)
    try:
        texts = _texts(menu)
        assert "View All" in texts  # the view's own menu
        assert "Export..." in texts  # the scene's, added under it
        assert "Plot Options" in texts  # the plot's
        x_axis = next(a.menu() for a in menu.actions() if a.text() == "X axis")
        assert x_axis is not None and not x_axis.isEmpty()
    finally:
        menu.close()
    again = _right_click_menu(view, qtbot)  # the same menu, built once
    assert again is menu
    again.close()


def test_the_line_profile_is_built_when_first_shown_and_labelled_as_the_map(view):
    import pyqtgraph as pg

    from gui.map_view import Quantity

    view.set_map(grid_map(np.ones((12, 30))), Quantity("chi", "", 1.0))
    assert view.findChildren(pg.PlotWidget) == []  # no profile plot yet
    view.profile_button.setChecked(True)
    assert view.profile_plot.isVisible()
    assert view.profile_plot.getAxis("left").labelText == "chi"
    layout = view.layout()
    assert layout.indexOf(view.profile_plot) == 1  # between the map and its tools
    view.profile_button.setChecked(False)
    assert not view.profile_plot.isVisible()


def test_a_profile_turned_on_before_any_map_is_placed_across_the_first_map(view):
    """It stayed at (0, 0)–(1, 1) µm, off the map, when the map arrived."""
    view.profile_button.setChecked(True)
    bz = np.tile(np.linspace(-1, 1, 30) * UT, (12, 1))
    view.set_map(grid_map(bz))  # x 100..390 µm, y 200..310 µm
    (x0, y0), (x1, y1) = view.profile_ends()
    assert y0 == pytest.approx(y1) == pytest.approx(255 * UM)
    assert (x0, x1) == (pytest.approx(125 * UM), pytest.approx(365 * UM))  # pixels 95..395
    _xs, ys = view.profile_curve.getData()
    assert ys[0] < 0 < ys[-1]
    view.line.movePoint(0, (200, 220), finish=False)  # moved by the user: kept for the next
    view.set_map(grid_map(bz))
    assert view.profile_ends()[0] == (pytest.approx(200 * UM), pytest.approx(220 * UM))


def _wheel(view: MapView, steps: int) -> None:
    """Turn the mouse wheel over the middle of the map's view (as a user zooms)."""
    port = view.graphics.viewport()
    at = QtCore.QPointF(port.width() / 2, port.height() / 2)
    event = QtGui.QWheelEvent(at, port.mapToGlobal(at), QtCore.QPoint(),
                              QtCore.QPoint(0, 120 * steps), QtCore.Qt.MouseButton.NoButton,
                              QtCore.Qt.KeyboardModifier.NoModifier,
                              QtCore.Qt.ScrollPhase.NoScrollPhase, False)
    QtWidgets.QApplication.sendEvent(port, event)


def _linked_panes(qtbot) -> tuple[QtWidgets.QWidget, MapView, MapView, MapView]:
    """Three linked maps in a grid, as the MMT tab's panes."""
    panes = QtWidgets.QWidget()
    qtbot.addWidget(panes)
    lead, other, third = MapView(), MapView(), MapView()
    other.link_to(lead)
    third.link_to(lead)
    layout = QtWidgets.QGridLayout(panes)
    layout.addWidget(lead, 0, 0)
    layout.addWidget(other, 0, 1)
    layout.addWidget(third, 1, 0)
    layout.addWidget(QtWidgets.QLabel("net"), 1, 1)
    return panes, lead, other, third


def _linked_panes_shown(qtbot, width: int, height: int):
    """`_linked_panes` shown at `width` × `height` px."""
    panes, lead, other, third = _linked_panes(qtbot)
    panes.resize(width, height)
    panes.show()
    qtbot.waitExposed(panes)
    return panes, lead, other, third


def _each_given_the_map(*views) -> None:
    for view in views:
        view.set_map(grid_map(np.ones((30, 20)) * UT))  # 200 × 300 µm from (95, 195) µm


def _resized(panes, width: int, height: int) -> None:
    panes.resize(width, height)
    QtWidgets.QApplication.processEvents()


def _shows_the_whole_map(view) -> bool:
    (x0, x1), (y0, y1) = view.view_box.viewRange()
    return x0 <= 95 and x1 >= 295 and y0 <= 195 and y1 >= 495


def test_linked_maps_set_while_small_fill_their_views_when_shown_until_zoomed(qtbot):
    """Maps set while their (linked) views are small are fitted again when shown at their
    size and as they are resized; once the user zooms, a resize keeps the user's range."""
    panes, lead, other, third = _linked_panes_shown(qtbot, 300, 120)
    _each_given_the_map(lead, other, third)
    _resized(panes, 1300, 800)
    for view in (lead, other, third):
        assert _shows_the_whole_map(view)
        (y0, y1) = view.view_box.viewRange()[1]
        assert 300 / (y1 - y0) > 0.9  # the taller map fills its views' height
    _wheel(other, 2)
    zoomed = lead.view_box.viewRange()
    assert zoomed[1][1] - zoomed[1][0] < 300
    _resized(panes, 1000, 700)
    for view in (lead, other, third):  # still zoomed in: not fitted to the whole map again
        (y0, y1) = view.view_box.viewRange()[1]
        assert y1 - y0 < 300


def test_an_area_shown_while_the_views_are_small_is_shown_at_their_size(qtbot):
    panes, lead, other, third = _linked_panes_shown(qtbot, 300, 120)
    _each_given_the_map(lead, other, third)
    lead.zoom_to((150.0, 200.0), (300.0, 360.0))  # as a selected grain's surroundings
    _resized(panes, 1300, 800)
    (x0, x1), (y0, y1) = lead.view_box.viewRange()
    assert x0 <= 150 and x1 >= 200 and y0 <= 300 and y1 >= 360
    assert max(50 / (x1 - x0), 60 / (y1 - y0)) > 0.9


def test_a_linked_views_map_is_fitted_as_resized_when_the_lead_has_none(qtbot):
    """As the Compare tab with no remanent map: the map of a view linked to an empty one is
    fitted again at the views' size, not the lead's empty image (a few µm about 0)."""
    panes, _lead, other, _third = _linked_panes_shown(qtbot, 300, 120)
    _each_given_the_map(other)
    _resized(panes, 1300, 800)
    assert _shows_the_whole_map(other)
    (y0, y1) = other.view_box.viewRange()[1]
    assert 300 / (y1 - y0) > 0.9


def test_view_all_from_the_context_menu_is_kept_as_the_views_are_resized(qtbot):
    """A user's 'View All' after a grain's area was shown is not undone by a resize."""
    panes, lead, other, third = _linked_panes_shown(qtbot, 1300, 800)
    _each_given_the_map(lead, other, third)
    lead.zoom_to((150.0, 200.0), (300.0, 360.0))
    other.view_box.getMenu(None).viewAll.trigger()
    _resized(panes, 1000, 700)
    assert _shows_the_whole_map(lead)  # still the whole map


def test_the_plots_auto_range_button_is_kept_as_the_views_are_resized(qtbot):
    """The 'A' button (shown once zoomed) after a grain's area was shown: the view follows
    the whole map, not zoomed back to the area by a resize."""
    panes, lead, other, third = _linked_panes_shown(qtbot, 1300, 800)
    _each_given_the_map(lead, other, third)
    lead.zoom_to((150.0, 200.0), (300.0, 360.0))
    lead.plot.autoBtn.clicked.emit(lead.plot.autoBtn)
    panes.grab()  # painted: the auto range is applied as the view is drawn
    _resized(panes, 1000, 700)
    panes.grab()
    assert _shows_the_whole_map(lead)  # still the whole map


def _shows_the_area_at_its_size(view) -> bool:
    """The area (150…200, 300…360) µm of `zoom_to` below, filling the view's width or height."""
    (x0, x1), (y0, y1) = view.view_box.viewRange()
    return (x0 <= 150 and x1 >= 200 and y0 <= 300 and y1 >= 360
            and max(50 / (x1 - x0), 60 / (y1 - y0)) > 0.9)


def test_a_view_unlinked_from_its_lead_no_longer_holds_the_leads_range(qtbot):
    """Unlinked (as the context menu's Link Axis set to none does), a view's own map and
    zoom are its own: its map fitted does not take the place of the area its former lead
    shows, nor does its zoom let that area go, as the views are resized."""
    panes, lead, other, third = _linked_panes_shown(qtbot, 300, 120)
    _each_given_the_map(lead, other, third)
    lead.zoom_to((150.0, 200.0), (300.0, 360.0))
    other.view_box.setXLink(None)
    other.view_box.setYLink(None)
    other.set_map(grid_map(np.ones((30, 20)) * UT))
    _resized(panes, 1300, 800)
    assert _shows_the_area_at_its_size(lead) and _shows_the_area_at_its_size(third)
    assert _shows_the_whole_map(other)
    _wheel(other, 2)
    _resized(panes, 1000, 700)
    assert _shows_the_area_at_its_size(lead)


def test_linked_views_deleted_leave_the_others_resizing_and_zooming(qtbot):
    """A view deleted (its pane closed) while the others follow it, or while its lead holds
    its map fitted: the others' next resize and zoom raised 'wrapped C/C++ object deleted'."""
    from PyQt6 import sip

    panes, lead, other, third = _linked_panes_shown(qtbot, 300, 120)
    _each_given_the_map(lead, third, other)  # the lead holds `other`'s map fitted
    other.deleteLater()
    qtbot.waitUntil(lambda: sip.isdeleted(other))
    _resized(panes, 1300, 800)
    lead.zoom_to((150.0, 200.0), (300.0, 360.0))
    lead.deleteLater()
    qtbot.waitUntil(lambda: sip.isdeleted(lead))
    _resized(panes, 1000, 700)
    _wheel(third, 2)
    _resized(panes, 1100, 700)
    assert third.map is not None


def test_another_quantity_on_the_same_grid_keeps_the_users_zoom(view):
    """Switching Bz to its SD (or another map of the scan) reset a zoom on a grain: kept when
    the grid is the same, fitted when it is not."""
    from gui.map_view import Quantity

    view.set_map(grid_map(np.ones((30, 20)) * UT))
    view.view_box.setRange(xRange=(150, 170), yRange=(300, 320), padding=0)
    view.keep_range()
    zoomed = view.view_box.viewRange()
    view.set_map(grid_map(np.full((30, 20), 0.1)), Quantity("SD of χ", "SI", 1.0),
                 keep_range=True)
    assert np.ravel(view.view_box.viewRange()) == pytest.approx(np.ravel(zoomed))
    view.set_map(grid_map(np.ones((30, 20)) * UT, step=5 * UM), keep_range=True)
    (x0, x1), (y0, y1) = view.view_box.viewRange()
    assert x0 <= 97.5 and x1 >= 197.5 and y0 <= 197.5 and y1 >= 347.5  # fitted: another grid


def test_a_long_title_does_not_widen_the_plot(view):
    """A long file or quantity name in the title held the plot wider than its view, its
    colour bar pushed out of sight (and kept so when the title was shortened again)."""
    view.set_map(grid_map(np.ones((30, 20)) * UT))
    width = view.graphics.viewport().width()
    long = "session_2026-12-07_sample_B12_after_AF_100mT_" * 6 + ": SD of magnetization"
    view.plot.setTitle(long)
    QtWidgets.QApplication.processEvents()
    assert view.plot.width() <= width
    assert view.colour_bar.sceneBoundingRect().right() <= width
    title = view.plot.titleLabel
    assert title.text == long and title.toolTip() == long  # the whole of it, still
    assert title.itemRect().width() <= title.width()
    view.plot.setTitle("Bz")
    QtWidgets.QApplication.processEvents()
    assert title.item.toPlainText() == "Bz" and title.toolTip() == ""
