"""Taking over an interrupted scan to resume it rewrites its status, writer and message and
adds a row to its run logs: all of it or nothing. A step that fails puts the entry back as it
was (no half a run: a field-check row without its run's start). A run log an earlier
release's repair left of a fixed length is rebuilt extendable first, the file swapped whole;
one that cannot grow at all (one value) is refused, nothing written, saying which."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_cli_acquisition import SCAN

from smm_daq.cli.main import main
from smm_daq.errors import InputError, StorageError
from smm_daq.storage import scan_entry
from smm_daq.storage.scan_entry import ScanEntryWriter


def _contents(path: Path) -> dict[str, tuple[tuple[int, ...], bytes]]:
    """Every dataset's shape and bytes, by path."""
    found: dict[str, tuple[tuple[int, ...], bytes]] = {}

    def visit(key: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset):
            value = obj[()]
            found[key] = (obj.shape or (), np.asarray(value).tobytes() if obj.dtype.kind != "O"
                          else repr(value).encode())

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return found


@pytest.fixture
def interrupted(tmp_path: Path) -> Path:
    path = tmp_path / "s.h5"
    assert main([*SCAN, "--out", str(path)]) == 0
    with h5py.File(path, "a") as f:  # as an aborted scan leaves it
        f["s1/status"][()] = "aborted"
        f["s1/data/line_done"][2:] = False
    return path


def test_a_takeover_that_fails_part_way_leaves_the_entry_as_it_was(interrupted: Path,
                                                                   monkeypatch) -> None:
    """The run's start cannot be written (its time cannot be told), after its field-check
    row was added and the status rewritten: the failure is raised, the entry as before, and
    a later resume adds exactly one run."""
    before = _contents(interrupted)

    def no_time(_epoch: float) -> str:
        raise OverflowError("timestamp out of range for platform time_t")

    monkeypatch.setattr(scan_entry, "_iso", no_time)
    with pytest.raises(OverflowError):
        ScanEntryWriter.reopen(interrupted, "s1")
    assert _contents(interrupted) == before
    monkeypatch.undo()
    writer = ScanEntryWriter.reopen(interrupted, "s1")
    assert writer.run == 1
    with h5py.File(interrupted, "r") as f:
        assert f["s1/runs/run"].shape == (2,)
        assert f["s1/instrument/field_check/value_log/run"][()].tolist() == [0, 1]


def as_an_earlier_repair_left_it(path: Path) -> None:
    """`path` rewritten as the repair of releases before the run logs were kept extendable
    wrote it: every text dataset, `runs/start_time` among them, contiguous (a fixed length),
    and numbers chunked as they were (that release's `_rebuild`, its steps as they were)."""

    def rebuild(src: h5py.Group, dst: h5py.Group) -> None:
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        for key in src:
            obj = src[key]
            if isinstance(obj, h5py.Group):
                rebuild(obj, dst.create_group(key, track_order=True))
                continue
            kw: dict[str, object] = {}
            if obj.chunks is not None:
                kw.update(chunks=obj.chunks, maxshape=obj.maxshape)
            if obj.fillvalue is not None and obj.dtype.kind in "biuf":
                kw["fillvalue"] = obj.fillvalue
            if obj.ndim == 0 or obj.dtype.kind not in "biuf":
                new = dst.create_dataset(key, data=obj[()], dtype=obj.dtype)
            else:
                new = dst.create_dataset(key, data=obj[()], dtype=obj.dtype, **kw)
            for k, v in obj.attrs.items():
                new.attrs[k] = v

    copy = path.with_name("earlier-repair.h5")
    with h5py.File(path, "r") as src, h5py.File(copy, "w", libver=("v110", "latest"),
                                                  track_order=True) as dst:
        rebuild(src, dst)
    copy.replace(path)


@pytest.fixture
def repaired_earlier(interrupted: Path) -> Path:
    as_an_earlier_repair_left_it(interrupted)
    with h5py.File(interrupted, "r") as f:  # the layout the earlier release left
        assert f["s1/runs/start_time"].maxshape == (1,)
        assert f["s1/runs/start_time"].chunks is None
    return interrupted


def test_a_scan_an_earlier_repair_left_with_fixed_run_starts_resumes(
        repaired_earlier: Path) -> None:
    """Its runs' start times are rebuilt extendable, the first run's kept, and the resume
    adds one run; every other dataset holds what it held."""
    before = _contents(repaired_earlier)
    writer = ScanEntryWriter.reopen(repaired_earlier, "s1")
    assert writer.run == 1
    after = _contents(repaired_earlier)
    taken = {k for k in before if k.startswith(("s1/runs/", "s1/instrument/field_check/value_"))
             } | {f"s1/{k}" for k in ("writer", "status", "state", "message")}
    assert {k: v for k, v in after.items() if k not in taken} == {
        k: v for k, v in before.items() if k not in taken}
    with h5py.File(repaired_earlier, "r") as f:
        starts = f["s1/runs/start_time"]
        assert starts.shape == (2,) and starts.maxshape == (None,)
        assert starts[0] == np.frombuffer(before["s1/runs/start_time"][1], starts.dtype)[0]
        assert starts[1].decode().startswith("20")
        assert f["s1/runs/run"][()].tolist() == [0, 1]
    assert not [p for p in repaired_earlier.parent.iterdir() if p.name.startswith(".")]


def test_the_rebuild_cut_short_leaves_the_file_as_it_was(repaired_earlier: Path,
                                                         monkeypatch) -> None:
    """All or nothing: a failure while the copy is written, or when it is swapped in, leaves
    the file byte for byte as it was and no scratch file beside it; the next resume works."""
    from smm_daq.storage import h5file

    before = repaired_earlier.read_bytes()

    def fails(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    for where in ("_rebuild", "_swap_in"):
        monkeypatch.setattr(h5file, where, fails)
        with pytest.raises((OSError, StorageError)):
            ScanEntryWriter.reopen(repaired_earlier, "s1")
        monkeypatch.undo()
        assert repaired_earlier.read_bytes() == before
        assert sorted(p.name for p in repaired_earlier.parent.iterdir()) == ["s.h5"]
    assert ScanEntryWriter.reopen(repaired_earlier, "s1").run == 1


def test_resume_finishes_a_scan_an_earlier_repair_left(repaired_earlier: Path,
                                                       capsys) -> None:
    assert main(["resume", str(repaired_earlier), "--entry", "s1"]) == 0, capsys.readouterr()
    with h5py.File(repaired_earlier, "r") as f:
        assert f["s1/data/line_done"][()].all()
        assert f["s1/runs/run"][()].tolist() == [0, 1]
        assert f["s1/status"][()] == b"finished"


def test_a_run_log_of_one_value_is_refused_before_anything_is_written(
        interrupted: Path) -> None:
    with h5py.File(interrupted, "a") as f:  # damaged: one value, not a row per run
        runs = f["s1/runs"]
        value = runs["start_time"][0]
        del runs["start_time"]
        runs.create_dataset("start_time", data=value)
    before = _contents(interrupted)
    with pytest.raises(InputError, match=r"cannot be resumed: 'runs/start_time' has a fixed "
                       "length"):
        ScanEntryWriter.reopen(interrupted, "s1")
    assert _contents(interrupted) == before


def test_a_disk_filling_during_the_rebuild_is_said_and_leaves_the_file_as_it_was(
        repaired_earlier: Path, monkeypatch, capsys) -> None:
    """The room for the copy is checked first, but not held while HDF5 writes it: a disk
    filled meanwhile (by another program) is said as a full disk is, with the room the copy
    needs, the file left as it was (it was a traceback of HDF5's write error)."""
    from smm_daq.storage import h5file

    before = repaired_earlier.read_bytes()

    def disk_full(*_args, **_kwargs):
        raise OSError(28, "Can't write data (file write failed: No space left on device)")

    monkeypatch.setattr(h5file, "_rebuild", disk_full)
    assert main(["resume", str(repaired_earlier), "--entry", "s1"]) == 1
    err = capsys.readouterr().err
    assert re.search(r"no room to rebuild it: its copy is made beside it: it needs up to "
                     r"[\d.]+ MB there, and its disk has [\d.]+ [MG]B free", err), err
    assert "the file is as it was: free space, then try again" in err
    assert "Traceback" not in err
    assert repaired_earlier.read_bytes() == before
    assert sorted(p.name for p in repaired_earlier.parent.iterdir()) == ["s.h5"]


def test_the_rebuild_is_refused_while_another_scan_of_the_file_runs(repaired_earlier: Path,
                                                                    monkeypatch) -> None:
    """Another scan written into the file by a live process, between two of its lines: the
    rebuilt copy swapped in under it would have that writer (waiting on the lock of the copy
    replaced) and this resume write the file at once. Refused, as a repair is, the file as
    it was."""
    with h5py.File(repaired_earlier, "a") as f:
        f.copy("s1", "s2")
        f["s2/status"][()] = "running"
        f["s2/writer"][()] = "lab:4242:live"
    monkeypatch.setattr("smm_daq.storage.h5file.writer_alive", lambda w: w == "lab:4242:live")
    before = repaired_earlier.read_bytes()
    with pytest.raises(InputError, match=r"entry 's2' is being written by a running process "
                       r"\(lab:4242\): it is rebuilt whole first"):
        ScanEntryWriter.reopen(repaired_earlier, "s1")
    assert repaired_earlier.read_bytes() == before
    assert sorted(p.name for p in repaired_earlier.parent.iterdir()) == ["s.h5"]
