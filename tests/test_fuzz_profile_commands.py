"""Every command that reads a profile refuses a malformed one alike: `check`, `safe`,
`calibrate-coils`, `serve-sim` and `run` (tests/test_fuzz_text_inputs.py fuzzes the
profile itself through `scan`). A seeded draw of malformed profiles goes to each; each must be
refused with one message naming the file, exit 2, no traceback, the profile unchanged and
nothing written, before any instrument is touched.

The values the make-safe bound is reckoned from (`safe_bound`: the coils' ramp rate and
rating, every link's timeout, retries and baud rate) are drawn too: a profile the loader takes
gives a bound a supervisor can wait, and one it could not (a ramp of 1e-300 A/s) is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from fuzz_harness import Case, run_all
from hypothesis import given, settings
from hypothesis import strategies as st

from smm_daq.errors import InputError
from smm_daq.instruments.profile import parse_profile
from smm_daq.instruments.safe_bound import safe_time_bound

REPO = Path(__file__).resolve().parents[1]
PROFILE = (REPO / "configs" / "simulator.toml").read_text()
SEED = 20261205
PER_COMMAND = 6


def _malformed() -> list[tuple[str, bytes]]:
    values = dict(re.findall(r"(?m)^(\w+) = (.+)$", PROFILE)[::-1])  # each key's first value
    cases = [(f"{k} = {bad}", re.sub(rf"(?m)^{k} = .+$", f"{k} = {bad}", PROFILE, count=1))
             for k, v in values.items() for bad in ("nan", "1e308", '"x"', "[]")
             if not (bad == '"x"' and v.startswith('"'))]  # a string for a string is fine
    out = [(label, text.encode()) for label, text in cases]
    out += [("[coils] missing", PROFILE.replace("[coils]", "[unused]").encode()),
            ("cut mid-line", PROFILE[: len(PROFILE) // 2].rstrip("\n").encode()),
            ("not UTF-8", b"\xff\xfe\x80 not text\n"), ("empty", b"")]
    return out


def _cases(tmp: Path) -> Iterator[Case]:
    recipe = tmp / "r.toml"
    recipe.write_text('[[step]]\nkind = "scan"\nname = "a"\ncenter_um = [12500.0, 12500.0]\n'
                      "size_um = [20.0, 20.0]\nstep_um = 10.0\n")
    commands = {
        "check": lambda p: ["check", "--profile", p],
        "safe": lambda p: ["safe", "--profile", p],
        "calibrate-coils": lambda p: ["calibrate-coils", "--profile", p, "--out",
                                      str(tmp / "c.toml")],
        "serve-sim": lambda p: ["serve-sim", "--profile", p, "--duration-s", "0.01"],
        "run": lambda p: ["run", str(recipe), "--profile", p, "--out", str(tmp / "o.h5"),
                          "--yes"],
    }
    malformed = _malformed()
    rng = np.random.default_rng(SEED)
    for command, argv in commands.items():
        for i in rng.choice(len(malformed), PER_COMMAND, replace=False):
            label, content = malformed[int(i)]
            path = tmp / f"{command}-{i}.toml"
            path.write_bytes(content)
            yield Case("profile (other commands)", f"{label} / {command}", argv(str(path)),
                       [path, recipe], [tmp / "c.toml", tmp / "o.h5"], [path.name])


def test_every_command_refuses_a_malformed_profile_alike(tmp_path: Path) -> None:
    counts, failures = run_all(_cases(tmp_path))
    print(counts)
    assert not failures, f"{len(failures)} of {sum(counts.values())}:\n" + "\n".join(failures)


def test_a_simulation_table_for_a_real_rig_is_refused_saying_what_was_expected(
        tmp_path: Path) -> None:
    """A [simulation] table in a profile that is not simulated (rig.simulated dropped, or
    false): refused by `check` and `safe` naming the file, the table and the key, saying what
    was expected (it said the table needs the key, with no expected value)."""
    path = tmp_path / "p.toml"
    path.write_text(PROFILE.replace("simulated = true", "simulated = false", 1))
    cases = [Case("profile", f"[simulation] with rig.simulated = false / {command}",
                  [command, "--profile", str(path)], [path], [],
                  [path.name, "[simulation]", "rig.simulated", "expected"])
             for command in ("check", "safe")]
    _, failures = run_all(cases)
    assert not failures, "\n".join(failures)


DAY_S = 86_400.0
BOUND_KEYS = {  # key -> the line of the profile it replaces ('{}' the value), or where it goes
    "max_ramp_A_per_s": "max_ramp_A_per_s = {}",
    "supply_rating_A": "supply_rating_A = {}",
    "timeout_s": 'safe_state = "zero"\ntimeout_s = {}',
    "retries": 'safe_state = "zero"\nretries = {}',
    "baud_rate": "baud_rate = {}",
}
BOUND_LINES = {"max_ramp_A_per_s": "max_ramp_A_per_s = 1.0", "supply_rating_A":
               "supply_rating_A = 5.0", "timeout_s": 'safe_state = "zero"', "retries":
               'safe_state = "zero"', "baud_rate": "baud_rate = 115200"}
NUMBERS = st.one_of(st.floats(min_value=5e-324, max_value=1e308),
                    st.sampled_from([5e-324, 1e-300, 1e-9, 1e-3, 0.01, 300.0, 1e308]),
                    st.integers(-10, 10**6), st.just(10**400))


@settings(max_examples=120, deadline=None, derandomize=True, database=None)
@given(key=st.sampled_from(sorted(BOUND_KEYS)), value=NUMBERS)
def test_a_profile_taken_gives_a_make_safe_bound_a_supervisor_can_wait(key: str,
                                                                         value: float) -> None:
    text = PROFILE.replace(BOUND_LINES[key], BOUND_KEYS[key].format(value), 1)
    try:
        profile = parse_profile(text, Path("p.toml"))
    except InputError as exc:
        assert key in str(exc) and "expected" in str(exc)
        return
    assert 0 < safe_time_bound(profile) < DAY_S, (key, value)


def test_safe_refuses_a_ramp_too_slow_to_bound(tmp_path: Path) -> None:
    """`safe` printed a bound of 300 digits for 1e-300 A/s and, for 5e-324 A/s, ended in a
    traceback (an infinite bound) before making the rig safe."""
    cases = []
    for i, rate in enumerate(("5e-324", "1e-300", "0.001")):
        path = tmp_path / f"p{i}.toml"
        path.write_text(PROFILE.replace("max_ramp_A_per_s = 1.0", f"max_ramp_A_per_s = {rate}"))
        cases.append(Case("make-safe bound", rate, ["safe", "--profile", str(path)], [path],
                          [], [path.name, "max_ramp_A_per_s", "0.01"]))
    _, failures = run_all(cases)
    assert not failures, "\n".join(failures)
