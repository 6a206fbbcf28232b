"""Two scans taken in one field, zero included, hold no induced response between them: their
difference is refused as an induced map, by `subtract`, the window and a recipe before its
first step (a recipe that sets the field before its remanent scan, or never sets one, would
otherwise scan for hours, then store noise or a change of remanence as the induced map, and a
susceptibility could be made from it). Two induced maps in one field are still subtracted."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import pytest

from smm_daq.cli.main import main

GRID = ["--center-um", "12500,12500", "--size-um", "100,100", "--step-um", "50"]

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "simulator.toml"
SCANS = {  # profile (its coils.field_tolerance_nT) -> the scans taken with it: name -> µT
    50.0: {"a": "0,40,0", "b": "0,40,0", "z": "0,0,0", "z2": "0,0,0", "nt": "0,0,0.001",
           "a2": "0,40.001,0", "far": "0,40.2,0"},
    500.0: {"weak": "0,0,0.3", "z": "0,0,0", "b": "0,40,0"},
    20.0: {"z": "0,0,0", "weak": "0,0,0.045", "b": "0,40,0"},
}

Scanned = Callable[..., None]


def _with_tolerance(path: Path, tolerance_nT: float) -> Path:
    """configs/simulator.toml, its 50 nT field tolerance set to `tolerance_nT`, at `path`."""
    text = CONFIG.read_text(encoding="utf-8")
    assert "field_tolerance_nT = 50.0" in text
    path.write_text(text.replace("field_tolerance_nT = 50.0",
                                 f"field_tolerance_nT = {tolerance_nT}"), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> Scanned:
    """`scanned(out, tolerance_nT, *names)`: `out` holds the scans `names` of SCANS, taken
    with the profile of that tolerance, as `smm-daq scan` wrote them. Each profile's scans
    are taken once (a scan costs a second, most of it connecting the rig), into a file that
    each test copies, the others' entries deleted: a test changes only its copy."""
    banks: dict[float, Path] = {}

    def take(out: Path, tolerance_nT: float, *names: str) -> None:
        if tolerance_nT not in banks:
            folder = tmp_path_factory.mktemp(f"scans_{tolerance_nT:g}nT")
            profile = _with_tolerance(folder / "profile.toml", tolerance_nT)
            bank = folder / "s.h5"
            for name, field in SCANS[tolerance_nT].items():
                assert main(["scan", *GRID, "--profile", str(profile), "--field-uT", field,
                             "--name", name, "--out", str(bank)]) == 0
            banks[tolerance_nT] = bank
        shutil.copy(banks[tolerance_nT], out)
        with h5py.File(out, "a") as f:
            for other in set(SCANS[tolerance_nT]) - set(names):
                del f[other]

    return take


RECIPE = """[scan_defaults]
center_um = [12500.0, 12500.0]
size_um = [100.0, 100.0]
step_um = 50.0

[[step]]
kind = "set_field"
field_uT = [0.0, 40.0, 0.0]

[[step]]
kind = "scan"
name = "remanent"

[[step]]
kind = "scan"
name = "in_field_y"

[[step]]
kind = "subtract"
in_field = "in_field_y"
remanent = "remanent"
name = "induced_y"
register = false
"""


def test_a_recipe_scanning_its_remanent_map_in_the_field_is_refused_before_it_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE, encoding="utf-8")
    out = tmp_path / "s.h5"
    code = main(["run", str(recipe), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "step 4 (subtract 'induced_y')" in err
    assert "'in_field_y' and the remanent entry 'remanent' were both scanned in (0, 40, 0)" in err
    assert "zero_field step before its scan" in err
    assert not out.exists()  # refused before the rig was connected


def _entries(path: Path) -> list[str]:
    with h5py.File(path, "r") as f:
        return sorted(f)


def test_subtract_refuses_two_scans_in_one_field_and_takes_the_rest(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], scanned: Scanned) -> None:
    out = tmp_path / "s.h5"
    scanned(out, 50.0, "a", "b", "z", "z2")  # (0, 40, 0) µT twice, zero field twice
    capsys.readouterr()
    before = _entries(out)

    code = main(["subtract", str(out), "--in-field", "a", "--remanent", "b", "--name", "ab",
                 "--no-register"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "'a' and the remanent entry 'b' were both scanned in (0, 40, 0) µT" in err
    assert "noise --repeat" in err and "Traceback" not in err
    assert _entries(out) == before  # nothing written

    code = main(["subtract", str(out), "--in-field", "z", "--remanent", "z2", "--name", "zz",
                 "--no-register"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "'z' and the remanent entry 'z2' were both scanned in zero field" in err
    assert "not an induced response" in err and "noise --repeat" in err
    assert "Traceback" not in err
    assert _entries(out) == before  # nothing written

    for in_field, remanent, name in (("a", "z", "ia"), ("b", "z", "ib"),  # field, zero field
                                     ("ib", "ia", "change")):  # two induced maps, one field
        code = main(["subtract", str(out), "--in-field", in_field, "--remanent", remanent,
                     "--name", name, "--no-register"])
        assert code == 0, capsys.readouterr().err


@pytest.mark.parametrize(("in_field", "said"), [
    ("", "set_field step before its scan"),
    ("\nfield_uT = [0.0, 0.02, 0.0]", "(0, 0.02, 0) µT and (0, 0, 0) µT")],
    ids=["never set", "within the tolerance of zero"])
def test_a_recipe_whose_in_field_scan_is_in_zero_field_is_refused_before_it_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], in_field: str, said: str) -> None:
    """A recipe that never sets a field, or sets one the rig cannot tell from zero (0.02 µT
    at a tolerance of 50 nT), for its in-field scan: its subtraction is refused, saying
    why, before the rig is connected."""
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE.replace("field_uT = [0.0, 40.0, 0.0]", "field_uT = [0.0, 0.0, 0.0]")
                      .replace('name = "in_field_y"', f'name = "in_field_y"{in_field}'),
                      encoding="utf-8")
    out = tmp_path / "s.h5"
    code = main(["run", str(recipe), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "step 4 (subtract 'induced_y')" in err
    assert "'in_field_y' and the remanent entry 'remanent' were both scanned in zero field" in err
    assert said in err
    assert not out.exists()  # refused before the rig was connected


def test_fields_the_rig_cannot_tell_apart_are_one_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], scanned: Scanned) -> None:
    """The rig sets a field within coils.field_tolerance_nT (50 nT here) of the one asked for:
    an in-field scan at 1 nT is a scan in zero field, and 40 µT and 40.001 µT are one field."""
    out = tmp_path / "s.h5"
    scanned(out, 50.0, "z", "nt", "a", "a2", "far")  # 0, 1 nT, 40, 40.001 and 40.2 µT
    capsys.readouterr()
    before = _entries(out)
    for in_field, remanent in (("nt", "z"), ("z", "nt")):
        code = main(["subtract", str(out), "--in-field", in_field, "--remanent", remanent,
                     "--name", "i", "--no-register"])
        err = capsys.readouterr().err
        assert code == 2, err
        assert (f"'{in_field}' and the remanent entry '{remanent}' were both scanned in zero "
                "field") in err
        assert "(0, 0, 0.001) µT" in err and "(0, 0, 0) µT" in err
        assert "50 nT each: coils.field_tolerance_nT" in err and "Traceback" not in err
    code = main(["subtract", str(out), "--in-field", "a2", "--remanent", "a", "--name", "i",
                 "--no-register"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "'a2' was scanned in (0, 40.001, 0) µT and the remanent entry 'a' in (0, 40, 0) µT" \
        in err
    assert "they differ by 1 nT, no more than their field tolerances together" in err
    assert "expected the in-field one in a field more than 100 nT from the remanent one's" in err
    assert _entries(out) == before  # nothing written
    assert main(["subtract", str(out), "--in-field", "far", "--remanent", "a", "--name", "i",
                 "--no-register"]) == 0, capsys.readouterr().err  # 200 nT apart: two fields


def test_the_tolerance_is_that_of_the_profile_each_scan_was_taken_with(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], scanned: Scanned) -> None:
    """A rig whose field is set within 500 nT takes a 0.3 µT scan in zero field: refused as
    the other way round when given as the remanent map, and as zero field beside zero."""
    out = tmp_path / "s.h5"
    scanned(out, 500.0, "weak", "z", "b")  # 0.3 µT, zero field, 40 µT
    capsys.readouterr()
    code = main(["subtract", str(out), "--in-field", "weak", "--remanent", "z", "--name", "i",
                 "--no-register"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "were both scanned in zero field ((0, 0, 0.3) µT and (0, 0, 0) µT" in err
    assert "500 nT each" in err
    code = main(["subtract", str(out), "--in-field", "z", "--remanent", "weak", "--name", "i",
                 "--no-register"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "were both scanned in zero field" in err
    assert main(["subtract", str(out), "--in-field", "b", "--remanent", "weak", "--name", "i",
                 "--no-register"]) == 0, capsys.readouterr().err


def test_a_map_made_from_a_scan_keeps_the_scans_field_tolerance(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], scanned: Scanned) -> None:
    """Crops of scans a 500 nT rig took at 0.3 µT and at 0 keep the scans' fields, and so
    their tolerance: refused as both in zero field, as the scans are (the 50 nT default had
    the crops 300 nT apart, two fields, and stored their difference as an induced map)."""
    out = tmp_path / "s.h5"
    scanned(out, 500.0, "weak", "z")  # 0.3 µT, zero field
    for name in ("weak", "z"):
        assert main(["crop", str(out), "--entry", name, "--name", f"c_{name}",
                     "--x-um", "12450,12550", "--y-um", "12450,12550"]) == 0
    capsys.readouterr()
    before = _entries(out)
    code = main(["subtract", str(out), "--in-field", "c_weak", "--remanent", "c_z", "--name",
                 "i", "--no-register"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "'c_weak' and the remanent entry 'c_z' were both scanned in zero field" in err
    assert "500 nT each" in err
    assert _entries(out) == before


def test_a_recipes_induced_map_keeps_its_scans_field_tolerance(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], scanned: Scanned) -> None:
    """A rig that sets the field within 20 nT takes 'weak' in 45 nT, a field: the induced map
    made from it keeps the scans' 20 nT, in a recipe as after `subtract`, so the recipe takes
    the subtraction of another induced map from it that `subtract` makes (the 50 nT default
    had it in zero field, the pair the wrong way round)."""
    from smm_daq.acquisition.recipe import check_recipe, parse_recipe
    from smm_daq.instruments.profile import load_profile

    profile = _with_tolerance(tmp_path / "fine.toml", 20.0)
    fields = SCANS[20.0]
    pairs = {"i_weak": ("weak", "z"), "i_b": ("b", "z"), "d": ("i_weak", "i_b")}
    steps = "".join(f'[[step]]\nkind = "set_field"\nfield_uT = [{field}]\n\n'
                    f'[[step]]\nkind = "scan"\nname = "{name}"\n\n'
                    for name, field in fields.items())
    steps += "".join(f'[[step]]\nkind = "subtract"\nin_field = "{a}"\nremanent = "{b}"\n'
                     f'name = "{name}"\nregister = false\n\n'
                     for name, (a, b) in pairs.items())
    text = RECIPE.split("[[step]]")[0] + steps
    checked = check_recipe(parse_recipe(text, "r.toml"), load_profile(profile),
                           tmp_path / "r.h5", can_prompt=False)
    assert [p.name for p in checked.plans if p is not None] == list(fields)
    out = tmp_path / "s.h5"
    scanned(out, 20.0, *fields)
    for name, (a, b) in pairs.items():
        assert main(["subtract", str(out), "--in-field", a, "--remanent", b, "--name", name,
                     "--no-register"]) == 0, capsys.readouterr().err


def test_a_recipe_scan_whose_profile_gives_no_tolerance_leaves_its_induced_map_the_files(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], scanned: Scanned) -> None:
    """A recipe's profile without coils.field_tolerance_nT (the 50 nT default applies) stores
    none with its scan, so the induced map made from it and from a scan of a 20 nT rig keeps
    20 nT, as `subtract` finds it: the recipe takes the subtraction of another induced map
    from it that `subtract` makes (the recipe had the default as read, 50 nT, and its 45 nT
    in zero field)."""
    from smm_daq.acquisition.recipe import check_recipe, parse_recipe
    from smm_daq.instruments.profile import load_profile

    plain = tmp_path / "plain.toml"
    plain.write_text(CONFIG.read_text(encoding="utf-8").replace("field_tolerance_nT = 50.0", ""),
                     encoding="utf-8")
    out = tmp_path / "s.h5"
    scanned(out, 20.0, "weak", "b")  # 45 nT and 40 µT on the 20 nT rig
    pairs = {"i_weak": ("weak", "neg"), "i_b": ("b", "neg"), "d": ("i_weak", "i_b")}
    steps = ('[[step]]\nkind = "set_field"\nfield_uT = [0.0, 0.0, -40.0]\n\n'
             '[[step]]\nkind = "scan"\nname = "neg"\n\n')
    steps += "".join(f'[[step]]\nkind = "subtract"\nin_field = "{a}"\nremanent = "{b}"\n'
                     f'name = "{name}"\nregister = false\n\n'
                     for name, (a, b) in pairs.items())
    checked = check_recipe(parse_recipe(RECIPE.split("[[step]]")[0] + steps, "r.toml"),
                           load_profile(plain), out, can_prompt=False)
    assert [p.name for p in checked.plans if p is not None] == ["neg"]
    assert main(["scan", *GRID, "--profile", str(plain), "--field-uT", "0,0,-40", "--name",
                 "neg", "--out", str(out)]) == 0
    for name, (a, b) in pairs.items():
        assert main(["subtract", str(out), "--in-field", a, "--remanent", b, "--name", name,
                     "--no-register"]) == 0, capsys.readouterr().err


def test_a_recipe_continued_with_another_profile_keeps_its_scans_field_tolerance(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A recipe's scans taken on a 20 nT rig, its subtraction not yet made, continued with a
    profile of the 50 nT default: the scans in the file keep the 20 nT their profile stored,
    as the subtraction the run makes finds them, so 45 nT is a field (it was refused as zero
    field beside zero, a subtraction the run would make)."""
    from smm_daq.acquisition.recipe import check_recipe, parse_recipe
    from smm_daq.instruments.profile import load_profile

    text = (Path(__file__).resolve().parents[1] / "configs" / "simulator.toml").read_text(
        encoding="utf-8")
    fine, plain = tmp_path / "fine.toml", tmp_path / "plain.toml"
    fine.write_text(text.replace("field_tolerance_nT = 50.0", "field_tolerance_nT = 20.0"),
                    encoding="utf-8")
    plain.write_text(text, encoding="utf-8")
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE.split("[[step]]")[0]
                      + '[[step]]\nkind = "set_field"\nfield_uT = [0.0, 0.0, 0.045]\n\n'
                        '[[step]]\nkind = "scan"\nname = "weak"\n\n'
                        '[[step]]\nkind = "zero_field"\n\n'
                        '[[step]]\nkind = "scan"\nname = "z"\n\n'
                        '[[step]]\nkind = "subtract"\nin_field = "weak"\nremanent = "z"\n'
                        'name = "i"\nregister = false\n', encoding="utf-8")
    out = tmp_path / "s.h5"
    assert main(["run", str(recipe), "--out", str(out), "--profile", str(fine)]) == 0, \
        capsys.readouterr().err
    with h5py.File(out, "a") as f:  # cut off before its subtraction
        del f["i"]
    checked = check_recipe(parse_recipe(recipe.read_text(encoding="utf-8"), str(recipe)),
                           load_profile(plain), out, can_prompt=False, continuing=True)
    assert checked.states[-1] == "new"
    assert main(["subtract", str(out), "--in-field", "weak", "--remanent", "z", "--name", "i",
                 "--no-register"]) == 0, capsys.readouterr().err


def test_a_stored_tolerance_beyond_the_profiles_bounds_gives_the_default_and_says_why(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], scanned: Scanned) -> None:
    """A stored profile's coils.field_tolerance_nT is held to the loader's bounds: 1e300 nT (a
    damaged or hand-edited copy) is set aside for the 50 nT default, and the refusal says so
    (it had every field "within 1e+300 nT" of zero, so 40 µT counted as zero field)."""
    out = tmp_path / "s.h5"
    scanned(out, 50.0, "z", "nt", "b")  # zero field, 1 nT, 40 µT
    with h5py.File(out, "a") as f:
        for name in ("z", "nt", "b"):
            profile = f[f"{name}/profile"][()].decode()
            del f[f"{name}/profile"]
            f[f"{name}/profile"] = profile.replace("field_tolerance_nT = 50.0",
                                                   "field_tolerance_nT = 1e300")
    capsys.readouterr()
    code = main(["subtract", str(out), "--in-field", "nt", "--remanent", "z", "--name", "i",
                 "--no-register"])
    err = capsys.readouterr().err
    assert code == 2 and "were both scanned in zero field" in err, err
    assert ("50 nT each: the profile's default, in place of the coils.field_tolerance_nT of "
            "the profile stored with 'nt', 1e+300, not a number in (0, 100000] nT as a profile "
            "must give; the profile's default, in place of the coils.field_tolerance_nT of the "
            "profile stored with 'z', 1e+300") in err
    assert "1e+300 nT" not in err
    assert main(["subtract", str(out), "--in-field", "b", "--remanent", "z", "--name", "i",
                 "--no-register"]) == 0, capsys.readouterr().err  # 40 µT is a field


def test_a_maps_own_tolerance_set_aside_for_its_sources_is_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], scanned: Scanned) -> None:
    """A map storing a profile whose tolerance is beyond the bounds (1e300 nT), made from a
    scan whose profile gives a valid one: that one is used, and the refusal names the one
    set aside too (it named the source's alone, the map's own tolerance unmentioned)."""
    out = tmp_path / "s.h5"
    scanned(out, 50.0, "z", "nt")  # zero field, 1 nT
    for name in ("z", "nt"):
        assert main(["crop", str(out), "--entry", name, "--name", f"c_{name}",
                     "--x-um", "12450,12550", "--y-um", "12450,12550"]) == 0
    with h5py.File(out, "a") as f:  # a copy of the scan's profile, damaged, kept with the crop
        f["c_nt/profile"] = f["nt/profile"][()].decode().replace(
            "field_tolerance_nT = 50.0", "field_tolerance_nT = 1e300")
    capsys.readouterr()
    code = main(["subtract", str(out), "--in-field", "c_nt", "--remanent", "c_z", "--name", "i",
                 "--no-register"])
    err = capsys.readouterr().err
    assert code == 2 and "were both scanned in zero field" in err, err
    assert ("50 nT each: coils.field_tolerance_nT of the profile stored with 'nt', which 'c_nt' "
            "was made from, in place of the coils.field_tolerance_nT of the profile stored with "
            "'c_nt', 1e+300, not a number in (0, 100000] nT as a profile must give; "
            "coils.field_tolerance_nT of the profile stored with 'z', which 'c_z' was made "
            "from)") in " ".join(err.split()), err


def test_an_induced_map_in_a_recipe_names_its_sources_tolerance_set_aside_too() -> None:
    """In a recipe, as `subtract` finds it in the file: the induced map of a scan whose
    stored tolerance was set aside keeps the other scan's, and says which it stands in for."""
    from smm_daq.analysis.subtract_inputs import (
        FieldTolerance,
        default_tolerance,
        inherited_tolerance,
    )

    why = "of the profile stored with 'z', 1e+300, not a number in (0, 100000] nT"
    b = FieldTolerance(20e-9, "b", "the profile stored with 'b'")
    for pair in ((b, default_tolerance("z", why)), (default_tolerance("z", why), b)):
        kept = inherited_tolerance("i", *pair)
        assert kept.value == pytest.approx(20e-9) and kept.profile == b.profile
        assert kept.words == ("coils.field_tolerance_nT of the profile stored with 'b', in "
                              f"place of the coils.field_tolerance_nT {why}")
