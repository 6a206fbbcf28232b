"""What the window offers follows the rig holder during a (re)connect: Start, Run and Resume
scan are disabled from the moment a connect begins until it has opened a rig (and stay so
when it fails), the window says it is reconnecting, and the Instruments tab shows nothing of
the rig before as if live."""

from __future__ import annotations

import pytest
from PyQt6 import QtCore
from scan_gate import Held
from test_gui_connect import held_connect, resumable_buttons

from gui.instruments_panel import NO_LOCKIN, NO_POSITION
from smm_daq.errors import InstrumentLost
from smm_daq.instruments import rig as rig_module

WAIT_MS = 60_000
UT = 1e-6
MARK_V = 0.5  # a lock-in X the simulated sensor never reads: marks the rig before's readings


LEFT = QtCore.Qt.MouseButton.LeftButton


def test_start_run_and_resume_are_disabled_while_the_rig_reconnects(window, qtbot, tmp_path,
                                                                    monkeypatch) -> None:
    buttons = resumable_buttons(window, qtbot, tmp_path)
    assert all(b.isEnabled() for b in buttons)
    held, _opened, _closed = held_connect(monkeypatch)
    try:
        qtbot.mouseClick(window.instruments.connect_button, LEFT)
        # at once, before the connect's thread has even begun
        assert not any(b.isEnabled() for b in buttons)
        assert window.statusBar().currentMessage() == "Reconnecting the rig…"
        assert window.scan.start_button.toolTip().startswith("Reconnecting the rig…")
        assert window.recipes.run_button.toolTip().startswith("Reconnecting the rig…")
        held.wait_entered()  # the rig before closed, the new one opening
        assert not any(b.isEnabled() for b in buttons)
        # asked all the same: each says why, and starts nothing
        assert not window.scan.start()
        assert window.scan.status.text().startswith("Reconnecting the rig…")
        assert not window.scan.resume_entry(window.session.path, "part")
        assert window.scan.status.text().startswith("Reconnecting the rig…")
        assert not window.recipes.run()
        assert window.recipes.message.text().startswith("Reconnecting the rig…")
        assert not window.scan.live.running and not window.holder.recipe_running
    finally:
        held.go.set()
    qtbot.waitSignal(window.holder.opened, timeout=WAIT_MS).wait()
    assert all(b.isEnabled() for b in buttons)
    assert window.scan.start_button.toolTip() == "Start the scan (F5, on this tab)"
    assert window.statusBar().currentMessage() == "Rig connected."


def test_a_failed_reconnect_leaves_start_run_and_resume_disabled(window, qtbot, tmp_path,
                                                                 monkeypatch) -> None:
    buttons = resumable_buttons(window, qtbot, tmp_path)

    def refuse(*args, **kwargs):
        raise InstrumentLost("lockin: no reply")

    monkeypatch.setattr(rig_module, "open_rig", refuse)
    with qtbot.waitSignal(window.holder.failed, timeout=WAIT_MS):
        qtbot.mouseClick(window.instruments.connect_button, LEFT)
    assert not any(b.isEnabled() for b in buttons)
    assert "Connect the rig first" in window.scan.start_button.toolTip()
    assert "Connect the rig first" in window.recipes.run_button.toolTip()


def test_a_connect_begun_by_the_holder_itself_disables_the_instruments_controls(
        window, qtbot, monkeypatch) -> None:
    """The Instruments tab follows the holder, not its own button: a connect begun elsewhere
    (`RigHolder.open`) disables its controls and says so as well."""
    panel = window.instruments
    held, _opened, _closed = held_connect(monkeypatch)
    try:
        assert window.holder.open()
        assert not panel.goto_button.isEnabled() and not panel.set_field_button.isEnabled()
        assert not panel.connect_button.isEnabled()
        assert panel.state_labels["stage"].text() == "reconnecting…"
        assert not panel.timer.isActive()
    finally:
        held.go.set()
    qtbot.waitSignal(window.holder.opened, timeout=WAIT_MS).wait()
    assert panel.goto_button.isEnabled() and panel.connect_button.isEnabled()


@pytest.fixture
def marked(window, qtbot, monkeypatch) -> float:
    """The rig's lock-in reading MARK_V; the Bz the trace shows for it."""
    monkeypatch.setattr(window.holder.rig.lockin, "read_xy", lambda: (MARK_V, 0.0))
    sensor = window.profile.sensor
    return (MARK_V - sensor.offset_V) / sensor.sensitivity_V_per_T / UT


def test_the_trace_starts_afresh_on_a_reconnect(window, qtbot, marked) -> None:
    panel, holder = window.instruments, window.holder
    qtbot.waitUntil(lambda: marked in panel.trace_values, timeout=WAIT_MS)
    shown: list[object] = []  # the holder's rig as each reading was shown
    panel.updated.connect(lambda: shown.append(holder.rig))
    with qtbot.waitSignal(holder.opened, timeout=WAIT_MS):
        qtbot.mouseClick(panel.connect_button, LEFT)
    new = holder.rig
    qtbot.waitUntil(lambda: new in shown, timeout=WAIT_MS)  # the new rig's first reading
    assert panel.trace_values and marked not in panel.trace_values


def test_a_reading_of_the_rig_before_that_returns_mid_connect_is_not_shown(
        window, qtbot, marked, monkeypatch) -> None:
    """A poll of the rig before in flight as the reconnect begins returns while it connects:
    neither its lock-in reading nor its position is shown as if the rig's now."""
    panel, holder = window.instruments, window.holder
    panel.timer.stop()
    qtbot.waitUntil(lambda: holder.background.pending == 0, timeout=WAIT_MS)
    lockin = holder.rig.lockin
    read = Held(lockin.read_xy)
    monkeypatch.setattr(lockin, "read_xy", read)
    connect, _opened, _closed = held_connect(monkeypatch)
    try:
        panel.poll()
        read.wait_entered()  # the poll is in the rig's thread
        qtbot.mouseClick(panel.connect_button, LEFT)  # its connect queued behind the poll
        read.go.set()
        connect.wait_entered()  # the poll has returned
        qtbot.waitUntil(lambda: not panel._polling, timeout=WAIT_MS)  # and been delivered
        assert panel.lockin_label.text() == NO_LOCKIN
        assert panel.position_label.text() == NO_POSITION
        assert not panel.trace_values
    finally:
        read.go.set()
        connect.go.set()
    qtbot.waitSignal(holder.opened, timeout=WAIT_MS).wait()


def test_a_poll_of_the_rig_before_failing_mid_connect_leaves_the_connects_note(
        window, qtbot, monkeypatch) -> None:
    """The connect's note (here: the stage may move to its reference switches) is not
    replaced by the failure of a poll of the rig before that returns while it connects."""
    from gui import instruments_panel

    panel, holder = window.instruments, window.holder
    assert window.profile.stage.reference_on_connect
    panel.timer.stop()
    qtbot.waitUntil(lambda: holder.background.pending == 0, timeout=WAIT_MS)

    def lost(_rig, **_kwargs):
        raise InstrumentLost("lockin: no reply")

    read = Held(instruments_panel.read_all, then=lost)
    monkeypatch.setattr(instruments_panel, "read_all", read)
    connect, _opened, _closed = held_connect(monkeypatch)
    try:
        panel.poll()
        read.wait_entered()
        qtbot.mouseClick(panel.connect_button, LEFT)
        read.go.set()
        connect.wait_entered()
        qtbot.waitUntil(lambda: not panel._polling, timeout=WAIT_MS)
        assert panel.message.text() == instruments_panel.CONNECT_REFERENCES
    finally:
        read.go.set()
        connect.go.set()
    qtbot.waitSignal(holder.opened, timeout=WAIT_MS).wait()
