"""Strings as HDF5 stores them, read back as str (below h5file and staging, which both read
them)."""

from __future__ import annotations

import os
import re

import h5py
import numpy as np

_NO_BYTE = re.compile("[\ud800-\udc7f\udd00-\udfff]")


def text(node: h5py.Dataset | object) -> str:
    """A string dataset's or attribute's value as str (fixed, variable, bytes or str)."""
    value = node[()] if isinstance(node, h5py.Dataset) else node
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").rstrip("\x00")
    return str(value)


def storable(value: str) -> str:
    """`value` as HDF5 text can hold it: a byte that is not UTF-8 in a file name or command
    line (which Python reads as a lone surrogate, and h5py cannot encode) written as its
    escape, `\\xff`; any other lone surrogate likewise (`\\ud800`), and a NUL (which h5py
    refuses in a string) as `\\x00`. Other text is kept. Read back, the stored text is
    `storable(value)`, itself storable unchanged; a backslash typed is not escaped, so `\\xff`
    typed and the byte 0xff read back alike."""
    # a surrogate that stands for no byte (os.fsdecode's stand for 0x80..0xff) as its escape
    value = _NO_BYTE.sub(lambda m: f"\\u{ord(m.group()):04x}", value)
    raw = value.encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "backslashreplace").replace("\0", "\\x00")


_BYTE_ESCAPE = re.compile(r"\\x([89a-f][0-9a-f])")  # storable's escape of a byte not UTF-8


def stored_path(stored: str) -> str:
    """A path `storable` stored, as the system names it: each `\\xe9` escape back to its byte
    (Python's stand-in for it), so that the files found beside it are found. A backslash
    typed reads the same, so the one of the two whose file exists is meant, else the one whose
    folder exists (a Windows folder named `\\x80` say): where both folders do, the byte's may
    hold another profile and calibration."""
    raw = unescaped(stored)
    if raw == stored:
        return raw
    for found in (os.path.exists, _folder_exists):
        if found(raw):
            return raw
        if found(stored):
            return stored
    return raw


def unescaped(stored: str) -> str:
    """`stored` with each `\\xe9` escape `storable` writes back to its byte (Python's
    stand-in for it), whether or not a file is so named: a name an entry of an earlier
    version stored holds no such escape, but a backslash typed there reads the same (a
    caller looking a file up tries both, `stored_path`)."""
    return _BYTE_ESCAPE.sub(lambda m: chr(0xDC00 + int(m[1], 16)), stored)


def _folder_exists(path: str) -> bool:
    return os.path.isdir(os.path.dirname(path) or ".")
