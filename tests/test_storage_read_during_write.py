"""A reader of a session file and a writer in another process take turns for the whole read:
a write never begins under a reader (a plain HDF5 reader that opened the file before the write
met its new metadata as "addr overflow" and called a healthy file corrupt); a writer kept
waiting too long writes anyway, and its reader is told to read again, not that the file is
damaged; a file really damaged is still called so."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_storage_nexus import _map

from smm_daq.errors import InputError
from smm_daq.storage import turns
from smm_daq.storage.checks import corrupt_guard
from smm_daq.storage.h5file import open_read
from smm_daq.storage.nexus import list_entries, read_map, write_map_entry

# Writes an entry (outside SWMR mode: the file grows, new objects) once told "go"; says
# "waiting" when it finds a reader holding the file, "wrote" when its write is done.
WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from smm_daq.storage import turns
    from smm_daq.storage.h5file import writing
    turns.WRITER_WAIT_S = float(sys.argv[2])
    real_pause, said = turns._pause, []

    def pause(seconds):
        if not said:
            said.append(print("waiting", flush=True))
        real_pause(seconds)

    turns._pause = pause
    print("ready", flush=True)
    sys.stdin.readline()
    with writing(sys.argv[1]) as f:
        g = f.create_group("late")
        g.attrs["NX_class"] = "NXentry"
        g.create_dataset("data/Bz", data=np.ones((200, 200)))
    print("wrote", flush=True)
    """
)


def _writer(path: Path, wait_s: float) -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(wait_s)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    return child


def _go(child: subprocess.Popen[str]) -> str:
    """Let the writer write; its first word after: "waiting" or "wrote"."""
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write("go\n")
    child.stdin.flush()
    return child.stdout.readline()


def _finish(child: subprocess.Popen[str]) -> str:
    """The writer's last words and its log, once it has ended."""
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    return out + err


def test_a_write_waits_for_a_reader_that_opened_the_file_before_it(tmp_path):
    path = tmp_path / "s.h5"
    write_map_entry(path, _map("earlier"), kind="scan")
    child = _writer(path, wait_s=600)  # never runs out here
    try:
        with open_read(path) as f:
            assert list(f) == ["earlier"]
            assert _go(child) == "waiting\n"  # not "wrote": no write under this reader
            assert np.array_equal(f["earlier/data/Bz"][()], _map().bz, equal_nan=True)
        assert "wrote" in _finish(child)  # and then it writes
    finally:
        child.kill()
        child.wait()
    assert [e.name for e in list_entries(path)] == ["earlier", "late"]


def test_a_read_within_a_read_does_not_queue_behind_the_writer_its_outer_read_holds_up(
        tmp_path):
    path = tmp_path / "s.h5"
    write_map_entry(path, _map("earlier"), kind="scan")
    child = _writer(path, wait_s=60)  # far longer than the inner read takes
    try:
        with open_read(path) as outer:
            assert _go(child) == "waiting\n"
            before = turns.stamp(path)
            with open_read(path) as inner:  # as a check of a new scan's name does
                assert list(inner) == list(outer) == ["earlier"]
            assert turns.stamp(path) == before  # read before the writer gave up waiting
        assert "wrote" in _finish(child)
    finally:
        child.kill()
        child.wait()


def test_a_reader_overrun_by_a_writer_is_told_to_read_again_not_that_the_file_is_corrupt(
        tmp_path):
    path = tmp_path / "s.h5"
    write_map_entry(path, _map("earlier"), kind="scan")
    child = _writer(path, wait_s=0)  # waits for no reader: writes under this one
    try:
        with pytest.raises(InputError) as raised, open_read(path) as f, corrupt_guard(str(path)):
            assert list(f) == ["earlier"]
            assert _go(child) == "wrote\n"
            raise OSError("Can't synchronously read data (addr overflow)")  # as HDF5 says it
        said = _finish(child)
    finally:
        child.kill()
        child.wait()
    assert "written by another process while it was read" in str(raised.value)
    assert "read it again" in str(raised.value) and "corrupt" not in str(raised.value)
    assert "still reads it" in said  # the writer says why it did not wait
    assert [e.name for e in list_entries(path)] == ["earlier", "late"]


def test_a_damaged_file_is_still_called_corrupt(tmp_path):
    path = tmp_path / "s.h5"
    write_map_entry(path, _map("earlier"), kind="scan")
    with h5py.File(path, "r") as f:
        header = h5py.h5g.get_objinfo(f.id, b"earlier/data/Bz").objno[0]
    with open(path, "r+b") as fh:  # the map's object header fails its checksum
        fh.seek(header)
        assert fh.read(4) == b"OHDR"
        fh.seek(header + 6)
        fh.write(b"\xff" * 8)
    with pytest.raises(InputError, match="the file is corrupt"):
        read_map(path, "earlier")
