"""The global heap collections of an HDF5 file checked from its bytes, before HDF5 reads it.

HDF5 keeps variable-length data (every string attribute of a session file) in global heap
collections: a header (signature `GCOL`, version 1, 3 reserved bytes, the collection's size
in length-of-lengths bytes) and then heap objects (index: 2 bytes, reference count: 2,
reserved: 4, size: length-of-lengths bytes, data padded to 8 bytes) up to the collection's
end; index 0 is its free space, whose size spans the rest of the collection. libhdf5 steps
from one object to the next by each one's size and checks none of it, so damage there
(a zeroed run, a flipped byte) makes it loop forever in a read nothing can interrupt: a free
space of size 0 never advances. This module finds the collections by their signature (HDF5
aligns them to no boundary, so every byte is looked at: one pass of `bytearray.find` over the
file read in pieces, not mapped, since a file a writer shortens meanwhile would kill a reader
of its map) and says which one does not parse to its end, without HDF5.

A match whose version is not 1 or whose size runs past the end of the file is no collection
HDF5 could loop in (it refuses those itself), and is more likely stored data that happens to
hold the signature: it is passed over. So is one smaller than the format's least collection
(4096 bytes, what libhdf5 makes the smallest): a dataset of a few bytes that hold the
signature is no heap. A larger one that does not parse is asked of HDF5 before it is said
damaged: where it lies within a stored value (`data_extents`: a dataset's values, an array
holding a copy of another file's bytes; a compact dataset's or an attribute's value, kept in
its object's header), it is no heap either.

Every reader and writer of a session file checks it before HDF5 reads it
(`smm_daq.storage.h5file`), so a file is checked once per state, not once per read: what
is found (intact, or the damage) is remembered by the file's identity, size and times of
change (`_Stamp`), and it is not scanned again until one of them changes; a file this process
wrote itself after checking it is remembered as it was left (`written`), since it is
libhdf5 that wrote it. Damage is remembered only where no writer can have been at work on
the file meanwhile (`settled`: a collection read half rewritten in two scans in a row looks
damaged) and HDF5 was asked about it (its walk started in time). The time of change is the
one any write sets, also on Windows, where a file's `st_ctime` is its time of creation
(`_windows_change_time`): a damaged copy of the same size, its time of modification kept,
put over a file judged intact, is another state.
"""

from __future__ import annotations

import bisect
import os
import stat
import struct
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from smm_daq.errors import InputError
from smm_daq.storage import identity
from smm_daq.storage.data_extents import NotStarted, data_extents

_SIGNATURE = b"GCOL"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_VERSION = 1
_LENGTH_CODES = {2: "H", 4: "I", 8: "Q"}  # the sizes of lengths HDF5 reads
_SCANS = 3  # scans at most for two in a row that find the same damage
_PIECE = 1 << 24  # bytes read at a time
_LEAST_COLLECTION = 4096  # the format's (and libhdf5's H5HG_MINSIZE) smallest collection
_FIRST_USER_BLOCK = 512  # the superblock is at 0 or after a user block of 512 * 2**k bytes
_FILE_BASIC_INFO = 0  # FileBasicInfo, of Windows' FILE_INFO_BY_HANDLE_CLASS
_REMEMBERED = 256  # files' states judged remembered at most (the least recently judged go)

_Stamp = tuple[int, int, int, int, int]  # device, inode, size, times of change (ns)
State = _Stamp  # a file's state, as its verdict is remembered by (`check_global_heaps`)
_Found = tuple[int, str]  # a damaged collection's offset, and what is wrong with it
_judged: OrderedDict[_Stamp, _Found | None] = OrderedDict()  # None: intact
_judged_guard = threading.Lock()


def _stamp(path: str | Path) -> _Stamp | None:
    """What any write to the file at `path`, or its replacement, changes, as an open of it
    sees it (HDF5's open reads that file): a path's attributes may be a network client's
    cache, a minute old, where an open asks the server again (NFS's close-to-open); None
    where it cannot be had."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ValueError):
        return None
    try:
        return state_of_open(fd)
    finally:
        os.close(fd)


def state_of_open(fd: int) -> _Stamp | None:
    """The state (`_Stamp`) of the file open as `fd`: HDF5's own descriptor of a file it
    opened, to tell whether that is the state `check_global_heaps` judged (a file replaced
    between the check and the open is not); None where it cannot be had. Its inode number
    only where the file system keeps one per file (`identity.inode_kept`): elsewhere (CIFS
    `noserverino`, some FUSE) a file unchanged can show a new number at each look."""
    try:
        st = os.fstat(fd)
        changed = _change_time(fd, st)
    except OSError:
        return None
    if changed is None:
        return None
    inode = st.st_ino if identity.inode_kept(st.st_dev) else 0
    return st.st_dev, inode, st.st_size, st.st_mtime_ns, changed


def _posix_change_time(fd: int, st: os.stat_result) -> int | None:
    """The time of the file's last change (ns): any write, and a time of modification set
    back, set it."""
    return st.st_ctime_ns


def _windows_change_time(fd: int, st: os.stat_result) -> int | None:
    """The file's ChangeTime (100 ns units), which any write or change of its times sets,
    asked of Windows (GetFileInformationByHandleEx, FileBasicInfo): its `st_ctime` is the
    time the file was created, which a copy written over it leaves. None where Windows does
    not answer."""
    import ctypes
    import msvcrt
    from ctypes import wintypes

    class FileBasicInfo(ctypes.Structure):  # FILE_BASIC_INFO: times in 100 ns since 1601
        _fields_ = [("creation", ctypes.c_int64), ("last_access", ctypes.c_int64),
                    ("last_write", ctypes.c_int64), ("change", ctypes.c_int64),
                    ("attributes", wintypes.DWORD)]

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    call = kernel32.GetFileInformationByHandleEx
    call.argtypes = (wintypes.HANDLE, ctypes.c_int, ctypes.c_void_p, wintypes.DWORD)
    call.restype = wintypes.BOOL
    info = FileBasicInfo()
    handle = msvcrt.get_osfhandle(fd)  # type: ignore[attr-defined]
    if not call(handle, _FILE_BASIC_INFO, ctypes.byref(info), ctypes.sizeof(info)):
        return None
    return int(info.change)


_change_time = _windows_change_time if sys.platform == "win32" else _posix_change_time


def _remember(stamp: _Stamp | None, found: _Found | None) -> None:
    if stamp is None:
        return
    with _judged_guard:
        _judged[stamp] = found
        _judged.move_to_end(stamp)
        while len(_judged) > _REMEMBERED:
            _judged.popitem(last=False)


def _judged_before(stamp: _Stamp | None) -> tuple[bool, _Found | None]:
    """Whether the file in this state was judged before, and what was found then."""
    with _judged_guard:
        if stamp is None or stamp not in _judged:
            return False, None
        return True, _judged[stamp]


def judged_intact(path: str | Path) -> bool:
    """Whether the file at `path` was judged intact in the state it is in now: asked (a stat)
    where a scan would read it all."""
    return _judged_before(_stamp(path)) == (True, None)


def written(path: str | Path, checked: _Stamp | None = None) -> None:
    """Remember the file at `path` as intact as it is now: called by a writer of this process
    that checked it before its write (`check_global_heaps`) and holds the writers' lock still,
    so the file is as libhdf5 left it (where the file system has no locks, as libhdf5 left
    it in this writer's or another's hands: damage comes from a disk or a copy, not from
    libhdf5 writing). `checked`: the state it was checked in, where another file may have
    been renamed over it since (its device and inode numbers): that one is not remembered."""
    stamp = _stamp(path)
    if checked is None or stamp is None or stamp[:2] == checked[:2]:
        _remember(stamp, None)


def _aligned(n: int) -> int:
    """`n` rounded up to a multiple of 8 (HDF5's H5HG_ALIGN)."""
    return (n + 7) & ~7


def _read(fh: BinaryIO, offset: int, length: int) -> bytes:
    fh.seek(offset)
    return fh.read(length)


def _lengths_size(fh: BinaryIO) -> int | None:
    """The superblock's size of lengths (bytes), None where the file has no HDF5 superblock
    (HDF5's open says what it is)."""
    end = fh.seek(0, 2)
    base = 0
    while base + 16 <= end:  # the superblock follows any user block, as HDF5 looks for it
        head = _read(fh, base, 16)
        if head[:8] == _HDF5_SIGNATURE and len(head) == 16:
            # version 0 and 1: versions of 5 parts, then offsets and lengths; 2 and 3 at once
            size = head[14] if head[8] in (0, 1) else head[10]
            return size if size in _LENGTH_CODES else None
        base = base * 2 or _FIRST_USER_BLOCK
    return None


def _signatures(fh: BinaryIO) -> Iterator[int]:
    """The offset of each `GCOL` in the file, in order. Each piece is read again from its
    own offset, so what is read between the offsets given moves nothing."""
    piece = bytearray(_PIECE)
    offset = 0
    while True:
        fh.seek(offset)
        n = fh.readinto(piece)
        if not n:
            return
        view = piece if n == _PIECE else piece[:n]
        at = view.find(_SIGNATURE)
        while at >= 0:
            yield offset + at
            at = view.find(_SIGNATURE, at + 1)
        if n < _PIECE:
            return
        offset += n - (len(_SIGNATURE) - 1)  # a signature across the pieces' border: the next


def damaged_collection(path: str | Path, data: Sequence[tuple[int, int]] = ()
                       ) -> _Found | None:
    """(byte offset in the file, what is wrong) of the first global heap collection of the
    HDF5 file at `path` whose heap objects do not parse to its end; None when each does (or
    no HDF5 file, or no regular file: a named pipe's open would wait for a writer, its read
    for data, so it is left to the caller's open to name). A signature within `data`
    (datasets' stored values: [start, end) ranges, in order, apart) is passed over. OSError
    when it cannot be read."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    with open(fd, "rb", buffering=0) as fh:
        lengths = _lengths_size(fh)
        if lengths is None:
            return None
        for at in _signatures(fh):
            if _within(at, data):
                continue
            wrong = _collection_wrong(fh, at, lengths)
            if wrong is not None:
                return at, wrong
    return None


def _within(at: int, data: Sequence[tuple[int, int]]) -> bool:
    i = bisect.bisect_right(data, (at, float("inf"))) - 1
    return i >= 0 and data[i][0] <= at < data[i][1]


def _collection_wrong(fh: BinaryIO, start: int, lengths: int) -> str | None:
    """What is wrong with the collection at `start`, None when its objects parse to its end
    (or it is no collection HDF5 would parse: see the module's note)."""
    header = _aligned(8 + lengths)
    code = _LENGTH_CODES[lengths]
    head = _read(fh, start, 8 + lengths)
    if len(head) < 8 + lengths or head[4] != _VERSION:
        return None
    (size,) = struct.unpack_from(f"<{code}", head, 8)
    if size < _LEAST_COLLECTION or start + size > fh.seek(0, 2):
        return None
    object_header = struct.Struct(f"<H6x{code}")  # index, reference count, reserved, size
    step = _aligned(object_header.size)
    # a collection as big as one object of text or an array (gigabytes) is not read whole:
    # only its objects' headers, each where it is
    data = _read(fh, start, size) if size <= _PIECE else None
    if data is not None and len(data) < size:
        return None  # shortened meanwhile
    p = header
    while size - p >= step:  # fewer bytes left: free space without a header
        if data is None:
            one = _read(fh, start + p, object_header.size)
            if len(one) < object_header.size:
                return None  # shortened meanwhile
            index, declared = object_header.unpack(one)
        else:
            index, declared = object_header.unpack_from(data, p)
        left = size - p
        if index == 0:
            if declared != left:
                return (f"its free space (heap object 0) at byte {start + p} declares "
                        f"{declared} bytes where {left} remain to the collection's end")
            return None
        need = step + _aligned(declared)
        if need > left:
            return (f"heap object {index} at byte {start + p} declares {declared} bytes, past "
                    f"the collection's end ({left} bytes remain)")
        p += need
    return None


def check_global_heaps(path: str | Path, *, source: str | Path | None = None,
                       settled: bool = False) -> _Stamp | None:
    """InputError naming the file (as `source`, else `path`), the collection's offset and
    what is wrong, for a file whose global heap is damaged (`damaged_collection`): HDF5
    would never return from reading it. Gives the state of the file judged intact (None
    where it was not judged: its state or its bytes could not be had), against which
    HDF5's open is compared (`state_of_open`: the whole state, or, by a reader or a writer's
    open for writing, which file it is). The file is only read; what is found is remembered with
    the file's state (see the module), and it is not scanned again while it stays so.
    Damage found is asked of HDF5 (`data_extents`, in a process of its own) where the bytes
    lie: within a dataset's stored values, they are passed over. Damage is
    remembered only where `settled` (the caller holds the file's writers' lock, or the
    readers' turn: no writer can be rewriting a collection as it is read) and HDF5's walk
    answered. A file that cannot be read is left to the caller's open to name."""
    stamp = _stamp(path)  # before the scan: a write during it leaves another stamp
    judged, found = _judged_before(stamp)
    if not judged:
        try:
            found, asked = _judged_now(path)
        except (OSError, ValueError):  # unread: left to the caller's open, not remembered
            return None
        if found is None or (settled and asked):
            _remember(stamp, found)
    if found is None:
        return stamp
    at, wrong = found
    raise InputError(
        f"is damaged: the HDF5 global heap collection at byte {at} (where HDF5 keeps text of "
        f"variable length) does not parse to its end: {wrong}; HDF5 would never return from "
        "reading it; expected an intact smm-daq session file (restore it from a copy): "
        "nothing was changed", source=str(source or path))


def _judged_now(path: str | Path) -> tuple[_Found | None, bool]:
    """The damage found in the file now (`_found_twice`, None: intact), and whether HDF5
    was asked where its datasets' values lie: False where its walk did not start in time (a
    slow start, not a hang: what it would say is not known)."""
    found = _found_twice(path)
    if found is None:
        return None, True
    try:
        data = data_extents(path)
    except NotStarted:
        return found, False
    if data and _within(found[0], data):
        found = _found_twice(path, data)
    return found, True


def _found_twice(path: str | Path, data: Sequence[tuple[int, int]] = ()) -> _Found | None:
    """The damage `damaged_collection` finds in two scans in a row (`_SCANS` at most), else
    None. A collection a writer was rewriting as it was read is no damage, and its file's
    stamp cannot say so (a write within the tick of the one before leaves the time of change
    as it was); one scan that read it half written and the next, after the write, differ.
    OSError or ValueError where the file cannot be read."""
    previous = None
    for _ in range(_SCANS):
        found = damaged_collection(path, data)
        if found is None or found == previous:
            return found
        previous = found
    return None
