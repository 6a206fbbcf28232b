"""A recipe whose rig calls meet a link dropping the rest of a reply cut short (aside, every
exchange refused meanwhile: `StillDropping`) waits for the drop and makes the call again, as
a scan's worker does, rather than failing on the refusal: `smm-daq run`'s steps, and on the
Recipes tab, where the wait is the window's, so that the rig's thread stays free for a Stop.
The drops are held by events; nothing sleeps."""

from __future__ import annotations

import textwrap
import threading

from recipe_opening import WAIT_MS, recipe_opened, recipe_ran
from test_scan_after_drop import _cut_and_dropping_aside, released_as_waited
from test_stop_amid_drop import HANG_GUARD_S

from smm_daq.acquisition.recipe import parse_recipe, run_recipe
from smm_daq.acquisition.session import Session
from smm_daq.errors import StillDropping
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import open_rig

FLY_RECIPE = textwrap.dedent(
    """
    [recipe]
    title = "after a drop"
    [[step]]
    kind = "scan"
    name = "flown"
    center_um = [12500.0, 12500.0]
    size_um = [400.0, 100.0]
    step_um = 20.0
    fly = true
    """
)


def test_a_recipe_begun_while_the_stage_drops_a_cut_reply_waits_for_it(tmp_path,
                                                                       monkeypatch) -> None:
    """`smm-daq run` of a fly recipe just after the stage's link began to drop the rest of a
    cut reply aside: its check of the fly step against the controller (the recorder's size)
    waits for the drop (released as it waits), then runs, and the scan step follows.
    Unfixed, the recipe failed before its first step on the refusal ('... not sent: the rest
    of a reply cut short is still being dropped')."""
    rig = open_rig(load_profile())
    line = _cut_and_dropping_aside(rig)
    try:
        waited = released_as_waited(monkeypatch, line)
        scanned: list[str] = []
        monkeypatch.setattr(Session, "scan_plan",
                            lambda self, plan, **kw: scanned.append(plan.name))
        written = run_recipe(parse_recipe(FLY_RECIPE, "fly.toml"),
                             Session(tmp_path / "s.h5", rig), yes=True)
        assert waited
        assert scanned == ["flown"] and written == ["flown"]
        assert not [m for m, amid in line.sent if amid]  # nothing sent amid the drop
    finally:
        line.release.set()
        rig.close()


def test_a_recipe_step_refused_amid_a_drop_is_made_again_and_the_rig_thread_stays_free(
        window, qtbot, tmp_path, monkeypatch) -> None:
    """On the Recipes tab, a zero_field step refused while a link drops the rest of a cut
    reply is made again once the drop has ended, and the recipe ends well; meanwhile the
    rig's thread is free (a call queued there, as a Stop is, runs before the drop ends).
    Unfixed, the step failed on the refusal and the recipe ended there."""
    path = tmp_path / "zero.toml"
    path.write_text('[[step]]\nkind = "zero_field"\n', encoding="utf-8")
    view, rig = window.recipes, window.holder.rig
    release = threading.Event()
    drop = threading.Thread(target=lambda: release.wait(HANG_GUARD_S), daemon=True)
    drop.start()
    zero_coils, calls = rig.zero_coils, []

    def refused_first() -> None:
        calls.append("zero_coils")
        if len(calls) == 1:
            raise StillDropping("'SYST:ERR?' not sent: the rest of a reply cut short is "
                                "being dropped first", instrument="coils", drop=drop)
        zero_coils()

    monkeypatch.setattr(rig, "zero_coils", refused_first)
    try:
        assert recipe_opened(view, qtbot, path) and recipe_ran(view, qtbot)
        qtbot.waitUntil(lambda: bool(calls), timeout=WAIT_MS)
        ran = threading.Event()
        window.holder.background.submit(ran.set)
        qtbot.waitUntil(ran.is_set, timeout=WAIT_MS)  # the rig's thread is not held
        assert drop.is_alive() and view.runner.running and calls == ["zero_coils"]
    finally:
        release.set()
    qtbot.waitUntil(lambda: not view.runner.running, timeout=WAIT_MS)
    assert calls == ["zero_coils", "zero_coils"], calls
    assert "all steps done" in view.message.text(), view.message.text()
