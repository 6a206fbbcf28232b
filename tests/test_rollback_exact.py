"""A refused write leaves the root's attributes as they were, type included: a numeric
attribute the write retyped (an int32 written as a float64 of the same value) is put back in
its type, and one of region references, which the write left alone, is not rewritten (its
bytes stay as they were). Checked with h5py and h5dump."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from smm_daq.errors import InputError
from smm_daq.storage.h5file import writing
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry

H5DUMP = shutil.which("h5dump")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("exact") / "base.h5"
    x = np.arange(4) * 1e-6
    write_map_entry(path, MapData(bz=np.zeros((4, 4)), x=x, y=x, height=2e-6,
                                  sensor_size=(0.0, 0.0), applied_field=np.zeros(3), name="ok"),
                    kind="scan")
    with h5py.File(path, "a") as f:
        f.attrs.create("count", 5, dtype="<i4")
        f.attrs.create("scale", [1.5, 2.0], dtype=">f4")
        bz = f[_datasets(f)[0]]
        f.attrs.create("regions", [bz.regionref[0:2, 1:3], bz.regionref[3, :]],
                       dtype=h5py.regionref_dtype)
        f.attrs["after"] = "last"
    return path


def _datasets(f: h5py.File) -> list[str]:
    names: list[str] = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset)
                 and o.ndim == 2 else None)
    return names


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _dump(path: Path) -> str:
    assert H5DUMP is not None
    done = subprocess.run([H5DUMP, "-A", "-R", str(path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.replace(str(path), "FILE")


def _refused(path: Path, change: object) -> None:
    with pytest.raises(InputError, match="refused here"), writing(path, create=False) as f:
        change(f)  # type: ignore[operator]
        raise InputError("refused here", source=str(path))


@pytest.mark.skipif(H5DUMP is None, reason="h5dump is not installed")
def test_a_retyped_numeric_attribute_is_put_back_in_its_type(base: Path, tmp_path: Path):
    """int32 5 written over as float64 5.0, big-endian float32 as float64 of equal values:
    equal as numbers, not as the file's objects: each is put back as it was typed, and
    the attributes keep their order."""
    path = tmp_path / "s.h5"
    shutil.copy(base, path)
    dump = _dump(path)
    with h5py.File(path, "r") as f:
        order = list(f.attrs)

    def change(f: h5py.File) -> None:
        f.attrs["count"] = 5.0
        f.attrs["scale"] = np.array([1.5, 2.0])

    _refused(path, change)
    with h5py.File(path, "r") as f:
        assert f.attrs.get_id("count").dtype == np.dtype("<i4")
        assert f.attrs.get_id("scale").dtype == np.dtype(">f4")
        assert list(f.attrs["scale"]) == [1.5, 2.0]
        assert list(f.attrs) == order
    assert _dump(path) == dump


@pytest.mark.skipif(H5DUMP is None, reason="h5dump is not installed")
def test_region_references_a_refused_write_left_alone_are_not_rewritten(
        base: Path, tmp_path: Path):
    """A root attribute of region references that the write did not touch: the file is left
    byte for byte as it was (it was rewritten, each region again, by every refused write).
    Pointed at another region by the write, its regions are put back."""
    path = tmp_path / "s.h5"
    shutil.copy(base, path)
    with writing(path, create=False):
        pass  # the file as a write that changed nothing leaves it
    before, dump = _digest(path), _dump(path)
    _refused(path, lambda f: None)  # refused once it began, before it wrote
    assert _digest(path) == before
    assert _dump(path) == dump

    def change(f: h5py.File) -> None:
        regions = f.attrs["regions"]
        bz = f[regions[0]]
        f.attrs.create("regions", [bz.regionref[0:1, 0:1], bz.regionref[3, :]],
                       dtype=h5py.regionref_dtype)

    _refused(path, change)
    with h5py.File(path, "r") as f:
        regions = f.attrs["regions"]
        bz = f[regions[0]]
        assert bz[regions[0]].shape == (2, 2) and bz[regions[1]].shape == (1, 4)


def test_a_ctrl_c_as_retyped_attributes_are_made_again_loses_none_of_the_others(
        base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The write retyped the root's first attribute, so every attribute after it is made
    again; a Ctrl-C as the first of them is made leaves the others (the file's creator and
    identity among them) in the file: they were deleted, all of them, before any was made."""
    path = tmp_path / "s.h5"
    shutil.copy(base, path)
    with h5py.File(path, "r") as f:
        order = list(f.attrs)
        kept = {key: f.attrs[key] for key in order[1:] if key != "regions"}
    assert order[0] == "NX_class" and {"creator", "file_identity"} <= set(kept)
    armed: list[bool] = []
    create = h5py.AttributeManager.create

    def interrupted(self, name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if armed:
            raise KeyboardInterrupt
        return create(self, name, *args, **kwargs)

    monkeypatch.setattr(h5py.AttributeManager, "create", interrupted)

    def change(f: h5py.File) -> None:
        f.attrs["NX_class"] = np.bytes_(b"NXroot")  # fixed-length: another type
        armed.append(True)
        raise InputError("refused here", source=str(path))

    with pytest.raises(KeyboardInterrupt), writing(path, create=False) as f:
        change(f)
    monkeypatch.undo()
    with h5py.File(path, "r") as f:
        assert set(order) <= set(f.attrs)
        for key, value in kept.items():
            assert np.array_equal(f.attrs[key], value), key


def test_an_attribute_h5py_cannot_write_back_is_left_untouched_not_deleted(
        base: Path, tmp_path: Path):
    """Another tool's root attribute of ASCII text holding a byte above 127: h5py reads it
    (a lone surrogate) but cannot write it back. A refused write that retyped the root's
    first attribute made every attribute after it again, this one among them: deleted, and
    the rest of the rollback (the entry the write made) skipped. It is left where it is."""
    path = tmp_path / "s.h5"
    shutil.copy(base, path)
    ascii_text = h5py.h5t.TypeID.copy(h5py.h5t.C_S1)
    ascii_text.set_size(h5py.h5t.VARIABLE)
    ascii_text.set_cset(h5py.h5t.CSET_ASCII)
    with h5py.File(path, "a") as f:
        h5py.h5a.create(f.id, b"legacy", ascii_text, h5py.h5s.create(h5py.h5s.SCALAR)).write(
            np.array(b"a\xffb", dtype=h5py.string_dtype("ascii")))
        entries = sorted(f)

    def change(f: h5py.File) -> None:
        f.attrs["NX_class"] = np.bytes_(b"NXroot")  # fixed-length: another type
        f.create_group("made")

    _refused(path, change)
    with h5py.File(path, "r") as f:
        assert "legacy" in f.attrs
        raw = np.empty((), dtype=h5py.string_dtype("ascii"))
        f.attrs.get_id("legacy").read(raw)
        assert raw[()] == b"a\xffb"
        assert sorted(f) == entries
        assert f.attrs.get_id("NX_class").dtype == h5py.string_dtype()
