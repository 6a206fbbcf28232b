"""A scan killed (SIGKILL) anywhere, then repaired and resumed as its user would, ends as an
uninterrupted scan does: the same grid, every line measured once and kept, none missing,
one entry, no scratch file left.

The scan runs in its own process (`killed_at_step`, forked), which kills itself just before
its Nth file step (a dataset written, a link moved or deleted, an attribute changed, a flush or a
close): deterministic points spread over the whole scan, from laying out the entry to its
final status, on the simulator's virtual clock, so no test waits on time. At a few of them
the same through the real drivers and the simulator served on loopback TCP (in real time:
its state, a field left on, outlives the killed process, as a real rig's does).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from killed_at_step import run_killed_at
from served_rig import UNHURRIED_TIMEOUT_S, ServedRig
from test_storage_resume_takeover import as_an_earlier_repair_left_it

from smm_daq.cli.main import main
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import open_rig
from smm_daq.storage.h5file import open_read
from smm_daq.storage.nexus import list_entries

SCAN = ["scan", "--center-um", "12500,12500", "--size-um", "20,40", "--step-um", "20",
        "--field-uT", "0,30,0", "--name", "k"]
NY = 3
SERVED_CENTRE = (100e-6, 100e-6)  # m: the served rig's sample
TOLERANCE_T = 3e-6  # two readings of one point: 0.25 µT noise each, drift, a fresh seed


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, np.ndarray],
                                                                      int]:
    """The uninterrupted scan's arrays, and how many file steps it makes. Run here first,
    so that every child forked after it has what a scan imports."""
    folder = tmp_path_factory.mktemp("whole")
    assert main([*SCAN, "--out", str(folder / "s.h5")]) == 0
    code, steps = run_killed_at(0, [*SCAN, "--out", str(folder / "counted.h5")])
    assert code == 0
    return _arrays(folder / "s.h5"), steps


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with open_read(path) as f:
        g = f["k"]
        found = {key: np.asarray(g[key][()]) for key in (
            "data/x", "data/y", "data/Bz", "data/line_done", "data/line_run", "runs/run",
            "instrument/field_check/value_log/run")}
        found["status"] = np.asarray(g["status"].asstr()[()])
    return found


def _points(total: int) -> list[int]:
    """Kill points spread over a run's steps, from its first to its last, in strides that
    land on each part (layout, each line's writes, the final status) in turn;
    SMM_DAQ_KILL_STRIDE=1 takes every one (minutes)."""
    stride = int(os.environ.get("SMM_DAQ_KILL_STRIDE", "23"))
    return sorted({*range(1, total + 1, stride), total})


def _finish(path: Path) -> dict[str, np.ndarray] | None:
    """What the user does after the crash: repair the file, resume the scan (or, where the
    entry was never made, start it again). The entry's arrays as the crash left them (None
    where there was no entry yet)."""
    if not path.exists():
        assert main([*SCAN, "--out", str(path)]) == 0
        return None
    assert main(["repair", str(path)]) == 0
    if "k" not in {e.name for e in list_entries(path)}:
        assert main([*SCAN, "--out", str(path)]) == 0
        return None
    before = _arrays(path)
    if str(before["status"]) == "finished":
        return before
    assert main(["resume", str(path), "--entry", "k"]) == 0
    return before


def _check_whole(path: Path, whole: dict[str, np.ndarray],
                 before: dict[str, np.ndarray] | None, where: str) -> None:
    """The scan of `path` is the uninterrupted scan's (`whole`): one finished entry of the
    same grid, every line measured once; the lines done `before` the last resume kept as
    they were, the others measured by it."""
    assert [e.name for e in list_entries(path)] == ["k"], where
    after = _arrays(path)
    assert str(after["status"]) == "finished", where
    np.testing.assert_array_equal(after["data/x"], whole["data/x"], err_msg=where)
    np.testing.assert_array_equal(after["data/y"], whole["data/y"], err_msg=where)
    assert after["data/line_done"].all() and np.isfinite(after["data/Bz"]).all(), where
    np.testing.assert_allclose(after["data/Bz"], whole["data/Bz"], rtol=0,
                               atol=TOLERANCE_T, err_msg=where)
    runs = after["runs/run"].tolist()
    assert runs == list(range(len(runs))), where  # one row per run, none twice
    assert after["instrument/field_check/value_log/run"].tolist() == runs, where
    assert set(after["data/line_run"].tolist()) <= set(runs), where
    if before is not None:  # each line kept as it was, none measured twice
        kept = before["data/line_done"].astype(bool)
        np.testing.assert_array_equal(after["data/Bz"][kept], before["data/Bz"][kept],
                                      err_msg=where)
        np.testing.assert_array_equal(after["data/line_run"][kept],
                                      before["data/line_run"][kept], err_msg=where)
        if not kept.all():
            assert (after["data/line_run"][~kept] == runs[-1]).all(), where
    assert [p.name for p in path.parent.iterdir()] == [path.name], where  # no scratch file


needs_fork = pytest.mark.skipif(not hasattr(os, "fork"),
                                reason="the scan's process is forked and killed (POSIX)")


@needs_fork
def test_a_scan_killed_anywhere_resumes_to_the_uninterrupted_scan_s_lines(
        tmp_path: Path, uninterrupted: tuple[dict[str, np.ndarray], int], capsys) -> None:
    whole, total = uninterrupted
    assert total > 100  # (every part of the scan has points to kill at)
    for step in _points(total):
        path = tmp_path / f"step-{step}" / "s.h5"
        path.parent.mkdir()
        assert run_killed_at(step, [*SCAN, "--out", str(path)]) == (None, 0)
        before = _finish(path)
        capsys.readouterr()
        _check_whole(path, whole, before, f"scan killed before step {step} of {total}")


@needs_fork
@pytest.mark.parametrize("earlier_repair", [False, True], ids=["current", "earlier-repair"])
def test_a_resume_killed_anywhere_resumes_again_to_the_same_lines(
        tmp_path: Path, uninterrupted: tuple[dict[str, np.ndarray], int], capsys,
        earlier_repair: bool) -> None:
    """The scan killed after its first line, then its resume killed at any point: a repair
    and a second resume finish it as the scan would have. Also where an earlier release's
    repair left the file, whose resume first rebuilds it (`make_extendable`)."""
    whole, total = uninterrupted
    first = tmp_path / "first" / "s.h5"
    first.parent.mkdir()
    # the first point with a line done and one to do: a scan's first line ends about
    # two thirds of the way through its steps (each point tried costs a run and a repair)
    for kill_at in range(total * 3 // 4, total, 10):
        first.unlink(missing_ok=True)
        assert run_killed_at(kill_at, [*SCAN, "--out", str(first)]) == (None, 0)
        assert main(["repair", str(first)]) == 0
        if any(e.name == "k" and 0 < (e.lines_done or 0) < NY for e in list_entries(first)):
            break
    else:
        raise AssertionError("no point of the scan left a line done and one to do")
    if earlier_repair:
        as_an_earlier_repair_left_it(first)
    resume = ["resume", "--entry", "k"]
    counted = tmp_path / "counted" / "s.h5"
    counted.parent.mkdir()
    shutil.copyfile(first, counted)
    code, steps = run_killed_at(0, [*resume, str(counted)])
    assert code == 0 and steps > 20
    for step in _points(steps):
        path = tmp_path / f"step-{step}" / "s.h5"
        path.parent.mkdir()
        shutil.copyfile(first, path)
        assert run_killed_at(step, [*resume, str(path)]) == (None, 0)
        before = _finish(path)
        capsys.readouterr()
        _check_whole(path, whole, before, f"resume killed before step {step} of {steps}")


@pytest.fixture
def served_rig(tmp_path: Path) -> Iterator[ServedRig]:
    """The simulated rig served on loopback TCP, driven by the real drivers in real time,
    its stage referenced and brought to the scan's area first at 50 × real time. Its links
    wait for a reply as long as no loaded machine delays one (`UNHURRIED_TIMEOUT_S`): no
    reply is lost here, the scan kills itself. Its threads end with the test: the other tests
    fork, which a process with threads must not."""
    rig = ServedRig(tmp_path, time_scale=50.0, timeout_s=UNHURRIED_TIMEOUT_S)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYVISA_LIBRARY", "@py")
        profile = load_profile(rig.profile_path)
        ready = open_rig(profile, clock=rig.clock)
        ready.stage.move_to(*SERVED_CENTRE, profile.sensor.height)
        ready.close()
    rig.clock.set_time_scale(1.0)
    yield rig
    rig.close()


def _served_scan(served: ServedRig, kill_at: int, argv: list[str]) -> int | None:
    """`smm-daq ARGV` on the served rig in a process of its own killed just before its
    `kill_at`th step: None when killed, else the steps it made."""
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("killed_at_step.py")), str(kill_at),
         *argv, "--profile", str(served.profile_path)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYVISA_LIBRARY": "@py",
             "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), *sys.path])})
    if proc.returncode == -signal.SIGKILL:
        return None
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.split()[-1])


@pytest.mark.slow
@needs_fork
def test_a_scan_on_the_served_rig_killed_mid_write_resumes_to_the_same_lines(
        served_rig: ServedRig, tmp_path: Path, monkeypatch, capsys) -> None:
    """The same through the real drivers and the served simulator (real time, so at a few
    points: in the entry's layout, and midway through the scan's steps, within a line)."""
    monkeypatch.setenv("PYVISA_LIBRARY", "@py")
    scan = ["scan", "--center-um", ",".join(f"{c * 1e6:g}" for c in SERVED_CENTRE),
            "--size-um", "20,40", "--step-um", "20", "--field-uT", "0,10,0",
            "--settle-tau", "1", "--name", "k"]
    reference = tmp_path / "whole" / "s.h5"
    reference.parent.mkdir()
    total = _served_scan(served_rig, 0, [*scan, "--out", str(reference)])
    assert total is not None and total > 100
    whole = _arrays(reference)
    for step in (total // 5, total // 2 + 3):
        path = tmp_path / f"step-{step}" / "s.h5"
        path.parent.mkdir()
        assert _served_scan(served_rig, step, [*scan, "--out", str(path)]) is None
        assert main(["repair", str(path)]) == 0
        before = _arrays(path) if "k" in {e.name for e in list_entries(path)} else None
        again = (["resume", str(path), "--entry", "k"] if before is not None
                 else [*scan, "--out", str(path)])
        assert main([*again, "--profile", str(served_rig.profile_path)]) == 0
        capsys.readouterr()
        _check_whole(path, whole, before, f"served scan killed before step {step} of {total}")
