"""One session file however it is named (a symbolic link to it, or its target), and no
question about a file written asked of the disk on the window's thread (a network share may
take seconds to answer, the window frozen meanwhile)."""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest
from session_reads import opened
from test_gui_optical import a_map

from smm_daq.storage.nexus import write_map_entry

WAIT_MS = 60_000  # generous: the whole suite shares two cores

needs_links = pytest.mark.skipif(os.name == "nt", reason="symbolic links need privileges")


def session_file(folder: Path) -> Path:
    path = folder / "s.h5"
    write_map_entry(path, a_map(), kind="scan")
    return path


class DiskAsked(list):
    """Each `Path.resolve` and `Path.exists` called on the window's thread while `watching`
    (the test's own calls, which write files, are not the window's)."""

    watching = False


@pytest.fixture
def disk_asked(monkeypatch) -> DiskAsked:
    window_thread = threading.get_ident()
    asked = DiskAsked()
    for name in ("resolve", "exists"):
        real = getattr(Path, name)

        def noted(self: Path, *args, real=real, name=name, **kwargs):
            if asked.watching and threading.get_ident() == window_thread:
                asked.append((name, self))
            return real(self, *args, **kwargs)

        monkeypatch.setattr(Path, name, noted)
    return asked


def test_a_file_written_is_not_asked_of_the_disk_on_the_windows_thread(window, qtbot,
                                                                      tmp_path, disk_asked):
    """An MMT result saved into the open file, and a scan's end with no file open (the scan's
    file opened if it exists; one that does not is not said as an error): the file is read
    again, or opened, but whether it exists and what it links to are asked in a worker
    (unfixed: `Path.resolve` and `Path.exists` on the window's thread)."""
    session = window.session
    path = session_file(tmp_path)
    missing = tmp_path / "never-written.h5"
    window.scan.file_edit.setText(str(missing))
    disk_asked.watching = True
    with qtbot.waitSignal(session.entriesFailed, timeout=WAIT_MS):
        window.scan.scanEnded.emit("failed", "the lock-in did not answer")
    assert session.path is None and session.message.text() == ""
    assert "never-written" not in window.statusBar().currentMessage()

    window.scan.file_edit.setText(str(path))
    with qtbot.waitSignal(session.entriesRead, timeout=WAIT_MS):
        window.scan.scanEnded.emit("finished", "")
    assert session.path == path
    disk_asked.watching = False
    write_map_entry(path, dataclasses.replace(a_map(), name="mmt"), kind="scan")
    disk_asked.watching = True
    with qtbot.waitSignal(session.entriesRead, timeout=WAIT_MS):
        window.mmt.saved.emit(path)
    assert [e.name for e in session.entries] == ["rem", "mmt"]
    assert disk_asked == []


@needs_links
@pytest.mark.parametrize("kind", ["symbolic", "hard"])
def test_a_file_opened_through_a_link_and_through_its_target_is_one_file(qtbot, tmp_path,
                                                                        kind):
    """Opened through a link (symbolic, or a hard link: another name of the file), then
    through its target (or back): the same file, read again, its map and selection kept, not
    another file's (unfixed: the map cleared and the selection lost, as for another file)."""
    from gui.session_browser import SessionBrowser

    target = session_file(tmp_path)
    link = tmp_path / "link.h5"
    if kind == "hard":
        os.link(target, link)
    else:
        link.symlink_to(target)
    browser = SessionBrowser()
    qtbot.addWidget(browser)
    assert opened(browser, qtbot, link)
    browser.table.selectRow(0)
    browser.show_entry(0)
    qtbot.waitUntil(lambda: browser.map_view.map is not None, timeout=WAIT_MS)
    for name in (target, link):
        assert opened(browser, qtbot, name)
        assert browser.map_view.map is not None
        assert browser.selected_entry() is not None


@needs_links
def test_a_scan_into_a_link_to_the_file_shown_refreshes_it(window, qtbot, tmp_path):
    """The Scan tab writes through a link to the file the Session tab shows by its target:
    the Session tab reads it again (unfixed: "has new entries: open … in the Session tab",
    as if another file)."""
    target = session_file(tmp_path)
    link = tmp_path / "link.h5"
    link.symlink_to(target)
    assert opened(window.session, qtbot, link)  # the link is read once: its target known
    assert opened(window.session, qtbot, target)
    window.scan.file_edit.setText(str(link))
    with qtbot.waitSignal(window.session.entriesRead, timeout=WAIT_MS):
        window.scan.scanEnded.emit("finished", "")
    assert "new entries" not in window.statusBar().currentMessage()


@pytest.mark.parametrize("there", [True, False])
def test_the_remembered_session_file_is_opened_if_there_without_the_disk_asked(
        qtbot, settings, tmp_path, disk_asked, there):
    """The window opens the session file it had open last time, if it is still there: asked
    by the read, off the window's thread (unfixed: `Path.exists` before the window's first
    events, a share that does not answer holding the window frozen); gone, nothing is said."""
    import argparse

    from gui import app
    from smm_daq.instruments.profile import load_profile

    path = session_file(tmp_path) if there else tmp_path / "gone.h5"
    settings.setValue("session/file", str(path))
    args = argparse.Namespace(file=None, view=None, screenshot=None, time_scale=None,
                              demo=False)
    profile = load_profile()
    disk_asked.watching = True
    window, _outcome = app._open_window(profile, [], settings, args, None)
    qtbot.addWidget(window)
    try:
        qtbot.waitUntil(lambda: window.session.reading is None, timeout=WAIT_MS)
        disk_asked.watching = False
        assert window.session.path == (path if there else None)
        assert window.session.message.text() == ""
        assert disk_asked == []
    finally:
        window.holder.close()


def test_the_session_file_named_opens_on_the_map_of_the_entry_made_last(
        qtbot, settings, tmp_path, disk_asked):
    """`smm-daq gui FILE.h5` shows the map of the entry the file opens on (its root
    `default`, the entry made last, as HDF5 viewers open it), its name read off the window's
    thread; unfixed, the Session tab listed the entries with no map shown until one was
    clicked (the demo's "view it: smm-daq gui demo.h5" showed an empty map)."""
    import argparse

    from gui import app
    from smm_daq.instruments.profile import load_profile

    path = tmp_path / "s.h5"
    for name in ("zeta", "mid", "alpha"):
        write_map_entry(path, dataclasses.replace(a_map(), name=name), kind="scan")
    with h5py.File(path, "a") as f:  # the entry named neither the first nor the last row,
        f.attrs["default"] = "mid"  # nor the first or last by name: it is the default read
    args = argparse.Namespace(file=path, view="session", screenshot=None, time_scale=None,
                              demo=False)
    disk_asked.watching = True
    window, _outcome = app._open_window(load_profile(), [], settings, args, None)
    qtbot.addWidget(window)
    try:
        with qtbot.waitSignal(window.session.mapShown, timeout=WAIT_MS) as shown:
            pass
        disk_asked.watching = False
        assert shown.args[0].name == "mid"
        assert window.session.selected_entry().name == "mid"
        assert [asked for asked in disk_asked if asked[1] == path] == []
    finally:
        window.holder.close()


def test_a_default_naming_an_entry_without_a_map_is_not_shown(qtbot, tmp_path):
    """Another program's file whose root `default` names an entry of its own holding no map
    opens on no entry, and says nothing; unfixed, opening it said, unasked, that the entry's
    'Bz' is missing."""
    from gui.session_browser import SessionBrowser

    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry.create_group("data").attrs["NX_class"] = "NXdata"
        entry["data/counts"] = np.ones((3, 3))
        f.attrs["default"] = "entry"
    browser = SessionBrowser()
    qtbot.addWidget(browser)
    assert opened(browser, qtbot, path)
    assert [e.name for e in browser.entries] == ["entry"]
    browser.show_default_entry()
    qtbot.waitUntil(lambda: browser.reader.pending == 0, timeout=WAIT_MS)
    assert browser.message.text() == ""
    assert browser.selected_entry() is None and browser.map_view.map is None


@pytest.mark.parametrize("moved", [False, True])
def test_a_scan_ended_says_what_is_stored_without_the_disk_asked(window, qtbot, tmp_path,
                                                                 disk_asked, moved):
    """The Scan tab's word on a scan that did not finish (lines stored, how to finish it) is
    said without asking the disk on the window's thread (unfixed: `Path.exists` of the
    scan's file there, when the disk may be what stalled the scan); a file moved away
    mid-scan (the scan fails, saying so) is found gone in a worker, and the lines are not
    said to be stored in it."""
    from smm_daq.acquisition.plan import ScanPlan

    scan = window.scan
    plan = ScanPlan.from_center("asked", (12.5e-3, 12.5e-3), (9 * 20e-6, 9 * 20e-6), 20e-6,
                                settle_tau=1.0)
    assert scan.start(plan)
    qtbot.waitUntil(lambda: scan.live.lines_stored >= 1, timeout=WAIT_MS)
    scan.live.pause()  # the scan does not end before the file is moved
    qtbot.waitUntil(lambda: scan.live.state == "paused", timeout=WAIT_MS)
    if moved:
        (tmp_path / "session.h5").rename(tmp_path / "elsewhere.h5")
    disk_asked.watching = True
    with qtbot.waitSignal(scan.scanEnded, timeout=WAIT_MS) as ended:
        if moved:
            scan.live.resume()  # its next line's write finds the file gone
        else:
            scan.abort()
    qtbot.waitUntil(lambda: scan.file_check.pending == 0, timeout=WAIT_MS)
    disk_asked.watching = False
    assert disk_asked == []
    stored = "lines are stored in session.h5; Resume scan"
    if moved:
        assert ended.args[0] == "failed" and "is gone" in ended.args[1]
        assert stored not in scan.status.text()
        assert scan.status.text().endswith("The rig was made safe (stage stopped, field at "
                                           "its safe state).")
    else:
        assert stored in scan.status.text()


@needs_links
def test_a_loop_of_links_is_a_file_that_cannot_be_read_not_an_error_of_the_program(
        qtbot, tmp_path):
    """A session file named by a link that leads back to itself is refused as any unreadable
    file is, the file open before kept (unfixed: following the links for the file's key
    raised RuntimeError, reported as an error of smm-daq's, exit code 1)."""
    from gui.session_browser import SessionBrowser

    target = session_file(tmp_path)
    loop = tmp_path / "loop.h5"
    loop.symlink_to(loop)
    browser = SessionBrowser()
    qtbot.addWidget(browser)
    assert opened(browser, qtbot, target)
    assert not opened(browser, qtbot, loop)
    assert browser.path == target
    said = browser.message.text()
    assert said.startswith(f"Not opened: {loop}: ") and "error of smm-daq's" not in said


@needs_links
@pytest.mark.parametrize("link_was", ["never read", "read while it led elsewhere"])
def test_a_scan_through_a_link_is_known_to_write_the_file_shown(window, qtbot, tmp_path,
                                                               link_was):
    """The Scan tab writes through a link the Session tab never read (or read when it led to
    another file, since pointed at the one shown), to the file the Session tab shows by its
    target: the Session tab reads it again (unfixed: the link's key was its own name, or
    the file it led to before: "has new entries: open … in the Session tab", the file
    shown not read again; or another file taken for the one shown)."""
    from smm_daq.acquisition.plan import ScanPlan

    target = session_file(tmp_path)
    link = tmp_path / "link.h5"
    if link_was == "read while it led elsewhere":
        before = tmp_path / "before"
        before.mkdir()
        link.symlink_to(session_file(before))
        assert opened(window.session, qtbot, link)
        link.unlink()
    link.symlink_to(target)
    assert opened(window.session, qtbot, target)
    window.scan.file_edit.setText(str(link))
    plan = ScanPlan.from_center("through", (12.5e-3, 12.5e-3), (2 * 20e-6, 2 * 20e-6), 20e-6,
                                settle_tau=1.0)
    with qtbot.waitSignal(window.scan.scanEnded, timeout=WAIT_MS) as ended:
        assert window.scan.start(plan)
    assert ended.args[0] == "finished", ended.args
    assert "new entries" not in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: "through" in {e.name for e in window.session.entries},
                    timeout=WAIT_MS)
