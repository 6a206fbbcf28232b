"""A repair of a file another tool edited: a named (committed) datatype is copied as a named
datatype, its attributes with it, and datasets using it read back as they were; datasets of
sequences and of arrays of text keep their values (references: test_storage_repair_references)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from test_storage_repair_attributes import earlier_release

from smm_daq.cli.main import main


def test_a_named_datatype_is_repaired_as_a_named_datatype_with_its_attributes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.h5"
    record = np.dtype([("n", "<i4"), ("v", ">f8")])
    with earlier_release(path) as f:
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



@pytest.mark.parametrize("chunks", [None, (1,), (2,)])
def test_a_dataset_of_sequences_of_one_length_is_repaired(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], chunks: tuple[int] | None) -> None:
    """Written back through h5py, sequences of one length were taken for a 2-D array that did
    not fit the dataset: "Can't broadcast (2, 3) -> (2,)", a traceback."""
    path = tmp_path / "s.h5"
    with earlier_release(path) as f:
        d = f.create_dataset("scan/data/runs", shape=(2,), chunks=chunks,
                             dtype=h5py.vlen_dtype("<i4"))
        d[0], d[1] = np.arange(7, 10, dtype="<i4"), np.arange(3, dtype="<i4")
    assert main(["repair", str(path)]) == 0, capsys.readouterr().err
    with h5py.File(path, "r") as f:
        assert [s.tolist() for s in f["scan/data/runs"][()]] == [[7, 8, 9], [0, 1, 2]]


@pytest.mark.parametrize("chunks", [None, (1,), (2,)])
def test_a_dataset_of_sequences_of_big_endian_numbers_is_repaired_with_its_values(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], chunks: tuple[int] | None) -> None:
    """Each number of a sequence of big-endian numbers came back byte-swapped: h5py reads
    their bytes unswapped (7 as 117440512, before and after the repair alike) and wrote them
    back by value."""
    path = tmp_path / "s.h5"
    with earlier_release(path) as f:
        d = f.create_dataset("scan/data/runs", shape=(2,), chunks=chunks,
                             dtype=h5py.vlen_dtype(">i4"))
        d[0], d[1] = np.arange(7, 10, dtype=">i4"), np.arange(2, dtype=">i4")
        records = f.create_dataset(
            "scan/data/records", shape=(2,), chunks=chunks,
            dtype=[("v", h5py.vlen_dtype(">i4")), ("k", "<i2")])
        records[0], records[1] = (np.arange(7, 10, dtype=">i4"), 1), (np.arange(1, dtype=">i4"), 2)

    def values() -> list[str]:
        with h5py.File(path, "r") as f:
            return [repr(f[name][()]) for name in ("scan/data/runs", "scan/data/records")]

    before = values()
    assert "117440512" in before[0] and "117440512" in before[1]  # 7 as h5py reads it
    assert main(["repair", str(path)]) == 0, capsys.readouterr().err
    assert values() == before


@pytest.mark.parametrize("chunks", [None, (1,), (2,)])
def test_a_dataset_of_arrays_of_text_is_repaired_with_its_text(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], chunks: tuple[int] | None) -> None:
    """Text of any length in an array was not seen as such (HDF5's `detect_class` does not
    find it there), so a chunk of it was copied raw: its addresses in the old file's heap,
    where the repaired file holds something else ("bad heap index" reading it back)."""
    path = tmp_path / "s.h5"
    with earlier_release(path) as f:
        d = f.create_dataset("scan/data/labels", shape=(2,), chunks=chunks,
                             dtype=np.dtype((h5py.string_dtype(), (2,))))
        d[0], d[1] = ["a", "bé"], ["", "d"]
    assert main(["repair", str(path)]) == 0, capsys.readouterr().err
    with h5py.File(path, "r") as f:
        assert f["scan/data/labels"][()].tolist() == [[b"a", "bé".encode()], [b"", b"d"]]
