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
is damaged. A writer at work is waited for at most `TURN_WAIT_S` (`Busy`): one stopped while
it writes (a stalled disk) holds up nobody for ever.

Every lock is asked for without blocking, again and again with pauses on `CLOCK` until its
wait is over, and each call is given `ANSWER_WAIT_S` to answer: on NFS, a lock manager that
does not answer holds a lock call up for ever. A call left unanswered counts as a file system
without such locks (OSError, as one that refuses them), for that file system from then on
in this process (while it stays mounted: another mounted under its device number is asked
anew); its callers read and write unlocked there, as where there are none. On a
file system of this machine's own (`LOCAL_TYPES`), whose lock calls the kernel answers at
once, the call is made directly: a thread a call costs a few hundred microseconds, several
times what a read of a session file's line takes otherwise.
"""

from __future__ import annotations

import errno
import logging
import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass

from smm_daq.clock import Clock, SystemClock
from smm_daq.storage import mounts

try:
    import fcntl
except ImportError:  # Windows: `smm_daq.storage.h5file` uses a lock file instead
    fcntl = None  # type: ignore[assignment]

DATA = 0
TURN = 1
WRITER_WAIT_S = 5.0  # longest a writer waits for readers already reading
TURN_WAIT_S = 60.0  # longest anyone waits for a writer at work (a write takes a second at most)
ANSWER_WAIT_S = 10.0  # longest one lock call may take to answer (real time: it is the kernel's)
CLOCK: Clock = SystemClock()  # the pauses between attempts; tests put a VirtualClock here
_FIRST_PAUSE_S, _LONGEST_PAUSE_S = 0.001, 0.05
_BUSY = (errno.EAGAIN, errno.EACCES)  # what a lock that another holds answers
# by st_dev: the file systems whose lock calls went unanswered, each with its
# `file_system_identity` then (another file system mounted under its number later has
# another); None: the mount table could not be read then, so the one found at the next look
# that reads it is taken for it
_SILENT: dict[int, str | None] = {}
# by st_dev: its `file_system_identity`, while the mount table stays as it was
_ENTRIES: dict[int, tuple[int, str | None]] = {}
# file-system types whose locks this machine's kernel keeps itself (never a lock manager
# across a network, nor a FUSE server): their lock calls answer at once
LOCAL_TYPES = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "ramfs", "overlay",
                         "zfs", "f2fs", "jfs", "bcachefs", "reiserfs", "nilfs2", "ntfs3",
                         "ntfs", "exfat", "vfat", "msdos", "hfsplus", "hfs", "udf"})
# by st_dev: whether its file system is of `LOCAL_TYPES`, while the mount table stays as it was
_LOCAL: dict[int, tuple[int, bool]] = {}
_log = logging.getLogger(__name__)


class Busy(Exception):
    """A writer has held the file longer than `TURN_WAIT_S`: one writing it at length, or
    stopped while it writes (a stalled disk)."""


def available() -> bool:
    """Whether the system has open-file-description locks."""
    return getattr(fcntl, "F_OFD_SETLK", None) is not None


def _flock(kind: int, start: int) -> bytes:
    # struct flock {short l_type; short l_whence; off_t l_start; off_t l_len; pid_t l_pid;}
    return struct.pack("@hhqqi4x", kind, os.SEEK_SET, start, 1, 0)


def _attempt(fd: int, kind: int, start: int) -> bool:
    """Lock (or unlock) one byte without waiting for another holder; False when another
    holds it. OSError where the file system has no such locks, or its lock manager does not
    answer within `ANSWER_WAIT_S`."""
    device = os.fstat(fd).st_dev
    if _silent(device):
        raise OSError(errno.ENOLCK, "this file system's locks did not answer before")
    if _local(device):
        return _call(fd, kind, start)
    own = os.dup(fd)  # the same open file description: its locks are `fd`'s
    answer: list[bool] = []
    failed: list[OSError] = []
    done = threading.Event()

    def call() -> None:
        try:
            answer.append(_call(own, kind, start))
        except OSError as exc:
            failed.append(exc)
        finally:
            os.close(own)
            done.set()

    threading.Thread(target=call, name="smm-daq file lock", daemon=True).start()
    if not done.wait(ANSWER_WAIT_S):
        _SILENT[device] = file_system_identity(device)
        _log.warning("the lock manager of the file system of a session file did not answer in "
                     "%g s: its files are read and written unlocked from now on", ANSWER_WAIT_S)
        raise OSError(errno.ENOLCK, f"the lock call did not answer in {ANSWER_WAIT_S:g} s")
    if failed:
        raise failed[0]
    return answer[0]


def _call(fd: int, kind: int, start: int) -> bool:
    """The lock call itself: False when another holds the byte."""
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _flock(kind, start))  # type: ignore[union-attr]
    except OSError as exc:
        if exc.errno in _BUSY:
            return False
        raise
    return True


def _local(device: int) -> bool:
    """Whether the file system `device` (st_dev) is of `LOCAL_TYPES` (not known: False),
    asked again once the mount table changed (`mounts`)."""
    return mounts.remembered(_LOCAL, device, lambda d: file_system_type(d) in LOCAL_TYPES)


def _silent(device: int) -> bool:
    """Whether the lock calls of the file system `device` (st_dev) went unanswered before:
    of that file system (also mounted again, or at another place), not of another mounted
    under its number since. Where the mount table cannot be read, to tell which it is, it is
    taken for the same: asking a silent lock manager again costs a stuck thread each time."""
    if device not in _SILENT:
        return False
    then = _SILENT[device]
    now = mounts.remembered(_ENTRIES, device, file_system_identity)
    if then is None or now is None:
        if now is not None:  # the table read again: that file system is the one now there
            _SILENT[device] = now
        return True
    return then == now


def file_system_identity(device: int) -> str | None:
    """What tells the file system mounted as `device` (st_dev) from another mounted under its
    number: the number, its type and its source (the first two fields of its mount table
    line after " - "). Not where, how often or how it is mounted: its mount ID, mount point,
    propagation, mount options and super options, which the same file system changes when
    it is mounted again or remounted with other options (`mount -o remount,ro`): it keeps
    its files, their inode numbers and its lock manager. "" where it is not in the table (or
    not Linux), None where the table cannot be read (no descriptor left)."""
    if not hasattr(os, "major"):
        return ""
    lines = mounts.table()
    if not lines:  # a readable table has the root's line at least
        return None
    described = _mount_entry(device, lines).partition(" - ")[2].split()[:2]
    return " ".join([f"{os.major(device)}:{os.minor(device)}", *described]) if described else ""


def mount_entry(device: int) -> str:
    """The line of /proc/self/mountinfo of the file system mounted as `device` (st_dev) in
    this process's view, the first where it is mounted at several places; "" where that
    cannot be told (also on Windows, which has no device numbers to split)."""
    if not hasattr(os, "major"):
        return ""
    return _mount_entry(device, mounts.table())


def _mount_entry(device: int, lines: list[str]) -> str:
    """`mount_entry` among the mount table's `lines`."""
    wanted = f"{os.major(device)}:{os.minor(device)}"
    for line in lines:
        mount, separator, rest = line.partition(" - ")
        fields = mount.split()
        if separator and len(fields) > 2 and fields[2] == wanted and rest.split():
            return line
    return ""


def file_system_type(device: int) -> str:
    """The type of the file system mounted as `device` (st_dev) in this process's view, as
    /proc/self/mountinfo says it ("ext4", "nfs4"); "" where that cannot be told."""
    described = mount_entry(device).partition(" - ")[2].split()
    return described[0] if described else ""


def _pause(seconds: float) -> None:
    CLOCK.sleep(seconds)


def wait_until(attempt: Callable[[], bool], wait_s: float) -> bool:
    """Repeat `attempt` with growing pauses until it succeeds (True) or `wait_s` of `CLOCK`
    have passed (False)."""
    deadline = CLOCK.now() + wait_s
    pause = _FIRST_PAUSE_S
    while not attempt():
        left = deadline - CLOCK.now()
        if left <= 0:
            return False
        _pause(min(pause, left))
        pause = min(2 * pause, _LONGEST_PAUSE_S)
    return True


def _take(fd: int, kind: int, start: int, wait_s: float) -> bool:
    return wait_until(lambda: _attempt(fd, kind, start), wait_s)


def busy(source: str) -> Busy:
    """`Busy` for the file at `source` (what its readers and writers are told)."""
    return Busy(f"{source}: another writer has held it for more than {TURN_WAIT_S:g} s (one "
                "writing at length, or stopped while it writes: a stalled disk); expected it "
                "free: try again once that write has finished")


def turn_deadline() -> float:
    """When a wait for a writer at work that begins now ends (`TURN_WAIT_S`, on `CLOCK`)."""
    return CLOCK.now() + TURN_WAIT_S


def left(deadline: float) -> float:
    """What is left of a wait until `deadline` (on `CLOCK`); 0 once it has passed."""
    return max(0.0, deadline - CLOCK.now())


def hold_for_reading(fd: int, source: str, deadline: float | None = None) -> None:
    """Share the file with other readers until `fd` is closed, once no writer writes or
    waits. Busy when a writer holds it past `deadline` (`turn_deadline` where not given:
    `TURN_WAIT_S` from now, for both bytes together); OSError where the file system has no
    such locks."""
    deadline = turn_deadline() if deadline is None else deadline
    if not _take(fd, fcntl.F_RDLCK, TURN, left(deadline)):  # type: ignore[union-attr]
        raise busy(source)
    try:
        if not _take(fd, fcntl.F_RDLCK, DATA, left(deadline)):  # type: ignore[union-attr]
            raise busy(source)
    finally:
        _attempt(fd, fcntl.F_UNLCK, TURN)  # type: ignore[union-attr]


def hold_for_writing(fd: int, source: str, deadline: float | None = None,
                     ready: Callable[[], None] | None = None) -> bool:
    """Hold the file alone until `fd` (opened for writing) is closed: after any other writer,
    and after the readers already reading, waited for at most `WRITER_WAIT_S`. True when
    they had all finished, False when it writes under one. Busy when another writer holds it
    past `deadline` (`turn_deadline` where not given); OSError where the file system has no
    such locks. `ready`, called once the writers' turn is held and before the readers are
    waited for, may raise to let it go (the file is not the one its writer checked): a
    write not made waits for no reader, nor says it writes under one."""
    deadline = turn_deadline() if deadline is None else deadline
    if not _take(fd, fcntl.F_WRLCK, TURN, left(deadline)):  # type: ignore[union-attr]
        raise busy(source)
    if ready is not None:
        ready()
    if _take(fd, fcntl.F_WRLCK, DATA, WRITER_WAIT_S):  # type: ignore[union-attr]
        return True
    _log.warning("%s: written while another process still reads it (it has held it for more "
                 "than %g s); that reader is told to read it again", source, WRITER_WAIT_S)
    return False


def hold_for_writing_at_once(fd: int) -> bool:
    """Hold the file alone until `fd` (opened for writing) is closed where no other reader
    or writer holds it or waits for it now; False where one does, asked once and not waited
    for. OSError where the file system has no such locks."""
    return (_take(fd, fcntl.F_WRLCK, TURN, 0)  # type: ignore[union-attr]
            and _take(fd, fcntl.F_WRLCK, DATA, 0))  # type: ignore[union-attr]


@dataclass(frozen=True)
class Stamp:
    """What of a file any write changes: its identity, size and modification time."""

    inode: int
    size: int
    mtime_ns: int


def stamp(path: str | os.PathLike[str]) -> Stamp | None:
    """The file's `Stamp`, None when it cannot be had. Its inode number only where the file
    system keeps one per file (`identity.inode_kept`): elsewhere (CIFS `noserverino`, some
    FUSE) a file unwritten can show a new number at each look."""
    from smm_daq.storage import identity  # which imports this module

    try:
        st = os.stat(path)
    except OSError:
        return None
    inode = st.st_ino if identity.inode_kept(st.st_dev) else 0
    return Stamp(inode, st.st_size, st.st_mtime_ns)


def changed(path: str | os.PathLike[str], before: Stamp | None) -> bool:
    """Whether the file was written (or replaced) since `before` was taken."""
    return before is not None and stamp(path) != before
