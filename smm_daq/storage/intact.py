"""Whether a session file needs `repair` at all: one that no writer left unfinished and that
is already in the format HDF5 1.10 decodes is left as it is, not rewritten whole.

Judged conservatively: anything `repair` would change, or might refuse, counts as a reason to
run it (which then says what it did, or why not). The format is told from the versions of
each object's header messages: a writer not bounded to 1.10 (as smm-daq's were before) encodes
some of them in versions HDF5 1.10 cannot decode, e.g. a boolean's datatype (version 4 or 5,
1.10 decodes up to 3) or a compressed dataset's layout (5, up to 4).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import h5py

from smm_daq.errors import InputError, StorageError
from smm_daq.storage.h5file import live_writers, marked_open, not_ours, open_read
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
        with open_read(p) as f:
            return _needs_repair(f)
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
    decodes."""
    layout = _Layout(f)
    found: list[bool] = [_attrs_current(f["/"])]

    def visit(_name: str, obj: object) -> bool | None:
        ok = layout.header_current(obj) and _attrs_current(obj)  # type: ignore[arg-type]
        found.append(ok)
        return None if ok else True  # True stops the walk

    if found[0] and layout.header_current(f["/"]):
        f.visititems(visit)
    else:
        found.append(False)
    return all(found)


def _attrs_current(obj: h5py.HLObject) -> bool:
    """Attributes in dense storage are outside their object's header: each type is asked."""
    for i in range(h5py.h5a.get_num_attrs(obj.id)):
        attr = h5py.h5a.open(obj.id, index=i)
        if _version(attr.get_type()) > NEWEST_1_10[_DATATYPE]:
            return False
    return True


def _version(tid: h5py.h5t.TypeID) -> int:
    """The datatype message version the type was stored with: H5Tencode keeps it (a
    one-byte message id and a one-byte encoding version, then the message, whose first
    byte holds the version above the type class)."""
    return tid.encode()[2] >> 4


_DATATYPE, _CONTINUATION = 0x03, 0x10
# header message type -> the newest version of it HDF5 1.10 decodes (the message's first
# byte; a datatype's upper half of it): dataspace, datatype, fill value, link, layout,
# filter pipeline, attribute, modification time
NEWEST_1_10 = {0x01: 2, _DATATYPE: 3, 0x05: 3, 0x06: 1, 0x08: 4, 0x0B: 2, 0x0C: 3, 0x12: 1}


class _Layout:
    """Reads object headers (version 2, the only one a version 3 superblock's writer makes)
    from the file's bytes: HDF5 tells no message's version through its interface."""

    def __init__(self, f: h5py.File) -> None:
        self._path = f.filename
        plist = f.id.get_create_plist()
        self._base = plist.get_userblock()
        self._offset_size = plist.get_sizes()[0]

    def header_current(self, obj: h5py.HLObject) -> bool:
        address = h5py.h5o.get_info(obj.id).addr
        with open(self._path, "rb") as fh:
            return self._chunks_current(fh, address)

    def _chunks_current(self, fh: BinaryIO, address: int) -> bool:
        """False also where a header or its continuation runs past the end of the file (cut
        short, or not what HDF5 reads): then it is for `repair` to say."""
        end = os.fstat(fh.fileno()).st_size
        head = _read(fh, self._base + address, 6, end)
        if head is None or head[:4] != b"OHDR" or head[4] != 2:
            return False  # a version 1 header: written in an older format
        flags = head[5]
        skip = (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
        width = 1 << (flags & 0x03)
        start = self._base + address + 6 + skip
        sized = _read(fh, start, width, end)
        if sized is None:
            return False
        chunk0 = _read(fh, start + width, int.from_bytes(sized, "little"), end)
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
                if kind == _CONTINUATION:
                    n = self._offset_size
                    where = int.from_bytes(body[:n], "little")
                    block = _read(fh, self._base + where, int.from_bytes(body[n:], "little"),
                                  end)
                    if block is None or block[:4] != b"OCHK":
                        return False
                    blocks.append(block[4:-4])
                elif kind in NEWEST_1_10 and body:
                    version = body[0] >> 4 if kind == _DATATYPE else body[0]
                    if version > NEWEST_1_10[kind]:
                        return False
        return True


def _read(fh: BinaryIO, offset: int, length: int, end: int) -> bytes | None:
    """`length` bytes of `fh` from `offset`; None where they would run past `end`."""
    if offset + length > end:
        return None
    fh.seek(offset)
    data = fh.read(length)
    return data if len(data) == length else None
