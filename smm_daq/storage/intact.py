"""Whether a session file needs `repair` at all: one that no writer left unfinished and that
is already in the format HDF5 1.10 decodes is left as it is, not rewritten whole.

Judged conservatively: anything `repair` would change, or might refuse, counts as a reason to
run it (which then says what it did, or why not). The format is told from the versions of
each object's header messages, and a message of a type HDF5 1.10 does not know counts as a
later format: a writer not bounded to 1.10 (as smm-daq's were before) encodes
some of them in versions HDF5 1.10 cannot decode, e.g. a boolean's datatype (version 4 or 5,
1.10 decodes up to 3) or a compressed dataset's layout (5, up to 4).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import h5py

from smm_daq.errors import InputError, StorageError
from smm_daq.storage.h5file import live_writers, marked_open, not_ours, read_whole
from smm_daq.storage.staging import cut_off_entries, replacements_under_way, unstaged_name
from smm_daq.storage.strings import text


def needs_repair(path: str | Path) -> bool:
    """True unless the file at `path` is intact and current: not marked open for writing,
    superblock version 3, no datatype HDF5 1.10 cannot decode, no entry left running,
    paused, staged or half replaced by a writer, and smm-daq's (or empty). The file is only
    read, never changed; a file that cannot be read is left to `repair` to name."""
    p = Path(path)
    if marked_open(p):
        return True
    try:
        return read_whole(p, _needs_repair)
    except (InputError, StorageError, OSError, KeyError, RuntimeError, ValueError):
        return True  # `repair` says what it is


def _needs_repair(f: h5py.File) -> bool:
    if f.id.get_create_plist().get_version()[0] != 3 or not_ours(f) is not None:
        return True
    if any(unstaged_name(key) != key for key in f):  # staged, or moved aside
        return True
    if cut_off_entries(f) or replacements_under_way(f) or live_writers(f):
        return True
    for key in f:
        if not isinstance(f.get(key, getlink=True), h5py.HardLink):
            continue
        entry = f[key]
        if (isinstance(entry, h5py.Group) and "status" in entry
                and text(entry["status"]) in ("running", "paused")):
            return True
    return not _types_current(f)


def _types_current(f: h5py.File) -> bool:
    """Every object's header messages (objects reached through hard links; a link leads to
    none of the file's own encodings) and every attribute's type in versions HDF5 1.10
    decodes. Every header is read from one handle on the file that `f` has open, and an
    object is opened only to ask its attributes (`h5py.h5o.visit` names each with its
    address, where h5py's own walk would make an object of each)."""
    with _Layout.opened(f) as layout:
        if layout is None:
            return False  # its bytes cannot be had: for `repair` to say
        if not (layout.header_current(h5py.h5o.get_info(f.id).addr) and _attrs_current(f.id)):
            return False

        def visit(name: bytes, info: h5py.h5o.ObjInfo) -> bool | None:
            ok = layout.header_current(info.addr) and (
                info.num_attrs == 0 or _attrs_current(h5py.h5o.open(f.id, name)))
            return None if ok else True  # anything but None stops the walk

        return h5py.h5o.visit(f.id, visit, info=True) is None


def _attrs_current(oid: h5py.h5o.ObjectID) -> bool:
    """Attributes in dense storage are outside their object's header: each type is asked."""
    for i in range(h5py.h5a.get_num_attrs(oid)):
        attr = h5py.h5a.open(oid, index=i)
        if _version(attr.get_type()) > NEWEST_1_10[_DATATYPE]:
            return False
    return True


def _version(tid: h5py.h5t.TypeID) -> int:
    """The datatype message version the type was stored with: H5Tencode keeps it (a
    one-byte message id and a one-byte encoding version, then the message, whose first
    byte holds the version above the type class)."""
    return tid.encode()[2] >> 4


_DATATYPE, _CONTINUATION = 0x03, 0x10
_NEWEST_KIND_1_10 = 0x18  # the metadata cache image message; a later type is a later format
# header message type -> the newest version of it HDF5 1.10 decodes (the message's first
# byte; a datatype's upper half of it): dataspace, link info, datatype, fill value, link,
# layout, group info, filter pipeline, attribute, modification time, attribute info. The
# link-, group- and attribute-info messages of every group that tracks creation order (all
# of smm-daq's) are version 0 in every HDF5 from 1.8 to 2.0: another version is damage, which
# HDF5 notices only once a link is added to the group (group info) or read in order.
NEWEST_1_10 = {0x01: 2, 0x02: 0, _DATATYPE: 3, 0x05: 3, 0x06: 1, 0x08: 4, 0x0A: 0, 0x0B: 2,
               0x0C: 3, 0x12: 1, 0x15: 0}


class _Layout:
    """Reads object headers (version 2, the only one a version 3 superblock's writer makes)
    from the file's bytes: HDF5 tells no message's version through its interface."""

    def __init__(self, f: h5py.File, fd: int | None = None) -> None:
        self._fd = fd
        plist = f.id.get_create_plist()
        self._base = plist.get_userblock()
        self._offset_size = plist.get_sizes()[0]

    @classmethod
    @contextlib.contextmanager
    def opened(cls, f: h5py.File) -> Iterator[_Layout | None]:
        """A layout reading the bytes of the very file `f` has open, through one descriptor
        for every header (not the file by its name, which another process's repair may have
        replaced since); None when they cannot be had."""
        vfd = f.id.get_vfd_handle() if f.driver == "sec2" else None
        if vfd is not None and _PREAD is not None:
            yield cls(f, vfd)  # HDF5's own descriptor: pread never moves its offset
            return
        try:
            fd = os.open(f.filename, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except OSError:
            yield None
            return
        try:
            same = vfd is not None and os.path.samestat(os.fstat(fd), os.fstat(vfd))
            yield cls(f, fd) if same else None
        finally:
            os.close(fd)

    def header_current(self, address: int) -> bool:
        """Whether the object header at `address` is in versions HDF5 1.10 decodes."""
        return self._fd is not None and self._chunks_current(self._fd, address)

    def _chunks_current(self, fd: int, address: int) -> bool:
        """False also where a header or its continuation runs past the end of the file (cut
        short, or not what HDF5 reads), or holds a message of a type HDF5 1.10 does not
        know: then it is for `repair` to say."""
        end = os.fstat(fd).st_size
        head = _read(fd, self._base + address, 6, end)
        if head is None or head[:4] != b"OHDR" or head[4] != 2:
            return False  # a version 1 header: written in an older format
        flags = head[5]
        skip = (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
        width = 1 << (flags & 0x03)
        start = self._base + address + 6 + skip
        sized = _read(fd, start, width, end)
        if sized is None:
            return False
        chunk0 = _read(fd, start + width, int.from_bytes(sized, "little"), end)
        blocks = [chunk0]
        order = 2 if flags & 0x04 else 0
        while blocks:
            data = blocks.pop()
            if data is None:
                return False
            at = 0
            while at + 4 + order <= len(data):
                kind, length = data[at], int.from_bytes(data[at + 1:at + 3], "little")
                body = data[at + 4 + order:at + 4 + order + length]
                at += 4 + order + length
                if kind > _NEWEST_KIND_1_10:
                    return False
                if kind == _CONTINUATION:
                    n = self._offset_size
                    where = int.from_bytes(body[:n], "little")
                    block = _read(fd, self._base + where, int.from_bytes(body[n:], "little"),
                                  end)
                    if block is None or block[:4] != b"OCHK":
                        return False
                    blocks.append(block[4:-4])
                elif kind in NEWEST_1_10 and body:
                    version = body[0] >> 4 if kind == _DATATYPE else body[0]
                    if version > NEWEST_1_10[kind]:
                        return False
        return True


_PREAD = getattr(os, "pread", None)  # none on Windows


def _read(fd: int, offset: int, length: int, end: int) -> bytes | None:
    """`length` bytes of `fd` from `offset`; None where they would run past `end`."""
    if offset + length > end:
        return None
    if _PREAD is not None:
        data = _PREAD(fd, length, offset)
    else:  # a descriptor of this module's own (`_Layout.opened`)
        os.lseek(fd, offset, os.SEEK_SET)
        data = os.read(fd, length)
    return data if len(data) == length else None
