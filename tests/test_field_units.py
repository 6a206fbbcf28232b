"""A field given in tesla where µT is asked (`--field-uT 0,40e-6,0`, a recipe's `field_uT =
[0.0, 4e-5, 0.0]`) is a field of 0.04 nT, which no coil sets: it is refused before anything
connects, naming the option or step and what the value would be in µT, instead of an "in
field" scan taken hours long in zero field."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from smm_daq.acquisition.plan import ScanPlan, check_field
from smm_daq.cli.main import main
from smm_daq.errors import InputError
from smm_daq.instruments.profile import load_profile

UT = 1e-6
C = 12.5e-3
SCAN = ["scan", "--center-um", "12500,12500", "--size-um", "100,100", "--step-um", "50",
        "--name", "in_field"]


@pytest.fixture(scope="module")
def profile():
    return load_profile()


def test_a_field_in_tesla_on_the_command_line_is_refused_before_the_scan(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s.h5"
    code = main([*SCAN, "--field-uT", "0,40e-6,0", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "--field-uT" in err and "a field no coil sets" in err
    assert "4e-05 T is 40 µT" in err
    assert "Traceback" not in err
    assert not out.exists()  # nothing connected, nothing written


RECIPE = """[scan_defaults]
center_um = [12500.0, 12500.0]
size_um = [100.0, 100.0]
step_um = 50.0

[[step]]
kind = "zero_field"

[[step]]
kind = "scan"
name = "remanent"

[[step]]
kind = "set_field"
field_uT = [0.0, 4e-5, 0.0]

[[step]]
kind = "scan"
name = "in_field"
"""


@pytest.mark.parametrize("where", ["set_field", "scan"])
def test_a_field_in_tesla_in_a_recipe_is_refused_before_its_first_step(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str) -> None:
    text = RECIPE if where == "set_field" else RECIPE.replace(
        'field_uT = [0.0, 4e-5, 0.0]', 'field_uT = [0.0, 40.0, 0.0]').replace(
        'name = "in_field"', 'name = "in_field"\nfield_uT = [0.0, 0.0, -4e-5]')
    recipe = tmp_path / "r.toml"
    recipe.write_text(text, encoding="utf-8")
    out = tmp_path / "s.h5"
    code = main(["run", str(recipe), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    step = "step 3 (set_field)" if where == "set_field" else "step 4 (scan 'in_field')"
    assert step in err and "a field no coil sets" in err and "is 40 µT" in err
    assert not out.exists()  # the remanent scan before it was not taken either


def test_zero_and_real_fields_with_rounding_residue_are_taken(profile) -> None:
    residue = 40 * math.cos(math.pi / 2)  # 2.4e-15 µT beside 40 µT: a computed direction
    nulling = (0.0003, 0.0, -0.0005)  # µT: set against the residual of a nulled ambient field
    for b in ((0.0, 0.0, 0.0), (residue * UT, 40 * UT, 0.0), (0.0, 0.0, 0.001 * UT),
              tuple(v * UT for v in nulling)):
        check_field(b, profile, label="field_uT")
        ScanPlan.from_center("s", (C, C), (100e-6, 100e-6), 50e-6, field=b).validate(profile)
    # the most a field within max_field (100 µT) typed in tesla reads as: 1e-4 µT
    for b in ((0.0, 0.0, 1e-4 * UT), (0.0, 0.0, -6e-5 * UT), (1e-6 * UT, 0.0, 0.0)):
        with pytest.raises(InputError, match="a field no coil sets"):
            check_field(b, profile, label="field_uT")
