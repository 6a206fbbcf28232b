"""Instruments tab: connection state, stage go-to and jog, field set and zero, lock-in, banner."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PyQt6 import QtCore, QtWidgets
from recipe_opening import recipe_opened, recipe_ran

from gui.instruments_panel import InstrumentsPanel
from gui.main_window import MainWindow
from gui.rig_holder import RigHolder
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.instruments.profile import load_profile

UM = 1e-6
UT = 1e-6
WAIT_MS = 60_000


def fresh_readings(qtbot, panel):
    panel.readings = {}
    panel.poll()
    qtbot.waitUntil(lambda: bool(panel.readings), timeout=WAIT_MS)
    return panel.readings


def wait_until_at(qtbot, panel, target: np.ndarray) -> None:
    """Waits until the stage reports itself on target within 0.05 µm of `target` (m): the
    move has ended there, not merely passed it."""

    def arrived() -> bool:
        r = fresh_readings(qtbot, panel)
        return r.get("on_target") is True and np.allclose(r["position"], target, atol=0.05 * UM)

    qtbot.waitUntil(arrived, timeout=WAIT_MS)


def type_x_and_go_to(qtbot, panel, x_um: str) -> None:
    """Types `x_um` over the Go-to x box as a user does (focus, select all, type, Tab away)
    and presses Go to: the y and z boxes keep what they show."""
    x_box = panel.goto_boxes[0]
    x_box.setFocus()
    x_box.selectAll()
    qtbot.keyClicks(x_box, x_um)
    qtbot.keyClick(x_box, QtCore.Qt.Key.Key_Tab)
    qtbot.mouseClick(panel.goto_button, QtCore.Qt.MouseButton.LeftButton)


def goto_values(panel) -> list[float]:
    return [box.value() for box in panel.goto_boxes]


def type_into_with_focus(qtbot, window, box, text: str) -> None:
    """Types `text` over `box` as an operator does in the active window: the box takes the
    keyboard focus (waited for), its text selected, then typed over; nothing is entered."""
    window.activateWindow()
    box.setFocus()
    qtbot.waitUntil(box.hasFocus, timeout=WAIT_MS)
    box.selectAll()
    qtbot.keyClicks(box, text)


def at_rest_position_um(qtbot, panel) -> np.ndarray:
    """The stage's position (µm) from a fresh reading that finds it at rest."""
    qtbot.waitUntil(lambda: fresh_readings(qtbot, panel).get("on_target") is True,
                    timeout=WAIT_MS)
    return np.asarray(panel.readings["position"]) / UM


def go_down_then_scan_higher(qtbot, window) -> None:
    """The stage sent down to z = 50 µm by Go to (the boxes follow it there), then a small
    scan at 100 µm, the usual height, somewhere else: the stage ends the scan away from the
    Go-to boxes' x, y and above their z."""
    panel = window.instruments
    start = at_rest_position_um(qtbot, panel)
    z_box = panel.goto_boxes[2]
    z_box.setFocus()
    z_box.selectAll()
    qtbot.keyClicks(z_box, "50")
    qtbot.keyClick(z_box, QtCore.Qt.Key.Key_Return)  # Go to
    wait_until_at(qtbot, panel, np.array([start[0], start[1], 50.0]) * UM)
    qtbot.waitUntil(lambda: goto_values(panel) == pytest.approx([start[0], start[1], 50.0],
                                                                abs=0.01), timeout=WAIT_MS)
    panel.setFocus()  # the operator's attention moves to the Scan tab
    plan = ScanPlan.from_center("higher", (start[0] * UM + 500 * UM, start[1] * UM + 400 * UM),
                                (40 * UM, 40 * UM), 20 * UM, settle_tau=1.0, height=100 * UM)
    with qtbot.waitSignal(window.scan.scanEnded, timeout=WAIT_MS):
        assert window.scan.start(plan)


def test_each_instrument_shows_its_identity(window, qtbot):
    panel = window.instruments
    qtbot.waitUntil(lambda: "●" in panel.state_labels["stage"].text(), timeout=WAIT_MS)
    for name in ("lockin", "stage", "coils", "fluxgate"):
        assert "●" in panel.state_labels[name].text(), name
    assert "SR830" in panel.state_labels["lockin"].text()


def test_an_instrument_that_stops_answering_is_shown_red_and_reconnect_is_said(window, qtbot):
    """The lock-in's line stayed green with its name while every reading of it failed ('X,
    Y: ... connection lost' alone said so) and nothing said what to do; now its line says
    why in red, the message line says to check it and Reconnect, and both go once it
    answers again."""
    panel, rig = window.instruments, window.holder.rig
    fresh_readings(qtbot, panel)
    lockin = panel.state_labels["lockin"]
    assert "●" in lockin.text() and "SR830" in lockin.text()
    rig.backend.faults[rig.profile.lockin.link.address].disconnected = True
    fresh_readings(qtbot, panel)
    assert "✖" in lockin.text() and "connection lost" in lockin.text()
    assert "●" in panel.state_labels["stage"].text()  # the others answer
    assert panel.message.text().startswith("Not answering: Lock-in: ")
    assert "then Reconnect (Ctrl+K)" in panel.message.text()
    plan = ScanPlan.from_center("lost", (12.5e-3, 12.5e-3), (40 * UM, 40 * UM), 20 * UM)
    with qtbot.waitSignal(window.scan.scanEnded, timeout=WAIT_MS) as ended:
        assert window.scan.start(plan)
    assert ended.args[0] == "failed"
    status = window.scan.status.text()  # the scan's tab says the way back too
    assert "connection lost" in status and "then Reconnect (Ctrl+K) on the Instruments tab" \
        in status
    fresh_readings(qtbot, panel)  # said again once the scan has given the rig back
    assert panel.message.text().startswith("Not answering: Lock-in: ")
    rig.backend.faults[rig.profile.lockin.link.address].disconnected = False
    fresh_readings(qtbot, panel)
    assert "●" in lockin.text() and "SR830" in lockin.text()
    assert panel.message.text() == ""


def test_a_scan_that_loses_an_instrument_midway_says_to_reconnect(window, qtbot,
                                                                   monkeypatch):
    """The Scan tab said only 'failed: instrument lost: ... connection lost' and how the
    file was left; it now says the way back as the Instruments tab does."""
    rig = window.holder.rig
    faults = rig.backend.faults[rig.profile.lockin.link.address]
    read_xy, reads = rig.lockin.read_xy, []

    def read_then_unplugged():  # the cable pulled at the fifth reading
        reads.append(1)
        if len(reads) == 5:
            faults.disconnected = True
        return read_xy()

    monkeypatch.setattr(rig.lockin, "read_xy", read_then_unplugged)
    plan = ScanPlan.from_center("midway", (12.5e-3, 12.5e-3), (40 * UM, 40 * UM), 20 * UM)
    with qtbot.waitSignal(window.scan.scanEnded, timeout=WAIT_MS) as ended:
        assert window.scan.start(plan)
    assert ended.args[0] == "failed"
    status = window.scan.status.text()
    assert "instrument lost" in status and "lines are stored" in status
    assert status.endswith("then Reconnect (Ctrl+K) on the Instruments tab before a next scan "
                           "or a resume.")
    faults.disconnected = False


def test_the_trace_counts_readings_without_a_scale_factor(window, qtbot):
    """Its axis read 'reading (x0.001)' over -400 .. 400 at the first reading."""
    panel = window.instruments
    panel.timer.stop()  # the trace holds the one reading put here
    panel.trace_values.clear()
    panel.trace_values.append(0.1)
    panel.trace_curve.setData(np.array(panel.trace_values))
    panel.trace.getViewBox().updateAutoRange()
    label = panel.trace.getAxis("bottom").labelString()
    assert "reading (one each 0.5 s)" in label and "x0.001" not in label


def test_go_to_and_jog_move_the_stage(window, qtbot):
    panel = window.instruments
    for box, value in zip(panel.goto_boxes, (12000.0, 13000.0, 150.0), strict=True):
        box.setValue(value)
    qtbot.mouseClick(panel.goto_button, QtCore.Qt.MouseButton.LeftButton)
    wait_until_at(qtbot, panel, np.array([12000, 13000, 150]) * UM)
    assert "x = 12000.00 µm" in panel.position_label.text()

    panel.jog_step.setValue(25.0)
    y_plus = panel.jog_buttons[3]
    assert y_plus.text() == "y+"
    qtbot.mouseClick(y_plus, QtCore.Qt.MouseButton.LeftButton)
    wait_until_at(qtbot, panel, np.array([12000, 13025, 150]) * UM)


def test_set_and_zero_the_field(window, qtbot):
    panel = window.instruments
    for box, value in zip(panel.field_boxes, (10.0, -20.0, 30.0), strict=True):
        box.setValue(value)
    qtbot.mouseClick(panel.set_field_button, QtCore.Qt.MouseButton.LeftButton)
    target = np.array([10.0, -20.0, 30.0]) * UT
    qtbot.waitUntil(
        lambda: np.allclose(fresh_readings(qtbot, panel)["field_setpoint"], target, atol=1e-12),
        timeout=WAIT_MS,
    )
    assert "(10.000, -20.000, 30.000) µT" in panel.field_label.text()
    qtbot.mouseClick(panel.zero_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: np.allclose(fresh_readings(qtbot, panel)["field_setpoint"], 0.0, atol=1e-12),
        timeout=WAIT_MS,
    )
    assert all(box.value() == 0.0 for box in panel.field_boxes)


def test_a_field_beyond_the_limit_is_refused_with_a_message(window, qtbot):
    panel = window.instruments
    limit = window.profile.coils.max_field / UT
    panel.field_boxes[0].setValue(limit)
    panel.field_boxes[1].setValue(limit)  # each within the box, |B| beyond the limit
    qtbot.mouseClick(panel.set_field_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.message.text().startswith("Set field"), timeout=WAIT_MS)
    assert np.allclose(fresh_readings(qtbot, panel)["field_setpoint"], 0.0, atol=1e-12)


def test_lockin_time_constant_and_readings(window, qtbot):
    panel = window.instruments
    panel.tau_box.setValue(0.1)
    panel.tau_box.editingFinished.emit()
    qtbot.waitUntil(
        lambda: fresh_readings(qtbot, panel).get("time_constant") == pytest.approx(0.1),
        timeout=WAIT_MS,
    )
    assert "X = " in panel.lockin_label.text() and "µT" in panel.lockin_label.text()


def test_simulated_banner_only_for_a_simulated_rig(window, qtbot, settings, repo):
    banner = window.findChild(QtWidgets.QLabel, "simulatedBanner")
    assert banner is not None and banner.isVisible() and "SIMULATED" in banner.text()
    real = MainWindow(load_profile(repo / "configs" / "example-lab.toml"), settings)
    qtbot.addWidget(real)
    assert real.findChild(QtWidgets.QLabel, "simulatedBanner") is None


def test_a_stop_the_stage_refuses_is_said(window, qtbot, monkeypatch):
    """Stop is the operator's brake: when the controller does not take it, the window says
    so (it said nothing)."""
    from smm_daq.errors import InstrumentError

    panel = window.instruments

    def refuse():
        raise InstrumentError("no reply to STP", instrument="stage")

    with monkeypatch.context() as patch:  # undone before the window closes (and stops)
        patch.setattr(window.holder.rig.stage, "stop", refuse)
        qtbot.mouseClick(panel.stop_button, QtCore.Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: panel.message.text().startswith("Stop: "), timeout=WAIT_MS)
    assert "no reply to STP" in panel.message.text()


@pytest.mark.parametrize("tau", [1e-6, 3e-6, 3e4])
def test_every_lockin_time_constant_is_shown_as_it_is(qtbot, tau):
    """An SR860 goes down to 1 µs (fly scans use such): the box showed 10 µs instead, and an
    edit of it would have set that. (The Instruments tab alone: a whole window costs seconds.)"""
    panel = InstrumentsPanel(RigHolder(load_profile()))
    qtbot.addWidget(panel)
    panel._show_readings({"time_constant": tau})
    assert panel.tau_box.value() == pytest.approx(tau, rel=1e-9)


def test_go_to_starts_from_the_stage_position_so_z_stays_where_it_is(window, qtbot):
    """The Go-to boxes show the stage's position once connected: typing a new x and pressing
    Go to moves x alone (the boxes sat at the travel's lower limits, so z went to 0 µm: the
    sensor into the sample)."""
    panel = window.instruments
    start = fresh_readings(qtbot, panel)["position"] / UM
    assert start[2] > 1000.0  # the simulated stage starts well clear of the sample
    assert [box.value() for box in panel.goto_boxes] == pytest.approx(start, abs=0.01)
    type_x_and_go_to(qtbot, panel, "12100")
    target = np.array([12100.0, start[1], start[2]]) * UM
    wait_until_at(qtbot, panel, target)


def test_arrow_keys_step_the_lockin_settings_through_their_series(window, qtbot):
    """Up from 30 ms is 100 ms (it was 1.03 s, which the lock-in took as 3 s) and Down from
    0.5 V is 0.2 V (it was the box's floor, 1 nV): each step is the lock-in's next value."""
    panel = window.instruments
    fresh_readings(qtbot, panel)
    tau, sensitivity = panel.tau_box, panel.sensitivity_box
    assert (tau.value(), sensitivity.value()) == pytest.approx((0.03, 0.5))
    tau.setFocus()
    qtbot.keyClick(tau, QtCore.Qt.Key.Key_Up)
    assert tau.value() == pytest.approx(0.1)
    qtbot.keyClick(tau, QtCore.Qt.Key.Key_Return)
    sensitivity.setFocus()
    for _ in range(3):
        qtbot.keyClick(sensitivity, QtCore.Qt.Key.Key_Down)
    assert sensitivity.value() == pytest.approx(0.05)
    qtbot.keyClick(sensitivity, QtCore.Qt.Key.Key_Up)
    assert sensitivity.value() == pytest.approx(0.1)
    qtbot.keyClick(sensitivity, QtCore.Qt.Key.Key_Return)

    def set_on_the_lockin() -> bool:
        r = fresh_readings(qtbot, panel)
        return (r.get("time_constant"), r.get("sensitivity")) == pytest.approx((0.1, 0.1))

    qtbot.waitUntil(set_on_the_lockin, timeout=WAIT_MS)
    assert "Time constant" not in panel.message.text()


def test_jogs_clicked_while_the_stage_moves_add_up(window, qtbot):
    """Three clicks on x+ with a 100 µm step take the stage 300 µm along x, whether or not it
    had settled between them: each jog starts from where the stage was sent, not from where
    it happened to be (the clicks made mid-move were lost)."""
    panel = window.instruments
    start = fresh_readings(qtbot, panel)["position"]
    panel.jog_step.setValue(100.0)
    x_plus = panel.jog_buttons[1]
    assert x_plus.text() == "x+"
    for _ in range(3):
        qtbot.mouseClick(x_plus, QtCore.Qt.MouseButton.LeftButton)
    target = start + np.array([300.0, 0.0, 0.0]) * UM
    wait_until_at(qtbot, panel, target)


def test_a_jog_after_stop_starts_where_the_stage_stopped(window, qtbot):
    """Stop forgets where the stage was sent: the next jog goes one step from where it
    stopped, not from the target it never reached."""
    panel = window.instruments
    start = fresh_readings(qtbot, panel)["position"]
    panel.jog_step.setValue(5000.0)
    qtbot.mouseClick(panel.jog_buttons[1], QtCore.Qt.MouseButton.LeftButton)  # x+
    qtbot.mouseClick(panel.stop_button, QtCore.Qt.MouseButton.LeftButton)
    stopped = fresh_readings(qtbot, panel)["position"]
    assert stopped[0] < start[0] + 5000 * UM
    panel.jog_step.setValue(100.0)
    qtbot.mouseClick(panel.jog_buttons[1], QtCore.Qt.MouseButton.LeftButton)
    target = stopped + np.array([100.0, 0.0, 0.0]) * UM
    wait_until_at(qtbot, panel, target)


def test_the_go_to_boxes_follow_a_jog_so_a_go_to_keeps_the_height_jogged_to(window, qtbot):
    """After a jog the Go-to boxes show where the stage came to rest: a Go to that changes x
    keeps the z jogged to (the boxes kept the position at connect, so z went back)."""
    panel = window.instruments
    start = fresh_readings(qtbot, panel)["position"] / UM
    panel.z_jog_step.setValue(1000.0)  # z jogs have a step of their own
    z_minus = panel.jog_buttons[4]
    assert z_minus.text() == "z−"
    qtbot.mouseClick(z_minus, QtCore.Qt.MouseButton.LeftButton)
    jogged = start - np.array([0.0, 0.0, 1000.0])
    qtbot.waitUntil(lambda: [b.value() for b in panel.goto_boxes]
                    == pytest.approx(jogged, abs=0.01), timeout=WAIT_MS)
    type_x_and_go_to(qtbot, panel, "12100")
    target = np.array([12100.0, jogged[1], jogged[2]]) * UM
    wait_until_at(qtbot, panel, target)


def test_a_refused_go_to_keeps_what_was_typed(window, qtbot):
    """A Go to beyond the travel is refused with a message; the boxes keep the values typed,
    to be corrected, rather than the position."""
    panel = window.instruments
    fresh_readings(qtbot, panel)
    panel.goto_boxes[2].setMaximum(1e6)  # past the profile's travel, as a driver may refuse
    panel.goto_boxes[2].setValue(20000.0)
    qtbot.mouseClick(panel.goto_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.message.text().startswith("Go to: "), timeout=WAIT_MS)
    fresh_readings(qtbot, panel)
    assert panel.goto_boxes[2].value() == 20000.0


def test_a_jog_after_a_scan_starts_where_the_stage_is(window, qtbot):
    """A scan (or recipe) that owned the rig between two jogs moved the stage itself: the
    next jog goes one step from where the stage is, not from where the jog before sent it,
    also when the stage has not settled (a scan aborted mid-move) and that jog ran only once
    the scan had taken the rig."""
    panel = window.instruments
    panel.timer.stop()  # the simulated stage moves only as the test polls
    start = fresh_readings(qtbot, panel)["position"]
    panel.jog_step.setValue(10000.0)
    held = threading.Event()
    window.holder.background.submit(lambda: held.wait(WAIT_MS / 1000))  # the rig's thread busy
    qtbot.mouseClick(panel.jog_buttons[1], QtCore.Qt.MouseButton.LeftButton)  # x+, queued
    window.holder.set_busy(True)  # a scan takes the rig as the jog is still queued
    held.set()
    qtbot.waitUntil(lambda: panel.holder.background.pending == 0, timeout=WAIT_MS)
    window.holder.set_busy(False)  # the scan ends, the stage not settled
    r = fresh_readings(qtbot, panel)
    assert r["on_target"] is False and r["position"][0] < start[0] + 10000 * UM
    panel.jog_step.setValue(100.0)
    qtbot.mouseClick(panel.jog_buttons[1], QtCore.Qt.MouseButton.LeftButton)
    target = r["position"] + np.array([100.0, 0.0, 0.0]) * UM
    wait_until_at(qtbot, panel, target)


def test_after_a_scan_the_goto_boxes_show_where_the_stage_is(window, qtbot):
    """A scan moves the stage itself: once it ends, the Go-to boxes show where the stage
    came to rest (they kept the position before the scan: 12500, 12500, 5000 µm with the
    stage at 13000, 12930, 100 µm)."""
    panel = window.instruments
    go_down_then_scan_higher(qtbot, window)
    here = at_rest_position_um(qtbot, panel)
    assert here[2] == pytest.approx(100.0, abs=0.01)
    qtbot.waitUntil(lambda: goto_values(panel) == pytest.approx(here, abs=0.01),
                    timeout=WAIT_MS)


def test_a_go_to_of_x_alone_after_a_scan_keeps_y_and_z_where_the_stage_was(window, qtbot):
    """Right after a scan, before or after the boxes have caught up with the stage, a new x
    typed and Go to moves x alone: y and z stay where the scan left the stage (z went back
    to the 50 µm typed before the scan: the sensor driven down toward the sample)."""
    panel = window.instruments
    go_down_then_scan_higher(qtbot, window)
    here = np.asarray(window.holder.rig.stage.position()) / UM  # the scan has ended: at rest
    type_x_and_go_to(qtbot, panel, "12100")
    wait_until_at(qtbot, panel, np.array([12100.0, here[1], here[2]]) * UM)
    assert goto_values(panel) == pytest.approx([12100.0, here[1], here[2]], abs=0.01)


def test_the_goto_boxes_follow_a_stage_moved_by_something_else(window, qtbot):
    """A reading that finds the stage at rest somewhere new (moved by a recipe, another
    program, a controller's own move) refills the boxes."""
    panel = window.instruments
    start = at_rest_position_um(qtbot, panel)
    elsewhere = start + np.array([300.0, -200.0, 150.0])
    window.holder.background.submit(
        lambda: window.holder.rig.stage.move_to(*(elsewhere * UM), wait=False))
    qtbot.waitUntil(lambda: goto_values(panel) == pytest.approx(elsewhere, abs=0.01),
                    timeout=WAIT_MS)


def test_a_goto_box_typed_in_keeps_its_number_and_alone_is_moved(window, qtbot):
    """A box typed in is not overwritten by the stage's position (the others follow it) and
    is shown bold; Go to then moves that axis alone, and the box follows the stage again."""
    panel = window.instruments
    start = at_rest_position_um(qtbot, panel)
    y_box = panel.goto_boxes[1]
    y_box.setValue(start[1] + 250.0)  # typed, not yet sent
    elsewhere = start + np.array([300.0, 0.0, 150.0])
    window.holder.background.submit(
        lambda: window.holder.rig.stage.move_to(*(elsewhere * UM), wait=False))
    qtbot.waitUntil(lambda: goto_values(panel) == pytest.approx(
        [elsewhere[0], start[1] + 250.0, elsewhere[2]], abs=0.01), timeout=WAIT_MS)
    assert y_box.font().bold() and not panel.goto_boxes[0].font().bold()
    qtbot.mouseClick(panel.goto_button, QtCore.Qt.MouseButton.LeftButton)
    target = elsewhere + np.array([0.0, 250.0, 0.0])
    wait_until_at(qtbot, panel, target * UM)
    assert not y_box.font().bold()
    panel.jog_step.setValue(100.0)
    qtbot.mouseClick(panel.jog_buttons[3], QtCore.Qt.MouseButton.LeftButton)  # y+
    qtbot.waitUntil(lambda: goto_values(panel) == pytest.approx(
        target + np.array([0.0, 100.0, 0.0]), abs=0.01), timeout=WAIT_MS)


def test_a_go_to_before_the_boxes_catch_up_keeps_the_other_axes_where_the_stage_is(window,
                                                                                     qtbot):
    """The stage has moved and no reading has refilled the boxes yet: a Go to of a new x
    alone takes y and z from the stage, not from the boxes' stale numbers (z went back up,
    or down toward the sample)."""
    panel = window.instruments
    panel.timer.stop()  # no reading refills the boxes unasked
    start = at_rest_position_um(qtbot, panel)
    elsewhere = start + np.array([300.0, -200.0, -400.0])
    window.holder.background.submit(
        lambda: window.holder.rig.stage.move_to(*(elsewhere * UM), wait=True))
    qtbot.waitUntil(lambda: panel.holder.background.pending == 0, timeout=WAIT_MS)
    assert goto_values(panel) == pytest.approx(start, abs=0.01)  # stale
    type_x_and_go_to(qtbot, panel, "12100")
    wait_until_at(qtbot, panel, np.array([12100.0, elsewhere[1], elsewhere[2]]) * UM)


def test_a_goto_box_being_typed_in_is_not_overwritten(window, qtbot):
    """A reading that finds the stage somewhere new while the operator types into the z box
    leaves what is typed there (the others follow): Return then goes to it."""
    panel = window.instruments
    start = at_rest_position_um(qtbot, panel)
    z_box = panel.goto_boxes[2]
    type_into_with_focus(qtbot, window, z_box, "750")  # not yet entered
    elsewhere = start + np.array([300.0, -200.0, 150.0])
    window.holder.background.submit(
        lambda: window.holder.rig.stage.move_to(*(elsewhere * UM), wait=False))
    qtbot.waitUntil(lambda: goto_values(panel)[:2] == pytest.approx(elsewhere[:2], abs=0.01),
                    timeout=WAIT_MS)
    assert z_box.text().startswith("750")
    qtbot.keyClick(z_box, QtCore.Qt.Key.Key_Return)  # Go to
    wait_until_at(qtbot, panel, np.array([elsewhere[0], elsewhere[1], 750.0]) * UM)


def settled_position_um(qtbot, panel) -> np.ndarray:
    """The stage's position (µm) from a reading asked for after every move asked for has
    been sent, and that found it at rest."""
    qtbot.waitUntil(lambda: (panel.poll(), not panel.stage_may_be_moving)[1], timeout=WAIT_MS)
    return np.asarray(panel.readings["position"]) / UM


def test_a_goto_box_left_with_the_focus_follows_a_stop(window, qtbot):
    """Return in the x box sends x far, and the focus stays there; Esc stops the stage on
    its way: the box shows where x stopped (it kept the target never reached, not bold, and
    Return there again moved nothing)."""
    panel = window.instruments
    start = at_rest_position_um(qtbot, panel)
    x_box = panel.goto_boxes[0]
    type_into_with_focus(qtbot, window, x_box, f"{start[0] + 5000.0:.2f}")
    qtbot.keyClick(x_box, QtCore.Qt.Key.Key_Return)  # Go to
    panel.stop_stage()  # Esc, window-wide: the focus stays in the box
    stopped = settled_position_um(qtbot, panel)
    assert x_box.hasFocus()
    assert stopped[0] < start[0] + 5000.0 - 1.0
    qtbot.waitUntil(lambda: goto_values(panel) == pytest.approx(stopped, abs=0.01),
                    timeout=WAIT_MS)


def test_the_number_a_stale_box_shows_typed_into_it_is_gone_to(window, qtbot):
    """The stage has moved and no reading has refilled the boxes: the number the x box
    still shows, typed into it again, and Return go there (the box's value had not changed,
    so x was taken as not typed in and stayed where the stage was)."""
    panel = window.instruments
    panel.timer.stop()  # no reading refills the boxes unasked
    start = at_rest_position_um(qtbot, panel)
    elsewhere = start + np.array([300.0, -200.0, 150.0])
    window.holder.background.submit(
        lambda: window.holder.rig.stage.move_to(*(elsewhere * UM), wait=True))
    qtbot.waitUntil(lambda: panel.holder.background.pending == 0, timeout=WAIT_MS)
    x_box = panel.goto_boxes[0]
    type_into_with_focus(qtbot, window, x_box, f"{start[0]:.2f}")
    qtbot.keyClick(x_box, QtCore.Qt.Key.Key_Return)  # Go to
    assert settled_position_um(qtbot, panel) == pytest.approx(
        [start[0], elsewhere[1], elsewhere[2]], abs=0.01)


RECIPE = """
[recipe]
title = "one scan"
[scan_defaults]
center_um = [13000.0, 12900.0]
size_um = [40.0, 40.0]
step_um = 20.0
settle_tau = 1.0
height_um = 150.0
[[step]]
kind = "scan"
name = "by_recipe"
"""


def test_after_a_recipe_the_goto_boxes_show_where_the_stage_is(window, qtbot, tmp_path):
    """A recipe moves the stage itself: once it ends the boxes show where it is, a number
    typed (not sent) before it included, and a Go to of x alone keeps y and z there."""
    panel = window.instruments
    at_rest_position_um(qtbot, panel)
    panel.goto_boxes[2].setValue(60.0)  # typed before the recipe, never sent
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(RECIPE, encoding="utf-8")
    assert recipe_opened(window.recipes, qtbot, recipe)
    assert recipe_ran(window.recipes, qtbot)
    qtbot.waitUntil(lambda: not window.recipes.runner.running, timeout=WAIT_MS)
    here = at_rest_position_um(qtbot, panel)
    assert here[2] == pytest.approx(150.0, abs=0.01)
    qtbot.waitUntil(lambda: goto_values(panel) == pytest.approx(here, abs=0.01),
                    timeout=WAIT_MS)
    assert not panel.goto_boxes[2].font().bold()
    type_x_and_go_to(qtbot, panel, "12100")
    wait_until_at(qtbot, panel, np.array([12100.0, here[1], here[2]]) * UM)


def test_readings_are_greyed_and_said_to_be_old_while_a_scan_owns_the_rig(window, qtbot):
    """Nothing is read on the Instruments tab during a scan: its readings (field, position,
    lock-in, trace) are greyed and said to be from before the scan, not passed off as the
    rig's now for hours; fresh once it ends (unfixed: shown as ever)."""
    from smm_daq.acquisition.plan import ScanPlan

    wait_ms = 60_000
    panel, scan = window.instruments, window.scan
    qtbot.waitUntil(lambda: bool(panel.readings), timeout=wait_ms)
    readings = (panel.position_label, panel.field_label, panel.lockin_label, panel.trace)
    assert all(w.isEnabled() for w in readings)
    plan = ScanPlan.from_center("old", (12.5e-3, 12.5e-3), (9 * 20e-6, 9 * 20e-6), 20e-6,
                                settle_tau=1.0)
    assert scan.start(plan)
    during = [w.isEnabled() for w in readings], panel.message.text()
    with qtbot.waitSignal(scan.scanEnded, timeout=wait_ms):  # ended before any assertion
        scan.abort()
    assert during[0] == [False] * 4
    assert "from before it began" in during[1]
    qtbot.waitUntil(lambda: all(w.isEnabled() for w in readings), timeout=wait_ms)  # read again


def test_readings_stay_greyed_after_a_scan_until_read_again(window, qtbot, monkeypatch):
    """The first reading after a scan may take long (an instrument lost, each call timing
    out): until it comes the readings shown are still those from before the scan, greyed
    (unfixed: shown as the rig's now as soon as the scan ended)."""
    import threading

    from gui import instruments_panel
    from smm_daq.acquisition.plan import ScanPlan

    wait_ms = 60_000
    panel, scan = window.instruments, window.scan
    qtbot.waitUntil(lambda: bool(panel.readings), timeout=wait_ms)
    readings = (panel.position_label, panel.field_label, panel.lockin_label, panel.trace)
    asked, answer = threading.Event(), threading.Event()
    read_all = instruments_panel.read_all

    def slow(rig, **kwargs):
        asked.set()
        assert answer.wait(wait_ms / 1000)
        return read_all(rig, **kwargs)

    plan = ScanPlan.from_center("old", (12.5e-3, 12.5e-3), (9 * 20e-6, 9 * 20e-6), 20e-6,
                                settle_tau=1.0)
    assert scan.start(plan)
    monkeypatch.setattr(instruments_panel, "read_all", slow)
    try:
        with qtbot.waitSignal(scan.scanEnded, timeout=wait_ms):
            scan.abort()
        qtbot.waitUntil(asked.is_set, timeout=wait_ms)  # the reading after the scan is asked
        assert not any(w.isEnabled() for w in readings)
    finally:
        answer.set()
    qtbot.waitUntil(lambda: all(w.isEnabled() for w in readings), timeout=wait_ms)


def test_the_connection_lines_leave_connecting_as_the_status_line_says_connected(
        qtbot, settings):
    """Over TCP the identities come back 0.7 s after the rig opened: the status line said
    "Rig connected." that long before the Connections box left "connecting…". Both change on
    the rig's opening now; the identities fill the lines in as they come."""
    window = MainWindow(load_profile(), settings)
    qtbot.addWidget(window)
    window.show()
    panel = window.instruments
    seen: list[tuple[str, dict[str, str]]] = []
    window.holder.opened.connect(lambda _rig: seen.append((
        window.statusBar().currentMessage(),
        {name: label.text() for name, label in panel.state_labels.items()})))
    window.instruments.connect_rig()
    try:
        qtbot.waitUntil(lambda: bool(seen), timeout=WAIT_MS)
        status, lines = seen[0]
        assert status == "Rig connected."
        assert all("connecting" not in text for text in lines.values()), lines
        qtbot.waitUntil(lambda: "SR830" in panel.state_labels["lockin"].text(), timeout=WAIT_MS)
    finally:
        window.holder.close()


def test_a_lone_reading_on_the_trace_is_drawn_as_a_dot(window, qtbot):
    """The first reading after a connect is one point, which a line alone does not draw."""
    panel = window.instruments
    panel.timer.stop()
    panel._clear_readings()
    panel._show_readings({"xy": (0.0, 0.0)})
    assert len(panel.trace_values) == 1
    assert panel.trace_curve.opts["symbol"] is not None
    assert panel.trace_curve.scatter.isVisible()
    panel._show_readings({"xy": (0.0, 0.0)})
    assert panel.trace_curve.opts["symbol"] is None  # a line from the second on
