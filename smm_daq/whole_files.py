"""Files written whole or not at all (CSV, PNG exports, MMT tables and grain lists).

A write that fails part-way (a full disk, a quota, a file size limit, Ctrl-C) must not leave a
file that looks like a finished export but holds only its first rows, nor cut short the
complete file an --overwrite was to replace. So the content goes to a hidden file beside the
target, which takes the target's name only once it is whole and on disk (`fsync`, then
`os.replace`, atomic on one file system); on any failure the hidden file is removed and the
target is as it was. A file replaced keeps its permissions and, where the user may set it,
its group; a symbolic link keeps pointing where it did, at the new content. A target that is
no regular file (/dev/null, which a script names to discard an output) is written as it is:
a file moved onto it would replace the device.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

NAME_CHARS = 40  # of the target's name in the hidden file's: 160 bytes at most in UTF-8


@contextlib.contextmanager
def written_whole(path: str | Path) -> Iterator[Path]:
    """Yield a path to write the content of `path` to; it becomes `path` when the block ends
    without an exception, and is removed otherwise. A new file gets the permissions a new
    file gets (the umask's); one replaced keeps its mode and group."""
    target = Path(os.path.realpath(path))  # through a link: the link stays, its file changes
    try:
        old: os.stat_result | None = target.stat()
    except OSError:
        old = None
    if old is not None and not stat.S_ISREG(old.st_mode):
        yield target
        return
    # the name cut short: the longest name a folder takes (255 bytes) must take the suffix too
    temporary = target.with_name(
        f".{target.name[:NAME_CHARS]}.{os.getpid()}.{secrets.token_hex(4)}.part")
    # made here, so that the writer that opens it again keeps its mode (not mkstemp's 0600)
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                     0o666 if old is None else 0o600))
    try:
        if old is not None:
            if hasattr(os, "chown"):
                with contextlib.suppress(OSError):  # only a group the user is in, or root
                    os.chown(temporary, -1, old.st_gid)
            os.chmod(temporary, stat.S_IMODE(old.st_mode))  # after chown, which clears setgid
        yield temporary
        _sync(temporary, os.O_RDWR)
        os.replace(temporary, target)
        with contextlib.suppress(OSError):  # a system that cannot sync a folder (Windows)
            _sync(target.parent, os.O_RDONLY)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def _sync(path: Path, flags: int) -> None:
    """Have the file (or the folder's list of names) on disk, not only in the page cache: a
    power cut after the rename must find the new content, not an empty file by its name."""
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
