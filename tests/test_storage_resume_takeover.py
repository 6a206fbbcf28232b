"""Taking over an interrupted scan to resume it rewrites its status, writer and message and
adds a row to its run logs: all of it or nothing. A step that fails puts the entry back as it
was (no half a run: a field-check row without its run's start), and a run log that cannot
grow (an earlier release's repair made it fixed) is refused, nothing written, saying which."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from test_cli_acquisition import SCAN

from smm_daq.cli.main import main
from smm_daq.errors import InputError
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


def test_a_run_log_that_cannot_grow_is_refused_before_anything_is_written(
        interrupted: Path, capsys) -> None:
    with h5py.File(interrupted, "a") as f:  # as a repair by an earlier release rewrote it
        runs = f["s1/runs"]
        old = runs["start_time"]
        values, dtype, attrs = old[()], old.dtype, dict(old.attrs)
        del runs["start_time"]
        runs.create_dataset("start_time", data=values, dtype=dtype).attrs.update(attrs)
    before = _contents(interrupted)
    with pytest.raises(InputError, match=r"cannot be resumed: 'runs/start_time' has a fixed "
                       "length"):
        ScanEntryWriter.reopen(interrupted, "s1")
    assert _contents(interrupted) == before
