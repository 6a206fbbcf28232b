"""An aborted scan is finished from the window: the Session tab's Resume button."""

from __future__ import annotations

import h5py
import numpy as np
from scan_gate import gate_the_scan
from session_reads import entries_settled, opened

from smm_daq.acquisition.plan import ScanPlan
from smm_daq.storage.h5file import open_read, writing
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


def scanned_cut(window, qtbot) -> ScanPlan:
    """Scans entry 'cut' (4 × 4 points 20 µm apart) to its end into the window's session
    file, and returns its plan."""
    plan = ScanPlan.from_center("cut", CENTRE, (3 * 20 * UM, 3 * 20 * UM), 20 * UM,
                                settle_tau=1.0)
    with qtbot.waitSignal(window.scan.scanEnded, timeout=WAIT_MS):
        assert window.scan.start(plan)
    return plan


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
    assert opened(session, qtbot, path)
    select(session, "part")
    assert session.resume_button.isEnabled()
    with qtbot.waitSignal(scan.scanEnded, timeout=WAIT_MS) as ended:
        session.resume_button.click()
        assert window.tabs.tabText(window.tabs.currentIndex()) == "Scan"
        qtbot.waitUntil(lambda: live.running, timeout=WAIT_MS)
        # the finished lines show at once, before any new point arrives
        np.testing.assert_array_equal(scan.view.map.bz[done_before], before[done_before])
    assert ended.args[0] == "finished"
    assert lines_done(path, "part").all()
    after = read_map(path, "part").bz
    np.testing.assert_array_equal(after[done_before], before[done_before])
    assert np.all(np.isfinite(after))
    assert {e.name: e.status for e in list_entries(path)}["part"] == "finished"
    entries_settled(session, qtbot)  # the file read again once the scan ended
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
    for entry, why in (("done", "finished already"),
                       ("missing", "no such entry; expected a scan of this file (done)")):
        with qtbot.waitSignal(scan.scanEnded, timeout=WAIT_MS) as ended:
            assert scan.resume_entry(path, entry)  # read in the rig's thread
        assert ended.args[0] == "failed" and why in ended.args[1]
        assert why in scan.status.text()
        assert not window.holder.busy and scan.start_button.isEnabled()


def test_a_resume_refused_for_another_time_constant_says_what_to_do_in_the_window(
        qtbot, settings, tmp_path, repo):
    """The window runs on the profile it was started with: the refusal names the stored τ and
    the window's way to another profile, not the command line's --profile option."""
    from gui.main_window import MainWindow
    from smm_daq.cli.main import main
    from smm_daq.instruments.profile import load_profile

    path = tmp_path / "s.h5"
    assert main(["scan", "--center-um", "12500,12500", "--size-um", "60,40", "--step-um", "20",
                 "--name", "part", "--out", str(path)]) == 0  # at τ = 0.03 s
    with h5py.File(path, "a") as f:
        f["part/status"][()] = "aborted"
        f["part/data/line_done"][1:] = False
        f["part/data/Bz"][1:] = np.nan
    text = (repo / "configs" / "simulator.toml").read_text()
    assert "time_constant_s = 0.03\n" in text
    other = tmp_path / "slow.toml"
    other.write_text(text.replace("time_constant_s = 0.03\n", "time_constant_s = 0.1\n"))
    window = MainWindow(load_profile(other), settings, persist=False)
    qtbot.addWidget(window)
    window.instruments.connect_rig()
    qtbot.waitUntil(lambda: window.holder.rig is not None, timeout=WAIT_MS)
    try:
        assert opened(window.session, qtbot, path)
        select(window.session, "part")
        with qtbot.waitSignal(window.scan.scanEnded, timeout=WAIT_MS) as ended:
            window.session.resume_button.click()
    finally:  # the Instruments tab's poll stopped and drained before the rig goes
        window.instruments.timer.stop()
        qtbot.waitUntil(lambda: window.holder.background.pending == 0, timeout=WAIT_MS)
        window.holder.close()
    kind, message = ended.args
    assert kind == "failed"
    assert ("was taken with lock-in time constant 0.03 s, and the rest of it would be taken "
            "with 0.1 s; expected the same τ ([lockin] time_constant_s = 0.03 in the profile)"
            ) in message
    assert f"this window runs on {other}" in message
    assert "give --profile" not in message and "leave --profile out" not in message
    assert {e.name: e.status for e in list_entries(path)}["part"] == "aborted"


def test_the_entry_to_resume_is_read_off_the_gui_thread_with_start_held_meanwhile(
        window, qtbot, tmp_path, monkeypatch):
    """Reading the entry (the whole map: long for a large one, any time on a stalled network
    disk) does not hold the window; Start, the Session tab's Resume scan and the Instruments
    tab's controls wait for it, and a read that fails frees them again."""
    import threading

    import smm_daq.acquisition.resumable as resumable

    scan, session = window.scan, window.session
    path = tmp_path / "session.h5"
    plan = scanned_cut(window, qtbot)
    go, threads = threading.Event(), []
    real = resumable.load_resumable

    def stalled(*args, **kwargs):
        threads.append(threading.current_thread())
        assert go.wait(WAIT_MS / 1000)
        return real(*args, **kwargs)

    monkeypatch.setattr(resumable, "load_resumable", stalled)
    assert opened(session, qtbot, path)
    with qtbot.waitSignal(scan.scanEnded, timeout=WAIT_MS) as ended:
        assert scan.resume_entry(path, "cut")  # returns while the disk stalls
        assert "Reading entry 'cut'" in scan.status.text()
        assert not scan.start_button.isEnabled() and not scan.form.isEnabled()
        assert not session.resume_button.isEnabled()
        assert not window.instruments.goto_button.isEnabled()
        assert not scan.start(plan)
        go.set()
    assert threads and threads[0] is not threading.main_thread()
    assert ended.args[0] == "failed" and "finished already" in ended.args[1]
    assert scan.start_button.isEnabled() and scan.form.isEnabled()
    assert not window.holder.busy


def test_stop_while_the_entry_to_resume_is_read_stops_the_stage_and_starts_nothing(
        window, qtbot, tmp_path, monkeypatch):
    """The read may take long (a stalled disk): Stop then reaches the stage at once (a move
    sent before Resume scan may still run) and cancels the resume, which starts nothing when
    the read returns."""
    import threading

    import smm_daq.acquisition.resumable as resumable

    scan, panel = window.scan, window.instruments
    path = tmp_path / "session.h5"
    scanned_cut(window, qtbot)
    with writing(path, create=False) as f:  # cut off after its first line: resumable
        f["cut/status"][()] = "aborted"
        f["cut/data/line_done"][1:] = False
        f["cut/data/Bz"][1:] = np.nan
    go, reading = threading.Event(), threading.Event()
    real = resumable.load_resumable

    def stalled(*args, **kwargs):
        reading.set()
        assert go.wait(WAIT_MS / 1000)
        return real(*args, **kwargs)

    monkeypatch.setattr(resumable, "load_resumable", stalled)
    panel.goto_boxes[0].setValue(1000.0)
    panel.go_to()
    qtbot.waitUntil(lambda: panel._sent_to is not None, timeout=WAIT_MS)  # sent, moving
    assert scan.resume_entry(path, "cut")
    qtbot.waitUntil(reading.is_set, timeout=WAIT_MS)
    assert scan.abort_button.isEnabled()
    with qtbot.waitSignal(scan.scanEnded, timeout=WAIT_MS) as ended:
        panel.stop_button.click()
    assert ended.args[0] == "aborted"

    def readings():
        panel.readings = {}
        panel.poll()
        qtbot.waitUntil(lambda: bool(panel.readings), timeout=WAIT_MS)
        return panel.readings

    qtbot.waitUntil(lambda: readings().get("on_target") is True, timeout=WAIT_MS)
    assert abs(readings()["position"][0] - 1000.0 * UM) > 100 * UM  # stopped on the way
    assert not window.holder.busy and scan.start_button.isEnabled()
    with qtbot.assertNotEmitted(scan.scanEnded):
        go.set()
        qtbot.waitUntil(lambda: scan.reader.pending == 0, timeout=WAIT_MS)
    assert not scan.live.running and not window.holder.busy
    assert lines_done(path, "cut").sum() == 1  # nothing resumed
