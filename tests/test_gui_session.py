"""Session browser: entries with status, maps open in views, side-by-side with linked zoom."""

from __future__ import annotations

import numpy as np
import pytest
from PyQt6 import QtCore
from session_reads import compared, opened, refreshed

from gui.compare_view import guess_roles
from gui.grain_outlines import CIRCLE_SIDES, polygon_segments
from gui.session_browser import SessionBrowser
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import list_entries, write_map_entry

# the Dragonfly files read here give no sample top on purpose; its warning is checked in
# test_mmt_formats
pytestmark = pytest.mark.filterwarnings("ignore:.*no sample top given")

UM = 1e-6
UT = 1e-6
WAIT_MS = 60_000
# a turn cuboid grains cannot take, refused naming the MMT tab's Registration, not the option
TURN_REFUSED = "the Registration's turn (then: turned) is 45 with cuboid grains"


def read_grains_into(browser, qtbot, path, fmt: str = "cuboids") -> bool:
    """Outlines of a grain file drawn (True) or refused (False), once its read in the worker
    has ended."""
    ended: list[bool] = []

    def loaded(*_args) -> None:
        ended.append(True)

    def failed(_why: str) -> None:
        ended.append(False)

    browser.grainsLoaded.connect(loaded)
    browser.grainsFailed.connect(failed)
    try:
        browser.load_grains(path, fmt)
        qtbot.waitUntil(lambda: bool(ended), timeout=WAIT_MS)
    finally:
        browser.grainsLoaded.disconnect(loaded)
        browser.grainsFailed.disconnect(failed)
    return ended[0]


def settled(browser, qtbot) -> None:
    """Wait until the entries, maps (and images) the browser reads off the GUI thread are
    shown."""
    qtbot.waitUntil(lambda: browser.reading is None and browser.reader.pending == 0,
                    timeout=WAIT_MS)


def a_map(name: str, value: float, field=(0.0, 0.0, 0.0), sources=()) -> MapData:
    x = np.arange(12) * 5 * UM
    y = np.arange(8) * 5 * UM
    bz = np.full((8, 12), value)
    bz[3, 4] = -2 * value
    return MapData(
        bz=bz,
        x=x,
        y=y,
        height=50 * UM,
        sensor_size=(1e-6, 1e-6),
        applied_field=np.array(field),
        name=name,
        title=f"{name} map",
        sources=sources,
    )


@pytest.fixture
def session_file(tmp_path):
    path = tmp_path / "session.h5"
    write_map_entry(path, a_map("rem", 1 * UT), kind="scan")
    write_map_entry(path, a_map("inf", 3 * UT, field=(0, 0, 50 * UT)), kind="scan")
    write_map_entry(path, a_map("ind", 2 * UT, sources=("inf", "rem")), kind="induced")
    return path


@pytest.fixture
def browser(qtbot, session_file):
    b = SessionBrowser()
    qtbot.addWidget(b)
    b.resize(1200, 700)
    b.show()
    assert opened(b, qtbot, session_file)
    settled(b, qtbot)
    return b


def test_entries_are_listed_with_kind_and_status(browser):
    rows = {
        browser.table.item(r, 0).text(): (
            browser.table.item(r, 1).text(),
            browser.table.item(r, 2).text(),
            browser.table.item(r, 5).text(),
        )
        for r in range(browser.table.rowCount())
    }
    assert rows == {
        "rem": ("scan", "finished", "(0, 0, 0)"),
        "inf": ("scan", "finished", "(0, 0, 50)"),
        "ind": ("induced", "finished", "(0, 0, 0)"),
    }


def test_times_are_shown_in_local_time_with_the_zone(browser, monkeypatch):
    """The started column showed the file's ISO 8601 text (an offset the user had to add);
    now local time and the zone's name, the file keeping its ISO 8601."""
    import time

    from gui.local_time import shown_time

    started = {browser.table.item(r, 0).text(): browser.table.item(r, 7).text()
               for r in range(browser.table.rowCount())}
    written = {e.name: e.start_time for e in browser.entries}
    for name, text in started.items():
        assert "T" in written[name] and text == shown_time(written[name]), (name, text)
    monkeypatch.setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3")  # POSIX rule: no zone files needed
    time.tzset()
    try:
        assert shown_time("2026-12-07T14:26:00+00:00") == "2026-12-07 15:26:00 CET"
        assert shown_time("2026-07-07T16:26:00+02:00") == "2026-07-07 16:26:00 CEST"
        assert shown_time("2026-10-25T00:30:00+00:00") == "2026-10-25 02:30:00 CEST"
        assert shown_time("2026-10-25T01:30:00+00:00") == "2026-10-25 02:30:00 CET"
        assert shown_time("") == "" and shown_time("2026-12-07T14:26:00") == "2026-12-07 14:26:00"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_time_at_the_ends_of_the_calendar_is_listed_as_written(monkeypatch):
    """Another writer's "no time" (year 1) raised as it was turned into local time or an
    instant, and the file's entries were not listed: shown as written, sorted first."""
    import math
    import time

    from gui.local_time import shown_time, time_key

    monkeypatch.setenv("TZ", "EST5EDT,M3.2.0,M11.1.0")  # west of UTC: year 1 turns year 0
    time.tzset()
    try:
        assert shown_time("0001-01-01T00:00:00+00:00") == "0001-01-01T00:00:00+00:00"
        assert time_key("0001-01-01T00:00:00") == -math.inf
        assert shown_time("2026-12-07T14:26:00+00:00") == "2026-12-07 09:26:00 EST"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_small_applied_field_is_not_shown_as_zero(qtbot, tmp_path):
    """The field column shows the field to the nT, as the Scan tab's form takes it: a scan at
    40 nT (in-field to the Compare tab's guess) does not read (0.0, 0.0, 0.0) beside the
    zero-field scan, and a field below half a nT reads 0, not -0.0."""
    path = tmp_path / "small.h5"
    write_map_entry(path, a_map("zero", 1 * UT, field=(-0.0004 * UT, 0.0, 0.0)), kind="scan")
    write_map_entry(path, a_map("small", 1 * UT, field=(0.0, -0.04 * UT, 0.025 * UT)),
                    kind="scan")
    b = SessionBrowser()
    qtbot.addWidget(b)
    assert opened(b, qtbot, path)  # its entries read in the worker, then shown
    fields = {b.table.item(r, 0).text(): b.table.item(r, 5).text()
              for r in range(b.table.rowCount())}
    assert fields == {"zero": "(0, 0, 0)", "small": "(0, -0.04, 0.025)"}
    assert guess_roles(list_entries(path)) == {"remanent": "zero", "in-field": "small"}


def test_double_click_opens_the_map(browser, qtbot):
    row = next(r for r in range(3) if browser.table.item(r, 0).text() == "inf")
    with qtbot.waitSignal(browser.mapShown) as shown:
        browser.table.cellDoubleClicked.emit(row, 0)
    assert shown.args[0].name == "inf"
    assert browser.map_view.map.bz[3, 4] == pytest.approx(-6 * UT)
    assert browser.map_view.colour_bar.levels() == pytest.approx((-6.0, 6.0))


def test_compare_shows_the_three_maps_side_by_side(browser, qtbot):
    views = compared(browser, qtbot)
    assert {role: v.map.name for role, v in views.items()} == {
        "remanent": "rem",
        "in-field": "inf",
        "induced": "ind",
    }
    views["induced"].view_box.setRange(xRange=(10, 20), yRange=(10, 20), padding=0)
    zoomed = views["induced"].view_box.viewRange()[0]
    assert zoomed[0] <= 10 and zoomed[1] >= 20 and zoomed[1] - zoomed[0] < 15
    for view in views.values():  # shown, each keeps its aspect ratio in its own width
        x, y = view.view_box.viewRange()
        assert y == pytest.approx(views["induced"].view_box.viewRange()[1], abs=1e-6)
        assert sum(x) / 2 == pytest.approx(15, abs=1e-6) and x[1] - x[0] < 15
        # its own width: a view whose y axis labels take a few more pixels shows a little less
        # of x (it showed all of 10 … 20 only while its plot ran past its pane)
        box = view.view_box.geometry()
        assert (x[1] - x[0]) / (y[1] - y[0]) == pytest.approx(box.width() / box.height(),
                                                              rel=1e-3)
        # the plot within its pane: its title on one line held the remanent's plot wider,
        # which cut off its colour bar
        assert view.plot.geometry().right() <= view.graphics.viewport().width()


def test_choosing_another_entry_shows_it(browser, qtbot):
    compared(browser, qtbot)
    browser.compare.choosers["remanent"].setCurrentText("inf")
    settled(browser, qtbot)
    assert browser.compare.views["remanent"].map.name == "inf"


def test_the_entries_picked_to_compare_stay_when_the_file_is_read_again(browser, session_file,
                                                                      tmp_path, qtbot):
    """The window reads the file again after every scan and write: the maps the user chose to
    compare must stay, where the guess fills only the roles not chosen; another file is
    guessed afresh."""
    compared(browser, qtbot)
    write_map_entry(session_file, a_map("rem2", 1.5 * UT), kind="scan")
    assert refreshed(browser, qtbot)
    remanent = browser.compare.choosers["remanent"]
    remanent.setCurrentIndex(remanent.findText("rem2"))
    remanent.activated.emit(remanent.currentIndex())  # as a user's choice does
    write_map_entry(session_file, a_map("inf2", 4 * UT, field=(0, 0, 50 * UT)), kind="scan")
    assert refreshed(browser, qtbot)
    settled(browser, qtbot)
    views = browser.compare.views
    assert views["remanent"].map.name == "rem2"
    assert (views["in-field"].map.name, views["induced"].map.name) == ("inf", "ind")
    other = tmp_path / "other.h5"
    write_map_entry(other, a_map("rem2", 1 * UT), kind="scan")
    write_map_entry(other, a_map("zero", 1 * UT), kind="scan")
    assert opened(browser, qtbot, other)
    settled(browser, qtbot)
    assert views["remanent"].map.name == "zero"


def test_guess_without_an_induced_entry_uses_the_field(tmp_path):
    path = tmp_path / "s.h5"
    write_map_entry(path, a_map("zero-1", 1 * UT), kind="scan")
    write_map_entry(path, a_map("field-1", 1 * UT, field=(20 * UT, 0, 0)), kind="scan")
    write_map_entry(path, a_map("zero-2", 1 * UT), kind="scan")
    assert guess_roles(list_entries(path)) == {"remanent": "zero-2", "in-field": "field-1"}


def test_outlines_are_drawn_over_every_map(browser):
    square = np.array([[10, 10], [20, 10], [20, 20], [10, 20]]) * UM
    browser.set_outlines(polygon_segments(square))
    for view in (browser.map_view, *browser.compare.views.values()):
        xs, ys = view.outlines.getData()
        assert xs.size == 8  # four sides, two ends each, in µm
        assert set(xs) == {10.0, 20.0} and set(ys) == {10.0, 20.0}


def test_grain_outlines_from_a_grain_file(browser, tmp_path, qtbot):
    grains = tmp_path / "grains.csv"
    grains.write_text(
        "grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n"
        "1,10,10,-5,10,10,4\n"
        "1,20,10,-5,10,10,4\n"  # shares an edge with the first: one 20 × 10 outline
        "2,40,30,-5,6,6,4\n"
    )
    assert read_grains_into(browser, qtbot, grains), browser.message.text()
    xs, ys = browser.map_view.outlines.getData()
    sides = np.hypot(xs[1::2] - xs[::2], ys[1::2] - ys[::2])
    assert sides.sum() == pytest.approx(2 * (20 + 10) + 4 * 6)  # µm


def rings(view) -> tuple[np.ndarray, np.ndarray]:
    """Centres (G, 2) and diameters (G,) in µm of the circles a view draws, one per grain."""
    xs, ys = view.outlines.getData()
    ends = np.column_stack([xs, ys]).reshape(-1, 2 * CIRCLE_SIDES, 2)  # two ends a side
    centres = ends.mean(axis=1)
    return centres, 2 * np.linalg.norm(ends - centres[:, None, :], axis=2).mean(axis=1)


SPHERE_2UM = 4 / 3 * np.pi * (2 * UM) ** 3  # m³: 4 µm across


def write_points(path):
    path.write_text(f"1e-5 2e-5 -5e-6 {SPHERE_2UM!r} 7\n4e-5 1e-5 -8e-6 1e-18 9\n")


def write_npz(path):
    np.savez(path, particle_positions=np.array([[10, 20, -5], [40, 10, -8]]) * UM,
             volumes=np.array([SPHERE_2UM, 1e-18]))


@pytest.mark.parametrize(("name", "fmt", "write"), [("grains.txt", "points", write_points),
                                                      ("particles.npz", "mpe", write_npz)])
def test_point_grains_are_drawn_as_their_volume_equivalent_spheres(browser, tmp_path, qtbot,
                                                                   name, fmt, write):
    grains = tmp_path / name
    write(grains)
    with qtbot.waitSignal(browser.grainsLoaded, timeout=WAIT_MS) as loaded:
        browser.load_grains(grains, fmt)
    assert loaded.args == [grains, fmt]
    for view in (browser.map_view, *browser.compare.views.values()):
        centres, diameters = rings(view)
        np.testing.assert_allclose(centres, [[10, 20], [40, 10]], atol=1e-9)
        np.testing.assert_allclose(diameters, np.cbrt(6 * np.array([SPHERE_2UM, 1e-18]) / np.pi)
                                   / UM, rtol=0.01)


def write_dragonfly_export(path):
    path.write_text(
        "Label Index;Voxel count;Volume (mm³);Center Of Mass X (mm);Center Of Mass Y (mm);"
        "Center Of Mass Z (mm);\n"
        "1;672;6.72e-07;0.020;0.015;0.494;\n"
        "2;2;2.0e-09;0.030;0.020;0.495;\n"  # too few voxels
        "3;900;9.0e-07;0.500;0.050;0.490;\n",  # outside the map
        encoding="utf-8")


@pytest.fixture
def main_window(qtbot, settings):
    """The main window, its rig not connected."""
    from gui.main_window import MainWindow
    from smm_daq.instruments.profile import load_profile

    window = MainWindow(load_profile(), settings, persist=False)
    qtbot.addWidget(window)
    return window


def test_dragonfly_outlines_use_the_mmt_tabs_options(qtbot, main_window, session_file, tmp_path):
    """What is drawn is what the MMT tab will invert: its minimum voxel count, and "only
    grains under the scan" with the map shown as the scan."""
    export = tmp_path / "cc.csv"
    write_dragonfly_export(export)
    session, mmt = main_window.session, main_window.mmt
    assert opened(session, qtbot, session_file)
    session.show_entry(0)  # the map (0..55 µm × 0..35 µm) the grains are drawn over
    settled(session, qtbot)
    mmt.dragonfly.min_voxels.setValue(5)
    mmt.dragonfly.crop.setChecked(True)
    assert read_grains_into(session, qtbot, export, "dragonfly"), session.message.text()
    centres, diameters = rings(session.map_view)
    np.testing.assert_allclose(centres, [[20, 15]], atol=1e-9)
    assert diameters[0] == pytest.approx(np.cbrt(6 * 6.72e-16 / np.pi) / UM, rel=0.01)
    assert (mmt.grain_edit.text(), mmt.grain_format.currentText()) == (str(export), "dragonfly")
    mmt.dragonfly.crop.setChecked(False)
    assert read_grains_into(session, qtbot, export, "dragonfly")
    np.testing.assert_allclose(rings(session.map_view)[0], [[20, 15], [500, 50]], atol=1e-9)


def test_outlines_are_drawn_where_the_mmt_tabs_registration_puts_the_grains(
        qtbot, main_window, session_file, tmp_path):
    """Turned and shifted as the MMT tab will invert them, then cropped to the scan: the
    grain at CT (500, 50) µm comes under the map, the two that were under it leave."""
    export = tmp_path / "cc.csv"
    write_dragonfly_export(export)
    session, mmt = main_window.session, main_window.mmt
    assert opened(session, qtbot, session_file)
    session.show_entry(0)  # the map (0..55 µm × 0..35 µm) the grains are drawn over
    settled(session, qtbot)
    mmt.dragonfly.crop.setChecked(True)
    reg = mmt.registration
    reg.setChecked(True)
    for box, value in ((reg.dx, -480), (reg.dy, -30), (reg.rotation, 90), (reg.ox, 500),
                       (reg.oy, 50)):
        box.setValue(value)
    assert read_grains_into(session, qtbot, export, "dragonfly"), session.message.text()
    np.testing.assert_allclose(rings(session.map_view)[0], [[20, 20]], atol=1e-9)
    assert "grains turned 90° about (500, 50) µm, then shifted by (-480, -30, 0) µm" \
        in session.grain_note.text()
    reg.rotation.setValue(45)  # cuboids cannot be drawn turned so: refused as the tab does
    grains = tmp_path / "grains.csv"
    grains.write_text("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,20,10,-5,10,10,4\n")
    assert not read_grains_into(session, qtbot, grains)
    assert TURN_REFUSED in session.message.text()


def segment_ends(view) -> set[tuple[float, float]]:
    """The ends of the outline segments a view draws, in µm, rounded to 1 nm."""
    xs, ys = view.outlines.getData()
    return {(round(float(x), 3), round(float(y), 3)) for x, y in zip(xs, ys, strict=True)}


def test_the_outlines_drawn_move_when_the_mmt_tabs_registration_changes(
        qtbot, main_window, session_file, tmp_path):
    """Drawn before the registration was chosen, the outlines follow it as it changes, with
    no grain file chosen again; once the changes stop coming, one read."""
    session, mmt = main_window.session, main_window.mmt
    assert opened(session, qtbot, session_file)
    grains = tmp_path / "grains.csv"
    grains.write_text("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,20,10,-5,10,10,4\n")
    assert read_grains_into(session, qtbot, grains), session.message.text()
    assert segment_ends(session.map_view) == {(15, 5), (25, 5), (25, 15), (15, 15)}
    mmt.grain_edit.setText(str(tmp_path / "other.csv"))  # typed in the MMT tab since
    reads = []
    session.grainsPlaced.connect(lambda *_args: reads.append(1))
    reg = mmt.registration
    with qtbot.waitSignal(session.grainsPlaced, timeout=WAIT_MS):
        reg.setChecked(True)
        reg.dx.setValue(7)
        reg.dy.setValue(-3)
    assert not session.placement_timer.isActive() and session.grain_reader.pending == 0
    assert reads == [1]
    assert mmt.grain_edit.text() == str(tmp_path / "other.csv")
    for view in (session.map_view, *session.compare.views.values()):
        assert segment_ends(view) == {(22, 2), (32, 2), (32, 12), (22, 12)}
    assert "then shifted by (7, -3, 0) µm" in session.grain_note.text()
    with qtbot.waitSignal(session.grainsPlaced, timeout=WAIT_MS):
        reg.setChecked(False)
    assert segment_ends(session.map_view) == {(15, 5), (25, 5), (25, 15), (15, 15)}


def test_cuboid_outlines_turn_by_any_angle_under_a_point_model(
        qtbot, main_window, session_file, tmp_path):
    """A point model inverts a cuboid grain's centroid, which turns by any angle: its
    outline is drawn turned so; the cuboid model refuses the turn, as its inversion does, and
    the outlines placed as before are taken off."""
    session, mmt = main_window.session, main_window.mmt
    assert opened(session, qtbot, session_file)
    grains = tmp_path / "grains.csv"
    grains.write_text("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,20,10,-5,10,10,4\n")
    assert read_grains_into(session, qtbot, grains), session.message.text()
    reg = mmt.registration
    with qtbot.waitSignal(session.grainsFailed, timeout=WAIT_MS) as refused:
        reg.setChecked(True)
        reg.rotation.setValue(45)
        reg.ox.setValue(20)
        reg.oy.setValue(10)
    assert TURN_REFUSED in refused.args[0]
    assert segment_ends(session.map_view) == set()
    with qtbot.waitSignal(session.grainsPlaced, timeout=WAIT_MS):
        mmt.model.setCurrentText("dipole")
    half = 5 * np.sqrt(2)  # the square's corners turned onto its axes
    assert segment_ends(session.map_view) == {
        (round(x, 3), round(y, 3)) for x, y in ((20 - half, 10), (20, 10 - half),
                                                (20 + half, 10), (20, 10 + half))}
    assert "grains turned 45° about (20, 10) µm" in session.grain_note.text()


def held_grain_reads(monkeypatch):
    """(started, go): each grain file read in the worker sets `started`, then waits for `go`
    (a large export read for seconds) before it reads the file."""
    import threading

    from gui import grain_outlines

    started, go = threading.Event(), threading.Event()
    shaped_grains = grain_outlines.shaped_grains

    def held(*args, **kwargs):
        started.set()
        go.wait(WAIT_MS / 1000)
        return shaped_grains(*args, **kwargs)

    monkeypatch.setattr(grain_outlines, "shaped_grains", held)
    return started, go


def shifted(dx_um: float):
    from smm_daq.analysis.mmt.registration import GrainRegistration

    return lambda: GrainRegistration(shift=(dx_um * UM, 0.0, 0.0))


def test_a_refused_placement_is_not_drawn_over_by_a_read_begun_before_it(
        browser, qtbot, tmp_path, monkeypatch):
    """The grains placed anew are read (seconds, for a large file); then turned as the
    cuboid model refuses: the read in hand, ending after the refusal, is not drawn where the
    grains no longer are."""
    from smm_daq.analysis.mmt.registration import GrainRegistration

    grains = tmp_path / "grains.csv"
    grains.write_text("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,20,10,-5,10,10,4\n")
    assert read_grains_into(browser, qtbot, grains), browser.message.text()
    started, go = held_grain_reads(monkeypatch)
    browser.grain_registration = shifted(7)
    browser.load_grains(grains, again=True)
    qtbot.waitUntil(started.is_set, timeout=WAIT_MS)
    browser.grain_registration = lambda: GrainRegistration(rotation_deg=45.0)
    with qtbot.waitSignal(browser.grainsFailed, timeout=WAIT_MS):
        browser.load_grains(grains, again=True)
    go.set()
    qtbot.waitUntil(lambda: browser.grain_reader.pending == 0, timeout=WAIT_MS)
    assert segment_ends(browser.map_view) == set()
    assert TURN_REFUSED in browser.message.text()


def test_a_grain_file_chosen_as_the_placement_changes_is_drawn_placed_anew(
        browser, qtbot, tmp_path, monkeypatch):
    """A grain file chosen is still being read when the grains' placement changes: that
    file is read again placed anew and drawn, not the file drawn before it."""
    before, chosen = tmp_path / "before.csv", tmp_path / "chosen.csv"
    before.write_text("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,20,10,-5,10,10,4\n")
    chosen.write_text("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,40,20,-5,10,10,4\n")
    assert read_grains_into(browser, qtbot, before), browser.message.text()
    started, go = held_grain_reads(monkeypatch)
    loaded: list = []
    browser.grainsLoaded.connect(lambda path, _fmt: loaded.append(path))
    browser.load_grains(chosen)
    qtbot.waitUntil(started.is_set, timeout=WAIT_MS)
    browser.grain_registration = shifted(7)
    with qtbot.waitSignal(browser.placement_timer.timeout, timeout=WAIT_MS):
        browser.grain_placement_changed()
    go.set()
    qtbot.waitUntil(lambda: browser.grain_reader.pending == 0, timeout=WAIT_MS)
    assert loaded == [chosen]
    assert segment_ends(browser.map_view) == {(42, 15), (52, 15), (52, 25), (42, 25)}


def test_the_first_grains_read_follow_a_placement_changed_while_they_are_read(
        browser, qtbot, tmp_path, monkeypatch):
    """Nothing drawn yet, the grains' placement changes while the first grain file is read:
    it is drawn placed anew, not as it was placed when its read began."""
    grains = tmp_path / "grains.csv"
    grains.write_text("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,20,10,-5,10,10,4\n")
    started, go = held_grain_reads(monkeypatch)
    browser.load_grains(grains)
    qtbot.waitUntil(started.is_set, timeout=WAIT_MS)
    browser.grain_registration = shifted(7)
    browser.grain_placement_changed()
    qtbot.waitUntil(lambda: not browser.placement_timer.isActive(), timeout=WAIT_MS)
    go.set()
    qtbot.waitUntil(lambda: browser.grain_reader.pending == 0, timeout=WAIT_MS)
    assert segment_ends(browser.map_view) == {(22, 5), (32, 5), (32, 15), (22, 15)}


def test_a_grain_file_is_read_off_the_gui_thread(browser, qtbot, tmp_path, monkeypatch):
    """A large Dragonfly export takes seconds to read: the window must not stall on it."""
    import threading

    from gui import grain_outlines

    export = tmp_path / "cc.csv"
    write_dragonfly_export(export)
    readers: list[threading.Thread] = []
    shaped_grains = grain_outlines.shaped_grains

    def read(*args, **kwargs):
        readers.append(threading.current_thread())
        return shaped_grains(*args, **kwargs)

    monkeypatch.setattr(grain_outlines, "shaped_grains", read)
    assert read_grains_into(browser, qtbot, export, "dragonfly"), browser.message.text()
    assert readers and readers[0] is not threading.main_thread()
    assert rings(browser.map_view)[0].shape == (3, 2)  # one circle a grain


def test_the_dragonfly_options_applied_are_shown_with_the_outlines(qtbot, main_window,
                                                                   session_file, tmp_path):
    """The options are the MMT tab's, on show only there: the Session tab says which were
    applied to the outlines it draws and which a Dragonfly export would be read with, and its
    button brings the MMT tab's options forward."""
    export = tmp_path / "cc.csv"
    write_dragonfly_export(export)
    session, mmt = main_window.session, main_window.mmt
    main_window.show()
    main_window.show_view("session")
    assert opened(session, qtbot, session_file)
    session.show_entry(0)
    settled(session, qtbot)
    assert not session.dragonfly_button.isVisible()
    session.grain_format.setCurrentText("dragonfly")
    assert session.dragonfly_button.isVisible()
    assert "MMT tab's options: min voxels 1," in session.grain_note.text()
    mmt.dragonfly.min_voxels.setValue(5)
    mmt.dragonfly.crop.setChecked(True)
    assert "MMT tab's options: min voxels 5," in session.grain_note.text()
    assert "only grains under the scan" in session.grain_note.text()
    assert read_grains_into(session, qtbot, export, "dragonfly"), session.message.text()
    mmt.dragonfly.min_voxels.setValue(1)  # changed after the outlines were drawn
    drawn, next_read = session.grain_note.text().split("\n")
    assert drawn == ("Grain outlines: 1 grains of cc.csv (dragonfly; min voxels 5, sample "
                     "top auto (the top of the highest grain), z axis up, only grains under "
                     "the scan (x 0–55 µm, y 0–35 µm))")
    assert "MMT tab's options: min voxels 1," in next_read
    mmt.grain_format.setCurrentText("cuboids")  # the options are hidden on the MMT tab
    qtbot.mouseClick(session.dragonfly_button, QtCore.Qt.MouseButton.LeftButton)
    assert main_window.tabs.currentWidget() is mmt
    assert mmt.dragonfly.isVisible()


def test_a_bad_grain_file_is_named_in_the_message(browser, tmp_path, qtbot):
    grains = tmp_path / "bad.csv"
    grains.write_text("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,10,10,-5,ten,10,4\n")
    assert not read_grains_into(browser, qtbot, grains)
    assert "bad.csv" in browser.message.text()


def test_a_bad_file_gives_a_message_not_a_crash(qtbot, tmp_path):
    bad = tmp_path / "not.h5"
    bad.write_text("hello")
    b = SessionBrowser()
    qtbot.addWidget(b)
    assert not opened(b, qtbot, bad)
    assert "not.h5" in b.message.text()
    assert b.table.rowCount() == 0


def test_sorting_keeps_rows_whole(browser):
    browser.table.sortItems(0, QtCore.Qt.SortOrder.AscendingOrder)
    names = [browser.table.item(r, 0).text() for r in range(3)]
    kinds = [browser.table.item(r, 1).text() for r in range(3)]
    assert names == ["ind", "inf", "rem"]
    assert kinds == ["induced", "scan", "scan"]


def test_an_unreadable_entry_is_listed_with_its_reason_and_the_others_open(qtbot, session_file):
    import h5py

    with h5py.File(session_file, "a") as f:
        del f["rem/title"]
        f["rem/title"] = np.zeros(3)  # numbers where the title's text belongs
    b = SessionBrowser()
    qtbot.addWidget(b)
    assert opened(b, qtbot, session_file)
    rows = {b.table.item(r, 0).text(): (b.table.item(r, 2).text(), b.table.item(r, 3).text())
            for r in range(b.table.rowCount())}
    assert set(rows) == {"rem", "inf", "ind"}
    assert rows["rem"][0] == "unreadable" and "title" in rows["rem"][1]
    assert rows["inf"] == ("finished", "inf map")
    assert "entry 'rem'" in b.message.text()
    assert all(c.findText("rem") < 0 for c in b.compare.choosers.values())  # not offered


def test_a_file_that_cannot_be_opened_leaves_the_open_one_everywhere(window, session_file,
                                                                     tmp_path, qtbot):
    """Not the table of the file before under the new name, nor a scan target, window title
    or remembered file that cannot be read."""
    assert opened(window.session, qtbot, session_file)
    title = window.windowTitle()
    for bad in (tmp_path / "not.h5", tmp_path, tmp_path / "missing.h5"):
        if bad.suffix == ".h5" and bad.name == "not.h5":
            bad.write_text("hello")
        assert not opened(window.session, qtbot, bad)
        assert window.session.message.text().startswith("Not opened: ")
        assert window.session.path == session_file
        assert window.session.path_label.text() == str(session_file)
        assert window.scan.path == session_file
        assert window.windowTitle() == title
        assert window.session.table.rowCount() == 3



def names_shown(table) -> list[str]:
    return [table.item(r, 0).text() for r in range(table.rowCount())]


def test_the_table_opens_in_the_files_order_and_still_sorts(qtbot, tmp_path):
    path = tmp_path / "order.h5"
    for name in ("zero", "alpha", "mid"):  # neither ascending nor descending by name
        write_map_entry(path, a_map(name, 1 * UT), kind="scan")
    b = SessionBrowser()
    qtbot.addWidget(b)
    assert opened(b, qtbot, path)
    assert names_shown(b.table) == ["zero", "alpha", "mid"]  # as acquired
    assert b.table.isSortingEnabled()
    b.show()
    header = b.table.horizontalHeader()
    qtbot.mouseClick(header.viewport(), QtCore.Qt.MouseButton.LeftButton,
                     pos=QtCore.QPoint(header.sectionViewportPosition(0) + 5, 5))
    assert names_shown(b.table) in (["alpha", "mid", "zero"], ["zero", "mid", "alpha"])
    b.table.sortByColumn(0, QtCore.Qt.SortOrder.AscendingOrder)
    assert names_shown(b.table) == ["alpha", "mid", "zero"]
    assert refreshed(b, qtbot)  # the user's choice of order stays
    assert names_shown(b.table) == ["alpha", "mid", "zero"]


def test_opening_a_file_reads_its_entries_once(qtbot, session_file, monkeypatch):
    from gui import session_browser

    calls: list[object] = []

    def counted(path):
        calls.append(path)
        return list_entries(path)

    monkeypatch.setattr(session_browser, "list_entries", counted)
    b = SessionBrowser()
    qtbot.addWidget(b)
    assert opened(b, qtbot, session_file)
    assert calls == [session_file]


def test_number_columns_sort_as_numbers(qtbot, tmp_path):
    """Size by its pixels and the field signed, component by component (a back-field series
    in order), not as text ("101 × 101" before "21 × 8", "(0.0, 100.0, 0.0)" before
    "(0.0, 20.0, 0.0)", "(0.0, -100.0, 0.0)" beside "(0.0, -20.0, 0.0)")."""
    path = tmp_path / "numbers.h5"
    for name, n, field_ut in (("big", 101, 20.0), ("small", 12, 100.0), ("mid", 21, -5.0),
                              ("back", 13, -100.0)):
        m = a_map(name, 1 * UT, field=(0.0, field_ut * UT, 0.0))
        x = np.arange(n) * 5 * UM
        write_map_entry(path, MapData(bz=np.ones((8, n)) * UT, x=x, y=m.y, height=m.height,
                                      sensor_size=m.sensor_size,
                                      applied_field=m.applied_field, name=name), kind="scan")
    b = SessionBrowser()
    qtbot.addWidget(b)
    assert opened(b, qtbot, path)
    b.table.sortByColumn(4, QtCore.Qt.SortOrder.AscendingOrder)  # size
    assert names_shown(b.table) == ["small", "back", "mid", "big"]
    b.table.sortByColumn(5, QtCore.Qt.SortOrder.AscendingOrder)  # field
    assert names_shown(b.table) == ["back", "mid", "big", "small"]


def test_lines_done_sort_as_numbers(qtbot, tmp_path):
    """ "9 / 21" after "21 / 21" as text; by the lines done, before it."""
    import h5py

    path = tmp_path / "lines.h5"
    for name, done in (("nine", 9), ("all", 21), ("two", 2)):
        m = a_map(name, 1 * UT)
        write_map_entry(path, MapData(bz=np.ones((21, 12)) * UT, x=m.x,
                                      y=np.arange(21) * 5 * UM, height=m.height,
                                      sensor_size=m.sensor_size, name=name), kind="scan")
        with h5py.File(path, "a") as f:
            f[f"{name}/data/line_done"] = np.arange(21) < done
    b = SessionBrowser()
    qtbot.addWidget(b)
    assert opened(b, qtbot, path)
    b.table.sortByColumn(6, QtCore.Qt.SortOrder.AscendingOrder)
    assert names_shown(b.table) == ["two", "nine", "all"]


def test_the_maps_to_compare_are_read_off_the_gui_thread(qtbot, session_file, monkeypatch):
    """A large map takes seconds to read: the window stays live while the three are read."""
    import threading

    from gui import session_browser

    readers: list[tuple[threading.Thread, str]] = []
    read_map = session_browser.read_map

    def read(path, entry):
        readers.append((threading.current_thread(), entry))
        return read_map(path, entry)

    monkeypatch.setattr(session_browser, "read_map", read)
    b = SessionBrowser()
    qtbot.addWidget(b)
    assert opened(b, qtbot, session_file)
    settled(b, qtbot)
    assert readers == []  # the Compare tab not shown: nothing read for it
    views = compared(b, qtbot)
    assert sorted(entry for _t, entry in readers) == ["ind", "inf", "rem"]
    assert all(t is not threading.main_thread() for t, _e in readers)
    assert {r: v.map.name for r, v in views.items()} == {
        "remanent": "rem", "in-field": "inf", "induced": "ind"}


def test_a_map_to_compare_that_cannot_be_read_says_why(browser, qtbot, monkeypatch):
    from gui import session_browser
    from smm_daq.errors import InputError

    def broken(path, entry):
        raise InputError("is cut short; expected Bz of (8, 12)", source=f"{path}, {entry}")

    compared(browser, qtbot)
    monkeypatch.setattr(session_browser, "read_map", broken)
    browser.compare.choosers["remanent"].setCurrentText("inf")
    settled(browser, qtbot)
    assert "inf: is cut short; expected Bz of (8, 12)" in browser.message.text()
    assert browser.compare.views["remanent"].map.name == "rem"  # what was shown stays


def test_the_selected_entry_stays_selected_when_the_file_is_read_again(qtbot, tmp_path):
    """In a table sorted by name, a new entry read in takes a row of its own: the entry the
    user selected (say an aborted scan, for Resume) stays the one selected, not whichever
    entry comes to its row."""
    path = tmp_path / "s.h5"
    for name in ("c", "b"):
        write_map_entry(path, a_map(name, 1 * UT), kind="scan")
    b = SessionBrowser()
    qtbot.addWidget(b)
    assert opened(b, qtbot, path)
    b.table.sortItems(0, QtCore.Qt.SortOrder.AscendingOrder)
    b.table.selectRow(1)
    assert b.selected_entry().name == "c"
    write_map_entry(path, a_map("a", 1 * UT), kind="scan")
    assert refreshed(b, qtbot)
    assert names_shown(b.table) == ["a", "b", "c"]
    assert b.selected_entry().name == "c"
    assert [i.row() for i in b.table.selectionModel().selectedRows()] == [2]


def test_return_on_a_row_opens_its_map_without_the_mouse(browser, qtbot):
    """Keyboard alone: arrow keys move to an entry, Return (or keypad Enter) opens it, as a
    double click does."""
    browser.table.setFocus()
    qtbot.keyClick(browser.table, QtCore.Qt.Key.Key_Home)
    row = browser.table.currentRow()
    while browser.table.item(row, 0).text() != "inf":
        qtbot.keyClick(browser.table, QtCore.Qt.Key.Key_Down)
        row = browser.table.currentRow()
    settled(browser, qtbot)  # the maps each selection showed, read
    with qtbot.waitSignal(browser.mapShown) as shown:
        qtbot.keyClick(browser.table, QtCore.Qt.Key.Key_Return)
    assert shown.args[0].name == "inf"
    qtbot.keyClick(browser.table, QtCore.Qt.Key.Key_Up)
    other = browser.table.item(browser.table.currentRow(), 0).text()
    settled(browser, qtbot)
    with qtbot.waitSignal(browser.mapShown) as shown:
        qtbot.keyClick(browser.table, QtCore.Qt.Key.Key_Enter,
                       QtCore.Qt.KeyboardModifier.KeypadModifier)
    assert shown.args[0].name == other


def test_selecting_an_entry_shows_its_map_and_the_map_shown_is_the_one_selected(browser, qtbot):
    """A click or an arrow key on an entry shows its map (not only a double click: the map of
    the entry before stayed under the new selection); an entry shown otherwise (a subtraction's
    result) is the one selected; the table read again reads no map."""
    table = browser.table
    row = next(r for r in range(3) if table.item(r, 0).text() == "inf")
    with qtbot.waitSignal(browser.mapShown, timeout=WAIT_MS) as shown:
        qtbot.mouseClick(table.viewport(), QtCore.Qt.MouseButton.LeftButton,
                         pos=table.visualItemRect(table.item(row, 1)).center())
    assert shown.args[0].name == "inf"
    table.setFocus()
    with qtbot.waitSignal(browser.mapShown, timeout=WAIT_MS) as shown:
        qtbot.keyClick(table, QtCore.Qt.Key.Key_Up if row else QtCore.Qt.Key.Key_Down)
    assert shown.args[0].name == browser.selected_entry().name != "inf"
    with qtbot.waitSignal(browser.mapShown, timeout=WAIT_MS) as shown:
        browser.show_entry(row)
    assert shown.args[0].name == browser.selected_entry().name == "inf"
    maps_shown = []
    browser.mapShown.connect(maps_shown.append)
    assert refreshed(browser, qtbot)
    settled(browser, qtbot)
    assert browser.selected_entry().name == "inf" and maps_shown == []


def test_entries_passed_over_before_their_maps_are_read_are_not_read(browser, qtbot,
                                                                     monkeypatch):
    """The arrow keys held down over the entries: only the map of the entry they stop on is
    read and shown (each entry passed over queued a read of its whole map, each shown in
    turn, the last one waited for behind them all)."""
    import threading

    import gui.session_browser as session_browser

    reads: list[str] = []
    real_read = session_browser.read_map
    monkeypatch.setattr(session_browser, "read_map",
                        lambda path, name: reads.append(name) or real_read(path, name))
    go = threading.Event()
    browser.reader.submit(lambda: go.wait(WAIT_MS / 1000))  # the reader busy meanwhile
    shown: list[str] = []
    browser.mapShown.connect(lambda m: shown.append(m.name))
    table = browser.table
    names = [table.item(r, 0).text() for r in range(table.rowCount())]
    for row in range(table.rowCount()):
        table.selectRow(row)
    go.set()
    settled(browser, qtbot)
    assert reads == [names[-1]] and shown == [names[-1]]
    assert browser.map_view.map.name == browser.selected_entry().name == names[-1]


def test_a_jobs_failure_is_said_as_the_files_error_or_as_the_programs():
    """The Session tab's jobs (export, noise, background, image, reads) say an error of the
    file's or the input's as its own message, worded by the job, and any other error as this
    program's, after what failed."""
    from gui.session_browser import failure_text
    from smm_daq.errors import InputError

    assert failure_text(InputError("'x' is bad; expected y"), "Export failed") == (
        "'x' is bad; expected y")
    assert failure_text(OSError(28, "No space left"), "Export failed",
                        lambda t: f"[{t}]") == "[[Errno 28] No space left]"
    assert failure_text(ValueError("oops"), "Export of 'a' failed") == (
        "Export of 'a' failed: ValueError('oops')")
