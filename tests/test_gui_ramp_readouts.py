"""The window's readouts stay live during a field's ramp (the Instruments tab's Set field, a
recipe's set_field step): its readings run in the pauses between the ramp's steps, shown while
it is under way; a Stop pressed during it has them skipped, the making safe from where the ramp
got to first."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PyQt6 import QtCore
from recipe_opening import recipe_opened, recipe_ran

from gui import instruments_panel

WAIT_MS = 60_000  # generous: the whole suite shares two cores
POLL_AT, SHOWN_BY = 6, 12  # coil y's setpoints: the window polls at one, is waited for at the other


class _Steps:
    """Coil y's setpoints as the simulated supply takes them (enable's 0 A first), in the
    rig's thread: at `POLL_AT` it holds until `go_on`; at `SHOWN_BY`, until `shown`, noting
    whether that came."""

    def __init__(self, coils) -> None:
        self.sent: list[float] = []
        self.at_poll, self.go_on, self.shown = (threading.Event() for _ in range(3))
        self.held: list[bool] = []
        original = coils.set_current

        def set_current(i: int, amps: float) -> None:
            original(i, amps)
            if i != 1:
                return
            self.sent.append(amps)
            if len(self.sent) == POLL_AT:
                self.at_poll.set()
                self.go_on.wait(WAIT_MS / 1000)
            elif len(self.sent) == SHOWN_BY:
                self.held.append(self.shown.wait(WAIT_MS / 1000))

        coils.set_current = set_current


def _held(window, qtbot, start) -> _Steps:
    """A field of 100 µT on y (2 A on coil y, a 2 s ramp of 20 steps) asked for by `start()`,
    its ramp held at its `POLL_AT`th setpoint (0.5 A, enable's 0 A the first); the panel's own
    poll timer stopped (this test's polls alone)."""
    panel = window.instruments
    panel.timer.stop()
    qtbot.waitUntil(lambda: not panel._polling, timeout=WAIT_MS)
    steps = _Steps(window.holder.rig.world.coils)
    start()
    qtbot.waitUntil(steps.at_poll.is_set, timeout=WAIT_MS)
    return steps


def _set_field_held(window, qtbot) -> _Steps:
    """Set field (the Instruments tab's) to 100 µT on y, held as `_held` holds it."""
    panel = window.instruments

    def start() -> None:
        panel.field_boxes[1].setValue(100.0)
        qtbot.mouseClick(panel.set_field_button, QtCore.Qt.MouseButton.LeftButton)

    return _held(window, qtbot, start)


def _recipe_held(window, qtbot, tmp_path) -> _Steps:
    """A recipe's set_field step to 100 µT on y, held as `_held` holds it."""
    recipe = tmp_path / "field.toml"
    recipe.write_text('[[step]]\nkind = "set_field"\nfield_uT = [0.0, 100.0, 0.0]\n')
    view = window.recipes
    assert recipe_opened(view, qtbot, recipe)
    return _held(window, qtbot, lambda: recipe_ran(view, qtbot))


@pytest.mark.parametrize("ramp", ["Set field", "recipe"])
def test_readouts_stay_live_during_a_fields_ramp(window, qtbot, tmp_path, ramp) -> None:
    """The window polls as the ramp (Set field's, a recipe's set_field step's) is at its
    fifth step: the readings run in the ramp's next pause and are shown while it is under way
    (its thread held at a later step until they are), coil y's current read part way up.
    Unfixed, the poll waited in the rig's thread behind the whole ramp: the readouts froze
    for it. The ramp then ends at the field asked for."""
    panel = window.instruments
    steps = (_set_field_held(window, qtbot) if ramp == "Set field"
             else _recipe_held(window, qtbot, tmp_path))
    try:
        with qtbot.waitSignal(panel.updated, timeout=WAIT_MS):
            panel.poll()
            steps.go_on.set()
        currents = np.asarray(panel.readings["currents"])
        ramping = len(steps.sent) <= SHOWN_BY
    finally:
        steps.go_on.set()
        steps.shown.set()
    qtbot.waitUntil(lambda: not (panel.field_ramping or window.holder.recipe_running),
                    timeout=WAIT_MS)
    assert ramping and steps.held == [True], steps.held
    assert 0.05 < currents[1] < 1.5, currents  # part way to 2 A
    assert max(steps.sent) == pytest.approx(2.0), steps.sent  # (a recipe then makes safe)


def test_stop_during_set_field_skips_a_reading_queued_in_its_ramp(
        window, qtbot, monkeypatch) -> None:
    """A poll queued as Set field's ramp is at its fifth step, then Stop: the reading is not
    run in the ramp's pause, nor before its making safe from where it got to (on a slow bus,
    its ~10 queries would have held the field up for seconds)."""
    panel, rig = window.instruments, window.holder.rig
    calls: list[str] = []  # the rig's thread's readings and making safe, in their order
    read_all, make_safe = instruments_panel.read_all, rig.make_safe

    def read_all_noted(polled_rig: object, **kwargs: object) -> dict[str, object] | None:
        calls.append("read")
        return read_all(polled_rig, **kwargs)

    def make_safe_noted() -> list[str]:
        calls.append("made safe")
        return make_safe()

    monkeypatch.setattr(instruments_panel, "read_all", read_all_noted)
    monkeypatch.setattr(rig, "make_safe", make_safe_noted)
    steps = _set_field_held(window, qtbot)
    try:
        panel.poll()
        qtbot.mouseClick(panel.stop_button, QtCore.Qt.MouseButton.LeftButton)
    finally:
        steps.go_on.set()
        steps.shown.set()
    qtbot.waitUntil(lambda: "ramp was stopped" in panel.message.text(), timeout=WAIT_MS)
    assert calls[:1] == ["made safe"], calls
    assert max(steps.sent) < 0.6, steps.sent


def test_a_reading_in_a_ramps_pause_does_not_end_a_go_to_queued_behind_the_ramp(
        window, qtbot, monkeypatch) -> None:
    """A Go to asked for during Set field's ramp waits behind it in the rig's thread; a
    reading run in the ramp's pause overtakes it and finds the stage at rest. Once the ramp
    has ended and the Go to is sent, the window still takes the stage as possibly moving
    (Esc in a dialog stops it) until a reading asked for after the Go to says otherwise
    (unfixed: that reading's "at rest" was taken for the Go to's end, and Esc in a dialog
    left the stage moving until the next reading)."""
    panel = window.instruments
    stage = window.holder.rig.stage
    sent, go_on = threading.Event(), threading.Event()
    move_to = stage.move_to

    def held_after_sending(*args: object, **kwargs: object) -> None:
        move_to(*args, **kwargs)
        sent.set()
        go_on.wait(WAIT_MS / 1000)  # no reading in its own turn meanwhile

    steps = _set_field_held(window, qtbot)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(stage, "move_to", held_after_sending)
            panel.goto_boxes[0].setValue(panel.goto_boxes[0].value() + 5000.0)
            panel.go_to()  # queued behind the ramp
            with qtbot.waitSignal(panel.updated, timeout=WAIT_MS):
                panel.poll()
                steps.go_on.set()
            assert panel.readings["on_target"] is True  # read in the ramp, before the Go to
            steps.shown.set()
            qtbot.waitUntil(lambda: sent.is_set() and not panel.field_ramping, timeout=WAIT_MS)
            moving = window.stage_may_be_moving()
    finally:
        steps.go_on.set()
        steps.shown.set()
        go_on.set()
    assert moving
