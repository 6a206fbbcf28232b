"""The settings the window changes while it runs (the session file opened, say) are written
in the settings writer's thread, never on the window's: a stalled home disk (an NFS home that
stopped answering) leaves the window answering, and the close's bounded wait covers the last
write (the close's own settings: test_gui_close_wait)."""

from __future__ import annotations

import threading

from PyQt6 import QtCore

from gui import main_window, settings_sync

WAIT_MS = 60_000  # generous: the whole suite shares two cores


def test_a_setting_changed_on_a_stalled_disk_leaves_the_window_answering(
        window, qtbot, settings, tmp_path, monkeypatch) -> None:
    """Two session files opened while the settings' write does not return: each returns at
    once, the window's timers go on, nothing is written on its thread (Qt's own update of the
    settings, posted to it, would write the file there and wait there for the disk), and once
    the disk answers the file holds the last one, written in the writer's thread."""
    monkeypatch.setattr(settings_sync, "_KEPT", [])  # the settings kept for this test only
    writes: list[threading.Thread] = []
    go = threading.Event()

    def stalled(own: QtCore.QSettings) -> None:
        writes.append(threading.current_thread())
        go.wait(WAIT_MS / 1000)
        own.sync()

    window.settings_writer.sync = stalled
    ini = tmp_path / "gui.ini"
    try:
        window._file_opened(tmp_path / "first.h5")
        ticks: list[int] = []
        timer = QtCore.QTimer()
        timer.timeout.connect(lambda: ticks.append(1))
        timer.start(0)
        qtbot.waitUntil(lambda: len(ticks) >= 3, timeout=WAIT_MS)  # the window answers
        assert not ini.exists() or "session" not in ini.read_text()  # unfixed: Qt wrote it
        qtbot.waitUntil(lambda: len(writes) == 1, timeout=WAIT_MS)  # stalled in the write
        window._file_opened(tmp_path / "second.h5")
        ticks.clear()
        qtbot.waitUntil(lambda: len(ticks) >= 3, timeout=WAIT_MS)
        timer.stop()
    finally:
        go.set()
    assert window.settings_writer.wait(WAIT_MS / 1000)
    assert all(thread is not threading.main_thread() for thread in writes)
    assert "second.h5" in ini.read_text()


def test_the_close_waits_for_a_write_stalled_while_the_window_ran(
        window, qtbot, settings, tmp_path, monkeypatch) -> None:
    """A write of the session's, stalled, is the close's too: the close waits for it no longer
    than `SYNC_WAIT_S`, makes the rig safe and says the settings were not written."""
    monkeypatch.setattr(settings_sync, "_KEPT", [])
    monkeypatch.setattr(main_window, "SYNC_WAIT_S", 0.0)
    warnings: list[str] = []
    monkeypatch.setattr(main_window.MainWindow, "_warning_box",
                        lambda _window, text: warnings.append(text))
    go = threading.Event()
    started = threading.Event()
    window.settings_writer.sync = lambda own: started.set() or go.wait(WAIT_MS / 1000)
    try:
        window._file_opened(tmp_path / "first.h5")
        assert started.wait(WAIT_MS / 1000)
        assert window.close()
    finally:
        go.set()
    assert window.holder.rig is None and not window.rig_may_be_unsafe
    assert window.left_stalled_write
    assert len(warnings) == 1 and "have not been written to" in warnings[0]
