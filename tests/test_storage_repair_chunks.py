"""A rebuild (`repair`) copies what a file holds and no more: each chunk written, raw, so a
chunk never written stays unwritten and reads as the fill value; every dataset with its type,
fill value, chunk shape and filters as they were. A dataset declaring more text than a session
file ever holds is refused, naming it, and the file is left as it was."""

from __future__ import annotations

import importlib.util
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from smm_daq.cli.main import main
from smm_daq.instruments.profile import load_profile
from smm_daq.storage import copying
from smm_daq.storage.h5file import LIBVER, make_extendable, repair, writing
from smm_daq.storage.identity import TOKEN
from smm_daq.storage.scan_entry import ScanEntryWriter

HUGE = (10**6, 10**6)  # 8 TB of f8 declared


def _chunks(d: h5py.Dataset) -> list[tuple[int, ...]]:
    return sorted(copying.allocated_chunks(d)) if d.chunks is not None else []


def _layout(d: h5py.Dataset) -> dict[str, object]:
    """Everything of a dataset a copy must keep, its stored chunks among it."""
    dcpl = d.id.get_create_plist()
    return {
        "type": d.id.get_type(),  # compared with TypeID.__eq__ (H5Tequal)
        "shape": d.shape, "maxshape": d.maxshape, "chunks": d.chunks,
        "filters": [dcpl.get_filter(i)[:3] for i in range(dcpl.get_nfilters())],
        "layout": dcpl.get_layout(),
        "fill": np.asarray(d.fillvalue).tobytes() if d.fillvalue is not None else None,
        "fill_time": dcpl.get_fill_time(),
        "attrs": {k: np.asarray(v).tobytes() for k, v in d.attrs.items()},
        "stored": _chunks(d) if d.chunks else d.id.get_storage_size() > 0,
    }


def _everything(path: Path, skip_values: frozenset[str] = frozenset()) -> dict[str, object]:
    """Every group's attributes and every dataset's layout (`_layout`) and raw bytes (not of
    those in `skip_values`), by path."""
    found: dict[str, object] = {}

    def visit(name: str, obj: h5py.HLObject) -> None:
        if isinstance(obj, h5py.Group):
            found[name] = {k: np.asarray(v).tobytes() for k, v in obj.attrs.items()}
            return
        found[name] = _layout(obj)
        if name not in skip_values:
            value = np.asarray(obj[()])
            found[name + "[]"] = value.tolist() if value.dtype.kind == "O" else value.tobytes()

    with h5py.File(path, "r") as f:
        f.visititems(visit)
        found["/"] = {k: v for k, v in f.attrs.items() if k != TOKEN}
    return found


def _partial_scan(path: Path, lines: int, written: int) -> None:
    x = np.arange(50) * 1e-5
    w = ScanEntryWriter.create(path, name="scan", title="partial", x=x,
                               y=np.arange(lines) * 1e-5, field=np.zeros(3), height=1e-4,
                               plan_text="{}", profile=load_profile(), snapshot={})
    row = np.linspace(0.0, 1e-6, x.size)
    for iy in range(written):
        w.write_line(iy, row, row, row, np.ones(x.size), np.arange(x.size, dtype=float))
    w.close()


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[int, ...]]]:
    """The dataset and offset of each chunk a rebuild writes, in order, as it writes them."""
    written: list[tuple[str, tuple[int, ...]]] = []
    copy = copying.copy_chunk

    def counted(src: h5py.h5d.DatasetID, dst: h5py.h5d.DatasetID,
                offset: tuple[int, ...]) -> None:
        written.append((h5py.h5i.get_name(src).decode(), offset))
        copy(src, dst, offset)

    monkeypatch.setattr(copying, "copy_chunk", counted)
    return written


def test_a_repaired_partial_scan_is_the_scan_with_its_unwritten_lines_unwritten(
        tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    _partial_scan(path, lines=12, written=5)
    before = _everything(path, skip_values=frozenset({"scan/status"}))
    with h5py.File(path, "r") as f:
        stored = {name: _chunks(f[name]) for name in ("scan/data/Bz", "scan/data/line_done")}
        assert 0 < len(stored["scan/data/Bz"]) < 12  # lines not written: chunks not stored
        assert f["scan/instrument/stage_x/value"].id == f["scan/data/x"].id
    repair(path)
    assert _everything(path, skip_values=frozenset({"scan/status"})) == before
    with h5py.File(path, "r") as f:
        assert {name: _chunks(f[name]) for name in stored} == stored
        assert np.isnan(f["scan/data/Bz"][5:]).all()
        assert f["scan/instrument/stage_x/value"].id == f["scan/data/x"].id  # one, two names


def _odd_datasets(f: h5py.File) -> None:
    """Datasets of every layout, type and filter a file may hold, each partly written."""
    g = f.create_group("odd")
    z = g.create_dataset("filtered", shape=(40, 30), chunks=(8, 10), dtype="<f4",
                         compression="gzip", compression_opts=7, shuffle=True,
                         fletcher32=True, fillvalue=-1.5, maxshape=(None, 30))
    z[3:9, :4] = 2.5
    g.create_dataset("scaled", data=np.arange(100, dtype="i4"), chunks=(16,),
                     scaleoffset=0)
    g.create_dataset("big_endian", data=np.arange(6.0).reshape(2, 3), dtype=">f8")
    g.create_dataset("compact", data=np.arange(5, dtype="u2"),
                     dcpl=_compact())
    g.create_dataset("never_written", shape=(1000, 1000), dtype="f8", fillvalue=7.0)
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(6)
    tid.set_strpad(h5py.h5t.STR_SPACEPAD)
    g.create_dataset("spaced", data=np.array([b"ab", b"cdefgh"]), dtype=h5py.Datatype(tid))
    g.create_dataset("text", data=["one", "two words"], dtype=h5py.string_dtype())


def _compact() -> h5py.h5p.PropDCID:
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_layout(h5py.h5d.COMPACT)
    return dcpl


def test_every_layout_type_and_filter_is_copied_as_it_was(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    path = tmp_path / "s.h5"
    _partial_scan(path, lines=4, written=1)
    with h5py.File(path, "a") as f:
        _odd_datasets(f)
    before = _everything(path, skip_values=frozenset({"scan/status"}))
    written = _counting(monkeypatch)
    repair(path)
    assert _everything(path, skip_values=frozenset({"scan/status"})) == before
    with h5py.File(path, "r") as f:
        assert f["odd/never_written"].id.get_storage_size() == 0
        assert f["odd/never_written"][0, 0] == 7.0
        assert f["odd/filtered"].fletcher32 and f["odd/filtered"][0, 0] == -1.5
        assert f["odd/compact"].id.get_create_plist().get_layout() == h5py.h5d.COMPACT
    assert [o for name, o in written if name == "/odd/filtered"] == [(0, 0), (8, 0)]


def _earlier_release(path: Path, make: Callable[[h5py.File], object]) -> None:
    """A file of an earlier release (one a repair rewrites) with what `make` makes in it."""
    with h5py.File(path, "w", libver="latest") as f:
        f.attrs["creator"] = "smm-daq 0.1.0"
        f.create_dataset("scan/data/line_done", data=np.array([True, False]))
        make(f)


def _sparse(f: h5py.File) -> None:
    """A dataset of 10⁶ x 10⁶ f8 under an entry, three of its chunks written."""
    d = f.create_dataset("scan/data/sparse", shape=HUGE, chunks=(1000, 1000), dtype="f8",
                         compression="gzip", fillvalue=np.nan)
    d[0, :3] = 1.0
    d[1500, 2500] = 2.0
    d[HUGE[0] - 1, HUGE[1] - 1] = 3.0


def test_a_huge_sparse_dataset_is_repaired_by_copying_its_three_chunks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "huge.h5"
    _earlier_release(path, _sparse)
    written = _counting(monkeypatch)
    assert main(["repair", str(path)]) == 0
    assert "rewritten in the HDF5 1.10 format" in capsys.readouterr().out
    sparse = sorted(o for name, o in written if name == "/scan/data/sparse")
    assert sparse == [(0, 0), (1000, 2000), (999000, 999000)]
    with h5py.File(path, "r") as f:
        d = f["scan/data/sparse"]
        assert (d.shape, d.chunks, d.compression) == (HUGE, (1000, 1000), "gzip")
        assert sorted(copying.allocated_chunks(d)) == sparse
        np.testing.assert_array_equal(d[0, :4], [1.0, 1.0, 1.0, np.nan])
        assert d[1500, 2500] == 2.0 and d[-1, -1] == 3.0 and np.isnan(d[500_000, 7])


def test_a_huge_text_dataset_is_refused_naming_it_and_the_file_is_left_as_it_was(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "huge.h5"
    _earlier_release(path, lambda f: f.create_dataset("scan/title", shape=HUGE, dtype="S1"))
    before = path.read_bytes()
    assert main(["repair", str(path)]) == 2
    err = capsys.readouterr().err
    assert "dataset '/scan/title'" in err and "1000000x1000000" in err, err
    assert str(path) in err and "Traceback" not in err
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.h5"]


def _needing_a_missing_filter(path: Path) -> None:
    """An earlier release's file holding a chunk stored through filter 300, which no HDF5
    here has, as a file written where its plugin was installed: HDF5 makes no dataset with a
    required filter it lacks, so the filter is set optional, then made required in the bytes
    (an "earliest" format file: its headers carry no checksums)."""
    with h5py.File(path, "w", libver="earliest") as f:
        f.attrs["creator"] = "smm-daq 0.1.0"
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((4,))
        dcpl.set_filter(300, h5py.h5z.FLAG_OPTIONAL, (7,))
        d = f.create_dataset("scan/data/packed", shape=(8,), dtype="u1", dcpl=dcpl)
        d.id.write_direct_chunk((0,), b"\x01\x02\x03\x04", 0)
    optional = struct.pack("<HHHH", 300, 0, h5py.h5z.FLAG_OPTIONAL, 1)  # id, name, flags, n
    raw = path.read_bytes()
    assert raw.count(optional) == 1
    path.write_bytes(raw.replace(optional, struct.pack("<HHHH", 300, 0, 0, 1)))


def test_a_dataset_needing_a_filter_hdf5_lacks_is_refused_naming_it_not_called_damaged(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "packed.h5"
    _needing_a_missing_filter(path)
    with h5py.File(path, "r") as f:
        assert f["scan/data/packed"].id.get_create_plist().get_filter(0)[:2] == (300, 0)
    before = path.read_bytes()
    assert main(["repair", str(path)]) == 2
    err = capsys.readouterr().err
    assert "dataset '/scan/data/packed'" in err and "filter 300" in err, err
    assert "plugin" in err and "damaged" not in err and "Traceback" not in err, err
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["packed.h5"]


def _records(f: h5py.File) -> None:
    """Compound and array datasets, numbers, a boolean and text among their members."""
    kinds = np.dtype([("ok", "?"), ("v", "<f4", (3,)), ("n", "S4"),
                      ("inner", [("a", ">i2"), ("b", "<f8")])])
    values = np.zeros(5, kinds)
    values["ok"][1], values["n"][2], values["inner"]["a"][3] = True, b"abc", -7
    f.create_dataset("scan/data/records", data=values, chunks=(2,), compression="gzip")
    f.create_dataset("scan/data/pairs", data=np.ones(4, [("x", "<f4"), ("y", "<i2")]))
    tid = h5py.h5t.array_create(h5py.h5t.STD_I16LE, (2,))
    f.create_dataset("scan/data/arrays", shape=(3,), dtype=h5py.Datatype(tid))


def _encoding(d: h5py.Dataset) -> int:
    """The version of the datatype message `d`'s type is written with (H5Tencode's third
    byte: class and version): HDF5 1.10 reads versions 1 to 3."""
    return d.id.get_type().encode()[2] >> 4


def test_a_compound_dataset_of_a_newer_format_is_rewritten_so_hdf5_1_10_reads_it(
        tmp_path: Path) -> None:
    path = tmp_path / "records.h5"
    _earlier_release(path, _records)
    names = ("scan/data/records", "scan/data/pairs", "scan/data/arrays")
    with h5py.File(path, "r") as f:
        before = {name: (f[name].id.get_type(), f[name][()].tobytes()) for name in names}
        assert max(_encoding(f[name]) for name in names) > 3  # as a newer HDF5 wrote it
    repair(path)
    with h5py.File(path, "r") as f:
        for name in names:
            assert (f[name].id.get_type(), f[name][()].tobytes()) == before[name], name
            assert _encoding(f[name]) <= 3, name
    if shutil.which("h5dump"):  # an HDF5 tool of another release, where one is installed
        done = subprocess.run(["h5dump", "-H", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


def _odd_float(f: h5py.File) -> None:
    """A chunked dataset of 3-byte floats (as another program may write): numpy has no
    such type, and reads it as float32."""
    tid = h5py.h5t.IEEE_F64LE.copy()
    tid.set_fields(23, 16, 7, 0, 16)
    tid.set_precision(24)
    tid.set_size(3)
    tid.set_ebias(63)
    d = f.create_dataset("scan/data/small", shape=(10,), chunks=(4,),
                         dtype=h5py.Datatype(tid))
    d[:] = np.arange(10.0)


def test_a_number_type_numpy_does_not_have_is_copied_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "small.h5"
    _earlier_release(path, _odd_float)
    with h5py.File(path, "r") as f:
        d = f["scan/data/small"]
        before = (d.id.get_type(), d[()].tobytes(), [d.id.read_direct_chunk(o)[1]
                                                     for o in copying.allocated_chunks(d)])
    repair(path)
    with h5py.File(path, "r") as f:
        d = f["scan/data/small"]
        assert (d.id.get_type(), d[()].tobytes(), [d.id.read_direct_chunk(o)[1] for o in
                                                   copying.allocated_chunks(d)]) == before
        np.testing.assert_array_equal(d[()], np.arange(10.0))


WITH_A_PLUGIN_FILTER = """
import sys
import h5py, hdf5plugin, numpy as np
with h5py.File(sys.argv[1], "w", libver="earliest") as f:
    f.attrs["creator"] = "smm-daq 0.1.0"
    f.create_dataset("scan/data/zstd", data=np.arange(1000.0), chunks=(100,),
                     **hdf5plugin.Zstd(clevel=5))
    f.create_dataset("scan/data/gzip", data=np.arange(1000.0), chunks=(100,),
                     compression="gzip", shuffle=True)
"""

REPAIRED_WITHOUT_IT = "import sys; from smm_daq.storage.h5file import repair; repair(sys.argv[1])"

# The filters as the file names them, read where no plugin is loaded (HDF5 names a filter the
# file leaves unnamed after the one registered in the process, where there is one).
FILTERS_AS_STORED = """
import sys
import h5py
with h5py.File(sys.argv[1], "r") as f:
    for name in ("scan/data/zstd", "scan/data/gzip"):
        dcpl = f[name].id.get_create_plist()
        print(name, [dcpl.get_filter(i) for i in range(dcpl.get_nfilters())])
"""

READ_THROUGH_IT = """
import sys
import h5py, hdf5plugin, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    for name in ("scan/data/zstd", "scan/data/gzip"):
        np.testing.assert_array_equal(f[name][()], np.arange(1000.0))
"""


def test_a_repair_keeps_each_filters_name_also_of_one_this_hdf5_lacks(tmp_path: Path) -> None:
    """A dataset written through a plugin's filter (zstd, marked optional) and repaired by a
    process that has not loaded the plugin: the copy names the filter as the file did
    (h5py's filter pipeline, h5dump's COMMENT), its values unchanged. Each step in a process
    of its own: none but the writer and the last reader loads the plugin."""
    if importlib.util.find_spec("hdf5plugin") is None:
        pytest.skip("hdf5plugin is not installed")
    path = tmp_path / "s.h5"
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get(
        "PYTHONPATH", "")]))

    def run(script: str) -> str:
        return subprocess.run([sys.executable, "-c", script, str(path)], check=True, env=env,
                              capture_output=True, text=True, timeout=120).stdout

    run(WITH_A_PLUGIN_FILTER)
    before = run(FILTERS_AS_STORED)
    assert "zstd filter" in before and "deflate" in before and "shuffle" in before, before
    run(REPAIRED_WITHOUT_IT)
    assert run(FILTERS_AS_STORED) == before
    h5dump = shutil.which("h5dump")
    if h5dump is not None:
        shown = subprocess.run([h5dump, "-p", "-H", "-d", "scan/data/zstd", str(path)],
                               capture_output=True, text=True, timeout=60).stdout
        assert "FILTER_ID 32015" in shown and "COMMENT HDF5 zstd filter" in shown, shown
    run(READ_THROUGH_IT)


def test_a_long_1d_dataset_made_extendable_gets_chunks_of_its_size_and_its_values(
        tmp_path: Path) -> None:
    """A dataset made extendable is chunked by its size: a short one (a log of a few runs)
    in one chunk of the scan's own logs' length, a long one in chunks of 64 KiB, not 16
    elements each (10⁶ values: 62,500 chunks, each an entry of its index and a read); text
    of any length (a run log's start times) in 64 KiB of its file's 16 bytes an element,
    not of its pointers' 8."""
    path = tmp_path / "s.h5"
    long = np.random.default_rng(1).normal(size=10**6)
    times = np.array([f"2026-12-06T21:{i % 60:02d}:00Z".encode() for i in range(5000)],
                     dtype="S64")
    with writing(path) as f:
        f["long"] = long
        f["short"] = np.arange(3, dtype="i4")
        f["times"] = times
        f.create_dataset("notes", data=times.astype(str).astype(object),
                         dtype=h5py.string_dtype())
    make_extendable(path, ["/long", "/short", "/times", "/notes"])
    with h5py.File(path, "r") as f:
        chunks = {name: f[name].chunks for name in ("long", "short", "times", "notes")}
        assert chunks == {"long": (8192,), "short": (16,), "times": (1024,),
                          "notes": (4096,)}, chunks
        assert all(f[name].maxshape == (None,) for name in chunks)
        assert f["long"].id.get_num_chunks() == -(-10**6 // 8192)
        np.testing.assert_array_equal(f["long"][()], long)
        np.testing.assert_array_equal(f["short"][()], [0, 1, 2])
        np.testing.assert_array_equal(f["times"][()], times)
        np.testing.assert_array_equal(f["notes"][()], times)


def _allocated(f: h5py.File) -> int:
    """Bytes HDF5 has allocated in the open file: its size less its free space."""
    f.flush()
    return f.id.get_filesize() - f.id.get_freespace()


def _index_bytes(src: h5py.Dataset, tmp: Path, monkeypatch: pytest.MonkeyPatch,
                 extendable: bool = False) -> int:
    """What the index of the chunks of `src`'s copy really takes, as HDF5 allocates it: what
    the copy adds to a fresh file beyond its chunks, less what it adds with none stored."""
    added = []
    for stored in (False, True):
        with monkeypatch.context() as m, h5py.File(tmp, "w", libver=LIBVER) as dst:
            if not stored:
                m.setattr(copying, "copy_chunk", lambda *args: None)
                m.setattr(copying, "_copy_block", lambda *args: None)
            before = _allocated(dst)
            new = copying.copy_dataset(src, dst, "d", source=str(tmp), extendable=extendable)
            added.append(_allocated(dst) - before - new.id.get_storage_size())
    return added[1] - added[0]


def _index_layouts(f: h5py.File) -> set[str]:
    """Datasets of each chunk index a copy makes (fixed and extensible arrays, paged or
    not, filtered or not); the names of those made extendable."""
    g = f.create_group("layouts")
    paged = g.create_dataset("paged", shape=(3000, 50), chunks=(1, 50), dtype="f8")
    paged[7] = 1.0  # one chunk stored: the array is allocated whole
    g.create_dataset("gzip", data=np.ones((200, 50)), chunks=(1, 50), compression="gzip")
    g.create_dataset("log", data=np.arange(4000.0), maxshape=(None,), chunks=(16,))
    g.create_dataset("log_gzip", data=np.arange(5000.0), maxshape=(None,), chunks=(16,),
                     compression="gzip")
    g.create_dataset("rows", data=np.ones((3, 3)), maxshape=(None, 3), chunks=(16, 3))
    g.create_dataset("long", data=np.arange(10**5, dtype="f8"))
    g.create_dataset("names", data=np.array([b"x"] * 5000, dtype="S64"))
    return {"/layouts/long", "/layouts/names"}


def test_the_room_a_copys_chunk_indexes_take_is_reserved_at_least_and_no_more_than_120_pct(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebuild reserves the room of the chunk indexes its copy writes (`index_room`): at
    least what they take, and within a fifth of it, on a small scan, several scans and a
    dataset of each index layout. It reserved 4 kB more per chunked dataset and twice an
    extensible array's entries: 15 times the truth for a scan of 20 lines (a scan entry has
    a dozen chunked datasets), 10 times for a file of twenty scans."""
    path = tmp_path / "s.h5"
    _partial_scan(path, lines=20, written=12)
    for i in range(3):
        ScanEntryWriter.create(path, name=f"more{i}", title="t", x=np.arange(30) * 1e-5,
                               y=np.arange(40) * 1e-5, field=np.zeros(3), height=1e-4,
                               plan_text="{}", profile=load_profile(), snapshot={}).close()
    with h5py.File(path, "a") as f:
        extendable = _index_layouts(f)
    found: dict[str, tuple[int, int]] = {}
    with h5py.File(path, "r") as f:
        def visit(name: str, obj: h5py.HLObject) -> None:
            if isinstance(obj, h5py.Dataset):
                chosen = obj.name in extendable
                found[name] = (copying.index_room(obj, extendable=chosen),
                               _index_bytes(obj, tmp_path / "copy.h5", monkeypatch, chosen))
        f.visititems(visit)
    indexed = {name: pair for name, pair in found.items() if pair[1]}
    assert len(indexed) > 30 and {"layouts/paged", "layouts/long"} <= set(indexed)
    wrong = {name: pair for name, pair in found.items()
             if not pair[1] <= pair[0] <= 1.2 * pair[1]}
    assert not wrong, f"(reserved, taken): {wrong}"


def test_the_room_of_a_sparse_chunk_index_is_never_less_than_it_takes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A B-tree (two axes unlimited) and an extensible array with only its last chunk
    stored: never short (a B-tree's nodes counted half full)."""
    path = tmp_path / "s.h5"
    with h5py.File(path, "w", libver=LIBVER) as f:
        grid = f.create_dataset("grid", shape=(400, 400), maxshape=(None, None),
                                chunks=(10, 10), dtype="f8")
        grid[:] = 1.0
        last = f.create_dataset("last", shape=(10**5,), maxshape=(None,), chunks=(16,),
                                dtype="f8")
        last[-1] = 1.0
        for d in (grid, last):
            taken = _index_bytes(d, tmp_path / "copy.h5", monkeypatch)
            assert 0 < taken <= copying.index_room(d), d.name


def _sparse_indexes(f: h5py.File) -> None:
    """Datasets whose chunk index holds few chunks of many: extensible arrays (one axis
    unlimited, the first) with chunks stored at their start, at their end, here and there,
    filtered, along a grid; a B-tree (two axes unlimited) whose chunks fit one node."""
    def log(name: str, shape: tuple[int, ...], chunks: tuple[int, ...],
            **kw: object) -> h5py.Dataset:
        return f.create_dataset(name, shape=shape, maxshape=(None, *shape[1:]),
                                chunks=chunks, dtype="f8", **kw)

    log("first", (10**5,), (16,))[0] = 1.0
    log("last", (10**5,), (16,))[-1] = 1.0
    log("here_and_there", (10**6,), (16,))[::99_991] = 1.0
    log("filtered", (10**5,), (16,), compression="gzip")[50_000] = 1.0
    grid = log("grid", (3000, 30, 40), (6, 5, 4))
    for point in ((5, 7, 39), (1500, 0, 0), (2999, 29, 3)):
        grid[point] = 1.0
    f.create_dataset("few", shape=(400, 400), maxshape=(None, None), chunks=(10, 10),
                     dtype="f8")[::50, ::50] = 1.0


@pytest.mark.parametrize("name", ["first", "last", "here_and_there", "filtered", "grid",
                                  "few"])
def test_the_room_of_a_sparse_chunk_index_is_what_it_takes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """HDF5 allocates an extensible array's blocks of entries as chunks indexed in them are
    stored, and a B-tree of few chunks is one node: counted as if every chunk up to the last
    were stored, and the B-tree's nodes half full, a log of 6250 chunks with its first alone
    stored was reserved 143 times what its index takes (52730 bytes for 370), one with 11
    chunks of 62500 8 times, the grid 27 times, the B-tree 3 times."""
    path = tmp_path / "s.h5"
    with h5py.File(path, "w", libver=LIBVER) as f:
        _sparse_indexes(f)
    with h5py.File(path, "r") as f:
        d = f[name]
        taken = _index_bytes(d, tmp_path / "copy.h5", monkeypatch)
        assert copying.index_room(d) == taken > 0


def _chunk_regions(d: h5py.Dataset) -> list[tuple[slice, ...]]:
    """The regions of the chunks `d`'s file holds."""
    return [tuple(slice(o, min(o + c, n))
                  for o, c, n in zip(offset, d.chunks, d.shape, strict=True))
            for offset in copying.allocated_chunks(d)]


def _index_bytes_through_memory(src: h5py.Dataset, tmp: Path) -> int:
    """`_index_bytes` of a dataset of variable-length text, which its copy writes through
    memory: what the copy adds to a fresh file beyond its chunks, less what the values of
    those chunks take written to a contiguous dataset (their heap) beyond its own storage."""
    added = []
    for chunked in (True, False):
        with h5py.File(tmp, "w", libver=LIBVER) as dst:
            before = _allocated(dst)
            if chunked:
                new = copying.copy_dataset(src, dst, "d", source=str(tmp))
            else:
                new = dst.create_dataset("d", shape=src.shape, dtype=src.dtype)
                for region in _chunk_regions(src):
                    new[region] = src[region]
            added.append(_allocated(dst) - before - new.id.get_storage_size())
    return added[0] - added[1]


def _short_before(f: h5py.File) -> None:
    """Datasets whose copy's chunk index was reserved less room than it takes: one chunk
    larger than its fixed shape, or of a shape that may grow to it (a fixed array of one
    entry, not a single chunk), text filtered (a stored size counted in its memory bytes, a
    pointer each, not its file's), text in a B-tree with few chunks stored (the copy writes
    every chunk); and one that is a single chunk, which takes none."""
    f.create_dataset("wider_chunk", shape=(10,), maxshape=(16,), chunks=(16,), dtype="f8")[:] = 1
    f.create_dataset("may_grow", shape=(5, 10), maxshape=(10, 10), chunks=(10, 10),
                     dtype="f8")[:] = 1
    f.create_dataset("single", shape=(16,), chunks=(16,), dtype="f8")[:] = 1
    text = h5py.string_dtype()
    f.create_dataset("text_gzip", shape=(16 * 300,), chunks=(16,), dtype=text,
                     compression="gzip")[:] = "abc"
    f.create_dataset("text_grid", shape=(100, 100), maxshape=(None, None), chunks=(10, 10),
                     dtype=text)[:10, :10] = "x"


@pytest.mark.parametrize("name", ["wider_chunk", "may_grow", "single", "text_gzip",
                                  "text_grid"])
def test_the_room_of_a_chunk_index_is_never_short_for_one_chunk_or_text(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """A rebuild reserves no less than the chunk index of each dataset's copy takes: a
    repair that runs out of room part-way fails there."""
    path = tmp_path / "s.h5"
    with h5py.File(path, "w", libver=LIBVER) as f:
        _short_before(f)
    with h5py.File(path, "r") as f:
        d = f[name]
        taken = (_index_bytes_through_memory(d, tmp_path / "copy.h5")
                 if d.dtype.kind == "O" else _index_bytes(d, tmp_path / "copy.h5", monkeypatch))
        reserved = copying.index_room(d)
        btree = d.maxshape.count(None) > 1
    assert taken <= reserved, f"reserved {reserved} bytes, the index takes {taken}"
    if not btree:  # an array: counted exactly (a B-tree's nodes half full)
        assert reserved == taken, f"reserved {reserved} bytes, the index takes {taken}"
    assert (taken == 0) is (name == "single")


def test_a_sparse_text_dataset_is_copied_chunk_by_chunk_its_unwritten_chunks_unwritten(
        tmp_path: Path) -> None:
    """Text is copied through memory, but only the chunks its file holds: copied whole, a
    grid of text with one chunk written took every chunk of its shape and a heap object for
    each value, far past the room a rebuild reserves (its file's size and 4 MB)."""
    with h5py.File(tmp_path / "s.h5", "w", libver=LIBVER) as f:
        grid = f.create_dataset("grid", shape=(400, 400), maxshape=(None, None),
                                chunks=(10, 10), dtype=h5py.string_dtype(), fillvalue=b"-")
        grid[10:20, 390:400] = "written"
        grid[395, 5] = "one"
        grid[399, 399] = "last"
        with h5py.File(tmp_path / "copy.h5", "w", libver=LIBVER) as dst:
            new = copying.copy_dataset(grid, dst, "grid", source="s.h5")
            assert _chunks(new) == _chunks(grid) == [(10, 390), (390, 0), (390, 390)]
            assert new.fillvalue == grid.fillvalue
            np.testing.assert_array_equal(new[()], grid[()])


def _fixed_text(size: int, cset: int, pad: int) -> h5py.Datatype:
    """Fixed-length text of `size` bytes, its character set and padding as given."""
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(size)
    tid.set_cset(cset)
    tid.set_strpad(pad)
    return h5py.Datatype(tid)


def _text_of_every_kind(f: h5py.File) -> None:
    """Text of every kind a file may hold: variable-length UTF-8 and ASCII (empty, non-ASCII,
    64 KiB long), fixed-length (NUL bytes in it; null-padded, -terminated, space-padded;
    ASCII and UTF-8), scalar and empty; in 1 to 3 dimensions, chunked plain and filtered,
    sparse, with a fill value or none, the last chunk partial; resized after writing; in a
    compound; each with attributes."""
    h5t = h5py.h5t
    utf8, ascii_ = h5py.string_dtype("utf-8"), h5py.string_dtype("ascii")
    fixed_utf8 = h5py.string_dtype("utf-8", 6)
    f["utf8"] = np.array(["a", "é", "", "日本", "x" * 65536], dtype=utf8)
    f["ascii"] = np.array([b"a", b"\xff\xfe", b"", b"y" * 65536], dtype=ascii_)
    f.create_dataset("scalar", data="scalaire é", dtype=utf8)
    f.create_dataset("empty", shape=(0,), dtype=utf8)
    f.create_dataset("empty_chunked", shape=(0, 3), maxshape=(None, 3), chunks=(4, 3),
                     dtype=ascii_)
    f["nul"] = np.array([b"a\x00b", b"\x00\x00", b"abc"], dtype="S3")
    f["fixed_utf8"] = np.array(["é".encode(), b"xy"], dtype=h5py.string_dtype("utf-8", 4))
    f["fixed_scalar"] = np.bytes_(b"hello")
    f.create_dataset("fixed_empty", shape=(0, 2), dtype="S4")
    for pad in (h5t.STR_NULLTERM, h5t.STR_SPACEPAD):
        f.create_dataset(f"pad{pad}", data=np.array([b"ab", b"abcd"]),
                         dtype=_fixed_text(5, h5t.CSET_ASCII, pad))
    for shape, chunks in (((37,), (8,)), ((13, 11), (4, 5)), ((5, 6, 7), (2, 4, 3))):
        for kind, dtype, value in (("utf8", utf8, "é1"), ("ascii", ascii_, b"\xff1"),
                                   ("fixed", fixed_utf8, "é1".encode())):
            for filtered in (False, True):
                filters = ({"compression": "gzip", "shuffle": True,
                            "fletcher32": kind == "fixed"} if filtered else {})
                d = f.create_dataset(
                    f"{kind}_{len(shape)}d{'_gzip' if filtered else ''}", shape=shape,
                    chunks=chunks, dtype=dtype, maxshape=(None,) * len(shape),
                    fillvalue=np.array(b"FILL", dtype=dtype) if filtered else None, **filters)
                d[tuple(slice(0, c) for c in chunks)] = np.full(chunks, value, dtype=dtype)
                d[tuple(n - 1 for n in shape)] = np.array(value, dtype=dtype)  # partial
                d.attrs["note"] = "é"
                d.attrs["names"] = np.array([b"a", b"bcd"], dtype="S5")
    resized = f.create_dataset("resized", shape=(10,), maxshape=(None,), chunks=(4,),
                               dtype=utf8, fillvalue="-")
    resized[:] = [f"v{i}" for i in range(10)]
    resized.resize((6,))
    resized.resize((15,))
    resized[14] = "new"
    record = np.dtype([("name", utf8), ("code", "S4"), ("value", "<f8"), ("raw", ascii_)])
    records = f.create_dataset("records", shape=(20,), chunks=(6,), dtype=record,
                               compression="gzip")
    records[0] = ("n0", b"c0", 1.0, b"a0")
    records[19] = ("n19é", b"c19", 2.0, b"\xffa")
    records.attrs["units"] = "é"


def _same(a: object, b: object) -> bool:
    """Whether two values h5py read are equal, in type and shape too (compounds field by
    field: their text fields hold objects)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.names:
        return all(_same(a[name], b[name]) for name in a.dtype.names)
    return bool(np.array_equal(a, b))


def test_text_of_every_kind_is_repaired_to_the_same_type_values_fill_and_chunks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A repair keeps text of every kind as it was: its type (length, character set,
    padding), values, fill value, filters and attributes, and the chunks its file holds
    only; its chunk index within the room reserved. Copied whole, a sparse text dataset
    took every chunk of its shape, and one with a fill value was not copied at all (HDF5
    reads its unwritten chunks only from a file open for writing)."""
    path, before = tmp_path / "s.h5", tmp_path / "before.h5"
    with h5py.File(path, "w", libver=LIBVER) as f:
        _text_of_every_kind(f)
    with h5py.File(path, "r") as f:
        short = {}
        for name, d in f.items():
            if d.chunks is None:
                continue
            taken = (_index_bytes_through_memory(d, tmp_path / "copy.h5")
                     if copying._needs_memory(d.id.get_type())
                     else _index_bytes(d, tmp_path / "copy.h5", monkeypatch))
            if taken > copying.index_room(d):
                short[name] = (copying.index_room(d), taken)
    assert not short, f"(reserved, taken): {short}"
    shutil.copyfile(path, before)
    repair(path)
    with h5py.File(before, "r+") as old, h5py.File(path, "r+") as new:  # r+: see above
        assert sorted(new) == sorted(old)
        for name, d in old.items():
            copy = new[name]
            assert copy.id.get_type() == d.id.get_type(), name  # H5Tequal
            was, now = d.id.get_create_plist(), copy.id.get_create_plist()
            assert ((copy.shape, copy.maxshape, copy.chunks, copy.compression, copy.shuffle,
                     copy.fletcher32, now.fill_value_defined(), now.get_fill_time())
                    == (d.shape, d.maxshape, d.chunks, d.compression, d.shuffle,
                        d.fletcher32, was.fill_value_defined(), was.get_fill_time())), name
            assert _same(copy.fillvalue, d.fillvalue), name
            assert _chunks(copy) == _chunks(d), name
            assert _same(copy[()], d[()]), name
            assert sorted(copy.attrs) == sorted(d.attrs), name
            assert all(_same(copy.attrs[k], v) for k, v in d.attrs.items()), name
        assert new["utf8"][4] == b"x" * 65536 and new["fixed_utf8"][0] == "é".encode()
        assert new["utf8_2d_gzip"][12, 10] == b"\xc3\xa91"
        assert new["utf8_2d_gzip"][5, 0] == b"FILL" and new["utf8_2d"][5, 0] == b""
        assert _chunks(new["ascii_3d"]) == [(0, 0, 0), (4, 4, 6)]
        assert new["resized"][()].tolist() == [b"v0", b"v1", b"v2", b"v3", b"v4", b"v5",
                                               *[b"-"] * 8, b"new"]


@pytest.mark.parametrize("fill", [None, ""])
def test_a_text_chunk_written_in_part_is_repaired_into_no_more_room_than_it_took(
        tmp_path: Path, fill: str | None) -> None:
    """Text that reads as the fill value is left to it: written through memory, each value
    of a chunk never written (no object of the file's heap) took 16 bytes of heap, and with
    an empty fill value each took the fill's object and its own, so a chunk compressed to a
    few kB took megabytes, past the room a repair reserves (the file's size and 4 MB)."""
    path = tmp_path / "s.h5"
    with h5py.File(path, "w", libver=LIBVER) as f:
        d = f.create_dataset("log", shape=(400, 400), chunks=(200, 200), compression="gzip",
                             dtype=h5py.string_dtype(), fillvalue=fill)
        d[0, :3] = ["first", "", "-"]
        d[399, 399] = "é last"
    before = path.stat().st_size
    shutil.copyfile(path, tmp_path / "before.h5")
    repair(path)
    assert path.stat().st_size <= before + 4096, (before, path.stat().st_size)
    with h5py.File(tmp_path / "before.h5", "r+") as old, h5py.File(path, "r+") as new:
        assert _chunks(new["log"]) == _chunks(old["log"]) == [(0, 0), (200, 200)]
        assert new["log"].fillvalue == old["log"].fillvalue
        np.testing.assert_array_equal(new["log"][()], old["log"][()])
        assert new["log"][0, :4].tolist() == [b"first", b"", b"-", b""]
