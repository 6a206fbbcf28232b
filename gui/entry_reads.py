"""A session file's entries read off the window's thread, only the latest read wanted shown.

Listing a file's entries waits for its disk (a large file, a network share) and for a scan's
line being written into the same file: on the window's thread, Stop, Esc and the live map
waited with it. Here each read runs in a worker of its own and has a token; the result of a
read that a newer one has superseded (another file opened, the file written since) is
dropped, and a superseded read that has not started yet is not made at all.

What a caller wants done once the entries are on show (`then`, say selecting an entry just
written) carries over to a newer read of the same file, which lists the entry too; it is told
False when the file's entries could not be read, when another file's read supersedes it, or
when the reads are shut down, so that it is always told once. A read ended by something other
than an error (SystemExit raised in the listing) ends with an error all the same
(`ReadEnded`): never a read in hand for ever, its file said as being read.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PyQt6 import QtCore

from gui.background import Background
from smm_daq.storage.aliases import file_key as identity_key

Then = Callable[[bool], None]


class ReadEnded(Exception):
    """A read ended by an exception that is no error (SystemExit, KeyboardInterrupt), which
    the worker would not report: its `__cause__`."""

    def __init__(self, path: Path, cause: BaseException) -> None:
        super().__init__(f"the read of {path.name} was ended by {type(cause).__name__}"
                         + (f" ({cause})" if str(cause) else ""))


@dataclass
class _Read:
    """The read wanted: its token, the file, and what waits for its entries to be shown."""

    token: int
    path: Path
    then: list[Then] = field(default_factory=list)


class EntryReads(QtCore.QObject):
    """Start reads with `start`; the latest one's result or error comes back on the window's
    thread, older ones' are dropped."""

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.worker = Background("entries", self)
        self._token = 0
        self._wanted: _Read | None = None
        self._shut = False  # the window has closed: nothing more is read

    @property
    def pending(self) -> Path | None:
        """The file whose entries are being read, or None when no read is wanted."""
        return self._wanted.path if self._wanted is not None else None

    def start(self, path: Path, read: Callable[[], Any],
              on_read: Callable[[int, Any], None],
              on_error: Callable[[int, BaseException], None],
              then: Then | None = None) -> int:
        """Run `read()` (the listing of `path`) in the worker; then `on_read(token, value)` or
        `on_error(token, exc)` on the window's thread, followed by `then(shown)`, unless a
        newer read has been started meanwhile. The read's token. Once shut down, nothing is
        read: `then(False)` at once."""
        self._token += 1
        token = self._token
        if self._shut:
            _tell([then] if then is not None else [], False)
            return token
        before = self._wanted
        same = before is not None and same_file(before.path, path)
        carried = before.then if before is not None and same else []
        dropped = before.then if before is not None and not same else []
        self._wanted = _Read(token, path, [*carried, *([then] if then is not None else [])])

        def job() -> Any:
            if token != self._token:  # superseded before it began: not read at all
                return None
            try:
                note_resolved(path)  # so that a link to the file and its target are one
                return read()
            except Exception:
                raise
            except BaseException as exc:  # else never reported: the read pending for ever
                raise ReadEnded(path, exc) from exc

        self.worker.submit(job, lambda value: self._ended(token, on_read, value),
                           lambda exc: self._ended(token, on_error, exc))
        _tell(dropped, False)  # once this read is the one wanted: one they start is newer
        return token

    def _ended(self, token: int, callback: Callable[[int, Any], None], value: Any) -> None:
        wanted = self._wanted
        if wanted is None or wanted.token != token:
            return  # superseded: a newer read reports
        self._wanted = None
        shown = False
        try:
            callback(token, value)
            shown = not isinstance(value, BaseException)
        finally:  # also when the callback raises (a bug, reported): then nothing was shown
            _tell(wanted.then, shown)

    def shutdown(self) -> None:
        """The window closes: the read in hand is left to its thread, its result dropped;
        what waited for it is told False."""
        wanted, self._wanted = self._wanted, None
        self._token += 1
        self._shut = True
        self.worker.shutdown(wait=False)
        if wanted is not None:
            _tell(wanted.then, False)


# each path read (absolute) and the file it names, its links followed: found by the reads'
# worker, which may wait for the disk; read by the window's thread, which must not. The
# RESOLVED_KEPT paths read or looked up last are kept (a window open for days reads many
# files): one not read or looked up since is its own key again, until it is read again
RESOLVED_KEPT = 256
_resolved: OrderedDict[Path, Path] = OrderedDict()
_resolved_lock = threading.Lock()  # held for a dict operation only, never over the disk


def note_resolved(path: Path) -> Path:
    """The file `path` names, its symbolic links followed, remembered for `file_key`; one
    path for every name of one file (a hard link, a name in another case where the file
    system ignores case: `smm_daq.storage.aliases.file_key`). Asks
    the disk: called in a worker, never on the window's thread. A path whose links cannot be
    followed (a loop of links, a folder not searchable) is its own key: the read that follows
    says what is wrong with the file, as for any file that cannot be read."""
    absolute = Path(path).absolute()
    try:
        real = Path(identity_key(absolute.resolve()))
    except (OSError, RuntimeError):  # RuntimeError: a loop of links (Python before 3.13)
        with _resolved_lock:
            _resolved.pop(absolute, None)
        return absolute
    with _resolved_lock:
        _resolved[absolute] = real
        _resolved.move_to_end(absolute)
        while len(_resolved) > RESOLVED_KEPT:
            _resolved.popitem(last=False)  # the one read or looked up longest ago
    return real


def file_key(path: Path) -> Path:
    """The file `path` names, without asking the disk (which may be what is slow): its links
    followed where a read has found them (`note_resolved`), else the path made absolute. A
    file named through a link and through its target, or through two hard links, has one key
    once each name is read (and read or looked up since among the last RESOLVED_KEPT)."""
    absolute = Path(path).absolute()
    with _resolved_lock:
        real = _resolved.get(absolute)
        if real is None:
            return absolute
        _resolved.move_to_end(absolute)  # a file in use (compared on each change) is kept
        return real


def same_file(a: Path, b: Path) -> bool:
    """Whether `a` and `b` name the same file (`file_key`), without asking the disk."""
    return file_key(a) == file_key(b)


def _tell(then: list[Then], shown: bool) -> None:
    """Tell each of `then` whether the entries are shown, every one of them also when one
    raises (a bug): the first such error is raised once all are told."""
    failed: BaseException | None = None
    for call in then:
        try:
            call(shown)
        except BaseException as exc:
            failed = failed or exc
    if failed is not None:
        raise failed
