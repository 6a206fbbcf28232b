"""The helper that forks an smm-daq command to be killed (`killed_at_step`) never waits
without end for a child that hangs: it kills it and fails the test that ran it."""

from __future__ import annotations

import os
import threading

import pytest
from killed_at_step import run_killed_at


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks (POSIX)")
def test_a_forked_child_that_hangs_is_killed_and_said(monkeypatch, tmp_path) -> None:
    never = threading.Event()  # never set: the child waits on it for good, as on a lock

    def hangs(argv: list[str]) -> int:
        never.wait()
        return 0

    forked: list[int] = []
    fork = os.fork

    def recorded_fork() -> int:
        pid = fork()
        if pid:
            forked.append(pid)
        return pid

    monkeypatch.setattr("smm_daq.cli.main.main", hangs)
    monkeypatch.setattr(os, "fork", recorded_fork)
    with pytest.raises(AssertionError, match=r"still running after 0\.5 s: killed"):
        run_killed_at(0, ["info", str(tmp_path / "s.h5")], limit_s=0.5)
    assert len(forked) == 1
    with pytest.raises(ChildProcessError):  # reaped: the child is not left running
        os.waitpid(forked[0], os.WNOHANG)  # (other tests' children may be: not asked)
