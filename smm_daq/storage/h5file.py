"""Opening session files: for reading (also during a scan or after a crash) and for writing.

Format. Files are written with HDF5's format bounds ("v110", "latest"): every object is
encoded as HDF5 1.10 can decode it (a newer library would otherwise use encodings no 1.x
library reads, e.g. for boolean datasets), and the superblock allows SWMR writing.

Writing scheme. A file is never left open for writing while nothing is being written:
`writing` opens it, the caller writes and flushes, and it is closed again; a scan does this
once per line. A crash between two writes therefore leaves a file that every HDF5 reader opens
as it is. Scan lines are written in SWMR mode from the moment the file is opened
(`writing(..., swmr=True)`), so a crash during that write leaves a file that a SWMR reader
still reads whole; it is only marked "open for write" in its superblock. New entries are laid
out outside SWMR mode (it makes no new objects), staged under a temporary name and moved in
or swapped in whole (`smm_daq.storage.staging`); a crash then leaves the mark too. smm-daq
clears the mark on its next touch of the file (`repair`: copy every object into a fresh file
and swap it in, so nothing flushed is lost; reading the file in SWMR mode, or a copy whose
mark is cleared as `h5clear -s` does), and `smm-daq repair FILE`
does it on demand.

Scratch files. A new file is made beside its name and linked in whole; a repair rebuilds its
copy beside the file. Each such scratch file is named after its writer (`_scratch`), so one
that a killed writer left is removed by the next repair (`remove_leftovers`), and one that a
live process, or a process on another machine, writes is never touched. A name that is a
symbolic link stands for the file it finally names (`final_file`), resolved once per write,
repair or rebuild: that file is made, locked, written, rebuilt and replaced, its scratch
files beside it, and the link stays a link to it.

Room first. Every write first makes sure the file system will let the file grow by more than
the write can add (`HEADROOM` and the caller's `room`), and refuses with `StorageError` when it
will not (a full disk, a quota, a file size limit). HDF5 records the file's new end in the
superblock even when a data write failed for want of space, so a write cut short there
leaves a file shorter than its superblock says, which no HDF5 reader opens at all: every
line written before would be out of reach. The space is reserved with `posix_fallocate`, so
HDF5 writes into blocks it already has, and HDF5 cuts the file back to what it used on close;
where there is no such call (macOS, Windows), the room the disk says is free is checked.
A repair or a rebuild checks so for its copy, which may be many times the file
(`_copy_room`), and a refusal says how much room was needed and how much is free.

Writers of one file are serialized by an open-file-description lock on the file itself (not
HDF5's own file lock, which a reader holding the file open in a viewer would turn into a
stalled scan), and `open_read` shares that lock with other readers for its whole read, so a
reader sees the file before or after a write, never half of one, and a write never begins
under a reader (HDF5 reading a file outside SWMR mode cannot follow one). A writer waits for
the readers already reading only so long (`smm_daq.storage.turns`). Where the system has no
such locks (Windows, macOS), an exclusive lock on a file in the machine's lock directory
stands in, and a reader takes it only to wait for a writer at work. Threads of one process
take turns on a file as processes do (`smm_daq.storage.here`): HDF5 refuses to open a file
for writing that the same process has open for reading, so a writer that has waited for a
reader of its own process as long as for any closes that read before it writes, and the
reader is told to read again. A thread reading a file within its own write of it, or
writing it within its own read, is refused at once.

Damaged heaps. HDF5 reading a damaged global heap (where it keeps text of variable length)
never returns, in a call nothing can interrupt, so every read and write here checks the
file's heaps from its bytes first (`smm_daq.storage.global_heap`): once per state of the
file, which this process's own writes keep (a scan's lines are not checked again). A writer
scans before it waits for the writers' lock, so another process's write (a scan's line) is
not held up while a large file is read; under the lock it only confirms the file is still
in the state it judged (one another process wrote meanwhile is let go and scanned once more
before the lock, and scanned under it only where it was written again: `_judged_and_held`).
Damage met holding no lock is scanned for again once no writer is at work (`_heaps_checked`).
HDF5's open is of the file judged: which file it opened is read from its own descriptor, and
a file renamed over the one checked before the open (an outside tool's copy) is judged again
by a reader (`_opened_for_reading`) and refused by a writer (`_opened_readied`); a file
written since by a writer is opened as judged (where no lock keeps another process's writer
out, a scan's lines may land between every check and open). A copy written over it in place
(`cp`) in that moment is not told from such a write: the short looks at whose file it is and a
repair's open compare its whole state (`_opened_judged`), the looks taking, as a read does,
the file checked that was written before each of their opens.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import logging
import os
import re
import shutil
import socket
import stat
import sys
import threading
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import h5py
import numpy as np
from filelock import FileLock, Timeout

from smm_daq import PROGRAM_NAME, __version__
from smm_daq.errors import InputError, StorageError
from smm_daq.locks import FILE_MODE, lock_directory
from smm_daq.storage.aliases import keyed

try:
    import fcntl
except ImportError:  # Windows: a lock file stands in (`_machine_lock`)
    fcntl = None  # type: ignore[assignment]
from smm_daq.storage import global_heap, here, identity, turns
from smm_daq.storage.copying import copy_attributes, copy_dataset, index_room
from smm_daq.storage.global_heap import check_global_heaps, judged_intact, written
from smm_daq.storage.identity import FileId
from smm_daq.storage.processes import running, start_token
from smm_daq.storage.relinking import Relinks
from smm_daq.storage.staging import (
    CutOff,
    cut_off_entries,
    kept_note,
    left_out_note,
    replacements_under_way,
    settle_replacement,
)
from smm_daq.storage.strings import storable, text
from smm_daq.storage.superblock import MarkCleared, clear_open_mark, superblock_intact

LIBVER = ("v110", "latest")
T = TypeVar("T")


def fixed_text(size: int) -> h5py.Datatype:
    """UTF-8 text of at most `size` - 1 bytes in a field of `size`, for a value rewritten
    while in SWMR mode (which makes no new objects). Null-terminated, not null-padded as
    h5py's fixed strings are: h5dump and other HDF5 tools show the text alone, not the
    padding after it as '\\000' to the field's end."""
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(size)
    tid.set_strpad(h5py.h5t.STR_NULLTERM)
    tid.set_cset(h5py.h5t.CSET_UTF8)
    return h5py.Datatype(tid)


FIXED_TEXT = fixed_text(64)  # a status, a time, a writer
TEXT = h5py.string_dtype("utf-8")
_CRASHED = "already open for write"  # HDF5's words for a file a killed writer left marked
REPAIR_HINT = "`smm-daq repair FILE` makes it openable again without losing what was written"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
HEADROOM = 4 << 20  # bytes reserved beyond a write's payload: more than its metadata adds
_NO_ROOM = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
_LOCKS: dict[str, _Writers] = {}  # in-process: one writer of a file at a time (`_local_lock`)
_LOCKS_GUARD = threading.Lock()
_log = logging.getLogger(__name__)


def now_iso() -> str:
    """Wall-clock time as ISO 8601 with the local offset (NeXus date-time)."""
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def writer_id() -> str:
    """Who is writing: 'host:pid:token', stored in a scan entry so a crash can be told from a
    live run, also once the pid is another process's (after a reboot, pids are handed out
    again). The token (`start_token`) is left out where there is none, or where it would
    not fit the entry's 64-byte field whole."""
    host_pid = f"{socket.gethostname()}:{os.getpid()}"
    token = start_token(os.getpid())
    full = f"{host_pid}:{token}"
    return full if token and len(full.encode()) < 64 else host_pid


def writer_process(writer: str) -> str:
    """'host:pid' of a stored writer, as people are shown it."""
    return ":".join(writer.split(":")[:2])


def writer_alive(writer: str) -> bool:
    """True when `writer` names another live process on this machine: its pid runs, and,
    where the writer recorded its token, that process is the one that wrote."""
    host, _, rest = writer.partition(":")
    pid_text, _, token = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid() or not running(pid):
        return False
    now = start_token(pid) if token else ""
    return not (now and now != token)  # another process has that pid now


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise InputError("file not found; expected an smm-daq session file (.h5)", source=str(path))
    if path.is_dir():
        raise InputError("is a directory; expected an smm-daq session file (.h5)",
                         source=str(path))
    if not path.is_file():  # a device, or a pipe whose read would wait for a writer forever
        raise InputError("is not a regular file (a device or a pipe); expected an smm-daq "
                         "session file (.h5)", source=str(path))


def _check_superblock(p: Path, source: Path | None = None) -> None:
    """InputError for a damaged superblock, before an SWMR open would retry it for many
    minutes (HDF5 cannot tell damage from a writer's half-written update there). `source`:
    the file as the user named it (`p` where not given)."""
    if not superblock_intact(p):
        raise InputError("is damaged: its HDF5 superblock fails its checksum; expected an "
                         "smm-daq session file (restore it from a copy)",
                         source=str(source or p))


def _made_by_us(creator: str) -> bool:
    """Whether a root `creator` is one every release writes, "smm-daq VERSION" (not another
    program whose name merely begins so)."""
    return creator.split(" ", 1)[0] == PROGRAM_NAME


def _holds_nothing(f: h5py.File) -> bool:
    """An empty HDF5 file: no object and no attribute, nothing another program could lose."""
    return not (len(f) or len(f.attrs))


def _made(creator: str) -> str:
    """The creator for a message, cut to 60 characters (another program may write a long one)."""
    shown = creator if len(creator) <= 60 else f"{creator[:57]}..."
    return f"creator {shown!r}" if creator else "no creator recorded"


def not_ours(f: h5py.File, *, besides: str = "") -> str | None:
    """Why the open file `f` is not an smm-daq session file, or None when it is one (every
    release writes "smm-daq VERSION" to the root's `creator`) or holds nothing at all
    (`_holds_nothing`). `besides`: what else keeps it from being written, said with it."""
    creator = text(f.attrs.get("creator", ""))
    if _made_by_us(creator) or _holds_nothing(f):
        return None
    return (f"is not an {PROGRAM_NAME} session file ({_made(creator)}: another program's HDF5 "
            f"file){besides}; expected an {PROGRAM_NAME} session file: give a new file name: "
            "nothing was changed")


@contextlib.contextmanager
def _opened_to_judge(p: Path, source: Path | None = None) -> Iterator[h5py.File | None]:
    """`p` opened read-only to tell whose file it is (`not_ours`), without HDF5's locks: in
    SWMR mode where it is marked open, or, its writer killed outside SWMR mode, as if its
    mark were cleared (`MarkCleared`); None when it cannot be opened (its caller's open says
    what is wrong with it). InputError, before HDF5 reads it, where its global heap is
    damaged (`check_global_heaps`, of the state HDF5 opened: `_opened_judged`, a file a
    scan in another process keeps writing looked at as a read would; `source`: the file as
    the user named it)."""
    marked = marked_open(p)
    if marked:
        _check_superblock(p)  # else an SWMR open retries a damaged one for minutes

    def open_it() -> tuple[h5py.File | None, MarkCleared | None]:
        with contextlib.suppress(OSError):
            return h5py.File(p, "r", locking=False, swmr=marked), None
        if marked:
            with contextlib.suppress(OSError, ValueError):
                view = MarkCleared(p)
                try:
                    return h5py.File(view, "r"), view
                except OSError:
                    view.close()
        return None, None

    f, view = _opened_judged(lambda: check_global_heaps(p, source=source or p), open_it,
                             source=source or p, written=True)
    with contextlib.ExitStack() as stack:
        if view is not None:
            stack.enter_context(view)
        if f is not None:
            stack.enter_context(f)  # closed before the view it reads
        yield f


_OPENS = 3  # opens of a file replaced each time between its heaps' check and HDF5's open
_Opened = TypeVar("_Opened")


def _opened_judged(check: Callable[[], global_heap.State | None],
                   open_it: Callable[[], tuple[_Opened, MarkCleared | None]], *,
                   source: Path, written: bool = False) -> tuple[_Opened, MarkCleared | None]:
    """`open_it()`, HDF5's open of a file (and the view it reads, where it reads one), once
    `check()` has judged its heaps intact in the state HDF5 opened, read from HDF5's own
    descriptor (`global_heap.state_of_open`): a file replaced between the check and the
    open (an outside tool's copy written or renamed over it) is closed and checked again,
    `_OPENS` times at most, then refused (InputError, naming `source`). Used by the short
    looks at whose file it is (`_opened_to_judge`) and by a repair's open; a read, which
    another process's writer may write meanwhile, compares only which file it opened
    (`_opened_for_reading`), as a write's open does (`_opened_readied`). Where either state
    cannot be had (the check could not read the file; HDF5 could not open it), the open
    stands as it is: the check has nothing to say of it. `written`: where no lock keeps
    another process's writer out, the file checked, written again before each of the
    `_OPENS` opens (a scan writing it more often than a check reads it whole), is opened at
    the last as a read opens it, not refused."""
    for left in range(_OPENS - 1, -1, -1):
        judged = check()
        f, view = open_it()
        fd = _descriptor(f, view)
        opened = None if fd is None else global_heap.state_of_open(fd)
        if judged is None or opened is None or opened == judged:
            return f, view
        if written and not left and opened[:2] == judged[:2]:  # device and inode numbers
            return f, view
        if f is not None:
            f.close()  # type: ignore[attr-defined]
        if view is not None:
            view.close()
    raise _ChangedAtOpen(
        f"was replaced or written by another program between each of {_OPENS} checks of its "
        "HDF5 global heaps and HDF5's open of it; expected it to stay as it is while it is "
        "opened: try again once that program is done", source=str(source))


class _ChangedAtOpen(InputError):
    """A file written or replaced between each check of its heaps and HDF5's open of it."""


def _descriptor(f: object, view: MarkCleared | None) -> int | None:
    """The descriptor of the file HDF5 opened as `f` (an `h5py.File` or a file ID; through
    `view`, where it reads one); None where there is none to be had."""
    if view is not None:
        return view.descriptor()
    # the file ID itself, or an h5py.File's (a file ID's own `id` is its number)
    fid = f if isinstance(f, h5py.h5f.FileID) else getattr(f, "id", None)
    if not isinstance(fid, h5py.h5f.FileID):
        return None
    try:
        return int(fid.get_vfd_handle())
    except (RuntimeError, ValueError, TypeError, OSError):
        return None


def check_heaps(path: str | Path) -> None:
    """InputError where the global heap of the session file `path` names is damaged
    (`check_global_heaps`), for a command that has HDF5 read it otherwise than through
    `open_read` or `writing` (which check it themselves): as a reader holding no lock
    (`_heaps_checked`)."""
    p = Path(path)
    _heaps_checked(final_file(p), source=p)


def _heaps_checked(p: Path, *, source: Path) -> global_heap.State | None:
    """`check_global_heaps` of `p` by a reader or a writer holding none of its locks: a
    writer at work in another process may be rewriting a collection as it is read (twice in
    a row), so damage found is scanned for again in the readers' turn, once no writer
    writes, and only that verdict is remembered with the file's state. Where that turn
    cannot be had (a file system without locks, a writer holding it past
    `turns.TURN_WAIT_S`: said so), the damage found is said, not remembered. Gives what
    `check_global_heaps` gives: the state judged intact."""
    try:
        return check_global_heaps(p, source=source)
    except InputError as damage:
        with contextlib.ExitStack() as turn:
            try:
                held = turn.enter_context(_file_lock(p, exclusive=False, source=source))
            except _Busy:
                said = InputError(
                    f"{damage}; it was found while another writer held the file for more "
                    f"than {turns.TURN_WAIT_S:g} s, and may be that write half done: if this "
                    "is said again once that write has finished, the file is damaged")
                said.source = damage.source
                raise said from None
            except (InputError, StorageError, OSError):
                raise damage from None
            if not held:
                raise
            return check_global_heaps(p, source=source, settled=True)


def require_ours(path: str | Path, *, besides: str = "", source: Path | None = None) -> None:
    """InputError unless `path` is missing, an smm-daq session file or an empty HDF5 file
    (`not_ours`): smm-daq adds nothing to another program's file, whose root `default` and
    layout are that program's. A file that cannot be opened is left to the caller's open,
    which says what is wrong with it. `source`: the file as the user named it (a symbolic
    link to `path`), for what is said."""
    p = Path(path)
    if not p.is_file():
        return
    with _opened_to_judge(p, source) as f:
        reason = not_ours(f, besides=besides) if f is not None else None
    if reason:
        raise InputError(reason, source=str(source or p))


def _reason(exc: OSError) -> str:
    msg = str(exc)
    return msg.split("(", 1)[1].rstrip(")") if "(" in msg else msg


# -- the open-for-write mark and the writers' lock ------------------------------------------


def marked_open(path: str | Path) -> bool:
    """True when the superblock says a writer has the file open (or had, and was killed).

    Read from the superblock's file-consistency flags (superblock version 3, the only one
    HDF5 marks), without HDF5, so it costs one small read and never blocks.
    """
    try:
        with open(path, "rb") as fh:
            for base in (0, 512, 1024, 2048):  # the superblock follows any user block
                fh.seek(base)
                head = fh.read(12)
                if head[:8] == _HDF5_SIGNATURE:
                    return len(head) == 12 and head[8] >= 2 and head[11] != 0
    except OSError:
        return False
    return False


class Replaced(StorageError):
    """The name of a file being written names another file now (`writing`'s `same_file`)."""


class _Busy(InputError):
    """A reader refused its turn: another writer has held the file past its wait
    (`turns.busy`)."""


class _CannotOpen(InputError):
    """The file cannot be opened here for writing or for reading, `reason` saying why in the
    system's words ("Permission denied", "Read-only file system")."""

    def __init__(self, writing: bool, reason: str, source: str) -> None:
        self.reason = reason
        super().__init__(f"cannot open for {'writing' if writing else 'reading'} ({reason})",
                         source=source)


@contextlib.contextmanager
def _file_lock(path: Path, *, exclusive: bool, source: Path | None = None,
               deadline: float | None = None, ready: Callable[[], None] | None = None,
               ) -> Iterator[bool]:
    """The file held alone (a writer) or shared with other readers (a reader), waited for
    (`smm_daq.storage.turns`, whose waits say how long). `source`: the file as the user
    named it (a symbolic link to `path`), for what is said; `path` when not given. Gives
    whether other processes are kept out: False where the file system has no locks (nor
    stands a lock file in for them), or the file is missing.

    Open-file-description locks on the file itself: independent of HDF5's own (flock) locks
    and of other descriptors of the same file in this process, so HDF5 opening and closing
    the file never drops them. Where the system has no such locks, a lock file in the
    machine's lock directory stands in (`_machine_lock`). A writer then takes its turn with
    this process's readers (`smm_daq.storage.here`). StorageError at once when this thread
    reads or writes the file already (it would wait for itself); StorageError (a writer) or
    InputError (a reader) when another writer has held it for more than
    `turns.TURN_WAIT_S` (all its waits for writers at work together, until `deadline`
    where given: `turns.turn_deadline`). The lock is of the file the name stands for once it
    is held, also where a copy was swapped in while it was waited for (`_hold`).

    `ready` (a writer's): called once the writers' turn is held, before the readers are
    waited for and this process's reads closed; it may raise to let the turn go, and that
    write, not made, waits for no reader, closes no read and says nothing of them.
    """
    if exclusive:
        here.refuse_within(path, writing=True, source=source)
    deadline = turns.turn_deadline() if deadline is None else deadline
    asked: list[bool] = []

    def ready_once() -> None:
        asked.append(True)
        if ready is not None:
            ready()

    with contextlib.ExitStack() as stack:
        if exclusive:
            stack.enter_context(_writers_turn(path, source=source, deadline=deadline))
        held = waited = False  # waited: for the readers already reading, by the lock held
        if _shared_locks() and path.exists():
            held = waited = _hold(stack, path, exclusive=exclusive, source=source,
                                  deadline=deadline, ready=ready_once)
        elif path.exists():
            held = _machine_turn(stack, path, exclusive=exclusive, source=source,
                                 deadline=deadline)
        if exclusive:
            if not asked:
                ready_once()
            stack.enter_context(here.writing(path, waited=waited))
        yield held


def _machine_turn(stack: contextlib.ExitStack, path: Path, *, exclusive: bool,
                  source: Path | None, deadline: float) -> bool:
    """The machine's lock of `path` (`_machine_lock`), where the system has no
    open-file-description locks, held until `stack` closes: True; False where it cannot be
    had (its directory cannot be used: threads still take turns). Waited for until
    `deadline` at most (on `turns.CLOCK`), readers as writers: StorageError (a writer,
    nothing written) or InputError (a reader) when another holds it longer (a writer
    stopped on a stalled disk, or a reader left open)."""
    try:
        lock = _machine_lock(path)
    except (InputError, OSError):
        return False

    def attempt() -> bool:
        try:
            lock.acquire(timeout=0)
        except Timeout:  # another holds it
            return False
        return True

    try:
        taken = turns.wait_until(attempt, turns.left(deadline))
    except OSError:  # it cannot be made or locked there
        return False
    if not taken:
        busy = turns.busy(str(source or path))
        if exclusive:
            raise StorageError(f"{busy}; nothing was written")
        raise _Busy(str(busy))
    stack.callback(lock.release)
    return True


_WINDOWS = sys.platform == "win32"  # where a file open elsewhere cannot be replaced

_SWAPS_WAITED = 5  # most copies swapped in under a waiter that it takes the lock of again


def file_id(f: h5py.File) -> FileId:
    """Which file the open session file `f` is (`smm_daq.storage.identity`), read from the
    open file itself: to be compared with whatever its name names at a later write."""
    return identity.of_open(f)


def _require_named(p: Path, file: FileId) -> None:
    """`Replaced` unless `p` names `file` now (its token and, where the file system keeps
    them, its inode number), or the copy this process rebuilt and swapped in for it
    (`identity.successor`); InputError when it names another program's file (`not_ours`).
    One read-only open for both, as `require_ours` makes."""
    with _opened_to_judge(p) as f:  # its heaps judged already, under this lock
        token = identity.token_of(f) if f is not None else None
        reason = not_ours(f) if f is not None else None
    try:
        st = os.stat(p)
        named = (identity.is_file(file, token, st)
                 or identity.is_file(identity.successor(p, file), token, st))
    except OSError:  # gone meanwhile
        named = False
    if not named:
        raise Replaced(f"{p}: the file was replaced since it was last written (moved or "
                       "renamed and another put in its place, or a link to it re-pointed); "
                       "nothing was written to the one there now")
    if reason:
        raise InputError(reason, source=str(p))


def _token_at(p: Path) -> str | None:
    """The identity token of the file `p` names (or of an open descriptor's file, named
    /proc/self/fd/N); None where it has none or cannot be read now."""
    with contextlib.suppress(InputError, OSError, ValueError, KeyError, RuntimeError), \
            _opened_to_judge(p) as f:
        return identity.token_of(f) if f is not None else None
    return None


def _hold(stack: contextlib.ExitStack, path: Path, *, exclusive: bool,
          source: Path | None = None, deadline: float | None = None,
          ready: Callable[[], None] | None = None) -> bool:
    """The open-file-description lock of the file `path` names, held until `stack` closes:
    True (a writer has waited for the readers already reading), or False where the file
    system has no such locks. `source`, `deadline`, `ready`: see `_file_lock`.

    A copy swapped in while this waited (a repair's, a rebuild's: `_swap_in`, made under the
    lock) leaves the lock taken that of the file it replaced, which nobody reads or writes any
    more: the lock is then let go and taken on the file now there, `_SWAPS_WAITED` times at
    most (then StorageError for a writer, InputError for a reader). Where the file system
    may show one file under several inode numbers and the file has no identity token, which
    file is locked cannot be told: that, too, ends after as many tries, said as what it is."""
    said = source or path
    undecided = 0
    for _ in range(_SWAPS_WAITED + 1):
        with contextlib.ExitStack() as attempt:
            try:
                fd = os.open(path, os.O_RDWR if exclusive else os.O_RDONLY)
            except OSError as exc:
                raise _CannotOpen(exclusive, exc.strerror or str(exc), str(said)) from None
            attempt.callback(os.close, fd)  # closing the descriptor releases the lock
            try:
                if exclusive:
                    turns.hold_for_writing(fd, str(said), deadline, ready)
                else:
                    turns.hold_for_reading(fd, str(said), deadline)
            except OSError:  # a file system without such locks (some NFS), or none answering
                return False
            except turns.Busy as exc:
                if exclusive:
                    raise StorageError(f"{exc}; nothing was written") from None
                raise _Busy(str(exc)) from None
            named = _locked_is_named(fd, path)
            if named:
                stack.enter_context(attempt.pop_all())
                return True
            undecided += named is None
    if undecided > _SWAPS_WAITED:
        message = (f"{said}: cannot tell whether the file this locked is the one its name "
                   f"stands for ({_SWAPS_WAITED + 1} tries): its file system showed it under "
                   "another inode number each time, and it has no identity token to tell it "
                   "by (an earlier release made it); expected a file system that keeps a "
                   "file's inode number, or a file with a token: copy it to a disk of this "
                   f"machine's own, where `{PROGRAM_NAME} repair FILE` (or a scan started or "
                   "resumed in it) gives it one, then back (here that too would be refused)")
    else:
        message = (f"{said}: was replaced by a rebuilt copy {_SWAPS_WAITED + 1} times while "
                   "this waited for it (repairs or rebuilds in other processes); expected it "
                   "to stay in place: try again")
    if exclusive:
        raise StorageError(f"{message}; nothing was written")
    raise InputError(message)


def _locked_is_named(fd: int, path: Path) -> bool | None:
    """Whether `path` still names the file open as `fd`; None where that cannot be told.
    A name gone (deleted meanwhile) counts as the same: opening it for the read or write
    says it is gone. Where the file system may show one file under two inode numbers
    (`identity.inode_kept`), their tokens decide: a rebuilt copy has a token of its own."""
    held = os.fstat(fd)
    try:
        now = os.stat(path)
    except OSError:
        return True
    if (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino):
        return True
    if identity.inode_kept(held.st_dev):
        return False
    # the descriptor's own file, also where its name now stands for another (Linux, as is a
    # file system that does not keep inode numbers: `turns.file_system_type`)
    token = _token_at(Path(f"/proc/self/fd/{fd}"))
    if token is None:
        return None
    return token == _token_at(path)


def _shared_locks() -> bool:
    """Whether readers can share a file here (open-file-description locks); where not, the
    lock that stands in is exclusive, for readers as for writers (`_machine_turn`)."""
    return fcntl is not None and turns.available()


@contextlib.contextmanager
def _writers_lock(p: Path, *, repairing: bool = False, source: Path | None = None,
                  deadline: float | None = None, ready: Callable[[], None] | None = None,
                  ) -> Iterator[bool]:
    """`_file_lock` for a writer or a repair (`source`, `deadline`, `ready`: see there;
    gives what it gives). A
    file that cannot be opened for writing here and is another program's is refused as
    another program's first (`not_ours`), with why it cannot be written said beside it: a
    new file name is what its user needs, not the right to write it."""
    with contextlib.ExitStack() as stack:
        try:
            held = stack.enter_context(_file_lock(p, exclusive=True, source=source,
                                                  deadline=deadline, ready=ready))
        except _CannotOpen as exc:
            besides = f", and cannot be opened for writing here either ({exc.reason})"
            if not repairing:
                require_ours(p, besides=besides, source=source)
            else:
                with _opened_to_judge(p) as f:
                    if f is not None:
                        _check_repairable(f, source or p, besides=besides)
            raise
        yield held


def _machine_lock(path: Path) -> FileLock:
    """Where the system has no open-file-description locks (Windows, macOS): an exclusive
    lock, for readers and writers alike, on a file named after `path` in the machine's lock
    directory (`smm_daq.locks`, the rig locks'). Not on the session file itself: Windows
    would then refuse to replace it with its repaired copy. InputError when that directory
    cannot be used, OSError (on taking it) when the lock cannot be had."""
    directory = lock_directory()
    # One lock per file however it is spelled, also in another case (the file systems of
    # Windows and macOS ignore case; on one that does not, two such files only take turns).
    key = os.path.realpath(path).casefold()
    name = f"h5-{hashlib.sha256(key.encode()).hexdigest()[:24]}.lock"
    return FileLock(directory / name, mode=FILE_MODE, thread_local=False,
                    fallback_to_soft=False)


@contextlib.contextmanager
def _writers_turn(path: Path, *, source: Path | None = None,
                  deadline: float) -> Iterator[None]:
    """This process's writers' lock of `path` held, waited for until `deadline` at most (on
    `turns.CLOCK`), as a writer in another process is: StorageError when another thread's
    write holds it longer (one stopped on a stalled disk), nothing written."""
    with _local_lock(path) as lock:
        if not turns.wait_until(lambda: lock.acquire(blocking=False), turns.left(deadline)):
            raise StorageError(f"{turns.busy(str(source or path))}; nothing was written")
        try:
            yield
        finally:
            lock.release()


@dataclass(eq=False)
class _Writers:
    """This process's writers' lock of one file, and how many threads hold or wait for it."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    users: int = 0


@contextlib.contextmanager
def _local_lock(path: Path) -> Iterator[threading.RLock]:
    """This process's writers' lock of a file: one thread writes it at a time, also where the
    file system's locks are missing (its readers: `smm_daq.storage.here`). Kept while a
    thread holds or waits for it (every thread meanwhile gets the same), forgotten when the
    last lets go: a window open for days writes thousands of files, one after another."""
    with keyed(path) as key:  # however it is named
        with _LOCKS_GUARD:
            writers = _LOCKS.setdefault(key, _Writers())
            writers.users += 1
        try:
            yield writers.lock
        finally:
            with _LOCKS_GUARD:
                writers.users -= 1
                if not writers.users:
                    del _LOCKS[key]


def _write_fapl() -> h5py.h5p.PropFAID:
    """Writers: the 1.10 format bound, and none of HDF5's own locking (see the module doc)."""
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_fclose_degree(h5py.h5f.CLOSE_STRONG)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_V110, h5py.h5f.LIBVER_LATEST)
    fapl.set_file_locking(False, True)
    # No raw-data chunk cache: lines and maps are written whole, once, so it would only hold
    # memory (kept open, it grew by a chunk per dataset and line).
    _, rdcc_nslots, _, rdcc_w0 = fapl.get_cache()
    fapl.set_cache(0, rdcc_nslots, 0, rdcc_w0)
    return fapl


# -- reading --------------------------------------------------------------------------------


@contextlib.contextmanager
def open_read(path: str | Path) -> Iterator[h5py.File]:
    """Open a session file for reading, also while a scan writes it or after a crash.

    A file marked open-for-write is waited for when an smm-daq writer is at work (a line takes
    milliseconds to write) and repaired when its writer was killed; when it cannot be
    repaired (it is read-only here, another program's, or a process still writes it), it is
    read in SWMR mode, or, its writer killed outside SWMR mode, as if its mark were cleared
    (`MarkCleared`), the file left as it is. A read that a write by another process
    overlapped raises `WrittenMeanwhile` once it ends: what it read need not be of one state
    of the file (`read_whole` reads it again).
    """
    p = Path(path)
    _check_exists(p)
    here.refuse_within(p, writing=False)
    with _open_read(final_file(p), source=p) as f:
        yield f


@contextlib.contextmanager
def _open_read(p: Path, *, source: Path) -> Iterator[h5py.File]:
    """`open_read` of the file `p` (`final_file`: resolved once, so that the file locked is
    the file read, also where a link to it is re-pointed meanwhile); `source`: the file as
    the user named it, for what is said. A file whose global heap HDF5 would never return
    from reading is refused first (`check_global_heaps`: once per state of the file)."""
    nested = here.reading_here(p)  # this thread holds it already: no writer can be at work
    judged = None if nested else _heaps_checked(p, source=source)
    if marked_open(p) and not nested:
        with _file_lock(p, exclusive=False, source=source):
            pass  # an smm-daq writer at work has finished its write
        if marked_open(p):
            with contextlib.suppress(InputError, StorageError, OSError):
                _name_removed(source, _repair(source, p, only_ours=True))  # else SWMR
    with contextlib.ExitStack() as held:
        # For the whole read only where readers share the file and a writer waits for them
        # at most `turns.WRITER_WAIT_S`: the exclusive lock that stands in elsewhere, held for
        # a read, would hold up a scan (and every other reader) for as long as the read.
        if not nested and _shared_locks():
            with contextlib.suppress(_CannotOpen):  # then HDF5's open says what is wrong
                held.enter_context(_file_lock(p, exclusive=False, source=source))
        began: list[turns.Stamp | None] = []  # the file's stamp as the read began
        read = None
        try:
            with _opened_for_reading(p, began, judged, source=source) as read:
                yield read.file
                # asked while no writer of this process can begin (it waits for this read)
                overlapped = turns.changed(p, began[0])
        except Exception as exc:
            if read is not None and read.overrun:  # whatever the closed file made it raise
                raise WrittenMeanwhile(source, by_this_process=True) from None
            if isinstance(exc, _READ_FAILURES) and began and turns.changed(p, began[0]):
                raise WrittenMeanwhile(source) from None
            raise
        if read is not None and read.overrun:
            # A closed file answers some questions without an error: `name in f` is False,
            # `f.get(name)` None. What the read made of such answers is not the file's.
            raise WrittenMeanwhile(source, by_this_process=True)
        if overlapped:
            # HDF5 keeps what it read of the file's layout: after another process's write,
            # a line can read as done while its values still read as not measured.
            raise WrittenMeanwhile(source)


class WrittenMeanwhile(InputError):
    """A read that another process's write overlapped (a writer waits for a reader only so
    long, or none was waited for: no locks here), so what it read may be half the file
    before the write and half after it; or, `by_this_process`, one that a writer of this
    process closed once it had waited for it as long (`smm_daq.storage.here`). `read_whole`
    reads it again."""

    def __init__(self, p: Path, *, by_this_process: bool = False) -> None:
        who, closed = ("this program", ", and closed this read") if by_this_process else (
            "another process", "")
        super().__init__(
            f"was written by {who} while it was read (a writer waits for a reader "
            f"{turns.WRITER_WAIT_S:g} s at most{closed}), so it was not read whole; read it "
            "again: nothing says the file is damaged", source=str(p))


_READS = 3  # reads of a file that writes overlap before `read_whole` gives up


def read_whole(path: str | Path, read: Callable[[h5py.File], T]) -> T:
    """What `read` makes of the session file `path` open for reading (`open_read`), read
    again where a write overlapped it (`WrittenMeanwhile`: another process's, or one of this
    process that closed it), `_READS` times at most: what it returns is of the file as one
    write left it."""
    for _ in range(_READS - 1):
        with contextlib.suppress(WrittenMeanwhile), open_read(path) as f:
            return read(f)
    with open_read(path) as f:
        return read(f)


_READ_FAILURES = (InputError, OSError, RuntimeError, KeyError, ValueError)


@contextlib.contextmanager
def _opened_for_reading(p: Path, began: list[turns.Stamp | None],
                        judged: global_heap.State | None, *, source: Path
                        ) -> Iterator[here.Read]:
    """`p` open for reading, its readers' lock held (`_file_lock`), taking turns with this
    process's writers (`smm_daq.storage.here`): as it is, in SWMR mode when a killed writer
    left it marked open, or as if its mark were cleared. The file's stamp is added to
    `began` as it is opened: once a writer of this process that the read waited for has
    finished (its write is not one that overlapped the read). `source`: the file as the
    user named it, for what is said.

    `judged`: the state its heaps were judged intact in (`_heaps_checked`; None: not judged,
    its bytes could not be read, or this thread reads it already). HDF5's open stands where
    it opened that file (its device and inode numbers, from HDF5's own descriptor), also
    where a writer has written it since, as writers compare it: where no lock keeps another
    process's writer out, a scan writing more often than a check reads the file whole would
    otherwise leave no open standing, and libhdf5 writing leaves its heaps intact. A file
    renamed over it since (another inode: an outside tool's copy) is judged again, once this
    process's writers no longer wait for the open (a check reads it whole), `_OPENS` times
    at most (then `WrittenMeanwhile`). What is left: a damaged copy written over it in place
    (`cp`, the same inode) in the moment between the check and the open."""
    views: list[MarkCleared] = []
    state = [judged]

    def open_file() -> h5py.File:
        stamp = turns.stamp(p)
        f, view = _open_for_reading(p, source)
        if not _same_file(state[0], _descriptor(f, view)):
            f.close()
            if view is not None:
                view.close()
            raise _OtherFile
        began.append(stamp)
        if view is not None:
            views.append(view)
        return f

    try:
        with contextlib.ExitStack() as stack:
            for _ in range(_OPENS):
                try:
                    read = stack.enter_context(here.reading(p, open_file, source=source))
                    break
                except _OtherFile:  # a refusal here (a damaged copy put over it) is the file's
                    state[0] = _heaps_checked(p, source=source)
            else:  # replaced at each open (a tool saving its copies over it): read again
                raise WrittenMeanwhile(source)
            yield read
    finally:
        for view in views:
            view.close()


class _OtherFile(Exception):
    """HDF5 opened another file than the one whose heaps were judged (renamed over it)."""


def _same_file(judged: global_heap.State | None, fd: int | None) -> bool:
    """Whether the file open as `fd` (HDF5's descriptor) is the file in the state `judged`
    (its device and inode numbers); True where either cannot be had: the check has nothing
    to say of it."""
    opened = None if fd is None else global_heap.state_of_open(fd)
    return judged is None or opened is None or opened[:2] == judged[:2]


def _open_for_reading(p: Path, source: Path) -> tuple[h5py.File, MarkCleared | None]:
    """`p` opened for reading (see `_opened_for_reading`), with the view to close after it
    where it is read as if its mark were cleared; `source` named in what is said."""
    # A plain open first: it fails at once on a truncated or foreign file, where an SWMR open
    # would sit in HDF5's read-retry loop for many minutes.
    try:
        return h5py.File(p, "r"), None
    except OSError as plain:
        if not p.exists():  # removed while this waited (a new file whose first write failed)
            raise InputError("file not found (it was removed while this waited to read it); "
                             "expected an smm-daq session file (.h5)", source=str(source)) from None
        # "unable to lock file", "file locking ... don't match"; not the "sblock" (superblock)
        # of a truncated file's message
        if re.search(r"\block(ing)?\b", str(plain)):
            raise InputError("is open for writing in another program (HDF5 locks it); "
                             "expected it closed", source=str(source)) from None
        if "truncated file" in str(plain):
            raise InputError(
                f"is cut short ({_reason(plain)}); expected a whole smm-daq session file: a "
                "copy or download that stopped early? copy it again from where it was written",
                source=str(source),
            ) from None
        if _CRASHED not in str(plain):
            raise InputError(
                f"cannot open as HDF5 ({_reason(plain)}): the file is corrupt or not HDF5; "
                "expected an smm-daq session file",
                source=str(source),
            ) from None
    _check_superblock(p, source)
    try:
        return h5py.File(p, "r", swmr=True), None
    except OSError:  # its writer was not in SWMR mode
        return _read_as_cleared(p, source)


def _read_as_cleared(p: Path, source: Path) -> tuple[h5py.File, MarkCleared]:
    """A file marked open by a writer killed outside SWMR mode, which this process may not
    repair (it is read-only here, or another program's): read as a repair reads it, as if its
    mark were cleared (`MarkCleared`), the file left as it is; with the view to close after
    it. InputError when a live process holds HDF5's write lock on it (its writer is at work,
    not killed), or when it cannot be read so either."""
    if _locked_by_a_writer(p):
        raise InputError("is open for writing in another program (it holds HDF5's write lock); "
                         "expected it closed", source=str(source))
    try:
        view = MarkCleared(p)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot be read ({exc}); expected an smm-daq session file",
                         source=str(source)) from None
    try:
        return h5py.File(view, "r"), view
    except OSError as exc:
        view.close()
        raise InputError(
            f"cannot open as HDF5 ({_reason(exc)}); expected an smm-daq session file; "
            f"if a program writing it was stopped, {REPAIR_HINT}",
            source=str(source),
        ) from None




# -- writing --------------------------------------------------------------------------------


def _init_root(f: h5py.File, path: Path) -> None:
    f.attrs["NX_class"] = "NXroot"
    f.attrs["file_name"] = storable(path.name)  # a byte that is not UTF-8 escaped
    f.attrs["file_time"] = now_iso()
    f.attrs["creator"] = f"{PROGRAM_NAME} {__version__}"
    f.attrs["HDF5_Version"] = h5py.version.hdf5_version
    f.attrs["h5py_version"] = h5py.version.version
    identity.give_token(f)


@dataclass(frozen=True)
class _Made:
    """A session file a write made: where (the file its name finally named then) and its
    identity token, which no other file has: a failed write removes that file, not one put
    there or named by its link since (`_remove_if_empty`)."""

    path: Path
    token: str | None


def _create(p: Path) -> _Made | None:
    """A new, empty session file, made beside the target and linked in whole (never half);
    None where another writer made one meanwhile (kept). The scratch files of writers of
    that name that were killed (one killed while it made the file, before its name was
    linked) are removed with it: no repair is run on a file that was never made. A symbolic
    link to no file yet (a 'current' link made before the run) gets its file made where it
    points (`final_file`), as a program writing through it makes it."""
    real = final_file(p)
    tmp = _scratch(real, "new")
    made = None
    try:
        with h5py.File(tmp, "w", libver=LIBVER, track_order=True, locking=False) as f:
            _init_root(f, real)
            token = identity.token_of(f)
        with contextlib.suppress(FileExistsError):  # made meanwhile: keep that one
            os.link(tmp, real)  # atomic, never a half-made file under the name
            made = _Made(real, token)
    except OSError as exc:
        raise InputError(f"cannot create the file ({_reason(exc)})", source=str(p)) from None
    finally:
        with contextlib.suppress(OSError):  # a read-only file system refuses even this
            tmp.unlink(missing_ok=True)
    for name in remove_leftovers(p)[0]:
        _log.warning("%s: removed %s", p, name)
    return made


def _reserve(target: Path, offset: int, length: int, *, create: bool = False) -> bool:
    """Allocate `length` bytes of `target` from `offset` (see the module); False when the file
    system has no room, True when it was done. Where it cannot be done (no such call: macOS,
    Windows; a file system without it), the room its disk says is free stands in: checked,
    not held, and blind to a quota or a file size limit, but a write that a full disk would
    cut short, leaving a file no reader opens, is refused before it starts."""
    posix_fallocate = getattr(os, "posix_fallocate", None)
    if create or posix_fallocate is not None:
        fd = os.open(target, os.O_RDWR | (os.O_CREAT | os.O_TRUNC if create else 0), 0o644)
        try:
            if posix_fallocate is not None:
                posix_fallocate(fd, offset, length)
                return True
        except OSError as exc:
            if exc.errno in _NO_ROOM:
                return False
        finally:
            os.close(fd)
    return _free_at_least(target.parent, length)


def _free_at_least(folder: Path, length: int) -> bool:
    """Whether the disk of `folder` says it has `length` bytes free (True where it cannot
    tell)."""
    try:
        return shutil.disk_usage(folder).free >= length
    except OSError:
        return True


def _no_room(p: Path, what: str, needed: int) -> StorageError:
    """The refusal of a write or a rebuild of `p` that could not have `needed` bytes beside
    it, saying how much room its disk has left to this user (where it can be told)."""
    try:
        free = f"its disk has {_size(shutil.disk_usage(final_file(p).parent).free)} free"
    except OSError:
        free = "how much its disk has free cannot be told"
    return StorageError(
        f"{p}: no room to {what}: it needs up to {_size(needed)} there, and {free} (the disk is"
        " full, or a quota or file size limit is reached); nothing was written, the file is "
        "as it was: free space, then try again")


def _size(n: int) -> str:
    """Bytes as people read them: MB, or GB from 10 GB on."""
    return f"{n / 1e9:.1f} GB" if n >= 10e9 else f"{n / 1e6:.1f} MB"


def _make_scratch(tmp: Path, size: int, *, source: Path, what: str) -> None:
    """Make scratch file `tmp` (beside the file `source` finally names) with `size` bytes
    reserved: StorageError where there is no room, InputError where its folder refuses a
    new file (no permission to write there, a read-only file system), the scratch file
    named with its folder, which is not the link's where `source` is a symbolic link."""
    try:
        room = _reserve(tmp, 0, size, create=True)
    except OSError as exc:
        raise InputError(
            f"cannot {what}, and that copy, {tmp}, cannot be made there "
            f"({exc.strerror or exc}); expected the folder of the file, {tmp.parent}, "
            "writable by this user: make it so (or copy the file to a folder that is), then "
            "try again; the file is as it was", source=str(source)) from None
    if not room:
        raise _no_room(source, what, size)


def _reserve_room(p: Path, room: int, *, source: Path) -> None:
    """StorageError unless the file can grow by `HEADROOM` + `room` bytes (see the module):
    checked, and the blocks allocated, before HDF5 writes anything. `source`: the file as
    the user named it."""
    needed = HEADROOM + max(0, int(room))
    if not _reserve(p, p.stat().st_size, needed):
        raise _no_room(source, "write to it", needed)


@contextlib.contextmanager
def writing(path: str | Path, *, create: bool = True, swmr: bool = False, room: int = 0,
            same_file: FileId | None = None) -> Iterator[h5py.File]:
    """Open a session file for writing, for the duration of one write; closes it after.

    `room`: bytes the write stores (its arrays), reserved with `HEADROOM` before the file
    is opened; StorageError, with the file unchanged, when there is not that much room.
    `create`: make the file when missing. `swmr`: open in SWMR-write mode (for files that
    pass `require_swmr_format`; no new objects, but a crash during the write leaves every
    flushed byte readable). A file left marked
    open-for-write by a killed writer is repaired first; one that a live process writes
    outside this lock raises InputError, and so does one whose global heap HDF5 would
    never return from reading (`check_global_heaps`), before HDF5 reads it. `same_file`: the
    file (`file_id`) the name is to stand for; `Replaced`, before anything is written, when
    it names another (`identity`).

    A write that raises leaves the file as it was (`_Before`): the objects it made at the
    root are deleted, the root's attributes put back, and a file that this write made,
    holding nothing then, is removed. A write deeper in an existing entry, or in SWMR mode
    (values in place), puts back what it changed itself.
    """
    p = Path(path)
    if p.exists() and not p.is_file():
        raise InputError("is not a file; expected an smm-daq session file (.h5)", source=str(p))
    with contextlib.ExitStack() as unlocked, contextlib.ExitStack() as held, \
            contextlib.ExitStack() as repaired:  # `unlocked` closes once the lock is let go
        made, real, locked = _judged_and_held(held, p, create=create)
        try:
            _ready_for_writing(p, real, same_file=same_file, hold=repaired, locked=locked)
            # as `_ready_for_writing` left it (judged there: not scanned again)
            readied = check_global_heaps(real, source=p, settled=locked)
            _reserve_room(real, room, source=p)
            if readied is not None:  # room reserved past its end, its heaps untouched
                written(real, readied)
            f = h5py.File(_opened_readied(real, readied, swmr=swmr, source=p))
        except BaseException:  # refused before it was opened: nothing of it is kept
            if made is not None:
                _discard(made, real, unlocked, locked=locked)
            raise
        failed = True
        try:
            before = None if swmr else _Before.of(f)
            if _holds_nothing(f):  # an empty HDF5 file: made a session file
                _init_root(f, real)  # named as itself, as `_create` names it
            try:
                yield f
                f.flush()
            except BaseException:
                if before is not None:
                    before.put_back(f, p)
                raise
            failed = False
        finally:
            _close(f, p, failed=failed)
            if failed and made is not None:
                _discard(made, real, unlocked, locked=locked)
        if not failed:  # checked as it was readied, and libhdf5 wrote it since (where no
            written(real, readied)  # other file was renamed over it meanwhile)


def _opened_readied(real: Path, readied: global_heap.State | None, *, swmr: bool,
                    source: Path) -> h5py.h5f.FileID:
    """`real` opened for writing where HDF5 opened the file `_ready_for_writing` readied
    (`readied`: its state; its device and inode numbers, from HDF5's own descriptor):
    `Replaced` where another was renamed over it since, closed unwritten. That one is not
    the file locked, and none of the write's checks were made of it (which file the name
    is to stand for, whose file it is, a repair of one left marked open). Stands where
    either state cannot be had."""
    fid = _open_for_writing(real, swmr=swmr, source=source)
    if not _same_file(readied, _descriptor(fid, None)):
        fid.close()
        raise Replaced(f"{source}: the file was replaced while being opened (another file "
                       "renamed over it); nothing was written")
    return fid


_SCANS_BEFORE_LOCK = 2  # a file another process wrote meanwhile is scanned again before it


def _judged_and_held(stack: contextlib.ExitStack, p: Path, *,
                     create: bool) -> tuple[_Made | None, Path, bool]:
    """`_held_for_writing`, the file's global heaps scanned before the lock is taken (read
    whole, seconds a gigabyte: another process's write, a scan's line, is not held up
    meanwhile). A file written by another process between the scan and the lock is let go
    as soon as its writers' turn is held (before its readers are waited for: `_file_lock`'s
    `ready`) and scanned again, `_SCANS_BEFORE_LOCK` times at most; after that,
    `_ready_for_writing` scans it under the lock. The turn is waited for
    `turns.TURN_WAIT_S` at most over all these rounds, as any wait for a writer at work: the
    scans are no such wait (a large file's takes a minute on a slow disk, and would leave
    none to a writer that must wait a second for a line's write)."""
    deadline = turns.turn_deadline()
    for _ in range(_SCANS_BEFORE_LOCK - 1):
        deadline = _scanned_before_lock(p, deadline)
        with contextlib.suppress(_WrittenSinceScan):
            return _held_for_writing(stack, p, create=create, deadline=deadline,
                                     unwritten=True)
    deadline = _scanned_before_lock(p, deadline)
    return _held_for_writing(stack, p, create=create, deadline=deadline)


class _WrittenSinceScan(Exception):
    """The file was written by another process between its writer's scan and its turn."""


def _unwritten_since_scan(real: Path) -> None:
    if not judged_intact(real):
        raise _WrittenSinceScan


def _scanned_before_lock(p: Path, deadline: float) -> float:
    """`deadline` put off by as long as the scan took (on `turns.CLOCK`)."""
    began = turns.CLOCK.now()
    if p.exists():
        here.refuse_within(final_file(p), writing=True, source=p)
        _heaps_checked(final_file(p), source=p)
    return deadline + turns.CLOCK.now() - began


def _ready_for_writing(p: Path, real: Path, *, same_file: FileId | None,
                       hold: contextlib.ExitStack, locked: bool) -> None:
    """Refuse to write the file `real` that `p` names, its writers' lock held (`locked`:
    other processes kept out), where its global heap is damaged, it is not the file
    `same_file` (`Replaced`), another program's or open for writing in one (InputError); a
    file left marked open by a killed writer is repaired first, its copy held until `hold`
    closes as the file it replaced was. The heaps were scanned before the lock was taken
    (`writing`): here they are scanned again only where the file changed since."""
    check_global_heaps(real, source=p, settled=locked)  # before HDF5 reads it
    if same_file is not None:  # before anything, a repair too, touches the file
        _require_named(p, same_file)  # (a link re-pointed before the lock: Replaced)
    else:
        require_ours(real, source=p)
    if marked_open(real):
        _name_removed(p, _repair_locked(p, real, only_ours=True, hold=hold))
    elif _locked_by_a_writer(real):
        raise InputError(
            "is open for writing in another program (it holds HDF5's write lock); close "
            "it there first",
            source=str(p),
        )


def _discard(made: _Made, real: Path, unlocked: contextlib.ExitStack, *,
             locked: bool) -> None:
    """Remove the file a refused or failed write made, where it holds nothing
    (`_remove_if_empty`), under its writers' lock: held already where it is the file
    locked for the write (`real`; `locked`: other processes kept out). Where the name was
    re-pointed to another file meanwhile, that lock is taken once `unlocked` closes, after
    the write's lock of `real` is let go (waited for, its writers would be held up as long),
    and the file is left where it cannot be had (another writer is at it). Where no lock
    keeps other processes out (a file system without locks), the file is left: another
    process may write an entry into it between the look that finds it empty and its
    removal."""
    if made.path != real:
        unlocked.callback(_discard_elsewhere, made)
    elif locked:
        _remove_if_empty(made)
    else:
        _left_unlocked(made)


def _discard_elsewhere(made: _Made) -> None:
    with contextlib.suppress(InputError, StorageError, OSError), _file_lock(
            made.path, exclusive=True) as locked:
        if locked:
            _remove_if_empty(made)
        else:
            _left_unlocked(made)


def _discard_unless_held(made: _Made) -> None:
    """Remove the file a write made and was then refused the writers' lock of (another
    writer held it too long; Ctrl-C while it waited), where it holds nothing
    (`_remove_if_empty`) and nobody reads or writes it now: asked once, not waited for (a
    writer that holds it is writing it, and a refusal is not held up), and left where that
    cannot be told (a file system without locks)."""
    with contextlib.ExitStack() as stack, contextlib.suppress(OSError, InputError):
        turn = stack.enter_context(_local_lock(made.path))
        if not turn.acquire(blocking=False):  # another thread of this process writes it
            return
        stack.callback(turn.release)
        if _shared_locks():
            fd = os.open(made.path, os.O_RDWR)
            stack.callback(os.close, fd)  # closing the descriptor releases the lock
            try:
                if not turns.hold_for_writing_at_once(fd):
                    return
            except OSError:
                _left_unlocked(made)
                return
        else:
            machine = _machine_lock(made.path)
            machine.acquire(timeout=0)  # filelock.Timeout (an OSError) where it is held
            stack.callback(machine.release)
        _remove_if_empty(made)


def _left_unlocked(made: _Made) -> None:
    if not made.path.exists():
        return
    _log.warning("%s: the file a failed write made is left as it is (it may hold nothing): "
                 "its file system has no locks to keep other writers out while it would be "
                 "removed", made.path)


def _close(f: h5py.File, p: Path, *, failed: bool) -> None:
    """Close the file written. After a failed write, a close that fails too (the disk gone)
    is said, and the write's own failure stays the error."""
    if not failed:
        f.close()
        return
    try:
        f.close()
    except Exception as exc:  # the write's own error says what went wrong
        _log.warning("%s: the file of a failed write could not be closed: %s", p, exc)


def _held_for_writing(stack: contextlib.ExitStack, p: Path, *, create: bool,
                      deadline: float | None = None,
                      unwritten: bool = False) -> tuple[_Made | None, Path, bool]:
    """The writers' lock of the file `p` names (`final_file`: locked and written, also where
    a link to it is re-pointed meanwhile) held until `stack` closes, the file made first
    where it is missing and `create`; the file this made (None: none), the one locked, and
    whether other processes are kept out (`_file_lock`). A file removed while this waited
    for it (a new, empty one that another writer made and its failed write removed) is made
    again, or, not `create`, said missing: never written unlocked, nor an OS error's
    traceback. A file this made is removed again where the lock is refused
    (`_discard_unless_held`). `deadline`: see `_file_lock`. `unwritten`: `_WrittenSinceScan`
    as soon as the writers' turn is held where the file (not one this made) is no longer in
    a state judged intact (another process wrote it since it was scanned)."""
    for _ in range(_SWAPS_WAITED + 1):
        made = None
        if not p.exists():
            if not create:
                _check_exists(p)
            made = _create(p)
        real = final_file(p)
        ready = functools.partial(_unwritten_since_scan, real) if unwritten and not made else None
        with contextlib.ExitStack() as attempt:
            try:
                locked = attempt.enter_context(_writers_lock(real, source=p, deadline=deadline,
                                                             ready=ready))
            except BaseException as exc:
                if isinstance(exc, _CannotOpen) and not real.exists():
                    continue
                if made is not None:
                    _discard_unless_held(made)
                raise
            if real.exists():
                stack.enter_context(attempt.pop_all())
                return made, real, locked
    raise StorageError(f"{p}: was removed {_SWAPS_WAITED + 1} times while this waited to "
                       "write it (by other writers); expected it to stay: try again; nothing "
                       "was written")


def _open_for_writing(p: Path, *, swmr: bool, source: Path) -> h5py.h5f.FileID:
    flags = h5py.h5f.ACC_RDWR | (h5py.h5f.ACC_SWMR_WRITE if swmr else 0)
    try:
        return h5py.h5f.open(os.fsencode(p), flags, _write_fapl())
    except OSError as exc:
        raise InputError(
            f"cannot open for writing ({_reason(exc)}); expected an smm-daq session file "
            "not open for writing in another program",
            source=str(source),
        ) from None


def _remove_if_empty(made: _Made) -> None:
    """Remove the file that a failed write made where it holds no entry (no other writer
    wrote one meanwhile): as if it had never been made. Made through a symbolic link, the
    file goes and the link stays (`_create`); only that file, by its token: not another
    program's new file that the link was re-pointed to meanwhile, nor one put in its place."""
    with contextlib.suppress(OSError):
        with h5py.File(made.path, "r", locking=False) as f:
            ours = identity.token_of(f) == made.token
            empty = not len(f)
        if ours and empty:
            made.path.unlink()


@dataclass(frozen=True)
class _Before:
    """The root of a file before a write: its links (a hard link with the address of its
    object) and its attributes (value and the file's type, in creation order where the
    root tracks it), to put back where the write fails."""

    links: dict[str, int | None]
    attrs: dict[str, tuple[object, _Kind]]

    @classmethod
    def of(cls, f: h5py.File) -> _Before:
        return cls({name: _address(f, name) for name in f},
                   {key: (f.attrs[key], _Kind.of(f, key)) for key in f.attrs})

    def put_back(self, f: h5py.File, p: Path) -> None:
        """Put the root's attributes back, then delete what the write made at the root
        (in that order, so that a Ctrl-C part-way leaves `default` naming an object that is
        there). An attribute whose value the write changed is written again in place; one
        it removed, or gave another type or shape (an int32 written over by a float64 of
        the same value), is made again in its own type, and so is each after it in the
        root's order, so that the order is as it was. An object that was there before is
        kept under whatever name it has now (an entry set aside while it is replaced:
        staging settles it), and so is a new one that took the place of an object gone
        since (a replacement that was finished: never neither entry). Where that fails too
        (the disk gone), it is said, and the write's own failure is the error."""
        try:
            for key in list(f.attrs):
                if key not in self.attrs:
                    del f.attrs[key]
            order = list(self.attrs)
            remade = next((i for i, key in enumerate(order)
                           if key not in f.attrs or _Kind.of(f, key) != self.attrs[key][1]),
                          len(order))
            for key in order[:remade]:
                value, _ = self.attrs[key]
                if not _same(f, f.attrs[key], value):
                    f.attrs.modify(key, value)
            # each made again in turn (h5py's create replaces it): a Ctrl-C or a failure
            # part-way leaves those after it in place, not deleted
            for key in order[remade:]:
                value, kind = self.attrs[key]
                if key in f.attrs and not _makes_again(value, kind):
                    continue  # deleted, it would not be written back: left where it is
                f.attrs.create(key, value, dtype=h5py.Datatype(kind.type))
            now = {name: _address(f, name) for name in f}
            for name, address in now.items():
                if self._made(name, address, set(now.values())):
                    del f[name]
            f.flush()
        except Exception as exc:  # the write's own error says what went wrong
            _log.warning("%s: what a failed write made could not all be removed: %s", p, exc)

    def _made(self, name: str, address: int | None, there: set[int | None]) -> bool:
        """Whether root link `name` (to `address`; None: not a hard link), among links to
        the objects at `there`, is the write's to delete."""
        if name not in self.links:
            return address is None or address not in self.links.values()
        old = self.links[name]
        return address is not None and address != old and old in there


def _address(f: h5py.Group, name: str) -> int | None:
    """The address of the object a hard link `name` of `f` leads to; None for another link."""
    info = f.id.links.get_info(name.encode())
    return info.u if info.type == h5py.h5l.TYPE_HARD else None


@dataclass(frozen=True, eq=False)
class _Kind:
    """What an attribute is besides its value: its type in the file (the file's own, not
    numpy's reading of it: a vlen text's character set, a fixed text's padding) and its
    dataspace (none, one value, or a shape)."""

    type: h5py.h5t.TypeID
    space: tuple[int, tuple[int, ...] | None]

    @classmethod
    def of(cls, f: h5py.File, key: str) -> _Kind:
        attr = f.attrs.get_id(key)
        space = attr.get_space()
        kind = space.get_simple_extent_type()
        return cls(attr.get_type(),
                   (kind, space.shape if kind == h5py.h5s.SIMPLE else None))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, _Kind) and self.space == other.space
                and bool(self.type == other.type))

    __hash__ = None  # type: ignore[assignment]


def _makes_again(value: object, kind: _Kind) -> bool:
    """Whether h5py writes `value` back as an attribute of `kind`'s type, tried in a file in
    memory: some values it reads it cannot (an ASCII text holding a byte above 127 reads as
    a lone surrogate), and making an attribute again deletes it first."""
    name = f"rollback-trial-{uuid.uuid4().hex}"
    with h5py.File(name, "w", driver="core", backing_store=False) as trial:
        try:
            trial.attrs.create("a", value, dtype=h5py.Datatype(kind.type.copy()))
        except Exception:  # whatever h5py raises for it: TypeError, UnicodeError, ...
            return False
    return True


def _same(f: h5py.File, a: object, b: object) -> bool:
    """Whether two attribute values of `f` are alike: bit for bit where they are arrays of one
    type (a NaN, never equal to itself, would be put back by every failed write, changing a
    file that the write left as it was), item by item where those are objects (variable-length
    sequences, strings, references: unequal to each other as numpy compares them) and field by
    field in a compound holding them, else by value."""
    x, y = np.asarray(a), np.asarray(b)
    if x.dtype == y.dtype and x.shape == y.shape:
        if not x.dtype.hasobject:
            return x.tobytes() == y.tobytes()
        if x.dtype == object:
            return all(_same_item(f, p, q) for p, q in zip(x.flat, y.flat, strict=True))
        if x.dtype.names:  # a compound with such a field: field by field
            return all(_same(f, x[name], y[name]) for name in x.dtype.names)
    try:
        return bool(np.array_equal(x, y))
    except (TypeError, ValueError):
        return False


def _same_item(f: h5py.File, a: object, b: object) -> bool:
    """`_same` for one item of an array of objects: a reference by the object of `f` it leads
    to, a region reference also by its region (the selection, encoded)."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return _same(f, a, b)
    if type(a) is h5py.RegionReference and type(b) is h5py.RegionReference:
        if not a or not b:
            return not a and not b
        try:
            return bool(f[a].id == f[b].id) and (h5py.h5r.get_region(a, f.id).encode()
                                                  == h5py.h5r.get_region(b, f.id).encode())
        except (KeyError, ValueError, OSError):  # a dangling reference
            return False
    if type(a) is h5py.Reference and type(b) is h5py.Reference:
        if not a or not b:
            return not a and not b
        try:
            return bool(f[a].id == f[b].id)
        except (KeyError, ValueError):  # a dangling reference
            return False
    try:
        return type(a) is type(b) and bool(a == b)
    except (TypeError, ValueError):
        return False


def require_swmr_format(path: str | Path) -> None:
    """InputError unless the file is missing or its format allows SWMR writing."""
    p = Path(path)
    if not p.exists():
        return
    require_ours(p)  # said first: another program's file is not written in any format
    if read_whole(p, lambda f: f.id.get_create_plist().get_version()[0]) < 3:
        raise InputError(
            "is in an older HDF5 format that cannot be written while it is read (SWMR); "
            "write scans to a new file (smm-daq still reads this one)",
            source=str(p),
        )


# -- scratch files ------------------------------------------------------------------------


_SCRATCH_KINDS = ("new", "repair-tmp", "repair-src")
NAME_MAX = 255  # a name in a folder: bytes (ext4, XFS, Btrfs, APFS), UTF-16 units (NTFS)
THREAD_DIGITS = 7  # of a thread's number, at most (Linux: up to 4,194,304)


def name_length(name: str) -> int:
    """The length of a name in a folder as its file system counts it against NAME_MAX."""
    return len(name.encode("utf-16-le")) // 2 if _WINDOWS else len(os.fsencode(name))


def scratch_name_length(path: str | Path) -> int:
    """The longest the name of a scratch file beside session file `path` is (`_scratch`,
    `name_length`), whichever of this process's threads makes it: over NAME_MAX, the file
    cannot be made (it holds the session file's whole name, and more)."""
    name = _scratch(final_file(path), max(_SCRATCH_KINDS, key=len)).name
    return name_length(name) + max(0, THREAD_DIGITS - len(str(threading.get_native_id())))


def final_file(path: str | Path) -> Path:
    """The file that `path` finally names, through every symbolic link on the way (a
    'current' link to today's session, a link into a network share; relative, chained): the
    file a rebuild replaces, with its scratch copies beside it, so that the link stays a
    link, to the file rebuilt. A repair or a rebuild resolves it once, takes that file's
    lock and uses it for each step: a link re-pointed meanwhile does not split a rebuild
    between two files, nor have it replace a file it did not lock."""
    return Path(os.path.realpath(path))


def _scratch(p: Path, kind: str) -> Path:
    """This thread's scratch file of `kind` beside `p`, named after its writer,
    `.NAME.PID.THREAD.HOST~TOKEN.KIND` (`writer_id`), so that one left by a killed process can
    be told from one a live process still writes (`remove_leftovers`)."""
    host, pid, *token = writer_id().split(":")
    return p.with_name(f".{p.name}.{pid}.{threading.get_native_id()}.{host}~{''.join(token)}"
                       f".{kind}")


@dataclass(frozen=True)
class Leftover:
    """A scratch file beside a session file, and the writer its name records ("host:pid" or
    "host:pid:token"; "" when it does not say: an earlier smm-daq's `.NAME.PID.THREAD.new`,
    `NAME.repair-tmp` or `NAME.repair-src`)."""

    path: Path
    writer: str


def leftovers(path: str | Path) -> list[Leftover]:
    """The scratch files beside session file `path` (the file it finally names:
    `final_file`), in name order."""
    p = final_file(path)
    ours = re.compile(rf"\.{re.escape(p.name)}\.(\d+)\.\d+(?:\.(.*)~([^~]*))?"
                      rf"\.(?:{'|'.join(map(re.escape, _SCRATCH_KINDS))})")
    earlier = {f"{p.name}.repair-tmp", f"{p.name}.repair-src"}
    found = []
    try:
        names = sorted(child.name for child in p.parent.iterdir())
    except OSError:
        return []
    for name in names:
        match = ours.fullmatch(name)
        if match and match[2] is not None:
            token = f":{match[3]}" if match[3] else ""
            found.append(Leftover(p.with_name(name), f"{match[2]}:{match[1]}{token}"))
        elif match or name in earlier:
            found.append(Leftover(p.with_name(name), ""))
    return [left for left in found if left.path.is_file()]


def _stopped(writer: str) -> bool:
    """True only when `writer` was a process on this machine that has ended (`writer_alive`);
    this process's own scratch files are in use."""
    host, _, rest = writer.partition(":")
    pid, _, token = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():  # this pid, in this boot from this start, is this process
        return bool(token) and token != start_token(os.getpid())
    return not writer_alive(writer)


def remove_leftovers(path: str | Path, *, source: str | Path | None = None,
                     ) -> tuple[list[str], list[str]]:
    """Remove the scratch files a killed writer left beside session file `path` (a session
    file it was creating, a copy it was rebuilding): only those whose writer ran on this
    machine and has ended. Returns (removed, kept), each file named with its writer and why;
    a file whose writer may still be running, ran on another machine or is not recorded is
    kept. A file is named by its name alone where it is in the folder of `source` (the file
    as the user named it; `path` when not given), else by its path: beside the file a
    symbolic link in another folder names."""
    removed, kept = [], []
    named = Path(path if source is None else source).absolute()
    here_too = final_file(named.parent) == final_file(path).parent
    for left in leftovers(path):
        name = left.path.name if here_too else str(left.path)
        if _stopped(left.writer):
            try:
                left.path.unlink(missing_ok=True)
            except OSError as exc:
                kept.append(f"{name} (left by process {writer_process(left.writer)}, which "
                            f"has stopped, but it cannot be removed: {exc.strerror})")
            else:
                removed.append(f"{name} (left by process {writer_process(left.writer)}, "
                               "which has stopped)")
        elif not left.writer:
            kept.append(f"{name} (an earlier {PROGRAM_NAME}'s, which did not record the "
                        "machine of its writer: delete it once no process writes the file)")
        elif left.writer.partition(":")[0] != socket.gethostname():
            kept.append(f"{name} (its writer, process {writer_process(left.writer)}, ran on "
                        "another machine: only there can it be told whether it has stopped)")
        else:
            kept.append(f"{name} (its writer, process {writer_process(left.writer)}, is "
                        "still running)")
    return removed, kept


# -- repair ---------------------------------------------------------------------------------


def _own_groups(f: h5py.Group) -> Iterator[tuple[str, h5py.Group]]:
    """The groups directly under `f` by a name of their own: never through a link (one to
    another file, or round in a loop, which HDF5 refuses to follow)."""
    for name in f:
        if isinstance(f.get(name, getlink=True), h5py.HardLink) and isinstance(
                f[name], h5py.Group):
            yield name, f[name]


def live_writers(f: h5py.File) -> list[str]:
    """Entries of an open file whose recorded writer is still running on this machine."""
    busy = []
    for name, entry in _own_groups(f):
        if (
            "writer" in entry
            and "status" in entry
            and text(entry["status"]) in ("running", "paused", "interrupted")
            and writer_alive(text(entry["writer"]))
        ):
            busy.append(name)
    return busy


def _refuse_live_writers(f: h5py.File, p: Path, why: str = "") -> None:
    """InputError where an entry of `f` (at `p`) is written by a live process: a file rebuilt
    and swapped in while that writer waits its turn would be written by it and by the next
    writer at once (each holding the lock of another copy). `why`: said after the writer."""
    busy = live_writers(f)
    if busy:
        raise InputError(
            f"entry '{busy[0]}' is being written by a running process "
            f"({writer_process(text(f[busy[0]]['writer']))}){f': {why}' if why else ''}; "
            "wait for it or stop it first", source=str(p))


@dataclass(frozen=True)
class Repaired:
    """What `repair` changed besides the format: the scans it marked "interrupted", the
    unfinished entries it left out, the scratch files beside the file that it removed
    (their writers stopped) and kept (`remove_leftovers`), and the earlier releases' staged
    entries holding acquired data that it moved in under their names or, those names
    taken, kept where they are."""

    interrupted: list[str]
    left_out: list[CutOff]
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    moved_in: list[CutOff] = field(default_factory=list)
    held: list[CutOff] = field(default_factory=list)


def repair(path: str | Path, *, only_ours: bool = False) -> Repaired:
    """Make a file left open by a killed writer openable by every reader, keeping every byte.

    Rebuilds the file beside it (reading in SWMR mode, which a crash does not block; writing
    every object anew in the 1.10-readable format, which also makes a file from an older
    version of smm-daq readable by HDF5 1.x) and replaces the original only once the copy is
    complete. Scan entries still marked "running" or "paused" are marked "interrupted"; an
    entry whose writer was killed before it was complete (still staged) is left out, and so
    is an earlier release's staged entry holding nothing acquired; one holding acquired data
    is moved in under its name where that is free, else kept where it is; each is returned.
    A replacement of an entry that its writer was killed in is
    finished, or the old entry put back (`settle_replacement`). `only_ours`: refuse a file
    that smm-daq did not create (rewriting another program's file in another format is not
    for it to do). A file whose global heap HDF5 would never return from reading is refused
    before HDF5 reads it (`check_global_heaps`).
    """
    p = Path(path)
    _check_exists(p)
    real = final_file(p)
    _heaps_checked(real, source=p)
    return _repair(p, real, only_ours=only_ours)  # the file locked is the one repaired


def _repair(p: Path, real: Path, *, only_ours: bool) -> Repaired:
    """`repair` of the file `real` that `p` finally names (`final_file`, resolved once):
    locked, rebuilt and replaced, what is said naming it as `p` does."""
    lock = (_writers_lock(real, repairing=True, source=p) if only_ours
            else _file_lock(real, exclusive=True, source=p))
    with lock:
        return _repair_locked(p, real, only_ours=only_ours)


def _repair_locked(p: Path, real: Path, *, only_ours: bool = False,
                   hold: contextlib.ExitStack | None = None) -> Repaired:
    """`repair` with the writers' lock of `real` held, the file that `p` finally names
    (`final_file`), resolved before that lock was taken: it is rebuilt beside it and
    replaced, so a link stays a link to the repaired file, also one re-pointed meanwhile;
    what is said names the file as `p` does. `hold`: see `_swap_in`."""
    tmp = _scratch(real, "repair-tmp")
    cleared = _scratch(real, "repair-src")
    if _locked_by_a_writer(real):
        raise InputError(
            "is open for writing in another program (it holds HDF5's write lock); close it "
            "there first",
            source=str(p),
        )
    try:
        src = _open_for_repair(real, cleared, source=p)
        try:
            with _damage_named(p):
                if only_ours:
                    _check_repairable(src, p)
                _refuse_live_writers(src, p)
            # HDF5 writing a file the disk has no room for ends in a crash, not an error
            with _damage_named(p):
                size = _copy_room(src, real)
            _make_scratch(tmp, size, source=p, what="repair it: its copy is rebuilt beside it")
            tokens = (identity.token_of(src), None)
            with h5py.File(tmp, "w", libver=LIBVER, track_order=True, locking=False) as dst:
                with _damage_named(p):
                    _rebuild(src, dst, source=str(p))
                tokens = (tokens[0], _new_identity(dst))
                for name in replacements_under_way(dst):  # before the staged ones go
                    settle_replacement(dst, name, source=str(p))
                cut_off = cut_off_entries(dst)
                done = Repaired([], [c for c in cut_off if not c.acquired])
                for c in done.left_out:
                    del dst[c.key]  # an entry its writer did not finish: never part of the file
                for c in cut_off:
                    if c.acquired and dst.get(c.name, getlink=True) is None:
                        dst.move(c.key, c.name)  # the earlier writer's last step, made
                        done.moved_in.append(c)
                    elif c.acquired:
                        done.held.append(c)
                for name, entry in _own_groups(dst):
                    if (
                        "status" in entry
                        and text(entry["status"]) in ("running", "paused")
                    ):
                        entry["status"][()] = "interrupted"
                        done.interrupted.append(name)
        finally:
            src.close()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        cleared.unlink(missing_ok=True)
    _swap_in(tmp, real, tokens=tokens, source=p, hold=hold)
    done.removed[:], done.kept[:] = remove_leftovers(real, source=p)
    return done


def _new_identity(copy: h5py.File) -> str | None:
    """A rebuilt `copy` of a session file given its own identity token, returned: it is
    another file, whose lock a writer waiting for the one it replaces must take (`_hold`),
    also where the file system may show both under one inode number. An empty HDF5 file is
    left empty (None)."""
    if not _made_by_us(text(copy.attrs.get("creator", ""))):
        return None
    identity.give_token(copy)
    return identity.token_of(copy)


@contextlib.contextmanager
def _damage_named(p: Path) -> Iterator[None]:
    """InputError where HDF5 cannot read a part of `p` that a repair reads (damage it
    notices only once it reads that part: a header message's version), not a traceback. An
    OSError of the system's (one with an errno: no room, no permission) is passed on."""
    try:
        yield
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise
        raise InputError(
            f"cannot be read back whole to repair it ({exc}): part of it is damaged; "
            "expected an intact smm-daq session file: restore it from a copy (it is left "
            "as it was)", source=str(p)) from None


def _swap_in(tmp: Path, p: Path, copy: str = "repaired copy", *,
             tokens: tuple[str | None, str | None] = (None, None), source: Path,
             hold: contextlib.ExitStack | None = None) -> None:
    """Put the rebuilt `copy` `tmp` in place of `p` in one step (or remove it and say why not):
    a crash at any moment leaves the file as it was or as rebuilt, never half of either.
    `p` is the file itself (`final_file`): a symbolic link put there would be replaced, not
    its file. `tokens`: the identity tokens of the file replaced and of the copy, recorded
    with the swap, so that a scan of this process writing `p` writes on in the copy
    (`identity.swapped`). `source`: the file as the user named it, for what is said.

    `hold`: for a writer that goes on writing `p` (or rebuilding it) after the swap: the
    copy's writers' lock is taken before it has the name, and held until `hold` closes, as
    the lock of the file it replaces is (which nobody else reads or writes any more): else
    another process's writer or reader arriving after the swap would find the file free
    under this writer."""
    try:
        if hold is not None:
            _hold_copy(tmp, hold)
        with open(tmp, "rb+") as fh:  # on disk before its name is: a power cut keeps one whole
            os.fsync(fh.fileno())
        old, new = identity.at(p, tokens[0]), identity.at(tmp, tokens[1])  # a rename keeps it
        os.replace(tmp, p)
        identity.swapped(p, old, new)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise InputError(
            f"cannot be replaced by its {copy} ({exc.strerror or exc}); "
            f"{_replace_advice(exc, p.parent)}; it is as it was", source=str(source)) from None


def _replace_advice(exc: OSError, folder: Path) -> str:
    """What is expected of a file that `os.replace` refused to replace in `folder` (`exc`),
    as this system refuses it: Windows replaces no file that another program has open; a
    POSIX system refuses where the folder's permissions do (its write permission, or its
    sticky bit, as /tmp has, where only a file's owner or the folder's may replace it)."""
    if not isinstance(exc, PermissionError):
        return "expected a file that can be replaced where it is"
    if _WINDOWS:
        return ("expected it open in no other program (Windows replaces no file that is "
                "open): close it there, then try again")
    with contextlib.suppress(OSError):
        if folder.stat().st_mode & stat.S_ISVTX:
            return (f"expected a file this user may replace: its folder, {folder}, has the "
                    "sticky bit set (as /tmp), where only the file's owner or the folder's "
                    "may replace it: run this as its owner, or copy the file to a folder of "
                    "your own")
    return (f"expected its folder, {folder}, writable by this user (a file is replaced in "
            "its folder): make it so, or copy the file to a folder that is, then try again")


def _hold_copy(tmp: Path, hold: contextlib.ExitStack) -> None:
    """The writers' lock of the fresh copy `tmp` (nobody else knows its name: taken at
    once), held until `hold` closes; nothing where the system or its file system has no
    such locks (the machine's lock file, by name, stands in there: `_machine_lock`)."""
    if not _shared_locks():
        return
    fd = os.open(tmp, os.O_RDWR)
    hold.callback(os.close, fd)  # closing the descriptor releases the lock
    with contextlib.suppress(OSError):  # a file system without such locks
        turns.hold_for_writing(fd, str(tmp))


def make_extendable(path: str | Path, datasets: Collection[str]) -> None:
    """Rebuild session file `path` with each of `datasets` (absolute paths of 1-D datasets,
    contiguous, so of a fixed length) chunked and extendable along its axis, every other
    object as it was. The copy is made beside the file and swapped in whole (`_swap_in`):
    all of it or nothing. A file marked open by a killed writer is repaired on the way."""
    p = Path(path)
    _check_exists(p)
    real = final_file(p)  # locked, rebuilt and replaced: a link to it stays a link
    with _writers_lock(real, source=p), contextlib.ExitStack() as repaired:
        require_ours(real, source=p)
        if marked_open(real):  # its copy, swapped in, held while it is rebuilt again
            _name_removed(p, _repair_locked(p, real, only_ours=True, hold=repaired))
        with h5py.File(real, "r", locking=False) as f:
            _refuse_live_writers(f, p, "it is rebuilt whole first, and swapped in under them")
        tmp = _scratch(real, "repair-tmp")
        room = "rebuild it: its copy is made beside it"
        extendable = frozenset(datasets)
        try:
            with h5py.File(real, "r", locking=False) as src:
                size = _copy_room(src, real, extendable)
                _make_scratch(tmp, size, source=p, what=room)
                try:  # (the room checked, but not held: HDF5 makes the copy anew)
                    with h5py.File(tmp, "w", libver=LIBVER, track_order=True,
                                   locking=False) as dst:
                        _rebuild(src, dst, source=str(p), extendable=extendable)
                        tokens = (identity.token_of(src), _new_identity(dst))
                except OSError as exc:  # the disk filled meanwhile: said as the check says it
                    if exc.errno in _NO_ROOM:
                        raise _no_room(p, room, size) from None
                    raise
            _swap_in(tmp, real, "rebuilt copy", tokens=tokens, source=p)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def _copy_room(src: h5py.File, real: Path, extendable: frozenset[str] = frozenset()) -> int:
    """Bytes at most that a rebuild of the open file `src` (at `real`; `extendable`: see
    `_rebuild`) writes: all that the file holds again (its data as stored, its metadata
    re-encoded, which `HEADROOM` covers beyond its own size), and the index of each chunked
    dataset's chunks in the copy's format (`copying.index_room`), which can be many times
    the file (a sparse dataset of an oldest-format file)."""
    indexes = 0

    def add(name: str, obj: h5py.HLObject) -> None:
        nonlocal indexes
        if isinstance(obj, h5py.Dataset):
            indexes += index_room(obj, extendable=obj.name in extendable)

    src.visititems(add)  # each object once, also one under several names
    return real.stat().st_size + HEADROOM + indexes


def _check_repairable(f: h5py.File, p: Path, *, besides: str = "") -> None:
    """InputError unless the open file `f` (at `p`) is one a repair of smm-daq's rewrites: an
    smm-daq session file, or an empty HDF5 file, which every writer makes one (`not_ours`).
    `besides`: what else keeps it from being repaired, said with it."""
    creator = text(f.attrs.get("creator", ""))
    if not (_made_by_us(creator) or _holds_nothing(f)):
        raise InputError(
            f"was not made by {PROGRAM_NAME} ({_made(creator)}){besides}; expected an "
            f"{PROGRAM_NAME} session file: nothing was changed (`h5clear -s` clears the "
            "open-for-write mark of any HDF5 file)", source=str(p))


def _name_removed(p: Path, done: Repaired) -> None:
    """Say which scratch files and unfinished entries a repair on the way removed, and what
    it did with earlier releases' staged entries holding acquired data (on
    stderr, where nothing else is set up to show the "smm_daq" log)."""
    for name in done.removed:
        _log.warning("%s: removed %s", p, name)
    for c in done.left_out:
        _log.warning("%s: %s", p, left_out_note(c, str(p)))
    for c in done.moved_in:
        _log.warning("%s: %s", p, kept_note(c, moved_in=True))
    for c in done.held:
        _log.warning("%s: %s", p, kept_note(c, moved_in=False))


def _locked_by_a_writer(p: Path) -> bool:
    """True when a live process holds HDF5's own (flock) write lock on the file: a program
    writing it with HDF5's default locking. A killed process holds no lock."""
    if fcntl is None:
        return False
    fd = os.open(p, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # a file system without flock: nothing to learn
        return False
    finally:
        os.close(fd)  # and with it the probe's lock
    return False


def _open_for_repair(p: Path, cleared: Path, *, source: Path) -> h5py.File:
    """The file to rebuild from: itself (in SWMR mode when marked, which a writer killed in
    SWMR mode allows), or else a copy with the mark cleared as `h5clear -s` would; either
    opened in the state its heaps were judged intact in (`_opened_judged`: the copy's own,
    which may be of a file put over the one checked before the lock). `source`: the file as
    the user named it, for what is said."""
    if marked_open(p):
        _check_superblock(p, source)
    try:
        f, _ = _opened_judged(lambda: check_global_heaps(p, source=source),
                              lambda: (h5py.File(p, "r", swmr=marked_open(p)), None),
                              source=source)
        return f
    except OSError as exc:
        first = exc
    if marked_open(p):
        _make_scratch(cleared, p.stat().st_size, source=source,
                      what="repair it: it is copied beside it first")
        shutil.copyfile(p, cleared)
        with contextlib.suppress(ValueError, OSError):
            clear_open_mark(cleared)
            f, _ = _opened_judged(lambda: check_global_heaps(cleared, source=source),
                                  lambda: (h5py.File(cleared, "r"), None), source=source)
            return f
    raise InputError(
        f"cannot be read back to repair it ({_reason(first)}); expected a session file "
        "that a stopped smm-daq process was writing",
        source=str(source),
    ) from None


def _rebuild(src: h5py.File, dst: h5py.File, *, source: str,
             extendable: frozenset[str] = frozenset()) -> None:
    """Every attribute, group and dataset of `src` written anew under `dst` (each dataset's
    stored data only: `copy_dataset`; each attribute as its file holds it: `copy_attributes`),
    and every link as the same link; each 1-D dataset named in `extendable` (by its path)
    chunked and extendable. `source`: the file named in a refusal (a dataset declaring more
    text than a session file holds, references of a kind not followed). What points at
    objects of the file points at their copies (`relinking.Relinks`): a dataset or attribute
    of a named (committed) datatype links to that type's copy, and references are written
    last, each pointing at the copy of what it pointed at."""
    relinks = Relinks(src, dst, source=source)
    _rebuild_group(src, dst, source=source, extendable=extendable, relinks=relinks)
    relinks.finish()


def _rebuild_group(src: h5py.Group, dst: h5py.Group, *, source: str,
                   extendable: frozenset[str], relinks: Relinks) -> None:
    """`_rebuild` of the group `src` into `dst`. An object under several names (hard links)
    is copied once and linked under each (`relinks.copied`): copied again under each name,
    it would take the room of as many (past the room reserved for the copy) and a loop of
    groups none."""
    copy_attributes(src, dst, source=source, relinks=relinks)
    for key in src:
        node = src.get(key, getlink=True)
        if isinstance(node, h5py.SoftLink):
            dst[key] = h5py.SoftLink(node.path)
            continue
        if isinstance(node, h5py.ExternalLink):  # a link still, never the other file's data
            dst[key] = h5py.ExternalLink(node.filename, node.path)
            continue
        obj = src[key]
        copied = relinks.copied(obj)
        if copied is not None:  # another name of an object already copied
            dst[key] = dst.file[copied]
            continue
        if isinstance(obj, h5py.Group):
            group = dst.create_group(key, track_order=True)
            relinks.made(obj, group)
            _rebuild_group(obj, group, source=source, extendable=extendable, relinks=relinks)
            continue
        if isinstance(obj, h5py.Datatype):
            named = relinks.commit(obj, dst, key)
            copy_attributes(obj, named, source=source, relinks=relinks)
            continue
        new = copy_dataset(obj, dst, key, source=source,
                           extendable=obj.name in extendable, relinks=relinks)
        relinks.made(obj, new)
        copy_attributes(obj, new, source=source, relinks=relinks)
