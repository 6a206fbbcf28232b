"""A recipe begun before the correlation of a shift's x and y errors counted in its
significance (its subtraction written without `registration/shift_correlation`), continued
from the window's Recipes tab: its subtraction left to run decides by the shift's SDs alone, as
`smm-daq run --continue` does (the correlation recorded as estimated, flagged as not
counted), and the step says so."""

from __future__ import annotations

import warnings

import h5py
from recipe_opening import recipe_opened, recipe_ran
from test_gui_recipe_insignificant_shift import _two_scans

from smm_daq.analysis.induced_entry import subtract_entries
from smm_daq.analysis.registration import RegistrationWarning

WAIT_MS = 60_000
RECIPE = ('[recipe]\ntitle = "two subtractions"\n'
          '[[step]]\nkind = "subtract"\nin_field = "in_field"\nremanent = "remanent"\n'
          'name = "d1"\n'
          '[[step]]\nkind = "subtract"\nin_field = "in_field"\nremanent = "remanent"\n'
          'name = "d2"\n')


def test_a_recipe_continued_in_the_window_decides_by_the_sds_alone_as_begun(
        window, qtbot, tmp_path) -> None:
    path = tmp_path / "session.h5"  # the window's session file (the `window` fixture's)
    _two_scans(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RegistrationWarning)
        subtract_entries(path, "in_field", "remanent", "d1")
    with h5py.File(path, "r+") as f:  # as the release before the correlation wrote it
        assert f["d1/registration/shift_correlation"][()] != 0.0  # the maps correlate it
        del f["d1/registration/shift_correlation"]
    recipe = tmp_path / "two.toml"
    recipe.write_text(RECIPE)
    view = window.recipes
    assert recipe_opened(view, qtbot, recipe), view.message.text()
    assert view.continuing
    assert "by the shift's SDs alone, as this recipe's 'd1'" in view.steps.item(1).text()
    assert recipe_ran(view, qtbot), view.message.text()
    qtbot.waitUntil(lambda: not view.runner.running, timeout=WAIT_MS)
    assert view.steps.item(1).text().startswith("✔"), view.message.text()
    with h5py.File(path) as f:
        assert f["d2/registration/shift_correlation"][()] != 0.0  # as estimated
        assert f["d2/registration/by_sds_alone"][()] == 1  # not counted
