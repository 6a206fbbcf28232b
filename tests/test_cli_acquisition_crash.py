"""A scan in another process, read while it runs, killed (-9) or interrupted, then resumed.

The test never waits on time: it blocks on the scan's progress lines (stderr) and looks at
the file after each one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest

from smm_daq.cli.main import main
from smm_daq.storage.h5file import marked_open, open_read
from smm_daq.storage.nexus import list_entries, read_map

NY = 8


def _start_scan(path, time_scale="10"):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "smm_daq.cli.main",
            "scan",
            "--center-um",
            "12500,12500",
            "--size-um",
            "200,140",
            "--step-um",
            "20",
            "--field-uT",
            "0,30,0",
            "--name",
            "k",
            "--out",
            str(path),
            "--time-scale",
            time_scale,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _lines_while_running(path):
    """(state, lines done) as a plain HDF5 reader sees it, or None while it cannot open it
    (the file is being set up, or a line is being written at that moment)."""
    try:
        with h5py.File(path, "r") as f:
            if "k" not in f:
                return None
            return f["k/state"].asstr()[()], int(np.count_nonzero(f["k/data/line_done"][()]))
    except (OSError, KeyError):
        return None


def _wait_for_lines(proc, path, n):
    """Block on the scan's progress output until the file shows `n` finished lines."""
    seen_running = []
    for _ in proc.stderr:
        state = _lines_while_running(path)
        if state is not None and state[0] == "running":
            seen_running.append(state[1])
        if state is not None and state[1] >= n:
            return seen_running
    raise AssertionError(f"the scan ended before {n} lines were written: rc {proc.wait()}")


@pytest.mark.slow
def test_kill_9_leaves_every_finished_line_and_resume_completes(tmp_path):
    path = tmp_path / "s.h5"
    proc = _start_scan(path)
    try:
        seen = _wait_for_lines(proc, path, 2)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    # A plain reader saw lines appear while the scan ran.
    assert any(0 < n < NY for n in seen)
    if not marked_open(path):  # killed between two writes, as nearly always: no repair needed
        with h5py.File(path, "r") as f:
            assert f["k/status"].asstr()[()] == "interrupted"
            assert f["k/end_time"].asstr()[()] != ""
            assert "resume" in f["k/message"].asstr()[()]

    before = read_map(path, "k")
    with open_read(path) as f:
        done = f["k/data/line_done"][()].astype(bool)
    assert 2 <= done.sum() < NY
    assert np.isfinite(before.bz[done]).all() and np.isnan(before.bz[~done]).all()
    assert list_entries(path)[0].status == "interrupted"

    assert main(["resume", str(path), "--entry", "k"]) == 0
    after = read_map(path, "k")
    np.testing.assert_array_equal(after.bz[done], before.bz[done])  # finished lines untouched
    assert np.isfinite(after.bz).all()
    with h5py.File(path, "r") as f:  # closed cleanly: any HDF5 reader opens it again
        assert f["k/status"].asstr()[()] == "finished"
        assert f["k/data/line_done"][()].all()
    np.testing.assert_allclose(after.applied_field, [0.0, 30e-6, 0.0])


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_ctrl_c_aborts_cleanly_with_exit_130(tmp_path, sig):
    """Ctrl-C, and the signals of `kill`, `timeout` and a closed terminal, abort safely."""
    path = tmp_path / "s.h5"
    proc = _start_scan(path)
    try:
        _wait_for_lines(proc, path, 1)
        proc.send_signal(sig)
        rest = proc.stderr.read()
        rc = proc.wait()
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert rc == 130, rest
    assert "Traceback" not in rest
    with h5py.File(path, "r") as f:  # closed cleanly
        assert f["k/status"].asstr()[()] == "aborted"
        assert "Ctrl-C" in f["k/message"].asstr()[()]
        done = f["k/data/line_done"][()].astype(bool)
        assert done.any() and np.isfinite(f["k/data/Bz"][()][done]).all()
