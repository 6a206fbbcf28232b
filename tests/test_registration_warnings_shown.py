"""A registration's warnings (a shift that may be an artefact) reach the user by every path
that subtracts, as `smm-daq subtract` says them: the scripting `Session` warns them in the
caller's thread, `smm-daq run` says each once on stderr, the window on its message line; and
each path records them in the entry. A shift left out as expected is said as a note (not a
fault), by each path alike."""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest
from acq_fakes import fake_rig
from recipe_opening import recipe_opened, recipe_ran
from session_reads import opened
from test_registration_coverage import scans

from gui.session_browser import SessionBrowser
from gui.subtract_dialog import REGISTER_LABEL, said_in_window
from smm_daq.acquisition.recipe import parse_recipe, run_recipe
from smm_daq.acquisition.session import Session
from smm_daq.analysis.registration import RegistrationNote, RegistrationWarning
from smm_daq.cli.main import main
from smm_daq.storage.nexus import write_map_entry

SUBTRACT = ('[[step]]\nkind = "subtract"\nin_field = "in_field"\nremanent = "remanent"\n'
            'name = "induced"\n')


@pytest.fixture
def path(tmp_path):
    """Two scans whose registration draws a note (the shift left out) and a warning (see
    test_registration_coverage)."""
    in_field, remanent, _ = scans(np.random.default_rng(1), 4, (1.0, 0.0, 0.0), 0.5,
                                  shift=(0.0, 0.0))
    out = tmp_path / "s.h5"
    for m in (remanent, in_field):
        write_map_entry(out, m, kind="scan")
    return out


def recorded_note_and_warning(path) -> list[str]:
    """The entry's note and warning, in the order they are said."""
    with h5py.File(path) as f:
        said = [f[f"induced/registration/{kind}"][()].decode().split("\n")
                for kind in ("notes", "warnings")]
    assert [len(s) for s in said] == [1, 1], said
    return said[0] + said[1]


def said(lines: list[str]) -> list[str]:
    """The concerns in lines "...'in_field − remanent': concern"."""
    return [line.split("': ", 1)[1] for line in lines]


def test_the_session_warns_in_the_callers_thread_at_the_callers_line(path):
    with pytest.warns(RegistrationWarning) as caught:
        Session(path, fake_rig(lambda x, y: 0.0 * x)).subtract("in_field", "remanent", "induced")
    assert [w.filename for w in caught] == [__file__] * 2
    assert [w.category for w in caught] == [RegistrationNote, RegistrationWarning]
    assert said([str(w.message) for w in caught]) == recorded_note_and_warning(path)


def test_a_recipes_subtraction_hands_its_warnings_to_on_warning(path):
    told: list[Warning] = []
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        run_recipe(parse_recipe(SUBTRACT), Session(path, fake_rig(lambda x, y: 0.0 * x)),
                   on_warning=told.append)
    assert shown == []  # none is warned besides
    assert [type(w) for w in told] == [RegistrationNote, RegistrationWarning]
    assert said([str(w) for w in told]) == recorded_note_and_warning(path)


def test_the_warning_filters_decide_what_a_recipes_subtraction_hands_on(path, tmp_path):
    """-W ignore: `on_warning` (the command line's stderr, the window's message) is told
    nothing; -W error: the first warning is raised and no entry written, as `smm-daq
    subtract` does (it had been written first, then the warning raised)."""
    told: list[Warning] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_recipe(parse_recipe(SUBTRACT), Session(path, fake_rig(lambda x, y: 0.0 * x)),
                   on_warning=told.append)
        assert told == [] and len(recorded_note_and_warning(path)) == 2
        warnings.simplefilter("error")
        with pytest.raises(RegistrationWarning, match="in_field − remanent"):
            run_recipe(parse_recipe(SUBTRACT.replace('"induced"', '"again"')),
                       Session(path, fake_rig(lambda x, y: 0.0 * x)), on_warning=told.append)
    assert told == []
    with h5py.File(path) as f:  # raised before anything is written
        assert "again" not in f and "induced" in f


def test_run_says_each_warning_once_on_stderr(path, capsys):
    recipe = path.parent / "r.toml"
    recipe.write_text(SUBTRACT)
    assert main(["run", str(recipe), "--out", str(path)]) == 0
    err = [line for line in capsys.readouterr().err.splitlines()
           if "registration" in line]
    assert len(err) == 2
    assert err[0].startswith("smm-daq: note: '") and err[1].startswith("smm-daq: warning: '")
    assert said(err) == recorded_note_and_warning(path)


def test_the_window_says_the_warnings_on_its_message_line(path, qtbot):
    browser = SessionBrowser()
    qtbot.addWidget(browser)
    assert opened(browser, qtbot, path)
    qtbot.waitUntil(lambda: len(browser.entries) == 2)
    with qtbot.waitSignal(browser.subtracted, timeout=20000) as ended:
        assert browser.subtract("in_field", "remanent", "induced")
    text = browser.message.text()
    assert ended.args[0] and text == ended.args[1]
    note, concern = recorded_note_and_warning(path)  # how to force a shift: as the window does
    assert said_in_window(f"Note: 'in_field − remanent': {note}") in text
    assert said_in_window(f"Warning: 'in_field − remanent': {concern}") in text
    # the shift found is said as the warnings say it, not to more digits
    found = text.split(": shift found ", 1)[1].split(" µm")[0]
    assert f"the registration's shift {found} µm" in text
    # how to subtract as the maps lie too: the dialog's checkbox, not the command line's flag
    assert "--no-register" not in text and "--apply-insignificant-shift" not in text
    assert f'the subtract dialog\'s "{REGISTER_LABEL}" unticked' in text


def test_the_windows_recipe_says_the_warnings_when_it_ends(window, qtbot, tmp_path):
    made = tmp_path / "session.h5"  # the session file the window's fixture chose
    in_field, remanent, _ = scans(np.random.default_rng(1), 4, (1.0, 0.0, 0.0), 0.5,
                                  shift=(0.0, 0.0))
    for m in (remanent, in_field):
        write_map_entry(made, m, kind="scan")
    recipe = tmp_path / "r.toml"
    recipe.write_text(SUBTRACT)
    view = window.recipes
    assert recipe_opened(view, qtbot, recipe)
    assert recipe_ran(view, qtbot)
    qtbot.waitUntil(lambda: not view.runner.running, timeout=60_000)
    text = view.message.text()
    assert text.startswith("Recipe finished: all steps done")
    note, concern = [said_in_window(c, recipe=True) for c in recorded_note_and_warning(made)]
    told = text.split("; note: step 1: ")[1].split("; warning: step 1: ")
    assert said(told) == [note, concern]
    assert said(view.steps.item(0).toolTip().split("\n")) == [note, concern]
    assert "--no-register" not in text and "register = false in the recipe's subtract step" in text
