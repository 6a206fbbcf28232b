"""Clearing the "open for write" mark that a killed HDF5 writer leaves in a file's superblock.

HDF5 1.10 and later mark a file open for writing in its superblock (version 3) and clear the
mark on close; a process killed meanwhile leaves it set, and every later open then fails. The
HDF5 library clears it only through a private property that its `h5clear -s` tool uses, which
h5py does not reach, so this module does what `h5clear -s` does: zero the flags byte and write
the superblock's checksum again (Jenkins' lookup3, as the HDF5 format specifies). It refuses
a superblock whose stored checksum it cannot reproduce, so it never writes over something it
does not understand. `MarkCleared` shows a file as if its mark were cleared, without
writing it, for a reader that may not change the file.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any, BinaryIO

_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_MASK = 0xFFFFFFFF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _MASK


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 `hashlittle` of `data`, as HDF5's H5_checksum_lookup3."""
    length = len(data)
    a = b = c = (0xDEADBEEF + length + initval) & _MASK
    k = 0
    while length > 12:
        a = (a + int.from_bytes(data[k:k + 4], "little")) & _MASK
        b = (b + int.from_bytes(data[k + 4:k + 8], "little")) & _MASK
        c = (c + int.from_bytes(data[k + 8:k + 12], "little")) & _MASK
        a = (a - c) & _MASK; a ^= _rot(c, 4); c = (c + b) & _MASK  # noqa: E702
        b = (b - a) & _MASK; b ^= _rot(a, 6); a = (a + c) & _MASK  # noqa: E702
        c = (c - b) & _MASK; c ^= _rot(b, 8); b = (b + a) & _MASK  # noqa: E702
        a = (a - c) & _MASK; a ^= _rot(c, 16); c = (c + b) & _MASK  # noqa: E702
        b = (b - a) & _MASK; b ^= _rot(a, 19); a = (a + c) & _MASK  # noqa: E702
        c = (c - b) & _MASK; c ^= _rot(b, 4); b = (b + a) & _MASK  # noqa: E702
        length -= 12
        k += 12
    if length == 0:
        return c
    tail = data[k:k + length] + bytes(12 - length)
    a = (a + int.from_bytes(tail[0:4], "little")) & _MASK
    b = (b + int.from_bytes(tail[4:8], "little")) & _MASK
    c = (c + int.from_bytes(tail[8:12], "little")) & _MASK
    c ^= b; c = (c - _rot(b, 14)) & _MASK  # noqa: E702
    a ^= c; a = (a - _rot(c, 11)) & _MASK  # noqa: E702
    b ^= a; b = (b - _rot(a, 25)) & _MASK  # noqa: E702
    c ^= b; c = (c - _rot(b, 16)) & _MASK  # noqa: E702
    a ^= c; a = (a - _rot(c, 4)) & _MASK  # noqa: E702
    b ^= a; b = (b - _rot(a, 14)) & _MASK  # noqa: E702
    c ^= b; c = (c - _rot(b, 24)) & _MASK  # noqa: E702
    return c


def _read_superblock(fh: BinaryIO) -> tuple[int, bytes, int] | None:
    """(offset, bytes, checksummed length) of a version 2 or 3 superblock with its checksum
    after the checksummed bytes; None for an older version (which has no checksum and no
    open-for-write mark). ValueError when there is no HDF5 superblock."""
    for base in (0, 512, 1024, 2048):  # the superblock follows any user block
        fh.seek(base)
        if fh.read(8) == _SIGNATURE:
            break
    else:
        raise ValueError("no HDF5 superblock found")
    head = fh.read(4)  # version, size of offsets, size of lengths, flags
    if len(head) < 4 or head[0] not in (2, 3):
        return None
    size = 12 + 4 * head[1]  # signature, those 4 bytes, 4 addresses
    fh.seek(base)
    return base, fh.read(size + 4), size


def _checksum_matches(block: bytes, size: int) -> bool:
    return len(block) == size + 4 and lookup3(block[:size]) == struct.unpack(
        "<I", block[size:size + 4])[0]


def superblock_intact(path: str | Path) -> bool:
    """False when the file's version 2 or 3 superblock fails its checksum (or there is no
    superblock): HDF5 would then retry reading it for many minutes in SWMR mode, unable to
    tell damage from a writer's half-written update. True for older versions."""
    try:
        with open(path, "rb") as fh:
            found = _read_superblock(fh)
    except (OSError, ValueError):
        return False
    return found is None or _checksum_matches(found[1], found[2])


def _with_mark_cleared(found: tuple[int, bytes, int] | None) -> tuple[int, bytes, bool]:
    """(offset, the superblock with its flags zeroed and its checksum written again, whether
    they were set) of `_read_superblock`'s find; ValueError as `clear_open_mark` says."""
    if found is None:
        raise ValueError("the superblock's version has no open-for-write mark")
    base, block, size = found
    if not _checksum_matches(block, size):
        raise ValueError("the superblock's checksum does not match; not touching it")
    cleared = block[:11] + b"\x00" + block[12:size]
    return base, cleared + struct.pack("<I", lookup3(cleared)), block[11] != 0


def clear_open_mark(path: str | Path) -> bool:
    """Zero the superblock's file-consistency flags; True if they were set.

    ValueError when the file has no version 2 or 3 superblock whose checksum this module
    reproduces (then nothing is written).
    """
    with open(path, "r+b") as fh:
        base, block, was_set = _with_mark_cleared(_read_superblock(fh))
        if not was_set:
            return False
        fh.seek(base)
        fh.write(block)
        return True


class MarkCleared(io.RawIOBase):
    """A read-only view of a file in which its superblock reads as `clear_open_mark` would
    leave it, the file itself untouched: for h5py (a file-like object) to open a file that a
    killed writer left marked where the file may not be changed (read-only here). ValueError
    as `clear_open_mark`, OSError when the file cannot be read."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self._fh = open(path, "rb")  # noqa: SIM115 (closed by `close`)
        try:
            self._base, self._block, _ = _with_mark_cleared(_read_superblock(self._fh))
        except BaseException:
            self._fh.close()
            raise

    def readable(self) -> bool:
        return True

    def descriptor(self) -> int:
        """The descriptor of the file viewed (what state of it is read)."""
        return self._fh.fileno()

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def readinto(self, buffer: Any) -> int:
        start = self._fh.tell()
        n = self._fh.readinto(buffer)
        lo = max(start, self._base)
        hi = min(start + n, self._base + len(self._block))
        if lo < hi:  # the bytes read overlap the superblock: read them as cleared
            view = memoryview(buffer).cast("B")
            view[lo - start:hi - start] = self._block[lo - self._base:hi - self._base]
        return n

    def close(self) -> None:
        self._fh.close()
        super().close()
