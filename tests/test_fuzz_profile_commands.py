"""Every command that reads a profile refuses a malformed one alike: `check`, `safe`,
`calibrate-coils`, `serve-sim` and `run` (tests/test_fuzz_text_inputs.py fuzzes the
profile itself through `scan`). A seeded draw of malformed profiles goes to each; each must be
refused with one message naming the file, exit 2, no traceback, the profile unchanged and
nothing written, before any instrument is touched.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from fuzz_harness import Case, run_all

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
