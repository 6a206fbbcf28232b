"""The Scan tab keeps a scan's warning of the ambient field's drift in view (the status line
is rewritten at every progress step), and clears it as the next scan starts."""

from __future__ import annotations

from PyQt6 import QtCore
from session_reads import opened
from test_gui_subtract import bump_map

from smm_daq.acquisition.plan import ScanPlan
from smm_daq.storage.nexus import write_map_entry

WAIT_MS = 60_000
UM = 1e-6


def _plan(name: str) -> ScanPlan:
    return ScanPlan.from_center(name, (12.5e-3, 12.5e-3), (60 * UM, 80 * UM), 20 * UM,
                                field=(0.0, 0.0, 0.0))


def test_the_scan_tab_shows_the_drift_warning_until_the_next_scan(window, qtbot) -> None:
    scan, coils = window.scan, window.holder.rig.world.coils
    before = coils.ambient_at()
    coils.set_ambient_drift([0.0, 0.0, 40e-9])  # T/s, from the zero field checked at the start
    assert scan.start(_plan("drifting"))
    qtbot.waitUntil(lambda: scan.live.state == "finished", timeout=WAIT_MS)
    assert not scan.warning.isHidden()
    assert scan.warning.text().startswith("Warning: the field at the sample drifted ")
    assert scan.warning.text().removeprefix("Warning: ") == scan.live.warnings[-1]
    coils.set_ambient_drift([0.0, 0.0, 0.0])
    coils.ambient = before  # back where the next scan's field check finds it
    assert scan.start(_plan("steady"))
    qtbot.waitUntil(lambda: scan.live.state == "finished", timeout=WAIT_MS)
    assert scan.warning.isHidden() and scan.live.warnings == []


def _shown(window, qtbot, path, entry: str) -> None:
    """`entry` of session file `path` opened in the Session tab, its map on show (in the Scan
    tab's view too, where the next scan's area is drawn)."""
    assert opened(window.session, qtbot, path)
    row = next(r for r in range(window.session.table.rowCount())
               if window.session.table.item(r, 0).data(QtCore.Qt.ItemDataRole.UserRole) == entry)
    window.session.show_entry(row)
    qtbot.waitUntil(lambda: window.scan.view.map is not None
                    and window.scan.view.map.name == entry, timeout=WAIT_MS)


def test_the_drift_warning_follows_the_map_of_its_scan(window, qtbot, tmp_path) -> None:
    """Another file's map shown after the drifting scan: the warning, of the scan's map, is
    not shown over it; shown again with the scan's own map."""
    scan, coils = window.scan, window.holder.rig.world.coils
    coils.set_ambient_drift([0.0, 0.0, 40e-9])
    assert scan.start(_plan("drifting"))
    qtbot.waitUntil(lambda: scan.live.state == "finished", timeout=WAIT_MS)
    coils.set_ambient_drift([0.0, 0.0, 0.0])
    scanned, other = scan.live.path, tmp_path / "other.h5"
    write_map_entry(other, bump_map("steady", (48, 48), 1e-6), kind="scan")
    _shown(window, qtbot, scanned, "drifting")
    assert not scan.warning.isHidden()
    _shown(window, qtbot, other, "steady")
    assert scan.warning.isHidden()
    _shown(window, qtbot, scanned, "drifting")
    assert not scan.warning.isHidden()
    assert scan.warning.text() == f"Warning: {scan.live.warnings[-1]}"
