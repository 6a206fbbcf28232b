"""A map whose Bz is a virtual dataset (another program's export, assembled from files beside
it) reads as its sources say while they are there; once a source file or dataset is gone,
HDF5 would read its fill value without a word, so the readers refuse it, naming the source."""

from __future__ import annotations

import struct
from pathlib import Path

import h5py
import numpy as np
import pytest

from smm_daq.cli.main import main
from smm_daq.errors import InputError
from smm_daq.storage.h5file import marked_open
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import read_map, write_map_entry
from smm_daq.storage.superblock import lookup3

UM = 1e-6
UT = 1e-6


def _session(tmp_path: Path, source_name: str) -> tuple[Path, Path, np.ndarray]:
    """A session with entry 'scan' whose data/Bz is a virtual dataset of 'bz' in the file
    `source_name` (written beside it), as named in the mapping."""
    x = np.arange(6) * 5 * UM
    y = np.arange(4) * 5 * UM
    bz = np.arange(24, dtype=float).reshape(4, 6) * 0.1 * UT + 0.3 * UT
    path = tmp_path / "s.h5"
    write_map_entry(path, MapData(bz=np.zeros_like(bz), x=x, y=y, height=50 * UM,
                                  applied_field=np.zeros(3), name="scan"), kind="scan")
    source = tmp_path / Path(source_name).name
    with h5py.File(source, "w") as f:
        f["bz"] = bz
    layout = h5py.VirtualLayout(shape=bz.shape, dtype=float)
    layout[:] = h5py.VirtualSource(source_name, "bz", shape=bz.shape)
    with h5py.File(path, "r+") as f:
        data = f["scan/data"]
        units = data["Bz"].attrs["units"]
        del data["Bz"]
        data.create_virtual_dataset("Bz", layout, fillvalue=0.0)
        data["Bz"].attrs["units"] = units
    return path, source, bz


@pytest.mark.parametrize("named", ["absolute", "relative"])
def test_a_virtual_map_reads_its_sources_while_they_are_there(tmp_path: Path, named: str
                                                              ) -> None:
    name = str(tmp_path / "parts.h5") if named == "absolute" else "parts.h5"
    path, _, bz = _session(tmp_path, name)
    np.testing.assert_allclose(read_map(path, "scan").bz, bz)


@pytest.mark.parametrize("named", ["absolute", "relative"])
def test_a_virtual_map_whose_source_file_is_gone_is_refused(
        tmp_path: Path, named: str, capsys: pytest.CaptureFixture[str]) -> None:
    name = str(tmp_path / "parts.h5") if named == "absolute" else "parts.h5"
    path, source, _ = _session(tmp_path, name)
    source.unlink()
    with h5py.File(path, "r") as f:  # what HDF5 does on its own: the fill value, no word
        assert not np.any(f["scan/data/Bz"][()])
    with pytest.raises(InputError, match="virtual dataset") as caught:
        read_map(path, "scan")
    assert "parts.h5" in str(caught.value) and "which is not there" in str(caught.value)
    assert "entry 'scan'" in str(caught.value)
    # and the commands that read a map say so, exit code 2
    assert main(["noise", str(path), "--entry", "scan"]) == 2
    err = capsys.readouterr().err
    assert "virtual dataset" in err and "parts.h5" in err and "Traceback" not in err


def test_a_virtual_map_whose_source_dataset_is_gone_is_refused(tmp_path: Path) -> None:
    path, source, _ = _session(tmp_path, "parts.h5")
    with h5py.File(source, "r+") as f:
        del f["bz"]
    with pytest.raises(InputError, match=r"dataset 'bz' of .*parts\.h5, which cannot be read"):
        read_map(path, "scan")


def test_a_virtual_map_moved_with_its_sources_reads_as_hdf5_finds_them(tmp_path: Path) -> None:
    """A source named by an absolute path that is gone is looked for by HDF5 under its last
    part beside the virtual file (a session copied to another disk with its sources): HDF5
    reads the values there, and so does the map."""
    first, moved = tmp_path / "first", tmp_path / "moved"
    first.mkdir()
    path, source, bz = _session(first, str(first / "parts.h5"))
    first.rename(moved)
    with h5py.File(moved / path.name, "r") as f:  # HDF5 finds it beside the file
        assert f["scan/data/Bz"].virtual_sources()[0].file_name == str(source)
        np.testing.assert_allclose(f["scan/data/Bz"][()], bz)
    np.testing.assert_allclose(read_map(moved / path.name, "scan").bz, bz)
    (moved / "parts.h5").unlink()  # and once it is gone there too, refused naming both places
    with pytest.raises(InputError, match="which is not there") as caught:
        read_map(moved / path.name, "scan")
    assert str(source) in str(caught.value) and str(moved / "parts.h5") in str(caught.value)


def _mark_open(path: Path, flags: int) -> None:
    """Set the superblock's open-for-write flags as a writer killed there leaves them."""
    raw = bytearray(path.read_bytes())
    assert raw[8] == 3  # superblock version 3
    size = 12 + 4 * raw[9]
    raw[11] = flags
    raw[size:size + 4] = struct.pack("<I", lookup3(bytes(raw[:size])))
    path.write_bytes(bytes(raw))


def _session_of_sessions(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    """A session whose entry 'scan' maps its Bz from entry 'part' of another smm-daq
    session file, 'parts.h5', beside it."""
    x = np.arange(6) * 5 * UM
    y = np.arange(4) * 5 * UM
    bz = np.arange(24, dtype=float).reshape(4, 6) * 0.1 * UT
    source = tmp_path / "parts.h5"
    write_map_entry(source, MapData(bz=bz, x=x, y=y, height=50 * UM,
                                    applied_field=np.zeros(3), name="part"), kind="scan")
    path = tmp_path / "s.h5"
    write_map_entry(path, MapData(bz=np.zeros_like(bz), x=x, y=y, height=50 * UM,
                                  applied_field=np.zeros(3), name="scan"), kind="scan")
    layout = h5py.VirtualLayout(shape=bz.shape, dtype=float)
    layout[:] = h5py.VirtualSource("parts.h5", "part/data/Bz", shape=bz.shape)
    with h5py.File(path, "r+") as f:
        data = f["scan/data"]
        del data["Bz"]
        data.create_virtual_dataset("Bz", layout, fillvalue=0.0).attrs["units"] = "T"
    return path, source, bz


def test_a_virtual_maps_source_session_left_marked_open_by_a_killed_writer_is_read_as_every_session_file_is(  # noqa: E501
        tmp_path: Path) -> None:
    """The source is read as `open_read` reads a session file (its writer's turn taken, a
    killed writer's mark repaired), not opened bare, which HDF5 refuses for the mark: the
    map reads the source's values, not a refusal saying it cannot be read."""
    path, source, bz = _session_of_sessions(tmp_path)
    _mark_open(source, 0x01)  # a writer killed outside SWMR mode
    with pytest.raises(OSError):
        h5py.File(source, "r").close()  # what a bare open makes of it
    np.testing.assert_allclose(read_map(path, "scan").bz, bz)
    assert not marked_open(source)


def test_a_virtual_maps_source_marked_open_by_another_programs_killed_writer_is_refused(
        tmp_path: Path) -> None:
    """Another program's source, which smm-daq does not repair, is refused while it is
    marked open: HDF5 would read the map from it as its fill value."""
    path, source, _ = _session_of_sessions(tmp_path)
    with h5py.File(source, "r+") as f:
        f.attrs["creator"] = "another program"
    _mark_open(source, 0x05)  # a writer killed in SWMR mode: readable in SWMR mode only
    with pytest.raises(InputError, match=r"parts\.h5, which cannot be read there"):
        read_map(path, "scan")


def test_a_virtual_maps_source_read_while_another_process_writes_it_is_read_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The read of a source file that another process's write overlapped (here: said so by
    the read's check, the first time) is read again, not taken for a source that cannot be
    read and refused."""
    from smm_daq.storage import turns

    path, source, bz = _session(tmp_path, "parts.h5")
    real, said = turns.changed, []

    def changed(p, before) -> bool:
        if not said:
            said.append(Path(p))
            return True
        return real(p, before)

    monkeypatch.setattr(turns, "changed", changed)
    np.testing.assert_allclose(read_map(path, "scan").bz, bz)
    assert said == [source]  # the source's read was the one said overlapped


def test_a_virtual_maps_source_that_a_writer_begins_to_write_after_its_read_is_not_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A source file (an smm-daq session) that a writer of it begins to write as soon as the
    source's read has ended is marked open for that write only: the mark is asked within the
    read, which the writer waits for, so the map is not refused for a writer at work."""
    import threading

    from smm_daq.clock import VirtualClock
    from smm_daq.storage import turns, virtual
    from smm_daq.storage.h5file import writing

    source = tmp_path / "parts.h5"
    bz = np.arange(24, dtype=float).reshape(4, 6) * 0.1 * UT + 0.3 * UT
    x, y = np.arange(6) * 5 * UM, np.arange(4) * 5 * UM
    write_map_entry(source, MapData(bz=bz, x=x, y=y, height=50 * UM,
                                    applied_field=np.zeros(3), name="m"), kind="scan")
    path = tmp_path / "s.h5"
    write_map_entry(path, MapData(bz=np.zeros_like(bz), x=x, y=y, height=50 * UM,
                                  applied_field=np.zeros(3), name="scan"), kind="scan")
    layout = h5py.VirtualLayout(shape=bz.shape, dtype=float)
    layout[:] = h5py.VirtualSource("parts.h5", "m/data/Bz", shape=bz.shape)
    with h5py.File(path, "r+") as f:
        data = f["scan/data"]
        units = data["Bz"].attrs["units"]
        del data["Bz"]
        data.create_virtual_dataset("Bz", layout, fillvalue=0.0)
        data["Bz"].attrs["units"] = units

    progressed, go, release = threading.Event(), threading.Event(), threading.Event()

    class HeldClock(VirtualClock):
        def sleep(self, seconds: float) -> None:  # the writer waits for the source's read
            if not progressed.is_set():
                progressed.set()
                assert go.wait(60)
            super().sleep(seconds)

    monkeypatch.setattr(turns, "CLOCK", HeldClock())

    def write() -> None:
        with writing(source) as w:
            progressed.set()  # at work, the file marked open for its write
            assert release.wait(60)
            w.attrs["touched"] = 1

    writer = threading.Thread(target=write, daemon=True)
    real = virtual.marked_open

    def marked_once_the_writer_came(p) -> bool:
        if not writer.is_alive() and not progressed.is_set():
            writer.start()
            assert progressed.wait(60)
        return real(p)

    monkeypatch.setattr(virtual, "marked_open", marked_once_the_writer_came)
    try:
        np.testing.assert_allclose(read_map(path, "scan").bz, bz)
    finally:
        go.set()
        release.set()
        writer.join(60)
