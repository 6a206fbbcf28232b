"""Virtual datasets whose sources are gone.

HDF5 reads the part of a virtual dataset mapped from a source file or dataset it cannot find
as the dataset's fill value (0, NaN, ...) and says nothing: a map assembled from other files
(another program's export, a copy made without its sources) would read as a flat map, or as
"not measured", with no sign of why. A reader asks `require_sources` first, and the user is
told which source is missing and where it was looked for.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py

from smm_daq.errors import InputError, StorageError
from smm_daq.storage.h5file import marked_open, read_whole

SAME_FILE = "."  # the source file name HDF5 writes for a source in the virtual file itself
_ORIGIN = "${ORIGIN}"  # in HDF5_VDS_PREFIX: the directory of the virtual dataset's file


def require_sources(node: h5py.Dataset, where: str) -> None:
    """InputError naming the first source of virtual dataset `node` that cannot be read (its
    file or its dataset missing); nothing for a dataset that is not virtual."""
    if not node.is_virtual:
        return
    home = Path(node.file.filename)
    for source in node.virtual_sources():
        if source.file_name == SAME_FILE:
            if source.dset_name not in node.file:
                _refuse(node, where, f"dataset '{source.dset_name}' of this file, which is "
                                     "not there")
            continue
        places = _candidates(source.file_name, home)
        found = [c for c in places if c.is_file()]
        if not found:
            _refuse(node, where, f"file '{source.file_name}' (looked for as "
                                 f"{', '.join(str(c) for c in places)}), which is not there")
        if not _holds(found[0], source.dset_name):
            _refuse(node, where, f"dataset '{source.dset_name}' of {found[0]}, which cannot "
                                 "be read there")


def _candidates(name: str, home: Path) -> list[Path]:
    """Where HDF5 looks for a virtual dataset's source file named `name`, in its order: an
    absolute name as named, then (as HDF5 does when it is not there: a file and its sources
    copied elsewhere together) its last part as a relative name; a relative name under
    HDF5_VDS_PREFIX, beside the virtual file, and in the working directory."""
    path = Path(name)
    first = [path] if path.is_absolute() else []
    relative = Path(path.name) if path.is_absolute() else path
    prefix = os.environ.get("HDF5_VDS_PREFIX")
    places = [] if not prefix else [
        Path(p.replace(_ORIGIN, str(home.parent))) for p in prefix.split(os.pathsep) if p]
    return [*first, *(p / relative for p in places), home.parent / relative,
            Path.cwd() / relative]


def _holds(path: Path, dataset: str) -> bool:
    """Whether the HDF5 file at `path` opens and holds dataset `dataset`, read as every
    session file is (`read_whole`: a writer at work waited for, one killed repaired where the
    file is smm-daq's, a read that another process's write overlapped read again), and left
    openable by HDF5 itself, which reads the values: not marked open for writing by a writer
    killed in another program (asked within the read, where an smm-daq writer at work, whose
    mark is only for its write, waits for it)."""
    def read(f: h5py.File) -> bool:
        return isinstance(f.get(dataset), h5py.Dataset) and not marked_open(path)

    try:
        return read_whole(path, read)
    except (InputError, StorageError, OSError, RuntimeError, ValueError):
        return False


def _refuse(node: h5py.Dataset, where: str, what: str) -> None:
    raise InputError(
        f"'{node.name}' is a virtual dataset whose values come from {what}: HDF5 would read "
        "those values as its fill value; expected its source files where it names them or beside "
        "it (or a copy of the file holding the data itself)", source=where)
