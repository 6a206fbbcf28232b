"""What a fly plan or a subtraction asks beyond the rig or the file is refused before anything
connects: a recipe before its first step, `smm-daq scan --fly` before the rig is opened. The
session file is left byte for byte as it was."""

from __future__ import annotations

import shutil
import textwrap
import warnings

import numpy as np
import pytest

from smm_daq.acquisition.recipe import check_recipe, parse_recipe
from smm_daq.analysis.registration import RegistrationWarning
from smm_daq.cli.main import main
from smm_daq.errors import InputError
from smm_daq.instruments.profile import load_profile
from smm_daq.storage.nexus import list_entries

DEFAULTS = textwrap.dedent(
    """
    [scan_defaults]
    center_um = [12500.0, 12500.0]
    size_um = [80.0, 80.0]
    step_um = 10.0
    settle_tau = 1.0
    """
)
PLAIN_FIRST = '[[step]]\nkind = "scan"\nname = "r1"\n'


def _scan(name: str, **keys: object) -> str:
    lines = [f"{k} = {v}" for k, v in keys.items()]
    return "\n".join(['[[step]]', 'kind = "scan"', f'name = "{name}"', *lines]) + "\n"


def _subtract(in_field: str, remanent: str, name: str = "induced") -> str:
    return (f'[[step]]\nkind = "subtract"\nin_field = "{in_field}"\nremanent = "{remanent}"\n'
            f'name = "{name}"\nregister = false\n')


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> object:
    """A session file holding 'inf' (13 × 13 pixels) and 'small' (9 × 9), scanned once."""
    path = tmp_path_factory.mktemp("session") / "base.h5"
    for name, size in (("inf", "120,120"), ("small", "80,80")):
        code = main(["scan", "--center-um", "12500,12500", "--size-um", size, "--step-um",
                     "10", "--settle-tau", "1", "--name", name, "--out", str(path)])
        assert code == 0
    return path


@pytest.fixture
def copy(session, tmp_path):
    """A copy of the session file, with its bytes and entries as they were."""
    path = tmp_path / "s.h5"
    shutil.copyfile(session, path)
    return path, path.read_bytes(), [e.name for e in list_entries(path)]


@pytest.fixture
def no_rig(monkeypatch) -> list:
    """Fails any attempt to connect the rig (and records it, in case the error is caught)."""
    attempts: list = []

    def refuse(*args: object, **kw: object) -> None:
        attempts.append(args)
        raise AssertionError("the rig was connected")

    monkeypatch.setattr("smm_daq.instruments.rig.open_rig", refuse)
    return attempts


def _refused(capsys, no_rig: list, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert no_rig == []
    assert "Traceback" not in err
    return err


FLY_CASES = [
    ("fly_trigger = true", ["fly trigger", "does not say it is wired",
                            "expected [fly] trigger_wired = true"]),
    ("oversample = 64", ["fly oversample 64 at pixel_time_s 0.05 s needs 1280 samples/s",
                         "highest rate is 512 Hz"]),
    ("pixel_time_s = 4e-5", ["fly pixel_time_s 4e-05 s needs a lock-in time constant",
                             "shortest is 1e-05 s"]),
]


@pytest.mark.parametrize(("fly_key", "words"), FLY_CASES)
def test_a_fly_step_the_rig_cannot_fly_is_refused_before_the_first_step(
        tmp_path, capsys, no_rig, copy, fly_key, words):
    path, before, entries = copy
    recipe = tmp_path / "r.toml"
    recipe.write_text(DEFAULTS + PLAIN_FIRST + _scan("r2", fly="true") + fly_key + "\n")
    err = _refused(capsys, no_rig, ["run", str(recipe), "--out", str(path), "--yes"])
    assert f"{recipe}: step 2 (scan 'r2'): " in err
    for w in words:
        assert w in err
    assert "step 1/" not in err  # no step was started
    assert [e.name for e in list_entries(path)] == entries == ["inf", "small"]
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("steps", "words"),
    [
        (_scan("r2") + _subtract("inf", "r2"),  # in the file, and made by the recipe
         ["step 2 (subtract 'induced'): 'inf' is 13 × 13 pixels (ny × nx) but 'r2' is 9 × 9",
          "expected two scans on the same grid"]),
        (PLAIN_FIRST + _subtract("inf", "small"),  # both in the file
         ["step 2 (subtract 'induced'): 'inf' is 13 × 13 pixels (ny × nx) but 'small' is "
          "9 × 9"]),
        (_scan("a") + _scan("b", size_um="[120.0, 120.0]") + _subtract("b", "a"),  # both made
         ["step 3 (subtract 'induced'): 'b' is 13 × 13 pixels (ny × nx) but 'a' is 9 × 9"]),
        (_scan("a") + _scan("b", center_um="[12600.0, 12500.0]") + _subtract("b", "a"),
         ["step 3 (subtract 'induced'): the x axes of 'b' and 'a' differ by up to 100 µm"]),
        (_scan("a") + _scan("b", height_um="150.0") + _subtract("b", "a"),
         ["step 3 (subtract 'induced'): the height of 'b' (150 µm) and 'a' (100 µm) differ"]),
        (PLAIN_FIRST + _subtract("inf", "later") + _scan("later"),  # made only afterwards
         ["step 2 (subtract 'induced'): remanent 'later' is neither in", "earlier step"]),
        (PLAIN_FIRST + _subtract("inf", "induced"),  # the entry the step itself writes
         ["step 2 (subtract 'induced'): remanent 'induced' is neither in", "earlier step"]),
        (_scan("a") + _subtract("a", "a"),  # one entry as both
         ["step 2 (subtract 'induced'): the in-field and the remanent entries are both 'a'"]),
        (_scan("a") + _scan("b", field_uT="[0.0, 40.0, 0.0]") + _subtract("a", "b"),
         ["step 3 (subtract 'induced'): the in-field entry 'a' was scanned in zero field and "
          "the remanent entry 'b' in (0, 40, 0) µT; expected them the other way round"]),
        # one line each: subtracting needs 2 × 2 points (it failed after both scans had run)
        (_scan("a", size_um="[80.0, 0.0]") + _scan("b", size_um="[80.0, 0.0]")
         + _subtract("b", "a"),
         ["step 3 (subtract 'induced'): 'b' is a 9 × 1 grid; expected at least 2 × 2 points "
          "to subtract"]),
        # registered, 12 × 5 points: 44 overlap after a sub-pixel shift, fewer than the fit
        # needs (it failed after both scans were taken)
        (_scan("a", size_um="[110.0, 40.0]") + _scan("b", size_um="[110.0, 40.0]")
         + _subtract("b", "a").replace("register = false", "register = true"),
         ["step 3 (subtract 'induced'): 'b' is a 12 × 5 grid: a sub-pixel shift leaves 44 "
          "pixels overlapping; expected at least 60 to register the two scans (a larger grid, "
          "or register = false to subtract them as they lie)"]),
    ],
    ids=["file and recipe", "both in the file", "both made", "shifted", "heights",
         "made later", "its own entry", "one entry twice", "the wrong way round",
         "one line", "too few to register"],
)
def test_a_subtraction_of_two_grids_is_refused_before_the_first_step(
        tmp_path, capsys, no_rig, copy, steps, words):
    path, before, entries = copy
    recipe = tmp_path / "r.toml"
    recipe.write_text(DEFAULTS + steps)
    err = _refused(capsys, no_rig, ["run", str(recipe), "--out", str(path), "--yes"])
    for w in words:
        assert w in err
    assert [e.name for e in list_entries(path)] == entries
    assert path.read_bytes() == before


def test_a_subtraction_of_a_subtraction_is_checked_on_the_in_field_grid(tmp_path):
    out = tmp_path / "new.h5"
    # two induced maps may be subtracted (an induced map and a scan may not)
    up, down = _scan("b", field_uT="[0.0, 40.0, 0.0]"), _scan("b2", field_uT="[0.0, -40.0, 0.0]")
    chain = (DEFAULTS + _scan("a") + up + down + _subtract("b", "a", "d")
             + _subtract("b2", "a", "d2") + _subtract("d", "d2", "e"))
    checked = check_recipe(parse_recipe(chain, "chain.toml"), load_profile(), out,
                           can_prompt=False)
    assert [p.name for p in checked.plans if p is not None] == ["a", "b", "b2"]
    mixed = DEFAULTS + _scan("a") + up + _subtract("b", "a", "d") + _subtract("d", "a")
    with pytest.raises(InputError, match=r"step 4 \(subtract 'induced'\): 'd' is an induced "
                                         "map .* and 'a' is not"):
        check_recipe(parse_recipe(mixed, "mixed.toml"), load_profile(), out, can_prompt=False)
    off = (chain + _scan("c", size_um="[120.0, 120.0]", field_uT="[0.0, 40.0, 0.0]")
           + _scan("c2", size_um="[120.0, 120.0]") + _subtract("c", "c2", "g")
           + _subtract("e", "g", "f"))
    with pytest.raises(InputError, match=r"step 10 \(subtract 'f'\): 'e' is 9 × 9 pixels "
                                         r"\(ny × nx\) but 'g' is 13 × 13"):
        check_recipe(parse_recipe(off, "off.toml"), load_profile(), out, can_prompt=False)
    assert not out.exists()


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--fly-trigger"], ["--fly-trigger: fly trigger", "trigger_wired = true"]),
        (["--oversample", "64"], ["--oversample, --pixel-time-s: fly oversample 64",
                                  "highest rate is 512 Hz"]),
        (["--pixel-time-s", "4e-5"], ["--pixel-time-s: fly pixel_time_s 4e-05 s",
                                      "shortest is 1e-05 s"]),
        (["--pixel-time-s", "0.002", "--oversample", "1", "--step-um", "40"],
         ["--step-um, --pixel-time-s: fly speed 20 mm/s", "maximum velocity 10 mm/s"]),
        (["--center-um", "24890,12500"],  # the grid fits the travel, its run-up does not
         ["--center-um, --size-um: a fly line runs from", "beyond the stage x travel"]),
        (["--size-um", "7980,0", "--step-um", "20", "--pixel-time-s", "0.2", "--oversample",
          "32"], ["--size-um, --step-um, --pixel-time-s: a fly line of 400 pixels",
                  "the lock-in buffer's 16383 points"]),
    ],
    ids=["trigger", "oversample", "pixel time", "speed", "run-up", "buffer length"],
)
def test_a_fly_scan_the_rig_cannot_fly_is_refused_before_connecting(
        capsys, no_rig, copy, options, words):
    path, before, _ = copy
    err = _refused(capsys, no_rig, ["scan", "--center-um", "12500,12500", "--size-um",
                                    "200,100", "--step-um", "10", "--name", "k", "--out",
                                    str(path), "--fly", *options])
    for w in words:
        assert w in err
    assert path.read_bytes() == before



def test_the_smallest_grid_the_check_lets_register_does_register(monkeypatch):
    """A recipe registers without rotation (it has no key for one): three parameters, 60
    pixels. An 11 × 7 grid leaves 60 after a sub-pixel shift: the check passes it and the
    registration fits on those 60; 11 × 6 leaves 50 and is refused up front. (Counting a
    rotation's fourth parameter would refuse grids of 60 to 79 such pixels that register.)"""
    import test_registration_coverage as maps

    from smm_daq.analysis.subtract_inputs import require_registrable
    from smm_daq.analysis.subtraction import subtract_maps

    monkeypatch.setattr(maps, "SHAPE", (7, 11))
    in_field, remanent, _ = maps.scans(np.random.default_rng(3), 6, (0.0, 0.0, 0.0), 0.0,
                                       shift=(7e-6, -10e-6))
    require_registrable(in_field)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RegistrationWarning)  # few pixels: a poor shift
        assert subtract_maps(in_field, remanent).registration.pixels == 60
    with pytest.raises(InputError, match="leaves 50 pixels overlapping; expected at least 60"):
        require_registrable(in_field.with_bz(in_field.bz[:6], y=in_field.y[:6]))


def test_a_set_field_step_that_scan_defaults_would_override_is_refused(tmp_path, capsys,
                                                                        no_rig):
    """[scan_defaults] field_uT is every scan's own key: a set_field step before a scan that
    inherits it would ramp to a field that scan is not taken in (here a 'remanent' and an
    'in-field' scan both taken in zero field). Refused before anything connects, naming both
    steps; the scan giving its own field_uT, or the default agreeing, is taken."""
    header = DEFAULTS + "field_uT = [0.0, 0.0, 0.0]\n"
    set_40 = '[[step]]\nkind = "set_field"\nfield_uT = [0.0, 40.0, 0.0]\n'
    recipe = tmp_path / "r.toml"
    recipe.write_text(header + PLAIN_FIRST + set_40 + _scan("inf"))
    err = _refused(capsys, no_rig, ["run", str(recipe), "--out", str(tmp_path / "s.h5")])
    assert ("step 2 (set_field) sets (0, 40, 0) µT for the scans after it that give no "
            "field_uT, but step 3 (scan 'inf') would be taken in (0, 0, 0) µT, the field_uT "
            "of [scan_defaults]") in err
    profile = load_profile()
    for fine in (header + set_40 + _scan("inf", field_uT="[0.0, 40.0, 0.0]"),
                 DEFAULTS + "field_uT = [0, 40, 0]\n" + set_40 + _scan("inf"),
                 header + set_40 + '[[step]]\nkind = "zero_field"\n' + _scan("inf")):
        check_recipe(parse_recipe(fine), profile, tmp_path / "s.h5", can_prompt=False)


def test_a_zero_field_step_that_scan_defaults_would_override_is_refused(tmp_path, capsys,
                                                                         no_rig):
    """A zero_field step before a scan that inherits a field other than zero from
    [scan_defaults] is refused as a set_field step is: the scan would be an in-field map
    where zero field was written (a remanent map taken in field, named remanent). Not where
    the inherited field is zero, nor where the scan gives its own field_uT."""
    header = DEFAULTS + "field_uT = [0.0, 0.0, 40.0]\n"
    zero = '[[step]]\nkind = "zero_field"\n'
    recipe = tmp_path / "r.toml"
    recipe.write_text(header + zero + _scan("remanent"))
    err = _refused(capsys, no_rig, ["run", str(recipe), "--out", str(tmp_path / "s.h5")])
    assert ("step 1 (zero_field) sets zero field for the scans after it that give no "
            "field_uT, but step 2 (scan 'remanent') would be taken in (0, 0, 40) µT, the "
            "field_uT of [scan_defaults], which every scan step inherits; expected "
            "field_uT = [0, 0, 0] in the scan steps to be taken in zero field") in err
    assert not (tmp_path / "s.h5").exists()
    profile = load_profile()
    for fine in (header + zero + _scan("remanent", field_uT="[0, 0, 0]"),
                 DEFAULTS + "field_uT = [0, 0, 0]\n" + zero + _scan("remanent"),
                 header + zero + '[[step]]\nkind = "set_field"\nfield_uT = [0, 0, 40]\n'
                 + _scan("inf")):
        check_recipe(parse_recipe(fine), profile, tmp_path / "s.h5", can_prompt=False)
