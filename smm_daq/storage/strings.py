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
