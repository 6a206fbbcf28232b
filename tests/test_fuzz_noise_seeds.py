"""Fuzzing the simulator's noise seed: `[simulation] noise_seed` in a profile (a TOML whole
number in [0, 2⁶³ − 1]) and the environment variable SMM_DAQ_SIM_NOISE_SEED (the digits 0-9
alone, spaces around them ignored: `int()` also took 1_0, +5 and another script's digits,
٣). Any value is taken as documented or refused naming the key or the variable; a command
refused for it ends with exit 2 and writes nothing.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from unittest import mock

import pytest
from fuzz_harness import Case, judge
from hypothesis import example, given, settings
from hypothesis import strategies as st

from simulators.backend import SimulationOptions
from simulators.noise_seeds import ENVIRONMENT, base_entropy
from smm_daq.errors import InputError
from smm_daq.instruments.profile import parse_profile

REPO = Path(__file__).resolve().parents[1]
PROFILE = (REPO / "configs" / "simulator.toml").read_text()
MAX = 2**63 - 1
FAST = settings(max_examples=25, deadline=None, derandomize=True, database=None)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value) if isinstance(value, str) else repr(value)


@FAST
@given(st.one_of(st.integers(), st.integers(-2, 2**64), st.floats(), st.booleans(),
                 st.text(st.characters(exclude_categories=("Cs",)), max_size=8),
                 st.lists(st.integers(0, 9), max_size=2)))
@example(2**63)
@example(1.0)
@example("7")
def test_a_profile_noise_seed_is_a_whole_number_in_range_or_refused_naming_the_key(value
                                                                                  ) -> None:
    text = PROFILE.replace("# noise_seed = 1 ", f"noise_seed = {_toml(value)} ", 1)
    profile = parse_profile(text, Path("/lab/sim.toml"))
    if type(value) is int and 0 <= value <= MAX:
        assert SimulationOptions.from_profile(profile).noise_seed == value
    else:
        with pytest.raises(InputError, match=r"simulation\.noise_seed.*expected a whole number"):
            SimulationOptions.from_profile(profile)


SEED_BYTES = st.binary(max_size=24).filter(lambda b: b"\0" not in b) | st.sampled_from(
    [b"1_0", b"+5", " ٣".encode(), "１２".encode(), b" 42\t", b"\xff", b"0" * 30 + b"1",
     str(MAX).encode(), str(MAX + 1).encode(), b"9" * 5000, b"-0", b"0x10", b"1e3"])


@FAST
@given(SEED_BYTES)
@example(b"1_0")  # int() took these: 10, 5, 3
@example(b"+5")
@example(" ٣".encode())
def test_the_environment_noise_seed_is_the_digits_0_9_or_refused_naming_the_variable(
        raw: bytes) -> None:
    with mock.patch.dict(os.environb, {ENVIRONMENT.encode(): raw}):
        text = os.fsdecode(raw).strip()
        if re.fullmatch("[0-9]+", text) and len(text) < 4300 and int(text) <= MAX:
            assert base_entropy(None) == int(text)
        elif text:
            # what was wrong with +5 or 1_0, whole numbers in range, is said
            with pytest.raises(InputError, match=f"{ENVIRONMENT} is .*expected a whole number"
                               r".* in the digits 0-9 alone, no sign or '_'"):
                base_entropy(None)
        else:  # unset or blank: fresh noise
            assert base_entropy(None) >= 0
        assert base_entropy(3) == 3  # the profile's seed comes first


def test_a_scan_refused_for_the_environment_noise_seed_exits_2_writing_nothing(
        tmp_path: Path) -> None:
    out = tmp_path / "s.h5"
    with mock.patch.dict(os.environ, {ENVIRONMENT: "1_0"}):
        problem = judge(Case("environment", "noise seed 1_0", [
            "scan", "--profile", str(REPO / "configs" / "simulator.toml"), "--center-um",
            "12500,12500", "--size-um", "10,10", "--step-um", "10", "--name", "s",
            "--time-scale", "0", "--out", str(out)], absent=[out], mention=[ENVIRONMENT, "1_0"]))
    assert problem is None, problem
