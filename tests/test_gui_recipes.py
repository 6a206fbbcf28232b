"""Recipes from the window: steps listed, run one by one, prompts answered in a dialog."""

from __future__ import annotations

import os
import shlex

import h5py
import pytest
from recipe_opening import recipe_opened, recipe_ran
from session_reads import opened

from gui.command import recorded_command
from smm_daq.storage.nexus import list_entries, read_map
from smm_daq.storage.scan_entry import read_scan_record

WAIT_MS = 60_000

RECIPE = """
[recipe]
title = "a remanent scan, then the same area in field"
[scan_defaults]
center_um = [12500.0, 12500.0]
size_um = [100.0, 60.0]
step_um = 20.0
settle_tau = 1.0
[[step]]
kind = "zero_field"
[[step]]
kind = "scan"
name = "first"
[[step]]
kind = "prompt"
message = "Check the sample is still in place, then press OK"
[[step]]
kind = "wait"
seconds = 30.0
[[step]]
kind = "scan"
name = "second"
field_uT = [0.0, 40.0, 0.0]
[[step]]
kind = "subtract"
in_field = "second"
remanent = "first"
name = "difference"
register = false
"""


@pytest.fixture
def recipe_file(tmp_path):
    path = tmp_path / "recipe.toml"
    path.write_text(RECIPE, encoding="utf-8")
    return path


def test_a_recipe_runs_step_by_step_with_its_prompt(window, qtbot, recipe_file, tmp_path):
    view = window.recipes
    prompts = []
    view.ask = lambda message: prompts.append(message) or True
    assert recipe_opened(view, qtbot, recipe_file)
    assert view.title_label.text() == "a remanent scan, then the same area in field"
    assert view.steps.count() == 6
    assert "scan 'first' 6 × 4 points" in view.steps.item(1).text()
    started_at = window.holder.rig.clock.now()
    assert recipe_ran(view, qtbot)
    qtbot.waitUntil(lambda: not view.runner.running, timeout=WAIT_MS)

    assert prompts == ["Check the sample is still in place, then press OK"]
    assert all(view.steps.item(i).text().startswith("✔") for i in range(6)), view.message.text()
    path = tmp_path / "session.h5"
    kinds = {e.name: e.kind for e in list_entries(path)}
    assert kinds == {"first": "scan", "second": "scan", "difference": "induced"}
    assert read_scan_record(path, "second")["recipe"] == RECIPE
    with h5py.File(path, "r") as f:  # how the subtraction was made, as `run` records it
        assert f["difference/process/parameters/command"].asstr()[()] == (
            "smm-daq gui: " + shlex.join(["run", str(recipe_file), "--out", str(path)]))
        assert f["difference/process/parameters/recipe_file"].asstr()[()] == str(recipe_file)
        assert f["second/recipe"].attrs["path"] == str(recipe_file)
    assert window.holder.rig.clock.now() - started_at >= 30.0  # the wait step ran on the clock
    first, second, diff = (read_map(path, n) for n in ("first", "second", "difference"))
    assert diff.bz == pytest.approx(second.bz - first.bz)


def test_cancelling_a_prompt_stops_the_recipe(window, qtbot, recipe_file, tmp_path):
    view = window.recipes
    view.ask = lambda message: False
    assert recipe_opened(view, qtbot, recipe_file)
    assert recipe_ran(view, qtbot)
    qtbot.waitUntil(lambda: not view.runner.running, timeout=WAIT_MS)
    marks = [view.steps.item(i).text()[0] for i in range(6)]
    assert marks == ["✔", "✔", "✖", "○", "○", "○"]
    assert "stopped" in view.message.text()
    assert [e.name for e in list_entries(tmp_path / "session.h5")] == ["first"]


def test_a_recipe_that_does_not_fit_the_rig_is_refused_before_anything_runs(window, qtbot,
                                                                             recipe_file):
    recipe_file.write_text(RECIPE.replace("12500.0, 12500.0", "99000.0, 12500.0"))
    view = window.recipes
    assert not recipe_opened(view, qtbot, recipe_file)
    assert "step 2" in view.message.text() and "stage travel" in view.message.text()
    assert not view.run_button.isEnabled()


def test_a_recipe_written_for_another_profile_says_so_and_how_to_start_on_it(
        window, qtbot, recipe_file, tmp_path):
    """As `run --profile` does: the window's profile is used, and the recipe's named; a
    recipe of another stage scanned where no sample lay, and nothing said so."""
    from smm_daq.instruments.profile import DEFAULT_PROFILE

    fine = DEFAULT_PROFILE.parent / "simulator-e727.toml"
    view = window.recipes
    title = 'title = "a remanent scan, then the same area in field"\n'
    recipe_file.write_text(RECIPE.replace(title, f"{title}profile = '{fine}'\n"))
    assert recipe_opened(view, qtbot, recipe_file)
    said = view.message.text()
    assert (f"Note: the recipe is written for the profile {fine} ([recipe] profile), but this "
            f"window runs on {DEFAULT_PROFILE}") in said
    assert f"smm-daq gui --profile {fine}" in said
    recipe_file.write_text(RECIPE.replace(title, f"{title}profile = '{DEFAULT_PROFILE}'\n"))
    assert recipe_opened(view, qtbot, recipe_file) and "Note" not in view.message.text()


def test_a_stopped_recipe_leaves_the_field_at_zero(window, qtbot, tmp_path):
    recipe = tmp_path / "field-then-prompt.toml"
    recipe.write_text(
        '[recipe]\ntitle = "field, then a prompt the operator cancels"\n'
        '[[step]]\nkind = "set_field"\nfield_uT = [0.0, 40.0, 0.0]\n'
        '[[step]]\nkind = "prompt"\nmessage = "Cancel me"\n'
    )
    view = window.recipes
    view.ask = lambda message: False
    assert recipe_opened(view, qtbot, recipe)
    assert recipe_ran(view, qtbot)
    qtbot.waitUntil(lambda: not view.runner.running, timeout=WAIT_MS)
    assert "stopped" in view.message.text()
    coils = window.holder.rig.world.coils
    assert abs(coils.currents()).max() < 1e-6  # 40 µT would need 0.8 A on coil y


FIRST_SCAN = '[[step]]\nkind = "scan"\nname = "r1"\n'


@pytest.mark.parametrize(
    ("steps", "words"),
    [
        (FIRST_SCAN + '[[step]]\nkind = "scan"\nname = "r2"\nfly = true\nfly_trigger = true\n',
         ["step 2 (scan 'r2')", "trigger_wired = true"]),
        (FIRST_SCAN + '[[step]]\nkind = "scan"\nname = "r2"\nsize_um = [40.0, 40.0]\n'
         '[[step]]\nkind = "subtract"\nin_field = "r2"\nremanent = "r1"\nname = "d"\n',
         ["step 3 (subtract 'd')", "'r2' is 3 × 3 pixels (ny × nx) but 'r1' is 4 × 6",
          "same grid"]),
    ],
    ids=["fly trigger", "subtract grids"],
)
def test_a_later_step_the_rig_cannot_run_refuses_the_recipe_before_its_first(
        window, qtbot, tmp_path, steps, words):
    recipe = tmp_path / "later.toml"
    recipe.write_text(RECIPE.split("[[step]]")[0] + steps)
    view = window.recipes
    assert not recipe_opened(view, qtbot, recipe)
    for w in words:
        assert w in view.message.text()
    assert not view.run_button.isEnabled()
    assert not recipe_ran(view, qtbot) and view.runner is None
    assert not (tmp_path / "session.h5").exists()


def test_what_only_the_connected_controller_tells_refuses_the_recipe_before_its_first(
        window, qtbot, tmp_path, monkeypatch):
    recipe = tmp_path / "fly.toml"
    recipe.write_text(RECIPE.split("[[step]]")[0] + FIRST_SCAN
                      + '[[step]]\nkind = "scan"\nname = "r2"\nfly = true\n')
    monkeypatch.setattr(window.holder.rig.stage, "recorder_points", lambda: 1)
    view = window.recipes
    assert recipe_opened(view, qtbot, recipe)
    assert recipe_ran(view, qtbot)
    qtbot.waitUntil(lambda: not view.runner.running, timeout=WAIT_MS)
    assert "step 2 (scan 'r2'): the stage's position recorder holds 1 points" in \
        view.message.text()
    path = tmp_path / "session.h5"
    assert not path.exists() or list_entries(path) == []


def test_while_a_recipe_runs_it_alone_drives_the_rig(window, qtbot, recipe_file, tmp_path,
                                                      monkeypatch):
    """At its prompt (the field on, the operator at the sample): the manual controls and Start
    are refused, closing the window asks; when it ends, the session tab shows every entry it
    wrote, the last one made by its subtraction."""
    from PyQt6 import QtWidgets

    seen = {}

    def at_the_prompt(message: str) -> bool:
        seen["recipe"] = window.holder.recipe_running
        seen["goto"] = window.instruments.goto_button.isEnabled()
        seen["start"] = window.scan.start()
        seen["why"] = window.scan.status.text()
        asked = []
        monkeypatch.setattr(QtWidgets.QMessageBox, "question",
                            lambda *a, **k: asked.append(a[2])
                            or QtWidgets.QMessageBox.StandardButton.No)
        seen["closed"] = window.close()
        seen["asked"] = asked
        return True

    view = window.recipes
    view.ask = at_the_prompt
    assert recipe_opened(view, qtbot, recipe_file)
    assert recipe_ran(view, qtbot)
    qtbot.waitUntil(lambda: not view.runner.running, timeout=WAIT_MS)
    assert seen["recipe"] and not seen["goto"] and not seen["start"]
    assert "A recipe is running" in seen["why"]
    assert not seen["closed"] and seen["asked"] == [
        "A recipe is running. Stop it (the rig is made safe) and close?"]
    assert not window.holder.recipe_running and window.instruments.goto_button.isEnabled()
    # first, second and difference, once the file is read again
    qtbot.waitUntil(lambda: window.session.table.rowCount() == 3, timeout=WAIT_MS)


def test_a_recipe_does_not_start_while_a_scan_of_the_scan_tab_runs(window, qtbot, recipe_file,
                                                                   monkeypatch):
    """Run was usable during a scan started by hand, and then said the rig was not
    connected."""
    from scan_gate import gate_the_scan

    from smm_daq.acquisition.plan import ScanPlan

    view, scan = window.recipes, window.scan
    assert recipe_opened(view, qtbot, recipe_file) and view.run_button.isEnabled()
    gate = gate_the_scan(window, qtbot, monkeypatch)
    gate.hold_scan(at_point=2)
    plan = ScanPlan(name="by-hand", x0=12.5e-3, y0=12.5e-3, nx=4, ny=3, step_x=20e-6,
                    step_y=20e-6, settle_tau=1.0)
    try:
        assert scan.start(plan)
        qtbot.waitUntil(gate.waiting.is_set, timeout=WAIT_MS)
        assert not view.run_button.isEnabled()
        assert not recipe_ran(view, qtbot)
        assert view.message.text().startswith("A scan started on the Scan tab owns the rig")
        assert view.runner is None and not window.holder.recipe_running
    finally:
        gate.go.set()
    qtbot.waitUntil(lambda: not scan.live.running, timeout=WAIT_MS)
    assert view.run_button.isEnabled()


def test_closing_during_a_recipes_scan_asks_once(window, qtbot, recipe_file, monkeypatch):
    """Yes to "abort the scan and close" closes the window: the recipe that ran the scan is
    stopped with it, not asked about a second time."""
    from PyQt6 import QtWidgets
    from scan_gate import gate_the_scan

    view, live = window.recipes, window.scan.live
    gate = gate_the_scan(window, qtbot, monkeypatch)
    gate.hold_scan(at_point=2)
    asked: list[str] = []
    yes = QtWidgets.QMessageBox.StandardButton.Yes
    with monkeypatch.context() as patch:
        patch.setattr(QtWidgets.QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or yes)
        assert recipe_opened(view, qtbot, recipe_file) and recipe_ran(view, qtbot)
        try:
            qtbot.waitUntil(gate.waiting.is_set, timeout=WAIT_MS)
            assert live.running and view.runner.running
            window.close()
        finally:
            gate.go.set()
        qtbot.waitUntil(lambda: not window.isVisible(), timeout=WAIT_MS)
    assert asked == ["A scan is running. Abort it (the rig is made safe) and close?"]
    assert live.state == "aborted" and window.holder.rig is None


def test_the_recipes_scan_bar_ends_where_the_scan_tabs_does(qtbot, settings, tmp_path):
    """The last points and the end of a scan reach the window in one batch (a fast scan, a
    busy window): the Recipes tab's bar stayed at the batch before's value."""
    from gui.main_window import MainWindow
    from smm_daq.acquisition.events import ScanEvent
    from smm_daq.acquisition.plan import ScanPlan
    from smm_daq.instruments.profile import load_profile

    w = MainWindow(load_profile(), settings, persist=False)
    qtbot.addWidget(w)
    live = w.scan.live
    plan = ScanPlan(name="batched", x0=0.0, y0=0.0, nx=2, ny=2, step_x=1e-5, step_y=1e-5)
    live.prepare(plan, tmp_path / "s.h5", None)
    live.bridge.push(ScanEvent(kind="started", entry="batched", line=0, progress=0.0))
    qtbot.waitUntil(lambda: live.state == "running", timeout=WAIT_MS)
    for i, (iy, ix) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        live.bridge.push(ScanEvent(kind="point", entry="batched", line=iy, index=(iy, ix),
                                   bz=1e-6, progress=i / 4))
    live.bridge.push(ScanEvent(kind="finished", entry="batched", line=1, progress=1.0))
    qtbot.waitUntil(lambda: live.state == "finished", timeout=WAIT_MS)
    assert w.scan.progress.value() == 1000
    assert w.recipes.progress.value() == 1000


def test_while_a_recipe_runs_the_scan_tabs_start_and_the_sessions_resume_are_disabled(
        window, qtbot, tmp_path):
    """A recipe's steps alone drive the rig: a scan or a resume started meanwhile is refused,
    so their buttons are not usable then (here during its prompt), and are again after."""
    import h5py
    import numpy as np

    from smm_daq.storage.mapdata import MapData
    from smm_daq.storage.nexus import write_map_entry

    path = tmp_path / "aborted.h5"
    x = np.arange(4) * 20e-6
    write_map_entry(path, MapData(bz=np.zeros((4, 4)), x=x, y=x, name="part"), kind="scan")
    with h5py.File(path, "a") as f:
        f["part/status"][()] = "aborted"
        f["part/data/line_done"] = np.arange(4) < 2
    session, scan = window.session, window.scan
    assert opened(session, qtbot, path)
    session.table.selectRow(0)
    assert session.resume_button.isEnabled() and scan.start_button.isEnabled()
    recipe = tmp_path / "prompt.toml"
    recipe.write_text('[recipe]\ntitle = "a prompt"\n[[step]]\nkind = "prompt"\n'
                      'message = "Put the sample in"\n')
    during: list[tuple[bool, bool]] = []
    view = window.recipes
    view.ask = lambda _message: during.append(
        (scan.start_button.isEnabled(), session.resume_button.isEnabled())) or True
    assert recipe_opened(view, qtbot, recipe)
    assert recipe_ran(view, qtbot)
    qtbot.waitUntil(lambda: not view.runner.running, timeout=WAIT_MS)
    assert during == [(False, False)]
    assert scan.start_button.isEnabled() and session.resume_button.isEnabled()


def test_another_recipe_is_not_opened_over_the_one_running(window, qtbot, tmp_path):
    """Its steps are marked as they run: a recipe opened meanwhile put its own steps in their
    place, marked as the running recipe's went on."""
    recipe, other = tmp_path / "prompt.toml", tmp_path / "other.toml"
    recipe.write_text('[recipe]\ntitle = "a prompt"\n[[step]]\nkind = "prompt"\n'
                      'message = "Put the sample in"\n[[step]]\nkind = "zero_field"\n')
    other.write_text('[recipe]\ntitle = "another"\n[[step]]\nkind = "zero_field"\n')
    view = window.recipes
    during: list[object] = []

    def ask(_message: str) -> bool:
        during.extend([view.open_button.isEnabled(), recipe_opened(view, qtbot, other)])
        return True

    view.ask = ask
    assert recipe_opened(view, qtbot, recipe)
    assert recipe_ran(view, qtbot)
    qtbot.waitUntil(lambda: not view.runner.running, timeout=WAIT_MS)
    assert during == [False, False]
    assert view.title_label.text() == "a prompt" and view.steps.count() == 2
    assert all(view.steps.item(i).text().startswith("✔") for i in range(2))
    assert view.open_button.isEnabled()
    assert recipe_opened(view, qtbot, other)  # once it has ended


def test_a_step_that_cannot_start_ends_the_recipe_and_leaves_the_field_at_zero(
        window, qtbot, tmp_path, monkeypatch):
    """An error raised while a step starts (here the subtraction's session cannot open the
    file) ended nothing: out of a Qt slot it reached the event loop, where PyQt6 ends the
    window with the field still on, or left the tab 'running' for ever. The recipe now stops
    at that step, says why, and the rig is made safe."""
    import gui.recipe_runner
    from smm_daq.errors import InputError

    def refused(*args, **kwargs):
        raise InputError("the file is locked by another program")

    monkeypatch.setattr(gui.recipe_runner, "Session", refused)
    recipe = tmp_path / "field-then-subtract.toml"
    recipe.write_text(
        '[recipe]\ntitle = "a field, a scan, then a subtraction that cannot start"\n'
        '[scan_defaults]\ncenter_um = [12500.0, 12500.0]\nsize_um = [40.0, 40.0]\n'
        'step_um = 20.0\n'
        '[[step]]\nkind = "scan"\nname = "a"\n'
        '[[step]]\nkind = "set_field"\nfield_uT = [0.0, 40.0, 0.0]\n'
        '[[step]]\nkind = "scan"\nname = "b"\n'
        '[[step]]\nkind = "subtract"\nin_field = "b"\nremanent = "a"\nname = "d"\n'
        'register = false\n')
    view = window.recipes
    assert recipe_opened(view, qtbot, recipe)
    assert recipe_ran(view, qtbot)
    qtbot.waitUntil(lambda: not view.runner.running, timeout=WAIT_MS)
    assert "step 4: the file is locked by another program" in view.message.text()
    assert [view.steps.item(i).text()[0] for i in range(4)] == ["✔", "✔", "✔", "✖"]
    assert abs(window.holder.rig.world.coils.currents()).max() < 1e-6


def test_a_recipe_is_read_and_checked_off_the_windows_thread_and_a_late_read_dropped(
        window, qtbot, recipe_file, tmp_path, monkeypatch):
    """No scan running: the recipe file and the session file were read on the window's
    thread as a recipe was opened (frozen on a slow share, Stop and Esc unanswered). They are
    read in a worker, the steps list saying "Checking…" meanwhile; a recipe opened before the
    last one's read had ended is not shown over it."""
    import threading

    from scan_gate import Held

    import gui.recipes_view as recipes_view

    other = tmp_path / "other.toml"
    other.write_text('[recipe]\ntitle = "the other"\n[[step]]\nkind = "zero_field"\n',
                     encoding="utf-8")
    checks: list[threading.Thread] = []
    real_check = recipes_view.check_against_file
    monkeypatch.setattr(recipes_view, "check_against_file",
                        lambda *a: checks.append(threading.current_thread()) or real_check(*a))
    held = Held(recipes_view.load_recipe)
    monkeypatch.setattr(recipes_view, "load_recipe", held)
    view = window.recipes
    try:
        assert view.open_recipe(recipe_file)
        held.wait_entered()
        assert [view.steps.item(i).text() for i in range(view.steps.count())] == ["Checking…"]
        assert view.checking and not view.run_button.isEnabled()
        assert view.open_recipe(other)  # before the first one's read has ended
    finally:
        held.go.set()
    qtbot.waitUntil(lambda: not view.checking, timeout=WAIT_MS)
    assert view.title_label.text() == "the other" and view.steps.count() == 1
    assert view.recipe is not None and view.recipe.title == "the other"
    readers = [*held.threads, *checks]
    assert len(held.threads) == len(checks) == 2
    assert all(t is not threading.main_thread() for t in readers)


def test_a_recipe_opened_while_run_checks_answers_run_not_started(window, qtbot, recipe_file,
                                                                   tmp_path, monkeypatch):
    """Run checks the recipe again before it starts; another recipe opened meanwhile dropped
    that check's answer, and Run was never answered (`started` never came, nothing said)."""
    from scan_gate import Held

    import gui.recipes_view as recipes_view

    other = tmp_path / "other.toml"
    other.write_text('[recipe]\ntitle = "the other"\n[[step]]\nkind = "zero_field"\n',
                     encoding="utf-8")
    view = window.recipes
    assert recipe_opened(view, qtbot, recipe_file)
    held = Held(recipes_view.load_recipe)
    monkeypatch.setattr(recipes_view, "load_recipe", held)
    answers: list[bool] = []
    view.started.connect(answers.append)
    try:
        assert view.run()
        held.wait_entered()
        assert not view.run_button.isEnabled() and not view.run()  # no second start
        assert view.open_recipe(other)
        assert answers == [False]
        assert view.message.text().startswith("Not run: another recipe was opened")
    finally:
        held.go.set()
    qtbot.waitUntil(lambda: not view.checking, timeout=WAIT_MS)
    assert view.recipe is not None and view.recipe.title == "the other"
    assert answers == [False] and view.runner is None and view.run_button.isEnabled()


def test_a_window_command_naming_a_file_in_no_utf8_is_recorded_escaped(tmp_path) -> None:
    """A file named with a byte that is no UTF-8 (`smm-daq gui` given it in a Latin-1
    terminal: a lone surrogate to Python) made the command the window's subtraction records
    a traceback as it was stored: it is stored escaped, as the command line's is."""
    command = recorded_command(["run", "r.toml", "--out", os.fsdecode(b"/d/caf\xe9.h5")])
    with h5py.File(tmp_path / "p.h5", "w") as f:
        f["command"] = command
        assert f["command"].asstr()[()] == "smm-daq gui: run r.toml --out $'/d/caf\\xe9.h5'"
