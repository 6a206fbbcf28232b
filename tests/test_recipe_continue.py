"""A recipe cut off part way is continued with `smm-daq run --continue` (and
`run_recipe(continuing=True)`): finished scans skipped, the cut-off scan resumed, the rest run;
a recipe changed since is refused before the rig connects, the file left byte for byte."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from acq_fakes import FakeRig, fake_rig
from test_recipe_steps import GOOD

from smm_daq.acquisition.recipe import check_recipe, parse_recipe, run_recipe
from smm_daq.acquisition.recipe_continue import DONE, NEW, RESUME
from smm_daq.acquisition.session import ScanNotFinished, Session
from smm_daq.cli.main import main
from smm_daq.errors import InputError
from smm_daq.instruments.profile import load_profile
from smm_daq.storage import h5file
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import list_entries, read_map, write_map_entry
from smm_daq.storage.scan_entry import ScanEntryWriter

C = 12.5e-3
RECIPE = GOOD.replace('title = "test"', 'title = "remanent and induced"')  # its 7 steps
POINTS = 5 * 4  # each scan: 5 × 4 points, one lock-in read each
CUT = POINTS + 5 + 3  # a read in the second line of the second scan
SIMULATOR = Path(__file__).resolve().parents[1] / "configs" / "simulator.toml"


def _rig(cut_at: int | None = None) -> FakeRig:
    """Bz = a blob plus 0.01 × By applied; `cut_at`: the lock-in overloads at that read and
    the next, so the scan pauses and, with nobody to resume it, is aborted (stopped)."""
    holder: dict[str, FakeRig] = {}

    def bz(x: float, y: float) -> float:
        blob = 2e-6 * np.exp(-((x - C) ** 2 + (y - C) ** 2) / (20e-6) ** 2)
        return blob + 0.01 * holder["rig"].coils.setpoint[1]

    rig = fake_rig(bz)
    holder["rig"] = rig
    if cut_at is not None:
        rig.lockin.overload_reads.update({cut_at, cut_at + 1})
    return rig


def _snapshot(path: Path, name: str) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {k: f[f"{name}/data/{k}"][()] for k in ("Bz", "lockin_x", "time", "line_done")}


def _use_rig(monkeypatch: pytest.MonkeyPatch, rig: FakeRig | None) -> list[object]:
    """The command line connects `rig`; None: connecting fails the test. Returns the calls."""
    calls: list[object] = []

    def open_rig(*args: object, **kwargs: object) -> FakeRig:
        calls.append(args)
        if rig is None:
            raise AssertionError("the rig was connected")
        return rig

    monkeypatch.setattr("smm_daq.instruments.rig.open_rig", open_rig)
    return calls


@pytest.fixture
def cut_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
            ) -> tuple[Path, Path]:
    """The recipe run from the command line and stopped in the second line of its second
    scan: 'rem' finished, 'inf' aborted with one line, no 'induced'."""
    recipe, out = tmp_path / "r.toml", tmp_path / "s.h5"
    recipe.write_text(RECIPE)
    _use_rig(monkeypatch, _rig(CUT))
    assert main(["run", str(recipe), "--out", str(out), "--yes"]) != 0
    capsys.readouterr()
    states = {e.name: (e.status, e.lines_done) for e in list_entries(out)}
    assert states == {"rem": ("finished", 4), "inf": ("aborted", 1)}
    return recipe, out


def test_a_recipe_cut_off_in_its_second_scan_is_continued_to_the_end(
        cut_off: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    recipe, out = cut_off
    rem, inf = _snapshot(out, "rem"), _snapshot(out, "inf")
    _use_rig(monkeypatch, None)  # without --continue: refused as before, nothing connected
    assert main(["run", str(recipe), "--out", str(out), "--yes"]) == 2
    assert "entry 'rem' already exists" in capsys.readouterr().err

    rig = _rig()
    _use_rig(monkeypatch, rig)
    monkeypatch.setattr("sys.stdin", open("/dev/null"))  # noqa: SIM115 - closed by pytest
    # no --yes and no terminal: the prompt it skips needs nobody
    assert main(["run", str(recipe), "--out", str(out), "--continue"]) == 0
    err = capsys.readouterr().err
    assert f"step 2/7: scan 'rem' 5 × 4 points at (0, 0, 0) µT: skipped (finished in {out} " \
           "already)" in err
    assert "step 4/7: wait 120 s: skipped" in err and "step 5/7: prompt: Look at the sample: " \
           "skipped" in err
    assert "step 6/7: scan 'inf' 5 × 4 points at (0, 40, 0) µT: resumed" in err
    assert "left to run)" in err
    assert "wrote inf, induced" in err
    assert {e.name: e.status for e in list_entries(out)} == {
        "rem": "finished", "inf": "finished", "induced": "finished"}
    for key, value in _snapshot(out, "rem").items():  # the first scan untouched
        np.testing.assert_array_equal(value, rem[key])
    after = _snapshot(out, "inf")
    done = inf["line_done"]
    np.testing.assert_array_equal(after["Bz"][done], inf["Bz"][done])  # its first line kept
    assert rig.lockin.reads == POINTS - 5  # only the lines left were measured
    # ... in the field the recipe gives it: set_field ran before the resumed scan
    np.testing.assert_allclose(rig.coils.history[1], [0.0, 40e-6, 0.0])
    np.testing.assert_allclose(read_map(out, "inf").bz - read_map(out, "rem").bz,
                               0.01 * 40e-6, rtol=1e-9)
    np.testing.assert_allclose(read_map(out, "induced").bz, 0.01 * 40e-6, rtol=1e-9)
    assert read_map(out, "induced").sources == ("inf", "rem")


def test_the_python_api_continues_a_cut_off_recipe(tmp_path: Path) -> None:
    out = tmp_path / "s.h5"
    with pytest.raises(ScanNotFinished, match="scan 'inf' aborted"):
        run_recipe(parse_recipe(RECIPE), Session(out, _rig(CUT)), yes=True)
    rem = _snapshot(out, "rem")
    checked = check_recipe(parse_recipe(RECIPE), load_profile(), out, can_prompt=True,
                           continuing=True)
    assert checked.states == ("", DONE, "", "", "", RESUME, NEW)
    # 'inf' ramps up from the 40 µT the set_field step before it left, 'rem' from zero
    rem_s, inf_s = (checked.plans[i].estimate_duration(load_profile(), start=start)
                    for i, start in ((1, None), (5, (0.0, 40e-6, 0.0))))
    # left: not the first scan, nor the wait before the work left, nor the line of 'inf' done
    assert checked.duration_left_s == pytest.approx(
        checked.duration_s - rem_s - 120.0 - inf_s / 4)
    asked: list[str] = []
    steps: list[str] = []
    written = run_recipe(parse_recipe(RECIPE), Session(out, _rig()), ask=asked.append,
                         on_step=lambda i, text: steps.append(text), continuing=True)
    assert written == ["inf", "induced"]
    assert asked == []  # the prompt belonged to the work done
    assert [t.endswith("(it belongs to the steps done already)") for t in steps] == [
        False, False, False, True, True, False, False]
    for key, value in _snapshot(out, "rem").items():
        np.testing.assert_array_equal(value, rem[key])
    np.testing.assert_allclose(read_map(out, "induced").bz, 0.01 * 40e-6, rtol=1e-9)


def test_a_continued_recipe_s_time_left_keeps_the_field_a_skipped_scan_leaves_on(
        tmp_path: Path) -> None:
    """Continued, a finished scan is skipped, so nothing makes the rig safe after it: the
    field its set_field step (run again) set stays on. A zero_field step after it ramps down
    from that field, and a scan after it ramps up from it. Unfixed, the time left took each
    skipped scan as having ended safe: the ramp down counted as none, the ramp up in full."""
    from smm_daq.acquisition.duration import field_ramp_s, safe_ramp_s

    text = ('[scan_defaults]\ncenter_um = [12500.0, 12500.0]\nsize_um = [20.0, 10.0]\n'
            'step_um = 10.0\n' + "".join(
                f'[[step]]\nkind = "{kind}"\n{key}\n' for kind, key in (
                    ("set_field", "field_uT = [0.0, 40.0, 0.0]"), ("scan", 'name = "a"'),
                    ("zero_field", ""), ("set_field", "field_uT = [0.0, 40.0, 0.0]"),
                    ("scan", 'name = "b"'), ("scan", 'name = "c"'))))
    out = tmp_path / "s.h5"
    with pytest.raises(ScanNotFinished, match="scan 'c' aborted"):  # in its second line
        run_recipe(parse_recipe(text), Session(out, _rig(2 * 6 + 4)), yes=True)
    profile = load_profile()
    checked = check_recipe(parse_recipe(text), profile, out, can_prompt=True, continuing=True)
    assert checked.states == ("", DONE, "", "", DONE, RESUME)
    b = (0.0, 40e-6, 0.0)
    plan = checked.plans[5]
    assert plan is not None
    assert checked.duration_left_s == pytest.approx(
        2 * field_ramp_s(profile, b) + safe_ramp_s(profile, b)
        + plan.estimate_duration(profile, start=b) / 2)

CHANGES = [
    (lambda t: t.replace("step_um = 10.0", "step_um = 5.0"),
     ["step 2 (scan 'rem')", "entry 'rem'", "another plan than the recipe gives now (nx 5 != 9)"]),
    (lambda t: t.replace('title = "remanent and induced"', 'title = "other"'),
     ["step 2 (scan 'rem')", "entry 'rem'", "another recipe text",
      "line 3 was 'title = \"remanent and induced\"', now 'title = \"other\"'"]),
    (lambda t: t.replace("field_uT = [0.0, 40.0, 0.0]", "field_uT = [0.0, 30.0, 0.0]"),
     ["step 2 (scan 'rem')", "another recipe text",
      "line 15 was 'field_uT = [0.0, 40.0, 0.0]', now"]),
    # a profile named since, and the field changed: the field is what differs, not the profile
    (lambda t: t.replace('title = "remanent and induced"\n', 'title = "remanent and induced"\n'
                         f"profile = '{SIMULATOR}'\n").replace("field_uT = [0.0, 40.0, 0.0]",
                                                               "field_uT = [0.0, 30.0, 0.0]"),
     ["step 2 (scan 'rem')", "another recipe text", "line 16 was 'field_uT = [0.0, 40.0, "
      "0.0]' (line 15 then), now 'field_uT = [0.0, 30.0, 0.0]'"]),
]


@pytest.mark.parametrize(("change", "words"), CHANGES,
                         ids=["step size", "text", "field", "field and profile"])
def test_a_recipe_changed_since_is_refused_before_the_rig_connects(
        cut_off: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], change, words: list[str]) -> None:
    recipe, out = cut_off
    recipe.write_text(change(RECIPE))
    before = out.read_bytes()
    connected = _use_rig(monkeypatch, None)
    assert main(["run", str(recipe), "--out", str(out), "--yes", "--continue"]) == 2
    err = capsys.readouterr().err
    for w in words:
        assert w in err
    assert "Traceback" not in err and "step 1/" not in err
    assert connected == []
    assert out.read_bytes() == before


def test_a_subtraction_made_from_other_entries_is_refused(
        cut_off: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    recipe, out = cut_off
    session = Session(out, _rig())
    session.scan("other", center_um=(12500.0, 12500.0), size_um=(40.0, 30.0), step_um=10.0,
                 field_uT=(0.0, 40.0, 0.0))
    session.subtract("other", "rem", "induced", register=False)
    before = out.read_bytes()
    connected = _use_rig(monkeypatch, None)
    assert main(["run", str(recipe), "--out", str(out), "--yes", "--continue"]) == 2
    err = capsys.readouterr().err
    assert ("step 7 (subtract 'induced'): entry 'induced' of " in err
            and "made from 'other', 'rem'; expected the subtraction 'inf' − 'rem'" in err)
    assert connected == [] and out.read_bytes() == before


def test_the_cut_off_scan_is_resumed_only_with_the_profile_it_started_with(
        cut_off: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, repo: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The checks `smm-daq resume` makes, before the rig connects."""
    recipe, out = cut_off
    text = (repo / "configs" / "simulator.toml").read_text()
    assert "time_constant_s = 0.03\n" in text
    profile = out.parent / "other.toml"
    profile.write_text(text.replace("time_constant_s = 0.03\n", "time_constant_s = 0.1\n"))
    before = out.read_bytes()
    connected = _use_rig(monkeypatch, None)
    assert main(["run", str(recipe), "--out", str(out), "--yes", "--continue", "--profile",
                 str(profile)]) == 2
    err = capsys.readouterr().err
    assert "step 6 (scan 'inf')" in err and "entry 'inf'" in err
    assert "continue the recipe with the instrument profile it was started with" in err
    assert connected == [] and out.read_bytes() == before


def test_a_recipe_cut_off_before_it_named_its_profile_is_continued_once_it_does(
        cut_off: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, repo: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped recipes gained `[recipe] profile`: one begun before goes on; that line is
    no part of what the recipe does, the cut-off scan still checked against its profile."""
    recipe, out = cut_off
    title = 'title = "remanent and induced"\n'
    simulator = repo / "configs" / "simulator.toml"
    profile = out.parent / "other.toml"
    profile.write_text(simulator.read_text().replace("_frequency_Hz = 1017.0\n",
                                                     "_frequency_Hz = 1000.0\n"))
    recipe.write_text(RECIPE.replace(title, f"{title}profile = 'other.toml'\n"))
    before = out.read_bytes()
    connected = _use_rig(monkeypatch, None)  # named another profile than its scans': refused
    assert main(["run", str(recipe), "--out", str(out), "--yes", "--continue"]) == 2
    err = capsys.readouterr().err
    assert "entry 'rem'" in err and "another recipe text" not in err  # finished, not resumed
    assert "was taken with another instrument profile: lockin_reference_frequency_Hz was " \
        "1017, now 1000" in err
    assert "continue the recipe with the instrument profile it was started with" in err
    assert connected == [] and out.read_bytes() == before

    recipe.write_text(RECIPE.replace(title, f"{title}profile = '{simulator}'\n"))
    _use_rig(monkeypatch, _rig())
    assert main(["run", str(recipe), "--out", str(out), "--yes", "--continue"]) == 0
    err = capsys.readouterr().err
    assert "skipped (finished in" in err and "scan 'inf' 5 × 4 points at (0, 40, 0) µT: " \
        "resumed" in err
    assert {e.name: e.status for e in list_entries(out)} == {
        "rem": "finished", "inf": "finished", "induced": "finished"}


def test_only_the_recipe_profile_line_is_left_aside_in_telling_a_recipe_its_own() -> None:
    from smm_daq.acquisition.recipe_continue import same_recipe

    title = 'title = "remanent and induced"\n'
    named = RECIPE.replace(title, f"{title}profile = '../simulator.toml'\n")
    assert same_recipe(RECIPE, named) and same_recipe(named, RECIPE)
    assert same_recipe(named, named.replace("../simulator.toml", "e727.toml"))
    assert not same_recipe(RECIPE, named.replace(title, 'title = "other"\n'))
    # a key of that name in another table is the recipe's work: it counts
    assert not same_recipe(RECIPE, RECIPE.replace("[[step]]\n", "[[step]]\nprofile = 'x'\n", 1))


# sha256 of each shipped recipe's text as a release before `[recipe] profile` shipped it
SHIPPED_BEFORE = {
    "remanent-and-induced.toml":
        "26ef99f24832bedd1509c461566b22ae7c0784446a4a48de15b81c748a59f965",
    "three-direction-series.toml":
        "892e3c76179433afdb4c3a7412ca3fba0161141de82980930e63c3f950efd3e5",
    "fine-stage-remanent-and-induced.toml":
        "683859d22db6e56c48a2cbb0f3cd5925654278ed1fbe0e412dda84628e096ee3",
}


@pytest.mark.parametrize("name", sorted(SHIPPED_BEFORE))
def test_a_shipped_recipe_begun_on_an_earlier_release_is_still_its_own(
        repo: Path, name: str) -> None:
    """`run --continue` takes a scan as the recipe's own by its text: a shipped recipe's text
    changed (a comment too) refuses every file an earlier release began with it."""
    import hashlib

    from smm_daq.acquisition.recipe_continue import _without_profile

    text = (repo / "configs" / "recipes" / name).read_text()
    assert hashlib.sha256(_without_profile(text).encode()).hexdigest() == SHIPPED_BEFORE[name]


def test_a_finished_recipe_continued_changes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    recipe, out = tmp_path / "r.toml", tmp_path / "s.h5"
    recipe.write_text(RECIPE)
    _use_rig(monkeypatch, _rig())
    assert main(["run", str(recipe), "--out", str(out), "--yes"]) == 0
    before = out.read_bytes()
    connected = _use_rig(monkeypatch, None)
    assert main(["run", str(recipe), "--out", str(out), "--yes", "--continue"]) == 0
    assert "every step is done" in capsys.readouterr().err
    assert connected == [] and out.read_bytes() == before
    rig = _rig()  # the API: nothing runs on an open rig either
    assert run_recipe(parse_recipe(RECIPE), Session(out, rig), continuing=True) == []
    assert rig.coils.history == [] and rig.lockin.reads == 0
    assert out.read_bytes() == before


def test_a_finished_recipe_ending_in_a_prompt_continued_needs_no_operator(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing is left to run, so its last prompt does not run either: continued without a
    terminal or --yes, it says every step is done (it was refused: "needs an operator")."""
    text = RECIPE + '[[step]]\nkind = "prompt"\nmessage = "take the sample out"\n'
    recipe, out = tmp_path / "r.toml", tmp_path / "s.h5"
    recipe.write_text(text)
    _use_rig(monkeypatch, _rig())
    assert main(["run", str(recipe), "--out", str(out), "--yes"]) == 0
    before = out.read_bytes()
    connected = _use_rig(monkeypatch, None)
    assert main(["run", str(recipe), "--out", str(out), "--continue"]) == 0
    assert "every step is done" in capsys.readouterr().err
    assert connected == [] and out.read_bytes() == before
    assert run_recipe(parse_recipe(text), Session(out, _rig()), continuing=True) == []


def test_without_continue_the_python_api_still_refuses_existing_entries(tmp_path: Path
                                                                         ) -> None:
    out = tmp_path / "s.h5"
    run_recipe(parse_recipe(RECIPE), Session(out, _rig()), yes=True)
    with pytest.raises(InputError, match=r"entry 'rem' already exists.*--continue"):
        run_recipe(parse_recipe(RECIPE), Session(out, _rig()), yes=True)


def test_an_entry_this_recipe_did_not_make_is_refused_without_pointing_to_continue(
        tmp_path: Path) -> None:
    """--continue would refuse an entry of another recipe too: the refusal does not offer it;
    an entry written twice in the recipe itself is named as such."""
    out = tmp_path / "s.h5"
    run_recipe(parse_recipe(RECIPE), Session(out, _rig()), yes=True)
    other = RECIPE.replace('title = "remanent and induced"', 'title = "another"')
    with pytest.raises(InputError) as err:
        run_recipe(parse_recipe(other), Session(out, _rig()), yes=True)
    assert str(err.value).endswith(
        f"entry 'rem' already exists in {out} and is a scan (kind 'scan'); expected a new "
        "name, or --out another file "
        "(this recipe did not make it, so --continue would refuse it too)")
    product = tmp_path / "p.h5"
    x = np.arange(3) * 1e-6
    write_map_entry(product, MapData(bz=np.zeros((2, 3)), x=x, y=x[:2], height=1e-4,
                                     name="rem"), kind="induced")
    with pytest.raises(InputError) as err:
        run_recipe(parse_recipe(RECIPE), Session(product, _rig()), yes=True)
    assert (f"entry 'rem' already exists in {product} and is an analysis product (kind "
            "'induced'); expected a new name") in str(err.value)
    twice = RECIPE + '[[step]]\nkind = "scan"\nname = "rem"\n'
    with pytest.raises(InputError) as err:
        run_recipe(parse_recipe(twice), Session(tmp_path / "new.h5", _rig()), yes=True)
    assert str(err.value).endswith(
        "entry 'rem' already exists earlier in the recipe; expected a new name")


def test_without_continue_waits_and_prompts_before_the_first_scan_run(tmp_path: Path) -> None:
    """Skipping them is for a recipe continued only (e.g. an overnight decay, then a scan)."""
    text = RECIPE.replace('[[step]]\nkind = "zero_field"\n', '[[step]]\nkind = "zero_field"\n'
                          '[[step]]\nkind = "wait"\nseconds = 600\n'
                          '[[step]]\nkind = "prompt"\nmessage = "Insert the sample"\n')
    rig = _rig()
    asked: list[str] = []
    t0 = rig.clock.now()
    written = run_recipe(parse_recipe(text), Session(tmp_path / "s.h5", rig), ask=asked.append)
    assert written == ["rem", "inf", "induced"]
    assert asked[0].startswith("Insert the sample") and len(asked) == 2
    assert rig.clock.now() - t0 >= 720.0
    only_fields = '[[step]]\nkind = "set_field"\nfield_uT = [0.0, 10.0, 0.0]\n'
    rig = _rig()
    assert run_recipe(parse_recipe(only_fields), Session(tmp_path / "f.h5", rig)) == []
    np.testing.assert_allclose(rig.coils.history[0], [0.0, 10e-6, 0.0])


def test_continuing_the_duration_limit_is_on_the_steps_left_to_run(
        cut_off: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    recipe, out = cut_off
    checked = check_recipe(parse_recipe(RECIPE), load_profile(), out, can_prompt=True,
                           continuing=True)
    left, whole = checked.duration_left_s, checked.duration_s
    assert 0 < left < whole
    before = out.read_bytes()
    monkeypatch.setattr("smm_daq.acquisition.recipe.MAX_DURATION_S", left * 0.99)
    _use_rig(monkeypatch, None)  # refused before the rig connects, the file as it was
    assert main(["run", str(recipe), "--out", str(out), "--continue", "--yes"]) == 2
    err = capsys.readouterr().err
    assert "the steps left to run are estimated to take" in err and "split them" in err
    assert out.read_bytes() == before

    monkeypatch.setattr("smm_daq.acquisition.recipe.MAX_DURATION_S", (left + whole) / 2)
    _use_rig(monkeypatch, None)  # the whole recipe, started anew, is over the limit
    assert main(["run", str(recipe), "--out", str(out.with_name("new.h5")), "--yes"]) == 2
    assert "the recipe is estimated to take" in capsys.readouterr().err
    _use_rig(monkeypatch, _rig())  # what is left of it is not
    assert main(["run", str(recipe), "--out", str(out), "--continue", "--yes"]) == 0
    assert {e.name: e.status for e in list_entries(out)} == {
        "rem": "finished", "inf": "finished", "induced": "finished"}


class _Killed(BaseException):
    """The subtraction's writer dying at a point (as kill -9 would, but the file is closed
    with what was written so far)."""


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_subtraction_whose_writer_died_around_its_move_in_is_redone_by_continue(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        when: str) -> None:
    """Killed with the whole entry written under its temporary name, just before or just
    after it gets its own name: `info` lists it as unfinished, not as an entry, `run
    --continue` redoes it (no
    traceback) and changes no other entry, the redone entry is a whole one."""
    recipe, out = tmp_path / "r.toml", tmp_path / "s.h5"
    recipe.write_text(RECIPE)
    move = h5py.Group.move

    def dying_move(group: h5py.Group, source: str, dest: str) -> None:
        if dest == "induced" and when == "after":
            move(group, source, dest)
        if dest == "induced":
            raise _Killed
        move(group, source, dest)

    put_back = h5file._Before.put_back
    monkeypatch.setattr(h5py.Group, "move", dying_move)
    # a killed writer runs no more of its code: nothing it wrote is put back
    monkeypatch.setattr(h5file._Before, "put_back", lambda *args: None)
    with pytest.raises(_Killed):
        run_recipe(parse_recipe(RECIPE), Session(out, _rig()), yes=True)
    monkeypatch.setattr(h5py.Group, "move", move)
    monkeypatch.setattr(h5file._Before, "put_back", put_back)
    scans = {name: _snapshot(out, name) for name in ("rem", "inf")}
    assert main(["info", str(out)]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed[1:]] == ["rem", "inf", "unfinished:"]
    assert listed[3].startswith("  unfinished: entry 'induced' was cut off while written")
    assert f"`smm-daq run RECIPE --out {out} --continue`" in listed[3]
    checked = check_recipe(parse_recipe(RECIPE), load_profile(), out, can_prompt=True,
                           continuing=True)
    assert checked.states[-1] == NEW
    _use_rig(monkeypatch, _rig())
    assert main(["run", str(recipe), "--out", str(out), "--yes", "--continue"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    with h5py.File(out, "r") as f:
        assert sorted(f) == ["induced", "inf", "rem"]
    for name, data in scans.items():
        for key, value in _snapshot(out, name).items():
            np.testing.assert_array_equal(value, data[key])
    np.testing.assert_allclose(read_map(out, "induced").bz, 0.01 * 40e-6, rtol=1e-9)


def test_a_recipe_stopped_at_its_prompt_asks_it_again_and_waits_again(tmp_path: Path) -> None:
    """Stopped at the prompt after its wait (the operator pressed Ctrl-C, or the program was
    killed there): 'rem' is finished, 'inf' not begun. Continued, the wait and the prompt run
    (they were skipped as "before the first step with work left", and 'inf' was measured on a
    sample the operator had not yet treated, without the wait for its decay)."""
    out = tmp_path / "s.h5"

    def stop(message: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_recipe(parse_recipe(RECIPE), Session(out, _rig()), ask=stop)
    assert {e.name: e.status for e in list_entries(out)} == {"rem": "finished"}
    with pytest.raises(InputError, match="step 5 \\(prompt\\): needs an operator"):
        check_recipe(parse_recipe(RECIPE), load_profile(), out, can_prompt=False,
                     continuing=True)
    checked = check_recipe(parse_recipe(RECIPE), load_profile(), out, can_prompt=True,
                           continuing=True)
    assert checked.states[1] == DONE and checked.states[5] == NEW
    assert checked.duration_left_s >= 120.0  # the wait is counted as work left
    rig = _rig()
    asked: list[str] = []
    t0 = rig.clock.now()
    assert run_recipe(parse_recipe(RECIPE), Session(out, rig), ask=asked.append,
                      continuing=True) == ["inf", "induced"]
    assert len(asked) == 1 and asked[0].startswith("Look at the sample")
    assert rig.clock.now() - t0 >= 120.0


def test_a_recipe_cut_off_in_a_scan_skips_the_wait_and_prompt_before_that_scan(
        cut_off: tuple[Path, Path]) -> None:
    """The wait and the prompt before a scan that had begun were passed: skipped."""
    _, out = cut_off
    rig = _rig()
    asked: list[str] = []
    t0 = rig.clock.now()
    assert run_recipe(parse_recipe(RECIPE), Session(out, rig), ask=asked.append,
                      continuing=True) == ["inf", "induced"]
    assert asked == [] and rig.clock.now() - t0 < 120.0


def test_continue_on_a_file_that_does_not_exist_says_the_recipe_runs_from_its_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing to continue (no file: a misspelt name, or a recipe cut off before its first
    entry): the whole recipe runs, and that is said before it starts, not passed over."""
    recipe, out = tmp_path / "r.toml", tmp_path / "typo.h5"
    recipe.write_text(RECIPE)
    _use_rig(monkeypatch, _rig())
    assert main(["run", str(recipe), "--out", str(out), "--yes", "--continue"]) == 0
    err = capsys.readouterr().err
    note = err.index(f"smm-daq: note: recipe {recipe}, --continue: {out} does not exist, so "
                     "nothing of it was done before")
    assert "it runs from its first step" in err
    assert note < err.index("step 1/7")
    assert {e.name for e in list_entries(out)} == {"rem", "inf", "induced"}


def test_a_recipe_an_earlier_release_cut_off_continues_with_names_new_entries_may_not_have(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """An earlier release let a recipe name its scans with a decomposed accent or more than
    ENTRY_NAME_MAX characters: those entries, in the file already, are continued (the rule is
    for new entries), not refused with the recipe that cannot be changed and continued."""
    nfd, long = "re\u0301manent", "in_field_" + "x" * 120
    recipe, out = tmp_path / "r.toml", tmp_path / "s.h5"
    recipe.write_text(RECIPE.replace('"rem"', f'"{nfd}"').replace('"inf"', f'"{long}"'),
                      encoding="utf-8")
    with monkeypatch.context() as earlier:  # names as an earlier release checked them
        earlier.setattr("smm_daq.storage.nexus.new_entry_name_problem", lambda name: None)
        _use_rig(earlier, _rig(CUT))
        assert main(["run", str(recipe), "--out", str(out), "--yes"]) != 0
    assert {e.name: e.status for e in list_entries(out)} == {nfd: "finished", long: "aborted"}
    capsys.readouterr()
    _use_rig(monkeypatch, _rig())
    assert main(["run", str(recipe), "--out", str(out), "--yes", "--continue"]) == 0, \
        capsys.readouterr().err
    assert {e.name: e.status for e in list_entries(out)} == {
        nfd: "finished", long: "finished", "induced": "finished"}


def test_a_recipe_cut_off_before_unread_fly_keys_were_refused_is_continued(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A scan step giving pixel_time_s without fly = true was run point by point, the key
    unread, until such keys were refused: a recipe cut off before then cannot be changed
    (its entries store its text) and is continued as begun; run afresh, or without
    --continue, it is refused, saying how to continue it."""
    recipe, out = tmp_path / "r.toml", tmp_path / "s.h5"
    text = RECIPE.replace('name = "rem"\n', 'name = "rem"\npixel_time_s = 0.1\n')
    assert text != RECIPE
    recipe.write_text(text, encoding="utf-8")
    _use_rig(monkeypatch, None)
    for argv in ([], ["--continue"]):  # nothing of it in the file: refused either way
        assert main(["run", str(recipe), "--out", str(out), "--yes", *argv]) == 2
        err = capsys.readouterr().err
        assert "step 2 (scan): key 'pixel_time_s' is given, but the step does not fly" in err
        assert "--continue" not in err and not out.exists()
    with monkeypatch.context() as earlier:  # as an earlier release read it: the key unread
        earlier.setattr("smm_daq.acquisition.recipe.unread_fly_keys", lambda *_: ())
        _use_rig(earlier, _rig(CUT))
        assert main(["run", str(recipe), "--out", str(out), "--yes"]) != 0
    assert {e.name: e.status for e in list_entries(out)} == {"rem": "finished", "inf": "aborted"}
    capsys.readouterr()
    _use_rig(monkeypatch, None)
    assert main(["run", str(recipe), "--out", str(out), "--yes"]) == 2
    err = capsys.readouterr().err
    assert "key 'pixel_time_s' is given" in err and f"to continue this recipe as begun in {out}" \
        in err and "`smm-daq run --continue`" in err, err
    _use_rig(monkeypatch, _rig())
    assert main(["run", str(recipe), "--out", str(out), "--yes", "--continue"]) == 0, \
        capsys.readouterr().err
    assert (f"smm-daq: warning: {recipe}, step 2 (scan): key 'pixel_time_s' is given, but the "
            "step does not fly: left unread, as when the recipe was begun") \
        in capsys.readouterr().err
    assert {e.name: e.status for e in list_entries(out)} == {
        "rem": "finished", "inf": "finished", "induced": "finished"}


@pytest.mark.parametrize(("step", "name", "when"), [
    ("scan", "infe\u0301ld", "before"),
    ("scan", "in_field_" + "x" * 120, "after"),
    ("subtract", "indu\u0301ced", "before"),
    ("subtract", "induced_" + "y" * 120, "after")],
    ids=["scan-decomposed", "scan-long", "subtract-decomposed", "subtract-long"])
def test_an_entry_of_an_earlier_release_cut_off_while_written_is_written_by_continue(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        step: str, name: str, when: str) -> None:
    """An earlier release's recipe named a scan or a subtraction with a decomposed accent or
    more than ENTRY_NAME_MAX characters, and its writer was killed laying the entry out (just
    before or after it took its name): the file has that name, still being written (`info`
    says to continue the recipe), and `run --continue` writes it whole (unfixed: refused as
    a new entry's name breaking today's rule, the recipe, which cannot change, stuck)."""
    text = RECIPE.replace('"inf"' if step == "scan" else '"induced"', f'"{name}"')
    recipe, out = tmp_path / "r.toml", tmp_path / "s.h5"
    recipe.write_text(text, encoding="utf-8")
    move = h5py.Group.move

    def dying_move(group: h5py.Group, source: str, dest: str) -> None:
        if dest == name and when == "after":
            move(group, source, dest)
        if dest == name:
            raise _Killed
        move(group, source, dest)

    def stop(message: str) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as earlier:  # names as an earlier release checked them
        earlier.setattr("smm_daq.storage.nexus.new_entry_name_problem", lambda _name: None)
        if step == "scan":  # stopped at the prompt before it, then its writer killed
            with pytest.raises(KeyboardInterrupt):
                run_recipe(parse_recipe(text), Session(out, _rig()), ask=stop)
            earlier.setattr(h5py.Group, "move", dying_move)
            earlier.setattr(h5file._Before, "put_back", lambda *args: None)  # killed
            with pytest.raises(_Killed):
                ScanEntryWriter.create(out, name=name, title="t", x=np.arange(5) * 10e-6,
                                       y=np.arange(4) * 10e-6, field=np.zeros(3),
                                       height=1e-4, plan_text="{}", profile=load_profile(),
                                       snapshot={}, recipe_text=text)  # as the recipe's
        else:
            earlier.setattr(h5py.Group, "move", dying_move)
            earlier.setattr(h5file._Before, "put_back", lambda *args: None)  # killed
            with pytest.raises(_Killed):
                run_recipe(parse_recipe(text), Session(out, _rig()), yes=True)
    assert name not in {e.name for e in list_entries(out)}
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert "--continue" in capsys.readouterr().out
    _use_rig(monkeypatch, _rig())
    assert main(["run", str(recipe), "--out", str(out), "--yes", "--continue"]) == 0, \
        capsys.readouterr().err
    assert {e.name: e.status for e in list_entries(out)} == {
        "rem": "finished", **dict.fromkeys(
            (name, "induced") if step == "scan" else ("inf", name), "finished")}
    with h5py.File(out, "r") as f:
        assert not any(key.startswith(".") for key in f)  # nothing left of the cut-off write


def test_continuing_a_step_whose_entry_the_file_lacks_keeps_todays_rule(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The scan an earlier release's recipe names with more than ENTRY_NAME_MAX characters
    was never begun: continued, it would be a new entry, so its name is refused, saying
    why and what to do, before the rig connects."""
    long = "in_field_" + "x" * 120
    recipe, out = tmp_path / "r.toml", tmp_path / "s.h5"
    recipe.write_text(RECIPE.replace('"inf"', f'"{long}"'), encoding="utf-8")
    with monkeypatch.context() as earlier:
        earlier.setattr("smm_daq.storage.nexus.new_entry_name_problem", lambda _name: None)
        _use_rig(earlier, _rig(POINTS))  # the last point of 'rem'
        assert main(["run", str(recipe), "--out", str(out), "--yes"]) != 0
    assert [e.name for e in list_entries(out)] == ["rem"]
    capsys.readouterr()
    _use_rig(monkeypatch, None)
    assert main(["run", str(recipe), "--out", str(out), "--yes", "--continue"]) == 2
    err = capsys.readouterr().err
    assert "is 129 characters long" in err
    assert "the file has no entry of this name that this recipe began" in err


@pytest.mark.parametrize("step", ["scan", "subtract"])
def test_another_recipe_s_cut_off_entry_does_not_let_a_new_name_break_today_s_rule(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    """An earlier release's recipe named a scan or a subtraction with a decomposed accent, and
    its writer was killed laying it out. Another recipe naming an entry so, continued on that
    file, would make a new entry of that name: refused by today's rule, saying why, before
    anything runs; the recipe that began it continues it (unfixed: any recipe's name was let
    through by what the other left)."""
    name = "indu\u0301ced"
    out = tmp_path / "s.h5"
    own = RECIPE.replace('"inf"' if step == "scan" else '"induced"', f'"{name}"')
    if step == "scan":
        other = own.replace('title = "remanent and induced"', 'title = "another"')
    else:  # a subtraction of two other scans
        other = own.replace('"rem"', '"rem2"').replace('"inf"', '"inf2"')
    move = h5py.Group.move

    def dying_move(group: h5py.Group, source: str, dest: str) -> None:
        if dest == name:
            raise _Killed
        move(group, source, dest)

    with monkeypatch.context() as earlier:  # names as an earlier release checked them
        earlier.setattr("smm_daq.storage.nexus.new_entry_name_problem", lambda _name: None)
        earlier.setattr(h5py.Group, "move", dying_move)
        earlier.setattr(h5file._Before, "put_back", lambda *args: None)  # killed
        if step == "scan":
            with pytest.raises(_Killed):
                ScanEntryWriter.create(out, name=name, title="t", x=np.arange(5) * 10e-6,
                                       y=np.arange(4) * 10e-6, field=np.zeros(3),
                                       height=1e-4, plan_text="{}", profile=load_profile(),
                                       snapshot={}, recipe_text=own)
        else:
            with pytest.raises(_Killed):
                run_recipe(parse_recipe(own), Session(out, _rig()), yes=True)
    with pytest.raises(InputError) as refused:
        check_recipe(parse_recipe(other), load_profile(), out, can_prompt=True,
                     continuing=True)
    assert "has accents written decomposed" in str(refused.value)
    assert "no entry of this name that this recipe began" in str(refused.value)
    checked = check_recipe(parse_recipe(own), load_profile(), out, can_prompt=True,
                           continuing=True)
    assert checked.states[5 if step == "scan" else 6] == NEW


def test_an_overwrite_through_the_python_api_makes_no_new_entry_under_an_old_rule_s_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An earlier release's entry named with a decomposed accent is replaced, through the
    Python API with overwrite=True, by a new entry: its name is a new entry's, refused by
    today's rule as the command line refuses it, the file unchanged (unfixed: the entry the
    file held let the name through, and the new entry was written under it)."""
    name = "indu\u0301ced"
    out = tmp_path / "s.h5"
    x = np.arange(4) * 1e-5
    with monkeypatch.context() as earlier:  # names as an earlier release checked them
        earlier.setattr("smm_daq.storage.nexus.new_entry_name_problem", lambda _name: None)
        write_map_entry(out, MapData(x[None, :] * x[:, None], x, x, name=name), kind="induced")
    before = out.read_bytes()
    with pytest.raises(InputError, match="has accents written decomposed"):
        write_map_entry(out, MapData(np.zeros((4, 4)), x, x, name=name), kind="induced",
                        overwrite=True)
    assert out.read_bytes() == before
    with pytest.raises(InputError, match="already exists"):  # said as what it is
        write_map_entry(out, MapData(np.zeros((4, 4)), x, x, name=name), kind="induced")


@pytest.mark.parametrize(("default_uT", "refused"), [
    ("[0, 0, 0]", "step 3 (set_field) sets (0, 40, 0) µT"),
    ("[0, 40, 0]", "step 1 (zero_field) sets zero field"),
], ids=["set_field", "zero_field"])
def test_a_recipe_cut_off_before_overridden_field_steps_were_refused_is_continued(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], default_uT: str, refused: str) -> None:
    """A set_field step's field, or a zero_field step's zero field, that [scan_defaults]
    field_uT overrode for the scan after it ran so until it was refused: a recipe cut off
    before then is continued as begun (its entries store its text); run afresh it is
    refused. Continued, the field step overridden is warned of, as run afresh it is refused
    (unfixed: the recipe went on silently)."""
    recipe, out = tmp_path / "r.toml", tmp_path / "s.h5"
    text = RECIPE.replace("[scan_defaults]\n", f"[scan_defaults]\nfield_uT = {default_uT}\n")
    recipe.write_text(text.split('[[step]]\nkind = "subtract"')[0], encoding="utf-8")
    _use_rig(monkeypatch, None)
    assert main(["run", str(recipe), "--out", str(out), "--yes"]) == 2
    assert refused in capsys.readouterr().err
    with monkeypatch.context() as earlier:  # as an earlier release read it
        earlier.setattr("smm_daq.acquisition.recipe.fields_overridden", lambda *_: ())
        _use_rig(earlier, _rig(CUT))
        assert main(["run", str(recipe), "--out", str(out), "--yes"]) != 0
    assert {e.name: e.status for e in list_entries(out)} == {"rem": "finished", "inf": "aborted"}
    _use_rig(monkeypatch, None)
    assert main(["run", str(recipe), "--out", str(out), "--yes"]) == 2
    _use_rig(monkeypatch, _rig())
    capsys.readouterr()
    continued = main(["run", str(recipe), "--out", str(out), "--yes", "--continue"])
    err = capsys.readouterr().err
    assert continued == 0, err
    assert f"smm-daq: warning: {recipe}, {refused}" in err
    assert "continued as begun, the scan taken in the field of [scan_defaults]" in err
    assert {e.name: e.status for e in list_entries(out)} == {"rem": "finished", "inf": "finished"}
