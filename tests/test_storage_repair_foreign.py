"""A repair of a file another tool edited: a dataset holding HDF5 references (object or
region), which would point nowhere in the rebuilt copy, is refused naming it, the file kept
as it was; a named (committed) datatype is copied as a named datatype, its attributes with
it, and datasets using it read back as they were."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from smm_daq.cli.main import main


def _earlier_release(path: Path) -> h5py.File:
    """A file of an earlier release, open to be written: one `smm-daq repair` rewrites (a
    boolean in the "latest" format, which HDF5 1.x does not decode)."""
    f = h5py.File(path, "w", libver="latest")
    f.attrs["creator"] = "smm-daq 0.1.0"
    f.create_dataset("scan/data/line_done", data=np.array([True, False]))
    return f


def _object_refs(f: h5py.File) -> None:
    d = f.create_dataset("scan/data/Bz", data=np.arange(3.0))
    f.create_dataset("scan/links", data=[d.ref, f["scan"].ref], dtype=h5py.ref_dtype)


def _region_refs(f: h5py.File) -> None:
    d = f.create_dataset("scan/data/Bz", data=np.arange(6.0))
    f.create_dataset("scan/links", data=[d.regionref[1:3]], dtype=h5py.regionref_dtype)


def _refs_in_records(f: h5py.File) -> None:
    d = f.create_dataset("scan/data/Bz", data=np.arange(3.0))
    kind = np.dtype([("n", "i4"), ("to", h5py.ref_dtype)])
    f.create_dataset("scan/links", data=np.array([(1, d.ref)], dtype=kind))


@pytest.mark.parametrize("write", [_object_refs, _region_refs, _refs_in_records])
def test_a_dataset_holding_references_is_refused_naming_it_and_the_file_is_kept(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        write: Callable[[h5py.File], None]) -> None:
    """Copied, its references would address the old file's objects where the repaired copy
    holds something else: following one fails there ("Unable to open object by token")."""
    path = tmp_path / "s.h5"
    with _earlier_release(path) as f:
        write(f)
    before = path.read_bytes()
    assert main(["repair", str(path)]) == 2
    err = capsys.readouterr().err
    assert "dataset '/scan/links'" in err and "references" in err, err
    assert str(path) in err and "damaged" not in err and "Traceback" not in err, err
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]


def test_a_named_datatype_is_repaired_as_a_named_datatype_with_its_attributes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.h5"
    record = np.dtype([("n", "<i4"), ("v", ">f8")])
    with _earlier_release(path) as f:
        f["types/record"] = record
        f["types/record"].attrs["unit"] = "T"
        f["types/also"] = f["types/record"]  # a second name of the same type
        f["level"] = np.dtype("<f4")  # one in the root, used by an attribute
        f["scan"].attrs.create("offset", 1.5, dtype=f["level"])
        f.create_dataset("scan/data/records", data=np.array([(1, 2.5), (3, 4.0)], record),
                         dtype=f["types/record"])
    assert main(["repair", str(path)]) == 0, capsys.readouterr().err
    with h5py.File(path, "r") as f:
        named = f["types/record"]
        assert isinstance(named, h5py.Datatype)
        assert named.dtype == record
        assert named.attrs["unit"] == "T"
        assert f["types/also"].id == named.id
        assert isinstance(f["level"], h5py.Datatype) and f["level"].dtype == np.dtype("<f4")
        assert f["scan"].attrs["offset"] == 1.5
        assert f["scan/data/records"].dtype == record
        assert f["scan/data/records"][()].tolist() == [(1, 2.5), (3, 4.0)]
        np.testing.assert_array_equal(f["scan/data/line_done"][()], [True, False])
