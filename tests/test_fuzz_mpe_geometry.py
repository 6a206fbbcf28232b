"""Fuzzing what today's merges took as MMT inputs from outside: `import mpe`'s JSON geometry
(its "Scan height Hz" negative, zero, NaN, infinite or text, every key missing, of a wrong type,
beyond any length) and `mmt synth` / `mmt study --directions`. Each drawn input is refused
through the command line (in process, `fuzz_harness`) with exit 2, one message naming the file
and key (or the option) and what was expected, no traceback, nothing written.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from fuzz_harness import Case, run_all
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

GEOMETRY = {"Scan height Hz": 2e-5, "Scan area x-dimension Sx": 1.2e-4,
            "Scan area y-dimension Sy": 1.2e-4, "Scan x-step Sdx": 1e-5,
            "Scan y-step Sdy": 1e-5}
KEYS = [*GEOMETRY, "Sensor dimensions", "Sensor origin x", "Scan origin y"]
MISSING = object()  # the key left out
BAD = [MISSING, -2e-5, -0.0, 0.0, float("nan"), float("inf"), float("-inf"), "2e-5", "", True,
       None, [], {}, [2e-5], 1e308, 1e-300, 10**400, -(10**400), 5e-324, "NaN", 3, 1e3]
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _npz(bz: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, Bz_array=bz)
    return buf.getvalue()


def _refused(key: str, value: object) -> bool | None:
    """Whether `key` at `value` must be refused: True where no scan has it, None where it may
    be taken (a length of 1 nm .. 1 km, `community.MIN_M` .. `MAX_M`, its grid then checked; an
    origin within ±1 km; an optional key missing; no sensor dimensions)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
    if value is MISSING:
        return key in GEOMETRY or None
    if key == "Sensor dimensions":
        return value != [] or None
    if key.endswith(("origin x", "origin y")):
        return not (number and abs(value) <= 1e3) or None  # type: ignore[operator]
    return not (number and 1e-9 <= value <= 1e3) or None  # type: ignore[operator]


@FUZZ
@given(key=st.sampled_from(KEYS), value=st.sampled_from(BAD))
def test_an_mpe_geometry_value_no_scan_has_is_refused_naming_the_key(
        tmp_path: Path, key: str, value: object) -> None:
    geometry = dict(GEOMETRY)
    if value is MISSING:
        geometry.pop(key, None)
    else:
        geometry[key] = value
    params, arrays, out = tmp_path / "meta.json", tmp_path / "sample.npz", tmp_path / "o.h5"
    params.write_text(json.dumps(geometry))  # NaN and Infinity as Python's json writes them
    arrays.write_bytes(_npz(np.zeros((12, 12))))
    argv = ["import", "mpe", str(params), str(arrays), "--out", str(out), "--name", "q"]
    refused = _refused(key, value)
    case = Case("mpe geometry", f"{key} = {value!r}", argv, [params, arrays], [out],
                [params.name, repr(key)] if refused else [params.name], may_pass=not refused)
    _, failures = run_all([case])
    assert not failures, "\n".join(failures)


SYNTH = ["mmt", "synth", "--name", "scan", "--size-um", "20,20", "--thickness-um", "4",
         "--density-per-mm3", "2e6", "--step-um", "2", "--model", "dipole", "--seed", "4"]


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(["synth", "study"]),
       value=st.one_of(st.sampled_from(["", " ", "uniform", "UNIFORM-SPHERE", "uniform-sphere ",
                                        "uniform_theta", "theta", "sphere", "-1", "--seed",
                                        "uniform-theta,uniform-sphere", "\u00a0", "x" * 500]),
                       st.text(max_size=20).filter(
                           lambda s: s not in ("uniform-sphere", "uniform-theta")
                           and not s.startswith("-"))))
def test_a_directions_draw_not_known_is_refused_naming_the_option(
        tmp_path: Path, command: str, value: str) -> None:
    out = tmp_path / "out"
    argv = ([*SYNTH, "--out", str(out)] if command == "synth"
            else ["mmt", "study", "--out", str(out), "--surface-um", "30", "--thickness-um", "8"])
    case = Case("--directions", repr(value), [*argv, "--directions", value], [], [out],
                ["--directions"])
    _, failures = run_all([case])
    assert not failures, "\n".join(failures)
