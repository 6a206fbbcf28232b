"""Fuzzing `smm-daq run RECIPE --continue` with the recipe edited since its scans were taken,
as people edit one: a `[recipe] profile` line added, changed or dropped (left aside where it
names the profile the scans were taken with), and any other line changed, added or dropped,
alone or beside a profile line. Each is continued (every step done: nothing changes), or
refused before the rig connects with one message naming the recipe and what differs (for a
recipe text that differs, the line that does, never the profile line beside it), exit 2,
no traceback, the session file and the recipe unchanged.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from fuzz_harness import Case, run_all
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_recipe_continue import RECIPE, _rig, _use_rig

from smm_daq.acquisition.recipe_continue import _first_difference
from smm_daq.cli.main import main

SIMULATOR = Path(__file__).resolve().parents[1] / "configs" / "simulator.toml"
HEAD = "[recipe]\n"
LINES = RECIPE.splitlines(keepends=True)
PROFILE_LINES = st.sampled_from([None, f"profile = '{SIMULATOR}'\n", "profile = 'nope.toml'\n",
                                 "profile = '~/nope.toml'\n", f'profile = "{SIMULATOR}"  # x\n',
                                 "profile = 'e727.toml'\n"])
EDITS = st.one_of(
    st.none(),
    st.tuples(st.integers(0, len(LINES) - 1),
              st.sampled_from(["drop", "blank before", "comment before", "space at end",
                               "digit", "tab"])),
)


def _edited(profile: str | None, edit: tuple[int, str] | None) -> tuple[str, int | None]:
    """RECIPE with the profile line (after its title) and the edit of one other line; and the
    number, in the text edited, of the line that then differs first (None: none does)."""
    lines = list(LINES)
    changed = None
    if edit is not None:
        i, how = edit
        line = lines[i]
        if how == "drop":
            del lines[i]
        elif how in ("blank before", "comment before"):
            lines.insert(i, "\n" if how == "blank before" else "# edited\n")
        elif how == "space at end":
            lines[i] = line.rstrip("\n") + " \n"
        elif how == "digit" and any(c.isdigit() for c in line):
            lines[i] = "".join("7" if c.isdigit() and c != "7" else c for c in line)
        elif how == "tab":
            lines[i] = "\t" + line
        changed = i if lines != LINES else None
    at = lines.index(HEAD) + 1 if HEAD in lines else None
    if profile is not None and at is not None:
        lines.insert(at, profile)
        if changed is not None and changed >= at:
            changed += 1
    return "".join(lines), None if changed is None else changed + 1


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recipe run to its end: 'rem', 'inf' and 'induced' finished."""
    folder = tmp_path_factory.mktemp("continue")
    recipe, out = folder / "first.toml", folder / "s.h5"
    recipe.write_text(RECIPE)
    with pytest.MonkeyPatch.context() as mp:
        _use_rig(mp, _rig())
        assert main(["run", str(recipe), "--out", str(out), "--yes"]) == 0
    return out


@settings(max_examples=12, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(profile=PROFILE_LINES, edit=EDITS)
def test_a_recipe_edited_since_is_continued_or_refused_naming_what_differs(
        finished: Path, monkeypatch: pytest.MonkeyPatch, profile: str | None,
        edit: tuple[int, str] | None) -> None:
    text, line = _edited(profile, edit)
    recipe = finished.parent / "r.toml"
    recipe.write_text(text)
    connected = _use_rig(monkeypatch, _rig())
    case = Case("run --continue", f"{profile!r} / {edit!r}",
                ["run", str(recipe), "--out", str(finished), "--yes", "--continue"],
                [finished, recipe], [], ["r.toml"], may_pass=line is None)
    _, failures = run_all([case])
    assert not failures, "\n".join(failures)
    assert connected == []


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(before=PROFILE_LINES, after=PROFILE_LINES, edit=EDITS)
def test_the_line_named_is_the_one_that_differs_whatever_the_profile_lines(
        before: str | None, after: str | None, edit: tuple[int, str] | None) -> None:
    stored, _ = _edited(before, None)
    now, line = _edited(after, edit)
    try:
        tomllib.loads(now)
    except tomllib.TOMLDecodeError:  # refused as no recipe before any is compared
        return
    if line is None:
        return
    said = _first_difference(stored, now)
    assert said.startswith((f"line {line} was", f"line {line} (")) or "is gone" in said, said
    assert "profile" not in said, said
