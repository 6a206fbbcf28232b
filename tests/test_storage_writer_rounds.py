"""A writer that finds, once its turn comes, that another process wrote the file since its
heap check lets its turn go and checks the file again before it takes it anew: that first
round is abandoned before it waits for the file's readers, so it says nothing of writing
under a reader and closes no read of this process (the window's read is overrun once, by
the write that is made). And its turn is waited for `turns.TURN_WAIT_S` at most in all, over
both rounds, as any wait for a writer at work. Waits run on a virtual clock: nothing sleeps."""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable

import pytest
from ended_in_thread import ended
from opens_elsewhere import opened_elsewhere
from turn_files import session_file, waits_on

from smm_daq.clock import VirtualClock
from smm_daq.errors import InputError, StorageError
from smm_daq.storage import global_heap, turns
from smm_daq.storage.h5file import open_read, writing

pytestmark = pytest.mark.skipif(not turns.available(), reason="no open-file-description locks")
WRITTEN_UNDER = "written while another process still reads it"


class _At(VirtualClock):
    """A virtual clock that does what is due at each time it passes (`at`)."""

    def __init__(self) -> None:
        super().__init__()
        self.due: list[tuple[float, Callable[[], None]]] = []

    def at(self, when: float, then: Callable[[], None]) -> None:
        self.due.append((when, then))
        self.due.sort(key=lambda item: item[0])

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        while self.due and self.now() >= self.due[0][0]:
            self.due.pop(0)[1]()


@pytest.fixture
def clock(monkeypatch) -> _At:
    return waits_on(monkeypatch, _At())


@pytest.fixture
def path(tmp_path):
    return session_file(tmp_path)


def _another_writers_turn(path) -> int:
    """Another process's writer at work on `path` (its writers' turn held); its descriptor."""
    fd = os.open(path, os.O_RDWR)
    assert turns._attempt(fd, fcntl.F_WRLCK, turns.TURN)
    return fd


def _written_by_it_and_let_go(path, fd: int) -> None:
    """That writer's write ends: the file written (its time of modification moved on, as a
    write moves it), its turn let go."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    os.close(fd)


def _write_note(path) -> None:
    with writing(path, create=False) as f:
        f.attrs["note"] = "written here"


def test_the_round_abandoned_neither_says_it_writes_under_a_reader_nor_closes_a_read(
        path, clock, caplog):
    caplog.set_level(logging.WARNING)
    with pytest.raises(InputError, match="was written by this program while it was read"), \
            open_read(path) as f:
        assert list(f) == ["earlier"]  # the window's read, held through the write
        other = _another_writers_turn(path)
        clock.at(30.0, lambda: _written_by_it_and_let_go(path, other))
        assert ended(lambda: _write_note(path)) is None
        list(f)  # overrun by the write made: read it again
    said = [r.getMessage() for r in caplog.records if WRITTEN_UNDER in r.getMessage()]
    assert len(said) == 1, said  # by the write made, not by the round abandoned
    # its turn at 30 s, then the readers waited for once, by the write made
    assert clock.now() < 30.0 + 2 * turns.WRITER_WAIT_S
    with open_read(path) as f:
        assert str(f.attrs["note"]) == "written here"
    assert opened_elsewhere(path) == "['earlier']"


def test_a_writers_turn_is_waited_for_turn_wait_s_at_most_over_both_rounds(
        path, clock, monkeypatch):
    """Another writer holds the file 40 s, and writes it; as this writer checks it again,
    another takes its turn and holds it on (a stalled disk): refused once 60 s have passed
    in all, not 60 s after the second round began."""
    before = path.read_bytes()
    first = _another_writers_turn(path)
    clock.at(40.0, lambda: _written_by_it_and_let_go(path, first))
    held: list[int] = []
    real = global_heap.damaged_collection

    def then_taken(p, *args):  # type: ignore[no-untyped-def]
        if clock.now() >= 40.0 and not held:  # the check of the file written meanwhile
            held.append(_another_writers_turn(path))
        return real(p, *args)

    monkeypatch.setattr(global_heap, "damaged_collection", then_taken)
    try:
        with pytest.raises(StorageError, match="another writer has held it for more than"):
            _write_note(path)
    finally:
        for fd in held:
            os.close(fd)
    assert held, "the second round was never reached"
    assert clock.now() <= turns.TURN_WAIT_S + 1.0
    assert path.read_bytes() == before  # nothing written: only its time of change moved
    assert opened_elsewhere(path) == "['earlier']"


def test_the_time_a_writers_heap_check_takes_is_not_taken_from_its_wait_for_its_turn(
        path, clock, monkeypatch):
    """Another process wrote the file (a new state, read whole before the lock: 61 s of a
    large file on a slow disk) and another writer is at work as that check ends, for 1 s:
    this writer waits that 1 s and writes. It waited for no writer longer than
    `turns.TURN_WAIT_S`: it is not refused as if it had."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # written elsewhere
    other: list[int] = []
    real = global_heap.damaged_collection

    def slow(p, *args):  # type: ignore[no-untyped-def]
        if not other:  # the first scan: long, and another writer's turn taken meanwhile
            clock.advance(turns.TURN_WAIT_S + 1.0)
            other.append(_another_writers_turn(path))
            clock.at(clock.now() + 1.0, lambda: os.close(other[0]))
        return real(p, *args)

    monkeypatch.setattr(global_heap, "damaged_collection", slow)
    _write_note(path)
    assert other, "the file was never checked"
    with open_read(path) as f:
        assert str(f.attrs["note"]) == "written here"
