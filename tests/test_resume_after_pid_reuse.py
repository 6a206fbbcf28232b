"""A scan killed with its process (a power cut, kill -9) is resumed also once its pid is
another process's: after a reboot pids are handed out again, and a scan started at boot by
a service gets the same pid each time. The file's writer names the process by its pid and
by when it started, so a live process that merely has the number is not taken for it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator

import h5py
import pytest

from smm_daq.cli.main import main
from smm_daq.storage.h5file import text
from smm_daq.storage.nexus import list_entries

KILLED_SCAN = textwrap.dedent(
    """
    import os, sys
    from smm_daq.acquisition.session import Session
    session = Session.open(sys.argv[1])
    def on_event(e):
        if e.kind == "line_done" and e.line == 1:
            os.kill(os.getpid(), 9)  # between two writes
    session.scan("k", center_um=(12500.0, 12500.0), size_um=(60.0, 40.0), step_um=20.0,
                 on_event=on_event)
    """
)


@pytest.fixture
def another_process() -> Iterator[Callable[[], int]]:
    """Starts a live process that is not smm-daq (returns its pid); ended after the test."""
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> int:
        procs.append(subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                                      stdin=subprocess.PIPE))
        return procs[-1].pid

    yield start
    for proc in procs:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait()


def test_a_killed_scan_whose_pid_was_given_to_another_process_resumes(tmp_path,
                                                                      another_process):
    path = tmp_path / "s.h5"
    killed = subprocess.run([sys.executable, "-c", KILLED_SCAN, str(path)], check=False)
    assert killed.returncode == -9
    pid = another_process()  # started after the scan's process ended, as after a reboot
    with h5py.File(path, "a") as f:  # the scan's pid handed to that process
        host, _, rest = text(f["k/writer"]).partition(":")
        _, colon, token = rest.partition(":")
        f["k/writer"][()] = f"{host}:{pid}{colon}{token}".encode()

    assert list_entries(path)[0].status == "interrupted"
    assert main(["resume", str(path), "--entry", "k"]) == 0
    with h5py.File(path, "r") as f:
        assert text(f["k/status"]) == "finished"
        assert f["k/data/line_done"][()].all()


def test_a_scan_whose_writer_still_runs_is_not_resumed(tmp_path, another_process, capsys):
    from smm_daq.storage.processes import start_token

    path = tmp_path / "s.h5"
    subprocess.run([sys.executable, "-c", KILLED_SCAN, str(path)], check=False)
    pid = another_process()
    with h5py.File(path, "a") as f:  # written by that very process, which still runs
        host = text(f["k/writer"]).partition(":")[0]
        f["k/writer"][()] = f"{host}:{pid}:{start_token(pid)}".encode()
    assert list_entries(path)[0].status == "running"
    assert main(["resume", str(path), "--entry", "k"]) == 2
    assert f"is being written by process {host}:{pid}\n" in capsys.readouterr().err
