"""The Recipes tab's Stop during a recipe's `wait` step is acted on within `STOP_SLICE_S` of the
rig's clock: the wait ends at its slice under way and the rig is made safe then, the field
ramped down."""

from __future__ import annotations

import threading

import numpy as np
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
    loaded machine): the poll, queued in the rig's thread behind the wait, runs before the
    making safe and moves the simulated clock on by its interval (`read_all`: the time
    between polls, which passes beside the recipe, not in it). The bound is the recipe's
    own: the rig's clock from the Stop to the making safe, less what polls added."""
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
    polled: list[float] = []  # the rig-clock time each poll between the two added
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

    def read_all_noted(polled_rig: object) -> dict[str, object]:  # in the rig's thread
        then = clock.now()
        try:
            return read_all(polled_rig)
        finally:
            if stop_at and not made_safe:
                polled.append(clock.now() - then)

    def make_safe_noted() -> list[str]:
        made_safe.append(clock.now())
        return make_safe()

    monkeypatch.setattr(RecipeRunner, "_start", starting)
    monkeypatch.setattr(clock, "sleep", sleeping)
    monkeypatch.setattr(rig, "make_safe", make_safe_noted)
    monkeypatch.setattr(instruments_panel, "read_all", read_all_noted)
    assert recipe_opened(view, qtbot, path) and recipe_ran(view, qtbot)
    try:
        qtbot.waitUntil(at_stop.is_set, timeout=WAIT_MS)
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
    late = made_safe[0] - stop_at[0] - sum(polled)
    assert 0 <= late <= interfaces.STOP_SLICE_S + 1e-9, late
    assert np.abs(rig.world.coils.currents()).max() < 1e-6  # 40 µT: 0.8 A on coil y
