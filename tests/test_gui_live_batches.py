"""The live map takes a scan's points in batches, a frame at a time: a point coming alone costs
the window nothing until the next frame, every point lands in its place, and the map is drawn
once a frame, not once a point; any other event is taken in at once, with the points before
it."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PyQt6 import QtCore, QtWidgets
from test_gui_long_scan import LIVE_FILE, shown
from test_gui_window import small_plan

from gui.live_scan import LiveScan
from smm_daq.acquisition.events import ScanEvent
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.storage.nexus import read_map

UM = 1e-6
UT = 1e-6
WAIT_S = 60.0  # generous: the whole suite shares two cores


class Counted:
    """What the window did for a live scan: the progress shown, the map's image updates."""

    def __init__(self, live: LiveScan, monkeypatch) -> None:
        self.progress: list[float] = []
        self.updates: list[tuple[int, int]] = []  # (first row, rows) of each image update
        live.progressed.connect(lambda fraction, _eta: self.progress.append(fraction))
        image = live.view.image
        redraw_rows = image.redraw_rows

        def counted(values: np.ndarray, start: int) -> None:
            self.updates.append((start, values.shape[0]))
            redraw_rows(values, start)

        monkeypatch.setattr(image, "redraw_rows", counted)


def push_from_worker(live: LiveScan, event: ScanEvent) -> None:
    """Push as the sequencer does, from a thread of its own."""
    pusher = threading.Thread(target=live.bridge.push, args=(event,))
    pusher.start()
    pusher.join()


def test_points_coming_one_at_a_time_cost_the_window_nothing_until_a_frame(live, monkeypatch):
    """At a rig's pace each point came alone, and the idle window took each in as it came:
    an intake and a progress update a point. Points now wait for the live timer's frame,
    which takes them all in, in their places (two lines and the start of a third, serpentine),
    shows the progress once and updates the image once."""
    plan = ScanPlan("alone", 1e-3, 2e-3, 7, 4, 10 * UM, 10 * UM)
    values = (np.arange(28).reshape(4, 7) - 13.5) * 0.1 * UT
    live.prepare(plan, LIVE_FILE, None)
    live.timer.stop()  # frames come when the test says
    counted = Counted(live, monkeypatch)
    order = [(iy, int(ix)) for iy in range(3) for ix in plan.line_order(iy)][:17]
    expected = np.full((4, 7), np.nan)
    for k, (iy, ix) in enumerate(order):
        push_from_worker(live, ScanEvent(kind="point", entry="alone", line=iy, index=(iy, ix),
                                         bz=float(values[iy, ix]), progress=(k + 1) / 28))
        QtWidgets.QApplication.processEvents()  # the idle window, between two points
        expected[iy, ix] = values[iy, ix] / UT
    assert counted.progress == [] and counted.updates == [] and live.points == 0

    live._frame()
    assert counted.progress == [pytest.approx(17 / 28)]
    assert counted.updates == [(0, 3)]  # one update: the rows with new points
    assert live.points == 17
    np.testing.assert_array_equal(shown(live.view), expected)  # NaN where not measured

    live._frame()  # nothing new: nothing drawn or shown again
    assert len(counted.progress) == 1 and len(counted.updates) == 1


def test_other_events_are_taken_in_at_once_with_the_points_before_them(live, qtbot,
                                                                        monkeypatch):
    """A pause is shown as soon as it comes, with every point measured before it in the map's
    array (drawn at the next frame); the end draws every point at once."""
    plan = ScanPlan("paused", 1e-3, 2e-3, 5, 2, 10 * UM, 10 * UM)
    live.prepare(plan, LIVE_FILE, None)
    live.timer.stop()
    counted = Counted(live, monkeypatch)
    for ix in range(3):
        push_from_worker(live, ScanEvent(kind="point", entry="paused", line=0, index=(0, ix),
                                         bz=(ix + 1) * UT, progress=(ix + 1) / 10))
    push_from_worker(live, ScanEvent(kind="paused", entry="paused", line=0,
                                     message="lock-in overload", progress=0.3))
    qtbot.waitUntil(lambda: live.state == "paused", timeout=int(WAIT_S * 1000))
    assert live.points == 3 and live.message == "lock-in overload"
    np.testing.assert_array_equal(live.bz[0, :3], [1 * UT, 2 * UT, 3 * UT])
    assert counted.progress == [pytest.approx(0.3)] and counted.updates == []

    live._frame()
    assert counted.updates == [(0, 1)]
    for ix in range(3, 5):
        push_from_worker(live, ScanEvent(kind="point", entry="paused", line=0, index=(0, ix),
                                         bz=(ix + 1) * UT, progress=(ix + 1) / 10))
    push_from_worker(live, ScanEvent(kind="aborted", entry="paused", line=0, rig_safe=True))
    qtbot.waitUntil(lambda: live.state == "aborted", timeout=int(WAIT_S * 1000))
    assert counted.updates == [(0, 1), (0, 1)]  # the end drew the last points
    np.testing.assert_array_equal(shown(live.view)[0], [1.0, 2.0, 3.0, 4.0, 5.0])
    assert np.all(np.isnan(shown(live.view)[1]))


class Paced(QtCore.QObject):
    """Wraps the live scan's `push` (called in the scan's thread) so that the scan goes at a
    rig's pace for the window: each point waits until the window's event loop has turned
    after it (all it was told meanwhile handled), and after each "line_done" the scan waits
    until the test lets it go, so a line's end and the window's next frame come in order."""

    pointPushed = QtCore.pyqtSignal()  # emitted in the scan's thread, handled in the window's

    def __init__(self, push) -> None:
        super().__init__()
        self.push = push
        self.seen, self.held, self.go = (threading.Event(), threading.Event(),
                                         threading.Event())
        self.holding = True
        self.pointPushed.connect(self.seen.set)

    def __call__(self, event: ScanEvent) -> None:
        self.push(event)
        if not self.holding:
            return
        if event.kind == "point":
            self.seen.clear()
            self.pointPushed.emit()  # queued after anything the push told the window
            assert self.seen.wait(WAIT_S)
        elif event.kind == "line_done":
            self.held.set()
            assert self.go.wait(WAIT_S)
            self.go.clear()

    def release(self) -> None:
        """Let the scan go on to its next line's end."""
        self.held.clear()
        self.go.set()

    def open(self) -> None:
        """Let the scan run to its end, held no more."""
        self.holding = False
        self.go.set()
        self.seen.set()


def test_a_simulated_scans_points_reach_the_map_in_their_places_one_update_a_line(
        window, qtbot, tmp_path, monkeypatch):
    """The simulated rig scans (serpentine) at a rig's pace for the window, its event loop
    turning between points: the points of a line tell the window nothing (they were an intake
    and a progress update each), the line's end is taken in with them, and a frame draws the
    line in one image update; at the end the map is the file's, every point in its place."""
    live = window.scan.live
    gate = Paced(live.bridge.push)
    monkeypatch.setattr(live.bridge, "push", gate)  # the Scan tab subscribes it at the start
    counted = Counted(live, monkeypatch)
    plan = small_plan("batches", n=6)
    assert window.scan.start(plan)
    live.timer.stop()  # frames come when the test says
    wait_ms = int(WAIT_S * 1000)
    try:
        for iy in range(plan.ny):
            progress, updates = len(counted.progress), len(counted.updates)
            qtbot.waitUntil(gate.held.is_set, timeout=wait_ms)  # the loop turns meanwhile
            qtbot.waitUntil(lambda iy=iy: live.lines_stored == iy + 1, timeout=wait_ms)
            assert len(counted.progress) - progress <= 2  # the start, the line's end
            live._frame()
            assert counted.updates[updates:] == [(iy, 1)]
            assert live.points == (iy + 1) * plan.nx
            measured = np.isfinite(shown(window.scan.view))
            assert measured[:iy + 1].all() and not measured[iy + 1:].any()
            gate.release()
        qtbot.waitUntil(lambda: live.state == "finished", timeout=wait_ms)
    finally:  # a failure mid-scan: the scan ended before the window's close would ask
        gate.open()
        if live.running:
            live.abort()
            qtbot.waitUntil(lambda: not live.running, timeout=wait_ms)
    assert len(counted.updates) == plan.ny  # the end had nothing new to draw
    stored = read_map(tmp_path / "session.h5", "batches")
    np.testing.assert_array_equal(window.scan.view.map.bz, stored.bz)
    np.testing.assert_array_equal(shown(window.scan.view), stored.bz / UT)


@pytest.mark.parametrize("end", ["aborted", "failed"])
def test_the_points_that_come_with_the_end_show_their_progress_before_it(live, qtbot,
                                                                         monkeypatch, end):
    """Points taken in with an `aborted` or `failed` event (a fly scan's last line, say)
    show their progress, once and before the end, so the bar is where the scan stopped and
    the end's message stays; the bar stayed where the last frame left it."""
    plan = ScanPlan("ending", 1e-3, 2e-3, 5, 2, 10 * UM, 10 * UM)
    live.prepare(plan, LIVE_FILE, None)
    live.timer.stop()
    counted = Counted(live, monkeypatch)
    told: list[str] = []
    live.progressed.connect(lambda fraction, _eta: told.append(f"progress {fraction:g}"))
    live.ended.connect(lambda kind, _message: told.append(kind))
    for ix in range(4):
        push_from_worker(live, ScanEvent(kind="point", entry="ending", line=0, index=(0, ix),
                                         bz=(ix + 1) * UT, progress=(ix + 1) / 10))
    push_from_worker(live, ScanEvent(kind=end, entry="ending", line=0, rig_safe=True,
                                     message="stopped", progress=0.0))
    qtbot.waitUntil(lambda: live.state == end, timeout=int(WAIT_S * 1000))
    assert live.points == 4
    assert counted.progress == [pytest.approx(0.4)]
    assert told == ["progress 0.4", end]
