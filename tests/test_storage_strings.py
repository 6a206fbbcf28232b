"""The text a scan rewrites in SWMR mode (its status, times, writer, message, each run's
start) sits in fixed-length fields, null-terminated: h5dump and other HDF5 tools show the
text alone, where h5py's null-padded fields showed 'finished' followed by 56 '\\000'. A repair
keeps each string's type as it was."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import h5py
import pytest
from acq_fakes import fake_rig

from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.storage.h5file import repair
from smm_daq.storage.nexus import list_entries
from smm_daq.storage.scan_entry import read_field_checks

H5DUMP = shutil.which("h5dump")


def _fixed_strings(path: Path) -> dict[str, int]:
    """Each fixed-length string dataset of the file, with its padding (h5py.h5t.STR_*)."""
    found = {}

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset):
            tid = obj.id.get_type()
            if isinstance(tid, h5py.h5t.TypeStringID) and not tid.is_variable_str():
                found[name] = tid.get_strpad()

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return found


@pytest.fixture
def scan(tmp_path: Path) -> Path:
    path = tmp_path / "s.h5"
    plan = ScanPlan.from_center("k", (12.5e-3, 12.5e-3), (40e-6, 30e-6), 10e-6)
    assert Sequencer(fake_rig(), path, plan).run() == "finished"
    return path


def test_a_scans_rewritten_text_is_null_terminated_and_stays_so_through_a_repair(
        scan: Path) -> None:
    fields = _fixed_strings(scan)
    assert {"k/status", "k/end_time", "k/writer", "k/state", "k/message",
            "k/runs/start_time"} <= set(fields)
    assert set(fields.values()) == {h5py.h5t.STR_NULLTERM}, fields
    assert [(e.name, e.status) for e in list_entries(scan)] == [("k", "finished")]
    repair(scan)
    assert _fixed_strings(scan) == fields
    assert [(e.name, e.status) for e in list_entries(scan)] == [("k", "finished")]
    assert [c.run for c in read_field_checks(scan, "k")] == [0]
    if H5DUMP is not None:
        out = subprocess.run([H5DUMP, "-d", "/k/status", str(scan)], capture_output=True,
                             text=True, check=True).stdout
        assert '(0): "finished"\n' in out, out
