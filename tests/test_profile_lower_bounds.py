"""Profile values that loaded but made every scan fail at run time are refused when the profile
is loaded, naming the key, the value and what is expected: a lock-in's overrange_fraction (every
reading out of range), a link's timeout_s (every reply lost), coils.field_tolerance_nT (the
fluxgate's noise failing every field's verification) and a fluxgate's scale_T_per_V (its whole
output reading nothing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from smm_daq.cli.main import main
from smm_daq.errors import InputError
from smm_daq.instruments.profile import parse_profile

REPO = Path(__file__).resolve().parents[1]
PROFILE = (REPO / "configs" / "simulator.toml").read_text()
SCALE = "scale_T_per_V = [[1.0e-5, 0.0, 0.0], [0.0, 1.0e-5, 0.0], [0.0, 0.0, 1.0e-5]]"


def _with(key: str, value: str) -> str:
    """The simulator's profile with `key` (its table's) set to `value`."""
    if key == "coils.field_tolerance_nT":
        old, new = "field_tolerance_nT = 50.0", f"field_tolerance_nT = {value}"
    elif key == "fluxgate.scale_T_per_V":
        old, new = SCALE, f"scale_T_per_V = [[{value}, 0.0, 0.0], [0.0, {value}, 0.0], " \
                          f"[0.0, 0.0, {value}]]"
    else:
        old, new = "[lockin]", f"[lockin]\n{key.split('.')[1]} = {value}"
    assert old in PROFILE
    return PROFILE.replace(old, new, 1)


CASES = [  # key, a value refused, the message's expectation, the least value taken
    ("lockin.overrange_fraction", "1e-300", "a number in [0.5, 1] of full scale", "0.5"),
    ("lockin.timeout_s", "1e-300", "a number in [0.1, 300] s", "0.1"),
    ("coils.field_tolerance_nT", "0.001", "a number in [5, 100000] nT", "5.0"),
    ("fluxgate.scale_T_per_V", "1e-300", "a matrix giving at least 1e-08 T/V", "1e-8"),
]


@pytest.mark.parametrize(("key", "value", "expected", "least"), CASES)
def test_a_value_that_would_fail_every_scan_is_refused_at_load(
        key: str, value: str, expected: str, least: str) -> None:
    path = Path("/lab/p.toml")
    with pytest.raises(InputError) as refused:
        parse_profile(_with(key, value), path)
    message = str(refused.value)
    assert f"{path}: key '{key}' is " in message and value in message, message
    assert f"expected {expected}" in message, message
    parse_profile(_with(key, least), path)  # the bound itself is taken


def test_the_command_line_refuses_it_with_exit_2_writing_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text(_with("lockin.timeout_s", "1e-300"))
    out = tmp_path / "o.h5"
    code = main(["scan", "--center-um", "12500,12500", "--size-um", "10,10", "--step-um", "10",
                 "--name", "s", "--time-scale", "0", "--out", str(out), "--profile",
                 str(profile)])
    err = capsys.readouterr().err
    assert code == 2 and "lockin.timeout_s" in err and "1e-300" in err, err
    assert not out.exists()


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("lockin.timeout_s", '"fast"', "expected a number in [0.1, 300] s"),
    ("lockin.overrange_fraction", "nan", "expected a number in [0.5, 1] of full scale"),
])
def test_a_value_that_is_no_number_is_told_the_range(key: str, value: str,
                                                     expected: str) -> None:
    """A word or NaN where a bounded number goes names the range, as a number out of it
    does: "expected a finite number" left a user to look up what would be taken."""
    with pytest.raises(InputError) as refused:
        parse_profile(_with(key, value), Path("/lab/p.toml"))
    assert expected in str(refused.value), str(refused.value)
