"""Open and run a recipe on the Recipes tab, whose files are read in the background."""

from __future__ import annotations

WAIT_MS = 60_000  # generous: the whole suite shares two cores


def recipe_opened(view, qtbot, path) -> bool:
    """`open_recipe`, then its check waited for: whether the recipe is usable (its steps
    listed) or refused (the message says why)."""
    if not view.open_recipe(path):
        return False
    qtbot.waitUntil(lambda: not view.checking, timeout=WAIT_MS)
    return view.recipe is not None


def recipe_ran(view, qtbot) -> bool:
    """`run`, then its check waited for: whether the recipe started. A run refused at once
    (`run` returns False) says so without waiting: no check follows it to end."""
    started = qtbot.waitSignal(view.started, timeout=WAIT_MS, raising=False)
    if not view.run():
        return False
    started.wait()
    return bool(started.signal_triggered and started.args[0])
