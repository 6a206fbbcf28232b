"""What a NumPy file (.npy, or each array of an .npz) says it holds, checked before it is read.

NumPy allocates the array its header states before it reads the data, so a damaged or
hand-made header stating 10^6 × 10^6 values in a file of a hundred bytes ends in a
MemoryError (or, where the system lets the allocation through, in the memory filled), not in
a message. Each header is read first and its array's bytes compared with the bytes the file
holds after it.
"""

from __future__ import annotations

import math
import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import IO

import numpy as np

from smm_daq.errors import InputError

DEFLATE_RATIO = 1032  # the most bytes deflate restores from one (zlib's documented bound)
# What np.load raises reading a damaged .npy (alone or in an archive): beside OSError,
# EOFError and ValueError, tokenize.TokenError where a header that is no Python literal (a
# bracket left open) is filtered as an earlier version's
HEADER_ERRORS = (ValueError, OSError, EOFError, tokenize.TokenError)
# ... and reading a damaged zip archive or one of its members: a member whose flags or method
# zipfile does not read (patched data, strong encryption, an unknown method or zip version:
# NotImplementedError), one marked encrypted (RuntimeError: a password is required) and
# deflated bytes that do not inflate (zlib.error)
ARCHIVE_ERRORS = (zipfile.BadZipFile, NotImplementedError, RuntimeError, zlib.error,
                  *HEADER_ERRORS)


def load_error_said(exc: BaseException) -> str:
    """What np.load's `exc` (one of ARCHIVE_ERRORS) says, in words for a message: a
    TokenError's own are a tuple of the tokenizer's."""
    if isinstance(exc, tokenize.TokenError):
        return "its .npy header is no Python literal: damaged"
    return str(exc)


def _stated(f: IO[bytes]) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and type a .npy header states; ValueError when it is no .npy header."""
    version = np.lib.format.read_magic(f)
    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
            else np.lib.format.read_array_header_2_0)  # 3.0 differs only in its encoding
    shape, _fortran, dtype = read(f)
    return shape, dtype


def _check(f: IO[bytes], held: int, what: str, source: str) -> None:
    try:
        shape, dtype = _stated(f)
    except HEADER_ERRORS:
        return  # not a header numpy reads either: np.load says why, in its own words
    if dtype.hasobject:
        return  # Python objects: np.load refuses them (allow_pickle=False)
    stated = math.prod(shape) * dtype.itemsize
    left = held - f.tell()
    if stated > left:
        raise InputError(f"{what} states an array of shape {shape} of {dtype} ({stated:,} "
                         f"bytes) but holds {max(left, 0):,} bytes of data; expected an array "
                         "as large as its header states (the file cut short or its header "
                         "damaged)", source=source)


def check_npy(path: str | Path) -> None:
    """InputError when the .npy at `path` states more data than it holds."""
    p = Path(path)
    try:
        f = open(p, "rb")  # noqa: SIM115 (closed below; only its opening is guarded)
    except OSError:
        return  # np.load says why it cannot be read
    with f:
        _check(f, p.stat().st_size, "its header", str(p))


def _member_bytes(info: zipfile.ZipInfo, archive_bytes: int) -> int:
    """The most bytes a zip member can hold uncompressed. The size the zip lists is only
    what it states (a damaged or hand-made archive may state 2^64); a stored member holds no
    more than its bytes in the archive, a deflated one no more than DEFLATE_RATIO times them."""
    packed = min(info.compress_size, archive_bytes)
    if info.compress_type == zipfile.ZIP_STORED:
        return min(info.file_size, packed)
    if info.compress_type == zipfile.ZIP_DEFLATED:  # np.savez_compressed
        return min(info.file_size, DEFLATE_RATIO * packed)
    return info.file_size


def check_npz(path: str | Path) -> None:
    """InputError when an array of the .npz at `path` states more data than its member
    holds (its size uncompressed, as far as the member's bytes in the archive allow)."""
    try:
        archive_bytes = Path(path).stat().st_size
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():  # np.load reads any member that starts as a .npy
                with z.open(info) as member:
                    _check(member, _member_bytes(info, archive_bytes),
                           f"array '{info.filename.removesuffix('.npy')}'", str(path))
    except ARCHIVE_ERRORS:
        return  # np.load says what is wrong with the archive itself
