"""Which file a session file's name stands for: what a scan checks before each write, so that
it writes the file it began with and no other put in its place.

Two things tell. The file's identity token: a random text in its root attributes (`TOKEN`),
written when the file is made, and written anew in the copy that a repair or a rebuild swaps
in (that copy is another file, whose lock a writer waiting for the replaced one must take
instead: `smm_daq.storage.h5file._hold`). And its identity on the file system, (st_dev,
st_ino). The token tells apart a file made where another was deleted, which the system may
give the same inode number (ext4, tmpfs); the inode number tells apart a copy of the file
put in its place, which holds the same token.

Inode numbers are compared only where the file system keeps a file's (`inode_kept`): the
types of `INODE_KEEPING_TYPES`, each for what its documentation says of its numbers, and
systems whose file system cannot be told (not Linux). Elsewhere the same file may show
under another number from one look to the next, or two files under one (FAT and exFAT
number files as they are loaded, CIFS mounted `noserverino`, an NFS share mounted again, a
9p or virtiofs share of several host file systems, numbers a FUSE file system makes up):
the token alone decides there, so a copy of the file put in its place counts as the file.
A file of an earlier release has no token until a scan starts or resumes in it or it is
repaired (`ensure_token`); until then its inode number alone decides.

A copy that this process rebuilt and swapped in (a repair or a rebuild, by any thread: a
reader's, another entry's writer's) is recorded as the successor of the file it replaced
(`swapped`), so that a scan of this process writes on in it (`successor`): it holds all
that scan wrote. Another process's copy is not followed (its repair is refused while the
scan's process lives).
"""

from __future__ import annotations

import os
import threading
import uuid
from collections import deque
from dataclasses import dataclass

import h5py

from smm_daq.storage import mounts, turns
from smm_daq.storage.strings import text

TOKEN = "file_identity"  # root attribute: 32 hex digits
# by st_dev: whether its file system keeps inode numbers, while the mount table stays as it was
_KEPT: dict[int, tuple[int, bool]] = {}

# File-system types (as /proc/self/mountinfo names them) whose inode number of a file stays
# the file's, and no other's, for as long as it lives. Any other type is not trusted so:
# - exfat, vfat, msdos: no inode numbers on disk; the kernel numbers a file as it loads it
#   (`iunique`, for "file systems that have no natural permanent inode numbering"), anew
#   once it was evicted from memory;
# - 9p: the number is the server's qid.path, which collides between host file systems
#   shared under one mount (QEMU's default `multidevs=warn`; kvmtool, diod never remap);
# - virtiofs and every FUSE type (fuse, fuseblk, fuse.sshfs...): numbers the server gives,
#   the host's (colliding between host file systems unless it announces submounts) or made
#   up (sshfs without `use_ino`);
# - nfs, nfs4, cifs, smb3, ceph: a server's numbers for its own file system, which may not
#   keep them, and CIFS makes its own where the server gives none (`noserverino`, also
#   turned on mid-mount when the server's prove inconsistent).
INODE_KEEPING_TYPES = frozenset({
    # on-disk inode numbers
    "ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "jfs", "bcachefs", "reiserfs",
    "nilfs2",
    # in memory, a file's inode lives as long as the file
    "tmpfs", "ramfs",
    # a non-directory's st_ino is persistent exactly where its st_dev is the overlay's own
    # (all layers on one file system, or `xino`); elsewhere st_dev is the layer's, whose
    # type is then the one looked up
    "overlay",
    # the MFT record number (ntfs3, ntfs), the catalog node ID (hfsplus, hfs), the block of
    # the file's entry (udf): on disk, the file's for its life
    "ntfs3", "ntfs", "hfsplus", "hfs", "udf",
})


@dataclass(frozen=True)
class FileId:
    """One file: its token (None: a file of an earlier release, which has none) and where
    the file system has it, with whether that file system keeps it (`inode_kept`)."""

    token: str | None
    device: int
    inode: int
    inode_kept: bool


# (the file's real path, the file replaced, the copy swapped in), the latest last: a repair
# is rare, and a scan follows one at its next write, so a few dozen are plenty
_SWAPPED: deque[tuple[str, FileId, FileId]] = deque(maxlen=64)
_SWAPPED_GUARD = threading.Lock()


def token_of(f: h5py.File) -> str | None:
    """The open file's identity token; None where it has none."""
    value = f.attrs.get(TOKEN)
    if value is None:
        return None
    return text(value) or None


def give_token(f: h5py.File) -> None:
    """Write a new identity token into the open file (one made, or a rebuilt copy)."""
    f.attrs[TOKEN] = uuid.uuid4().hex


def ensure_token(f: h5py.File) -> None:
    """Give the open file a token where it has none (a file of an earlier release)."""
    if token_of(f) is None:
        give_token(f)


def inode_kept(device: int) -> bool:
    """Whether the file system `device` (st_dev) shows a file under one inode number for as
    long as the file lives: one of `INODE_KEEPING_TYPES`, or one whose type cannot be told
    (`turns.file_system_type` answers "" where there is no mount table). Asked again once
    the mount table changed: the device number may be another file system's by then."""
    return mounts.remembered(_KEPT, device, _keeps_inodes)


def _keeps_inodes(device: int) -> bool:
    kind = turns.file_system_type(device)
    return not kind or kind in INODE_KEEPING_TYPES


def of_open(f: h5py.File) -> FileId:
    """The identity of the file that `f` has open (not of whatever its name names now)."""
    st = os.fstat(f.id.get_vfd_handle())
    return FileId(token_of(f), st.st_dev, st.st_ino, inode_kept(st.st_dev))


def at(path: str | os.PathLike[str], token: str | None) -> FileId:
    """The identity of the file `path` names now, which holds `token` (OSError when none)."""
    st = os.stat(path)
    return FileId(token, st.st_dev, st.st_ino, inode_kept(st.st_dev))


def is_file(expected: FileId, token: str | None, st: os.stat_result) -> bool:
    """Whether a file holding `token`, found as `st`, is the file `expected`: its token where
    `expected` has one (a file that had one keeps it), and its inode number where the file
    system keeps it or there is no token to go by."""
    return _matches(expected, token, st.st_dev, st.st_ino)


def _matches(expected: FileId, token: str | None, device: int, inode: int) -> bool:
    if expected.token is not None:
        if token != expected.token:
            return False
        if not expected.inode_kept:
            return True
    return (device, inode) == (expected.device, expected.inode)


def swapped(path: str | os.PathLike[str], old: FileId, new: FileId) -> None:
    """Record that this process put the rebuilt copy `new` in place of `old` at `path`."""
    with _SWAPPED_GUARD:
        _SWAPPED.append((os.path.realpath(path), old, new))


def successor(path: str | os.PathLike[str], expected: FileId) -> FileId:
    """The copy this process last swapped in at `path` in place of `expected` (following a
    copy of a copy), or `expected` where there is none."""
    where = os.path.realpath(path)
    with _SWAPPED_GUARD:
        records = list(_SWAPPED)
    for place, old, new in records:  # oldest first: a later copy replaced an earlier one
        if place == where and _matches(expected, old.token, old.device, old.inode):
            expected = new
    return expected
