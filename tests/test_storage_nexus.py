"""Map entries: round trip, NeXus layout for general viewers, clear errors, crash repair."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from smm_daq.errors import InputError
from smm_daq.storage.h5file import marked_open, repair
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import list_entries, read_map, write_map_entry


def _map(name: str = "induced", ny: int = 4, nx: int = 5, **kw: object) -> MapData:
    rng = np.random.default_rng(1)
    bz = rng.normal(size=(ny, nx)) * 1e-6
    bz[0, 0] = np.nan
    return MapData(
        bz=bz,
        x=np.arange(nx) * 2e-6 + 1e-3,
        y=np.arange(ny) * 3e-6 - 1e-3,
        height=100e-6,
        sensor_size=(30e-6, 20e-6),
        applied_field=np.array([0.0, 40e-6, 0.0]),
        name=name,
        title="a title",
        sources=("scan_b", "scan_a"),
        **kw,
    )


def test_round_trip_keeps_every_field(tmp_path):
    path = tmp_path / "s.h5"
    m = _map()
    assert write_map_entry(path, m, kind="induced") == "induced"
    back = read_map(path, "induced")
    np.testing.assert_array_equal(back.bz, m.bz)  # NaN where not measured stays NaN
    np.testing.assert_array_equal(back.x, m.x)
    np.testing.assert_array_equal(back.y, m.y)
    assert back.height == m.height
    assert back.sensor_size == m.sensor_size
    np.testing.assert_array_equal(back.applied_field, m.applied_field)
    assert (back.name, back.title, back.sources) == ("induced", "a title", ("scan_b", "scan_a"))


def test_optional_geometry_may_be_absent(tmp_path):
    path = tmp_path / "s.h5"
    m = MapData(bz=np.zeros((2, 3)), x=np.arange(3.0), y=np.arange(2.0), name="bare")
    write_map_entry(path, m, kind="import")
    back = read_map(path, "bare")
    assert back.height is None and back.sensor_size is None and back.applied_field is None
    assert back.sources == ()


def test_layout_is_nexus_with_units_and_plot_attributes(tmp_path):
    path = tmp_path / "s.h5"
    write_map_entry(path, _map(), kind="induced")
    with h5py.File(path, "r") as f:
        assert f.attrs["NX_class"] == "NXroot"
        assert f.attrs["default"] == "induced"
        e = f["induced"]
        assert e.attrs["NX_class"] == "NXentry"
        assert e.attrs["default"] == "data"
        assert e.attrs["kind"] == "induced"
        d = e["data"]
        assert d.attrs["NX_class"] == "NXdata"
        assert d.attrs["signal"] == "Bz"
        assert list(d.attrs["axes"]) == ["y", "x"]
        assert d["Bz"].attrs["units"] == "T"
        assert d["x"].attrs["units"] == "m" and d["y"].attrs["units"] == "m"
        assert e["instrument"].attrs["NX_class"] == "NXinstrument"
        assert e["instrument/sensor"].attrs["NX_class"] == "NXsensor"
        assert e["instrument/sensor/height"].attrs["units"] == "m"
        assert e["sample/magnetic_field"].attrs["units"] == "T"
        assert e["sample"].attrs["NX_class"] == "NXsample"
        assert e["status"].asstr()[()] == "finished"
        assert e["program_name"].asstr()[()] == "smm-daq"


def test_existing_entry_is_refused_unless_overwrite(tmp_path):
    path = tmp_path / "s.h5"
    write_map_entry(path, _map(), kind="induced")
    with pytest.raises(InputError, match="'induced' already exists"):
        write_map_entry(path, _map(), kind="induced")
    replacement = _map().with_bz(np.ones((4, 5)))
    write_map_entry(path, replacement, kind="induced", overwrite=True)
    np.testing.assert_array_equal(read_map(path, "induced").bz, np.ones((4, 5)))


def test_other_entries_are_untouched(tmp_path):
    path = tmp_path / "s.h5"
    first = _map("first")
    write_map_entry(path, first, kind="scan")
    write_map_entry(path, _map("second"), kind="induced")
    np.testing.assert_array_equal(read_map(path, "first").bz, first.bz)


def test_extra_datasets_are_stored_under_the_entry(tmp_path):
    path = tmp_path / "s.h5"
    extra = {
        "results/shift_m": np.array([1e-6, -2e-6]),
        "results/registered": True,
        "note": "hello",
        "results/count": 3,
    }
    write_map_entry(path, _map(), kind="induced", extra=extra)
    with h5py.File(path, "r") as f:
        e = f["induced"]
        np.testing.assert_array_equal(e["results/shift_m"][()], [1e-6, -2e-6])
        assert bool(e["results/registered"][()]) is True
        assert e["note"].asstr()[()] == "hello"
        assert int(e["results/count"][()]) == 3


def test_extra_of_an_unstorable_type_is_refused_and_nothing_is_left(tmp_path):
    path = tmp_path / "s.h5"
    write_map_entry(path, _map("first"), kind="induced")
    with pytest.raises(InputError, match="extra 'bad'"):
        write_map_entry(path, _map(), kind="induced", extra={"bad": object()})
    with pytest.raises(InputError, match="extra 'bad'"):
        write_map_entry(path, _map("first"), kind="induced", extra={"bad": object()},
                        overwrite=True)
    with h5py.File(path, "r") as f:
        assert list(f) == ["first"] and f.attrs["default"] == "first"
    np.testing.assert_array_equal(read_map(path, "first").bz, _map("first").bz)


@pytest.mark.parametrize("name", ["", "a/b", "."])
def test_unusable_entry_names_are_refused(tmp_path, name):
    with pytest.raises(InputError, match="entry name"):
        write_map_entry(tmp_path / "s.h5", _map(name), kind="induced")


def test_missing_entry_names_file_and_entry(tmp_path):
    path = tmp_path / "s.h5"
    write_map_entry(path, _map("one"), kind="induced")
    with pytest.raises(InputError) as err:
        read_map(path, "two")
    assert str(path) in str(err.value) and "'two'" in str(err.value) and "'one'" in str(err.value)


def test_entry_without_a_map_names_file_and_entry(tmp_path):
    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        f.create_group("empty").attrs["NX_class"] = "NXentry"
        g = f.create_group("bad")
        g.create_dataset("data/Bz", data=np.zeros((3, 3)))
        g.create_dataset("data/x", data=np.zeros(2))
        g.create_dataset("data/y", data=np.zeros(3))
    with pytest.raises(InputError, match=r"entry 'empty'.*holds no map"):
        read_map(path, "empty")
    with pytest.raises(InputError, match=r"entry 'bad'.*shape"):
        read_map(path, "bad")


def test_missing_or_non_hdf5_file_is_input_error(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_map(tmp_path / "none.h5", "x")
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    with pytest.raises(InputError, match="cannot open as HDF5"):
        list_entries(junk)
    with pytest.raises(InputError, match=r"junk\.h5"):
        write_map_entry(junk, _map(), kind="induced")
    assert junk.read_text() == "not hdf5"  # nothing lost


def test_list_entries_summarises_in_creation_order(tmp_path):
    path = tmp_path / "s.h5"
    write_map_entry(path, _map("zeta", ny=3, nx=7), kind="scan")
    write_map_entry(path, _map("alpha"), kind="induced")
    infos = list_entries(path)
    assert [i.name for i in infos] == ["zeta", "alpha"]
    zeta = infos[0]
    assert zeta.kind == "scan" and zeta.status == "finished" and zeta.shape == (3, 7)
    np.testing.assert_array_equal(zeta.applied_field, [0.0, 40e-6, 0.0])
    assert zeta.step == pytest.approx((2e-6, 3e-6))
    assert zeta.height == 100e-6
    assert infos[1].sources == ("scan_b", "scan_a")



def test_one_malformed_entry_is_listed_as_unreadable_beside_the_others(tmp_path, capsys):
    path = tmp_path / "s.h5"
    write_map_entry(path, _map("good"), kind="scan")
    write_map_entry(path, _map("spoiled"), kind="induced")
    write_map_entry(path, _map("later"), kind="induced")
    with h5py.File(path, "a") as f:
        del f["spoiled/data/x"]
        f["spoiled/data/x"] = np.zeros(2)  # the wrong length for its map
    infos = list_entries(path)
    assert [(i.name, i.status) for i in infos] == [
        ("good", "finished"), ("spoiled", "unreadable"), ("later", "finished")]
    assert "entry 'spoiled'" in infos[1].problem and "x" in infos[1].problem
    assert infos[0].problem == infos[2].problem == ""
    from smm_daq.cli.main import main

    before = path.read_bytes()
    assert main(["info", str(path)]) == 2  # the file has an entry no command can read
    out, err = capsys.readouterr()
    assert "good  [scan, finished]" in out and "later  [induced, finished]" in out
    assert "spoiled  [unreadable]" in out
    assert err.count("error:") == 1 and "entry 'spoiled'" in err and "expected" in err
    assert path.read_bytes() == before


CRASHING_WRITER = textwrap.dedent(
    """
    import os, sys
    import h5py, numpy as np
    from smm_daq.storage.h5file import writer_id, writing
    with writing(sys.argv[1]) as f:
        g = f.create_group("scan")
        g.attrs["NX_class"] = "NXentry"
        g.create_dataset("status", data="running", dtype=h5py.string_dtype("utf-8", 64))
        g.create_dataset("writer", data=writer_id())
        d = g.create_dataset("data/Bz", shape=(4, 3), dtype="f8", fillvalue=np.nan)
        g.create_dataset("data/x", data=np.arange(3.0))
        g.create_dataset("data/y", data=np.arange(4.0))
    with writing(sys.argv[1], swmr=True) as f:
        d = f["scan/data/Bz"]
        d[0] = 1.0
        d[1] = 2.0
        f.flush()
        os.kill(os.getpid(), 9)  # killed during a write: the file stays marked open
    """
)


def test_file_of_a_writer_killed_mid_write_reads_and_is_repaired_without_loss(tmp_path):
    path = tmp_path / "s.h5"
    write_map_entry(path, _map("earlier"), kind="induced")
    proc = subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(path)], check=False)
    assert proc.returncode == -9
    assert marked_open(path)
    with pytest.raises(OSError, match="open for write"):  # a plain reader before repair
        h5py.File(path, "r").close()
    m = read_map(path, "scan")  # smm-daq's next touch clears the mark
    assert not marked_open(path)
    np.testing.assert_array_equal(m.bz[:2], [[1.0] * 3, [2.0] * 3])
    assert np.isnan(m.bz[2:]).all()
    assert {i.name: i.status for i in list_entries(path)}["scan"] == "interrupted"
    with h5py.File(path, "r") as f:  # openable by anything again
        assert f["scan/status"].asstr()[()] == "interrupted"
        np.testing.assert_array_equal(f["scan/data/Bz"][:2], [[1.0] * 3, [2.0] * 3])
    write_map_entry(path, _map("later"), kind="induced")
    with h5py.File(path, "r") as f:
        assert set(f) == {"earlier", "scan", "later"}
    np.testing.assert_array_equal(read_map(path, "earlier").bz, _map("earlier").bz)


def test_a_marked_file_whose_writer_lives_is_read_in_swmr_mode_not_repaired(tmp_path,
                                                                          monkeypatch):
    path = tmp_path / "s.h5"
    write_map_entry(path, _map("earlier"), kind="induced")
    subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(path)], check=False)
    monkeypatch.setattr("smm_daq.storage.h5file.writer_alive", lambda w: True)
    m = read_map(path, "scan")
    np.testing.assert_array_equal(m.bz[:2], [[1.0] * 3, [2.0] * 3])
    assert marked_open(path)  # left for its writer


def test_repair_refuses_a_file_a_live_process_writes(tmp_path, monkeypatch):
    path = tmp_path / "s.h5"
    with h5py.File(path, "w", libver="latest") as f:
        g = f.create_group("scan")
        g.create_dataset("status", data="running")
        g.create_dataset("writer", data="x")
    monkeypatch.setattr("smm_daq.storage.h5file.writer_alive", lambda w: True)
    with pytest.raises(InputError, match="being written by a running process"):
        repair(path)
    assert [p.name for p in tmp_path.iterdir()] == ["s.h5"]  # no copy left beside it


def test_scans_refuse_a_file_in_a_format_without_swmr(tmp_path):
    from acq_fakes import fake_rig

    from smm_daq.acquisition.plan import ScanPlan
    from smm_daq.acquisition.sequencer import Sequencer

    path = tmp_path / "old.h5"
    with h5py.File(path, "w") as f:  # the library's default (oldest) format
        f.attrs["mark"] = 1
        f.attrs["creator"] = "smm-daq 0.1.0"  # an smm-daq file: another program's is refused
    plan = ScanPlan.from_center("s", (12.5e-3, 12.5e-3), (20e-6, 20e-6), 10e-6)
    rig = fake_rig()
    with pytest.raises(InputError, match="older HDF5 format"):
        Sequencer(rig, path, plan).run()
    with h5py.File(path, "r") as f:
        assert list(f) == [] and f.attrs["mark"] == 1
    assert rig.coils.history == []


def test_overwrite_never_replaces_acquired_data_or_a_source(tmp_path) -> None:
    path = tmp_path / "s.h5"
    x = np.arange(4) * 1e-6
    scan = MapData(np.ones((4, 4)), x, x, name="remanent")
    write_map_entry(path, scan, kind="import")
    product = MapData(np.zeros((4, 4)), x, x, name="remanent", sources=("remanent",))
    with pytest.raises(InputError, match="acquired data"):
        write_map_entry(path, product, kind="induced", overwrite=True)
    np.testing.assert_array_equal(read_map(path, "remanent").bz, 1.0)

    write_map_entry(path, MapData(np.zeros((4, 4)), x, x, name="induced",
                                  sources=("remanent",)), kind="induced")
    with pytest.raises(InputError, match="computed from"):
        write_map_entry(path, MapData(np.ones((4, 4)), x, x, name="induced",
                                      sources=("induced",)), kind="background", overwrite=True)
    write_map_entry(path, MapData(np.full((4, 4), 2.0), x, x, name="induced",
                                  sources=("remanent",)), kind="induced", overwrite=True)
    np.testing.assert_array_equal(read_map(path, "induced").bz, 2.0)
    with h5py.File(path, "r") as f:
        assert sorted(f) == ["induced", "remanent"]


KILLED_WHILE_ADDING_AN_ENTRY = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from smm_daq.storage.h5file import writing
    with writing(sys.argv[1]) as f:  # not in SWMR mode: new objects are being made
        g = f.create_group("half")
        g.create_dataset("data/Bz", data=np.ones((3, 3)))
        f.flush()
        os.kill(os.getpid(), 9)
    """
)


def test_a_writer_killed_while_adding_an_entry_leaves_a_file_smm_daq_clears(tmp_path):
    path = tmp_path / "s.h5"
    write_map_entry(path, _map("earlier"), kind="induced")
    proc = subprocess.run([sys.executable, "-c", KILLED_WHILE_ADDING_AN_ENTRY, str(path)],
                          check=False)
    assert proc.returncode == -9 and marked_open(path)
    with pytest.raises(OSError):  # neither a plain nor a SWMR reader opens it
        h5py.File(path, "r", swmr=True).close()
    np.testing.assert_array_equal(read_map(path, "earlier").bz, _map("earlier").bz)
    assert not marked_open(path)
    with h5py.File(path, "r") as f:
        assert "earlier" in f


def test_clearing_the_mark_writes_what_h5clear_writes(tmp_path):
    import shutil

    from smm_daq.storage.superblock import clear_open_mark

    h5clear = shutil.which("h5clear")
    path = tmp_path / "s.h5"
    write_map_entry(path, _map("earlier"), kind="induced")
    subprocess.run([sys.executable, "-c", KILLED_WHILE_ADDING_AN_ENTRY, str(path)], check=False)
    copy = tmp_path / "copy.h5"
    shutil.copyfile(path, copy)
    assert clear_open_mark(path) is True
    assert clear_open_mark(path) is False  # nothing left to clear
    with h5py.File(path, "r") as f:
        assert "earlier" in f
    if h5clear is None:
        pytest.skip("h5clear (hdf5-tools) is not installed: compared with h5py only")
    subprocess.run([h5clear, "-s", str(copy)], check=True, capture_output=True)
    assert path.read_bytes()[:48] == copy.read_bytes()[:48]


def test_clearing_refuses_a_superblock_it_does_not_reproduce(tmp_path):
    from smm_daq.storage.superblock import clear_open_mark

    path = tmp_path / "s.h5"
    write_map_entry(path, _map("earlier"), kind="induced")
    raw = bytearray(path.read_bytes())
    raw[11] = 1  # a mark without its checksum
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="checksum"):
        clear_open_mark(path)
    assert path.read_bytes() == bytes(raw)


def test_reading_in_another_thread_during_a_scan_never_stops_it(tmp_path):
    """The window reads the session file while its worker thread writes lines into it."""
    from acq_fakes import fake_rig

    from smm_daq.acquisition.plan import ScanPlan
    from smm_daq.acquisition.sequencer import Sequencer

    path = tmp_path / "s.h5"
    write_map_entry(path, _map("earlier"), kind="induced")
    plan = ScanPlan.from_center("s", (12.5e-3, 12.5e-3), (300e-6, 300e-6), 10e-6)
    seq = Sequencer(fake_rig(), path, plan)
    seq.start()
    reads = 0
    while seq.state in ("idle", "running"):
        infos = {i.name: i for i in list_entries(path)}
        assert infos["earlier"].status == "finished"
        reads += 1
    assert seq.wait(60) == "finished", seq.message
    assert reads > 0
    assert list_entries(path)[1].lines_done == plan.ny


HOLDING_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from smm_daq.storage.h5file import writing
    with writing(sys.argv[1]) as f:  # adds an entry, not in SWMR mode: no reader opens it
        g = f.create_group("late")
        g.attrs["NX_class"] = "NXentry"
        g.create_dataset("data/Bz", data=np.ones((2, 2)))
        g.create_dataset("data/x", data=[0.0, 1e-6])
        g.create_dataset("data/y", data=[0.0, 1e-6])
        f.flush()
        print("holding", flush=True)
        sys.stdin.readline()
    """
)


def test_a_reader_waits_for_another_process_to_finish_its_write(tmp_path, monkeypatch):
    import threading
    import types

    from smm_daq.storage import turns

    path = tmp_path / "s.h5"
    write_map_entry(path, _map("earlier"), kind="induced")
    child = subprocess.Popen([sys.executable, "-c", HOLDING_WRITER, str(path)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "holding\n"
        assert marked_open(path)
        waiting = threading.Event()
        real = turns.fcntl

        def fcntl(fd, cmd, arg):  # the reader is about to wait for the writer's lock
            waiting.set()
            return real.fcntl(fd, cmd, arg)

        monkeypatch.setattr(turns, "fcntl", types.SimpleNamespace(
            fcntl=fcntl, **{k: getattr(real, k) for k in dir(real) if k.startswith("F_")}))
        seen: list[list[str]] = []
        reader = threading.Thread(target=lambda: seen.append(
            [i.name for i in list_entries(path)]), daemon=True)  # a failure never hangs pytest
        reader.start()
        assert waiting.wait(60)
        child.stdin.write("go\n")
        child.stdin.flush()
        reader.join(60)
    finally:
        child.stdin.close()
        child.wait(60)
    assert child.returncode == 0
    assert seen == [["earlier", "late"]]  # the file after the write, not a half of it
    with h5py.File(path, "r") as f:
        assert set(f) == {"earlier", "late"}


def test_repair_refuses_a_file_another_program_writes_with_hdf5_locking(tmp_path):
    path = tmp_path / "s.h5"
    write_map_entry(path, _map("earlier"), kind="induced")
    with h5py.File(path, "a", locking=True) as other:  # e.g. a notebook appending to it
        other.attrs["note"] = "theirs"
        with pytest.raises(InputError, match="open for writing in another program"):
            repair(path)
    assert [p.name for p in tmp_path.iterdir()] == ["s.h5"]  # no copy left beside it
    with h5py.File(path, "r") as f:
        assert f.attrs["note"] == "theirs" and "earlier" in f


def test_writing_refuses_a_file_another_program_writes_with_hdf5_locking(tmp_path):
    path = tmp_path / "s.h5"
    write_map_entry(path, _map("earlier"), kind="induced")
    with h5py.File(path, "a", locking=True), pytest.raises(
            InputError, match="open for writing in another program"):
        write_map_entry(path, _map("second"), kind="induced")
    with h5py.File(path, "r") as f:
        assert list(f) == ["earlier"]


KILLED_IN_WRITE_MAP_ENTRY = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from smm_daq.storage import nexus
    from smm_daq.storage.mapdata import MapData

    def killed(*args):  # the entry is laid out, its extras not yet stored
        os.kill(os.getpid(), 9)

    nexus._store_extra = killed
    m = MapData(np.ones((2, 3)), np.arange(3.0), np.arange(2.0), name="product")
    nexus.write_map_entry(sys.argv[1], m, kind="induced", extra={"results/n": 1})
    """
)


def test_an_entry_whose_writer_was_killed_is_never_part_of_the_file(tmp_path):
    path = tmp_path / "s.h5"
    write_map_entry(path, _map("earlier"), kind="induced")
    proc = subprocess.run([sys.executable, "-c", KILLED_IN_WRITE_MAP_ENTRY, str(path)],
                          check=False)
    assert proc.returncode == -9 and marked_open(path)
    assert [i.name for i in list_entries(path)] == ["earlier"]  # cleared, staged entry gone
    with h5py.File(path, "r") as f:
        assert list(f) == ["earlier"] and f.attrs["default"] == "earlier"
    write_map_entry(path, _map("product"), kind="induced")
    assert [i.name for i in list_entries(path)] == ["earlier", "product"]


KILLED_WITH_PART_OF_AN_ENTRY_ON_DISK = KILLED_IN_WRITE_MAP_ENTRY.replace(
    "def killed(*args):", "def killed(entry, *args):\n    entry.file.flush()")


def test_a_reader_that_leaves_out_a_killed_writers_entry_names_it(tmp_path, caplog):
    """The entry's first datasets reached the disk before its writer was killed: the reader
    that makes the file openable leaves the entry out, and says which, under its own name."""
    path = tmp_path / "s.h5"
    write_map_entry(path, _map("earlier"), kind="induced")
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_WITH_PART_OF_AN_ENTRY_ON_DISK, str(path)], check=False)
    assert proc.returncode == -9 and marked_open(path)
    with caplog.at_level("WARNING", logger="smm_daq.storage.h5file"):
        assert [i.name for i in list_entries(path)] == ["earlier"]
    assert (f"{path}: left out entry 'product', cut off while written (its writer killed)"
            in caplog.text)
    with h5py.File(path, "r") as f:
        assert list(f) == ["earlier"]
