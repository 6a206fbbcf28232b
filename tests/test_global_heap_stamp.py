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


def test_on_windows_a_same_size_copy_with_its_date_kept_is_another_state(tmp_path,
                                                                        monkeypatch):
    """Windows' `st_ctime` is the time a file was created, which a copy written over it
    leaves as it was: the state's time of change is then asked of Windows (its ChangeTime,
    which any write sets). Both are played here by Linux's: `os.fstat` answering as
    Windows' does, and the call for ChangeTime (`_windows_change_time`, which cannot run
    here) answering with Linux's time of change."""
    path = tmp_path / "s.h5"
    x = np.arange(4) * 1e-6
    write_map_entry(path, MapData(bz=np.zeros((4, 4)), x=x, y=x, height=2e-6,
                                  sensor_size=(0.0, 0.0), applied_field=np.zeros(3),
                                  name="ok"), kind="scan")
    fstat = os.fstat
    created = 10**18

    def windows_fstat(fd):  # type: ignore[no-untyped-def]
        st = fstat(fd)
        return os.stat_result((*st[:9], created / 1e9), {
            "st_atime_ns": st.st_atime_ns, "st_mtime_ns": st.st_mtime_ns,
            "st_ctime_ns": created})

    monkeypatch.setattr(os, "fstat", windows_fstat)
    monkeypatch.setattr(global_heap, "_change_time",
                        lambda fd, st: fstat(fd).st_ctime_ns, raising=False)
    check_global_heaps(path)  # judged intact, and remembered so
    kept = os.stat(path)
    data = bytearray(path.read_bytes())
    at = data.find(b"GCOL")
    data[at + HEADER:at + HEADER + 16] = bytes(16)
    with open(path, "r+b") as fh:  # a damaged copy of the same size put over it
        fh.write(data)
    os.utime(path, ns=(kept.st_atime_ns, kept.st_mtime_ns))  # its date kept
    monkeypatch.setattr(global_heap, "data_extents", lambda p: None)  # not asked of HDF5
    with pytest.raises(InputError, match=f"collection at byte {at} "):
        check_global_heaps(path)
