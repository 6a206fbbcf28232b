"""Parsers for command-line values, each failing with a message that names the option."""

from __future__ import annotations

import math
from pathlib import Path

from smm_daq.errors import InputError


def floats(option: str, text: str, n: int) -> tuple[float, ...]:
    """Parse 'a,b[,c]' into n finite floats, or raise InputError naming `option`."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != n or not all(math.isfinite(v) for v in values):
        raise InputError(f"{option} is {text!r}; expected {n} comma-separated numbers")
    return values


def positive(option: str, value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"{option} is {value!r}; expected a number > 0")
    return value


def output_file(option: str, text: str) -> Path:
    """A path a command may write: never a directory, never an HDF5 file (a session file
    holds acquired scans; writing a CSV, PNG or TOML over it would lose them)."""
    import h5py  # only when a command writes: every command imports this module

    path = Path(text)
    if path.is_dir():
        raise InputError(f"{option} is {text!r}, a directory; expected a file name")
    if path.exists() and h5py.is_hdf5(path):
        raise InputError(
            f"{option} is {text!r}, an HDF5 file (perhaps a session file); expected a new "
            "or expendable file name: nothing was written"
        )
    if not path.parent.is_dir():
        raise InputError(f"{option} is {text!r}; there is no directory {path.parent}")
    return path
