"""Threads of one process take turns on a session file as processes do: a scan's writer waits
for a reader in its own process at most `turns.WRITER_WAIT_S`, and the reader it then overruns
is told to read again, never that the file is corrupt; a thread that reads a file within its
own write of it (or writes it within its read) is refused at once, never left waiting for
itself; a lock call that a file system's lock manager never answers, or a writer holding the
file without end, holds up nobody for ever. Waits run on a virtual clock: nothing sleeps."""

from __future__ import annotations

import errno
import threading
import types
from collections.abc import Callable

import numpy as np
import pytest
from test_storage_nexus import _map
from turn_files import session_file, waits_on

from smm_daq.clock import VirtualClock
from smm_daq.errors import InputError, StorageError
from smm_daq.storage import turns
from smm_daq.storage.checks import corrupt_guard
from smm_daq.storage.h5file import open_read, writing
from smm_daq.storage.nexus import list_entries, write_map_entry

JOIN_S = 60  # a thread that has not ended by then waits for ever: the test fails, never hangs


@pytest.fixture
def clock(monkeypatch) -> VirtualClock:
    return waits_on(monkeypatch, VirtualClock())


@pytest.fixture
def path(tmp_path):
    return session_file(tmp_path)


def _in_thread(work: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """`work` started in a daemon thread; its result or exception lands in the list."""
    out: list[object] = []

    def run() -> None:
        try:
            out.append(work())
        except BaseException as exc:  # handed to the test
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def _write_late(path) -> None:
    write_map_entry(path, _map("late"), kind="scan")


def test_a_scan_overruns_a_reader_of_its_own_process_after_the_wait_and_it_is_told_to_read_again(
        path, clock):
    with pytest.raises(InputError) as raised, open_read(path) as f, corrupt_guard(str(path)):
        assert list(f) == ["earlier"]
        writer, out = _in_thread(lambda: _write_late(path))
        writer.join(JOIN_S)
        assert not writer.is_alive(), "the write stalled behind a reader of its own process"
        assert out == [None]
        assert clock.now() >= turns.WRITER_WAIT_S  # it waited for the reader first
        f["earlier/data/Bz"][()]
    message = str(raised.value)
    assert "read it again" in message and "nothing says the file is damaged" in message
    assert "corrupt" not in message
    assert [e.name for e in list_entries(path)] == ["earlier", "late"]


def test_a_scan_waits_for_a_reader_of_its_own_process_that_finishes_in_time(
        path, monkeypatch):
    waiting, go = threading.Event(), threading.Event()

    class HeldClock(VirtualClock):
        def sleep(self, seconds: float) -> None:  # its first pause waits for the test
            if not waiting.is_set():
                waiting.set()
                assert go.wait(JOIN_S)
            super().sleep(seconds)

    held = HeldClock()
    monkeypatch.setattr(turns, "CLOCK", held)
    with open_read(path) as f:
        writer, out = _in_thread(lambda: _write_late(path))
        assert waiting.wait(JOIN_S)  # the writer waits for this reader ...
        assert np.array_equal(f["earlier/data/Bz"][()], _map().bz, equal_nan=True)  # whole
        assert list(f) == ["earlier"]  # ... and has written nothing yet
    go.set()
    writer.join(JOIN_S)
    assert out == [None]
    assert held.now() < turns.WRITER_WAIT_S  # written once the reader had finished
    assert [e.name for e in list_entries(path)] == ["earlier", "late"]


def test_a_read_within_the_same_threads_write_is_refused_at_once(path):
    def read_within_write() -> None:
        with writing(path) as w:
            w.attrs["touched"] = 1
            with open_read(path):
                pass

    thread, out = _in_thread(read_within_write)
    thread.join(JOIN_S)
    assert not thread.is_alive(), "the read waited for the write around it"
    assert isinstance(out[0], StorageError)
    assert "finish the write first" in str(out[0]) and "would wait for itself" in str(out[0])
    assert [e.name for e in list_entries(path)] == ["earlier"]  # and the file reads after


def test_a_write_within_the_same_threads_read_is_refused_at_once(path, clock):
    with open_read(path) as f:
        with pytest.raises(StorageError, match="finish the read first"), writing(path):
            pass
        assert list(f) == ["earlier"]  # the read goes on
    assert clock.now() == 0  # refused before any wait


def test_a_lock_manager_that_never_answers_holds_up_neither_reads_nor_writes(
        path, monkeypatch, caplog):
    release, calls = threading.Event(), []
    real = turns.fcntl

    def silent(fd, cmd, arg):  # an NFS lock manager that does not answer
        calls.append(cmd)
        release.wait()
        raise OSError(errno.ENOLCK, "no locks available")

    monkeypatch.setattr(turns, "fcntl", types.SimpleNamespace(
        fcntl=silent, **{k: getattr(real, k) for k in dir(real) if k.startswith("F_")}))
    monkeypatch.setattr(turns, "ANSWER_WAIT_S", 0.0)
    monkeypatch.setattr(turns, "_SILENT", {})
    monkeypatch.setattr(turns, "LOCAL_TYPES", frozenset())  # a network file system
    monkeypatch.setattr(turns, "_LOCAL", {})
    try:
        thread, out = _in_thread(lambda: (_write_late(path), list_entries(path))[1])
        thread.join(JOIN_S)
        assert not thread.is_alive(), "a lock call that never answers was waited for"
    finally:
        release.set()
    assert [e.name for e in out[0]] == ["earlier", "late"]
    assert len(calls) == 1  # that file system's locks are not asked again
    assert "did not answer" in caplog.text and "unlocked" in caplog.text


def test_a_reader_waits_for_a_writer_holding_the_file_only_so_long(path, clock):
    import fcntl
    import os

    fd = os.open(path, os.O_RDWR)  # a writer's turn, held as a stalled writer holds it
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, turns._flock(fcntl.F_WRLCK, turns.TURN))
        thread, out = _in_thread(lambda: list_entries(path))
        thread.join(JOIN_S)
        assert not thread.is_alive(), "the reader waited for the writer without end"
    finally:
        os.close(fd)
    assert isinstance(out[0], InputError)
    assert f"for more than {turns.TURN_WAIT_S:g} s" in str(out[0])
    assert clock.now() >= turns.TURN_WAIT_S
    assert [e.name for e in list_entries(path)] == ["earlier"]  # and afterwards it reads


def _overrun_now(path) -> None:
    """A scan of this process writes `path` now, overrunning this thread's read of it."""
    writer, out = _in_thread(lambda: _write_late(path))
    writer.join(JOIN_S)
    assert out == [None]


def test_an_overrun_read_whose_closed_file_answered_without_an_error_is_told_to_read_again(
        path, clock):
    answers: list[object] = []
    with pytest.raises(InputError) as raised, open_read(path) as f:
        _overrun_now(path)
        answers += ["earlier" in f, f.get("earlier")]  # a closed file's answers, no error
    assert answers == [False, None]  # not what the file holds: the read must not stand
    assert "read it again" in str(raised.value)
    assert [e.name for e in list_entries(path)] == ["earlier", "late"]


def test_an_overrun_read_that_fails_on_what_the_closed_file_answered_is_told_to_read_again(
        path, clock):
    with pytest.raises(InputError, match="read it again"), open_read(path) as f:
        _overrun_now(path)
        f.get("earlier")["data"]  # None["data"]: a TypeError, not the file's fault


def test_entries_listed_while_a_scan_of_this_process_overruns_the_listing_are_not_misread(
        path, clock, monkeypatch):
    from smm_daq.storage import nexus

    write_map_entry(path, _map("second"), kind="scan")
    real, calls = nexus._info_or_problem, []

    def overrun_after_the_first(name, g, source):
        if calls:
            _overrun_now(path)
        calls.append(name)
        return real(name, g, source)

    monkeypatch.setattr(nexus, "_info_or_problem", overrun_after_the_first)
    with pytest.raises(InputError, match="read it again"), open_read(path) as f:
        nexus.list_entries_in(f, str(path))  # not "second" listed as unreadable, nor missing
    assert calls == ["earlier", "second"]
    monkeypatch.setattr(nexus, "_info_or_problem", real)
    assert [e.name for e in list_entries(path)] == ["earlier", "second", "late"]


def test_entries_listed_while_a_scan_of_this_process_overruns_the_listing_are_listed_again(
        path, clock, monkeypatch):
    """`list_entries` (and every reader that reads again what another process's write
    overlapped) reads again a read that a writer of this process overran: the window lists
    the file as the write left it, not an error, while its own scan stores a line."""
    from smm_daq.storage import nexus

    write_map_entry(path, _map("second"), kind="scan")
    real, calls = nexus._info_or_problem, []

    def overrun_once(name, g, source):
        calls.append(name)
        if len(calls) == 2:
            _overrun_now(path)
        return real(name, g, source)

    monkeypatch.setattr(nexus, "_info_or_problem", overrun_once)
    assert [e.name for e in list_entries(path)] == ["earlier", "second", "late"]
    assert calls == ["earlier", "second", "earlier", "second", "late"]  # read again, whole


def test_a_read_that_waited_for_a_write_of_its_own_process_is_not_said_written_meanwhile(
        path, monkeypatch):
    """Where no lock is held for a read (macOS, Windows, a file system whose locks do not
    answer), a reader that arrives while a writer of its own process is at work waits for it
    (`here`): that write ended before the read began, so the read is the file's as it left
    it, not one another process's write overlapped."""
    import os

    from smm_daq.storage import h5file

    device = os.stat(path).st_dev
    monkeypatch.setattr(turns, "_SILENT", {device: turns.file_system_identity(device)})  # no locks
    waiting, go = threading.Event(), threading.Event()

    class HeldClock(VirtualClock):
        def sleep(self, seconds: float) -> None:  # the reader's first pause waits for the test
            if not waiting.is_set():
                waiting.set()
                assert go.wait(JOIN_S)
            super().sleep(seconds)

    monkeypatch.setattr(turns, "CLOCK", HeldClock())
    began, release = threading.Event(), threading.Event()
    real_room = h5file._reserve_room

    def slow_room(p, room, **named):  # the writer has its turn, and has not opened the file yet
        began.set()
        assert release.wait(JOIN_S)
        real_room(p, room, **named)

    monkeypatch.setattr(h5file, "_reserve_room", slow_room)
    writer, written = _in_thread(lambda: _touch(path, "late"))
    assert began.wait(JOIN_S)

    def read() -> object:
        with open_read(path) as f:
            return f.attrs.get("late")

    reader, out = _in_thread(read)
    try:
        assert waiting.wait(JOIN_S)  # the reader waits for the write ...
    finally:
        release.set()
    writer.join(JOIN_S)
    assert written == [None]
    go.set()
    reader.join(JOIN_S)
    assert out == [1]  # ... and reads the file as it left it


def _stalled_write(path, stalled: threading.Event, release: threading.Event) -> None:
    """A write of this process stopped on a stalled disk until `release`."""
    with writing(path) as w:
        w.attrs["touched"] = 1
        w.flush()
        stalled.set()
        assert release.wait(JOIN_S)


def test_a_writer_waits_for_a_stalled_writer_of_its_own_process_only_so_long(path, clock):
    stalled, release = threading.Event(), threading.Event()
    first, first_out = _in_thread(lambda: _stalled_write(path, stalled, release))
    try:
        assert stalled.wait(JOIN_S)
        second, out = _in_thread(lambda: _touch(path, "late"))
        second.join(JOIN_S)
        assert not second.is_alive(), "a writer waited for a stalled writer without end"
    finally:
        release.set()
    first.join(JOIN_S)
    assert first_out == [None]
    assert isinstance(out[0], StorageError)
    assert f"for more than {turns.TURN_WAIT_S:g} s" in str(out[0])
    assert "nothing was written" in str(out[0])
    assert clock.now() >= turns.TURN_WAIT_S
    with open_read(path) as f:
        assert f.attrs["touched"] == 1 and "late" not in f.attrs


def _touch(path, name: str) -> None:
    with writing(path) as w:
        w.attrs[name] = 1


def test_lock_calls_on_a_local_file_system_are_made_without_a_thread_each(path, monkeypatch):
    import os

    if turns.file_system_type(os.stat(path).st_dev) not in turns.LOCAL_TYPES:
        pytest.skip("the test's files are not on a file system of this machine's own")

    class NoThread:
        def __init__(self, *args, **kwargs) -> None:
            raise AssertionError("a thread was started for a lock call on a local disk")

    monkeypatch.setattr(turns, "threading", types.SimpleNamespace(Thread=NoThread,
                                                                Event=threading.Event))
    _write_late(path)
    assert [e.name for e in list_entries(path)] == ["earlier", "late"]


def test_a_reader_waits_for_a_stalled_writer_of_its_own_process_only_so_long_without_locks(
        path, clock, monkeypatch):
    import os

    # the file system's lock manager did not answer before: no locks to wait on
    device = os.stat(path).st_dev
    monkeypatch.setattr(turns, "_SILENT", {device: turns.file_system_identity(device)})
    stalled, release = threading.Event(), threading.Event()
    first, first_out = _in_thread(lambda: _stalled_write(path, stalled, release))
    try:
        assert stalled.wait(JOIN_S)
        reader, out = _in_thread(lambda: list_entries(path))
        reader.join(JOIN_S)
        assert not reader.is_alive(), "a reader waited for a stalled writer without end"
    finally:
        release.set()
    first.join(JOIN_S)
    assert first_out == [None]
    assert isinstance(out[0], InputError)
    assert f"for more than {turns.TURN_WAIT_S:g} s" in str(out[0])
    assert clock.now() >= turns.TURN_WAIT_S
    assert [e.name for e in list_entries(path)] == ["earlier"]  # and afterwards it reads


def test_the_turns_of_files_no_thread_uses_any_more_are_forgotten(tmp_path, path):
    """A window open for weeks opens thousands of files: only those read or written now are
    kept (one each, shared by every thread using it), not one for every file ever opened."""
    from smm_daq.storage import here

    others = [tmp_path / f"other{i}.h5" for i in range(3)]
    for other in others:
        write_map_entry(other, _map("m"), kind="scan")
        with open_read(other) as f:
            assert list(f) == ["m"]
    with open_read(path), writing(others[0]):
        assert sorted(here._FILES) == sorted(str(p.resolve()) for p in (path, others[0]))
    assert here._FILES == {}


@pytest.mark.parametrize(("kind", "local"), [
    ("ext4", True), ("overlay", True), ("ntfs3", True), ("exfat", True), ("vfat", True),
    ("hfsplus", True), ("udf", True),  # the kernel's own locks: asked directly
    ("nfs4", False), ("cifs", False), ("9p", False), ("virtiofs", False), ("fuseblk", False),
    ("", False)])  # a lock manager or a server answers, or who does cannot be told
def test_lock_calls_are_made_directly_only_on_file_systems_whose_locks_the_kernel_keeps(
        monkeypatch, kind: str, local: bool) -> None:
    monkeypatch.setattr(turns, "_LOCAL", {})
    monkeypatch.setattr(turns, "file_system_type", lambda device: kind)
    assert turns._local(12345) is local
