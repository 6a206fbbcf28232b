"""Bytes that look like a damaged global heap collection held in a compact dataset's value or
in an attribute's value (kept in the object's header, or in its dense attribute storage) are
that value, not a heap of the file: HDF5 asked in its own process where those values lie, as
for a contiguous or chunked dataset's, and the file, intact, is read. A damaged heap of the
file's own is still found."""

from __future__ import annotations

import struct
from pathlib import Path

import h5py
import numpy as np
import pytest

from smm_daq.errors import InputError
from smm_daq.storage import data_extents
from smm_daq.storage.global_heap import check_global_heaps, damaged_collection
from smm_daq.storage.h5file import read_whole

HEADER = 16  # signature, version, reserved, the collection's size (8-byte lengths)
# a collection's header declaring 4096 bytes, then a free space of 0 bytes: damaged, as a heap
LOOKALIKE = np.frombuffer(b"GCOL\x01\x00\x00\x00" + struct.pack("<Q", 4096) + bytes(48),
                          dtype=np.uint8)


def _compact(f: h5py.File, name: str, data: np.ndarray) -> None:
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_layout(h5py.h5d.COMPACT)
    h5py.h5d.create(f.id, name.encode(), h5py.h5t.NATIVE_UINT8,
                    h5py.h5s.create_simple(data.shape), dcpl=dcpl).write(
        h5py.h5s.ALL, h5py.h5s.ALL, data)


def _good_file(path: Path, where: str) -> Path:
    """A good file with a text attribute (a heap of its own) and the look-alike in `where`,
    and values before and after it: the look-alike's declared size lies within the file."""
    with h5py.File(path, "w") as f:
        f.attrs["s"] = "text"
        f.create_dataset("filler", data=np.arange(2048, dtype=np.float64))
        if where == "compact dataset":
            _compact(f, "blob", LOOKALIKE)
        elif where == "root attribute":
            f.attrs["blob"] = LOOKALIKE
        elif where == "group attribute":
            f.create_group("g").attrs["blob"] = LOOKALIKE
        else:  # "dense attributes": more than 8, kept in a fractal heap
            g = f.create_group("g", track_order=True)
            for i in range(12):
                g.attrs[f"a{i}"] = np.full(8, i, dtype=np.uint8)
            g.attrs["blob"] = LOOKALIKE
    with h5py.File(path, "a") as f:  # after the values kept at the file's end on its close
        f.create_dataset("tail", data=np.arange(2048, dtype=np.float64))
    return path


@pytest.mark.parametrize("where", ["compact dataset", "root attribute", "group attribute",
                                   "dense attributes"])
def test_a_lookalike_in_a_value_kept_in_a_header_is_no_heap(tmp_path, where):
    path = _good_file(tmp_path / "s.h5", where)
    data = path.read_bytes()
    copied = data.find(LOOKALIKE.tobytes())
    own = next(at for at in (data.find(b"GCOL"), data.rfind(b"GCOL")) if at != copied)
    found = damaged_collection(path)
    assert found is not None and found[0] == copied  # as the bytes alone read
    check_global_heaps(path)
    assert read_whole(path, lambda f: str(f.attrs["s"])) == "text"
    extents = data_extents.data_extents(path)
    assert extents is not None
    assert any(start <= copied < end for start, end in extents)
    # a damaged heap of the file's own is still found, by its own offset
    damaged = bytearray(data)
    damaged[own + HEADER:own + HEADER + 16] = bytes(16)
    path.write_bytes(bytes(damaged))
    with pytest.raises(InputError, match=f"collection at byte {own} "):
        check_global_heaps(path)


def test_a_session_file_our_writer_stored_a_lookalike_in_is_read_here_and_elsewhere(
        tmp_path, monkeypatch):
    """Our writer storing the look-alike in a root attribute and in a compact dataset of a
    session file: read again by another process's check (nothing remembered), not refused;
    h5dump and h5py in a child read all of it."""
    from collections import OrderedDict

    from opens_elsewhere import opened_elsewhere
    from test_global_heap_damage import _session

    from smm_daq.storage import global_heap
    from smm_daq.storage.h5file import writing

    path = _session(tmp_path / "s.h5")
    with writing(path, create=False) as f:
        f.attrs["blob"] = LOOKALIKE
        _compact(f, "blob", LOOKALIKE)
    with writing(path, create=False) as f:  # after them, values the look-alikes' size spans
        f.create_dataset("tail", data=np.arange(2048, dtype=np.float64))
    data = path.read_bytes()
    assert data.count(LOOKALIKE.tobytes()) == 2
    assert damaged_collection(path) is not None  # as the bytes alone read
    monkeypatch.setattr(global_heap, "_judged", OrderedDict())  # as another process sees it
    assert read_whole(path, lambda f: f["blob"][()].tobytes()) == LOOKALIKE.tobytes()
    assert opened_elsewhere(path) == "['blob', 'ok', 'other', 'tail']"
    assert path.read_bytes() == data  # read, not written


def test_hdf5s_walk_says_it_is_alive_as_it_reads_the_file_for_a_value(tmp_path, monkeypatch,
                                                                       capsys):
    """Finding where a value kept in a header lies reads the whole file (a minute for a large
    one on a slow disk): the walk says it is alive at each piece it reads, so its parent does
    not take it for a walk hung in HDF5 (`QUIET_S` silent), which left such a good file
    refused as damaged."""
    path = _good_file(tmp_path / "s.h5", "root attribute")
    monkeypatch.setattr(data_extents, "_PIECE", 1024)  # a large file's many pieces
    data_extents._walk(str(path))
    said = capsys.readouterr().out.splitlines()
    pieces = -(-path.stat().st_size // 1024)
    # besides the line saying it started and one per dataset walked
    assert len(said) >= 1 + 2 + pieces


@pytest.mark.parametrize("value", [np.frombuffer(b"GCOL", dtype="<i4")[0],
                                   np.frombuffer(b"GCOL\x01\x00\x00\x00", dtype=np.uint8)],
                         ids=["a number whose bytes spell it", "its first 8 bytes"])
def test_a_value_holding_a_heaps_signature_but_not_its_header_hides_no_damage(tmp_path, value):
    """An attribute whose few bytes are a heap's signature (a count of 1280262983 is b"GCOL")
    lies wherever those bytes do, at every collection of the file: a damaged heap of the
    file's own is still found there, not passed over as that value (HDF5 would never return
    from reading it)."""
    from test_global_heap_damage import _session

    path = _session(tmp_path / "s.h5")
    with h5py.File(path, "a") as f:
        f.attrs["count"] = value
    data = bytearray(path.read_bytes())
    own = data.find(b"GCOL\x01")
    data[own + HEADER:own + HEADER + 16] = bytes(16)  # its free space: 0 bytes
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=f"collection at byte {own} "):
        check_global_heaps(path)
