"""A recipe's subtract step run from the window's Recipes tab honours its
`apply_insignificant_shift`, as `smm-daq run` does: the same recipe makes the same entry; and,
continued, a shift applied only as the recipe's subtractions written by an earlier release
applied theirs, as `run --continue` does."""

from __future__ import annotations

import shlex
from types import SimpleNamespace

import h5py
import numpy as np
from recipe_opening import recipe_opened, recipe_ran
from test_recipe_shift_as_begun import RECIPE, _begun_before_a_shift_not_determined
from test_registration_coverage import scans

from gui.recipe_runner import RecipeRunner
from smm_daq.acquisition.recipe import check_recipe, parse_recipe
from smm_daq.instruments.profile import load_profile
from smm_daq.storage.nexus import write_map_entry

WAIT_MS = 60_000


def _two_scans(path):
    # the same four grains, no true shift: a shift found not significantly different from zero
    in_field, remanent, _ = scans(np.random.default_rng(1), 4, (1.0, 0.0, 0.0), 0.5,
                                  shift=(0.0, 0.0))
    for m in (remanent, in_field):
        write_map_entry(path, m, kind="scan")


def _subtraction_run_in_window(window, qtbot, recipe, title: str, step_keys: str = ""):
    """The window's Recipes tab, a recipe subtracting the two scans written (its step given
    `step_keys` besides) opened from `recipe` there and run to its end."""
    recipe.write_text(
        f'[recipe]\ntitle = "{title}"\n'
        '[[step]]\nkind = "subtract"\nin_field = "in_field"\nremanent = "remanent"\n'
        f'name = "induced"\n{step_keys}')
    view = window.recipes
    assert recipe_opened(view, qtbot, recipe), view.message.text()
    assert recipe_ran(view, qtbot), view.message.text()
    qtbot.waitUntil(lambda: not view.runner.running, timeout=WAIT_MS)
    return view


def test_a_window_recipe_s_shift_not_applied_names_the_recipe_key(window, qtbot, tmp_path):
    """The window says how a recipe forces the shift (its step's key), not the command
    line's flag, which a recipe run from the window has no use for."""
    path = tmp_path / "session.h5"  # the window's session file (the `window` fixture's)
    _two_scans(path)
    view = _subtraction_run_in_window(window, qtbot, tmp_path / "plain.toml", "a subtraction")
    said = view.message.text()
    assert "not significantly different from zero, so it is not applied" in said, said
    assert "apply_insignificant_shift = true in the recipe's subtract step" in said, said
    assert "--apply-insignificant-shift" not in said, said


def test_a_window_recipe_applies_an_insignificant_shift_when_its_step_asks(
        window, qtbot, tmp_path):
    path = tmp_path / "session.h5"  # the window's session file (the `window` fixture's)
    _two_scans(path)
    view = _subtraction_run_in_window(window, qtbot, tmp_path / "forced.toml",
                                      "a subtraction forcing an insignificant shift",
                                      "apply_insignificant_shift = true\n")
    assert view.steps.item(0).text().startswith("✔"), view.message.text()
    with h5py.File(path) as f:
        reg = f["induced/registration"]
        assert np.any(reg["shift_found"][()] != 0.0)
        np.testing.assert_array_equal(reg["shift"][()], reg["shift_found"][()])
        assert f["induced/process/parameters/apply_insignificant_shift"][()] == 1


def test_a_recipe_continued_in_the_window_leaves_out_a_shift_not_determined(qtbot, tmp_path):
    """The window's recipe runner, as `run --continue`: 'd2' applies a shift only as 'd1'
    applied its own, so where none was determined it applies none and the recipe finishes,
    not refused as if the user had forced the shift."""
    path = tmp_path / "s.h5"
    _begun_before_a_shift_not_determined(path)
    profile = load_profile()
    rig = SimpleNamespace(profile=profile, stage=None, make_safe=lambda: [])
    def call(fn, on_result, on_error, **_) -> bool:  # `call` and `call_first` (key=)
        return on_result(fn()) or True

    holder = SimpleNamespace(rig=rig, set_recipe_running=lambda running: None, call=call,
                             call_first=call, hold_readings=lambda key: None,
                             release_readings=lambda key: None)
    checked = check_recipe(parse_recipe(RECIPE, "two.toml"), profile, path, can_prompt=False,
                           continuing=True)
    runner = RecipeRunner(checked, path, holder, None, lambda message: True)
    with qtbot.waitSignal(runner.finished, timeout=WAIT_MS) as ended:
        runner.start()
    ok, said = ended.args
    assert ok, said
    assert "determined no shift" in said, said
    assert "this recipe's earlier subtractions ('d1') applied their shifts" in said, said
    with h5py.File(path) as f:
        np.testing.assert_array_equal(f["d2/registration/shift"][()], [0.0, 0.0])
        # the command line that continues it, as `run --continue` records itself
        assert f["d2/process/parameters/command"].asstr()[()] == (
            "smm-daq gui: " + shlex.join(["run", "two.toml", "--out", str(path), "--continue"]))
