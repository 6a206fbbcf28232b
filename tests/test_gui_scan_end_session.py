"""The Session tab at a scan's end: the file the operator opened meanwhile is kept."""

from __future__ import annotations

import numpy as np
from session_reads import entries_settled, opened

from smm_daq.acquisition.plan import ScanPlan
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry

UM = 1e-6
WAIT_MS = 60_000  # generous: the whole suite shares two cores


def a_map(name: str) -> MapData:
    return MapData(bz=np.zeros((4, 5)), x=np.arange(5) * 5 * UM, y=np.arange(4) * 5 * UM,
                   height=50 * UM, sensor_size=(1e-6, 1e-6),
                   applied_field=np.zeros(3), name=name)


def test_a_scans_end_keeps_the_file_opened_meanwhile_and_names_the_scans(window, qtbot,
                                                                          tmp_path):
    """The Session tab reopened the scan's file at its end, replacing the file the operator
    had opened meanwhile (their place in it lost); now that file stays, its selection with
    it, and the status bar says the scan's file has new entries and where it is."""
    other = tmp_path / "other.h5"
    write_map_entry(other, a_map("earlier"), kind="scan")
    session = window.session
    plan = ScanPlan.from_center("kept", (12.5e-3, 12.5e-3), (40 * UM, 40 * UM), 20 * UM)
    with qtbot.waitSignal(window.scan.scanEnded, timeout=WAIT_MS):
        assert window.scan.start(plan)
        assert opened(session, qtbot, other)
        session.table.selectRow(0)
    entries_settled(session, qtbot)
    assert session.path == other and session.table.currentRow() == 0
    said = window.statusBar().currentMessage()
    assert said.startswith("Scan finished")
    assert f"session.h5 has new entries: open {tmp_path / 'session.h5'}" in said
