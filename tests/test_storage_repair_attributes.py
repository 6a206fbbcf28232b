"""A repair keeps every attribute exactly as its file holds it: its HDF5 type (text with its
length, padding and character set), its dataspace (scalar, simple, null) and its bytes, on
the root, on groups and on datasets, in their order. Text that is not UTF-8 in an ASCII
attribute (as a C program writes it) is copied as it is, not called damage (references:
test_storage_repair_references)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from h5py import h5a, h5s, h5t

from smm_daq.cli.main import main
from smm_daq.storage import copying
from smm_daq.storage.h5file import LIBVER, repair
from smm_daq.storage.identity import TOKEN

NOT_UTF8 = b"\xe9t\xe9"  # "été" in Latin-1


def _text_type(size: int, cset: int, pad: int = h5t.STR_NULLPAD) -> h5t.TypeID:
    """A text type: of `size` bytes, or of any length where `size` is `h5t.VARIABLE`."""
    tid = h5t.C_S1.copy()
    tid.set_size(size)
    tid.set_cset(cset)
    tid.set_strpad(pad)
    return tid


def _low_level(obj: h5py.HLObject, name: str, tid: h5t.TypeID, space: h5s.SpaceID,
               values: np.ndarray | None, mtype: h5t.TypeID | None = None) -> None:
    """An attribute made as a C program makes it: this type and space, these values."""
    attr = h5a.create(obj.id, name.encode(), tid, space)
    if values is not None:
        attr.write(values, mtype=mtype or tid)


def _attributes_of_every_kind(obj: h5py.HLObject) -> None:
    """Attributes of every type and dataspace a file may hold on `obj`."""
    scalar = h5s.create(h5s.SCALAR)
    obj.attrs.create("s10", np.bytes_(b"abc"), dtype="S10")
    for pad in (h5t.STR_NULLTERM, h5t.STR_SPACEPAD):
        _low_level(obj, f"pad{pad}", _text_type(6, h5t.CSET_ASCII, pad), scalar,
                   np.array(b"ab  ", dtype="S6"))
    _low_level(obj, "fixed_utf8", _text_type(8, h5t.CSET_UTF8), h5s.create_simple((2,)),
               np.array(["é".encode(), b"xy"], dtype="S8"))
    py_text = h5t.py_create(h5py.string_dtype())  # h5py's conversion from bytes objects
    for cset, value in ((h5t.CSET_ASCII, b"plain"), (h5t.CSET_UTF8, "é".encode())):
        _low_level(obj, f"vlen{cset}", _text_type(h5t.VARIABLE, cset), scalar,
                   np.array(value, dtype=h5py.string_dtype("ascii")), mtype=py_text)
    obj.attrs["vlen_list"] = np.array(["a", "bé", ""], dtype=h5py.string_dtype())
    obj.attrs.create("big_endian", 1.5, dtype=">f8")
    obj.attrs["grid"] = np.arange(6, dtype="<i2").reshape(2, 3)
    obj.attrs["flag"] = np.True_
    obj.attrs.create("mode", 2, dtype=h5py.enum_dtype({"off": 0, "on": 2}, basetype="u1"))
    obj.attrs["record"] = np.array((3, b"xy", 2.5),
                                   dtype=[("n", "<i4"), ("code", "S3"), ("v", ">f4")])
    obj.attrs["record_text"] = np.array(
        [("é", 1), ("", 2)], dtype=[("name", h5py.string_dtype()), ("k", "u2")])
    _low_level(obj, "array", h5t.array_create(h5t.IEEE_F32LE, (3,)), h5s.create_simple((2,)),
               np.arange(6, dtype="<f4").reshape(2, 3))
    obj.attrs["sequences"] = np.array([np.arange(3, dtype="i4"), np.arange(1, dtype="i4")],
                                      dtype=h5py.vlen_dtype("i4"))
    obj.attrs["opaque"] = np.void(b"\x01\x00\x02")
    obj.attrs["null"] = h5py.Empty("f8")
    obj.attrs["null_text"] = h5py.Empty("S4")
    obj.attrs["no_elements"] = np.zeros((0, 2), dtype="S4")
    obj.attrs["long"] = np.arange(10_000, dtype=">f8")  # 80 kB: only dense storage holds it


def _text_kinds(tid: h5t.TypeID) -> object:
    """What H5Tequal leaves out of a type: the character set of text of any length (and
    the padding of each text, for good measure), in compounds, arrays and sequences too."""
    kind = tid.get_class()
    if kind == h5t.STRING:
        return (tid.is_variable_str(), tid.get_size(), tid.get_cset(), tid.get_strpad())
    if kind == h5t.COMPOUND:
        return [(tid.get_member_name(i), _text_kinds(tid.get_member_type(i)))
                for i in range(tid.get_nmembers())]
    if kind in (h5t.ARRAY, h5t.VLEN):
        return _text_kinds(tid.get_super())
    return None


def _stored(obj: h5py.HLObject) -> list[tuple[bytes, h5t.TypeID, object, object]]:
    """Each attribute of `obj` in the order its file lists it (by creation where it tracks
    it, else by name): name, type (compared with
    H5Tequal), dataspace (kind, shape) and values, as raw bytes of its file type, or
    through memory where of variable length (text as bytes, undecoded)."""
    found = []
    names: list[bytes] = []
    # a file's own creation properties never say so: its root group's do
    holder = obj["/"] if isinstance(obj, h5py.File) else obj
    tracked = holder.id.get_create_plist().get_attr_creation_order()
    h5a.iterate(obj.id, names.append,
                index_type=h5py.h5.INDEX_CRT_ORDER if tracked else h5py.h5.INDEX_NAME)
    for name in names:
        if name == TOKEN.encode():
            continue
        attr = h5a.open(obj.id, name)
        ftype, space = attr.get_type(), attr.get_space()
        kind = space.get_simple_extent_type()
        values: object = None
        if kind != h5s.NULL and space.get_simple_extent_npoints():
            if copying._needs_memory(ftype):
                dtype = ftype.dtype
                mtype = h5t.py_create(dtype)
                shape = space.shape + (dtype.subdtype[1] if dtype.subdtype else ())
                read = np.empty(shape, dtype=dtype.subdtype[0] if dtype.subdtype else dtype)
                attr.read(read, mtype=mtype)
                values = [v.tolist() if isinstance(v, np.ndarray) else v
                          for v in read.ravel().tolist()]
            else:
                raw = np.empty(space.shape, dtype=np.dtype((np.void, ftype.get_size())))
                attr.read(raw, mtype=ftype)
                values = raw.tobytes()
        found.append((name, ftype, (kind, space.shape), values))
    return found


def _everything(path: Path) -> dict[str, list[tuple[bytes, h5t.TypeID, object, object]]]:
    """`_stored` of the root, each group and each dataset of the file, by path."""
    with h5py.File(path, "r") as f:
        found = {"/": _stored(f)}
        f.visititems(lambda name, obj: found.__setitem__(name, _stored(obj)))
    return found


def earlier_release(path: Path) -> h5py.File:
    """A file of an earlier release, open to be written: one `smm-daq repair` rewrites (a
    boolean in the "latest" format, which HDF5 1.x does not decode)."""
    f = h5py.File(path, "w", libver="latest")
    f.attrs["creator"] = "smm-daq 0.1.0"
    f.create_dataset("scan/data/line_done", data=np.array([True, False]))
    return f


def refused_and_kept(path: Path, capsys: pytest.CaptureFixture[str], what: str) -> None:
    """`smm-daq repair` of `path` refuses it, naming `what` and its references, and leaves
    the file as it was, with nothing beside it."""
    before = path.read_bytes()
    assert main(["repair", str(path)]) == 2
    err = capsys.readouterr().err
    assert what in err and "references" in err, err
    assert str(path) in err and "damaged" not in err and "Traceback" not in err, err
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def _file_with_attributes_everywhere(path: Path) -> None:
    with h5py.File(path, "w", libver=LIBVER, track_order=True) as f:
        f.attrs["creator"] = "smm-daq 0.1.0"
        _attributes_of_every_kind(f)
        group = f.create_group("scan", track_order=True)
        _attributes_of_every_kind(group)
        _attributes_of_every_kind(f.create_dataset("scan/data", data=np.arange(4.0)))
        _attributes_of_every_kind(f.create_dataset("scan/title", data="t",
                                                   dtype=h5py.string_dtype()))


def test_every_attribute_is_repaired_with_its_type_dataspace_and_bytes(
        tmp_path: Path) -> None:
    """Read into Python and written again, fixed text S10 became S3, null-terminated and
    space-padded text null-padded, fixed UTF-8 text ASCII and variable-length ASCII text
    UTF-8: the same values to h5py, another file to a C reader or a NeXus validator."""
    path = tmp_path / "s.h5"
    _file_with_attributes_everywhere(path)
    before = _everything(path)
    assert len(before["/"]) == 21  # as made: more than 8, so in dense storage
    repair(path)
    after = _everything(path)
    assert sorted(after) == sorted(before)
    for where, attributes in before.items():
        assert [a[0] for a in after[where]] == [a[0] for a in attributes], where  # in order
        for (name, ftype, space, values), (_, ftype2, space2, values2) in zip(
                attributes, after[where], strict=True):
            assert ftype2.equal(ftype), (where, name)
            assert _text_kinds(ftype2) == _text_kinds(ftype), (where, name)
            assert (space2, values2) == (space, values), (where, name)
    with h5py.File(path, "r") as f:
        text = h5a.open(f["scan"].id, b"s10").get_type()
        assert (text.get_size(), text.get_strpad(), text.get_cset()) == (
            10, h5t.STR_NULLPAD, h5t.CSET_ASCII)
        assert h5a.open(f.id, b"vlen0").get_type().get_cset() == h5t.CSET_ASCII
        assert f.attrs["creator"] == "smm-daq 0.1.0"


def test_ascii_text_that_is_not_utf8_is_repaired_as_it_is_not_called_damaged(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Decoded and encoded again, the text of a C program's ASCII attribute holding bytes
    that are not UTF-8 could not be written back, and the whole intact file was refused as
    damaged ("restore it from a copy")."""
    path = tmp_path / "s.h5"
    with earlier_release(path) as f:
        d = f.create_dataset("scan/data/Bz", data=np.arange(3.0))
        _low_level(d, "units", _text_type(h5t.VARIABLE, h5t.CSET_ASCII),
                   h5s.create(h5s.SCALAR), np.array(NOT_UTF8, dtype=h5py.string_dtype("ascii")),
                   mtype=h5t.py_create(h5py.string_dtype()))
    assert main(["repair", str(path)]) == 0, capsys.readouterr().err
    assert "damaged" not in capsys.readouterr().err
    with h5py.File(path, "r") as f:
        attr = h5a.open(f["scan/data/Bz"].id, b"units")
        value = np.empty((), dtype=h5py.string_dtype("ascii"))
        attr.read(value, mtype=h5t.py_create(h5py.string_dtype()))
        assert value[()] == NOT_UTF8
        kind = attr.get_type()
        assert kind.is_variable_str() and kind.get_cset() == h5t.CSET_ASCII
        np.testing.assert_array_equal(f["scan/data/Bz"][()], np.arange(3.0))


def test_sequences_of_big_endian_numbers_are_repaired_with_their_values(
        tmp_path: Path) -> None:
    """Copied through h5py as their file types them, each number of a sequence of
    big-endian numbers came back byte-swapped: its file held 7 as 0x00000007 and its copy
    0x07000000, 117440512 to a C reader (h5py itself reads such sequences unswapped, so the
    values it reads before and after the repair differ)."""
    path = tmp_path / "s.h5"
    with earlier_release(path) as f:
        for obj in (f, f["scan/data/line_done"]):
            obj.attrs["sequences"] = np.array(
                [np.arange(7, 10, dtype=">i4"), np.arange(1, dtype=">i4")],
                dtype=h5py.vlen_dtype(">i4"))
            obj.attrs["records"] = np.array(
                [(np.arange(2, dtype=">f8"), 1)],
                dtype=[("v", h5py.vlen_dtype(">f8")), ("k", "<i2")])

    def values() -> list[str]:
        with h5py.File(path, "r") as f:
            return [repr(obj.attrs[name]) for obj in (f, f["scan/data/line_done"])
                    for name in ("sequences", "records")]

    before = values()
    assert "117440512" in before[0]  # 7 as h5py reads it (the test sees the bytes)
    repair(path)
    assert values() == before
