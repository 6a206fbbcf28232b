"""Fuzzing the profile's and the recipe's values with the TOML kinds that
tests/test_fuzz_text_inputs.py leaves out: dates, times and date-times, empty and nested
arrays, arrays of text or of tables, empty text, a NUL, a right-to-left mark, 5,000
characters, and the negative zero. Each must be refused with one message naming the file, exit
2, no traceback and nothing written, or (the zeros, a text where any text goes) taken as the
value it is: the command runs to its end on the simulator.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fuzz_harness import Case, run_all
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shipped_recipe import shipped_recipe_text

REPO = Path(__file__).resolve().parents[1]
PROFILE = (REPO / "configs" / "simulator.toml").read_text()
RECIPE = shipped_recipe_text().replace(
    "size_um = [2200.0, 2200.0]", "size_um = [40.0, 40.0]")  # a case accepted ends soon
_KEY_LINE = re.compile(r"^(\w+) = (.+)$", re.MULTILINE)
VALUES = ["1979-05-27", "07:32:00", "1979-05-27T07:32:00Z", "[]", "[[]]", "[[1, 2]]",
          '["a", "b"]', "[{a = 1}]", "[true, false, true]", '""', '"\\u0000"', '"\\u202e"',
          '"' + "x" * 5000 + '"', "-0.0", "[-0.0, -0.0, -0.0]"]
SIMULATION = ("coil_matrix_error", "fluxgate_scale_error", "fluxgate_orthogonality_deg")


def _with(text: str, line: re.Match[str], value: str) -> str:
    return text[:line.start()] + f"{line.group(1)} = {value}" + text[line.end():]


def _argv(kind: str, path: Path, out: Path) -> list[str]:
    if kind == "profile":
        return ["scan", "--profile", str(path), "--center-um", "12500,12500", "--size-um",
                "20,20", "--step-um", "10", "--name", "s", "--out", str(out)]
    return ["run", str(path), "--out", str(out), "--yes"]


@pytest.mark.parametrize("key", SIMULATION)
def test_a_simulated_error_of_minus_zero_is_none(tmp_path: Path, key: str) -> None:
    """-0.0 passed the check 'at least 0' and reached numpy as a noise SD, which refused it
    (ValueError: scale < 0, a traceback)."""
    path = tmp_path / "profile.toml"
    path.write_text(re.sub(rf"^{key} = .*$", f"{key} = -0.0", PROFILE, count=1,
                           flags=re.MULTILINE))
    out = tmp_path / "out.h5"
    _, failures = run_all([Case("profile", f"{key} = -0.0", _argv("profile", path, out),
                                     [path], [out], [path.name], may_pass=True)])
    assert not failures, "\n".join(failures)
    assert out.exists()  # the scan ran: -0.0 is the default 0


LINES = [("profile", m) for m in _KEY_LINE.finditer(PROFILE)] + \
    [("recipe", m) for m in _KEY_LINE.finditer(RECIPE)]


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=st.sampled_from(LINES), value=st.sampled_from(VALUES))
def test_every_toml_kind_in_every_key_is_refused_or_taken(
        tmp_path: Path, line: tuple[str, re.Match[str]], value: str) -> None:
    kind, match = line
    path = tmp_path / f"{kind}.toml"
    path.write_text(_with(PROFILE if kind == "profile" else RECIPE, match, value))
    out = tmp_path / "out.h5"
    out.unlink(missing_ok=True)
    _, failures = run_all([Case(kind, f"{match.group(1)} = {value[:20]}",
                                _argv(kind, path, out), [path], [out], [path.name],
                                may_pass=True)])
    assert not failures, "\n".join(failures)
