"""The Scan tab keeps a scan's warning of the ambient field's drift in view (the status line
is rewritten at every progress step), and clears it as the next scan starts."""

from __future__ import annotations

from smm_daq.acquisition.plan import ScanPlan

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
