"""Connecting the window's rig: Reconnect whenever nothing else drives the rig, and a window
closed while it connects leaves the rig safe and its lock released."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
from PyQt6 import QtCore, QtWidgets
from recipe_opening import recipe_opened
from scan_gate import Held
from served_rig import UNHURRIED_TIMEOUT_S, ServedRig, served_to_pyvisa_py
from session_reads import opened
from test_gui_recipes import RECIPE

from gui.main_window import MainWindow
from gui.rig_holder import RigHolder
from smm_daq.acquisition import safe_close
from smm_daq.errors import InstrumentLost
from smm_daq.instruments import rig as rig_module
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import rig_addresses
from smm_daq.instruments.rig_lock import holders
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry

WAIT_MS = 60_000
CURRENT_ATOL = 2e-3


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedRig]:
    """The served rig, its links waiting for a reply as long as no loaded machine delays one
    (`UNHURRIED_TIMEOUT_S`): no test here means a reply lost."""
    with served_to_pyvisa_py(tmp_path_factory.mktemp("served"),
                             timeout_s=UNHURRIED_TIMEOUT_S) as rig:
        yield rig


@pytest.fixture
def lab_window(served, qtbot, settings) -> Iterator[MainWindow]:
    """The main window on the served rig as a real one (its instruments locked), shown, not
    yet connected."""
    w = MainWindow(load_profile(served.profile_path), settings, persist=False)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.holder.close()


def test_reconnect_is_usable_whenever_nothing_drives_the_rig(window, qtbot) -> None:
    panel, holder = window.instruments, window.holder
    assert panel.connect_button.text() == "Reconnect"
    assert panel.connect_button.isEnabled()
    holder.set_busy(True)  # a scan owns the rig
    assert not panel.connect_button.isEnabled()
    holder.set_busy(False)
    assert panel.connect_button.isEnabled()
    holder.set_recipe_running(True)
    assert not panel.connect_button.isEnabled()
    holder.set_recipe_running(False)
    first = holder.rig
    with qtbot.waitSignal(holder.opened, timeout=WAIT_MS):
        qtbot.mouseClick(panel.connect_button, QtCore.Qt.MouseButton.LeftButton)
        assert not panel.connect_button.isEnabled()  # while it connects
        assert not panel.goto_button.isEnabled()
    assert holder.rig is not None and holder.rig is not first
    assert panel.connect_button.isEnabled() and panel.goto_button.isEnabled()


def test_a_connect_that_may_reference_the_stage_says_so_before_it_moves(window, qtbot,
                                                                          monkeypatch) -> None:
    """The simulator's C-884 profile references unreferenced axes at connect: the status line
    says so when the connect starts, before the stage can move, and is cleared once it is
    done."""
    panel, holder = window.instruments, window.holder
    assert window.profile.stage.reference_on_connect
    said: list[str] = []
    original = rig_module.open_rig

    def opening(*args, **kwargs):
        said.append(panel.message.text())  # as the connect (and any reference move) begins
        return original(*args, **kwargs)

    monkeypatch.setattr(rig_module, "open_rig", opening)
    with qtbot.waitSignal(holder.opened, timeout=WAIT_MS):
        qtbot.mouseClick(panel.connect_button, QtCore.Qt.MouseButton.LeftButton)
    assert said and "reference switch" in said[0], said
    assert "reference switch" not in panel.message.text()


def _answer(monkeypatch, yes: bool) -> list[str]:
    """The questions the window asks, each answered Yes or No."""
    asked: list[str] = []
    buttons = QtWidgets.QMessageBox.StandardButton

    def question(parent, title, text, *args):
        asked.append(text)
        return buttons.Yes if yes else buttons.No

    monkeypatch.setattr(QtWidgets.QMessageBox, "question", question)
    return asked


def test_reconnect_hands_the_rig_and_its_lock_over_and_leaves_it_safe(lab_window, served,
                                                                      qtbot, monkeypatch) -> None:
    panel, holder = lab_window.instruments, lab_window.holder
    with qtbot.waitSignal(holder.opened, timeout=WAIT_MS):
        panel.connect_rig()
    holder.rig.coils.set_field(np.array([0.0, 10e-6, 0.0]))
    asked = _answer(monkeypatch, yes=True)
    with qtbot.waitSignal(holder.opened, timeout=WAIT_MS):
        qtbot.mouseClick(panel.connect_button, QtCore.Qt.MouseButton.LeftButton)
    assert len(asked) == 1 and "the field now applied is lost" in asked[0]
    assert panel.message.text() == ""
    np.testing.assert_allclose(served.currents(), served.safe_currents(), atol=CURRENT_ATOL)
    qtbot.waitUntil(lambda: "●" in panel.state_labels["coils"].text(), timeout=WAIT_MS)


def test_closing_while_connecting_leaves_the_rig_safe_and_its_lock_free(
        lab_window, served, qtbot, monkeypatch) -> None:
    profile = lab_window.profile
    held = Held(rig_module.open_rig)
    monkeypatch.setattr(rig_module, "open_rig", held)
    lab_window.instruments.connect_rig()
    held.wait_entered()  # the connect is under way
    held.go.set()
    assert lab_window.close()
    assert holders(rig_addresses(profile)) == {}
    np.testing.assert_allclose(served.currents(), served.safe_currents(), atol=CURRENT_ATOL)
    qtbot.waitUntil(lambda: not lab_window.holder.connecting, timeout=WAIT_MS)
    assert lab_window.holder.rig is None  # the late result is not taken up
    assert holders(rig_addresses(profile)) == {}


def test_reconnect_under_a_field_asks_first_and_no_leaves_the_field_on(window, qtbot,
                                                                      monkeypatch) -> None:
    panel, holder = window.instruments, window.holder
    rig = holder.rig
    rig.coils.set_field(np.array([0.0, 10e-6, 0.0]))
    asked = _answer(monkeypatch, yes=False)
    qtbot.mouseClick(panel.connect_button, QtCore.Qt.MouseButton.LeftButton)
    assert len(asked) == 1
    assert holder.rig is rig and not holder.connecting
    np.testing.assert_allclose(rig.coils.field_setpoint(), [0.0, 10e-6, 0.0])
    rig.coils.set_field(np.zeros(3))  # in the safe state: nothing to lose, nothing asked
    with qtbot.waitSignal(holder.opened, timeout=WAIT_MS):
        qtbot.mouseClick(panel.connect_button, QtCore.Qt.MouseButton.LeftButton)
    assert len(asked) == 1


def test_a_failed_reconnect_still_says_the_rig_before_was_not_made_safe(window, qtbot,
                                                                        monkeypatch) -> None:
    """After a power cycle the old rig may not answer its safe-state commands and the new
    one may not open: the operator must learn of both."""
    panel, holder = window.instruments, window.holder
    monkeypatch.setattr(holder.rig, "make_safe", lambda: ["coils: no reply; the field may be ON"])

    def refuse(*args, **kwargs):
        raise InstrumentLost("lockin: no reply")

    monkeypatch.setattr(rig_module, "open_rig", refuse)
    with qtbot.waitSignal(holder.failed, timeout=WAIT_MS) as failed:
        panel.connect_rig()
    assert "lockin: no reply" in failed.args[0]
    assert "making the rig open before safe: coils: no reply; the field may be ON" in \
        failed.args[0]
    assert "the field may be ON" in panel.message.text()


def test_a_close_during_a_reconnect_reports_the_rig_before_once(window, qtbot,
                                                                monkeypatch) -> None:
    holder = window.holder
    monkeypatch.setattr(holder.rig, "make_safe", lambda: ["stage: no reply"])
    held = Held(rig_module.open_rig)
    monkeypatch.setattr(rig_module, "open_rig", held)
    assert holder.open()
    held.wait_entered()
    held.go.set()
    assert holder.close() == ["stage: no reply"]
    assert holder.close() == []  # closed: nothing made safe twice, nothing reported twice


def test_a_close_during_a_failed_reconnect_still_reports_the_rig_before(window, qtbot,
                                                                        monkeypatch) -> None:
    holder = window.holder
    monkeypatch.setattr(holder.rig, "make_safe", lambda: ["coils: no reply; the field may be ON"])
    def refuse(*args, **kwargs):
        raise InstrumentLost("lockin: no reply")

    held = Held(rig_module.open_rig, then=refuse)
    monkeypatch.setattr(rig_module, "open_rig", held)
    assert holder.open()
    held.wait_entered()
    held.go.set()
    assert holder.close() == ["coils: no reply; the field may be ON"]


def test_reconnect_asks_only_when_a_field_beyond_the_resting_states_is_applied() -> None:
    """At rest the coils hold the ambient field nulled (setpoint 0) or their currents off
    (setpoint the ambient field): neither is a field someone would lose."""
    from dataclasses import replace

    from gui.instruments_panel import field_applied

    profile = load_profile()
    ambient = np.array([14.2e-6, 0.8e-6, -48.5e-6])
    profile = replace(profile, coils=replace(profile.coils, ambient_field=ambient))
    tolerance = profile.coils.field_tolerance
    assert not field_applied(np.zeros(3), profile)
    assert not field_applied(ambient, profile)
    assert not field_applied(ambient + tolerance / 2, profile)
    assert field_applied(np.array([0.0, 10e-6, 0.0]), profile)
    assert field_applied(ambient + np.array([0.0, 0.0, 3 * tolerance]), profile)


def test_a_reconnect_that_opens_still_says_the_rig_before_was_not_made_safe(
        window, qtbot, monkeypatch) -> None:
    panel, holder = window.instruments, window.holder
    monkeypatch.setattr(holder.rig, "make_safe", lambda: ["stage: no reply"])
    with qtbot.waitSignal(holder.opened, timeout=WAIT_MS):
        panel.connect_rig()
    assert holder.reconnect_problems == ["stage: no reply"]
    assert "making the rig safe before it reported: stage: no reply" in panel.message.text()


def test_reconnect_asks_while_a_field_set_by_hand_is_still_ramping(window, qtbot,
                                                                   monkeypatch) -> None:
    """Set was clicked, the ramp is in the rig's thread and the coils' setpoint is still the
    old one: the field being set counts as applied."""
    panel, holder = window.instruments, window.holder
    rig = holder.rig
    held = Held(rig.coils.set_field)
    monkeypatch.setattr(rig.coils, "set_field", held)
    panel.field_boxes[1].setValue(10.0)
    try:
        qtbot.mouseClick(panel.set_field_button, QtCore.Qt.MouseButton.LeftButton)
        held.wait_entered()
        assert not np.any(rig.coils.field_setpoint())  # not yet set
        asked = _answer(monkeypatch, yes=False)
        qtbot.mouseClick(panel.connect_button, QtCore.Qt.MouseButton.LeftButton)
        assert len(asked) == 1 and holder.rig is rig and not holder.connecting
    finally:
        held.go.set()
    qtbot.waitUntil(lambda: not panel.field_requests, timeout=WAIT_MS)
    np.testing.assert_allclose(rig.coils.field_setpoint(), [0.0, 10e-6, 0.0])


def test_a_refused_field_is_no_longer_counted_as_applied(window, qtbot, monkeypatch) -> None:
    panel, holder = window.instruments, window.holder
    panel.field_boxes[2].setValue(panel.field_boxes[2].maximum())
    panel.field_boxes[0].setValue(panel.field_boxes[0].maximum())  # beyond the limit together
    qtbot.mouseClick(panel.set_field_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Set field" in panel.message.text(), timeout=WAIT_MS)
    assert not panel.field_requests
    asked = _answer(monkeypatch, yes=False)
    with qtbot.waitSignal(holder.opened, timeout=WAIT_MS):
        qtbot.mouseClick(panel.connect_button, QtCore.Qt.MouseButton.LeftButton)
    assert asked == []


def test_a_failed_reconnect_shows_no_readings_of_the_rig_before(window, qtbot,
                                                                monkeypatch) -> None:
    """The rig before is closed: its last position, field and lock-in readings must not stay
    on show as if live, nor the button offer to reconnect a rig that is not connected."""
    panel, holder = window.instruments, window.holder
    qtbot.waitUntil(lambda: "x = " in panel.position_label.text()
                    and "setpoint (" in panel.field_label.text(), timeout=WAIT_MS)

    def refuse(*args, **kwargs):
        raise InstrumentLost("lockin: no reply")

    monkeypatch.setattr(rig_module, "open_rig", refuse)
    with qtbot.waitSignal(holder.failed, timeout=WAIT_MS):
        panel.connect_rig()
    assert holder.rig is None
    assert panel.position_label.text() == "x, y, z: –"
    assert panel.field_label.text() == "setpoint –\nread-back –\nfluxgate –"
    assert panel.lockin_label.text() == "X, Y: –"
    assert panel.trace_curve.getData()[0] is None or panel.trace_curve.getData()[0].size == 0
    assert panel.connect_button.text() == "Connect" and panel.connect_button.isEnabled()


def test_a_close_that_could_not_make_the_rig_safe_says_so_and_what_to_run(
        window, capsys, monkeypatch) -> None:
    """What the close's making safe could not do is in its warning and on stderr (which stays
    once the window has gone), each with the command that makes the rig safe."""
    warned: list[str] = []
    monkeypatch.setattr(QtWidgets.QMessageBox, "warning", lambda *a, **k: warned.append(a[2]))
    monkeypatch.setattr(window.holder.rig, "make_safe",
                        lambda: ["coils: no reply; the field may be ON"])
    assert window.close()
    hint = f"Make it safe with `smm-daq safe --profile {window.profile.path}`"
    assert len(warned) == 1
    assert warned[0].startswith("The rig may not be safe:\ncoils: no reply; the field may be "
                                f"ON\n{hint}")
    assert (f"smm-daq: the rig may NOT be safe: coils: no reply; the field may be ON. {hint}"
            in capsys.readouterr().err)


def held_connect(monkeypatch) -> tuple[Held, list, list]:
    """Every connect held in `open_rig` until the `Held` returned lets it go; the rigs it
    opens, and those of them closed since, listed in the two lists returned."""
    open_rig, opened, closed = rig_module.open_rig, [], []

    def opening(*args, **kwargs):
        rig = open_rig(*args, **kwargs)
        opened.append(rig)
        monkeypatch.setattr(rig, "close", lambda close=rig.close: (closed.append(rig), close()))
        return rig

    held = Held(opening)
    monkeypatch.setattr(rig_module, "open_rig", held)
    return held, opened, closed


def close_past(holder: RigHolder, held: Held) -> list[str]:
    """`holder.close()` once `held` (a call or connect in the rig's thread) has begun, and
    before it is let go (then it is): what the close said. Fails should the close wait for
    `held` (the test gives up first)."""
    held.wait_entered()
    try:
        problems = holder.close()
        assert not held.go.is_set()  # unfixed: waited for it (until the test gave up)
    finally:
        held.go.set()
    return problems


def test_a_close_waits_for_a_call_in_flight_no_longer_than_making_safe_may_take(
        window, monkeypatch) -> None:
    """An instrument call in the rig's thread that does not return (a link not answering):
    the close waits for it as long as making the rig safe may take (0 s here), no longer,
    then makes the rig safe all the same, closes it and says the call had not ended."""
    holder = window.holder
    rig = holder.rig
    monkeypatch.setattr(RigHolder, "_wait_s", lambda _holder: 0.0)
    rig.coils.set_field(np.array([0.0, 10e-6, 0.0]))
    held = Held(lambda: None)
    assert holder.call(held)
    problems = close_past(holder, held)
    assert problems == ["an instrument call had not ended 0 s after the close (an instrument "
                        "not answering); the rig was made safe and closed under it, which it "
                        "may have changed after"]
    np.testing.assert_allclose(rig.coils.field_setpoint(), 0.0, atol=1e-12)


def test_a_close_waits_for_a_connect_no_longer_than_making_safe_may_take(
        window, qtbot, monkeypatch) -> None:
    """A reconnect whose opening does not return (an instrument not answering): the close
    waits for it as long as making the rig safe may take (0 s here), says it had not ended,
    and the rig it opens later is made safe and closed then."""
    holder = window.holder
    monkeypatch.setattr(RigHolder, "_wait_s", lambda _holder: 0.0)
    held, opened, closed = held_connect(monkeypatch)
    assert holder.open()
    problems = close_past(holder, held)
    assert problems == ["connecting the rig had not ended 0 s after the close (an instrument "
                        "not answering); the rig is made safe and closed once it opens, if "
                        "the program still runs"]
    qtbot.waitUntil(lambda: len(closed) == 1, timeout=WAIT_MS)
    assert closed == opened and holder.rig is None


def test_a_reconnect_waits_for_the_rig_before_to_be_made_safe_for_a_bounded_time(
        window, qtbot, monkeypatch) -> None:
    """The rig open before does not end its making safe (its lock held: another thread's
    making safe, or an instrument not answering): the reconnect waits for it as long as that
    may take (0 s here), then fails, saying so, rather than open the instruments beside it."""
    holder = window.holder
    old = holder.rig
    monkeypatch.setattr(safe_close, "safe_wait_s", lambda _rig: 0.0)
    old._safing.acquire()
    try:
        with qtbot.waitSignal(holder.failed, timeout=WAIT_MS) as failed:
            assert holder.open()
    finally:
        old._safing.release()
    assert failed.args[0] == (
        "not reconnected: the rig open before is still being made safe; connect again once it "
        "is\nmaking the rig open before safe: making it safe before reconnecting did not end "
        "within 0 s (an instrument not answering, or a making safe under way in another "
        "thread that has not ended); the program does not wait for it any longer")
    assert holder.rig is None


def resumable_buttons(w: MainWindow, qtbot,
                      tmp_path: Path) -> tuple[QtWidgets.QPushButton, ...]:
    """Start, Run and Resume scan, each with all it needs but the rig: a session file holding
    an aborted scan (selected), and a checked recipe writing to it."""
    path = tmp_path / "resumable.h5"
    x = np.arange(4) * 20e-6
    write_map_entry(path, MapData(bz=np.zeros((4, 4)), x=x, y=x, name="part"), kind="scan")
    with h5py.File(path, "a") as f:
        f["part/status"][()] = "aborted"
        f["part/data/line_done"] = np.arange(4) < 2
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(RECIPE, encoding="utf-8")
    w.scan.file_edit.setText(str(path))
    assert opened(w.session, qtbot, path)
    w.session.table.selectRow(0)
    assert recipe_opened(w.recipes, qtbot, recipe)
    return w.scan.start_button, w.recipes.run_button, w.session.resume_button


def test_start_run_and_resume_wait_for_the_rig_to_be_connected(qtbot, settings, tmp_path):
    """Start (Scan tab), Run (Recipes tab) and Resume scan (Session tab) cannot work without a
    rig: they are disabled, Start and Run saying why, until Connect has opened one."""
    w = MainWindow(load_profile(), settings, persist=False)
    qtbot.addWidget(w)
    w.show()
    try:
        buttons = resumable_buttons(w, qtbot, tmp_path)
        assert not any(b.isEnabled() for b in buttons)
        assert "Connect the rig" in w.scan.start_button.toolTip()
        assert "Connect the rig" in w.recipes.run_button.toolTip()
        with qtbot.waitSignal(w.holder.opened, timeout=WAIT_MS):
            qtbot.mouseClick(w.instruments.connect_button, QtCore.Qt.MouseButton.LeftButton)
        assert all(b.isEnabled() for b in buttons)
        assert "Connect the rig" not in w.scan.start_button.toolTip()
    finally:
        w.holder.close()
