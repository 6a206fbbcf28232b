"""The commands smm-daq's messages advise (make the rig safe, calibrate the coils, repair or
list a file, continue a recipe) paste into a shell as they stand where a path holds a space,
a quote or a '$': each word quoted as `shell_words.command_line` quotes it, so the shell hands
the program back the path it named."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path
from types import SimpleNamespace

import h5py
import pytest
from test_storage_earlier_staging import _leftover, _session

from smm_daq.cli.acquisition import _warn_if_uncalibrated
from smm_daq.errors import InputError
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import safe_command_hint
from smm_daq.storage.nexus import check_new_entry
from smm_daq.storage.staging import STAGING, CutOff, left_out_note, not_an_entry

ROOT = Path(__file__).resolve().parent.parent
AWKWARD = "it's my \"rig\" $HOME"  # a folder name a shell would split, unquote and expand


def _advised(message: str) -> list[list[str]]:
    """Each `smm-daq ...` command of `message`, split into words as a shell splits it."""
    return [shlex.split(c) for c in re.findall(r"`(smm-daq [^`]*)`", message)]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    awkward = tmp_path / AWKWARD
    awkward.mkdir()
    return awkward


def test_the_safe_command_names_a_profile_path_with_quotes_and_spaces(folder: Path) -> None:
    shutil.copy(ROOT / "configs" / "simulator.toml", folder / "sim.toml")
    profile = load_profile(folder / "sim.toml")
    assert _advised(safe_command_hint(profile)) == [
        ["smm-daq", "safe", "--profile", str(profile.path)]]


def test_the_calibrate_command_names_a_profile_path_with_quotes_and_spaces(
        folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (ROOT / "configs" / "simulator.toml").read_text()
    (folder / "sim.toml").write_text(text.replace(
        "[rig]\n", '[rig]\ncalibration_file = "not yet.json"\n', 1))
    profile = load_profile(folder / "sim.toml")
    _warn_if_uncalibrated(profile)
    assert _advised(capsys.readouterr().err) == [
        ["smm-daq", "calibrate-coils", "--profile", str(profile.path)]]


def test_repair_says_run_continue_with_the_file_quoted(folder: Path) -> None:
    path = str(folder / "session.h5")
    note = left_out_note(CutOff(name="s", key="s", kept=False, earlier=False, acquired=""),
                         path)
    assert _advised(note) == [["smm-daq", "run", "RECIPE", "--out", path, "--continue"]]


def test_an_entry_cut_off_names_info_and_repair_with_the_file_quoted(folder: Path) -> None:
    path = str(folder / "session.h5")
    with h5py.File(path, "w") as f:
        f.create_group("s").attrs[STAGING] = 1
        said = not_an_entry(f, "s", path)
    assert said is not None
    assert _advised(said) == [["smm-daq", "info", path], ["smm-daq", "repair", path]]


def test_acquired_data_left_staged_names_repair_with_the_file_quoted(folder: Path) -> None:
    path = _session(folder)
    _leftover(path, "scan1", kind="import")
    with pytest.raises(InputError) as refused:
        check_new_entry(path, "scan1", (), overwrite=False)
    assert _advised(str(refused.value)) == [["smm-daq", "repair", str(path)]]


def test_the_windows_close_on_a_stalled_write_names_repair_and_resume_quoted(
        folder: Path) -> None:
    """What the window says when closed while a scan's write has not returned."""
    from gui.main_window import MainWindow

    path = folder / "session.h5"
    said: list[str] = []
    window = SimpleNamespace(
        scan=SimpleNamespace(live=SimpleNamespace(path=path, plan=SimpleNamespace(name="a b"),
                                                  rig_safe=True, message="")),
        _close_after_scan=True, _warn=said.append, _writes_left=lambda: "")
    assert MainWindow._leave_stalled_write(window) is True  # type: ignore[arg-type]
    assert _advised(said[0]) == [["smm-daq", "repair", str(path)],
                                 ["smm-daq", "resume", str(path), "--entry", "a b"]]


def test_a_recipe_stopped_in_a_stalled_subtraction_names_info_quoted(folder: Path) -> None:
    """What the Recipes tab says when stopped while its subtraction's write is held."""
    from gui.recipe_runner import RecipeRunner

    path = folder / "session.h5"
    runner = SimpleNamespace(path=path)
    step = SimpleNamespace(name="induced")
    said = RecipeRunner._held_text(runner, step, "the rig is safe")  # type: ignore[arg-type]
    assert _advised(said) == [["smm-daq", "info", str(path)]]
