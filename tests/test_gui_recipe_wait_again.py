"""A recipe cut off after a scan and before the next one began (here: at its prompt) is
continued from the Recipes tab: its wait runs again in full, and the tab says so and why,
not that it is skipped."""

from __future__ import annotations

from pathlib import Path

import pytest
from PyQt6.QtCore import Qt
from test_recipe_continue import RECIPE, _rig

from gui.message_line import WARNED_COLOUR
from gui.recipes_view import MARKS, check_against_file, step_item
from smm_daq.acquisition.recipe import parse_recipe, run_recipe
from smm_daq.acquisition.session import Session
from smm_daq.instruments.profile import load_profile
from smm_daq.storage.nexus import list_entries

WAIT = 3  # RECIPE's steps: zero field, scan 'rem', set field, wait 120 s, prompt, ...


@pytest.fixture
def stopped_at_the_prompt(tmp_path: Path) -> Path:
    """RECIPE run and stopped at its prompt: 'rem' finished, 'inf' not begun."""
    out = tmp_path / "s.h5"

    def stop(_message: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_recipe(parse_recipe(RECIPE), Session(out, _rig()), ask=stop)
    assert {e.name: e.status for e in list_entries(out)} == {"rem": "finished"}
    return out


def test_a_wait_run_again_on_continue_says_it_waits_again_in_full(stopped_at_the_prompt):
    checked = check_against_file(parse_recipe(RECIPE), load_profile(), stopped_at_the_prompt)
    assert checked.continuing
    line = checked.lines[WAIT]
    assert line.startswith(f"{MARKS['pending']}  4. wait 120 s: waits again in full (")
    assert "the field was ramped down" in line
    assert "skipped" not in line
    assert checked.lines[1].startswith(MARKS["done"])


def test_a_wait_passed_before_the_cut_is_still_said_skipped(tmp_path):
    """Cut off after its second scan, the wait before it was passed: skipped, as before."""
    out = tmp_path / "s.h5"

    def go_on(_message: str) -> None:
        return None

    recipe = parse_recipe(RECIPE)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(
            recipe, Session(out, _rig()), ask=go_on, on_step=lambda i, _text: _interrupt_at(i, 6)
        )
    assert {e.name for e in list_entries(out)} == {"rem", "inf"}
    checked = check_against_file(parse_recipe(RECIPE), load_profile(), out)
    assert checked.lines[WAIT].startswith(f"{MARKS['skipped']}  4. wait 120 s: skipped (")
    assert "again" not in checked.lines[WAIT]


def _interrupt_at(i: int, step: int) -> None:
    if i == step:
        raise KeyboardInterrupt


def test_a_wait_after_all_the_work_is_not_said_to_wait_again(tmp_path):
    """Cut off in a wait after its last entry was written, nothing is left to continue (the
    tab says so, and no step runs, as `run --continue` says every step is done): that wait
    is marked skipped, and why, not said to wait again in full nor left pending (○), nor is
    any other step."""
    out = tmp_path / "s.h5"
    text = RECIPE + '[[step]]\nkind = "wait"\nseconds = 60\n'
    last = len(parse_recipe(text).steps) - 1
    with pytest.raises(KeyboardInterrupt):
        run_recipe(
            parse_recipe(text),
            Session(out, _rig()),
            ask=lambda _message: None,
            on_step=lambda i, _text: _interrupt_at(i, last),
        )
    assert {e.name for e in list_entries(out)} == {"rem", "inf", "induced"}
    checked = check_against_file(parse_recipe(text), load_profile(), out)
    assert checked.recipe.start is None
    assert checked.lines[last] == (f"{MARKS['skipped']}  {last + 1}. wait 60 s: skipped "
                                   f"(every entry of the recipe is in {out} already: nothing "
                                   "is left to continue)")
    assert {line[0] for line in checked.lines} == {MARKS["done"], MARKS["skipped"]}


def test_a_wait_in_zero_field_after_a_scan_is_said_in_amber_as_run_warns(tmp_path, qtbot):
    """A wait after a scan that a set_field step's field came before waits in zero field
    (the scan ended with the field ramped down): the tab's step line says so, in the
    window's amber, as `smm-daq run` warns of it; the scan and set_field lines do not."""
    text = (RECIPE.split("[[step]]")[0]
            + '[[step]]\nkind = "set_field"\nfield_uT = [0.0, 40.0, 0.0]\n'
            + '[[step]]\nkind = "scan"\nname = "inf"\n[[step]]\nkind = "wait"\nseconds = 60\n')
    recipe = parse_recipe(text)
    checked = check_against_file(recipe, load_profile(), tmp_path / "s.h5")
    assert checked.lines[2] == (f"{MARKS['pending']}  3. wait 60 s; warning: "
                                f"{checked.recipe.wait_note(2)}")
    assert "waits in zero field, not in the (0, 40, 0) µT that step 1 set" in checked.lines[2]
    assert checked.warned == [False, False, True]
    item = step_item(checked.lines[2], True)
    assert item.foreground().color().name() == WARNED_COLOUR
    assert item.toolTip() == checked.lines[2]
    assert step_item(checked.lines[0], False).foreground().style() == Qt.BrushStyle.NoBrush
