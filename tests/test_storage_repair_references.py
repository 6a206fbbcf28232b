"""A repair of a file another tool edited keeps what points at its objects pointing at them
in the rebuilt copy, where each lies elsewhere: HDF5 object and region references (NeXus
links made by NeXpy, h5py's `ref_dtype`) in datasets and attributes, also in records and
arrays, and chunked, each followed to the copy of what it pointed at; a dataset or attribute
of a named (committed) datatype links to that type's copy, not to an equal type of its own.
References of a kind not followed, or to an object no longer in the file, are refused naming
where they are, the file kept as it was."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
from h5py import h5o
from test_storage_repair_attributes import earlier_release, refused_and_kept

from smm_daq.cli.main import main
from smm_daq.storage.h5file import LIBVER, marked_open

RECORD = np.dtype([("n", "<i4"), ("to", h5py.ref_dtype)])
H5DUMP = shutil.which("h5dump")


def _with_references(f: h5py.File) -> None:
    """References of every kind followed in `f` (whose entry 'scan' exists), most of them
    pointing at objects copied after them ('scan/links' before 'scan/target')."""
    scan = f["scan"]
    target = scan.create_dataset("target", data=np.arange(12.0).reshape(3, 4))
    grid = scan.create_group("zgroup")
    f["types/level"] = np.dtype("<f4")
    scan.create_dataset("links", data=[target.ref, grid.ref, f.ref, f["types/level"].ref,
                                       h5py.Reference()], dtype=h5py.ref_dtype)
    scan.create_dataset("chunked_links", data=[target.ref] * 5, dtype=h5py.ref_dtype,
                        chunks=(2,), maxshape=(None,))
    scan.create_dataset("regions", data=[target.regionref[1:3, ::2], target.regionref[2, 3],
                                         h5py.RegionReference()], dtype=h5py.regionref_dtype)
    scan.create_dataset("records", data=np.array([(7, grid.ref), (8, target.ref)], RECORD))
    pairs = scan.create_dataset("pairs", (1,), dtype=np.dtype((h5py.ref_dtype, (2,))))
    pairs[0] = [grid.ref, target.ref]
    scan.attrs["signal_ref"] = target.ref
    scan.attrs["regions"] = np.array([target.regionref[0, 1:3]], dtype=h5py.regionref_dtype)
    target.attrs["record"] = np.array((3, grid.ref), RECORD)
    grid.attrs["back"] = scan.ref  # on a group copied after what it points at


def _follows_them(path: Path) -> None:
    """Each reference `_with_references` made points at the same object, the same region."""
    with h5py.File(path, "r") as f:
        scan, target = f["scan"], f["scan/target"]

        def name(ref: h5py.Reference) -> str:
            return f[ref].name

        links = scan["links"][()]
        assert [name(r) for r in links[:4]] == ["/scan/target", "/scan/zgroup", "/",
                                               "/types/level"]
        assert not links[4]  # null stays null
        assert [name(r) for r in scan["chunked_links"][()]] == ["/scan/target"] * 5
        regions = scan["regions"][()]
        assert name(regions[0]) == "/scan/target" and not regions[2]
        np.testing.assert_array_equal(target[regions[0]], [[4.0, 6.0], [8.0, 10.0]])
        np.testing.assert_array_equal(np.ravel(target[regions[1]]), [11.0])
        records = scan["records"][()]
        assert records["n"].tolist() == [7, 8]
        assert [name(r) for r in records["to"]] == ["/scan/zgroup", "/scan/target"]
        assert [name(r) for r in scan["pairs"][0]] == ["/scan/zgroup", "/scan/target"]
        assert name(scan.attrs["signal_ref"]) == "/scan/target"
        region = scan.attrs["regions"][0]
        np.testing.assert_array_equal(np.ravel(target[region]), [1.0, 2.0])
        assert name(target.attrs["record"]["to"]) == "/scan/zgroup"
        assert name(f["scan/zgroup"].attrs["back"]) == "/scan"
        np.testing.assert_array_equal(f["scan/data/line_done"][()], [True, False])
    if H5DUMP is not None:  # a C reader follows them too
        out = subprocess.run([H5DUMP, "-d", "/scan/links", str(path)], capture_output=True,
                             text=True)
        assert out.returncode == 0 and "/scan/target" in out.stdout, out.stderr[-2000:]


def test_references_of_an_earlier_release_are_repaired_pointing_at_the_same_objects(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Refused before: the user of a file another tool touched could not repair it."""
    path = tmp_path / "s.h5"
    with earlier_release(path) as f:
        _with_references(f)
    assert main(["repair", str(path)]) == 0, capsys.readouterr().err
    _follows_them(path)


_KILLED = """
    import os, sys
    import h5py
    sys.path.insert(0, sys.argv[2])
    from test_storage_repair_references import _with_references
    f = h5py.File(sys.argv[1], "a")
    _with_references(f)
    f.flush()
    os.kill(os.getpid(), 9)
    """


def test_references_written_by_a_killed_writer_are_repaired_pointing_at_the_same_objects(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file of this format left marked open for write by a tool killed once it wrote
    them: read as a repair reads it (the mark cleared in a copy) and rebuilt."""
    path = tmp_path / "s.h5"
    with h5py.File(path, "w", libver=LIBVER) as f:
        f.attrs["creator"] = "smm-daq 0.1.0"
        f.create_dataset("scan/data/line_done", data=np.array([True, False]))
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_KILLED), str(path), str(Path(__file__).parent)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == -9, done.stderr
    assert marked_open(path)
    assert main(["repair", str(path)]) == 0, capsys.readouterr().err
    assert not marked_open(path)
    _follows_them(path)


def test_references_in_sequences_are_refused_naming_the_dataset_and_the_file_is_kept(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.h5"
    with earlier_release(path) as f:
        d = f.create_dataset("scan/data/Bz", data=np.arange(3.0))
        links = f.create_dataset("scan/links", (1,), dtype=h5py.vlen_dtype(h5py.ref_dtype))
        links[0] = np.array([d.ref], dtype=h5py.ref_dtype)
    refused_and_kept(path, capsys, "dataset '/scan/links' holds HDF5 references of a kind a "
                     "repair cannot point at the copied objects")


def test_a_reference_to_an_object_no_longer_in_the_file_is_refused_naming_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Its copy could point at nothing: the file is kept as it was."""
    path = tmp_path / "s.h5"
    with earlier_release(path) as f:
        gone = f.create_dataset("scan/gone", data=np.arange(3.0))
        f["scan"].attrs["signal_ref"] = gone.ref
        del f["scan/gone"], gone
    refused_and_kept(path, capsys, "attribute 'signal_ref' of '/scan' holds an HDF5 reference "
                     "to an object that is no longer in the file")


def _address(obj: h5py.h5o.ObjectID) -> int:
    return h5o.get_info(obj).addr


def test_datasets_and_attributes_of_a_named_type_are_repaired_linked_to_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each got an equal type of its own in the copy, no longer the named one: a reader
    asking which type a dataset is of (NeXus tools, `h5dump` saying DATATYPE "/types/..")
    saw none. 'scan' comes before 'types': its dataset uses the type before it is reached;
    two equal named types stay two."""
    path = tmp_path / "s.h5"
    record = np.dtype([("n", "<i4"), ("v", ">f8")])
    with earlier_release(path) as f:
        f["types/record"] = record
        f["types/twin"] = record  # equal, another named type
        f["types/record"].attrs["unit"] = "T"
        f.create_dataset("scan/data/records", data=np.array([(1, 2.5)], record),
                         dtype=f["types/record"])
        f.create_dataset("scan/data/twins", data=np.array([(2, 0.5)], record),
                         dtype=f["types/twin"])
        f["scan"].attrs.create("offset", (4, 1.5), dtype=f["types/twin"])
    assert main(["repair", str(path)]) == 0, capsys.readouterr().err
    with h5py.File(path, "r") as f:
        named = {name: _address(f[f"types/{name}"].id) for name in ("record", "twin")}
        assert named["record"] != named["twin"]
        assert sorted(f) == ["scan", "types"]  # no scratch name left
        records, twins = f["scan/data/records"], f["scan/data/twins"]
        for d, name in ((records, "record"), (twins, "twin")):
            kind = d.id.get_type()
            assert kind.committed() and _address(kind) == named[name], d.name
        offset = h5py.h5a.open(f["scan"].id, b"offset").get_type()
        assert offset.committed() and _address(offset) == named["twin"]
        assert records[()].tolist() == [(1, 2.5)] and twins[()].tolist() == [(2, 0.5)]
        assert f["scan"].attrs["offset"].tolist() == (4, 1.5)
        assert f["types/record"].attrs["unit"] == "T"
    if H5DUMP is not None:  # a C reader sees the link
        out = subprocess.run([H5DUMP, "-d", "/scan/data/records", str(path)],
                             capture_output=True, text=True)
        assert out.returncode == 0 and 'DATATYPE  "/types/record"' in out.stdout, out.stdout


def test_a_region_pointed_at_many_times_takes_no_more_room_in_the_copy_than_in_the_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """h5py writes one region reference given many times as one object of the file's heap,
    pointed at by each value: its copy was made anew for each value (about 64 bytes each),
    so that a log of regions of interest took many times its file's room, past the room
    reserved for the copy (its file's size and 4 MB), where the disk may have no more."""
    path = tmp_path / "s.h5"
    count = 5000
    with earlier_release(path) as f:
        target = f.create_dataset("scan/target", data=np.arange(100.0).reshape(10, 10))
        f.create_dataset("scan/rois", data=[target.regionref[2:5, 1:7]] * count,
                         dtype=h5py.regionref_dtype)
    size = path.stat().st_size
    assert main(["repair", str(path)]) == 0, capsys.readouterr().err
    assert path.stat().st_size < size + (64 << 10), (size, path.stat().st_size)
    with h5py.File(path, "r") as f:
        rois, target = f["scan/rois"][()], f["scan/target"]
        for roi in (rois[0], rois[-1]):
            assert f[roi].name == "/scan/target"
            np.testing.assert_array_equal(target[roi], np.arange(100.0).reshape(10, 10)[2:5, 1:7])
