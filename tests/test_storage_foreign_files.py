"""smm-daq writes only into its own session files: another program's HDF5 file (one whose
root `creator` is not smm-daq's) is refused by every writer, naming the file, and is left
byte for byte as it was; an empty HDF5 file and an earlier release's file are written."""

from __future__ import annotations

import struct
from dataclasses import replace
from functools import partial
from pathlib import Path

import h5py
import numpy as np
import pytest

from smm_daq.cli.main import main
from smm_daq.errors import InputError
from smm_daq.storage.h5file import marked_open
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import check_new_entry, list_entries, write_map_entry
from smm_daq.storage.superblock import lookup3

SCAN = ["scan", "--center-um", "12500,12500", "--size-um", "40,20", "--step-um", "20",
        "--name", "s"]


def _theirs(path: Path, *, libver: str | None = "latest", creator: str | None = None) -> bytes:
    """Another program's file, as h5py writes it; its bytes."""
    with h5py.File(path, "w", libver=libver) as f:
        if creator is not None:
            f.attrs["creator"] = creator
        f.attrs["default"] = "theirs"
        f.create_dataset("theirs/values", data=np.arange(3.0))
    return path.read_bytes()


def _map() -> MapData:
    return MapData(bz=np.zeros((2, 3)), x=np.arange(3) * 1e-6, y=np.arange(2) * 1e-6,
                   height=100e-6, sensor_size=(0.0, 0.0), applied_field=np.zeros(3),
                   name="m", title="t", sources=())


def _mark_open(path: Path, flags: int) -> None:
    """Set the superblock's open-for-write flags as a killed writer leaves them."""
    raw = bytearray(path.read_bytes())
    assert raw[8] == 3  # superblock version 3 (libver "latest")
    size = 12 + 4 * raw[9]
    raw[11] = flags
    raw[size:size + 4] = struct.pack("<I", lookup3(bytes(raw[:size])))
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("libver", ["latest", None])
def test_scan_refuses_another_programs_file_and_changes_nothing(tmp_path, capsys, libver):
    path = tmp_path / "foreign2.h5"
    before = _theirs(path, libver=libver)
    assert main([*SCAN, "--out", str(path)]) == 2
    err = capsys.readouterr().err
    assert "foreign2.h5: is not an smm-daq session file" in err
    assert "give a new file name" in err
    assert "older HDF5 format" not in err  # said first: it is not smm-daq's at all
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign2.h5"]


@pytest.mark.parametrize("argv", [
    ["run", "r.toml", "--yes", "--out"],
    ["mmt", "synth", "--grains-out", "g.csv", "--truth-out", "t.csv", "--out"],
    ["import", "mmt-scan", "map.txt", "--params", "p.json", "--name", "m", "--out"],
])
def test_other_commands_refuse_it_before_any_work(tmp_path, capsys, monkeypatch, argv):
    """(Their inputs need not exist: the output is checked first.)"""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "theirs.h5"
    before = _theirs(path, creator="another-daq 2.3")
    code = main([*argv, str(path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "theirs.h5: is not an smm-daq session file (creator 'another-daq 2.3'" in err
    assert path.read_bytes() == before


def test_map_entries_are_not_written_into_it(tmp_path):
    """The writer of every analysis product (subtract, the map commands, import, mmt), and
    mmt invert's check before its long work."""
    path = tmp_path / "theirs.h5"
    before = _theirs(path)
    with pytest.raises(InputError, match=r"theirs\.h5: is not an smm-daq session file"):
        write_map_entry(path, _map(), kind="induced")
    with pytest.raises(InputError, match=r"theirs\.h5: is not an smm-daq session file"):
        check_new_entry(path, "scan_mmt", ("scan",), overwrite=False)
    assert path.read_bytes() == before


def test_the_scan_as_the_window_starts_it_refuses_before_the_rig_moves(tmp_path):
    from acq_fakes import fake_rig

    from smm_daq.acquisition.plan import ScanPlan
    from smm_daq.acquisition.sequencer import Sequencer

    path = tmp_path / "theirs.h5"
    before = _theirs(path, libver=None)
    rig = fake_rig()
    plan = ScanPlan.from_center("s", (12.5e-3, 12.5e-3), (20e-6, 20e-6), 10e-6)
    with pytest.raises(InputError, match="is not an smm-daq session file"):
        Sequencer(rig, path, plan).run()
    assert path.read_bytes() == before
    assert rig.coils.history == []


@pytest.mark.parametrize("flags", [0x01, 0x05])  # left by a killed writer, SWMR or not
def test_one_left_open_for_write_is_neither_repaired_nor_written(tmp_path, flags):
    path = tmp_path / "theirs.h5"
    _theirs(path)
    _mark_open(path, flags)
    before = path.read_bytes()
    assert marked_open(path)
    with pytest.raises(InputError, match="smm-daq session file"):
        write_map_entry(path, _map(), kind="induced")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["theirs.h5"]


def test_an_empty_file_and_an_earlier_releases_file_are_written(tmp_path, capsys):
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w", libver="latest"):
        pass
    assert main([*SCAN, "--out", str(empty)]) == 0, capsys.readouterr().err
    with h5py.File(empty, "r") as f:
        assert f.attrs["creator"].startswith("smm-daq ")  # a session file from now on
    write_map_entry(empty, _map(), kind="induced")
    assert sorted(e.name for e in list_entries(empty)) == ["m", "s"]

    earlier = tmp_path / "earlier.h5"
    _theirs(earlier, creator="smm-daq 0.1.0")
    write_map_entry(earlier, _map(), kind="induced")
    assert "m" in [e.name for e in list_entries(earlier)]


def test_one_whose_creator_only_begins_with_our_name_is_not_repaired_by_a_read(tmp_path):
    """A creator naming another program ("smm-daq-viewer 1.2") is not smm-daq's for a repair
    either: a read of that file left open for write by its program rewrote it."""
    from smm_daq.storage.h5file import open_read

    path = tmp_path / "theirs.h5"
    _theirs(path, creator="smm-daq-viewer 1.2")
    _mark_open(path, 0x05)
    before = path.read_bytes()
    with open_read(path) as f:
        assert "theirs" in f
    assert path.read_bytes() == before
    with pytest.raises(InputError, match="smm-daq session file"):
        write_map_entry(path, _map(), kind="induced")
    assert path.read_bytes() == before


@pytest.mark.parametrize("flags", [0x01, 0x05])  # left by a killed writer, SWMR or not
def test_an_empty_file_left_open_for_write_is_read_written_and_repaired_as_an_empty_one(
        tmp_path, capsys, flags):
    """As an empty HDF5 file not marked: the reader, the check before a write, the writer
    and `repair` all take it (the reader and the writer had refused it, each its own way,
    while `require_ours` took it)."""
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w", libver="latest"):
        pass
    _mark_open(empty, flags)
    copy = tmp_path / "copy.h5"
    copy.write_bytes(empty.read_bytes())
    assert list_entries(empty) == []
    check_new_entry(empty, "m", (), overwrite=False)
    write_map_entry(empty, _map(), kind="induced")
    assert not marked_open(empty)
    with h5py.File(empty, "r") as f:
        assert f.attrs["creator"].startswith("smm-daq ")  # a session file from now on
    assert [e.name for e in list_entries(empty)] == ["m"]

    assert main(["repair", str(copy)]) == 0, capsys.readouterr().err
    assert "cleared the open-for-write mark" in capsys.readouterr().out
    assert not marked_open(copy)
    with h5py.File(copy, "r") as f:
        assert len(f) == 0  # still empty: nothing added by the repair


def test_a_read_only_file_of_another_program_is_refused_as_theirs(tmp_path, capsys, read_only):
    """Refused as another program's file (a new file name is what helps), its being
    read-only said beside: by the map and image writers, and by `repair` (they said only
    'cannot open for writing (Permission denied)'); also left marked open by its writer,
    killed in SWMR mode or outside it; smm-daq's own file for its permission."""
    from smm_daq.analysis.optical import fit_affine
    from smm_daq.storage.optical_entry import write_optical_entry

    registration = fit_affine(np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 3.0]]),
                              np.array([[0.0, 0.0], [4e-5, 0.0], [0.0, 3e-5]]))
    for flags in (0, 0x01, 0x05):  # closed, or left marked by a writer killed
        folder = tmp_path / f"flags{flags}"
        folder.mkdir()
        path = folder / "theirs.h5"
        _theirs(path, creator="another-daq 2.3")
        if flags:
            _mark_open(path, flags)
        before = path.read_bytes()
        read_only(path)
        for write in (partial(write_map_entry, path, _map(), kind="induced"),
                      partial(write_optical_entry, path, "img", np.zeros((4, 5, 3), np.uint8),
                              registration)):
            with pytest.raises(InputError) as refused:
                write()
            said = str(refused.value)
            assert said.startswith(f"{path}: is not an smm-daq session file (creator "
                                   "'another-daq 2.3': another program's HDF5 file)"), said
            assert "cannot be opened for writing here either (Permission denied)" in said
            assert "give a new file name" in said
        assert main(["repair", str(path)]) == 2
        err = capsys.readouterr().err
        assert "theirs.h5: was not made by smm-daq (creator 'another-daq 2.3')" in err, err
        assert "(Permission denied)" in err
        assert path.read_bytes() == before
        assert sorted(p.name for p in folder.iterdir()) == ["theirs.h5"]

    ours = tmp_path / "ours.h5"  # smm-daq's own: only its permission keeps it from a write
    write_map_entry(ours, _map(), kind="induced")
    read_only(ours)
    with pytest.raises(InputError, match=r"ours\.h5: cannot open for writing \(Permission "
                                         r"denied\)$"):
        write_map_entry(ours, replace(_map(), name="n"), kind="induced")

