"""Scratch files that killed writers leave beside a session file (a file being created, a
copy being rebuilt by a repair) are removed by `smm-daq repair` and by the repair that
`info`, `resume` and every other reader or writer make of a file left open: only those whose
writer ran on this machine and has ended, each named; a live writer's, another machine's and
an earlier version's (which does not say its machine) are kept, and named by `repair`.

The leftovers are made by real processes killed (SIGKILL) where a writer can be killed."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_storage_nexus import CRASHING_WRITER, _map

from smm_daq.cli.main import main
from smm_daq.storage.h5file import marked_open, writing
from smm_daq.storage.nexus import read_map, write_map_entry

REPO = Path(__file__).resolve().parents[1]
# Runs the code under test with `target` (a module attribute) replaced by `stop`: the process
# either kills itself there (SIGKILL: nothing of its own runs after) or says so and waits for
# its stdin to close, alive, with what it has written so far.
STOPPED_IN = textwrap.dedent(
    """
    import os, signal, sys
    import smm_daq.storage.h5file as h5file

    path, target, how = sys.argv[1:]
    def stop(*args, **kwargs):
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        print("stopped", flush=True)
        sys.stdin.read()
        raise SystemExit(0)
    module, _, name = target.rpartition(".")
    setattr(sys.modules[module], name, stop)
    if target == "os.link":
        h5file._create(h5file.Path(path))
    else:
        h5file.repair(path)
    """
)


def _stopped_in(path: Path, target: str, how: str = "kill") -> subprocess.Popen[str]:
    """A writer of `path` stopped at `target`: killed (waited for) or, `how` "wait", alive."""
    proc = subprocess.Popen([sys.executable, "-c", STOPPED_IN, str(path), target, how],
                            cwd=REPO, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    if how == "kill":
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.stdout is not None and proc.stdout.readline() == "stopped\n"
    return proc


def _others(path: Path) -> set[str]:
    return {p.name for p in path.parent.iterdir()} - {path.name}


def test_repair_removes_what_killed_writers_left_and_names_what_it_keeps(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.h5"
    write_map_entry(path, _map("earlier"), kind="induced")  # made by another run meanwhile
    _stopped_in(path, "os.link")  # killed creating the file: its half-made copy stays
    (created,) = _others(path)
    assert created.startswith(".s.h5.") and created.endswith(".new")
    _stopped_in(path, "os.replace")  # a repair killed before it swapped its copy in
    (rebuilt,) = _others(path) - {created}
    assert rebuilt.startswith(".s.h5.") and rebuilt.endswith(".repair-tmp")
    with h5py.File(tmp_path / rebuilt, "r") as copy:  # the copy was complete
        assert "earlier" in copy
    live = _stopped_in(path, "os.link", how="wait")  # another process creating it, at work
    try:
        (running,) = _others(path) - {created, rebuilt}
        elsewhere = f".s.h5.4242.4243.{socket.gethostname()}-not.example~1a2b3c4d.5.new"
        earlier = ["s.h5.repair-tmp", ".s.h5.4242.4243.new"]  # an earlier version's names
        for name in (elsewhere, *earlier):
            (tmp_path / name).write_bytes(b"")
        before = read_map(path, "earlier").bz

        assert main(["repair", str(path)]) == 0
        out = capsys.readouterr().out
        assert _others(path) == {running, elsewhere, *earlier}
        for name in (created, rebuilt):
            assert f"removed {name} (left by process {socket.gethostname()}:" in out
        assert (f"kept {running} (its writer, process {socket.gethostname()}:{live.pid}, is "
                "still running)") in out
        assert f"kept {elsewhere} (its writer, process {socket.gethostname()}-not.example:" \
               "4242, ran on another machine" in out
        for name in earlier:
            assert f"kept {name} (an earlier smm-daq's, which did not record" in out
        np.testing.assert_array_equal(read_map(path, "earlier").bz, before)
    finally:
        live.kill()  # now it is killed too
        live.communicate()
    assert live.returncode == -signal.SIGKILL
    assert main(["repair", str(path)]) == 0
    assert f"removed {running} (left by process" in capsys.readouterr().out
    assert _others(path) == {elsewhere, *earlier}


def test_the_next_writer_to_make_the_file_removes_what_a_killed_maker_left(
        tmp_path: Path) -> None:
    """Killed making the file, before its name was linked: nothing under the name, so no
    repair runs; the next run to make the file removes the half-made copy."""
    path = tmp_path / "s.h5"
    _stopped_in(path, "os.link")
    assert not path.exists() and len(_others(path)) == 1
    write_map_entry(path, _map("earlier"), kind="induced")
    assert _others(path) == set()


def test_a_pid_used_again_is_not_the_writer(tmp_path: Path) -> None:
    """A leftover whose pid runs now, but another process than the one that wrote it (its
    start time differs, as after a reboot), is removed; this process's own are kept."""
    path = tmp_path / "s.h5"
    write_map_entry(path, _map("earlier"), kind="induced")
    host = socket.gethostname()
    reused = f".s.h5.{os.getppid()}.1.{host}~00000000.1.new"  # the parent, started otherwise
    ours = f".s.h5.{os.getpid()}.1.{host}~.new"  # no token: this pid is this process
    for name in (reused, ours):
        (tmp_path / name).write_bytes(b"")
    assert main(["repair", str(path)]) == 0
    assert _others(path) == {ours}


def test_info_and_writes_to_a_file_left_open_remove_dead_writers_leftovers(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "s.h5"
    write_map_entry(path, _map("earlier"), kind="induced")
    _stopped_in(path, "os.link")
    (created,) = _others(path)
    subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(path)], check=False, cwd=REPO)
    assert marked_open(path)
    info = subprocess.run([sys.executable, "-m", "smm_daq.cli.main", "info", str(path)],
                          cwd=REPO, text=True, capture_output=True, check=False)
    assert info.returncode == 0, info.stderr
    assert f"{path}: removed {created} (left by process " in info.stderr
    assert _others(path) == set() and not marked_open(path)

    _stopped_in(path, "os.link")  # again, and a write (a scan's line, a resume) finds it
    (created,) = _others(path)
    subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(tmp_path / "t.h5")],
                   check=False, cwd=REPO)
    os.replace(tmp_path / "t.h5", path)  # the file left open by a killed writer
    with caplog.at_level(logging.WARNING, "smm_daq.storage.h5file"), writing(path) as f:
        f.attrs["note"] = "written"
    assert f"{path}: removed {created} (left by process " in caplog.text
    assert _others(path) == set()
