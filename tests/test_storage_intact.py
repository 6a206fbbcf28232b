"""`smm_daq.storage.intact` reading object headers from a file's bytes: a header cut short
(the file ends inside it) or one whose sizes lead past the end is judged not intact, never a
crash, so `repair` rebuilds or names the file; so is one holding a message of a type HDF5
1.10 does not know. Headers are read from the file that is open, not by its name."""

import os

import h5py
import numpy as np
import pytest

from smm_daq.storage import intact
from smm_daq.storage.intact import _Layout


@pytest.fixture
def layout(tmp_path):
    with h5py.File(tmp_path / "s.h5", "w", libver=("v110", "latest")) as f:
        f.create_dataset("x", data=np.arange(3.0))
        made = _Layout(f)
        address = h5py.h5o.get_info(f["x"].id).addr
    whole = (tmp_path / "s.h5").read_bytes()
    return made, whole[address:]


def _judge(layout, tmp_path, data: bytes) -> bool:
    made, _ = layout
    cut = tmp_path / "cut.bin"
    cut.write_bytes(data)
    with open(cut, "rb") as fh:
        return made._chunks_current(fh.fileno(), 0)


def test_a_whole_header_is_judged_current(layout, tmp_path):
    assert _judge(layout, tmp_path, layout[1]) is True


@pytest.mark.parametrize("keep", [0, 4, 5, 6, 7, 12, 30])
def test_a_header_cut_short_is_not_intact(layout, tmp_path, keep):
    assert _judge(layout, tmp_path, layout[1][:keep]) is False


def test_a_header_whose_size_leads_past_the_end_is_not_intact(layout, tmp_path):
    # version 2, 8-byte chunk size of 2**62: never read (it would not fit in memory)
    data = b"OHDR\x02\x03" + (2 ** 62).to_bytes(8, "little") + b"\0" * 16
    assert _judge(layout, tmp_path, data) is False


def _message(kind: int, body: bytes) -> bytes:
    """One header message of a version 2 header without creation order: type, size, flags."""
    return bytes([kind]) + len(body).to_bytes(2, "little") + b"\0" + body


def _header(*messages: bytes) -> bytes:
    """A version 2 object header (1-byte chunk size) holding `messages`, checksum left out."""
    chunk = b"".join(messages)
    return b"OHDR\x02\x00" + bytes([len(chunk)]) + chunk + b"\0" * 4


def test_a_message_of_a_type_hdf5_1_10_does_not_know_is_a_reason_to_rebuild(layout, tmp_path):
    dataspace = _message(0x01, b"\x02\x00\x00\x00")  # version 2: one HDF5 1.10 decodes
    assert _judge(layout, tmp_path, _header(dataspace)) is True
    assert _judge(layout, tmp_path, _header(_message(0x18, b"\x00" * 4), dataspace)) is True
    for unknown in (0x19, 0x30, 0xFF):  # after the metadata cache image, 1.10's last type
        assert _judge(layout, tmp_path, _header(dataspace, _message(unknown, b"\x00"))) is False


def _current_file(path, objects: int) -> None:
    with h5py.File(path, "w", libver=("v110", "latest")) as f:
        for i in range(objects):
            f.create_dataset(f"g/x{i}", data=np.arange(3.0))


def test_every_header_is_read_from_the_file_open_not_from_the_file_now_at_its_name(
        tmp_path, monkeypatch):
    """One read of many objects opens no file by its name per object, and reads the file it
    has open even once another process's repair has put another file at that name."""
    path, other = tmp_path / "s.h5", tmp_path / "other.h5"
    _current_file(path, 40)
    with h5py.File(other, "w", libver="earliest") as f:  # version 1 headers: not current
        f.create_dataset("y", data=np.zeros(50_000))
    opened: list[str] = []
    real_open, real_os_open = open, os.open
    monkeypatch.setattr(intact, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k),
                        raising=False)
    monkeypatch.setattr(intact.os, "open", lambda *a, **k: opened.append(a[0]) or real_os_open(
        *a, **k))
    with h5py.File(path, "r") as f:
        os.replace(other, path)  # as a repair in another process swaps in its copy
        assert intact._types_current(f) is True
    assert len(opened) <= 1
