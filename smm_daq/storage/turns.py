"""Readers' and writers' turns on a session file: open-file-description locks on two bytes of
the file itself, where the system has them (Linux).

A writer holds the file alone for one write. A reader shares it with other readers for its
whole read, from open to close, not only while it opens it: HDF5 reads objects when they are
asked for, and a reader that opened the file before a write began can meet metadata of the
write that points past the end of the file it knows ("addr overflow"), which says nothing
about the file, only that it changed under the reader.

- Byte `DATA`: readers share it while they read; a writer holds it alone while it writes.
- Byte `TURN`: a writer holds it from before it waits for `DATA` to the end of its write; a
  reader passes through it (takes it shared and lets it go) before it takes `DATA`, so a
  stream of readers, one overlapping the next, cannot keep a waiting writer out.

A writer waits for the readers already reading at most `WRITER_WAIT_S`, then writes anyway
and says so: a reader left holding the file (a viewer, a notebook) must not hold up a scan.
Such a reader finds the file changed under it (`changed`) and is told so, not that the file
is damaged.
"""

from __future__ import annotations

import errno
import logging
import os
import struct
import time
from dataclasses import dataclass

try:
    import fcntl
except ImportError:  # Windows: `smm_daq.storage.h5file` uses a lock file instead
    fcntl = None  # type: ignore[assignment]

DATA = 0
TURN = 1
WRITER_WAIT_S = 5.0  # longest a writer waits for readers already reading
_FIRST_PAUSE_S, _LONGEST_PAUSE_S = 0.001, 0.05
_BUSY = (errno.EAGAIN, errno.EACCES)  # what a lock that another holds answers
_log = logging.getLogger(__name__)


def available() -> bool:
    """Whether the system has open-file-description locks."""
    return getattr(fcntl, "F_OFD_SETLKW", None) is not None


def _flock(kind: int, start: int) -> bytes:
    # struct flock {short l_type; short l_whence; off_t l_start; off_t l_len; pid_t l_pid;}
    return struct.pack("@hhqqi4x", kind, os.SEEK_SET, start, 1, 0)


def _lock(fd: int, kind: int, start: int, *, wait: bool = True) -> bool:
    """Lock one byte; False when `wait` is off and another holds it. OSError where the file
    system has no such locks."""
    cmd = fcntl.F_OFD_SETLKW if wait else fcntl.F_OFD_SETLK  # type: ignore[union-attr]
    try:
        fcntl.fcntl(fd, cmd, _flock(kind, start))  # type: ignore[union-attr]
    except OSError as exc:
        if not wait and exc.errno in _BUSY:
            return False
        raise
    return True


def _pause(seconds: float) -> None:
    time.sleep(seconds)


def hold_for_reading(fd: int) -> None:
    """Share the file with other readers until `fd` is closed, once no writer writes or
    waits. OSError where the file system has no such locks."""
    _lock(fd, fcntl.F_RDLCK, TURN)  # type: ignore[union-attr]
    try:
        _lock(fd, fcntl.F_RDLCK, DATA)  # type: ignore[union-attr]
    finally:
        _lock(fd, fcntl.F_UNLCK, TURN)  # type: ignore[union-attr]


def hold_for_writing(fd: int, source: str) -> None:
    """Hold the file alone until `fd` (opened for writing) is closed: after any other writer,
    and after the readers already reading, waited for at most `WRITER_WAIT_S`. OSError where
    the file system has no such locks."""
    _lock(fd, fcntl.F_WRLCK, TURN)  # type: ignore[union-attr]
    deadline = time.monotonic() + WRITER_WAIT_S
    pause = _FIRST_PAUSE_S
    while not _lock(fd, fcntl.F_WRLCK, DATA, wait=False):  # type: ignore[union-attr]
        left = deadline - time.monotonic()
        if left <= 0:
            _log.warning("%s: written while another process still reads it (it has held "
                         "it for more than %g s); that reader is told to read it again",
                         source, WRITER_WAIT_S)
            return
        _pause(min(pause, left))
        pause = min(2 * pause, _LONGEST_PAUSE_S)


@dataclass(frozen=True)
class Stamp:
    """What of a file any write changes: its identity, size and modification time."""

    inode: int
    size: int
    mtime_ns: int


def stamp(path: str | os.PathLike[str]) -> Stamp | None:
    """The file's `Stamp`, None when it cannot be had."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return Stamp(st.st_ino, st.st_size, st.st_mtime_ns)


def changed(path: str | os.PathLike[str], before: Stamp | None) -> bool:
    """Whether the file was written (or replaced) since `before` was taken."""
    return before is not None and stamp(path) != before
