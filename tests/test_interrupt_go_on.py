"""A scan or recipe stopped by Ctrl-C or a signal says, once the rig is made safe, that what was
measured is kept and which command goes on from it (`resume`, `run --continue`), quoted to be
run again as it stands (a file name with a space)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

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
kind = "wait"
seconds = 3600

[[step]]
kind = "scan"
name = "in_field"
field_uT = [0.0, 40.0, 0.0]
"""


def _start(*argv: str, cwd: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, "-m", "smm_daq.cli.main", *argv], cwd=cwd,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def _stop_when(proc: subprocess.Popen[str], ready, sig: int) -> str:
    """Read the command's stderr until `ready(line)`, send `sig`, return the rest of it."""
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if ready(line):
                break
        else:
            raise AssertionError(f"it ended before it could be stopped: rc {proc.wait()}")
        proc.send_signal(sig)
        rest = proc.stderr.read()
        assert proc.wait() == 130, rest
        return rest
    finally:
        proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def _lines_done(path: Path) -> int:
    try:
        with h5py.File(path, "r") as f:
            return int(np.count_nonzero(f["k/data/line_done"][()])) if "k" in f else 0
    except (OSError, KeyError):
        return 0  # being written at that moment


def test_a_scan_stopped_by_ctrl_c_names_the_resume_command(tmp_path: Path) -> None:
    path = tmp_path / "my sample.h5"
    proc = _start("scan", "--center-um", "12500,12500", "--size-um", "200,140", "--step-um",
                  "20", "--field-uT", "0,30,0", "--name", "k", "--out", path.name,
                  "--time-scale", "10", cwd=tmp_path)
    rest = _stop_when(proc, lambda _line: _lines_done(path) >= 1, signal.SIGINT)
    assert "Traceback" not in rest
    said = ("smm-daq: what was measured is kept in my sample.h5; `smm-daq resume "
            "'my sample.h5' --entry k` goes on from there")
    assert said in rest, rest
    assert rest.index("the rig is safe") < rest.index(said)


def test_a_recipe_stopped_by_a_signal_names_run_continue(tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text(RECIPE, encoding="utf-8")
    proc = _start("run", "r.toml", "--out", "s.h5", "--time-scale", "10", cwd=tmp_path)
    rest = _stop_when(proc, lambda line: "wait 3600 s" in line, signal.SIGTERM)
    said = "`smm-daq run r.toml --out s.h5 --continue` goes on from there"
    assert said in rest, rest



def test_the_command_that_goes_on_keeps_auto_range(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A scan resumed with --auto-range and stopped again: the command said to go on with
    raises the range itself too, instead of pausing at the next overload."""
    from smm_daq.cli import acquisition
    from smm_daq.cli.main import main

    path = tmp_path / "s.h5"
    assert main(["scan", "--center-um", "12500,12500", "--size-um", "100,100", "--step-um",
                 "50", "--name", "k", "--out", str(path)]) == 0
    with h5py.File(path, "r+") as f:  # as a scan aborted before its last line leaves it
        f["k/status"][()] = b"aborted"
        f["k/data/line_done"][2] = False

    class Stopped:
        def resume(self, *_args: object, **_kwargs: object) -> None:
            raise KeyboardInterrupt

    monkeypatch.setattr(acquisition, "_open_session", lambda *_args: Stopped())
    monkeypatch.setattr(acquisition, "_finish", lambda _session: 0)
    capsys.readouterr()
    assert main(["resume", str(path), "--entry", "k", "--auto-range"]) == 130
    said = f"`smm-daq resume {path} --entry k --auto-range` goes on from there"
    assert said in capsys.readouterr().err


def test_the_run_continue_said_keeps_yes_and_finishes_the_recipe_off_a_terminal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A recipe run with --yes off a terminal (a batch job) and stopped before its prompt: the
    prompt runs again when continued, so the command said to go on keeps --yes, and that
    command, run as said, finishes the recipe (without --yes it was refused, exit 2)."""
    import shlex

    import smm_daq.acquisition.recipe as recipe_module
    from smm_daq.cli.main import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.toml").write_text(RECIPE.replace(
        'kind = "wait"\nseconds = 3600', 'kind = "prompt"\nmessage = "demagnetize it"'),
        encoding="utf-8")
    real = recipe_module.run_recipe

    def stopped_at_the_prompt(*args: object, on_step, **kwargs: object) -> list[str]:
        def step(i: int, text: str) -> None:
            if text.startswith("prompt"):
                raise KeyboardInterrupt
            on_step(i, text)
        return real(*args, on_step=step, **kwargs)

    monkeypatch.setattr(recipe_module, "run_recipe", stopped_at_the_prompt)
    assert main(["run", "r.toml", "--out", "s.h5", "--yes"]) == 130
    err = capsys.readouterr().err
    said = "`smm-daq run r.toml --out s.h5 --continue --yes` goes on from there"
    assert said in err, err
    monkeypatch.setattr(recipe_module, "run_recipe", real)
    assert main(shlex.split(said.split("`")[1])[1:]) == 0, capsys.readouterr().err
    with h5py.File(tmp_path / "s.h5", "r") as f:
        assert f["in_field/status"][()] == b"finished"
