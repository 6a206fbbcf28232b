"""Two scans taken in one field, zero included, hold no induced response between them: their
difference is refused as an induced map, by `subtract`, the window and a recipe before its
first step (a recipe that sets the field before its remanent scan, or never sets one, would
otherwise scan for hours, then store noise or a change of remanence as the induced map, and a
susceptibility could be made from it). Two induced maps in one field are still subtracted."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest

from smm_daq.cli.main import main

GRID = ["--center-um", "12500,12500", "--size-um", "100,100", "--step-um", "50"]

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
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s.h5"
    for name, field in (("a", "0,40,0"), ("b", "0,40,0"), ("z", "0,0,0"), ("z2", "0,0,0")):
        assert main(["scan", *GRID, "--field-uT", field, "--name", name, "--out", str(out)]) == 0
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


def test_a_recipe_that_never_sets_a_field_is_refused_before_it_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE.replace("field_uT = [0.0, 40.0, 0.0]", "field_uT = [0.0, 0.0, 0.0]"),
                      encoding="utf-8")
    out = tmp_path / "s.h5"
    code = main(["run", str(recipe), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "step 4 (subtract 'induced_y')" in err
    assert "'in_field_y' and the remanent entry 'remanent' were both scanned in zero field" in err
    assert "set_field step before its scan" in err
    assert not out.exists()  # refused before the rig was connected
