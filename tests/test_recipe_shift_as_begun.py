"""`run --continue` of a recipe begun before a shift not significantly different from zero was
left out by default: its subtractions written then applied such a shift (no
`registration/shift_found`), so the ones still to run apply it too, and say why; they took the
new default, the recipe's subtractions made two ways without a word. Applied so, and not forced
by the user, a shift not determined is left out as by default, not refused: refused, every
later `--continue` stopped at the same step and the recipe could never be finished."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from test_registration_coverage import _the_13th_map_of_seed_1_at_1_5, scans

from smm_daq.acquisition.recipe import check_recipe, parse_recipe, run_recipe, step_note
from smm_daq.acquisition.session import Session
from smm_daq.analysis.induced_entry import subtract_entries
from smm_daq.analysis.registration import Registration, RegistrationWarning, ShiftNotDetermined
from smm_daq.analysis.subtraction import SubtractionResult, insignificant_shift_applied
from smm_daq.instruments.profile import load_profile
from smm_daq.storage.nexus import write_map_entry
from smm_daq.storage.products import Quantity

RECIPE = ('[recipe]\ntitle = "two subtractions"\n'
          '[[step]]\nkind = "subtract"\nin_field = "in_field"\nremanent = "remanent"\n'
          'name = "d1"\n'
          '[[step]]\nkind = "subtract"\nin_field = "in_field"\nremanent = "remanent"\n'
          'name = "d2"\n')


def _cut_after_first(path, *, earlier_release: bool) -> None:
    """The two scans and the first subtraction, as an earlier release (every shift applied,
    no shift_found) or as today's default wrote it."""
    # the same four grains, no true shift: a shift found not significantly different from zero
    in_field, remanent, _ = scans(np.random.default_rng(1), 4, (1.0, 0.0, 0.0), 0.5,
                                  shift=(0.0, 0.0))
    for m in (remanent, in_field):
        write_map_entry(path, m, kind="scan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RegistrationWarning)  # its concerns: not this test's
        subtract_entries(path, "in_field", "remanent", "d1",
                         apply_insignificant=earlier_release)
    if earlier_release:
        with h5py.File(path, "r+") as f:
            del f["d1/registration/shift_found"]
            del f["d1/process/parameters/apply_insignificant_shift"]


def _continued(path, text: str = RECIPE) -> tuple[list[dict], str]:
    recipe = parse_recipe(text, "two.toml")
    calls: list[dict] = []
    session = SimpleNamespace(profile=load_profile(), path=path, rig=SimpleNamespace(stage=None),
                              subtract=lambda *a, **kw: calls.append(kw))
    said: list[str] = []
    run_recipe(recipe, session, yes=True, continuing=True,
               on_step=lambda i, text: said.append(text))
    return calls, "\n".join(said)


def _checked_continuing(path):
    """The recipe checked as `run --continue` checks it against the file at `path`."""
    return check_recipe(parse_recipe(RECIPE, "two.toml"), load_profile(), path,
                        can_prompt=False, continuing=True)


def test_a_continued_recipe_applies_an_insignificant_shift_as_it_was_begun(tmp_path) -> None:
    path = tmp_path / "s.h5"
    _cut_after_first(path, earlier_release=True)
    calls, said = _continued(path)
    # as 'd1' was, not forced as by the user
    assert len(calls) == 1 and calls[0]["shift_as_begun"] == ("d1",), calls
    assert calls[0]["apply_insignificant"] is False, calls
    assert "applies a shift not significantly different from zero, as this recipe's 'd1'" in said
    assert "apply_insignificant_shift = true" in said
    # its step's own key: forced by the user
    calls, said = _continued(path, RECIPE + "apply_insignificant_shift = true\n")
    assert len(calls) == 1 and calls[0]["apply_insignificant"] is True, calls
    assert calls[0]["shift_as_begun"] == (), calls


def test_a_recipe_continued_under_today_s_rule_keeps_it(tmp_path) -> None:
    path = tmp_path / "s.h5"
    _cut_after_first(path, earlier_release=False)
    calls, said = _continued(path)
    assert len(calls) == 1 and calls[0]["apply_insignificant"] is False, calls
    assert calls[0]["shift_as_begun"] == (), calls
    assert "applies a shift" not in said
    checked = _checked_continuing(path)
    assert checked.shift_as_begun == () and step_note(checked, 1, path) == ""


def _begun_before_a_shift_not_determined(path) -> None:
    """Two scans whose registration determines no shift (the fit reaches its bound), and the
    recipe's first subtraction of them as the earlier release wrote it: a shift not
    significantly different from zero applied, no shift_found."""
    in_field, remanent = _the_13th_map_of_seed_1_at_1_5()
    for m in (remanent, in_field):
        write_map_entry(path, m, kind="scan")
    d1 = in_field.with_bz(in_field.bz - remanent.bz, name="d1", sources=("in_field", "remanent"))
    earlier = {"registered": np.uint8(1), "shift": Quantity(np.array([1e-6, -0.5e-6]), "m"),
               "shift_errors": Quantity(np.array([2e-6, 2e-6]), "m")}
    write_map_entry(path, d1, kind="induced", processes={"registration": earlier})


def test_a_continued_recipe_leaves_out_a_shift_not_determined_and_finishes(tmp_path) -> None:
    """'d2' applies a shift as 'd1' applied its own, and its registration determines none:
    none applied, as by default, said with a word on 'd1' and recorded (as none applied, and
    where the recipe's way is given a subtraction not registered); the recipe finished,
    where it was refused as if the user had forced the shift, at every `--continue`."""
    path = tmp_path / "s.h5"
    _begun_before_a_shift_not_determined(path)
    said: list[Warning] = []
    session = Session(path, SimpleNamespace(profile=load_profile(), stage=None))
    written = run_recipe(parse_recipe(RECIPE, "two.toml"), session, yes=True, continuing=True,
                         on_warning=said.append)
    assert written == ["d2"]
    assert [type(w) for w in said] == [RegistrationWarning], said
    text = str(said[0])
    assert "determined no shift" in text and "so no shift is applied" in text, text
    word = "this recipe's earlier subtractions ('d1') applied their shifts"
    assert word in text, text
    with h5py.File(path) as f:
        reg = f["d2/registration"]
        np.testing.assert_array_equal(reg["shift"][()], [0.0, 0.0])
        assert word in reg["warnings"][()].decode()
        # what was done: no shift applied (unfixed: recorded as an insignificant one applied)
        assert f["d2/process/parameters/apply_insignificant_shift"][()] == 0
    with warnings.catch_warnings():  # not registered, the recipe's way given all the same
        warnings.simplefilter("ignore", RegistrationWarning)
        session.subtract("in_field", "remanent", "d3", register=False, shift_as_begun=("d1",))
    with h5py.File(path) as f:
        assert f["d3/process/parameters/apply_insignificant_shift"][()] == 0


@pytest.mark.parametrize(("found", "sd", "applied", "undetermined", "recorded"), [
    ((1e-7, 0.0), (1e-6, 1e-6), (1e-7, 0.0), "", True),  # as begun (or forced)
    ((1e-7, 0.0), (1e-6, 1e-6), (0.0, 0.0), "", False),  # by default: left out
    ((5e-6, 0.0), (1e-6, 1e-6), (5e-6, 0.0), "", False),  # significant: any rule applies it
    ((1e-7, 0.0), (1e-6, 1e-6), (0.0, 0.0), "the fit reached its bound", False),
    (None, None, (0.0, 0.0), "", False),  # not registered
])
def test_the_insignificant_shift_recorded_is_the_one_applied(found, sd, applied, undetermined,
                                                              recorded) -> None:
    """What a continued recipe's subtraction records as `apply_insignificant_shift`: only a
    shift determined and not significantly different from zero, applied."""
    reg = None if found is None else Registration(shift=found, shift_sd=sd,
                                                  undetermined=undetermined)
    res = SubtractionResult(map=None, shift=applied, shift_sd=(0.0, 0.0),
                            registered=reg is not None, registration=reg)
    assert insignificant_shift_applied(res) is recorded


def test_a_step_forcing_a_shift_not_determined_says_how_the_recipe_goes_on(tmp_path) -> None:
    """The step's own `apply_insignificant_shift = true` and no shift determined: refused,
    and at every `--continue` alike, since the key cannot be edited (the scans store the
    recipe's text); the refusal names the step and the subtraction to write by hand."""
    path = tmp_path / "s.h5"
    in_field, remanent = _the_13th_map_of_seed_1_at_1_5()
    for m in (remanent, in_field):
        write_map_entry(path, m, kind="scan")
    session = Session(path, SimpleNamespace(profile=load_profile(), stage=None))
    forced = parse_recipe(RECIPE + "apply_insignificant_shift = true\n", "two.toml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RegistrationWarning)
        with pytest.raises(ShiftNotDetermined) as refused:
            run_recipe(forced, session, yes=True, continuing=True)
    said = str(refused.value)
    assert "step 2 (subtract 'd2') forces its shift" in said, said
    assert (f"`smm-daq subtract {path} --in-field in_field --remanent remanent --name d2`"
            in said), said
    with h5py.File(path) as f:
        assert "d2" not in f
    with warnings.catch_warnings():  # the way on it names: written by hand, then continued
        warnings.simplefilter("ignore", RegistrationWarning)
        subtract_entries(path, "in_field", "remanent", "d2")
        assert run_recipe(forced, session, yes=True, continuing=True) == []
