"""Whether two names stand for one file, and one key per file for this process's locks.

Two names are one file when they resolve to one path, and also when they do not: hard links
to one file, or names differing only in case on a file system that ignores case (the default
on macOS and Windows). Where both exist, the file system says: one device and inode number,
where it keeps a file's number (`identity.inode_kept`), else, on macOS and Windows, one
device and one path but for case (a network or FUSE file system may show one file under
another number from one look to the next, and two files under one). Where one does not exist, they
are one file only if the other does not either (the file system would find it under the
other name); two new names are then one where they resolve to the same path, on macOS and
Windows also where that differs only in case (a folder there may be case-sensitive, but
refusing two names a user told apart only by case loses nothing).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

_IGNORES_CASE = sys.platform in ("darwin", "win32")  # these systems' default file systems


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether names `a` and `b` stand for one file (see the module)."""
    try:
        real_a, real_b = os.path.realpath(a), os.path.realpath(b)
    except (OSError, ValueError):  # not a name at all (a NUL in it)
        return False
    if real_a == real_b:
        return True
    folded = _IGNORES_CASE and real_a.casefold() == real_b.casefold()
    try:
        st_a, st_b = os.stat(real_a), os.stat(real_b)
    except (OSError, ValueError):  # one or both missing
        return folded and not (os.path.exists(real_a) or os.path.exists(real_b))
    if st_a.st_dev != st_b.st_dev:
        return False
    if _inode_kept(st_a.st_dev):
        return st_a.st_ino == st_b.st_ino
    return folded


# The keys given, by file and by name, the least recently asked first: kept for the keys in
# use (`keyed`) and, of the others, the `_REMEMBERED` most recent (a window runs for days and
# keys thousands of files, one after another).
_FIRST_NAMES: OrderedDict[tuple[int, int], str] = OrderedDict()  # (device, inode): its key
_KEY_AT: OrderedDict[str, str] = OrderedDict()  # resolved path: the key last given the file there
_IN_USE: dict[str, int] = {}  # key: how many `keyed` hold it now
_REMEMBERED = 1024
_GUARD = threading.Lock()


def file_key(path: str | Path) -> str:
    """One key per file for this process: the path its links resolve to, the same for every
    name of one existing file (a hard link, a name in another case on a file system that
    ignores case) where the file system keeps inode numbers: the key first given that file
    while that key still names it. A name keeps the key it was given, also once another
    file is put in its place (a repair's copy swapped in while a thread holds the lock of
    the one replaced, under a key that is the name of a hard link to it) or the name that
    key is goes: a thread asking after that takes turns with the one holding it. A name that
    stands for no file yet is its own resolved path, as is every name on a file system that
    does not keep inode numbers. A key no lock holds (`keyed`) is remembered so only among
    the `_REMEMBERED` asked for last: forgotten, its names are keyed anew."""
    return _key(path, pin=False)


@contextlib.contextmanager
def keyed(path: str | Path) -> Iterator[str]:
    """`file_key(path)`, remembered for every name given it for as long as this is held (by
    a lock of the file, or a thread waiting for one): never forgotten while in use."""
    key = _key(path, pin=True)
    try:
        yield key
    finally:
        with _GUARD:
            _IN_USE[key] -= 1
            if not _IN_USE[key]:
                del _IN_USE[key]
                _forget_unused()


def _key(path: str | Path, *, pin: bool) -> str:
    """`file_key`, held (`keyed`) where `pin`."""
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError:
        st = None
    kept = st is not None and _inode_kept(st.st_dev)
    with _GUARD:
        if st is None:
            key = _KEY_AT.get(real, real)
        elif not kept:
            key = real
        else:
            key = _given(real, (st.st_dev, st.st_ino))
        if pin:
            _IN_USE[key] = _IN_USE.get(key, 0) + 1
        _forget_unused()
        return key


def _given(real: str, identity: tuple[int, int]) -> str:
    """The key of the file `identity`, named `real`, recorded as the last asked for (with
    `_GUARD` held)."""
    first = _FIRST_NAMES.get(identity)
    if first is None or not _names(first, identity):  # a file since deleted or replaced
        first = _FIRST_NAMES[identity] = _KEY_AT.get(real, real)
    _KEY_AT[real] = first
    _FIRST_NAMES.move_to_end(identity)
    _KEY_AT.move_to_end(real)
    return first


def _forget_unused() -> None:
    """Of the keys no lock holds, forget the least recently asked for beyond `_REMEMBERED`
    of each table (with `_GUARD` held)."""
    for table in (_KEY_AT, _FIRST_NAMES):
        over = len(table) - _REMEMBERED
        if over <= 0:
            continue
        unused = itertools.islice((k for k, key in table.items() if key not in _IN_USE), over)
        for k in list(unused):
            del table[k]


def _inode_kept(device: int) -> bool:
    from smm_daq.storage.identity import inode_kept  # h5py: not for every command's start

    return inode_kept(device)


def _names(path: str, identity: tuple[int, int]) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == identity
