"""A warning of smm-daq's own that reaches stderr uninvited (a profile key the instrument named
ignores, warned of as the profile loads, before any command prints anything of its own) reads
as the commands' own warnings do, `smm-daq: warning: MESSAGE`: not Python's form, with the path
and source line of the code that warned. Run as the program, in a fresh process, since pytest
records every warning raised in its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _sr860_reserving_high(tmp_path: Path) -> Path:
    """The simulator's profile with an SR860 asked for a high dynamic reserve, which it
    ignores (README: warned of on stderr)."""
    text = (ROOT / "configs" / "simulator.toml").read_text()
    for old, new in (('implementation = "sr830"', 'implementation = "sr860"'),
                     ('reserve = "normal"', 'reserve = "high"')):
        assert text.count(old) == 1
        text = text.replace(old, new)
    path = tmp_path / "sr860.toml"
    path.write_text(text)
    return path


def test_a_profile_warning_reads_as_smm_daqs_own_on_stderr(tmp_path: Path) -> None:
    profile = _sr860_reserving_high(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": ""}
    done = subprocess.run([sys.executable, "-m", "smm_daq", "check", "--profile", str(profile)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "lockin.reserve" in line]
    assert said == [f"smm-daq: warning: {profile}: key 'lockin.reserve' is 'high', ignored for "
                    "an SR860 (it chooses its dynamic reserve itself; only an SR830 sets it): "
                    "expected 'normal' or no key"], done.stderr
    assert "ProfileWarning" not in done.stderr and "profile.py" not in done.stderr
