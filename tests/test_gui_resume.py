"""An aborted scan is finished from the window: the Session tab's Resume button."""

from __future__ import annotations

import numpy as np
from scan_gate import gate_the_scan

from smm_daq.acquisition.plan import ScanPlan
from smm_daq.storage.h5file import open_read
from smm_daq.storage.nexus import list_entries, read_map

UM = 1e-6
WAIT_MS = 60_000  # generous: the whole suite shares two cores
CENTRE = (12.5e-3, 12.5e-3)


def lines_done(path, entry: str) -> np.ndarray:
    with open_read(path) as f:
        return np.asarray(f[entry]["data/line_done"][()], dtype=bool)


def select(browser, entry: str) -> None:
    for row in range(browser.table.rowCount()):
        if browser.table.item(row, 0).text() == entry:
            browser.table.selectRow(row)
            return
    raise KeyError(entry)


def test_resume_finishes_an_aborted_scan_and_keeps_its_finished_lines(window, qtbot, tmp_path,
                                                                     monkeypatch):
    scan, live, session = window.scan, window.scan.live, window.session
    path = tmp_path / "session.h5"
    plan = ScanPlan.from_center("part", CENTRE, (9 * 20 * UM, 7 * 20 * UM), 20 * UM,
                                settle_tau=1.0)
    gate = gate_the_scan(window, qtbot, monkeypatch)
    gate.hold_scan(at_point=10 * 3 + 2)  # into the fourth of seven lines
    assert scan.start(plan)
    qtbot.waitUntil(gate.waiting.is_set, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: live.state == "running" and live.points >= 10 * 3 + 1,
                    timeout=WAIT_MS)
    with qtbot.waitSignal(scan.scanEnded, timeout=WAIT_MS):
        live.abort()
        gate.go.set()
    before = read_map(path, "part").bz
    done_before = lines_done(path, "part")
    assert 3 <= done_before.sum() < 8

    window.show_view("session")
    session.open_file(path)
    select(session, "part")
    assert session.resume_button.isEnabled()
    with qtbot.waitSignal(scan.scanEnded, timeout=WAIT_MS) as ended:
        session.resume_button.click()
        assert window.tabs.tabText(window.tabs.currentIndex()) == "Scan"
        # the finished lines show at once, before any new point arrives
        np.testing.assert_array_equal(scan.view.map.bz[done_before], before[done_before])
    assert ended.args[0] == "finished"
    assert lines_done(path, "part").all()
    after = read_map(path, "part").bz
    np.testing.assert_array_equal(after[done_before], before[done_before])
    assert np.all(np.isfinite(after))
    assert {e.name: e.status for e in list_entries(path)}["part"] == "finished"
    select(session, "part")
    assert not session.resume_button.isEnabled()  # finished: nothing to resume


def test_resume_is_refused_while_a_scan_runs_and_for_a_finished_entry(window, qtbot,
                                                                       tmp_path):
    scan = window.scan
    path = tmp_path / "session.h5"
    plan = ScanPlan.from_center("done", CENTRE, (3 * 20 * UM, 3 * 20 * UM), 20 * UM,
                                settle_tau=1.0)
    with qtbot.waitSignal(scan.scanEnded, timeout=WAIT_MS):
        assert scan.start(plan)
    assert not scan.resume_entry(path, "done")
    assert "finished already" in scan.status.text()
    assert not scan.resume_entry(path, "missing")
    assert "no such entry; expected a scan of this file (done)" in scan.status.text()
