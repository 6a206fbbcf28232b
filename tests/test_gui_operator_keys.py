"""What an operator expects of the window's entries and keys: z jogs that cannot bring the
sensor into the sample, numbers typed that are not silently changed, an entry name taken that
points to the window's Resume scan, and keys for the buttons reached for in a hurry."""

from __future__ import annotations

import numpy as np
import pytest
from PyQt6 import QtCore, QtGui, QtWidgets

from gui.confirm import confirm
from gui.instruments_panel import si_number
from gui.scan_tab import next_free_name
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.storage.names import ENTRY_NAME_MAX, new_entry_name_problem
from smm_daq.storage.nexus import list_entries
from smm_daq.storage.scan_entry import EntryTaken

UM = 1e-6
WAIT_MS = 60_000  # generous: the whole suite shares two cores
CENTRE = (12.5e-3, 12.5e-3)


def readings(qtbot, panel):
    panel.readings = {}
    panel.poll()
    qtbot.waitUntil(lambda: bool(panel.readings), timeout=WAIT_MS)
    return panel.readings


def at_rest_at(qtbot, panel, target_um) -> None:
    def arrived() -> bool:
        r = readings(qtbot, panel)
        return r.get("on_target") is True and np.allclose(r["position"], np.asarray(target_um)
                                                          * UM, atol=0.05 * UM)

    qtbot.waitUntil(arrived, timeout=WAIT_MS)


def scanned_3_by_3(window, qtbot, name: str):
    """The window's Scan tab, once it has scanned 3 × 3 points under `name` to the end."""
    scan = window.scan
    plan = ScanPlan.from_center(name, CENTRE, (3 * 20 * UM, 3 * 20 * UM), 20 * UM,
                                settle_tau=1.0)
    scan.form.set_plan(plan)
    with qtbot.waitSignal(scan.scanEnded, timeout=WAIT_MS) as ended:
        assert scan.start()
    assert ended.args[0] == "finished"
    return scan


def type_into(qtbot, box, text: str, key=QtCore.Qt.Key.Key_Return) -> None:
    box.setFocus()
    box.selectAll()
    qtbot.keyClicks(box, text)
    qtbot.keyClick(box, key)


def test_a_z_jog_from_the_scan_height_does_not_reach_the_sample(window, qtbot):
    """At the usual scan height (100 µm) a z− click moves the sensor by the small z step, not
    by the x, y step (100 µm: z = 0, through contact); one that would go below the lowest z
    by jog is refused with a message, and the stage stays where it is."""
    panel = window.instruments
    start = readings(qtbot, panel)["position"] / UM
    type_into(qtbot, panel.goto_boxes[2], "100")  # Return: Go to
    at_rest_at(qtbot, panel, [start[0], start[1], 100.0])
    assert panel.jog_step.value() == 100.0 and panel.z_jog_step.value() == 10.0
    z_minus = panel.jog_buttons[4]
    assert z_minus.text() == "z−"
    qtbot.mouseClick(z_minus, QtCore.Qt.MouseButton.LeftButton)
    at_rest_at(qtbot, panel, [start[0], start[1], 90.0])

    panel.z_jog_step.setValue(80.0)  # 90 − 80 = 10 µm: below the lowest z by jog (20 µm)
    qtbot.mouseClick(z_minus, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "refused" in panel.message.text(), timeout=WAIT_MS)
    assert "z = 10.00 µm" in panel.message.text()
    assert "lowest z by jog (20.00 µm" in panel.message.text()
    at_rest_at(qtbot, panel, [start[0], start[1], 90.0])
    panel.z_floor.setValue(5.0)  # lowered on purpose: the jog goes
    qtbot.mouseClick(z_minus, QtCore.Qt.MouseButton.LeftButton)
    at_rest_at(qtbot, panel, [start[0], start[1], 10.0])


def test_a_jog_step_typed_beyond_its_maximum_is_clamped_and_said(window, qtbot):
    """20000 typed into the jog step (at most 10000 µm) was 2000: another number, silently."""
    panel = window.instruments
    type_into(qtbot, panel.jog_step, "20000")
    assert panel.jog_step.value() == 10000.0
    assert "20000 µm is beyond its range" in panel.message.text()
    assert "10000 µm is used" in panel.message.text()


def test_a_time_constant_between_the_lockins_steps_is_said_as_taken(window, qtbot):
    panel = window.instruments
    type_into(qtbot, panel.tau_box, "0.2")
    qtbot.waitUntil(lambda: "no 200 ms; it took 300 ms" in panel.message.text(),
                    timeout=WAIT_MS)
    assert panel.tau_box.value() == pytest.approx(0.3)
    type_into(qtbot, panel.sensitivity_box, "0.003")
    qtbot.waitUntil(lambda: "no 3 mV; it took 5 mV" in panel.message.text(),
                    timeout=WAIT_MS)
    type_into(qtbot, panel.tau_box, "1")  # one of its steps: nothing to say
    qtbot.waitUntil(lambda: panel.message.text() == "", timeout=WAIT_MS)


def test_lockin_settings_are_shown_and_typed_with_the_units_prefix(window, qtbot):
    """The sensitivity read 0.500000000 V and 200 µV had to be typed as 0.0002 (a zero more
    or less: a range ten times off); now the boxes say 500 mV and 30 ms, and take 200 µV,
    200u or 0.0002 alike; a unit not the box's is not taken."""
    panel = window.instruments
    tau, sensitivity = panel.tau_box, panel.sensitivity_box
    qtbot.waitUntil(lambda: panel.readings.get("sensitivity") is not None, timeout=WAIT_MS)
    assert (tau.text(), sensitivity.text()) == ("30 ms", "500 mV")
    for typed in ("200 µV", "1u", "0.002"):
        type_into(qtbot, sensitivity, typed)
        want = si_number(typed, "V")
        qtbot.waitUntil(lambda want=want: readings(qtbot, panel)["sensitivity"]
                        == pytest.approx(want), timeout=WAIT_MS)
    assert sensitivity.text() == "2 mV"
    type_into(qtbot, tau, "100ms")
    qtbot.waitUntil(lambda: readings(qtbot, panel)["time_constant"] == pytest.approx(0.1),
                    timeout=WAIT_MS)
    assert tau.text() == "100 ms" and panel.message.text() == ""
    # not a time: kept as typed, to be refused on Return (a dropped keystroke left 3 s)
    assert tau.validate("3 V", 0)[0] == QtGui.QValidator.State.Intermediate
    assert tau.validate("3 m", 0)[0] == QtGui.QValidator.State.Acceptable


def test_return_in_a_field_box_sets_the_field(window, qtbot):
    panel = window.instruments
    type_into(qtbot, panel.field_boxes[2], "12")
    qtbot.waitUntil(lambda: np.allclose(readings(qtbot, panel)["field_setpoint"],
                                        [0, 0, 12e-6], atol=1e-9), timeout=WAIT_MS)


@pytest.mark.parametrize(("name", "taken", "free"), [
    ("scan", {"scan"}, "scan_2"), ("scan_2", {"scan_2", "scan_3"}, "scan_4"),
    ("scan-1", {"scan-1"}, "scan-2"), ("remanent", set(), "remanent_2")])
def test_next_free_name(name, taken, free):
    assert next_free_name(name, taken) == free


LONGEST = "n" * ENTRY_NAME_MAX


@pytest.mark.parametrize(("name", "taken", "free"), [
    (LONGEST, {LONGEST}, "n" * (ENTRY_NAME_MAX - 2) + "_2"),
    ("n" * (ENTRY_NAME_MAX - 2) + "_9", set(), "n" * (ENTRY_NAME_MAX - 3) + "_10"),
    ("s" * 120, set(), "s" * (ENTRY_NAME_MAX - 2) + "_2"),  # an earlier release's name
    ("e\u0301", set(), "\u00e9_2"),  # decomposed: composed
    ("e\u0301", {"e\u0301_2"}, "\u00e9_3"),  # taken in the other form: looks the same
    ("line\nbreak", set(), "line_break_2"),
    # a number that would not fit counted on (the search for a free name never ended) ...
    ("_" + "9" * 99, set(), "_" + "9" * 97 + "_2"),
    # ... and an earlier release's name whose number Python does not read (ValueError)
    ("s_" + "9" * 5000, set(), "s_" + "9" * 96 + "_2")],
    ids=["longest", "number-longer", "over-long", "decomposed", "lookalike", "control",
         "number-too-long", "number-unreadable"])
def test_the_next_free_name_is_always_one_a_new_entry_may_have(name, taken, free):
    """After a name of (nearly) the most characters, or an earlier release's name breaking
    today's rule, the name proposed is one the form takes: Start was refused for it."""
    proposed = next_free_name(name, taken)
    assert proposed == free
    assert new_entry_name_problem(proposed) is None


def test_a_name_taken_proposes_the_next_and_resume_scan_only_where_it_finishes(window,
                                                                                qtbot):
    """A finished scan's name: the next name, no Resume scan (which refuses a finished
    scan); a scan that did not finish: Resume scan too."""
    scan = scanned_3_by_3(window, qtbot, "scan")
    assert scan.form.name.text() == "scan_2"  # the next scan does not reuse the name

    scan.form.name.setText("scan")  # said as typed
    said = scan.form.error_text("name")
    assert said == f"{scan.path.name} has an entry 'scan' already; choose another name " \
        "(scan_2 is free)"
    scan.form.name.setText("scan_2")
    assert scan.form.error_text("name") == ""

    scan._entry_names.clear()  # the file's names not known: the name found as it starts
    scan.form.name.setText("scan")
    assert scan.form.error_text("name") == ""
    with qtbot.waitSignal(scan.scanEnded, timeout=WAIT_MS) as ended:
        assert scan.start()
    assert ended.args[0] == "not started"
    assert scan.status.text().startswith(f"Not started: {scan.path.name} has an entry 'scan'")
    assert scan.view.plot.titleLabel.text == "scan (not started)"
    by_name = scan.form.error_text("name")
    assert "Resume scan" not in by_name and "smm-daq resume" not in by_name  # it is done
    assert "'scan' is a finished scan, which nothing resumes" in by_name
    assert "scan_2 is free" in by_name and scan.form.name.text() == "scan_2"
    assert "Resume scan" not in scan.status.text()

    scan._start_failed(EntryTaken(scan.path, "scan", "scan"))  # an interrupted scan
    assert "Resume scan on the Session tab" in scan.form.error_text("name")

    scan.form.name.setText("scan")  # an interrupted scan cut off while swapped in
    scan._start_failed(EntryTaken(scan.path, "scan", "scan", swap_cut_off=True))
    by_name = scan.form.error_text("name")
    assert "scan_2 is free" in by_name and scan.form.name.text() == "scan_2"
    assert f"run `smm-daq repair {scan.path}` first, then Resume scan" in by_name, by_name


def test_a_name_the_file_held_as_last_read_starts_once_the_file_no_longer_holds_it(
        window, qtbot):
    """The names as last read are only said: the file removed since (by another program, to
    begin again), Start scans under the name, which the start reads off the file as it is."""
    scan = scanned_3_by_3(window, qtbot, "scan")
    scan.path.unlink()
    scan.form.name.setText("scan")
    assert "has an entry 'scan' already" in scan.form.error_text("name")  # as last read
    with qtbot.waitSignal(scan.scanEnded, timeout=WAIT_MS) as ended:
        assert scan.start()
    assert ended.args[0] == "finished", scan.status.text()
    assert [e.name for e in list_entries(scan.path)] == ["scan"]


def test_keys_press_start_pause_abort_stop_and_connect(window, qtbot):
    """Keys named in the buttons' tooltips: Start from the Scan tab (F5 pressed on another
    tab, as a refresh, starts nothing), the others from any tab."""
    scan, panel = window.scan, window.instruments
    for button, key in ((scan.start_button, "F5, on this tab"), (scan.pause_button, "F6"),
                        (scan.abort_button, "Shift+F5"), (panel.stop_button, "Esc"),
                        (panel.connect_button, "Ctrl+K")):
        assert f"({key}" in button.toolTip(), button.text()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=WAIT_MS)
    plan = ScanPlan.from_center("keys", CENTRE, (9 * 20 * UM, 9 * 20 * UM), 20 * UM,
                                settle_tau=1.0)
    scan.form.set_plan(plan)
    started = []
    scan.start_button.clicked.connect(lambda: started.append(True))
    window.show_view("session")
    qtbot.keyClick(window, QtCore.Qt.Key.Key_F5)
    assert not started and scan.start_button.isEnabled()  # nothing started
    window.show_view("scan")
    qtbot.keyClick(window, QtCore.Qt.Key.Key_F5)
    qtbot.waitUntil(lambda: scan.live.state == "running", timeout=WAIT_MS)
    assert started == [True]
    window.show_view("session")
    qtbot.keyClick(window, QtCore.Qt.Key.Key_F6)
    qtbot.waitUntil(lambda: scan.live.state == "paused", timeout=WAIT_MS)
    with qtbot.waitSignal(scan.scanEnded, timeout=WAIT_MS) as ended:
        qtbot.keyClick(window, QtCore.Qt.Key.Key_F5, QtCore.Qt.KeyboardModifier.ShiftModifier)
    assert ended.args[0] == "aborted"
    window.show_view("scan")
    with qtbot.waitSignal(panel.holder.opened, timeout=WAIT_MS):
        qtbot.keyClick(window, QtCore.Qt.Key.Key_K, QtCore.Qt.KeyboardModifier.ControlModifier)


def test_esc_stops_the_stage_from_any_tab(window, qtbot):
    panel = window.instruments
    start = readings(qtbot, panel)["position"] / UM
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=WAIT_MS)
    target = [start[0] + 20000.0 if start[0] < 5000.0 else 0.0, start[1], start[2]]
    panel.goto_boxes[0].setValue(target[0])
    panel.go_to()
    qtbot.waitUntil(lambda: readings(qtbot, panel).get("on_target") is False, timeout=WAIT_MS)
    window.show_view("session")
    qtbot.keyClick(window, QtCore.Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: readings(qtbot, panel).get("on_target") is True, timeout=WAIT_MS)
    assert abs(readings(qtbot, panel)["position"][0] / UM - target[0]) > 100.0


def esc_in_the_modal(qtbot, open_modal):
    """Calls `open_modal()`, which shows a modal and returns once it has closed, and, once
    the modal is up, presses Esc where the key goes (its focused widget); returns what
    `open_modal()` returned, and the modal's class name. A modal the Esc left up is closed
    (the test then fails on what follows, rather than waiting for nobody)."""
    seen: list[str] = []

    def press() -> None:
        modal = QtWidgets.QApplication.activeModalWidget()
        if modal is None:
            QtCore.QTimer.singleShot(10, press)
            return
        seen.append(type(modal).__name__)
        focused = QtWidgets.QApplication.focusWidget()
        qtbot.keyClick(focused if focused is not None and focused.window() is modal else modal,
                       QtCore.Qt.Key.Key_Escape)
        if modal.isVisible():
            seen.append("left up")
            modal.close()

    QtCore.QTimer.singleShot(0, press)
    returned = open_modal()
    return returned, seen


def counting_stops(monkeypatch, stage) -> list[int]:
    """The stage's stop calls, counted (in the rig's thread) as they are made."""
    stops: list[int] = []
    stop = stage.stop

    def counted() -> None:
        stops.append(1)
        stop()

    monkeypatch.setattr(stage, "stop", counted)
    return stops


MODALS = {
    "file dialog": lambda window: window.scan._choose_file(),
    "question": lambda window: confirm(window, "Go on?"),
    "warning": lambda window: QtWidgets.QMessageBox.warning(window, "smm-daq", "Look."),
}


@pytest.mark.parametrize("modal", list(MODALS))
def test_esc_in_a_dialog_stops_a_moving_stage_and_closes_the_dialog(window, qtbot,
                                                                    monkeypatch, modal):
    """A modal dialog took Esc for itself: the stage went on moving (into the sample, say)
    while the operator pressed Esc. Now Esc stops it, and the dialog closes as its Esc
    closes it (the file dialog chooses nothing, the question is answered No)."""
    panel = window.instruments
    start = readings(qtbot, panel)["position"] / UM
    target = start[0] + 20000.0 if start[0] < 5000.0 else 0.0
    panel.goto_boxes[0].setValue(target)
    with monkeypatch.context() as patch:  # undone before the window's close stops the stage
        stops = counting_stops(patch, window.holder.rig.stage)
        panel.go_to()
        qtbot.waitUntil(lambda: readings(qtbot, panel).get("on_target") is False,
                        timeout=WAIT_MS)
        file_before = window.scan.file_edit.text()
        returned, seen = esc_in_the_modal(qtbot, lambda: MODALS[modal](window))
        assert "left up" not in seen and len(seen) == 1, seen
        qtbot.waitUntil(lambda: len(stops) == 1, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: readings(qtbot, panel).get("on_target") is True,
                        timeout=WAIT_MS)
    assert abs(readings(qtbot, panel)["position"][0] / UM - target) > 100.0
    assert returned in (None, False, QtWidgets.QMessageBox.StandardButton.Ok)
    assert window.scan.file_edit.text() == file_before
    # a native dialog (the platform's file dialog) takes its keys outside Qt: none is used
    assert QtCore.QCoreApplication.testAttribute(
        QtCore.Qt.ApplicationAttribute.AA_DontUseNativeDialogs)


@pytest.mark.parametrize("modal", list(MODALS))
def test_esc_in_a_dialog_with_the_stage_at_rest_only_closes_the_dialog(window, qtbot,
                                                                        monkeypatch, modal):
    """No stop is sent to a stage at rest (a PI controller records one as error 10)."""
    panel = window.instruments
    at_rest = readings(qtbot, panel)
    assert at_rest.get("on_target") is True
    with monkeypatch.context() as patch:
        stops = counting_stops(patch, window.holder.rig.stage)
        returned, seen = esc_in_the_modal(qtbot, lambda: MODALS[modal](window))
        assert "left up" not in seen and len(seen) == 1, seen
        readings(qtbot, panel)  # asked after any stop, in the rig's thread
        assert stops == []
    assert returned in (None, False, QtWidgets.QMessageBox.StandardButton.Ok)


def test_esc_in_the_close_question_during_a_scan_aborts_the_scan(window, qtbot):
    """The close's question over a running scan: Esc answers it No (the window stays) and
    aborts the scan, as Esc in the window does."""
    scan = window.scan
    # 40 x 40 points: on the simulator's clock, which runs as fast as it is computed, a
    # smaller scan ended before the question was up and answered on a loaded machine
    plan = ScanPlan.from_center("esc", CENTRE, (39 * 20 * UM, 39 * 20 * UM), 20 * UM,
                                settle_tau=1.0)
    scan.form.set_plan(plan)
    assert scan.start()
    qtbot.waitUntil(lambda: scan.live.state == "running", timeout=WAIT_MS)
    with qtbot.waitSignal(scan.scanEnded, timeout=WAIT_MS) as ended:
        _, seen = esc_in_the_modal(qtbot, window.close)
    assert seen == ["QMessageBox"]
    assert ended.args[0] == "aborted"
    assert window.isVisible() and not window.closing


def test_esc_in_a_dialog_over_a_paused_scan_leaves_the_scan_paused(window, qtbot):
    scan = window.scan
    plan = ScanPlan.from_center("paused", CENTRE, (9 * 20 * UM, 9 * 20 * UM), 20 * UM,
                                settle_tau=1.0)
    scan.form.set_plan(plan)
    assert scan.start()
    qtbot.waitUntil(lambda: scan.live.state == "running", timeout=WAIT_MS)
    scan.live.pause()
    qtbot.waitUntil(lambda: scan.live.state == "paused", timeout=WAIT_MS)
    _, seen = esc_in_the_modal(qtbot, lambda: MODALS["file dialog"](window))
    assert len(seen) == 1 and "left up" not in seen
    assert scan.live.state == "paused"
    with qtbot.waitSignal(scan.scanEnded, timeout=WAIT_MS):  # before the window's close asks
        scan.abort()


def test_esc_in_a_dialog_right_after_a_go_to_stops_it(window, qtbot, monkeypatch):
    """Before any reading has seen the stage move (the last one found it at rest), a Go to
    just asked for is taken as moving: Esc stops it."""
    panel = window.instruments
    start = readings(qtbot, panel)["position"] / UM
    assert panel.readings.get("on_target") is True
    target = start[0] + 20000.0 if start[0] < 5000.0 else 0.0
    panel.goto_boxes[0].setValue(target)
    with monkeypatch.context() as patch:
        stops = counting_stops(patch, window.holder.rig.stage)
        panel.go_to()
        _, seen = esc_in_the_modal(qtbot, lambda: MODALS["question"](window))
        assert seen == ["QMessageBox"]
        qtbot.waitUntil(lambda: len(stops) == 1, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: readings(qtbot, panel).get("on_target") is True,
                        timeout=WAIT_MS)
    assert abs(readings(qtbot, panel)["position"][0] / UM - target) > 100.0


def test_esc_in_a_dialog_while_a_resume_reads_its_entry_leaves_it_with_the_stage_at_rest(
        window, qtbot, monkeypatch, tmp_path):
    """Resume scan reads its entry in a thread of its own (a large map, a slow disk: a while),
    the rig held for it, nothing moving: Esc in a dialog opened meanwhile (a file dialog of
    another tab) closes the dialog only, not cancelling the resume nor stopping a stage at
    rest."""
    panel, scan = window.instruments, window.scan
    assert readings(qtbot, panel).get("on_target") is True
    reads: list[object] = []
    monkeypatch.setattr(scan.reader, "submit", lambda *call: reads.append(call))  # not done
    with monkeypatch.context() as patch:
        stops = counting_stops(patch, window.holder.rig.stage)
        assert scan.resume_entry(tmp_path / "session.h5", "scan")
        assert scan.resuming and reads
        _, seen = esc_in_the_modal(qtbot, lambda: MODALS["question"](window))
        assert seen == ["QMessageBox"]
        assert scan.resuming, scan.status.text()
        qtbot.wait(50)
        assert stops == []
    scan.abort()


def test_a_name_held_by_a_product_proposes_another_name_and_no_resume(window, tmp_path):
    """A product (an earlier release's, kept under the name) is no scan to resume."""
    scan = window.scan
    scan._start_failed(EntryTaken(tmp_path / "s.h5", "product", "induced"))
    by_name = scan.form.error_text("name")
    assert "Resume scan" not in by_name and "product_2 is free" in by_name
    assert "'product' is an analysis product (kind 'induced'), not a scan" in by_name
    assert scan.form.name.text() == "product_2" and "Resume scan" not in scan.status.text()


def test_f5_on_the_session_tab_refreshes_its_file_and_starts_no_scan(window, qtbot, tmp_path):
    """F5 on the Session tab presses its Refresh (named in its tooltip): the file's entries
    are read again, a scan written there since listed; nothing starts. With no file open it
    does nothing, and raises nothing (unfixed, the Refresh button itself raised there: it
    passed its click's `checked` as the read's callback)."""
    import dataclasses

    from session_reads import opened
    from test_gui_optical import a_map

    from smm_daq.storage.nexus import write_map_entry

    session, scan = window.session, window.scan
    assert "(F5, on this tab)" in session.refresh_button.toolTip()
    started = []
    scan.start_button.clicked.connect(lambda: started.append(True))
    window.show_view("session")
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=WAIT_MS)
    qtbot.keyClick(window, QtCore.Qt.Key.Key_F5)  # no file open
    assert session.reading is None and not started
    path = tmp_path / "keys.h5"
    write_map_entry(path, a_map(), kind="scan")
    assert opened(session, qtbot, path)
    write_map_entry(path, dataclasses.replace(a_map(), name="later"), kind="scan")
    with qtbot.waitSignal(session.entriesRead, timeout=WAIT_MS):
        qtbot.keyClick(window, QtCore.Qt.Key.Key_F5)
    assert [e.name for e in session.entries] == ["rem", "later"]
    assert not started and scan.live.state == "idle"
