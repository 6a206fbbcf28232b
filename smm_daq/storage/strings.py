"""Strings as HDF5 stores them, read back as str (below h5file and staging, which both read
them)."""

from __future__ import annotations

import h5py
import numpy as np


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
    escape, `\\xff`; any other lone surrogate likewise (`\\ud800`). Other text is kept."""
    try:
        raw = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that stands for no byte
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")
