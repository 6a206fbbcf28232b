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

import os
import sys
import threading
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


_FIRST_NAMES: dict[tuple[int, int], str] = {}  # (device, inode): the key given that file
_KEY_AT: dict[str, str] = {}  # resolved path: the key last given the file there
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
    does not keep inode numbers."""
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError:
        return _KEY_AT.get(real, real)
    identity = (st.st_dev, st.st_ino)
    if not _inode_kept(st.st_dev):
        return real
    with _GUARD:
        first = _FIRST_NAMES.get(identity)
        if first is None or not _names(first, identity):  # a file since deleted or replaced
            first = _FIRST_NAMES[identity] = _KEY_AT.get(real, real)
        _KEY_AT[real] = first
        return first


def _inode_kept(device: int) -> bool:
    from smm_daq.storage.identity import inode_kept  # h5py: not for every command's start

    return inode_kept(device)


def _names(path: str, identity: tuple[int, int]) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == identity
