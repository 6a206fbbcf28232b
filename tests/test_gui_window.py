"""The window drives a simulated scan: start, pause, resume, abort; live map against the file;
the window stays responsive; closing during a scan asks, then aborts safely."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PyQt6 import QtCore, QtWidgets
from scan_gate import Held, gate_the_scan

from gui.main_window import MainWindow
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.instruments.profile import load_profile
from smm_daq.storage.h5file import open_read
from smm_daq.storage.nexus import list_entries, read_map

UM = 1e-6
UT = 1e-6
WAIT_MS = 60_000  # generous: the whole suite shares two cores
CENTRE = (12.5e-3, 12.5e-3)  # the simulated sample's middle


def small_plan(name: str, n: int = 10, **kw) -> ScanPlan:
    return ScanPlan.from_center(
        name, CENTRE, ((n - 1) * 20 * UM, (n - 1) * 20 * UM), 20 * UM, settle_tau=1.0, **kw
    )


def status(path, entry: str) -> str:
    return {e.name: e.status for e in list_entries(path)}[entry]


def lines_done(path, entry: str) -> np.ndarray:
    with open_read(path) as f:
        return np.asarray(f[entry]["data/line_done"][()], dtype=bool)


def run_to_end(qtbot, w: MainWindow, plan: ScanPlan) -> None:
    with qtbot.waitSignal(w.scan.scanEnded, timeout=WAIT_MS):
        assert w.scan.start(plan)


def test_start_pause_resume_abort_from_the_window(window, qtbot, tmp_path, monkeypatch):
    scan, live = window.scan, window.scan.live
    path = tmp_path / "session.h5"
    gate = gate_the_scan(window, qtbot, monkeypatch)
    gate.hold_scan(at_point=4)
    scan.form.set_plan(small_plan("first", n=12))
    qtbot.mouseClick(scan.start_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(gate.waiting.is_set, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: live.state == "running" and live.points >= 3, timeout=WAIT_MS)
    assert window.holder.busy and not window.instruments.goto_button.isEnabled()

    qtbot.mouseClick(scan.pause_button, QtCore.Qt.MouseButton.LeftButton)
    gate.go.set()
    qtbot.waitUntil(lambda: live.state == "paused", timeout=WAIT_MS)
    assert live.sequencer.state == "paused"
    assert status(path, "first") == "paused"
    assert scan.resume_button.isEnabled() and not scan.pause_button.isEnabled()
    paused_at = live.points
    qtbot.waitUntil(
        lambda: np.count_nonzero(np.isfinite(scan.view.map.bz)) == paused_at, timeout=WAIT_MS
    )  # the live map shows every point measured, no more

    gate.hold(at=gate.count + 12 * 3)
    qtbot.mouseClick(scan.resume_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(gate.waiting.is_set, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: live.state == "running" and live.points >= 12 * 3 + 2, timeout=WAIT_MS)
    assert live.points > paused_at

    qtbot.mouseClick(scan.abort_button, QtCore.Qt.MouseButton.LeftButton)
    gate.go.set()
    qtbot.waitUntil(lambda: live.state == "aborted", timeout=WAIT_MS)
    assert status(path, "first") == "aborted"
    assert not window.holder.busy and scan.start_button.isEnabled()
    # the rig was made safe: zero applied field
    np.testing.assert_allclose(window.holder.rig.coils.field_setpoint(), 0.0, atol=1e-12)

    stored = read_map(path, "first")
    done = lines_done(path, "first")
    shown = scan.view.map.bz
    assert done.sum() >= 3
    np.testing.assert_array_equal(stored.bz[done], shown[done])  # finished lines: identical
    assert np.all(np.isnan(stored.bz[~done]))
    assert np.count_nonzero(np.isfinite(shown)) == live.points


def test_a_finished_scan_matches_its_file_and_shows_in_the_session(window, qtbot, tmp_path):
    path = tmp_path / "session.h5"
    run_to_end(qtbot, window, small_plan("whole", n=8, raster="unidirectional"))
    live = window.scan.live
    assert live.state == "finished" and live.points == 64
    stored = read_map(path, "whole")
    np.testing.assert_array_equal(stored.bz, window.scan.view.map.bz)
    level = window.scan.view.colour_bar.levels()[1]
    assert level == pytest.approx(np.max(np.abs(stored.bz)) / UT)
    session = window.session
    qtbot.waitUntil(lambda: session.path == path and session.reading is None, timeout=WAIT_MS)
    names = [session.table.item(r, 0).text() for r in range(session.table.rowCount())]
    assert names == ["whole"]


def test_window_stays_responsive_during_a_fast_scan(window, qtbot):
    """A zero-interval timer keeps firing and queued calls return while points stream in;
    the live map is redrawn only from its 10-per-second timer, never once per point."""
    live = window.scan.live
    ticks = []
    counter = QtCore.QTimer(interval=0)
    counter.timeout.connect(lambda: ticks.append(live.points))
    redraw_ticks = []
    live.timer.timeout.connect(lambda: redraw_ticks.append(1))
    assert live.timer.interval() == 100

    counter.start()
    assert window.scan.start(small_plan("fast", n=20))
    qtbot.waitUntil(lambda: live.points >= 60, timeout=WAIT_MS)
    answered = []
    QtCore.QTimer.singleShot(0, lambda: answered.append(live.points))
    qtbot.waitUntil(lambda: bool(answered), timeout=WAIT_MS)
    mid_scan = live.running and answered[0] < 400
    with qtbot.waitSignal(window.scan.scanEnded, timeout=WAIT_MS):
        pass
    counter.stop()

    assert mid_scan  # the queued call came back while the scan was still running
    during = [p for p in ticks if 0 < p < 400]
    assert len(during) >= 10  # the event loop kept turning between points
    assert live.points == 400
    assert live.redraws <= len(redraw_ticks) + 1  # one final redraw at the end


def test_closing_during_a_scan_asks_then_aborts_safely(window, qtbot, tmp_path, monkeypatch):
    path = tmp_path / "session.h5"
    asked = []
    answer = QtWidgets.QMessageBox.StandardButton.No

    def question(*args, **kwargs):
        asked.append(args[2])
        return answer

    monkeypatch.setattr(QtWidgets.QMessageBox, "question", question)
    assert window.scan.start(small_plan("closing", n=30))
    live = window.scan.live
    qtbot.waitUntil(lambda: live.state == "running" and live.points >= 3, timeout=WAIT_MS)

    assert not window.close()  # "No": the scan goes on
    assert len(asked) == 1 and window.isVisible() and live.running

    answer = QtWidgets.QMessageBox.StandardButton.Yes
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=WAIT_MS)
    assert len(asked) == 2
    assert live.state == "aborted"
    assert status(path, "closing") == "aborted"
    assert window.holder.rig is None  # made safe and closed


def test_drag_an_area_on_the_last_map_to_set_the_grid(window, qtbot):
    run_to_end(qtbot, window, small_plan("area", n=6))
    scan = window.scan
    scan.form.step_x.setValue(10.0)
    scan.form.step_y.setValue(10.0)
    x0, y0 = CENTRE[0] - 40 * UM, CENTRE[1] - 30 * UM
    scan.view.set_area((x0, y0), (x0 + 80 * UM, y0 + 50 * UM))
    scan.view._area_changed()
    assert scan.form.from_area.isEnabled()
    qtbot.mouseClick(scan.form.from_area, QtCore.Qt.MouseButton.LeftButton)
    plan = scan.form.plan()
    assert (plan.x0, plan.y0) == pytest.approx((x0, y0), abs=1e-9)
    assert (plan.nx, plan.ny) == (9, 6)


def test_a_plan_outside_the_limits_is_refused_with_the_message_by_the_field(window):
    scan = window.scan
    scan.form.set_plan(small_plan("too-strong", field=(0.0, 0.0, 500 * UT)))
    assert not scan.start()
    assert "max_field" in scan.form.error_text("field")
    assert not scan.live.running and not window.holder.busy


def test_settings_persist_between_windows(qtbot, settings, tmp_path):
    first = MainWindow(load_profile(), settings)
    qtbot.addWidget(first)
    first.scan.form.set_plan(small_plan("remembered", n=5))
    first.scan.file_edit.setText(str(tmp_path / "kept.h5"))
    first.show_view("session")
    first.close()
    second = MainWindow(load_profile(), settings)
    qtbot.addWidget(second)
    assert second.scan.form.name.text() == "remembered"
    assert second.scan.path == tmp_path / "kept.h5"
    assert second.tabs.tabText(second.tabs.currentIndex()) == "Session"
    second.close()


def test_the_stage_stop_button_during_a_scan_aborts_the_scan(window, qtbot, tmp_path,
                                                             monkeypatch):
    scan, live = window.scan, window.scan.live
    gate = gate_the_scan(window, qtbot, monkeypatch)
    gate.hold_scan(at_point=4)
    scan.form.set_plan(small_plan("stopped", n=12))
    qtbot.mouseClick(scan.start_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(gate.waiting.is_set, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: live.state == "running" and live.points >= 3, timeout=WAIT_MS)
    qtbot.mouseClick(window.instruments.stop_button, QtCore.Qt.MouseButton.LeftButton)
    gate.go.set()
    qtbot.waitUntil(lambda: live.state == "aborted", timeout=WAIT_MS)
    assert status(tmp_path / "session.h5", "stopped") == "aborted"
    np.testing.assert_allclose(window.holder.rig.coils.field_setpoint(), 0.0, atol=1e-12)


def test_pause_clicked_before_the_sequencer_is_handed_over_still_pauses(window, qtbot, tmp_path,
                                                                         monkeypatch):
    """The scan's first events can reach the window before its sequencer does (that comes
    from the rig's thread separately): Pause is enabled then, and must not be lost."""
    scan, live = window.scan, window.scan.live
    run_to_end(qtbot, window, small_plan("before", n=2))  # its sequencer is done with
    gate = gate_the_scan(window, qtbot, monkeypatch)
    gate.hold_scan(at_point=4)
    handed: list = []
    attach = live.attach
    monkeypatch.setattr(live, "attach", handed.append)  # held back until the click
    scan.form.set_plan(small_plan("early", n=8))
    qtbot.mouseClick(scan.start_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(gate.waiting.is_set, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: live.state == "running" and len(handed) == 1, timeout=WAIT_MS)
    assert live.sequencer is None and scan.pause_button.isEnabled()
    qtbot.mouseClick(scan.pause_button, QtCore.Qt.MouseButton.LeftButton)
    attach(handed[0])
    gate.go.set()
    qtbot.waitUntil(lambda: live.state == "paused", timeout=WAIT_MS)
    assert status(tmp_path / "session.h5", "early") == "paused"
    with qtbot.waitSignal(scan.scanEnded, timeout=WAIT_MS):
        qtbot.mouseClick(scan.abort_button, QtCore.Qt.MouseButton.LeftButton)


def _red_pixels(widget) -> int:
    image = widget.grab().toImage()
    return sum(1 for x in range(image.width()) for y in range(image.height())
               if (c := image.pixelColor(x, y)).red() > 120 and c.green() < 60
               and c.blue() < 60)


def test_abort_is_red_only_while_it_can_be_pressed(window):
    abort = window.scan.abort_button
    assert not abort.isEnabled()  # no scan
    assert _red_pixels(abort) == 0
    abort.setEnabled(True)
    assert _red_pixels(abort) > 0


def test_a_scan_that_fails_to_start_says_when_the_rig_is_not_safe(window, qtbot, monkeypatch):
    from smm_daq.acquisition.sequencer import Sequencer
    from smm_daq.errors import InstrumentError

    def refuse(self):
        raise InstrumentError("lockin: refused the time constant")

    monkeypatch.setattr(Sequencer, "_use_profile_time_constant", refuse)
    with monkeypatch.context() as unsafe:  # (not at the window's close: it would ask)
        unsafe.setattr(window.holder.rig, "make_safe",
                       lambda: ["coils: no reply; the field may be ON"])
        with qtbot.waitSignal(window.scan.scanEnded, timeout=WAIT_MS) as ended:
            assert window.scan.start(small_plan("refused", n=3))
    kind, message = ended.args
    assert kind == "failed" and "lockin: refused the time constant" in message
    assert "rig NOT safe: coils: no reply; the field may be ON" in message
    assert "rig NOT safe" in window.scan.status.text()


@pytest.mark.parametrize("rig_safe", [True, False])
def test_the_scan_tab_says_the_rig_was_made_safe_by_the_sequencers_flag(qtbot, tmp_path,
                                                                          rig_safe):
    """Whether the rig was made safe comes from the final event's flag, not from words in its
    message (this one does not say)."""
    from gui.rig_holder import RigHolder
    from gui.scan_tab import ScanTab
    from smm_daq.acquisition.events import ScanEvent

    tab = ScanTab(RigHolder(load_profile()))
    qtbot.addWidget(tab)
    plan = small_plan("flagged", n=3)
    tab.live.prepare(plan, tmp_path / "s.h5", None)
    # a sequencer that ran, no instrument lost (none called), no entry written (no file)
    ran = SimpleNamespace(lost=None, entry_opened=False)
    tab.live.attach(ran)
    with qtbot.waitSignal(tab.scanEnded, timeout=WAIT_MS):
        tab.live.bridge.push(ScanEvent("aborted", plan.name, 0, rig_safe=rig_safe,
                                       message="aborted by the operator; coils: no reply"))
    assert ("The rig was made safe" in tab.status.text()) is rig_safe
    tab.live.timer.stop()


def test_a_new_scan_does_not_show_the_last_scans_progress(window, qtbot, tmp_path):
    """Between Start and the sequencer's first event (the field set, the stage moved to the
    first point) the bars showed the scan before's 100 %."""
    import threading

    scan = window.scan
    run_to_end(qtbot, window, small_plan("before", n=2))
    assert scan.progress.value() == 1000 and window.recipes.progress.value() == 1000
    go = threading.Event()
    window.holder.background.submit(lambda: go.wait(60))  # the sequencer is built after it
    try:
        assert scan.start(small_plan("next", n=2))
        assert scan.live.state == "starting"
        assert scan.progress.value() == 0 and window.recipes.progress.value() == 0
    finally:
        go.set()
    qtbot.waitUntil(lambda: not scan.live.running, timeout=WAIT_MS)


def test_why_a_scan_paused_stays_on_show(window, qtbot, monkeypatch):
    """A scan left overnight pauses on a lock-in overload: the status line must say so (the
    progress that came with the pause replaced the reason)."""
    scan, live = window.scan, window.scan.live
    window.instruments.timer.stop()  # the poll reads the overload too
    qtbot.waitUntil(lambda: window.holder.background.pending == 0, timeout=WAIT_MS)
    lockin = window.holder.rig.lockin
    reads = {"n": 0}

    def overloaded_from_the_fourth_read() -> bool:
        reads["n"] += 1
        return reads["n"] > 3

    with monkeypatch.context() as patch:
        patch.setattr(lockin, "overloaded", overloaded_from_the_fourth_read)
        assert scan.start(small_plan("overloaded", n=6))
        try:
            qtbot.waitUntil(lambda: live.state == "paused", timeout=WAIT_MS)
            shown = scan.status.text()
        finally:  # a scan left running would make the window ask on closing
            with qtbot.waitSignal(scan.scanEnded, timeout=WAIT_MS):
                live.abort()
    assert shown.startswith("paused: lock-in overload: ") and "% done" in shown


def test_a_scan_can_be_aborted_while_its_field_ramps(window, qtbot, monkeypatch):
    """Before its first point a scan ramps the coils to its field (on a rig, up to a minute):
    Abort must be usable then (it was disabled until the first point)."""
    scan, live = window.scan, window.scan.live
    coils = window.holder.rig.coils
    held = Held(coils.set_field)
    with monkeypatch.context() as patch:
        patch.setattr(coils, "set_field", held)
        assert scan.start(small_plan("in-field", n=4, field=(0.0, 40 * UT, 0.0)))
        try:
            held.wait_entered()  # the sequencer is ramping the field
            qtbot.waitUntil(lambda: live.sequencer is not None, timeout=WAIT_MS)
            assert live.state == "starting"
            enabled = scan.abort_button.isEnabled()
            qtbot.mouseClick(scan.abort_button, QtCore.Qt.MouseButton.LeftButton)
        finally:
            held.go.set()
            if live.running:
                live.abort()
            qtbot.waitUntil(lambda: not live.running, timeout=WAIT_MS)
    assert enabled and live.state == "aborted"
    assert status(window.scan.path, "in-field") == "aborted"
    np.testing.assert_allclose(coils.field_setpoint(), 0.0, atol=1e-12)


def test_the_window_title_says_a_scans_state_and_progress_while_it_runs(window, qtbot):
    """Seen from the taskbar: the scan's state (a pause above all) and progress in the title
    while it runs; the title as before once it has ended."""
    before = window.windowTitle()
    plan = ScanPlan.from_center("titled", (12.5e-3, 12.5e-3), (9 * 20 * UM, 9 * 20 * UM),
                                20 * UM, settle_tau=1.0)
    live = window.scan.live
    assert window.scan.start(plan)
    try:
        qtbot.waitUntil(lambda: live.state == "running" and live.points > 0, timeout=WAIT_MS)
        # no file open in the Session tab: the title names the scan's
        assert window.windowTitle().startswith(f"{before} [session.h5: scan running, ")
        live.pause()
        qtbot.waitUntil(lambda: "scan paused, " in window.windowTitle(), timeout=WAIT_MS)
        assert window.windowTitle().endswith(" %]")
    finally:
        with qtbot.waitSignal(window.scan.scanEnded, timeout=WAIT_MS):
            window.scan.abort()
    assert window.windowTitle() == before


def test_the_title_names_the_file_a_scan_writes_unless_it_names_it_already(window, qtbot,
                                                                          tmp_path):
    """Another file opened in the Session tab during a scan: the title, which names that
    file, names the scan's too (unfixed: the scan's state and progress beside another file's
    name, as if it wrote that one); the scan's own file open there, it is named once."""
    from session_reads import opened
    from test_gui_file_identity import session_file

    other = tmp_path / "other"
    other.mkdir()
    plan = ScanPlan.from_center("named", (12.5e-3, 12.5e-3), (9 * 20 * UM, 9 * 20 * UM),
                                20 * UM, settle_tau=1.0)
    live = window.scan.live
    assert window.scan.start(plan)
    try:
        qtbot.waitUntil(lambda: live.state == "running", timeout=WAIT_MS)
        live.pause()
        qtbot.waitUntil(lambda: live.state == "paused", timeout=WAIT_MS)
        assert opened(window.session, qtbot, session_file(other))
        title = window.windowTitle()
        assert title.startswith(f"smm-daq: {window.profile.name}: s.h5 [session.h5: scan "
                                "paused, "), title
        assert opened(window.session, qtbot, tmp_path / "session.h5")
        assert window.windowTitle().startswith(
            f"smm-daq: {window.profile.name}: session.h5 [scan paused, ")
    finally:
        with qtbot.waitSignal(window.scan.scanEnded, timeout=WAIT_MS):
            window.scan.abort()
    assert window.windowTitle() == f"smm-daq: {window.profile.name}: session.h5"


def test_the_status_line_says_a_scan_under_way_not_the_last_ones_end(window, qtbot,
                                                                      monkeypatch):
    """After a scan, the next one running (or paused) is said on the status line: it kept
    saying "Scan finished" of the scan before."""
    run_to_end(qtbot, window, small_plan("before", n=3))
    assert window.statusBar().currentMessage().startswith("Scan finished")
    gate = gate_the_scan(window, qtbot, monkeypatch)
    gate.hold_scan(at_point=4)
    assert window.scan.start(small_plan("next", n=6))
    try:
        qtbot.waitUntil(gate.waiting.is_set, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: window.scan.live.state == "running", timeout=WAIT_MS)
        assert window.statusBar().currentMessage() == "Scan 'next' running"
        window.scan.pause_button.click()
    finally:
        gate.go.set()
    qtbot.waitUntil(lambda: window.scan.live.state == "paused", timeout=WAIT_MS)
    assert window.statusBar().currentMessage() == "Scan 'next' paused"
    with qtbot.waitSignal(window.scan.scanEnded, timeout=WAIT_MS):
        window.scan.abort_button.click()
    assert window.statusBar().currentMessage().startswith("Scan aborted")
