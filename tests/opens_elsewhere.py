"""A file opened and read whole outside this process: by h5dump of HDF5 1.x (every object,
attribute and value) and by plain h5py in a child process, each given up after 60 s (a read
that never returns fails the test, never hangs it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

_READ_ALL = """
import sys
import h5py

def read(name, obj):
    for key in obj.attrs:
        obj.attrs[key]
    if isinstance(obj, h5py.Dataset):
        obj[()]

with h5py.File(sys.argv[1], "r") as f:
    read("/", f)
    f.visititems(read)
    print(sorted(f))
"""


def opened_elsewhere(path: Path) -> str:
    """What h5py in a child process lists at the root of `path`, once h5dump and that child
    have both read all of it without an error."""
    h5dump = shutil.which("h5dump")
    if h5dump is None:
        if os.environ.get("CI"):
            pytest.fail("h5dump (Debian's hdf5-tools) is missing; .ci/run installs it")
        pytest.skip("h5dump (hdf5-tools) is not installed here; CI installs it")
    dumped = subprocess.run([h5dump, str(path)], capture_output=True, text=True, timeout=60)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    assert "error" not in dumped.stderr.lower()
    read = subprocess.run([sys.executable, "-c", _READ_ALL, str(path)], capture_output=True,
                          text=True, timeout=60)
    assert read.returncode == 0, read.stderr[-2000:]
    return read.stdout.strip()
