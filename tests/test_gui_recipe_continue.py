"""A recipe cut off in the window (here: stopped in its second scan) is continued from the
Recipes tab: finished steps skipped, the cut-off scan resumed through the Scan tab, the rest
run; a recipe changed since is refused there with the command line's message."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from recipe_opening import recipe_opened, recipe_ran
from scan_gate import gate_the_scan
from test_gui_recipes import RECIPE, WAIT_MS

from smm_daq.cli.main import main
from smm_daq.storage.nexus import list_entries, read_map

POINTS_PER_LINE = 6  # RECIPE's scans: 6 × 4 points


def _snapshot(path: Path, name: str) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {k: f[f"{name}/data/{k}"][()] for k in ("Bz", "lockin_x", "time", "line_done")}


@pytest.fixture
def cut_off(window, qtbot, tmp_path, monkeypatch) -> tuple[Path, Path]:
    """RECIPE run in the window and stopped (the Stop button) in the second line of its
    second scan: 'first' finished, 'second' aborted with its first line, no 'difference'."""
    recipe, path = tmp_path / "recipe.toml", tmp_path / "session.h5"
    recipe.write_text(RECIPE, encoding="utf-8")
    view = window.recipes
    gate = gate_the_scan(window, qtbot, monkeypatch)

    def at_the_prompt(_message: str) -> bool:  # between the scans: hold the second one
        gate.hold(gate.count + 1 + POINTS_PER_LINE + 3)
        return True

    view.ask = at_the_prompt
    assert recipe_opened(view, qtbot, recipe) and view.run_button.text() == "Run"
    assert recipe_ran(view, qtbot)
    try:
        qtbot.waitUntil(gate.waiting.is_set, timeout=WAIT_MS)
        view.stop_button.click()
    finally:
        gate.go.set()
    qtbot.waitUntil(lambda: not view.runner.running, timeout=WAIT_MS)
    assert "stopped" in view.message.text()
    states = {e.name: (e.status, e.lines_done) for e in list_entries(path)}
    assert states == {"first": ("finished", 4), "second": ("aborted", 1)}
    return recipe, path


def marks(view) -> list[str]:
    return [view.steps.item(i).text()[0] for i in range(view.steps.count())]


def test_a_recipe_stopped_in_its_second_scan_is_continued_from_the_tab(window, qtbot,
                                                                       cut_off):
    recipe, path = cut_off
    view = window.recipes
    # offered once the recipe stopped (whether it wrote entries is read off the GUI thread)
    qtbot.waitUntil(lambda: view.run_button.text() == "Continue", timeout=WAIT_MS)
    assert "Continue carries it on" in view.message.text()
    # a sentence of its own, after the step's message ("… aborted by the operator")
    assert "operator. Continue carries it on" in view.message.text()
    first, second = _snapshot(path, "first"), _snapshot(path, "second")
    asked: list[str] = []
    view.ask = lambda message: asked.append(message) or True

    assert recipe_opened(view, qtbot, recipe)
    # zero field runs, 'first' done, the prompt and wait of its work skipped, 'second' resumed
    assert marks(view) == ["○", "✔", "↷", "↷", "◐", "○"]
    assert "finished in" in view.steps.item(1).text()
    assert view.steps.item(4).text().endswith("resumed from its first unfinished line")
    assert view.run_button.text() == "Continue" and view.run_button.isEnabled()
    assert "cut off" in view.message.text()

    scans: list[str] = []
    window.scan.scanEnded.connect(lambda kind, _message: scans.append(kind))
    with qtbot.waitSignal(view.started, timeout=WAIT_MS) as started:
        view.run_button.click()  # checked again, then started
    assert started.args == [True]
    qtbot.waitUntil(lambda: not view.runner.running, timeout=WAIT_MS)
    assert view.message.text().startswith("Recipe finished"), view.message.text()
    assert scans == ["finished"]  # one scan ran on the Scan tab: 'second', resumed
    assert marks(view) == ["✔", "✔", "↷", "↷", "✔", "✔"]
    assert asked == []  # the prompt belonged to the work done
    assert {e.name: e.status for e in list_entries(path)} == {
        "first": "finished", "second": "finished", "difference": "finished"}
    for key, value in _snapshot(path, "first").items():  # the first scan untouched
        np.testing.assert_array_equal(value, first[key])
    after, kept = _snapshot(path, "second"), second["line_done"]
    assert after["line_done"].all()
    for key in ("Bz", "lockin_x", "time"):  # its finished line kept, not measured again
        np.testing.assert_array_equal(after[key][kept], second[key][kept])
    diff = read_map(path, "difference")
    assert diff.sources == ("second", "first")
    assert diff.bz == pytest.approx(read_map(path, "second").bz - read_map(path, "first").bz)
    assert view.run_button.text() == "Run"


def test_a_recipe_cut_off_before_it_named_its_profile_is_continued_from_the_tab(
        window, qtbot, cut_off):
    """Its scan cut off is resumed through the Scan tab, which takes it as the recipe's own
    with the `[recipe] profile` line aside, as `run --continue` does."""
    from smm_daq.instruments.profile import DEFAULT_PROFILE

    recipe, path = cut_off
    title = 'title = "a remanent scan, then the same area in field"\n'
    recipe.write_text(RECIPE.replace(title, f"{title}profile = '{DEFAULT_PROFILE}'\n"),
                      encoding="utf-8")
    view = window.recipes
    view.ask = lambda _message: True
    assert recipe_opened(view, qtbot, recipe)
    assert marks(view) == ["○", "✔", "↷", "↷", "◐", "○"]
    assert view.run_button.text() == "Continue" and view.run_button.isEnabled()
    scans: list[str] = []
    window.scan.scanEnded.connect(lambda kind, _message: scans.append(kind))
    with qtbot.waitSignal(view.started, timeout=WAIT_MS):
        view.run_button.click()
    qtbot.waitUntil(lambda: not view.runner.running, timeout=WAIT_MS)
    assert view.message.text().startswith("Recipe finished"), view.message.text()
    assert scans == ["finished"]
    assert {e.name: e.status for e in list_entries(path)} == {
        "first": "finished", "second": "finished", "difference": "finished"}


def test_a_changed_recipe_is_refused_in_the_tab_with_the_command_lines_message(
        window, qtbot, cut_off, monkeypatch, capsys):
    recipe, path = cut_off
    recipe.write_text(RECIPE.replace("a remanent scan, then the same area in field", "changed"),
                      encoding="utf-8")
    before = path.read_bytes()
    view = window.recipes
    assert not recipe_opened(view, qtbot, recipe)
    message = view.message.text()
    assert "step 2 (scan 'first')" in message and "another recipe text" in message
    assert not view.run_button.isEnabled()
    assert not recipe_ran(view, qtbot)
    assert path.read_bytes() == before

    def no_rig(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the rig was connected")

    monkeypatch.setattr("smm_daq.instruments.rig.open_rig", no_rig)
    capsys.readouterr()
    assert main(["run", str(recipe), "--out", str(path), "--yes", "--continue"]) == 2
    assert capsys.readouterr().err.strip() == f"smm-daq: error: {message}"
    assert path.read_bytes() == before


def test_a_recipe_begun_before_unread_fly_keys_were_refused_says_so_when_continued(
        window, qtbot, tmp_path, monkeypatch):
    """A recipe whose step gives pixel_time_s without flying, and whose zero_field step
    [scan_defaults] field_uT overrides for the scan after it, stopped at its prompt by an
    earlier release (which left the key unread and ran the step so), is continued from the
    tab as `smm-daq run --continue` continues it: saying each key it leaves unread, and
    warning of the step (the tab had said nothing of either)."""
    recipe = tmp_path / "recipe.toml"
    text = RECIPE.replace('name = "first"\n', 'name = "first"\npixel_time_s = 0.1\n')
    recipe.write_text(text.replace("[scan_defaults]\n",
                                   "[scan_defaults]\nfield_uT = [0.0, 20.0, 0.0]\n"),
                      encoding="utf-8")
    view = window.recipes
    view.ask = lambda _message: False  # the prompt cancelled: stopped after 'first'
    with monkeypatch.context() as earlier:  # as an earlier release read it: neither refused
        earlier.setattr("smm_daq.acquisition.recipe.unread_fly_keys", lambda *_: ())
        earlier.setattr("smm_daq.acquisition.recipe.fields_overridden", lambda *_: ())
        assert recipe_opened(view, qtbot, recipe) and recipe_ran(view, qtbot)
        qtbot.waitUntil(lambda: not view.runner.running, timeout=WAIT_MS)
    assert [e.name for e in list_entries(tmp_path / "session.h5")] == ["first"]
    assert recipe_opened(view, qtbot, recipe) and view.run_button.text() == "Continue"
    message = view.message.text()
    assert "cut off" in message and ("step 2 (scan): key 'pixel_time_s' is given, but the step "
                                     "does not fly: left unread, as when the recipe was begun"
                                     ) in message, message
    assert ("Warning: step 1 (zero_field) sets zero field for the scans after it that give no "
            "field_uT, but step 2 (scan 'first') would be taken in (0, 20, 0) µT") in message
    assert "continued as begun, the scan taken in the field of [scan_defaults]." in message
