"""The global heap check and the writers' lock: a writer reads the whole file (seconds a
gigabyte) before it takes the lock, so another process's write (a running scan's line) is
not held up meanwhile, and under the lock scans again only a file changed since; damage met
while a writer may be at work (a collection read half rewritten, twice in a row) is checked
again once no writer writes, and remembered only then."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from smm_daq.errors import InputError
from smm_daq.storage import global_heap, turns
from smm_daq.storage.global_heap import check_global_heaps
from smm_daq.storage.h5file import check_heaps, read_whole, writing
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry

HEADER = 16  # signature, version, reserved, the collection's size (8-byte lengths)


def _session(path: Path) -> Path:
    x = np.arange(4) * 1e-6
    write_map_entry(path, MapData(bz=np.zeros((4, 4)), x=x, y=x, height=2e-6,
                                  sensor_size=(0.0, 0.0), applied_field=np.zeros(3),
                                  name="ok"), kind="scan")
    with h5py.File(path, "a") as f:  # another program's write: its state is judged anew
        f.attrs["note"] = "written elsewhere"
    return path


def _writable_by_another(path: str | Path) -> bool:
    """Whether another process's writer could take the file's writers' lock now (an open
    file description of its own is another writer to these locks)."""
    fd = os.open(path, os.O_RDWR)
    try:
        return turns.hold_for_writing_at_once(fd)
    finally:
        os.close(fd)


@pytest.mark.skipif(not turns.available(), reason="no open-file-description locks here")
def test_a_writer_scans_before_the_lock_and_under_it_only_a_file_changed_since(
        tmp_path, monkeypatch):
    """Scanned once, while another writer was free to write; a file damaged between that
    scan and the lock (a copy of the same size put over it) is scanned again under the lock,
    refused, and nothing written to it."""
    path = _session(tmp_path / "s.h5")
    free_while_scanned: list[bool] = []
    real = global_heap.damaged_collection

    def probed(p, *args):  # type: ignore[no-untyped-def]
        free_while_scanned.append(_writable_by_another(p))
        return real(p, *args)

    monkeypatch.setattr(global_heap, "damaged_collection", probed)
    with writing(path, create=False) as f:
        f.attrs["note"] = "written here"
    assert free_while_scanned == [True]
    assert read_whole(path, lambda f: str(f.attrs["note"])) == "written here"

    other = _session(tmp_path / "other.h5")
    at = other.read_bytes().find(b"GCOL")
    damaged = bytearray(other.read_bytes())
    damaged[at + HEADER:at + HEADER + 16] = bytes(16)
    free_while_scanned.clear()

    def then_damaged(p, *args):  # type: ignore[no-untyped-def]
        found = probed(p, *args)
        if len(free_while_scanned) == 1:  # put over it after the first scan
            with open(other, "r+b") as fh:
                fh.write(damaged)
        return found

    monkeypatch.setattr(global_heap, "damaged_collection", then_damaged)
    monkeypatch.setattr(global_heap, "data_extents", lambda p: None)  # not asked of HDF5
    with pytest.raises(InputError, match=f"collection at byte {at} "), \
            writing(other, create=False) as f:
        f.attrs["note"] = "never written"
    # before the lock, again before it (changed meanwhile), then in the readers' turn
    assert free_while_scanned == [True, True, True, False, False]
    assert other.read_bytes() == damaged  # nothing written


@pytest.mark.skipif(not turns.available(), reason="no open-file-description locks here")
@pytest.mark.parametrize(("writes", "free"), [(1, [True, True]), (2, [True, True, False])],
                         ids=["once", "twice"])
def test_a_file_written_between_the_scan_and_the_lock_is_scanned_again_before_it(
        tmp_path, monkeypatch, writes, free):
    """Another process's write (here its time of modification moved) between the scan and
    the lock: the lock is let go and the file scanned again, not under the lock; a file
    written again after that scan too is scanned under the lock."""
    path = _session(tmp_path / "s.h5")
    real = global_heap.damaged_collection
    free_while_scanned: list[bool] = []

    def written_after(p, *args):  # type: ignore[no-untyped-def]
        free_while_scanned.append(_writable_by_another(p))
        found = real(p, *args)
        if len(free_while_scanned) <= writes:
            st = os.stat(path)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        return found

    monkeypatch.setattr(global_heap, "damaged_collection", written_after)
    with writing(path, create=False) as f:
        f.attrs["note"] = "written here"
    assert free_while_scanned == free


def test_damage_met_while_a_writer_may_be_at_work_is_not_remembered(tmp_path, monkeypatch):
    """Two scans in a row that read a collection half rewritten (a writer at work): said,
    not remembered for that state, where the checker holds no lock; remembered where it
    holds one (`settled`)."""
    path = _session(tmp_path / "s.h5")
    monkeypatch.setattr(global_heap, "data_extents", lambda p: None)
    real = global_heap.damaged_collection
    monkeypatch.setattr(global_heap, "damaged_collection", lambda p, *a: (100, "half"))
    with pytest.raises(InputError, match=r"at byte 100 .*: half;"):
        check_global_heaps(path)
    monkeypatch.setattr(global_heap, "damaged_collection", real)
    check_global_heaps(path)  # the write done: the same state judged anew, intact

    other = _session(tmp_path / "other.h5")
    monkeypatch.setattr(global_heap, "damaged_collection", lambda p, *a: (100, "half"))
    with pytest.raises(InputError):
        check_global_heaps(other, settled=True)
    monkeypatch.setattr(global_heap, "damaged_collection", real)
    with pytest.raises(InputError, match=r"at byte 100 .*: half;"):
        check_global_heaps(other)  # remembered with that state


@pytest.mark.parametrize("reader", ["read_whole", "check_heaps"])
def test_a_reader_meeting_a_writer_at_work_reads_once_the_write_is_done(tmp_path,
                                                                       monkeypatch, reader):
    """The scans before the readers' turn read a collection half rewritten; the scan in
    that turn (the writer done) finds the file intact: it is read, and read again later
    (`check_heaps`: the check of `info` and `repair`, before HDF5 reads the file)."""
    path = _session(tmp_path / "s.h5")
    monkeypatch.setattr(global_heap, "data_extents", lambda p: None)
    real = global_heap.damaged_collection
    half = iter([(100, "half"), (100, "half")])
    monkeypatch.setattr(global_heap, "damaged_collection",
                        lambda p, *a: next(half, None) or real(p, *a))
    for _ in range(2):
        if reader == "check_heaps":
            check_heaps(path)
        else:
            assert read_whole(path, lambda f: str(f.attrs["note"])) == "written elsewhere"
