"""The state of a file the global heap check remembers its judgement by is the state an open
of the file sees: on a network file system a path's attributes may be the client's cache,
up to a minute old (NFS's acregmax), while an open asks the server again (close-to-open);
HDF5 opening a damaged copy put over a file judged intact would never return."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from smm_daq.errors import InputError
from smm_daq.storage import global_heap
from smm_daq.storage.global_heap import check_global_heaps
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry

HEADER = 16  # signature, version, reserved, the collection's size (8-byte lengths)


def test_a_paths_cached_attributes_do_not_hide_a_damaged_copy_put_over_it(
        tmp_path, monkeypatch):
    path = tmp_path / "s.h5"
    x = np.arange(4) * 1e-6
    write_map_entry(path, MapData(bz=np.zeros((4, 4)), x=x, y=x, height=2e-6,
                                  sensor_size=(0.0, 0.0), applied_field=np.zeros(3),
                                  name="ok"), kind="scan")
    check_global_heaps(path)  # judged intact, and remembered so
    cached = os.stat(path)
    stat = os.stat

    def client_cache(p, *args, **kwargs):  # type: ignore[no-untyped-def]
        return cached if Path(p) == path else stat(p, *args, **kwargs)

    monkeypatch.setattr(os, "stat", client_cache)
    # a copy whose heap was damaged (its first object zeroed), put over the file on the server
    data = bytearray(path.read_bytes())
    at = data.find(b"GCOL")
    data[at + HEADER:at + HEADER + 16] = bytes(16)
    with open(path, "r+b") as fh:
        fh.write(data)
    os.utime(path, ns=(cached.st_atime_ns, cached.st_mtime_ns + 10**9))
    monkeypatch.setattr(global_heap, "data_extents", lambda p: None)  # not asked of HDF5
    with pytest.raises(InputError, match=f"collection at byte {at} "):
        check_global_heaps(path)
