"""Threads of this process taking turns on a session file.

HDF5 opens a file once per process: it refuses to open a file for writing that any thread of
the process has open for reading. So a writer here waits for this process's readers as it
waits for other processes' (`turns.WRITER_WAIT_S` at most, on `turns.CLOCK`), then closes the
reads still open and writes: a scan never stalls behind a reader of its own process. A read
so closed is *overrun*: its next use of the file fails, and its reader is told to read the
file again, never that the file is damaged, as a reader in another process is (`turns`).
A reader waits for a writer here at work (a write takes a second at most), `turns.TURN_WAIT_S`
at most.

A thread that opens a file for reading within its own write of it, or for writing within its
own read, is refused at once (`StorageError`): it would wait for itself for ever.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py

from smm_daq.errors import InputError, StorageError
from smm_daq.storage import turns
from smm_daq.storage.aliases import file_key, keyed


@dataclass(eq=False)
class Read:
    """One thread's read of a file: the file open for it, and whether a writer overran it."""

    thread: int
    file: h5py.File
    overrun: bool = False


class _Turns:
    """The reads of one file open in this process, and the thread writing it, if any; `users`:
    the threads reading, writing or waiting to (`_using`), so it is forgotten once none is."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.reads: list[Read] = []
        self.writer: int | None = None
        self.users = 0


# Only the files some thread reads, writes or waits for now: a window open for weeks opens
# thousands of files, one after another.
_FILES: dict[str, _Turns] = {}
_GUARD = threading.Lock()


@contextlib.contextmanager
def _using(path: Path) -> Iterator[_Turns]:
    """The turns of `path`, kept for as long as this is held (every thread using the file
    meanwhile gets the same), and forgotten when the last user lets go."""
    with keyed(path) as key:  # one per file, however named
        with _GUARD:
            turn = _FILES.setdefault(key, _Turns())
            turn.users += 1
        try:
            yield turn
        finally:
            with _GUARD:
                turn.users -= 1
                if not turn.users:
                    del _FILES[key]


def _current(path: Path) -> _Turns:
    """The turns of `path` now: empty ones, not kept, when no thread uses the file."""
    with _GUARD:
        return _FILES.get(file_key(path)) or _Turns()


def refuse_within(path: Path, *, writing: bool, source: Path | None = None) -> None:
    """StorageError when this thread may not open `path` for writing (`writing`) or for
    reading now: it writes it already, or, to write it, reads it. Asked before any lock is
    waited for. `source`: the file as the user named it (a symbolic link to `path`), for
    what is said; `path` when not given."""
    me = threading.get_ident()
    turn = _current(path)
    with turn.changed:
        if turn.writer == me:
            held = "writing"
        elif writing and any(read.thread == me for read in turn.reads):
            held = "reading"
        else:
            return
    raise StorageError(
        f"{source or path}: cannot be opened for {'writing' if writing else 'reading'} by the "
        f"thread that has it open for {held} (it would wait for itself): finish the "
        f"{'write' if held == 'writing' else 'read'} first; nothing was changed")


@contextlib.contextmanager
def reading(path: Path, open_file: Callable[[], h5py.File], *,
            source: Path | None = None) -> Iterator[Read]:
    """A read of `path` by this thread, once no other thread here writes it: the file opened
    by `open_file` (while no writer here can begin), closed after. A writer here at work is
    waited for `turns.TURN_WAIT_S` at most, on `turns.CLOCK` (then InputError, naming
    `source`, the file as the user named it, or else `path`), as one in another process
    is: also where the file system has no locks to wait on."""
    me = threading.get_ident()
    with _using(path) as turn:
        yield from _read(source or path, turn, me, open_file)


def _read(said: Path, turn: _Turns, me: int,
          open_file: Callable[[], h5py.File]) -> Iterator[Read]:
    begun: list[Read] = []

    def begin() -> bool:
        with turn.changed:
            if turn.writer is not None:
                return False
            begun.append(Read(me, open_file()))
            turn.reads.append(begun[0])
            return True

    if not turns.wait_until(begin, turns.TURN_WAIT_S):
        raise InputError(str(turns.busy(str(said))))
    read = begun[0]
    try:
        yield read
    finally:
        read.file.close()  # where a writer overran it, closed already: nothing to do
        with turn.changed:
            turn.reads.remove(read)
            turn.changed.notify_all()


def reading_here(path: Path) -> bool:
    """Whether this thread has `path` open for reading."""
    me = threading.get_ident()
    turn = _current(path)
    with turn.changed:
        return any(read.thread == me for read in turn.reads)


@contextlib.contextmanager
def writing(path: Path, *, waited: bool) -> Iterator[None]:
    """This thread's write of `path`: once the other threads' reads have ended, or have
    been given `turns.WRITER_WAIT_S` (`waited`: given it already, while this writer waited
    for the file's readers' lock) and are overrun. Writers here take turns before this
    (`smm_daq.storage.h5file`)."""
    with _using(path) as turn:
        yield from _write(turn, waited)


def _write(turn: _Turns, waited: bool) -> Iterator[None]:
    with turn.changed:
        turn.writer = threading.get_ident()  # readers arriving now wait for the write
    try:
        if not waited:
            turns.wait_until(lambda: _no_reads(turn), turns.WRITER_WAIT_S)
        with turn.changed:
            for read in turn.reads:
                read.overrun = True
                read.file.close()
        yield
    finally:
        with turn.changed:
            turn.writer = None
            turn.changed.notify_all()


def _no_reads(turn: _Turns) -> bool:
    with turn.changed:
        return not turn.reads
