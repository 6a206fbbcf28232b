"""Stop during a field's ramp-up in the window (Set field, a recipe's set_field step) ends the
ramp at its next step and ramps down from there, never on to the field typed."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
from PyQt6 import QtCore, QtWidgets
from recipe_opening import recipe_opened, recipe_ran

from smm_daq.instruments import loss_budget
from smm_daq.instruments import rig as rig_module
from smm_daq.instruments.safe_bound import supply_loss_budget, switch_off_tail_s

WAIT_MS = 60_000
UT = 1e-6


class _HeldRamp:
    """Coil y's setpoints as the simulated supply takes them; its second one (the ramp's
    first step after enable's 0 A) holds the rig's thread until `release()`, so that Stop is
    pressed while the ramp is under way."""

    def __init__(self, coils) -> None:
        self.sent: list[float] = []
        self.reached, self._go_on = threading.Event(), threading.Event()
        original = coils.set_current

        def set_current(i: int, amps: float) -> None:
            original(i, amps)
            if i == 1:
                self.sent.append(amps)
                if len(self.sent) == 2:
                    self.reached.set()
                    self._go_on.wait(WAIT_MS / 1000)

        coils.set_current = set_current

    def release(self) -> None:
        self._go_on.set()


def _safe_currents(window) -> np.ndarray:
    coils = window.holder.profile.coils
    return np.linalg.solve(coils.calibration, -coils.ambient_field)


def _stop_a_held_set_field(window, qtbot) -> _HeldRamp:
    """Set field to 2 A on coil y, its ramp held at its first step; Stop pressed there, the
    ramp let go, and its end said. The ramp's record, returned."""
    panel = window.instruments
    held = _HeldRamp(window.holder.rig.world.coils)
    panel.field_boxes[1].setValue(100.0)  # 2 A on coil y
    qtbot.mouseClick(panel.set_field_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(held.reached.is_set, timeout=WAIT_MS)
    qtbot.mouseClick(panel.stop_button, QtCore.Qt.MouseButton.LeftButton)
    held.release()
    qtbot.waitUntil(lambda: "ramp was stopped" in panel.message.text(), timeout=WAIT_MS)
    return held


def _slow_link(rig) -> Callable[[], None]:
    """What makes every supply's link answer 2.5 s late."""
    def slow() -> None:
        for supply in rig.coils._supplies:
            supply.link.transport.latency = 2.5
    return slow


def _made_safe_within_half_a_second(closed, rig) -> None:
    """The rig made safe within the 0.5 s deadline of the stop (plus the switch-off tail),
    only switch-offs and their checks sent past it, and no step of 0.2 A or more."""
    end = closed.made_safe[0]
    assert end - closed.stopped_at <= 0.5 + switch_off_tail_s(rig.profile)
    late = [[m for t, m in log if closed.stopped_at + 0.5 <= t < end] for log in closed.sent]
    assert all(set(m) <= {"OUTP OFF", "SYST:ERR?"} for m in late), late
    assert all(len(m) <= loss_budget.TAIL_EXCHANGES for m in late), late
    assert max(abs(a) for a in closed.held.sent) < 0.2


def test_stop_during_set_field_ramps_down_from_where_it_got(window, qtbot) -> None:
    panel = window.instruments
    held = _stop_a_held_set_field(window, qtbot)
    assert max(abs(a) for a in held.sent) < 0.2
    assert "ramped to the safe state" in panel.message.text()
    np.testing.assert_allclose(window.holder.rig.world.coils.currents(),
                               _safe_currents(window), atol=2e-3)


def _recipe_ramping(window, qtbot, tmp_path) -> tuple:
    """A recipe whose one step sets 100 µT, run in the Recipes tab and held on its ramp's
    way up: (the tab, the held ramp)."""
    recipe = tmp_path / "field.toml"
    recipe.write_text('[recipe]\ntitle = "a field, stopped on its way"\n'
                      '[[step]]\nkind = "set_field"\nfield_uT = [0.0, 100.0, 0.0]\n')
    view = window.recipes
    held = _HeldRamp(window.holder.rig.world.coils)
    assert recipe_opened(view, qtbot, recipe)
    assert recipe_ran(view, qtbot)
    qtbot.waitUntil(held.reached.is_set, timeout=WAIT_MS)
    return view, held


def test_stop_during_a_recipes_set_field_ramps_down_from_where_it_got(
        window, qtbot, tmp_path) -> None:
    view, held = _recipe_ramping(window, qtbot, tmp_path)
    qtbot.mouseClick(view.stop_button, QtCore.Qt.MouseButton.LeftButton)
    held.release()
    qtbot.waitUntil(lambda: not view.runner.running, timeout=WAIT_MS)
    assert max(abs(a) for a in held.sent) < 0.2
    assert "ramp was stopped" in view.message.text()
    np.testing.assert_allclose(window.holder.rig.world.coils.currents(), 0.0, atol=2e-3)


def test_stop_after_the_ramps_last_step_still_ramps_down(window, qtbot, monkeypatch) -> None:
    """Stop pressed once the last step was asked about (the supplies settling, Set field not
    yet returned) is not lost: the coils go to their safe state, not left at the field typed."""
    panel = window.instruments
    coils = window.holder.rig.coils
    ramped, go_on = threading.Event(), threading.Event()
    original = coils._ramp

    def ramp_then_hold(*args, **kwargs) -> None:
        original(*args, **kwargs)
        ramped.set()
        go_on.wait(WAIT_MS / 1000)

    monkeypatch.setattr(coils, "_ramp", ramp_then_hold)
    panel.field_boxes[1].setValue(100.0)  # 2 A on coil y
    qtbot.mouseClick(panel.set_field_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(ramped.is_set, timeout=WAIT_MS)
    qtbot.mouseClick(panel.stop_button, QtCore.Qt.MouseButton.LeftButton)
    go_on.set()
    qtbot.waitUntil(lambda: "ramp was stopped" in panel.message.text(), timeout=WAIT_MS)
    assert "ramped to the safe state" in panel.message.text()
    np.testing.assert_allclose(window.holder.rig.world.coils.currents(),
                               _safe_currents(window), atol=2e-3)


def test_the_windows_stop_during_a_recipes_set_field_ramps_down(window, qtbot, tmp_path) -> None:
    """Stop on the Instruments tab (Esc, from any tab) during a recipe's set_field step ends
    its ramp as the Recipes tab's Stop does; it had sent a stage stop only, and the ramp went
    on to the full field."""
    view, held = _recipe_ramping(window, qtbot, tmp_path)
    qtbot.mouseClick(window.instruments.stop_button, QtCore.Qt.MouseButton.LeftButton)
    held.release()
    qtbot.waitUntil(lambda: not view.runner.running, timeout=WAIT_MS)
    assert max(abs(a) for a in held.sent) < 0.2
    assert "ramp was stopped" in view.message.text()
    np.testing.assert_allclose(window.holder.rig.world.coils.currents(), 0.0, atol=2e-3)


def test_esc_in_a_dialog_during_set_field_ramps_down(window, qtbot) -> None:
    """A dialog up over the window takes Esc for itself: during a field's ramp-up Esc there
    presses Stop too, as during a move, and the ramp ends; it had only closed the dialog."""
    from test_gui_operator_keys import MODALS, esc_in_the_modal

    panel = window.instruments
    held = _HeldRamp(window.holder.rig.world.coils)
    panel.field_boxes[1].setValue(100.0)  # 2 A on coil y
    qtbot.mouseClick(panel.set_field_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(held.reached.is_set, timeout=WAIT_MS)
    _, seen = esc_in_the_modal(qtbot, lambda: MODALS["question"](window))
    assert seen == ["QMessageBox"]
    held.release()
    qtbot.waitUntil(lambda: "ramp was stopped" in panel.message.text(), timeout=WAIT_MS)
    assert max(abs(a) for a in held.sent) < 0.2
    np.testing.assert_allclose(window.holder.rig.world.coils.currents(),
                               _safe_currents(window), atol=2e-3)


class _ZeroCalls:
    """Each ramp of the coils to their safe state: whether it ran within the bounded make-safe
    path (its deadline set), and the most that ran at once."""

    def __init__(self, coils) -> None:
        self.bounded: list[bool] = []
        self.most_at_once = 0
        running = [0]
        lock = threading.Lock()
        original = coils.zero

        def zero() -> None:
            budget = loss_budget.current()
            self.bounded.append(budget is not None and budget.deadline is not None)
            with lock:
                running[0] += 1
                self.most_at_once = max(self.most_at_once, running[0])
            try:
                original()
            finally:
                with lock:
                    running[0] -= 1

        coils.zero = zero


def test_stop_during_set_field_makes_the_rig_safe_by_the_bounded_path(window, qtbot) -> None:
    """The ramp-down after Stop has the make-safe path's deadline and loss budget (it had
    ramped the coils outside it, unbounded)."""
    panel = window.instruments
    zeros = _ZeroCalls(window.holder.rig.coils)
    _stop_a_held_set_field(window, qtbot)
    assert zeros.bounded == [True]
    assert "ramped to the safe state from there" in panel.message.text()
    np.testing.assert_allclose(window.holder.rig.world.coils.currents(),
                               _safe_currents(window), atol=2e-3)


def test_a_close_during_set_field_stops_its_ramp_and_ramps_down_once_at_a_time(
        window, qtbot) -> None:
    """The window closed while Set field ramps: the ramp ends at its next step, not on to the
    field typed, and is made safe from there; the close's own making safe waits for that one,
    never ramping the coils beside it."""
    panel = window.instruments
    world, safe = window.holder.rig.world.coils, _safe_currents(window)
    zeros = _ZeroCalls(window.holder.rig.coils)
    held = _HeldRamp(world)
    panel.field_boxes[1].setValue(100.0)  # 2 A on coil y
    qtbot.mouseClick(panel.set_field_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(held.reached.is_set, timeout=WAIT_MS)
    stop = panel._field_stops[0]
    # the ramp's step goes on once the close has stopped the ramp (without that, after 15 s)
    releaser = threading.Thread(target=lambda: (stop.wait(15), held.release()))
    releaser.start()
    assert window.close()
    releaser.join()
    assert max(abs(a) for a in held.sent) < 0.2
    assert zeros.bounded and all(zeros.bounded)
    assert zeros.most_at_once == 1
    assert not window.rig_may_be_unsafe
    np.testing.assert_allclose(world.currents(), safe, atol=2e-3)


def test_zero_field_ramps_down_by_the_bounded_path_and_leaves_the_stage_be(
        window, qtbot, monkeypatch) -> None:
    """Zero field ramps the coils to their safe state with the make-safe path's deadline and
    loss budget (it had ramped them outside it, unbounded), and does not stop the stage."""
    panel, rig = window.instruments, window.holder.rig
    rig.coils.set_field(np.array([0.0, 50.0, 0.0]) * UT)
    zeros = _ZeroCalls(rig.coils)
    stops: list[bool] = []
    monkeypatch.setattr(rig.stage, "stop", lambda: stops.append(True))
    qtbot.mouseClick(panel.zero_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(zeros.bounded) and rig.coils.field_setpoint()[1] == 0.0,
                    timeout=WAIT_MS)
    assert zeros.bounded == [True]
    assert stops == []
    np.testing.assert_allclose(rig.world.coils.currents(), _safe_currents(window), atol=2e-3)


def test_a_recipes_zero_field_step_ramps_down_by_the_bounded_path(
        window, qtbot, tmp_path) -> None:
    """A recipe's zero_field step in the window ramps the coils down with the make-safe
    path's deadline and loss budget, as the Zero button does (it had run unbounded)."""
    recipe = tmp_path / "zero.toml"
    recipe.write_text('[recipe]\ntitle = "zero the field"\n[[step]]\nkind = "zero_field"\n')
    view, rig = window.recipes, window.holder.rig
    rig.coils.set_field(np.array([0.0, 50.0, 0.0]) * UT)
    zeros = _ZeroCalls(rig.coils)
    assert recipe_opened(view, qtbot, recipe)
    assert recipe_ran(view, qtbot)
    qtbot.waitUntil(lambda: not view.runner.running, timeout=WAIT_MS)
    assert zeros.bounded[0] is True
    np.testing.assert_allclose(rig.world.coils.currents(), _safe_currents(window), atol=2e-3)


class _RampClosed:
    """Set field (2 A on coil y) held at its first step, or what `start()` began (set once
    the close has stopped it, returned); then `meanwhile()` (the links made slow or lossy)
    and the window closed, the ramp let go once the close has stopped it.
    `stopped_at`: the rig's clock then (its thread held, the clock stands still); `sent`:
    what each supply was sent, with the time; `made_safe`: when each making safe of the rig
    ended, the stopped ramp's first; `warned`: the close's warnings."""

    def __init__(self, window, qtbot, monkeypatch, meanwhile: Callable[[], None],
                 start: Callable[[], threading.Event] | None = None) -> None:
        panel, rig = window.instruments, window.holder.rig
        self.sent: list[list[tuple[float, str]]] = [[] for _ in rig.coils._supplies]
        for log, supply in zip(self.sent, rig.coils._supplies, strict=True):
            transport = supply.link.transport
            monkeypatch.setattr(transport, "write", _logged(transport.write, log, rig.clock))
        self.made_safe: list[float] = []
        make_safe = rig.make_safe

        def make_safe_noted() -> list[str]:
            try:
                return make_safe()
            finally:
                self.made_safe.append(rig.clock.now())

        monkeypatch.setattr(rig, "make_safe", make_safe_noted)
        self.warned: list[str] = []  # the close's warnings
        monkeypatch.setattr(QtWidgets.QMessageBox, "warning",
                            lambda *a, **k: self.warned.append(a[2]))
        self.held = _HeldRamp(rig.world.coils)
        if start is None:
            panel.field_boxes[1].setValue(100.0)
            qtbot.mouseClick(panel.set_field_button, QtCore.Qt.MouseButton.LeftButton)
        else:
            stopped = start()
        qtbot.waitUntil(self.held.reached.is_set, timeout=WAIT_MS)
        meanwhile()
        stop = panel._field_stops[0] if start is None else stopped
        self.stopped_at = rig.clock.now()
        releaser = threading.Thread(target=lambda: (stop.wait(15), self.held.release()))
        releaser.start()
        assert window.close()
        releaser.join()
        assert self.made_safe, "the stopped ramp did not make the rig safe"


def _logged(write, log: list[tuple[float, str]], clock):
    """`write`, each message noted in `log` with the time on `clock` it was sent at."""
    def logged(message: str) -> None:
        log.append((clock.now(), message.strip()))
        write(message)

    return logged


def test_a_close_during_set_field_on_a_slow_link_bounds_the_ramps_last_step(
        window, qtbot, monkeypatch) -> None:
    """The window closed while Set field ramps, the supplies' links slow (2.5 s a message on
    the rig's clock, within their timeout) and the make-safe path's deadline 0.5 s
    (monkeypatched, so that the step outlasts it): the ramp's step under way as the close
    stopped it is in the path the stop begins, so past the deadline, counted from the stop,
    each supply is only switched off (its switch-off and the check of it), and the stopped
    ramp has made the rig safe within the bound of the stop, what the close waits for a
    call in flight. Unfixed, the step went on setting currents past the deadline, outside
    any bound, and the making safe after it began a deadline of its own."""
    monkeypatch.setattr(rig_module, "safe_deadline", lambda profile: 0.5)
    rig = window.holder.rig

    slow = _slow_link(rig)

    closed = _RampClosed(window, qtbot, monkeypatch, slow)
    _made_safe_within_half_a_second(closed, rig)


def test_a_close_during_set_field_on_a_lossy_link_makes_its_failed_step_safe_in_its_path(
        window, qtbot, monkeypatch) -> None:
    """The window closed while Set field ramps, coil z then losing every reply, so the ramp's
    step under way fails rather than stopping: stopped, the failure is made safe from there
    by the stopped ramp itself, in the make-safe path the stop began (its lost replies
    charged to that path's loss budget: no more than it allows, `supply_loss_budget`, from
    the stop to that making safe's end), and said; the close's making safe follows it, and
    no call is said not to have ended. Unfixed, only a `RampStopped` was made safe: the
    failed step was left to the close's making safe, outside the stopped ramp's path."""
    rig = window.holder.rig
    coil_z = rig.coils._supplies[2]

    def lossy() -> None:
        coil_z.link.transport.faults.timeouts = 10**6

    closed = _RampClosed(window, qtbot, monkeypatch, lossy)
    lost = len([m for t, m in closed.sent[2]
                if closed.stopped_at <= t <= closed.made_safe[0] and m.endswith("?")])
    coil_z.link.transport.faults.timeouts = 0
    assert lost <= supply_loss_budget(rig.profile), closed.sent[2]
    assert len(closed.made_safe) == 2  # the stopped ramp's, then the close's own
    message = window.instruments.message
    qtbot.waitUntil(lambda: "ramp was stopped" in message.text(), timeout=WAIT_MS)
    said = message.text()
    assert said.startswith("Set field: coils: the ramp was stopped during its step, which "
                           "failed: coil z: "), said
    assert "; making the rig safe from there left: " in said, said
    assert not any("had not ended" in w for w in closed.warned), closed.warned


def test_a_close_during_a_recipes_set_field_on_a_slow_link_bounds_the_ramps_last_step(
        window, qtbot, monkeypatch, tmp_path) -> None:
    """As for Set field, a recipe's set_field step that the window's close stops, on slow
    links with a 0.5 s deadline: its step under way and the making safe after it are one
    path from the stop, so past the deadline each supply is only switched off, and the rig is
    made safe within the bound of the stop. Unfixed, the step went on setting currents past
    the deadline, and the close's making safe after it began a deadline of its own."""
    monkeypatch.setattr(rig_module, "safe_deadline", lambda profile: 0.5)
    monkeypatch.setattr(QtWidgets.QMessageBox, "question",
                        lambda *a, **k: QtWidgets.QMessageBox.StandardButton.Yes)
    rig = window.holder.rig
    recipe = tmp_path / "field.toml"
    recipe.write_text('[recipe]\ntitle = "a field, closed on its way"\n'
                      '[[step]]\nkind = "set_field"\nfield_uT = [0.0, 100.0, 0.0]\n')
    view = window.recipes

    def start() -> threading.Event:
        assert recipe_opened(view, qtbot, recipe)
        assert recipe_ran(view, qtbot)
        stopped, stop = threading.Event(), view.runner.stop

        def stop_noted() -> None:
            stop()
            stopped.set()

        monkeypatch.setattr(view.runner, "stop", stop_noted)
        return stopped

    slow = _slow_link(rig)

    closed = _RampClosed(window, qtbot, monkeypatch, slow, start)
    _made_safe_within_half_a_second(closed, rig)


def test_zero_during_set_field_ends_its_ramp_short_of_the_field_typed(window, qtbot) -> None:
    """Zero pressed while Set field ramps up waited for the ramp: the field went on up to the
    100 µT typed before it came down. The ramp now ends at its next step, and down from
    there."""
    panel = window.instruments
    held = _HeldRamp(window.holder.rig.world.coils)
    panel.field_boxes[1].setValue(100.0)  # 2 A on coil y
    qtbot.mouseClick(panel.set_field_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(held.reached.is_set, timeout=WAIT_MS)
    qtbot.mouseClick(panel.zero_button, QtCore.Qt.MouseButton.LeftButton)
    held.release()
    done: list[bool] = []  # the rig's thread has run what was sent before: Set, then Zero
    panel.holder.background.submit(lambda: None, lambda _: done.append(True))
    qtbot.waitUntil(lambda: bool(done), timeout=WAIT_MS)
    assert max(abs(a) for a in held.sent) < 0.2
    assert "ramp was stopped" in panel.message.text()
    np.testing.assert_allclose(window.holder.rig.world.coils.currents(),
                               _safe_currents(window), atol=2e-3)
