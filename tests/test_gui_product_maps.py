"""χ and magnetization entries are shown as χ and M, with their standard deviation."""

from __future__ import annotations

import numpy as np
import pytest
from session_reads import opened

from gui.session_browser import SessionBrowser
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry
from smm_daq.storage.product_maps import read_product_map
from smm_daq.storage.products import MapPlot

UM = 1e-6
UT = 1e-6


def a_map(name: str) -> MapData:
    x = np.arange(10) * 5 * UM
    y = np.arange(6) * 5 * UM
    return MapData(bz=np.full((6, 10), 0.5 * UT), x=x, y=y, height=50 * UM,
                   sensor_size=(1e-6, 1e-6), applied_field=np.zeros(3), name=name, title=name)


@pytest.fixture
def browser(qtbot, tmp_path):
    path = tmp_path / "s.h5"
    write_map_entry(path, a_map("scan"), kind="scan")
    chi = np.linspace(0, 3, 60).reshape(6, 10)
    write_map_entry(path, a_map("chi"), kind="susceptibility", default="chi",
                    plots=[MapPlot("chi", "chi", chi, "1", "susceptibility χ (SI)",
                                   errors=chi / 10 + 0.01)])
    write_map_entry(path, a_map("mag"), kind="magnetization", default="magnetization",
                    plots=[MapPlot("magnetization", "M", chi * 1e3, "A/m", "M")])
    b = SessionBrowser()
    qtbot.addWidget(b)
    assert opened(b, qtbot, path)
    qtbot.waitUntil(lambda: b.reader.pending == 0, timeout=60_000)  # the maps to compare
    return b


def row_of(browser, name: str) -> int:
    return next(r for r in range(browser.table.rowCount())
                if browser.table.item(r, 0).text() == name)


def show(browser, qtbot, name: str) -> None:
    """Double-click entry `name`: its map shown once read (off the GUI thread)."""
    with qtbot.waitSignal(browser.mapShown, timeout=60_000):
        browser.show_entry(row_of(browser, name))


def test_reader_returns_the_default_map_and_its_errors(browser) -> None:
    p = read_product_map(browser.path, "chi")
    assert p is not None and p.units == "1" and p.signal == "chi"
    np.testing.assert_allclose(p.errors, p.values / 10 + 0.01)
    assert read_product_map(browser.path, "scan") is None


def test_reader_returns_the_product_on_its_grid(tmp_path) -> None:
    """A product map read back came without coordinates: it now comes on the axes its NXdata
    group plots it against (as h5py reads them), with the rest `read_map` returns."""
    import h5py

    path = tmp_path / "p.h5"
    m = a_map("chi")
    m = m.with_bz(m.bz, x=m.x + 12.5e-3, y=m.y - 3e-3, sources=("induced",))
    write_map_entry(path, m, kind="susceptibility", default="chi",
                    plots=[MapPlot("chi", "chi", np.ones(m.shape), "1", "χ")])
    p = read_product_map(path, "chi")
    assert p is not None
    with h5py.File(path, "r") as f:
        plot = f["chi"][f["chi"].attrs["default"]]
        y_axis, x_axis = (a.decode() if isinstance(a, bytes) else a for a in plot.attrs["axes"])
        np.testing.assert_array_equal(p.x, plot[x_axis][()])
        np.testing.assert_array_equal(p.y, plot[y_axis][()])
        assert plot[x_axis].attrs["units"] == "m"
    assert p.values.shape == (p.y.size, p.x.size)
    assert p.grid.height == m.height and p.grid.sources == ("induced",)


def test_chi_shows_as_chi_then_its_sd_then_its_bz(browser, qtbot) -> None:
    show(browser, qtbot, "chi")
    view = browser.map_view
    assert not browser.show_choice.isHidden()
    assert [browser.show_choice.itemText(i) for i in range(browser.show_choice.count())] == [
        "χ", "SD of χ", "Bz (its model)"]
    assert view.quantity.name == "χ" and view.quantity.unit == "SI"
    assert view.map.bz[5, 9] == pytest.approx(3.0)
    assert "χ = 3 SI" in view.describe(45 * UM, 25 * UM)

    browser.show_choice.setCurrentIndex(1)
    assert view.quantity.name == "SD of χ"
    assert view.map.bz[5, 9] == pytest.approx(0.31)

    browser.show_choice.setCurrentIndex(2)
    assert view.quantity.name == "Bz"
    assert view.map.bz[0, 0] == pytest.approx(0.5 * UT)


def test_another_quantity_of_the_entry_keeps_the_users_zoom(browser, qtbot) -> None:
    """A user zoomed on a grain in χ, then switching to its SD or its Bz, saw the whole map
    again: the same region is shown (the same grid); another entry is fitted."""
    show(browser, qtbot, "chi")
    view = browser.map_view
    view.view_box.setRange(xRange=(10, 20), yRange=(5, 15), padding=0)
    view.keep_range()
    zoomed = np.ravel(view.view_box.viewRange())
    for choice, name in ((1, "SD of χ"), (2, "Bz")):
        browser.show_choice.setCurrentIndex(choice)
        assert view.quantity.name == name
        assert np.ravel(view.view_box.viewRange()) == pytest.approx(zoomed)
    show(browser, qtbot, "mag")
    (x0, x1), (y0, y1) = view.view_box.viewRange()
    assert x0 <= -2.5 and x1 >= 47.5 and y0 <= -2.5 and y1 >= 27.5


def test_magnetization_without_sd_and_scans_without_a_choice(browser, qtbot) -> None:
    show(browser, qtbot, "mag")
    assert browser.map_view.quantity.unit == "A/m"
    assert browser.show_choice.count() == 2  # M and Bz: no SD stored
    show(browser, qtbot, "scan")
    assert browser.show_choice.isHidden()
    assert browser.map_view.quantity.name == "Bz"


def test_a_double_clicked_entry_is_read_off_the_gui_thread(browser, qtbot, monkeypatch) -> None:
    """A large map (and its χ) takes seconds to read: the window stays live meanwhile."""
    import threading

    from gui import session_browser

    readers: list[tuple[str, threading.Thread]] = []

    def recording(name: str):
        done = getattr(session_browser, name)

        def recorded(*args):
            readers.append((name, threading.current_thread()))
            return done(*args)

        return recorded

    for name in ("read_map", "read_product_map"):
        monkeypatch.setattr(session_browser, name, recording(name))
    show(browser, qtbot, "chi")
    # the product's grid is the entry's map: read once, not again by read_map
    assert [name for name, _t in readers] == ["read_product_map"]
    assert all(t is not threading.main_thread() for _n, t in readers)
    assert browser.map_view.quantity.name == "χ"
    readers.clear()
    show(browser, qtbot, "scan")
    assert [name for name, _t in readers] == ["read_product_map", "read_map"]
    assert all(t is not threading.main_thread() for _n, t in readers)
    assert browser.map_view.quantity.name == "Bz"


def test_an_entry_that_cannot_be_read_says_why(browser, qtbot, monkeypatch) -> None:
    from gui import session_browser
    from smm_daq.errors import InputError

    def broken(path, entry):
        raise InputError("is cut short; expected Bz of (6, 10)", source=f"{path}, {entry}")

    monkeypatch.setattr(session_browser, "read_map", broken)
    ended: list[bool] = []
    browser.show_entry(row_of(browser, "scan"), ended.append)
    qtbot.waitUntil(lambda: bool(ended), timeout=60_000)
    assert ended == [False]
    assert browser.message.text().endswith("scan: is cut short; expected Bz of (6, 10)")
    assert browser.map_view.map is None


def test_another_file_shows_no_product_of_the_file_before(browser, qtbot, tmp_path) -> None:
    """χ shown, then another file opened: no χ choice, name or unit stays over no map."""
    show(browser, qtbot, "chi")
    other = tmp_path / "other.h5"
    write_map_entry(other, a_map("scan"), kind="scan")
    assert opened(browser, qtbot, other)
    qtbot.waitUntil(lambda: browser.reader.pending == 0, timeout=60_000)
    view = browser.map_view
    assert view.map is None and browser.product is None
    assert browser.show_choice.isHidden() and browser.show_choice.count() == 0
    assert view.quantity.name == "Bz"
    assert view.colour_bar.getAxis("left").label.toPlainText().strip() == "Bz (µT)"
