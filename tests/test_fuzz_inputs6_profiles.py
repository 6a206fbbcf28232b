"""Fuzzing the profile inputs the last landings added, as real users type them: a recipe's
`[recipe] profile` (a path from the recipe's folder, `~` the home folder) and the SR830/SR860
link keys (`interface`, `baud_rate`, a HiSLIP or serial-to-Ethernet address's `timeout_s`).
Each input, drawn, must be taken, or refused with one message naming what was wrong and what
was expected (exit 2 on the command line), with no traceback and no file changed
(tests/fuzz_harness.py hashes them before and after).
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pytest
from fuzz_harness import Case, run_all
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gui.scan_tab import next_free_name
from smm_daq.errors import InputError
from smm_daq.instruments.profile import parse_profile
from smm_daq.storage.names import new_entry_name_problem

REPO = Path(__file__).resolve().parents[1]
LAB = (REPO / "configs" / "example-lab.toml").read_text()
FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

# --- [recipe] profile ----------------------------------------------------------------------

RECIPE = ('[recipe]\ntitle = "fuzz"\nprofile = {}\n\n[[step]]\nkind = "scan"\nname = "a"\n'
          "center_um = [12500.0, 12500.0]\nsize_um = [20.0, 20.0]\nstep_um = 10.0\n")
PROFILE_VALUES = st.one_of(
    st.sampled_from([
        '"nope.toml"', '"~/nope.toml"', '"~"', '"~nosuchuser_smm/p.toml"', '"."', '".."',
        '"r.toml"', '"r.toml/p.toml"', '"loop.toml"', '"dir"', '"bad.toml"', '"empty.toml"',
        '"binary.toml"', '"~/dir"', '"~/bad.toml"', f'"{"a" * 300}.toml"', '"a\\u0000b"',
        '"tab\\there"', '" "', '""', '"/"', '"//"', '"~/../nope.toml"', "1", "true", "[]",
        "{}", "1.5", '["p.toml"]', '"\\u202e.toml"', '"NUL"', '"p.toml\\n"',
    ]),
    st.text(st.characters(codec="utf-8", exclude_characters='"\\'), max_size=40)
    .map(lambda s: json.dumps(s, ensure_ascii=True)),
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home folder of the test's own (`~` in a recipe's profile), with a folder and a
    malformed profile in it; beside the recipe the same, a link looping on itself, an empty
    and a binary file."""
    home = tmp_path / "home"
    for where in (home, tmp_path):
        (where / "dir").mkdir(parents=True, exist_ok=True)
        (where / "bad.toml").write_text("[lockin\nimplementation = 1\n")
    (tmp_path / "empty.toml").write_text("")
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe\x00\x80")
    (tmp_path / "loop.toml").symlink_to(tmp_path / "loop.toml")
    monkeypatch.setenv("HOME", str(home))
    return home


@FUZZ
@given(value=PROFILE_VALUES)
def test_a_recipe_profile_that_cannot_be_used_is_refused_naming_the_key(
        tmp_path: Path, home: Path, value: str) -> None:
    recipe, out = tmp_path / "r.toml", tmp_path / "o.h5"
    recipe.write_text(RECIPE.format(value), encoding="utf-8")
    watched = [recipe, home / "bad.toml", tmp_path / "bad.toml", tmp_path / "binary.toml"]
    case = Case("recipe profile", value, ["run", str(recipe), "--out", str(out), "--yes"],
                watched, [out], ["r.toml", "profile"])
    _, failures = run_all([case])
    assert not failures, "\n".join(failures)


# --- lock-in link keys ---------------------------------------------------------------------

ADDRESSES = ["GPIB0::8::INSTR", "ASRL/dev/ttyS0::INSTR", "serial:/dev/ttyUSB0",
             "TCPIP0::192.168.0.9::4001::SOCKET", "TCPIP0::10.0.0.2::hislip0::INSTR",
             "tcpip::lockin::HISLIP1,4880", "TCPIP0::10.0.0.2::inst0::INSTR",
             "TCPIP0::10.0.0.2::5025::SOCKET", "  GPIB0::8::INSTR  ", ""]
LINK_VALUES = {
    "implementation": st.sampled_from(['"sr830"', '"sr860"', '"SR830"', '"sr850"', "830"]),
    "address": st.sampled_from([json.dumps(a) for a in ADDRESSES] + ["5"]),
    "interface": st.sampled_from(['"rs232"', '"gpib"', '"RS232"', '"usb"', '""', "1", "true",
                                  "[]", None]),
    "baud_rate": st.one_of(st.sampled_from(["9600", "19200", "300", "49", "4000001", "0",
                                            "-9600", "9600.0", "1e308", "nan", '"9600"',
                                            "true", "10" * 250, None]),
                           st.integers(1, 5_000_000).map(str)),
    "timeout_s": st.one_of(st.sampled_from(["0.1", "0.15", "0.19999", "0.2", "0.25", "1.0",
                                            "1.07", "3", "300", "300.1", "0", "-1", "nan",
                                            "inf", '"3"', None]),
                           st.floats(0.05, 5.0).map(repr)),
}


def _lockin_profile(values: dict[str, str | None]) -> str:
    """The example lab's profile, its [lockin] link keys as `values` (None: no key)."""
    head, rest = LAB.split("[lockin]\n", 1)
    table, tail = rest.split("\n[", 1)
    lines = [ln for ln in table.splitlines()
             if not re.match(r"(implementation|address|interface|baud_rate|timeout_s) =", ln)]
    keys = [f"{k} = {v}" for k, v in values.items() if v is not None]
    return head + "[lockin]\n" + "\n".join(keys + lines) + "\n\n[" + tail


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.fixed_dictionaries(LINK_VALUES))
def test_lockin_link_keys_are_taken_or_refused_naming_the_key(
        tmp_path: Path, values: dict[str, str | None]) -> None:
    """A profile the loader takes is not run (it names real instruments); one it refuses is
    refused alike by `check`, before anything connects."""
    text = _lockin_profile(values)
    path = tmp_path / "lab.toml"
    path.write_text(text)
    try:
        parse_profile(text, path)
    except InputError as exc:
        message = str(exc)
        assert "expected" in message and "lab.toml" in message, message
        assert any(key in message for key in (*LINK_VALUES, "lockin")), message
    else:
        return
    case = Case("lock-in link", repr(values), ["check", "--profile", str(path)], [path], [],
                ["lab.toml"])
    _, failures = run_all([case])
    assert not failures, "\n".join(failures)




# --- the Scan tab's next name --------------------------------------------------------------

NAMES = st.one_of(
    st.text(max_size=70),
    st.builds(lambda base, n: f"{base}{n}", st.text(max_size=12),
              st.sampled_from(["_9", "-1", "_" + "9" * 5000, "_" + "9" * 300, "_٣", "-0",
                               "_00", "e\u0301_1", " _2", "_2 "])),
)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(name=NAMES, taken=st.sets(st.text(max_size=8), max_size=5))
def test_the_next_free_name_is_always_one_a_new_entry_may_have(name: str, taken: set[str]
                                                               ) -> None:
    """Whatever was typed (a name of any length, digits of any script or number, control
    characters, accents written either way) and whatever the file holds, the name proposed
    is free and one a new entry may have."""
    free = next_free_name(name, taken | {name})
    assert new_entry_name_problem(free) is None, (free, new_entry_name_problem(free))
    assert unicodedata.normalize("NFC", free) not in {unicodedata.normalize("NFC", t)
                                                      for t in taken | {name}}
