"""The window through a long scan: what a live-map redraw costs does not grow with the grid,
the live image stays right (place, orientation, NaN where not measured, colour range), and a
slow file write neither blocks the window nor keeps Abort from making the rig safe."""

from __future__ import annotations

import threading
from pathlib import Path

import h5py
import numpy as np
import pyqtgraph as pg
import pytest
from PyQt6 import QtCore, QtGui, QtWidgets
from recipe_opening import recipe_opened, recipe_ran
from scan_gate import Held
from test_gui_recipes import RECIPE

from gui.live_scan import LiveScan
from gui.map_geometry import symmetric_level
from gui.map_view import MapView
from smm_daq.acquisition import sequencer
from smm_daq.acquisition.events import ScanEvent
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.resumable import load_resumable
from smm_daq.storage.h5file import open_read
from smm_daq.storage.scan_entry import ScanEntryWriter

UM = 1e-6
UT = 1e-6
WAIT_MS = 60_000  # generous: the whole suite shares two cores
CENTRE = (12.5e-3, 12.5e-3)  # the simulated sample's middle
LIVE_FILE = Path("live.h5")  # where a live scan's sequencer would write (not read here)


def paint(view: MapView) -> None:
    """Paint the view now, as the window does after a redraw (images are coloured then)."""
    view.graphics.viewport().repaint()


class Drawn:
    """Counts what the view's map images colour when painted: whole images, and the pixels of
    rows coloured on their own."""

    def __init__(self, view: MapView, monkeypatch) -> None:
        self.whole = self.row_pixels = 0
        self._rendering = False
        for item in view.plot.items:
            if isinstance(item, pg.ImageItem) and item is not view.underlay:
                monkeypatch.setattr(item, "render", self._render(item))
        if hasattr(view.image, "_colour"):
            monkeypatch.setattr(view.image, "_colour", self._rows(view.image))

    def _render(self, item):
        render = item.render

        def counted() -> None:
            self.whole += 1
            self._rendering = True
            try:
                render()
            finally:
                self._rendering = False

        return counted

    def _rows(self, item):
        colour = item._colour

        def counted(start: int, stop: int) -> None:
            if not self._rendering:
                self.row_pixels += (stop - start) * item.image.shape[1]
            colour(start, stop)

        return counted


def point(plan: ScanPlan, iy: int, ix: int, bz: float) -> ScanEvent:
    return ScanEvent(kind="point", entry=plan.name, line=iy, index=(iy, ix), bz=bz)


def fill(live: LiveScan, plan: ScanPlan, values: np.ndarray, lines: range,
         redraw_every: int) -> int:
    """Points of `lines` in scan order (serpentine), the live timer's redraw and a paint every
    `redraw_every` points; returns the redraws made."""
    n = 0
    redraws = live.redraws
    for iy in lines:
        for ix in plan.line_order(iy):
            live.bridge.push(point(plan, iy, int(ix), float(values[iy, ix])))
            n += 1
            if n % redraw_every == 0:
                live._frame()
                paint(live.view)
    live._frame()
    paint(live.view)
    return live.redraws - redraws


def shown(view: MapView) -> np.ndarray:
    """Bz (µT) as the image holds it."""
    return np.array(view.image.image, dtype=float)


def rgba(image: QtGui.QImage) -> np.ndarray:
    """The colours of a QImage, (rows, columns, RGBA bytes)."""
    image = image.convertToFormat(QtGui.QImage.Format.Format_RGBA8888)
    bits = image.constBits()
    bits.setsize(image.sizeInBytes())
    rows = np.frombuffer(bits, np.uint8).reshape(image.height(), image.bytesPerLine() // 4, 4)
    return rows[:, :image.width()].copy()



def closing_answered(monkeypatch, answer: str = "Yes") -> tuple[list[str], list[str]]:
    """The close's question answered `answer` and its warnings noted, with a write stalled as
    soon as the rig is safe (WRITE_STALLED_S 0): (the questions asked, the warnings shown)."""
    asked: list[str] = []
    warned: list[str] = []
    button = getattr(QtWidgets.QMessageBox.StandardButton, answer)
    monkeypatch.setattr(QtWidgets.QMessageBox, "question",
                        lambda *a, **k: asked.append(a[2]) or button)
    monkeypatch.setattr(QtWidgets.QMessageBox, "warning", lambda *a, **k: warned.append(a[2]))
    monkeypatch.setattr(sequencer, "WRITE_STALLED_S", 0.0)  # stalled once the rig is safe
    return asked, warned

def test_a_redraw_colours_the_rows_that_changed_not_the_whole_map(live, monkeypatch):
    """A 1001 x 1001 scan coloured its whole million-pixel image again every 16 lines, and
    up to 16 rows at every redraw (some 290 a line at a rig's pace): the work of a redraw
    must be the rows that changed, not the grid."""
    plan = ScanPlan("rows", 1e-3, 2e-3, 40, 64, 10 * UM, 10 * UM)
    values = np.where(np.indices((64, 40)).sum(axis=0) % 2, 1.0, -1.0) * UT  # one level
    live.prepare(plan, LIVE_FILE, None)
    paint(live.view)
    drawn = Drawn(live.view, monkeypatch)
    redraws = fill(live, plan, values, range(64), redraw_every=5)
    assert redraws >= 64 * 40 // 5
    # the whole image is coloured once, when the first point sets the colour range; after
    # that a redraw colours the rows with new points alone (one, two where a line ends)
    assert drawn.whole == 1
    assert drawn.row_pixels <= redraws * 2 * 40
    np.testing.assert_array_equal(shown(live.view), values / UT)  # drawn as measured
    np.testing.assert_array_equal(live.view.map.bz, values)


def test_a_wider_colour_range_neither_copies_nor_rescans_the_map(live, monkeypatch):
    """A line stronger than all before widens the colour range: every pixel takes its new
    colour, but the map is neither copied into the image again nor searched whole for its
    largest |Bz| (the new rows' is compared with the range)."""
    import gui.map_view as map_view

    plan = ScanPlan("wider", 1e-3, 2e-3, 30, 50, 10 * UM, 10 * UM)
    values = np.outer(np.arange(1, 51), np.linspace(-1, 1, 30)) * 0.1 * UT  # each line wider
    live.prepare(plan, LIVE_FILE, None)
    paint(live.view)
    searched, copied = [], []
    monkeypatch.setattr(map_view, "symmetric_level",
                        lambda bz: searched.append(bz.size) or symmetric_level(bz))
    set_image = live.view.image.setImage

    def replacing(image=None, **kw):
        if image is not None:
            copied.append(image.size)
        return set_image(image, **kw)

    monkeypatch.setattr(live.view.image, "setImage", replacing)
    fill(live, plan, values, range(50), redraw_every=7)
    assert not copied
    assert max(searched) <= 2 * 30  # the rows of one redraw, never the map
    assert live.view.colour_bar.levels() == pytest.approx((-5.0, 5.0))
    np.testing.assert_array_equal(shown(live.view), values / UT)


def test_the_live_colours_are_pyqtgraphs_for_the_whole_map(live):
    """What the user sees is what pyqtgraph draws for the map as it stands: the same colour
    for every pixel at the same range, NaN (not measured) transparent."""
    plan = ScanPlan("colours", 1e-3, 2e-3, 30, 20, 10 * UM, 10 * UM)
    values = np.random.default_rng(7).normal(0.0, 1.0, (20, 30)) * UT
    values[12, 4] = 6.0 * UT  # the range widens mid-scan
    live.prepare(plan, LIVE_FILE, None)
    fill(live, plan, values, range(15), redraw_every=4)
    for ix in plan.line_order(15)[:9]:
        live.bridge.push(point(plan, 15, int(ix), float(values[15, ix])))
    live._frame()
    paint(live.view)
    image = live.view.image
    reference = pg.ImageItem(axisOrder="row-major")
    reference.setImage(live.bz / UT, levels=image.getLevels(), lut=image.lut)
    reference.render()
    assert tuple(image.getLevels()) == pytest.approx((-6.0, 6.0))
    ours, theirs = rgba(image.qimage), rgba(reference.qimage)
    np.testing.assert_array_equal(ours, theirs)
    assert np.all(ours[16:, :, 3] == 0) and np.all(ours[:15, :, 3] == 255)  # not measured
    assert np.count_nonzero(ours[15, :, 3]) == 9


def test_the_live_image_is_placed_oriented_and_blank_where_not_measured(live):
    """A non-square grid with unequal steps: rows are y (up), columns x, each pixel centred on
    its grid point; what is not measured yet is NaN (drawn transparent), never 0."""
    plan = ScanPlan("place", 1e-3, 2e-3, 30, 50, 10 * UM, 20 * UM)
    values = (100 * np.arange(30)[None, :] - np.arange(50)[:, None]) * 0.01 * UT
    live.prepare(plan, LIVE_FILE, None)
    view = live.view
    assert np.all(np.isnan(view.map.bz)) and np.all(np.isnan(view.image.image))
    fill(live, plan, values, range(3), redraw_every=7)
    for _ in range(5):
        live.bridge.push(point(plan, 3, 29 - _, float(values[3, 29 - _])))  # serpentine
    live._frame()

    drawn = shown(view)
    assert drawn.shape == (50, 30)  # (rows y, columns x)
    np.testing.assert_array_equal(drawn[:3], values[:3] / UT)
    np.testing.assert_array_equal(drawn[3, 25:], values[3, 25:] / UT)
    assert np.all(np.isnan(drawn[3, :25])) and np.all(np.isnan(drawn[4:]))
    assert np.all(np.isnan(view.map.bz[4:]))
    assert not view.view_box.yInverted() and not view.view_box.xInverted()
    rect = view.image.mapRectToParent(view.image.boundingRect())
    assert (rect.left(), rect.top(), rect.width(), rect.height()) == (
        pytest.approx((1e3 - 5, 2e3 - 10, 300, 1000)))


def test_the_colour_range_follows_the_strongest_line_not_the_first(live):
    plan = ScanPlan("levels", 1e-3, 2e-3, 20, 40, 10 * UM, 10 * UM)
    values = np.full((40, 20), 0.5 * UT)
    values[0, 3] = -1.0 * UT
    values[30, 7] = 4.0 * UT  # a stronger source, far into the scan
    live.prepare(plan, LIVE_FILE, None)
    fill(live, plan, values, range(2), redraw_every=5)
    assert live.view.colour_bar.levels() == pytest.approx((-1.0, 1.0))
    fill(live, plan, values, range(2, 40), redraw_every=5)
    assert live.view.colour_bar.levels() == pytest.approx((-4.0, 4.0))
    assert tuple(live.view.image.getLevels()) == pytest.approx((-4.0, 4.0))


def test_a_resumed_scan_shows_its_stored_lines_and_draws_only_the_new(live, monkeypatch):
    plan = ScanPlan("resumed", 1e-3, 2e-3, 20, 40, 10 * UM, 10 * UM)
    values = np.linspace(-1, 1, 800).reshape(40, 20) * UT
    stored = np.full((40, 20), np.nan)
    stored[:25] = values[:25]
    live.prepare(plan, LIVE_FILE, None, bz=stored)
    paint(live.view)
    np.testing.assert_array_equal(shown(live.view), stored / UT)
    drawn = Drawn(live.view, monkeypatch)
    redraws = fill(live, plan, values, range(25, 28), redraw_every=5)
    assert drawn.whole == 0 and drawn.row_pixels <= redraws * 2 * 20  # the new lines' rows
    np.testing.assert_array_equal(shown(live.view)[:28], values[:28] / UT)
    assert np.all(np.isnan(shown(live.view)[28:]))


class SlowFlush:
    """The session file's flush, in the scan's thread, held while line `line` is written (a
    slow disk: the file's lock is held meanwhile), until `go` is set."""

    def __init__(self, monkeypatch, line: int) -> None:
        self.line, self.writing = line, -1
        self.entered, self.go = threading.Event(), threading.Event()
        write_line, flush = ScanEntryWriter.write_line, h5py.File.flush

        def writing_line(writer, iy, *args, **kw):
            self.writing = iy
            try:
                return write_line(writer, iy, *args, **kw)
            finally:
                self.writing = -1

        def slow_flush(f):
            if self.writing == self.line and not self.entered.is_set():
                self.entered.set()
                assert self.go.wait(2 * WAIT_MS / 1000)  # the test gives up first
            return flush(f)

        monkeypatch.setattr(ScanEntryWriter, "write_line", writing_line)
        monkeypatch.setattr(h5py.File, "flush", slow_flush)


def stall_a_small_scan(scan, qtbot, monkeypatch, name: str) -> SlowFlush:
    """A 3 × 4-point scan started from the Scan tab and held in its line 1's write (its
    `go` lets the write return)."""
    slow = SlowFlush(monkeypatch, line=1)
    plan = ScanPlan.from_center(name, CENTRE, (3 * 20 * UM, 4 * 20 * UM), 20 * UM,
                                settle_tau=1.0)
    assert scan.start(plan)
    qtbot.waitUntil(slow.entered.is_set, timeout=WAIT_MS)
    return slow


def test_abort_during_a_slow_line_write_is_answered_and_leaves_the_rig_safe(
        window, qtbot, tmp_path, monkeypatch):
    """The disk stalls while a line is written: the window still answers, Abort is taken and
    makes the rig safe at once (stage stopped, field ramped down), the Scan tab says so and
    that the write has not returned, closing asks before leaving the write behind, and once
    the write returns the scan stops there, the file resumable with every line written; the
    window says so."""
    scan, live, rig = window.scan, window.scan.live, window.holder.rig
    asked, _ = closing_answered(monkeypatch, "No")
    stops = []
    monkeypatch.setattr(rig.stage, "stop", lambda stop=rig.stage.stop: (stops.append(1), stop()))
    slow = SlowFlush(monkeypatch, line=2)
    plan = ScanPlan.from_center("stalled", CENTRE, (7 * 20 * UM, 9 * 20 * UM), 20 * UM,
                                settle_tau=1.0, field=(0.0, 30 * UT, 0.0))
    assert scan.start(plan)
    try:
        qtbot.waitUntil(slow.entered.is_set, timeout=WAIT_MS)
        answered = []
        QtCore.QTimer.singleShot(0, lambda: answered.append(live.state))
        qtbot.waitUntil(lambda: bool(answered), timeout=WAIT_MS)
        assert answered == ["running"]
        assert not stops
        qtbot.mouseClick(scan.abort_button, QtCore.Qt.MouseButton.LeftButton)
        assert live.state == "aborting" and scan.status.text().startswith("aborting")
        # the write is still stalled, and touches no instrument: the rig is made safe now
        qtbot.waitUntil(lambda: bool(stops) and not np.any(rig.coils.field_setpoint()),
                        timeout=WAIT_MS)
        qtbot.waitUntil(lambda: "has not returned (disk stalled?)" in scan.status.text(),
                        timeout=WAIT_MS)
        assert scan.status.text().startswith("aborting: the rig is safe (stage stopped, field "
                                             "at its safe state).")
        assert live.state == "aborting" and not slow.go.is_set()
        assert not window.close()  # asked (No): the write may still return
        assert window.isVisible() and live.state == "aborting" and len(asked) == 1
        assert "has not returned (disk stalled?)" in asked[0]
        assert f"smm-daq repair {tmp_path / 'session.h5'}" in asked[0]
    finally:
        slow.go.set()
    with qtbot.waitSignal(scan.scanEnded, timeout=WAIT_MS) as ended:
        pass
    assert ended.args[0] == "aborted"
    assert stops and np.allclose(rig.coils.field_setpoint(), 0.0, atol=1e-12)
    path = tmp_path / "session.h5"
    with open_read(path) as f:
        done = np.asarray(f["stalled/data/line_done"][()], dtype=bool)
    assert done.tolist() == [True] * 3 + [False] * 7  # the stalled line was stored, no more
    assert live.points == 3 * 8  # nothing measured after the Abort
    assert load_resumable(path, "stalled").plan.difference(plan) is None
    assert scan.status.text().endswith(
        "aborted: aborted by the operator\nThe rig was made safe (stage stopped, field at its "
        "safe state). 3 of 10 lines are stored in session.h5; Resume scan on the Session tab "
        "finishes the scan.")


def test_closing_the_window_mid_scan_does_not_wait_for_a_stalled_write(
        window, qtbot, tmp_path, monkeypatch):
    """Closing mid-scan aborts it (asked first); once the rig is safe, a line's write that has
    not returned (a stalled disk) is not waited for: the window says what is left of the file
    and how to finish it, and closes, the rig safe and closed; the write, when it returns,
    leaves the file resumable and touches the closed rig no more."""
    scan, live, rig = window.scan, window.scan.live, window.holder.rig
    asked, warned = closing_answered(monkeypatch)
    slow = SlowFlush(monkeypatch, line=1)  # the close comes mid-scan, for sure
    plan = ScanPlan.from_center("closed", CENTRE, (5 * 20 * UM, 7 * 20 * UM), 20 * UM,
                                settle_tau=1.0, field=(0.0, 0.0, 20 * UT))
    path = tmp_path / "session.h5"
    assert scan.start(plan)
    try:
        qtbot.waitUntil(slow.entered.is_set, timeout=WAIT_MS)
        running = live.sequencer
        assert not window.close()  # asked; the scan aborted, the rig made safe first
        assert live.state == "aborting" and len(asked) == 1
        qtbot.waitUntil(lambda: not window.isVisible(), timeout=WAIT_MS)
        assert not slow.go.is_set()  # closed while the write has not returned
        assert window.holder.rig is None and live.state == "aborting"
        np.testing.assert_allclose(rig.coils.field_setpoint(), 0.0, atol=1e-12)
        assert len(asked) == 1 and len(warned) == 1  # not asked twice
        assert warned[0].startswith("The rig is safe (stage stopped, field at its safe state), "
                                    f"but the scan's write to {path} has not returned")
        assert f"`smm-daq repair {path}`" in warned[0]
        assert f"`smm-daq resume {path} --entry closed`" in warned[0]
    finally:
        slow.go.set()
    assert running.wait(WAIT_MS / 1000) == "aborted"
    record = load_resumable(path, "closed")
    assert record.plan.difference(plan) is None
    with open_read(path) as f:
        assert np.asarray(f["closed/data/line_done"][()]).tolist() == [True] * 2 + [False] * 6
        assert f["closed/status"][()].decode() == "aborted"
        assert "NOT safe" not in f["closed/message"].asstr()[()]


def test_the_session_tab_reads_the_file_off_the_gui_thread_while_a_scan_writes_it(
        window, qtbot, tmp_path, monkeypatch):
    """Opening or refreshing the session file mid-scan waited, in the GUI thread, for the
    line being written: on a stalled disk the window froze, Abort unanswered."""
    scan, session = window.scan, window.session
    path = tmp_path / "session.h5"
    slow = stall_a_small_scan(scan, qtbot, monkeypatch, "read")
    try:
        assert session.open_file(path)  # returns while the line's write is stalled
        session.refresh()
        stalled = not slow.go.is_set()
        qtbot.mouseClick(scan.abort_button, QtCore.Qt.MouseButton.LeftButton)
        assert scan.live.state == "aborting"
    finally:
        slow.go.set()
    assert stalled
    qtbot.waitUntil(lambda: [e.name for e in session.entries] == ["read"], timeout=WAIT_MS)
    assert session.path == path
    qtbot.waitUntil(lambda: not scan.live.running, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: session.entries[0].status == "aborted", timeout=WAIT_MS)


def test_the_recipes_tab_checks_a_recipe_off_the_gui_thread_while_a_scan_writes_the_file(
        window, qtbot, tmp_path, monkeypatch):
    """Opening a recipe checks it against the session file: mid-scan, that read waited in the
    GUI thread for the line being written, and on a stalled disk the window froze."""
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(RECIPE, encoding="utf-8")
    scan, view = window.scan, window.recipes
    slow = stall_a_small_scan(scan, qtbot, monkeypatch, "under")
    try:
        assert view.open_recipe(recipe)  # returns while the line's write is stalled
        stalled = not slow.go.is_set()
        assert [view.steps.item(i).text() for i in range(view.steps.count())] == ["Checking…"]
        assert view.message.text().startswith("Checking")
    finally:
        slow.go.set()
    assert stalled
    qtbot.waitUntil(lambda: view.steps.count() == 6, timeout=WAIT_MS)
    assert view.recipe is not None and view.message.text().startswith("6 steps checked")
    qtbot.waitUntil(lambda: not scan.live.running, timeout=WAIT_MS)
    assert view.run_button.isEnabled()


STOPPED_AT_PROMPT = """
[recipe]
title = "a scan, then a prompt"
[scan_defaults]
center_um = [12500.0, 12500.0]
size_um = [40.0, 20.0]
step_um = 20.0
settle_tau = 1.0
[[step]]
kind = "scan"
name = "first"
[[step]]
kind = "prompt"
message = "Go on?"
"""


def test_whether_an_ended_recipe_can_be_continued_is_read_off_the_gui_thread(
        window, qtbot, tmp_path, monkeypatch):
    """A recipe stopped after writing entries offers Continue: whether it wrote any is read
    from the session file, which a slow disk can hold; the window answers meanwhile."""
    import gui.recipes_view as recipes_view

    recipe = tmp_path / "recipe.toml"
    recipe.write_text(STOPPED_AT_PROMPT, encoding="utf-8")
    view = window.recipes
    view.ask = lambda _message: False  # Cancel at the prompt: the recipe stops
    assert recipe_opened(view, qtbot, recipe) and recipe_ran(view, qtbot)
    held = Held(recipes_view._holds_entries_of)
    monkeypatch.setattr(recipes_view, "_holds_entries_of", held)
    try:
        qtbot.waitUntil(held.entered.is_set, timeout=WAIT_MS)
        answered = []
        QtCore.QTimer.singleShot(0, lambda: answered.append(view.message.text()))
        qtbot.waitUntil(lambda: bool(answered), timeout=WAIT_MS)
        assert answered[0].startswith("Recipe stopped: step 2: the operator stopped")
        assert view.run_button.text() == "Run" and not held.go.is_set()
    finally:
        held.go.set()
    qtbot.waitUntil(lambda: view.run_button.text() == "Continue", timeout=WAIT_MS)
    assert view.message.text().endswith("Continue carries it on from where it stopped.")
