"""`smm-daq run` uses the profile a recipe names (`[recipe] profile`, a path from the recipe's
folder), --profile instead where one is given (saying so), and always says which profile it
uses: the fine-stage recipe run without --profile scanned the default profile's stage, away
from the sample, and said nothing of it."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import pytest

from smm_daq.acquisition.recipe import check_recipe, load_recipe
from smm_daq.cli.main import main
from smm_daq.cli.run_profile import named_profile
from smm_daq.instruments.profile import DEFAULT_PROFILE, load_profile

REPO = Path(__file__).resolve().parents[1]
E727 = REPO / "configs" / "simulator-e727.toml"
RECIPE = """[recipe]
title = "a small scan"
{profile}
[[step]]
kind = "scan"
name = "s"
center_um = [900.0, 900.0]
size_um = [40.0, 40.0]
step_um = 20.0
"""


def _recipe(tmp_path: Path, profile_line: str) -> Path:
    """A recipe in its own folder (recipes/), the E-727 profile copied beside that folder."""
    shutil.copyfile(E727, tmp_path / "e727.toml")
    (tmp_path / "recipes").mkdir()
    path = tmp_path / "recipes" / "small.toml"
    path.write_text(RECIPE.format(profile=profile_line))
    return path


def _stored_profile(out: Path) -> str:
    with h5py.File(out, "r") as f:
        return f["s/profile"].attrs["path"]


def test_a_recipe_runs_on_the_profile_it_names_from_its_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe, out = _recipe(tmp_path, 'profile = "../e727.toml"'), tmp_path / "s.h5"
    assert main(["run", str(recipe), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"recipe {recipe}: profile {recipe.parent / '../e727.toml'} (named by the recipe)" in err
    assert _stored_profile(out) == str((tmp_path / "e727.toml").resolve())


def test_a_recipe_given_by_a_link_names_its_profile_from_the_folder_it_lies_in(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A recipe linked into a sample's folder (a shipped one, say) still runs on its own
    profile: taken from the link's folder it was refused as not found."""
    recipe, out = _recipe(tmp_path, 'profile = "../e727.toml"'), tmp_path / "s.h5"
    sample = tmp_path / "samples" / "a"
    sample.mkdir(parents=True)
    link = sample / "small.toml"
    link.symlink_to(recipe)
    assert main(["run", str(link), "--out", str(out)]) == 0
    assert "(named by the recipe)" in capsys.readouterr().err
    assert _stored_profile(out) == str((tmp_path / "e727.toml").resolve())


def test_profile_given_with_a_recipe_naming_a_link_looping_on_itself_runs_with_the_note(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The recipe's profile only compared with the one given: it ended in a traceback."""
    recipe, out = _recipe(tmp_path, 'profile = "loop.toml"'), tmp_path / "s.h5"
    (recipe.parent / "loop.toml").symlink_to("loop.toml")
    given = str(DEFAULT_PROFILE)
    assert main(["run", str(recipe), "--out", str(out), "--profile", given]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"--profile {given} is used instead of" in err


def test_profile_given_is_used_instead_of_the_recipes_and_that_is_said(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe, out = _recipe(tmp_path, 'profile = "../e727.toml"'), tmp_path / "s.h5"
    given = str(DEFAULT_PROFILE)
    assert main(["run", str(recipe), "--out", str(out), "--profile", given]) == 0
    err = capsys.readouterr().err
    assert f"recipe {recipe}: profile {given} (--profile)" in err
    assert (f"smm-daq: note: --profile {given} is used instead of "
            f"{recipe.parent / '../e727.toml'}, the profile the recipe names") in err
    assert _stored_profile(out) == str(DEFAULT_PROFILE)


def test_a_recipe_naming_no_profile_runs_on_the_default_and_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe, out = _recipe(tmp_path, ""), tmp_path / "s.h5"
    assert main(["run", str(recipe), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"recipe {recipe}: profile {DEFAULT_PROFILE} (the simulator's, the default" in err
    assert _stored_profile(out) == str(DEFAULT_PROFILE)


@pytest.mark.parametrize(("line", "words"), [
    ("profile = 5", "'profile' is 5; expected the path of an instrument profile"),
    ('profile = ""', "'profile' is ''; expected the path of an instrument profile"),
    ('profile = "a\\tb.toml"', "expected the path of an instrument profile"),
    ('profile = ["../e727.toml"]', "expected the path of an instrument profile"),
    ('profile = "../nowhere.toml"', "'profile' is '../nowhere.toml', taken from the recipe's "
                                    "folder: "),
    ('profile = ".."', "is a directory; expected a TOML instrument profile"),
    ('profile = "small.toml"', "expected"),  # the recipe itself: no profile
])
def test_a_bad_profile_named_by_a_recipe_is_refused_before_the_rig(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, words: str) -> None:
    recipe, out = _recipe(tmp_path, line), tmp_path / "s.h5"
    assert main(["run", str(recipe), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert words in err and str(recipe) in err and "Traceback" not in err
    assert "unknown key" not in err and not out.exists()


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs" / "recipes")
                                        .glob("*.toml")))
def test_each_shipped_recipe_names_the_profile_whose_stage_it_fits(
        tmp_path: Path, name: str) -> None:
    path = REPO / "configs" / "recipes" / name
    recipe = load_recipe(path)
    named = named_profile(recipe, path)
    assert named is not None and named.is_file()
    check_recipe(recipe, load_profile(named), tmp_path / "new.h5", can_prompt=False)


def test_a_profile_named_from_the_home_folder_is_found_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`profile = "~/e727.toml"` is the user's home, as a shell reads it (it was refused as
    not found, looked for in a folder named "~" beside the recipe)."""
    recipe, out = _recipe(tmp_path, 'profile = "~/e727.toml"'), tmp_path / "s.h5"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["run", str(recipe), "--out", str(out)]) == 0
    assert "(named by the recipe)" in capsys.readouterr().err
    assert _stored_profile(out) == str((tmp_path / "e727.toml").resolve())


def test_a_profile_named_from_the_home_of_no_user_is_refused_naming_the_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`profile = "~nobody_here/lab.toml"` ended in a traceback (RuntimeError: Could not
    determine home directory) before the recipe's first step."""
    recipe, out = _recipe(tmp_path, 'profile = "~nobody_here_smm/lab.toml"'), tmp_path / "s.h5"
    before = recipe.read_bytes()
    assert main(["run", str(recipe), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and not out.exists() and recipe.read_bytes() == before
    assert (f"smm-daq: error: {recipe}: [recipe]: 'profile' is '~nobody_here_smm/lab.toml', but "
            "'~nobody_here_smm' names the home folder of a user this computer does not have; "
            "expected a path from the recipe's folder, or one from your home folder written "
            "'~/...'") in err, err


@pytest.mark.parametrize("char", ["\x85", "\u2028", "\x9b"])
def test_a_profile_path_holding_a_line_break_python_reads_is_refused_as_the_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], char: str) -> None:
    """A C1 control (U+0085 is a line break to Python) or a line separator was looked for as
    a file, and the message quoting the path was split in two at it."""
    recipe = _recipe(tmp_path, f'profile = "lab{char}.toml"')
    out = tmp_path / "s.h5"
    assert main(["run", str(recipe), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and not out.exists(), err
    assert "key 'recipe.profile'" in err or "'profile'" in err, err
    assert "with no control character or line break" in err, err
