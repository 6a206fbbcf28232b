"""A session file deleted, moved or renamed while a scan writes it: the scan stops "failed"
saying the file is gone, never makes a new file in its place, and the moved file holds the
lines stored before it went, ready to resume."""

from __future__ import annotations

import h5py
import numpy as np
from acq_fakes import fake_rig

from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.storage.h5file import text

NY = 6


def test_a_file_moved_mid_scan_stops_the_scan_and_keeps_its_lines(tmp_path):
    path, moved = tmp_path / "s.h5", tmp_path / "elsewhere.h5"
    plan = ScanPlan.from_center("k", (12.5e-3, 12.5e-3), (60e-6, 50e-6), 10e-6)
    assert plan.ny == NY
    seq = Sequencer(fake_rig(), path, plan)

    def move_after_line_2(event):
        if event.kind == "line_done" and event.line == 2:
            path.rename(moved)

    seq.subscribe(move_after_line_2)
    assert seq.run() == "failed"
    assert "is gone: it was deleted, moved or renamed" in seq.message
    assert "smm-daq resume NEW-PATH --entry k" in seq.message
    assert not path.exists()  # no new, empty file made in its place
    with h5py.File(moved, "r") as f:
        assert text(f["k/status"]) == "interrupted"  # as the file says of a scan cut off
        done = f["k/data/line_done"][()].astype(bool)
        assert done.tolist() == [True, True, True, False, False, False]
        assert np.isfinite(f["k/data/Bz"][()][done]).all()
