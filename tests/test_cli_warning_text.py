"""A warning of smm-daq's own that reaches stderr uninvited (a profile key the instrument named
ignores, warned of as the profile loads, before any command prints anything of its own) reads
as the commands' own warnings do, `smm-daq: warning: MESSAGE`: not Python's form, with the path
and source line of the code that warned; any other keeps Python's form whole. Run as the
program, in a fresh process, since pytest records every warning raised in its own. A warning
an MMT command catches and says itself is labelled with its origin where not smm-daq's."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.linalg import solve

from smm_daq.analysis.mmt.solver.inversion import SingularWarning
from smm_daq.cli import main as cli_main
from smm_daq.cli import mmt
from smm_daq.cli.mmt import _warnings_to_stderr

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


def test_a_resource_warning_keeps_where_its_object_was_allocated(tmp_path: Path) -> None:
    """Where tracemalloc traces (python -X tracemalloc=5), Python names where a file left open
    was opened, under the warning that it was left open: the program's warning form keeps
    those lines (it dropped them). The script starts tracing (5 frames) once smm-daq is
    imported: the lines come from the same tracemalloc as -X's, which traced the imports too
    and took half a minute on a loaded machine."""
    script = tmp_path / "leak.py"
    script.write_text(textwrap.dedent("""
        import sys
        import tracemalloc
        from smm_daq.cli.main import main

        sys.argv = ["smm-daq", "--version"]  # the program's warning form, put in by main
        try:
            main()
        except SystemExit:
            pass
        tracemalloc.start(5)  # as python -X tracemalloc=5, from here

        def opened():
            return open(__file__)  # OPENED HERE

        held = opened()
        del held  # left open: the warning names this line
    """))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": ""}
    done = subprocess.run([sys.executable, "-W", "always::ResourceWarning", str(script)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    err = done.stderr
    assert f"ResourceWarning: unclosed file <_io.TextIOWrapper name='{script}'" in err, err
    assert "Object allocated at (most recent call last):" in err, err
    assert "return open(__file__)  # OPENED HERE" in err, err


def test_mmt_labels_another_librarys_warning_with_its_origin(capsys) -> None:
    """`mmt invert` says each warning it caught on a line of its own: smm-daq's as before,
    'smm-daq: warning: MESSAGE', and another's with where it came from, so that a remark of
    NumPy's or SciPy's does not read as smm-daq's finding about the data."""
    with _warnings_to_stderr():
        warnings.warn("Q is singular to working precision", SingularWarning, stacklevel=1)
        solve(np.diag([1e20, 1e-20]), np.ones(2))  # SciPy's own category: LinAlgWarning
        warnings.warn_explicit("a remark of NumPy's", UserWarning, np.__file__, 1)
        warnings.warn_explicit("divide by zero encountered in divide", RuntimeWarning,
                               mmt.__file__, 1)  # Python's category, from smm-daq's lines
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "smm-daq: warning: Q is singular to working precision"
    assert lines[1].startswith("smm-daq: warning (scipy): An ill-conditioned matrix"), lines
    assert lines[2:] == ["smm-daq: warning (numpy): a remark of NumPy's",
                         "smm-daq: warning (RuntimeWarning): divide by zero encountered in divide"]


def test_main_called_with_its_words_leaves_the_warning_form_as_it_was(monkeypatch) -> None:
    """A test's (or a script's) `main(argv)` leaves the process's warning form as it found
    it: only the program itself (argv None) puts smm-daq's in."""
    step, public = warnings._formatwarnmsg, warnings.formatwarning  # type: ignore[attr-defined]
    monkeypatch.setattr(warnings, "_formatwarnmsg", step)  # put back, whatever main does
    monkeypatch.setattr(warnings, "formatwarning", public)
    with pytest.raises(SystemExit):
        cli_main.main(["--version"])
    assert warnings._formatwarnmsg is step  # type: ignore[attr-defined]
    assert warnings.formatwarning is public


def test_without_the_private_step_smm_daqs_form_goes_in_through_the_public_hook(
        monkeypatch) -> None:
    """A Python whose warnings module lacks `_formatwarnmsg` gets smm-daq's form through
    `warnings.formatwarning`: smm-daq's own warning as its commands say theirs, any other in
    Python's form, with the line that warned."""
    monkeypatch.setattr(cli_main, "_PRIVATE_STEP", False)
    monkeypatch.setattr(warnings, "_formatwarnmsg",
                        warnings._formatwarnmsg)  # type: ignore[attr-defined]
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)
    cli_main._install_warning_form()
    ours = SingularWarning("Q is singular to working precision")
    assert warnings.formatwarning(ours, SingularWarning, "inversion.py", 376) == (
        "smm-daq: warning: Q is singular to working precision\n")
    assert warnings.formatwarning("a remark", UserWarning, "lib.py", 3, line="y = 1") == (
        "lib.py:3: UserWarning: a remark\n  y = 1\n")
