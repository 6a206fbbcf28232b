"""Answers about a file system, kept by its device number (st_dev) only while this process's
mount table stays as it was.

A device number stands for a file system only while it is mounted: once it is unmounted, the
next one mounted may get the number (a USB stick put in where another was, both sdb1; an NFS
share's anonymous number taken by a tmpfs mounted after it), and be of another type, whose
inode numbers or locks are not to be trusted as the first one's were. The kernel marks
/proc/self/mountinfo (POLLPRI) at each mount and unmount this process can see, so telling
whether anything changed costs one poll call per look (a microsecond or two), not a read of
the table (a hundred or more); an answer found before a change is found anew after it, all
of them from one read of the table (`table`).
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

MOUNT_TABLE = "/proc/self/mountinfo"
_T = TypeVar("_T")


class _Watch:
    """This process's mount table, watched for changes: `generation` is a number that grows
    at each change seen."""

    def __init__(self) -> None:
        self._guard = threading.Lock()  # one poll object answers one caller at a time
        self._poll: select.poll | None = None
        self._fd: int | None = None
        self._changes = 0
        # the table as last read: its file (`MOUNT_TABLE`), the generation, its lines
        self.read: tuple[str, int, list[str]] | None = None

    def generation(self) -> int:
        """Where the table cannot be watched (no /proc; no descriptor left to open it with,
        asked again at the next look), a new number at each look: nothing found out is kept.
        Not Linux: no mount table, whose answers never change."""
        if not sys.platform.startswith("linux"):
            return 0
        with self._guard:
            if self._poll is None:
                self._open()
            elif self._poll.poll(0):
                self._changes += 1
            return self._changes

    def forked(self) -> None:
        """In a child just forked: its descriptor of the table shares its parent's mark of a
        change (a look by either clears it for both), so it opens one of its own at its next
        look. The inherited one is closed here, at once: later, the child (a daemon closing
        every descriptor) may have closed it and opened another file under its number."""
        self._guard = threading.Lock()  # another thread of the parent may have held it
        fd, self._fd, self._poll = self._fd, None, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def forget(self) -> None:
        """What was found out at this look is not kept: a new number at the next."""
        with self._guard:
            self._changes += 1

    def _open(self) -> None:
        self._changes += 1  # what was found before this looked (or in its parent) is old
        try:
            self._fd = os.open(MOUNT_TABLE, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLPRI)


_WATCH = _Watch()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WATCH.forked)


def generation() -> int:
    """A number that stays the same for as long as this process's mount table does."""
    return _WATCH.generation()


def table() -> list[str]:
    """The lines of this process's mount table (`MOUNT_TABLE`), read once while it stays as
    it was (`generation`): the answers kept by device (`remembered`: a file system's type for
    its inode numbers, for its locks, what tells it from another) are found anew from one
    read after a change. None where it cannot be read (no /proc; no descriptor left: an
    answer found from none is not kept, `remembered`). A mount point's name is the kernel's
    bytes, not always UTF-8: such bytes are kept as surrogates (`os.fsdecode`'s)."""
    watch, where = _WATCH, MOUNT_TABLE
    now = generation()  # before the read: a change during it is seen at the next look
    kept = watch.read
    if kept is not None and kept[:2] == (where, now):
        return list(kept[2])
    try:
        with open(where, encoding="utf-8", errors="surrogateescape") as fh:
            lines = fh.readlines()
    except OSError:
        watch.forget()
        return []
    watch.read = (where, now, lines)
    return list(lines)


def remembered(kept: dict[int, tuple[int, _T]], device: int, find: Callable[[int], _T]) -> _T:
    """`find(device)`, kept in `kept` (by device: the `generation` it was found in and the
    answer) until the mount table changes."""
    now = generation()
    known = kept.get(device)
    if known is not None and known[0] == now:
        return known[1]
    answer = find(device)
    kept[device] = (now, answer)
    return answer
