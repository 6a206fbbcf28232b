"""Recipes: parsing, whole-recipe validation before any step, and running the steps."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from acq_fakes import fake_rig

from smm_daq.acquisition.recipe import (
    ScanStep,
    check_recipe,
    load_recipe,
    parse_recipe,
    run_recipe,
)
from smm_daq.acquisition.session import Session
from smm_daq.errors import InputError
from smm_daq.instruments.profile import load_profile
from smm_daq.storage.h5file import open_read
from smm_daq.storage.nexus import list_entries, read_map
from smm_daq.storage.scan_entry import read_scan_record

C = 12.5e-3

GOOD = textwrap.dedent(
    """
    [recipe]
    title = "test"
    [scan_defaults]
    center_um = [12500.0, 12500.0]
    size_um = [40.0, 30.0]
    step_um = 10.0
    [[step]]
    kind = "zero_field"
    [[step]]
    kind = "scan"
    name = "rem"
    [[step]]
    kind = "set_field"
    field_uT = [0.0, 40.0, 0.0]
    [[step]]
    kind = "wait"
    seconds = 120
    [[step]]
    kind = "prompt"
    message = "Look at the sample"
    [[step]]
    kind = "scan"
    name = "inf"
    [[step]]
    kind = "subtract"
    in_field = "inf"
    remanent = "rem"
    name = "induced"
    register = false
    """
)


def _field_dependent_rig():
    """Bz = a blob plus 0.01 × By applied: the in-field scan differs by a known constant."""
    holder = {}

    def bz(x, y):
        blob = 2e-6 * np.exp(-((x - C) ** 2 + (y - C) ** 2) / (20e-6) ** 2)
        return blob + 0.01 * holder["rig"].coils.setpoint[1]

    rig = fake_rig(bz)
    holder["rig"] = rig
    return rig


@pytest.mark.parametrize("name", ["remanent-and-induced.toml", "three-direction-series.toml"])
def test_shipped_recipes_are_valid_for_the_simulator(repo, tmp_path, name):
    recipe = load_recipe(repo / "configs" / "recipes" / name)
    checked = check_recipe(recipe, load_profile(), tmp_path / "new.h5", can_prompt=False)
    plans = [p for p in checked.plans if p is not None]
    assert plans and all(p.nx == p.ny == 111 for p in plans)


def test_the_fine_stage_recipe_fits_the_E727_and_the_coarse_ones_do_not(repo, tmp_path):
    fine = load_profile(repo / "configs" / "simulator-e727.toml")
    recipe = load_recipe(repo / "configs" / "recipes" / "fine-stage-remanent-and-induced.toml")
    checked = check_recipe(recipe, fine, tmp_path / "new.h5", can_prompt=False)
    assert all(p.nx == p.ny == 81 for p in checked.plans if p is not None)
    coarse = load_recipe(repo / "configs" / "recipes" / "remanent-and-induced.toml")
    with pytest.raises(InputError, match="step 2"):
        check_recipe(coarse, fine, tmp_path / "new.h5", can_prompt=False)


def test_seed_recipe_is_zero_field_then_40_uT_along_y_then_induced(repo, tmp_path):
    recipe = load_recipe(repo / "configs" / "recipes" / "remanent-and-induced.toml")
    checked = check_recipe(recipe, load_profile(), tmp_path / "new.h5", can_prompt=False)
    described = [checked.describe(i) for i in range(len(checked.steps))]
    assert described[0] == "zero field"
    assert checked.plans[1].field == (0.0, 0.0, 0.0)
    assert checked.plans[3].field == pytest.approx((0.0, 40e-6, 0.0))
    assert described[4].startswith("subtract 'in_field_y' − 'remanent'")


def test_recipe_runs_every_step_in_order(tmp_path):
    rig = _field_dependent_rig()
    path = tmp_path / "s.h5"
    recipe = parse_recipe(GOOD, "good.toml")
    asked, steps = [], []
    session = Session(path, rig)
    t0 = rig.clock.now()
    written = run_recipe(
        recipe, session, ask=asked.append, on_step=lambda i, text: steps.append(text)
    )
    assert written == ["rem", "inf", "induced"]
    assert [e.name for e in list_entries(path)] == ["rem", "inf", "induced"]
    assert asked == ["Look at the sample [Enter to continue, Ctrl-C to stop] "]
    assert steps[3] == "wait 120 s" and rig.clock.now() - t0 >= 120
    inf = read_map(path, "inf")
    np.testing.assert_allclose(inf.applied_field, [0.0, 40e-6, 0.0])  # from set_field
    induced = read_map(path, "induced")
    np.testing.assert_allclose(induced.bz, 0.01 * 40e-6, rtol=1e-9)
    assert induced.sources == ("inf", "rem")
    assert read_scan_record(path, "rem")["recipe"] == GOOD
    np.testing.assert_array_equal(rig.coils.setpoint, 0.0)


def test_yes_skips_prompts(tmp_path):
    asked = []
    run_recipe(
        parse_recipe(GOOD),
        Session(tmp_path / "s.h5", _field_dependent_rig()),
        yes=True,
        ask=asked.append,
    )
    assert asked == []


BAD_LAST_STEP = GOOD + '[[step]]\nkind = "scan"\nname = "far"\ncenter_um = [30000.0, 0.0]\n'


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (GOOD + '[[step]]\nkind = "python"\n', ["step 8", "'kind' is 'python'"]),
        (
            GOOD + '[[step]]\nkind = "wait"\nminutes = 3\n',
            ["step 8 (wait)", "unknown key 'minutes'"],
        ),
        (GOOD + '[[step]]\nkind = "wait"\n', ["step 8 (wait)", "'seconds' is missing"]),
        (GOOD + '[[step]]\nkind = "wait"\nseconds = -1\n', ["'seconds' is -1"]),
        (BAD_LAST_STEP, ["step 8 (scan 'far')", "plan x range", "stage travel"]),
        (
            GOOD + '[[step]]\nkind = "set_field"\nfield_uT = [0, 0, 150]\n',
            ["step 8 (set", "field_uT", "max_field 100 µT"],
        ),
        (
            GOOD + '[[step]]\nkind = "set_field"\nfield_uT = "1+1"\n',
            ["'field_uT' is '1+1'", "list of 3 numbers"],
        ),
        (GOOD + '[[step]]\nkind = "scan"\nname = "rem"\n', ["entry 'rem' already exists"]),
        (
            GOOD + '[[step]]\nkind = "subtract"\nin_field = "x"\nremanent = "rem"\nname = "d"\n',
            ["in_field 'x' is neither"],
        ),
        (GOOD.replace("step_um = 10.0", "step_um = 0.0"), ["'step_um' is 0.0"]),
        (GOOD.replace("step_um = 10.0", "step_um = 10.0\nheight_um = 0.0"),
         ["'height_um' is 0.0", "> 0 µm", "stand-off"]),
        (GOOD + "[[step]\n", ["not valid TOML"]),
        ("[recipe]\ntitle = 'empty'\n", ["no steps"]),
        ("[step]\nkind = 'zero_field'\n", ["'step' is one table ([step]); expected [[step]]"]),
        (GOOD + "[extra]\n", ["unknown key 'extra'"]),
        (GOOD.replace('name = "rem"', 'names = "rem"', 1), ["unknown key 'names'"]),
    ],
)
def test_bad_recipe_is_refused_before_any_step(tmp_path, text, words):
    rig = _field_dependent_rig()
    path = tmp_path / "s.h5"
    with pytest.raises(InputError) as err:
        run_recipe(parse_recipe(text, "bad.toml"), Session(path, rig), yes=True)
    message = str(err.value)
    assert message.startswith("bad.toml: ")
    for w in words:
        assert w in message
    assert not path.exists()
    assert rig.coils.history == [] and rig.lockin.reads == 0 and rig.stage.visits == []


def test_prompt_without_an_operator_is_refused_before_any_step(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.stdin", open("/dev/null"))  # noqa: SIM115 - closed by pytest
    rig = _field_dependent_rig()
    with pytest.raises(InputError, match=r"step 5 \(prompt\): needs an operator.*--yes"):
        run_recipe(parse_recipe(GOOD), Session(tmp_path / "s.h5", rig))
    assert rig.coils.history == []


def test_names_already_in_the_file_are_refused(tmp_path):
    path = tmp_path / "s.h5"
    run_recipe(parse_recipe(GOOD), Session(path, _field_dependent_rig()), yes=True)
    before = read_map(path, "rem").bz
    rig = _field_dependent_rig()
    with pytest.raises(InputError, match="entry 'rem' already exists"):
        run_recipe(parse_recipe(GOOD), Session(path, rig), yes=True)
    assert rig.lockin.reads == 0
    np.testing.assert_array_equal(read_map(path, "rem").bz, before)


def test_subtract_may_use_entries_already_in_the_file(tmp_path):
    path = tmp_path / "s.h5"
    run_recipe(parse_recipe(GOOD), Session(path, _field_dependent_rig()), yes=True)
    again = (
        '[[step]]\nkind = "subtract"\nin_field = "inf"\nremanent = "rem"\n'
        'name = "again"\nregister = false\n'
    )
    run_recipe(parse_recipe(again), Session(path, _field_dependent_rig()))
    np.testing.assert_allclose(read_map(path, "again").bz, 0.01 * 40e-6, rtol=1e-9)


def test_scan_keys_merge_defaults_and_step():
    recipe = parse_recipe(
        GOOD + '[[step]]\nkind = "scan"\nname = "x"\nstep_um = [5, 10]\n'
        'raster = "unidirectional"\nfield_uT = [1, 2, 3]\n'
    )
    step = recipe.steps[-1]
    assert isinstance(step, ScanStep)
    plan = step.plan((0.0, 0.0, 0.0), load_profile())
    assert (plan.step_x, plan.step_y) == pytest.approx((5e-6, 10e-6))
    assert plan.raster == "unidirectional"
    assert plan.field == pytest.approx((1e-6, 2e-6, 3e-6))
    assert plan.x[-1] - plan.x[0] == pytest.approx(40e-6)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(InputError, match="recipe file not found"):
        load_recipe(tmp_path / "none.toml")


def test_scan_entries_store_the_recipe_text(tmp_path):
    """And, the recipe given as text, no file: its entries recorded a recipe file named
    'recipe', which no one gave."""
    path = tmp_path / "s.h5"
    run_recipe(parse_recipe(GOOD), Session(path, _field_dependent_rig()), yes=True)
    with open_read(path) as f:
        assert f["inf/recipe"].asstr()[()] == GOOD
        assert "path" not in f["inf/recipe"].attrs
        parameters = next(f[e]["process/parameters"] for e in f if "process" in f[e])
        assert "recipe" in parameters and "recipe_file" not in parameters


def test_a_recipe_given_as_text_is_named_so_and_one_from_a_file_by_its_file():
    """A recipe given as text was named 'recipe' in its messages, as a file of that name
    would be."""
    bad = GOOD.replace('kind = "wait"', 'kind = "nap"')
    with pytest.raises(InputError, match=r"^the recipe text given: step 4"):
        parse_recipe(bad)
    with pytest.raises(InputError, match=r"^lab/r\.toml: step 4"):
        parse_recipe(bad, "lab/r.toml")


def test_a_wait_after_a_scan_that_ended_the_field_set_before_it_is_said_to_wait_in_zero_field():
    """Every scan ends with the field ramped down, so a wait after one waits in zero field,
    whatever set_field step came before the scan: said (`run` warns of it), with how to wait
    in that field; a wait the field steps leave in a field, or one meant at zero, is not."""
    set_40 = '[[step]]\nkind = "set_field"\nfield_uT = [0.0, 40.0, 0.0]\n'
    scan, wait = '[[step]]\nkind = "scan"\nname = "b"\n', '[[step]]\nkind = "wait"\nseconds = 60\n'
    after_scan = parse_recipe(GOOD + scan + wait)
    assert after_scan.wait_note(8) == (
        "waits in zero field, not in the (0, 40, 0) µT that step 3 set: step 8, a scan, ended "
        "with the field ramped down, as every scan does; to wait in that field, set it again "
        "in a set_field step just before the wait (a zero_field step there says that zero "
        "field is meant; a scan after it that takes its field from [scan_defaults] then needs "
        "a field_uT of its own)")
    assert parse_recipe(GOOD).wait_note(3) == ""  # set_field, then the wait: in the field
    assert parse_recipe(GOOD + scan + set_40 + wait).wait_note(9) == ""
    assert parse_recipe(GOOD + scan + '[[step]]\nkind = "zero_field"\n' + wait).wait_note(9) == ""
    assert [after_scan.wait_note(i) == "" for i in range(8)] == [True] * 8


def test_the_wait_note_s_advice_followed_gives_a_recipe_that_is_not_refused():
    """The note's way to say a wait in zero field is meant, a zero_field step before it, is
    refused where a later scan inherits a field from [scan_defaults] (the zero_field would be
    overridden): the note says that scan then needs a field of its own, and with it the
    recipe stands."""
    head = ('[recipe]\nprofile = "p.toml"\n[scan_defaults]\ncenter_um = [0, 0]\n'
            'size_um = [4, 4]\nstep_um = 2\nfield_uT = [0, 40, 0]\n'
            '[[step]]\nkind = "set_field"\nfield_uT = [0, 40, 0]\n'
            '[[step]]\nkind = "scan"\nname = "a"\n')
    wait = '[[step]]\nkind = "wait"\nseconds = 60\n'
    noted = parse_recipe(head + wait)
    assert "then needs a field_uT of its own" in noted.wait_note(2)
    zero = '[[step]]\nkind = "zero_field"\n'
    later = '[[step]]\nkind = "scan"\nname = "b"\n'
    assert parse_recipe(head + zero + wait + later).overridden  # inherits 40 µT: refused
    followed = parse_recipe(head + zero + wait + later + "field_uT = [0, 40, 0]\n")
    assert followed.overridden == () and followed.wait_note(3) == ""
