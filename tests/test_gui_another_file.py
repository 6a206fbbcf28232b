"""Opening another session file: nothing of the file before stays on show in the Session tab
(its maps, the grain outlines drawn over them, its entries picked to compare, its selection),
and what was still being read for it is not drawn over the new file's maps."""

from __future__ import annotations

import threading

import h5py
import numpy as np
import pytest
from session_reads import compared, opened, refreshed

from gui.session_browser import SessionBrowser
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry

UM = 1e-6
UT = 1e-6
WAIT_MS = 60_000
GRAINS = "grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,10,10,-5,10,10,4\n2,40,30,-5,6,6,4\n"


def a_map(name: str, value: float, field=(0.0, 0.0, 0.0), x0: float = 0.0) -> MapData:
    x = x0 + np.arange(12) * 5 * UM
    y = np.arange(8) * 5 * UM
    return MapData(bz=np.full((8, 12), value), x=x, y=y, height=50 * UM,
                   sensor_size=(1e-6, 1e-6), applied_field=np.array(field), name=name,
                   title=f"{name} map")


def settled(browser, qtbot) -> None:
    qtbot.waitUntil(lambda: browser.reading is None and browser.reader.pending == 0
                    and browser.grain_reader.pending == 0, timeout=WAIT_MS)


@pytest.fixture
def files(tmp_path):
    """File A: a remanent and an in-field scan, the remanent one aborted after its first line
    (resumable); file B: a remanent scan only, somewhere else."""
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    write_map_entry(a, a_map("rem", 1 * UT), kind="scan")
    write_map_entry(a, a_map("inf", 3 * UT, field=(0, 0, 50 * UT)), kind="scan")
    with h5py.File(a, "a") as f:
        f["rem/status"][()] = "aborted"
        f["rem/data/line_done"] = np.arange(8) < 1
    write_map_entry(b, a_map("other", 2 * UT, x0=1000 * UM), kind="scan")
    return a, b


@pytest.fixture
def browser(qtbot):
    b = SessionBrowser()
    qtbot.addWidget(b)
    b.resize(1200, 700)
    b.show()
    return b


def outline_points(view) -> int:
    xs, _ys = view.outlines.getData()
    return 0 if xs is None else xs.size


def test_another_file_shows_nothing_of_the_file_before(browser, qtbot, files, tmp_path):
    a, b = files
    grains = tmp_path / "grains.csv"
    grains.write_text(GRAINS)
    assert opened(browser, qtbot, a)
    browser.show_entry(0)
    browser.table.selectRow(0)
    assert browser.resume_button.isEnabled()  # the aborted remanent scan of file A
    with qtbot.waitSignal(browser.grainsLoaded, timeout=WAIT_MS):
        browser.load_grains(grains)
    settled(browser, qtbot)
    views = (browser.map_view, *compared(browser, qtbot).values())
    assert browser.map_view.map.name == "rem"
    assert browser.compare.views["in-field"].map.name == "inf"
    assert all(outline_points(v) > 0 for v in views)
    assert "2 grains of grains.csv" in browser.grain_note.text()

    assert opened(browser, qtbot, b)
    settled(browser, qtbot)
    assert all(outline_points(v) == 0 for v in views)  # A's grains are not under B's maps
    assert browser.outlines_drawn == "" and browser.grain_note.isHidden()
    assert browser.map_view.map is None  # A's map is not shown as if it were B's
    assert browser.compare.views["remanent"].map.name == "other"
    assert browser.compare.views["in-field"].map is None  # B has no in-field scan
    assert browser.table.selectedIndexes() == []
    assert not browser.resume_button.isEnabled()  # no entry of B was chosen to resume


def test_the_same_file_read_again_keeps_its_outlines(browser, qtbot, files, tmp_path):
    """The window reads the open file again after every scan and write: that is no other
    file, and its outlines stay."""
    a, _b = files
    grains = tmp_path / "grains.csv"
    grains.write_text(GRAINS)
    assert opened(browser, qtbot, a)
    with qtbot.waitSignal(browser.grainsLoaded, timeout=WAIT_MS):
        browser.load_grains(grains)
    assert opened(browser, qtbot, a)
    assert refreshed(browser, qtbot)
    settled(browser, qtbot)
    assert outline_points(browser.map_view) > 0 and browser.outlines_drawn


def test_grains_still_being_read_when_another_file_opens_are_not_drawn(browser, qtbot, files,
                                                                       tmp_path, monkeypatch):
    from gui import grain_outlines

    a, b = files
    grains = tmp_path / "grains.csv"
    grains.write_text(GRAINS)
    release = threading.Event()
    shaped_grains = grain_outlines.shaped_grains

    def held(*args, **kwargs):
        release.wait(WAIT_MS / 1000)
        return shaped_grains(*args, **kwargs)

    monkeypatch.setattr(grain_outlines, "shaped_grains", held)
    assert opened(browser, qtbot, a)
    browser.load_grains(grains)
    assert opened(browser, qtbot, b)
    with qtbot.waitSignal(browser.grainsFailed, timeout=WAIT_MS) as failed:
        release.set()
    assert failed.args[0] == ("Grain outlines of grains.csv not drawn: another session file "
                              "was opened while they were read")
    assert browser.message.text() == failed.args[0]
    settled(browser, qtbot)
    assert outline_points(browser.map_view) == 0 and browser.outlines_drawn == ""


def test_the_scan_tabs_last_map_and_its_area_go_with_the_file_before(window, files, qtbot):
    """A map opened on the Session tab is the Scan tab's last map, to select the next scan's
    area on; opening another session file (the Scan tab then scans into it) takes that map
    and its area away, with 'Grid from the area', rather than leave another sample's map."""
    a, b = files
    session, scan = window.session, window.scan
    assert opened(session, qtbot, a)
    with qtbot.waitSignal(session.mapShown, timeout=WAIT_MS):
        session.show_entry(session._row_of("inf"))
    assert scan.view.map is not None and scan.view.map.name == "inf"
    scan.view.set_area((10 * UM, 10 * UM), (40 * UM, 30 * UM))
    scan.view._area_changed()
    assert scan.form.from_area.isEnabled()
    assert opened(session, qtbot, a)  # the same file again: the map stays
    assert scan.view.map is not None
    assert opened(session, qtbot, b)
    assert scan.path == b
    assert scan.view.map is None and scan.view.area_corners() is None
    assert not scan.form.from_area.isEnabled()
