"""`smm_daq.storage.intact` reading object headers from a file's bytes: a header cut short
(the file ends inside it) or one whose sizes lead past the end is judged not intact, never a
crash, so `repair` rebuilds or names the file; so is one holding a message of a type HDF5
1.10 does not know. Headers are read from the file that is open, not by its name."""

import os

import h5py
import numpy as np
import pytest

from smm_daq.cli.main import main
from smm_daq.storage import intact
from smm_daq.storage.intact import _Layout
from smm_daq.storage.superblock import lookup3


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


def _new_style_file(path) -> None:
    """An smm-daq file as HDF5 lays out groups that track creation order (every smm-daq
    group): a link-info and a group-info message in each group's header, links and
    attributes past 8 in dense storage (an attribute-info message), within the 1.10 bound."""
    with h5py.File(path, "w", libver=("v110", "latest"), track_order=True) as f:
        f.attrs["creator"] = "smm-daq 0.1.0"
        for i in range(12):  # dense: a fractal heap and B-trees beside the header
            f.attrs[f"a{i}"] = np.arange(i + 1)
            f.create_group(f"e{i}", track_order=True).attrs["k"] = i
        f.create_dataset("e0/z", data=np.arange(50.0), chunks=(10,), compression="gzip",
                         maxshape=(None,))
        f.create_dataset("e0/b", data=np.array([True, False]))


KINDS = {"link info": 0x02, "group info": 0x0A, "attribute info": 0x15}


def _set_version(path, group: str, kind: int, version: int) -> None:
    """The version of the first `kind` message in `group`'s header set to `version`, the
    header's checksum made to match (damage that reads back as a whole header)."""
    with h5py.File(path, "r") as f:
        address = h5py.h5o.get_info(f[group].id).addr
    raw = bytearray(path.read_bytes())
    flags = raw[address + 5]
    assert raw[address:address + 5] == b"OHDR\x02"
    start = address + 6 + (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
    width = 1 << (flags & 0x03)
    size = int.from_bytes(raw[start:start + width], "little")
    at, end, order = start + width, start + width + size, 2 if flags & 0x04 else 0
    while raw[at] != kind:
        at += 4 + order + int.from_bytes(raw[at + 1:at + 3], "little")
        assert at < end, f"no message of type {kind:#x} in the header's first chunk"
    raw[at + 4 + order] = version
    raw[end:end + 4] = lookup3(bytes(raw[address:end])).to_bytes(4, "little")
    path.write_bytes(bytes(raw))


def test_a_file_with_new_style_groups_and_dense_attributes_is_intact(tmp_path):
    path = tmp_path / "s.h5"
    _new_style_file(path)
    with h5py.File(path, "r") as f:
        assert intact._types_current(f) is True
    assert intact.needs_repair(path) is False


@pytest.mark.parametrize("group", ["/", "e5"])
@pytest.mark.parametrize("message", sorted(KINDS))
def test_a_group_message_in_a_version_no_hdf5_writes_is_not_passed(tmp_path, message, group):
    """Link-info, group-info and attribute-info messages are version 0 in every HDF5 from
    1.8 on: another version is damage (or a format no HDF5 1.x reads), for `repair` to
    name, even where the header's checksum matches."""
    path = tmp_path / "s.h5"
    _new_style_file(path)
    _set_version(path, group, KINDS[message], 1)
    assert intact.needs_repair(path) is True


@pytest.mark.parametrize("group", ["/", "e5"])
def test_repair_names_such_damage_and_leaves_the_file_as_it_was(tmp_path, capsys, group):
    path = tmp_path / "s.h5"
    _new_style_file(path)
    _set_version(path, group, KINDS["group info"], 1)
    before = path.read_bytes()
    assert main(["repair", str(path)]) == 2
    err = capsys.readouterr().err
    assert "s.h5: cannot be read back whole to repair it" in err and "damaged" in err
    assert "Traceback" not in err and "intact" not in err.split("expected")[0]
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.h5"]
