"""A session file whose HDF5 global heap is damaged is refused by `repair` and `info` before
HDF5 reads it: libhdf5 loops forever on a heap object that never advances its parser (a free
space of size 0), in a read Python cannot interrupt."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from smm_daq.errors import InputError
from smm_daq.storage.global_heap import damaged_collection
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry

REPO = Path(__file__).resolve().parents[1]
HEADER = 16  # signature, version, reserved, the collection's size (8-byte lengths)


def _session(path: Path) -> Path:
    x = np.arange(4) * 1e-6
    for name in ("ok", "other"):
        write_map_entry(path, MapData(bz=np.zeros((4, 4)), x=x, y=x, height=2e-6,
                                      sensor_size=(0.0, 0.0), applied_field=np.zeros(3),
                                      name=name), kind="scan")
    return path


def _collection(path: Path) -> int:
    at = path.read_bytes().find(b"GCOL")
    assert at > 0
    return at


def _damaged(path: Path, offset: int, new: bytes) -> Path:
    data = bytearray(path.read_bytes())
    data[offset:offset + len(new)] = new
    path.write_bytes(bytes(data))
    return path


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    """The command in a process of its own, given up after 10 s (the hang this prevents
    cannot be interrupted in-process)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "smm_daq", *argv], capture_output=True,
                          text=True, env=env, timeout=10)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("command", ["repair", "info"])
def test_a_free_space_of_size_zero_is_refused_not_hung_on(tmp_path, command):
    """The outside fuzzer's file: the 16 bytes after the collection's header zeroed (its first
    object reads as a free space of 0 bytes). Refused, exit 2, naming the file, the
    collection's offset and what is wrong; the file is left as it was."""
    path = _session(tmp_path / "s.h5")
    at = _collection(path)
    _damaged(path, at + HEADER, bytes(16))
    before = path.read_bytes()
    done = _run(command, str(path))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"{path}: is damaged: the HDF5 global heap collection at byte {at} " in done.stderr
    assert (f"its free space (heap object 0) at byte {at + HEADER} declares 0 bytes"
            in done.stderr)
    assert "nothing was changed" in done.stderr
    assert path.read_bytes() == before
    assert not [p.name for p in tmp_path.iterdir() if p.name != "s.h5"]


def test_an_object_past_the_collections_end_is_named(tmp_path):
    """A flipped high byte in an object's size: the object runs past the collection."""
    path = _session(tmp_path / "s.h5")
    at = _collection(path)
    _damaged(path, at + HEADER + 8 + 3, b"\x01")  # the first object's size, + 2**24
    found = damaged_collection(path)
    assert found is not None and found[0] == at
    assert found[1].startswith(f"heap object 1 at byte {at + HEADER} declares ")
    assert "past the collection's end" in found[1]


def test_intact_heaps_pass(tmp_path):
    """A session file, and a file whose heap objects were freed and added again (the free
    space moved to each collection's end, one collection filled past its first size): each
    collection parses to its end."""
    assert damaged_collection(_session(tmp_path / "s.h5")) is None
    churned = tmp_path / "churned.h5"
    with h5py.File(churned, "w") as f:
        for i in range(40):
            f.attrs[f"a{i}"] = "x" * (7 * i)
        for i in range(0, 40, 3):
            del f.attrs[f"a{i}"]
        f.attrs["long"] = "y" * 9000
        f.create_dataset("v", data=np.array(["ab" * k for k in range(1, 60)],
                                            dtype=h5py.string_dtype()))
    data = churned.read_bytes()
    assert data.count(b"GCOL") >= 2
    assert damaged_collection(churned) is None


def test_a_file_without_hdf5_superblock_is_left_to_hdf5(tmp_path):
    """Not HDF5 (or empty): nothing to judge here; the caller's open says what it is."""
    (tmp_path / "empty.h5").write_bytes(b"")
    (tmp_path / "text.h5").write_bytes(b"GCOL\x01\x00\x00\x00" + bytes(40))
    assert damaged_collection(tmp_path / "empty.h5") is None
    assert damaged_collection(tmp_path / "text.h5") is None


def test_every_signature_is_found_across_the_pieces_read(tmp_path, monkeypatch):
    """The file is read in pieces: a signature across two of them, or at either end of the
    file, is found once."""
    from smm_daq.storage import global_heap

    monkeypatch.setattr(global_heap, "_PIECE", 16)
    data = bytearray(200)
    for at in (0, 11, 13, 14, 15, 29, 42, 100, 196):
        data[at:at + 4] = b"GCOL"
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(data))
    expected = [at for at in range(len(data)) if data[at:at + 4] == b"GCOL"]
    with open(path, "rb", buffering=0) as fh:
        assert list(global_heap._signatures(fh)) == expected


def test_the_signature_in_a_few_bytes_of_stored_data_is_no_heap(tmp_path):
    """A dataset of bytes that hold a heap's header and a size within the file (a fixture, a
    copy of part of another file) is data, not a collection: libhdf5 reads the file, and so
    it is not refused. A collection is never smaller than 4096 bytes."""
    from smm_daq.storage.global_heap import check_global_heaps

    path = tmp_path / "bytes.h5"
    blob = b"GCOL\x01\x00\x00\x00" + struct.pack("<Q", 64) + bytes(48)
    with h5py.File(path, "w") as f:
        f.attrs["s"] = "text"
        f.create_dataset("blob", data=np.frombuffer(blob, dtype=np.uint8))
    assert damaged_collection(path) is None
    check_global_heaps(path)


def test_a_heap_after_a_user_block_of_4096_bytes_is_checked(tmp_path):
    """HDF5 finds the superblock after a user block of any 512 * 2**k bytes, so the heaps of
    such a file are checked too."""
    path = tmp_path / "ub.h5"
    with h5py.File(path, "w", userblock_size=4096) as f:
        f.attrs["s"] = "text"
    at = _collection(path)
    (size,) = struct.unpack_from("<Q", path.read_bytes(), at + 8)
    _damaged(path, at + HEADER, bytes(16))
    assert damaged_collection(path) == (
        at, f"its free space (heap object 0) at byte {at + HEADER} declares 0 bytes where "
            f"{size - HEADER} remain to the collection's end")


def test_damage_is_said_only_as_two_scans_in_a_row_find_it(tmp_path, monkeypatch):
    """A collection read half rewritten by a writer: the next scan finds it whole (the file's
    stamp unchanged, a write within the same tick of its time of change), or finds other
    damage at each scan (a writer at work all through): not refused. The same damage found
    by two scans in a row is."""
    from smm_daq.storage import global_heap

    path = _session(tmp_path / "s.h5")
    for scans in ([(100, "a"), None], [(100, "a"), (200, "b"), (300, "c")]):
        found = iter(scans)
        global_heap._judged.clear()  # not remembered from the scans before
        monkeypatch.setattr(global_heap, "damaged_collection",
                            lambda p, *_, found=found: next(found))
        global_heap.check_global_heaps(path)
    found = iter([(100, "a"), (200, "b"), (200, "b")])
    global_heap._judged.clear()
    monkeypatch.setattr(global_heap, "damaged_collection", lambda p, *_: next(found))
    with pytest.raises(InputError, match=r"at byte 200 .*: b; HDF5 would never return"):
        global_heap.check_global_heaps(path)


def test_a_collection_bigger_than_a_piece_is_not_read_whole(tmp_path, monkeypatch):
    """A collection as big as one long text (gigabytes, in another program's file) is walked
    by its objects' headers, each read where it is, never read whole into memory: its
    damage is still found."""
    from smm_daq.storage import global_heap

    path = tmp_path / "long.h5"
    with h5py.File(path, "w") as f:
        f.attrs["long"] = "y" * 20000
        f.attrs["short"] = "z"
    at = _collection(path)
    (size,) = struct.unpack_from("<Q", path.read_bytes(), at + 8)
    assert size > 20000
    monkeypatch.setattr(global_heap, "_PIECE", 4096)
    real_read = global_heap._read
    lengths: list[int] = []

    def read(fh, offset, length):
        lengths.append(length)
        return real_read(fh, offset, length)

    monkeypatch.setattr(global_heap, "_read", read)
    assert damaged_collection(path) is None
    assert max(lengths) <= 4096
    _damaged(path, at + HEADER + 8 + 3, b"\x01")  # the first object's size, + 2**24
    found = damaged_collection(path)
    assert found is not None and found[0] == at and "past the collection's end" in found[1]
