"""The Session tab lists a file's entries off the window's thread: a slow disk, a network share
or a scan writing into the file does not hold Stop; a late result of an older read is dropped;
a file that cannot be read is said as before."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PyQt6 import QtCore
from session_reads import opened, read_to_end

from gui import session_browser
from gui.session_browser import SessionBrowser
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import list_entries, write_map_entry

WAIT_MS = 60_000
HELD_S = 20  # bounds a held read that no test lets go (the test fails, it does not hang)


def a_map(name: str) -> MapData:
    x = np.arange(6) * 5e-6
    return MapData(bz=np.ones((4, 6)) * 1e-6, x=x, y=x[:4], height=50e-6,
                   sensor_size=(1e-6, 1e-6), name=name, title=f"{name} map")


def a_file(path: Path, *names: str) -> Path:
    for name in names:
        write_map_entry(path, a_map(name), kind="scan")
    return path


class HeldReads:
    """`list_entries` as the Session tab calls it, each read of a file in `hold` listing the
    file at once and then held until `release` is set (a slow share, a scan's write); which
    thread read which file, in turn."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *hold: Path) -> None:
        self.hold = set(hold)
        self.release = threading.Event()
        self.entered = threading.Event()
        self.reads: list[tuple[Path, threading.Thread]] = []
        monkeypatch.setattr(session_browser, "list_entries", self)

    def __call__(self, path: Path):
        self.reads.append((Path(path), threading.current_thread()))
        entries = list_entries(path)
        if Path(path) in self.hold:
            self.entered.set()
            assert self.release.wait(HELD_S), "held read never let go"
        return entries


def names_shown(browser: SessionBrowser) -> list[str]:
    return [browser.table.item(r, 0).text() for r in range(browser.table.rowCount())]


def test_stop_is_answered_while_a_slow_file_is_read(window, qtbot, tmp_path, monkeypatch):
    """The window's thread is free while the entries are read: Stop reaches the stage, and
    the Session tab says which file it is reading rather than show the entries of the file
    before as that file's."""
    before = a_file(tmp_path / "before.h5", "old")
    slow = a_file(tmp_path / "share.h5", "rem", "inf")
    session = window.session
    assert opened(session, qtbot, before)
    stops: list[threading.Thread] = []
    stage = window.holder.rig.stage
    monkeypatch.setattr(stage, "stop",
                        lambda stop=stage.stop: (stops.append(threading.current_thread()),
                                                 stop()))
    held = HeldReads(monkeypatch, slow)
    read: list[tuple[int, list[str]]] = []
    session.entriesRead.connect(lambda token, entries: read.append(
        (token, [e.name for e in entries])))
    try:
        token = window.open_file(slow)  # returns with the read held in the worker
        qtbot.waitUntil(held.entered.is_set, timeout=WAIT_MS)
        qtbot.mouseClick(window.instruments.stop_button, QtCore.Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: bool(stops), timeout=WAIT_MS)  # the rig's thread stopped it
        answered: list[bool] = []
        QtCore.QTimer.singleShot(0, lambda: answered.append(True))
        qtbot.waitUntil(lambda: bool(answered), timeout=WAIT_MS)
        assert not held.release.is_set() and read == []
        assert session.reading == slow
        assert session.path_label.text() == f"Reading {slow}…"
        assert not session.table.isEnabled()  # the file before's entries, not share.h5's
        assert session.path == before and names_shown(session) == ["old"]
    finally:
        held.release.set()
    qtbot.waitUntil(lambda: bool(read), timeout=WAIT_MS)
    assert read == [(token, ["rem", "inf"])]
    assert [(p, t is threading.main_thread()) for p, t in held.reads] == [(slow, False)]
    assert session.path == slow and session.reading is None
    assert session.path_label.text() == str(slow) and session.table.isEnabled()
    assert names_shown(session) == ["rem", "inf"]
    assert window.scan.path == slow and window.windowTitle().endswith(": share.h5")


@pytest.fixture
def browser(qtbot):
    b = SessionBrowser()
    qtbot.addWidget(b)
    return b


def test_a_read_of_another_file_supersedes_one_still_held(browser, qtbot, tmp_path,
                                                          monkeypatch):
    """The user opens A, then B while A is still being read: A's entries, once read, are
    not shown (nor A opened), B's are."""
    a = a_file(tmp_path / "a.h5", "from_a")
    b = a_file(tmp_path / "b.h5", "from_b")
    held = HeldReads(monkeypatch, a)
    read, files = [], []
    browser.entriesRead.connect(lambda token, entries: read.append(token))
    browser.fileOpened.connect(files.append)
    try:
        first = browser.open_file(a)
        qtbot.waitUntil(held.entered.is_set, timeout=WAIT_MS)
        second = browser.open_file(b)
        assert browser.path_label.text() == f"Reading {b}…"
    finally:
        held.release.set()
    qtbot.waitUntil(lambda: browser.reading is None, timeout=WAIT_MS)
    assert first != second and read == [second]
    assert files == [b] and browser.path == b
    assert names_shown(browser) == ["from_b"]
    assert browser.path_label.text() == str(b)


def test_a_late_read_from_before_an_entry_was_written_is_dropped(browser, qtbot, tmp_path,
                                                                 monkeypatch):
    """A read of the file made before an entry was written ends after a newer read began:
    its list, without the entry, is not shown over the newer one; a read superseded before
    it began is not made at all; what waited for the entries (selecting the entry written)
    is done once, with them."""
    path = a_file(tmp_path / "s.h5", "first")
    assert opened(browser, qtbot, path)
    held = HeldReads(monkeypatch, path)
    read: list[tuple[int, list[str]]] = []
    browser.entriesRead.connect(lambda token, entries: read.append(
        (token, [e.name for e in entries])))
    waited: list[tuple[bool, list[str]]] = []
    try:
        browser.refresh()
        qtbot.waitUntil(held.entered.is_set, timeout=WAIT_MS)
        held.hold.clear()  # only the first read is held
        write_map_entry(path, a_map("second"), kind="scan")
        browser.refresh()  # superseded by the next before it begins
        newest = browser.refresh(lambda shown: waited.append((shown, names_shown(browser))))
    finally:
        held.release.set()
    qtbot.waitUntil(lambda: browser.reading is None, timeout=WAIT_MS)
    assert read == [(newest, ["first", "second"])]
    assert names_shown(browser) == ["first", "second"]
    assert waited == [(True, ["first", "second"])]
    assert len(held.reads) == 2  # the held one and the newest


def test_what_waits_for_a_read_superseded_by_another_files_is_told_it_was_not_shown(
        browser, qtbot, tmp_path, monkeypatch):
    """A subtraction's entry is selected once the file is read again; if another file is
    opened meanwhile, it is told so (not left waiting)."""
    a = a_file(tmp_path / "a.h5", "from_a")
    b = a_file(tmp_path / "b.h5", "from_b")
    assert opened(browser, qtbot, a)
    held = HeldReads(monkeypatch, a)
    waited: list[bool] = []
    try:
        browser.refresh(waited.append)
        qtbot.waitUntil(held.entered.is_set, timeout=WAIT_MS)
        browser.open_file(b)
        assert waited == [False]  # at once: the file it waited for is no longer wanted
    finally:
        held.release.set()
    qtbot.waitUntil(lambda: browser.reading is None, timeout=WAIT_MS)
    assert waited == [False]
    assert browser.path == b and names_shown(browser) == ["from_b"]


def test_a_file_that_cannot_be_opened_is_said_and_the_open_one_stays(browser, qtbot,
                                                                     tmp_path, monkeypatch):
    """As before the read moved off the window's thread: "Not opened: " and why, in the
    message line and in `entriesFailed`; the file open before stays open and usable."""
    good = a_file(tmp_path / "good.h5", "rem")
    assert opened(browser, qtbot, good)
    bad = tmp_path / "not.h5"
    bad.write_text("hello")
    failed: list[tuple[int, str]] = []
    browser.entriesFailed.connect(lambda token, text: failed.append((token, text)))
    assert not read_to_end(browser, qtbot, lambda: browser.open_file(bad))
    [(_token, text)] = failed
    assert text.startswith("Not opened: ") and "not.h5" in text
    assert browser.message.text() == text
    assert browser.path == good and browser.path_label.text() == str(good)
    assert browser.table.isEnabled() and names_shown(browser) == ["rem"]
    missing = tmp_path / "missing.h5"
    assert not read_to_end(browser, qtbot, lambda: browser.open_file(missing))
    assert browser.message.text() == (f"Not opened: {missing}: file not found; expected an "
                                      "smm-daq session file (.h5)")

    def locked(_path):
        raise OSError("unable to lock file")

    monkeypatch.setattr(session_browser, "list_entries", locked)
    other = a_file(tmp_path / "other.h5", "x")
    assert not read_to_end(browser, qtbot, lambda: browser.open_file(other))
    assert browser.message.text() == f"Not opened: {other}: cannot be read (unable to lock file)"
    assert browser.path == good and names_shown(browser) == ["rem"]


def test_a_refresh_that_cannot_read_the_file_just_now_says_so(browser, qtbot, tmp_path,
                                                              monkeypatch):
    path = a_file(tmp_path / "s.h5", "rem")
    assert opened(browser, qtbot, path)

    def busy(_path):
        raise OSError("unable to lock file")

    monkeypatch.setattr(session_browser, "list_entries", busy)
    assert not read_to_end(browser, qtbot, browser.refresh)
    assert browser.message.text() == f"{path}: cannot be read just now (unable to lock file)"
    assert browser.path == path and names_shown(browser) == ["rem"]


def test_no_read_is_made_once_the_window_has_closed(browser, qtbot, tmp_path, monkeypatch):
    """A recipe or subtraction that ends after the close asks for the file again: nothing is
    read, nothing stays "reading" (a screenshot waits for the reads in hand), and what waits
    for the entries is told they were not shown."""
    path = a_file(tmp_path / "s.h5", "rem")
    held = HeldReads(monkeypatch)
    browser.shutdown()
    told: list[bool] = []
    browser.open_file(path, told.append)
    assert told == [False] and browser.reading is None
    assert held.reads == []


@pytest.mark.parametrize("ended_by", [SystemExit(3), KeyboardInterrupt()])
def test_a_read_ended_by_no_error_ends_with_one(browser, qtbot, tmp_path, monkeypatch,
                                                ended_by):
    """The listing raises SystemExit (something it calls exits): the worker reports no
    result, yet the read ends as a failed one, never "Reading …" for ever (a screenshot waits
    for the reads in hand); the tab says the entries were not read, the file before stays
    open, what waited is told, and the error is reported as smm-daq's."""
    good = a_file(tmp_path / "good.h5", "rem")
    assert opened(browser, qtbot, good)
    other = a_file(tmp_path / "other.h5", "x")

    def exits(_path):
        raise ended_by

    monkeypatch.setattr(session_browser, "list_entries", exits)
    told: list[bool] = []
    with qtbot.capture_exceptions() as raised:
        shown = read_to_end(browser, qtbot, lambda: browser.open_file(other, told.append))
    assert not shown and told == [False] and browser.reading is None
    assert browser.message.text() == (
        f"Not opened: {other}: its entries were not read (an error of smm-daq's, not the "
        f"file's: the read of other.h5 was ended by {type(ended_by).__name__}"
        + (" (3))" if isinstance(ended_by, SystemExit) else ")"))
    assert browser.path == good and browser.path_label.text() == str(good)
    assert browser.table.isEnabled() and names_shown(browser) == ["rem"]
    [(_kind, error, _tb)] = raised
    assert error.__cause__ is ended_by


def test_every_follow_up_is_told_also_when_one_raises(browser, qtbot, tmp_path):
    """Two steps wait for the same file's entries (a subtraction's selection, the demo's
    maps); the first raises (a bug, reported): the second is told all the same, not left
    waiting for ever."""
    path = a_file(tmp_path / "s.h5", "rem")

    def broken(_shown: bool) -> None:
        raise RuntimeError("a follow-up's bug")

    told: list[bool] = []
    with qtbot.capture_exceptions() as raised:
        browser.open_file(path, broken)
        browser.open_file(path, told.append)
        qtbot.waitUntil(lambda: browser.reading is None, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: bool(raised), timeout=WAIT_MS)
    assert told == [True] and browser.path == path
    assert [str(error) for _kind, error, _tb in raised] == ["a follow-up's bug"]


def test_the_window_thread_never_asks_the_disk_where_an_opened_file_lies(
        browser, qtbot, tmp_path, monkeypatch):
    """Once a slow share's entries are read, showing them does not resolve its path on the
    window's thread (each part of it looked up on the share, which may stall again)."""
    a = a_file(tmp_path / "a.h5", "from_a")
    b = a_file(tmp_path / "b.h5", "from_b")
    resolved: list[Path] = []
    real = Path.resolve

    def resolve(path: Path, strict: bool = False) -> Path:
        if threading.current_thread() is threading.main_thread():
            resolved.append(path)
        return real(path, strict)

    monkeypatch.setattr(Path, "resolve", resolve)
    assert opened(browser, qtbot, a)
    assert opened(browser, qtbot, b)
    assert opened(browser, qtbot, b)
    assert resolved == [] and browser.path == b and names_shown(browser) == ["from_b"]


def test_what_waits_is_told_not_shown_when_showing_the_entries_fails(browser, qtbot, tmp_path,
                                                                    monkeypatch):
    """Showing the entries read raises (a bug, reported): what waits for them (selecting an
    entry just written) is told they are not shown, not sent to look for its row in a table
    left as it was; no read stays in hand."""
    path = a_file(tmp_path / "s.h5", "rem")

    def broken(_entries) -> None:
        raise RuntimeError("a bug in showing the entries")

    monkeypatch.setattr(browser, "_show_entries", broken)
    told: list[bool] = []
    with qtbot.capture_exceptions() as raised:
        browser.open_file(path, told.append)
        qtbot.waitUntil(lambda: bool(told), timeout=WAIT_MS)
    assert told == [False] and browser.reading is None
    assert browser.table.isEnabled() and browser.path_label.text() == str(path)
    assert [str(error) for _kind, error, _tb in raised] == ["a bug in showing the entries"]
