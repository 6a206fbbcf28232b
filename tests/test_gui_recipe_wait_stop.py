"""The Recipes tab's Stop during a recipe's `wait` step is acted on within `STOP_SLICE_S` of the
rig's clock: the wait ends at its slice under way and the rig is made safe then, the field
ramped down, before any reading the window had queued. The window's readouts stay live during
the wait (its readings run between the wait's slices), the wait's length on the rig's clock
unchanged."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from recipe_opening import WAIT_MS, recipe_opened, recipe_ran

from gui import instruments_panel
from gui.recipe_runner import RecipeRunner
from gui.recipes_view import MARKS
from smm_daq.acquisition.recipe import WaitStep
from smm_daq.instruments import interfaces

INTO_WAIT_S = 100.05  # when Stop comes, counted from the wait's start: within a slice
RECIPE = (
    '[[step]]\nkind = "set_field"\nfield_uT = [0.0, 40.0, 0.0]\n'
    '[[step]]\nkind = "wait"\nseconds = 600\n'
)


def test_stop_during_a_recipes_wait_makes_the_rig_safe_within_a_slice(
    window, qtbot, tmp_path, monkeypatch
):
    """Stop 100 s into the 600 s wait at 40 µT: the rig's thread, asleep in the wait's slice
    under way as Stop is pressed, ends the wait at that slice's end, and the recipe ends with
    the rig made safe within `STOP_SLICE_S` of the Stop. Unfixed, the wait asked for Stop
    every 1 s of the rig's clock: the rig was made safe up to 1 s after it. The wait cut
    short is marked failed, saying how long it waited, not done (it was ticked done).

    The window's readings are polled as Stop is pressed (its poll timer fires then on a
    loaded machine): that poll, queued in the rig's thread, is skipped, and the making safe
    is the rig's next instrument I/O. Unfixed, it ran first (on a slow GPIB bus, seconds of
    instrument queries before the field came down)."""
    path = tmp_path / "wait.toml"
    path.write_text(RECIPE, encoding="utf-8")
    view, rig = window.recipes, window.holder.rig
    clock = rig.clock
    sleep, make_safe, start = clock.sleep, rig.make_safe, RecipeRunner._start
    waiting = threading.Event()  # the wait step was started (the window's thread)
    at_stop, stopped = threading.Event(), threading.Event()
    began: list[float] = []  # the wait's start, on the rig's clock
    stop_at: list[float] = []
    made_safe: list[float] = []
    calls: list[str] = []  # the rig's thread's readings and making safe, in their order
    read_all = instruments_panel.read_all

    def starting(runner, step) -> None:
        if isinstance(step, WaitStep):
            waiting.set()
        start(runner, step)

    def sleeping(seconds: float) -> None:
        now = clock.now()
        if waiting.is_set() and not began:
            began.append(now)  # the wait's first slice
        at = began[0] + INTO_WAIT_S if began else None
        if at is None or stop_at or not now < at <= now + seconds:
            sleep(seconds)
            return
        sleep(at - now)  # Stop is pressed while this sleep is under way
        stop_at.append(clock.now())
        at_stop.set()
        assert stopped.wait(WAIT_MS / 1000)
        sleep(now + seconds - clock.now())

    def read_all_noted(polled_rig: object, **kwargs: object) -> dict[str, object] | None:
        calls.append("read")  # in the rig's thread
        return read_all(polled_rig, **kwargs)

    def make_safe_noted() -> list[str]:
        calls.append("made safe")
        made_safe.append(clock.now())
        return make_safe()

    monkeypatch.setattr(RecipeRunner, "_start", starting)
    monkeypatch.setattr(clock, "sleep", sleeping)
    monkeypatch.setattr(rig, "make_safe", make_safe_noted)
    monkeypatch.setattr(instruments_panel, "read_all", read_all_noted)
    assert recipe_opened(view, qtbot, path) and recipe_ran(view, qtbot)
    try:
        qtbot.waitUntil(at_stop.is_set, timeout=WAIT_MS)
        read_before = len(calls)
        window.instruments.poll()  # the poll timer's timeout, as load lets it come now
        view.stop()
    finally:
        stopped.set()
    qtbot.waitUntil(lambda: not view.runner.running, timeout=WAIT_MS)
    said = view.message.text()
    assert "step 2: the wait was stopped by the operator after 100.1 s of its 600 s" in said, said
    assert view.steps.item(1).text().startswith(MARKS["failed"]), view.steps.item(1).text()
    assert view.steps.item(0).text().startswith(MARKS["done"]), view.steps.item(0).text()
    assert len(made_safe) == 1, made_safe
    assert calls[read_before:read_before + 1] == ["made safe"], calls[read_before:]
    late = made_safe[0] - stop_at[0]
    assert 0 <= late <= interfaces.STOP_SLICE_S + 1e-9, late
    assert np.abs(rig.world.coils.currents()).max() < 1e-6  # 40 µT: 0.8 A on coil y


LIVE_WAIT_S = 60.0
POLL_AT_S = 10.0  # into the wait, the window polls
SHOWN_BY_S = 20.0  # into the wait, the rig's thread holds on until the readings are shown
LIVE_RECIPE = (
    '[[step]]\nkind = "set_field"\nfield_uT = [0.0, 40.0, 0.0]\n'
    f'[[step]]\nkind = "wait"\nseconds = {LIVE_WAIT_S:g}\n'
)


def test_readouts_stay_live_during_a_recipes_wait_which_keeps_its_length(
    window, qtbot, tmp_path, monkeypatch
):
    """The window polls 10 s into a 60 s wait at 40 µT: its readings are taken between the
    wait's slices and shown while the wait is under way (the rig's thread held 20 s into the
    wait until they are). Unfixed, the poll waited in the rig's thread behind the whole wait:
    the readouts froze for it. The wait still lasts its 60 s on the rig's clock, the clock
    moved in it only by the wait's own sleeping and the readings' instrument I/O, not by a
    poll's interval too (a poll in its own turn moves a simulated clock on by it)."""
    path = tmp_path / "live.toml"
    path.write_text(LIVE_RECIPE, encoding="utf-8")
    view, panel, rig = window.recipes, window.instruments, window.holder.rig
    clock = rig.clock
    panel.timer.stop()  # this test's polls alone
    qtbot.waitUntil(lambda: not panel._polling, timeout=WAIT_MS)
    sleep, wait, read_all = clock.sleep, RecipeRunner._wait, instruments_panel.read_all
    span: list[float] = []  # the wait's start and end on the rig's clock
    slept: list[float] = []  # the wait's sleeps
    read_in_wait: list[float] = []  # the clock time each reading in the wait took
    at_poll, polled, shown = threading.Event(), threading.Event(), threading.Event()
    held: list[bool] = []  # whether the readings were shown while held in the wait

    def waiting(runner, wait_clock, seconds: float) -> None:
        span.append(clock.now())
        try:
            wait(runner, wait_clock, seconds)
        finally:
            span.append(clock.now())

    def sleeping(seconds: float) -> None:
        if len(span) == 1:  # in the wait
            slept.append(seconds)
            into = clock.now() - span[0]
            if into >= POLL_AT_S and not at_poll.is_set():
                at_poll.set()
                assert polled.wait(WAIT_MS / 1000)
            elif into >= SHOWN_BY_S and not held:
                held.append(shown.wait(WAIT_MS / 1000))
        sleep(seconds)

    def read_all_noted(polled_rig: object, **kwargs: object) -> dict[str, object] | None:
        then = clock.now()
        try:
            return read_all(polled_rig, **kwargs)
        finally:
            if len(span) == 1:
                read_in_wait.append(clock.now() - then)

    monkeypatch.setattr(RecipeRunner, "_wait", waiting)
    monkeypatch.setattr(clock, "sleep", sleeping)
    monkeypatch.setattr(instruments_panel, "read_all", read_all_noted)
    assert recipe_opened(view, qtbot, path) and recipe_ran(view, qtbot)
    try:
        qtbot.waitUntil(at_poll.is_set, timeout=WAIT_MS)
        with qtbot.waitSignal(panel.updated, timeout=WAIT_MS):
            panel.poll()
            polled.set()
        in_wait = len(span) == 1 and view.runner.index == 1
        setpoint = panel.field_label.text().splitlines()[0]
        fluxgate = np.asarray(panel.readings["fluxgate"])
    finally:
        polled.set()
        shown.set()
    qtbot.waitUntil(lambda: not view.runner.running, timeout=WAIT_MS)
    assert in_wait and held == [True], (span, held)
    assert setpoint == "setpoint (0.000, 40.000, 0.000) µT", setpoint
    assert abs(fluxgate[1] - 40e-6) < 2e-6, fluxgate  # the fluxgate read during the wait
    assert view.steps.item(1).text().startswith(MARKS["done"]), view.steps.item(1).text()
    assert len(read_in_wait) == 1, read_in_wait
    assert span[1] - span[0] == pytest.approx(LIVE_WAIT_S, abs=1e-9), span
    assert sum(slept) + sum(read_in_wait) == pytest.approx(LIVE_WAIT_S, abs=1e-9), sum(slept)
