"""The window when the disk stalls at a scan's end, or under a subtraction or MMT save: it says
the rig is safe and the write has not returned, closes without waiting, and the program ends
(a line's write that stalls: test_gui_long_scan)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections.abc import Iterator

import numpy as np
from PyQt6 import QtCore, QtWidgets
from recipe_opening import recipe_opened, recipe_ran
from scan_gate import Held
from session_reads import opened
from test_gui_long_scan import CENTRE, UM, WAIT_MS, closing_answered, stall_a_small_scan
from test_gui_subtract import bump_map

from smm_daq.acquisition import safe_close, sequencer
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.cli.main import EXIT_FAILED, EXIT_WRITE_STALLED
from smm_daq.storage.h5file import open_read
from smm_daq.storage.nexus import list_entries, write_map_entry
from smm_daq.storage.scan_entry import ScanEntryWriter

UT = 1e-6


def test_a_final_status_write_that_stalls_at_the_scans_end_does_not_hold_the_window(
        window, qtbot, tmp_path, monkeypatch):
    """A scan measures its last line, the rig is made safe, and the write of its final status
    does not return (a stalled disk): the Scan tab says so (not "running" forever), and
    closing asks, then closes without waiting, the rig safe and closed; the write, when it
    returns, ends the scan as finished, touching the closed rig no more."""
    scan, live, rig = window.scan, window.scan.live, window.holder.rig
    asked, warned = closing_answered(monkeypatch)
    entered, go = threading.Event(), threading.Event()
    set_status = ScanEntryWriter.set_status

    def stalling(writer, status, message=""):
        if status not in ("running", "paused"):  # the scan's final status
            entered.set()
            assert go.wait(2 * WAIT_MS / 1000)  # the test gives up first
        return set_status(writer, status, message)

    monkeypatch.setattr(ScanEntryWriter, "set_status", stalling)
    plan = ScanPlan.from_center("ended", CENTRE, (3 * 20 * UM, 4 * 20 * UM), 20 * UM,
                                settle_tau=1.0, field=(0.0, 20 * UT, 0.0))
    path = tmp_path / "session.h5"
    assert scan.start(plan)
    try:
        # (with no grace, the scan's duration, written just before, may be told first)
        qtbot.waitUntil(lambda: "final status (finished) to session.h5 has not returned "
                                "(disk stalled?)" in scan.status.text(), timeout=WAIT_MS)
        running = live.sequencer
        assert entered.is_set() and not go.is_set() and live.state == "running"
        assert scan.status.text().startswith(
            "ending: the rig is safe (stage stopped, field at its safe state). The write of "
            "the scan's final status (finished) to session.h5 has not returned")
        np.testing.assert_allclose(rig.coils.field_setpoint(), 0.0, atol=1e-12)
        assert window.close()  # asked (Yes), and closed without waiting
        assert not go.is_set() and window.holder.rig is None
        assert len(asked) == 1 and not warned
        assert asked[0].startswith("The rig is safe (stage stopped, field at its safe state), "
                                   f"but the scan's write to {path} has not returned")
    finally:
        go.set()
    assert running.wait(WAIT_MS / 1000) == "finished"
    with open_read(path) as f:
        assert f["ended/status"][()].decode() == "finished"
        assert "NOT safe" not in f["ended/message"].asstr()[()]


def test_abort_while_the_entry_is_created_on_a_stalled_disk_makes_the_rig_safe(
        window, qtbot, tmp_path, monkeypatch):
    """The scan's start creates its entry in the rig's thread, with a field set before it (on
    the Instruments tab, say) still on: a disk that stalls there does not keep Abort from the
    sequencer. The rig is made safe at once, the Scan tab says the file work has not returned,
    and the window closes (asked) without waiting for it; once it returns, the scan ends
    "aborted", touching the closed rig no more."""
    scan, live, rig = window.scan, window.scan.live, window.holder.rig
    asked, _ = closing_answered(monkeypatch)
    entered, go = threading.Event(), threading.Event()
    create = ScanEntryWriter.create

    def stalling(*args, **kw):
        entered.set()
        assert go.wait(2 * WAIT_MS / 1000)  # the test gives up first
        return create(*args, **kw)

    monkeypatch.setattr(ScanEntryWriter, "create", staticmethod(stalling))
    rig.coils.set_field(np.array([0.0, 20 * UT, 0.0]), ramp=False)
    plan = ScanPlan.from_center("held", CENTRE, (3 * 20 * UM, 4 * 20 * UM), 20 * UM,
                                settle_tau=1.0)
    assert scan.start(plan)
    try:
        qtbot.waitUntil(entered.is_set, timeout=WAIT_MS)
        assert np.any(rig.coils.field_setpoint())
        qtbot.mouseClick(scan.abort_button, QtCore.Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: live.write_stalled, timeout=WAIT_MS)
        np.testing.assert_allclose(rig.coils.field_setpoint(), 0.0, atol=1e-12)
        assert scan.status.text().startswith(
            "aborting: the rig is safe (stage stopped, field at its safe state). Creating the "
            "entry in session.h5 has not returned (disk stalled?)")
        running = live.sequencer
        assert window.close()  # asked (Yes), and closed without waiting
        assert not go.is_set() and window.holder.rig is None and len(asked) == 1
    finally:
        go.set()
    assert running.wait(WAIT_MS / 1000) == "aborted"


def test_abort_while_the_file_is_read_before_the_scan_writes_nothing(
        window, qtbot, tmp_path, monkeypatch):
    """An Abort while the start reads the file (held by a slow disk), before the entry is
    created: the scan ends "aborted" once the read returns, no entry written, and the Scan
    tab says nothing was written (not that Resume finishes the scan)."""
    scan, live = window.scan, window.scan.live
    path = tmp_path / "session.h5"
    write_map_entry(path, bump_map("other", (48, 48), 2 * UT), kind="scan")
    entered, go = threading.Event(), threading.Event()
    check = sequencer.check_new_scan

    def slow(*args, **kw):
        entered.set()
        assert go.wait(2 * WAIT_MS / 1000)
        return check(*args, **kw)

    monkeypatch.setattr(sequencer, "check_new_scan", slow)
    plan = ScanPlan.from_center("held", CENTRE, (3 * 20 * UM, 4 * 20 * UM), 20 * UM,
                                settle_tau=1.0)
    assert scan.start(plan)
    try:
        qtbot.waitUntil(entered.is_set, timeout=WAIT_MS)
        qtbot.mouseClick(scan.abort_button, QtCore.Qt.MouseButton.LeftButton)
    finally:
        go.set()
    qtbot.waitUntil(lambda: live.state == "aborted", timeout=WAIT_MS)
    assert [e.name for e in list_entries(path)] == ["other"]
    assert scan.status.text().endswith("Nothing was written to session.h5.")


def _held_subtraction_of_a_recipe(window, qtbot, tmp_path, monkeypatch
                                  ) -> threading.Event:
    """The Recipes tab runs a recipe setting a field, then subtracting two scans into
    session.h5, until the subtraction's write is held: the event that lets it go."""
    from test_cli_stalled_disk import RECIPE_FIELD_THEN_SUBTRACT, _hold_subtractions, _two_scans

    _two_scans(tmp_path / "session.h5")
    recipe = tmp_path / "field-then-subtract.toml"
    recipe.write_text(RECIPE_FIELD_THEN_SUBTRACT, encoding="utf-8")
    stalled, go = _hold_subtractions(monkeypatch)
    view = window.recipes
    try:
        assert recipe_opened(view, qtbot, recipe)
        assert recipe_ran(view, qtbot)
        qtbot.waitUntil(stalled.is_set, timeout=WAIT_MS)
    except BaseException:
        go.set()
        raise
    return go


def test_stopping_a_recipe_during_a_subtraction_on_a_stalled_disk_makes_the_rig_safe(
        window, qtbot, tmp_path, monkeypatch):
    """A recipe's subtraction, after its `set_field` step, held by a stalled disk: Stop on
    the Recipes tab makes the rig safe at once, not once the write returns, and says so and,
    `WRITE_STALLED_S` after, that the subtraction's write has not returned."""
    monkeypatch.setattr(sequencer, "WRITE_STALLED_S", 0.0)  # stalled once the rig is safe
    go = _held_subtraction_of_a_recipe(window, qtbot, tmp_path, monkeypatch)
    view, rig = window.recipes, window.holder.rig
    try:
        assert np.any(rig.coils.field_setpoint())
        view.stop()
        qtbot.waitUntil(lambda: not np.any(rig.coils.field_setpoint()), timeout=WAIT_MS)
        # the tab says so, and that the subtraction's write has not returned
        qtbot.waitUntil(lambda: "has not returned" in view.message.text(), timeout=WAIT_MS)
        assert not go.is_set() and view.runner.running  # the subtraction still held
        said = view.message.text()
        assert said.startswith("Stopping: the rig is safe (stage stopped, field at its safe "
                               "state). The subtraction 'induced' into session.h5 has not "
                               "returned (the disk stalled?)")
        assert f"`smm-daq info {tmp_path / 'session.h5'}`" in said
    finally:
        go.set()
    qtbot.waitUntil(lambda: not view.runner.running, timeout=WAIT_MS)
    assert "stopped" in view.message.text()


def test_stopping_a_recipe_during_a_subtraction_says_it_is_finishing_until_it_stalls(
        window, qtbot, tmp_path, monkeypatch):
    """Stop during a recipe's subtraction: once the rig is safe, the Recipes tab says so and
    that the subtraction is finishing; that its write has not returned (the disk stalled?) is
    said only `WRITE_STALLED_S` after, as the Scan tab says of a scan's write (a subtraction
    merely slower than the making safe is not a stalled disk)."""
    monkeypatch.setattr(sequencer, "WRITE_STALLED_S", 600.0)  # not reached: the test ends first
    go = _held_subtraction_of_a_recipe(window, qtbot, tmp_path, monkeypatch)
    view, rig = window.recipes, window.holder.rig
    try:
        view.stop()
        qtbot.waitUntil(lambda: "is finishing" in view.message.text(), timeout=WAIT_MS)
        assert not np.any(rig.coils.field_setpoint())
        assert view.message.text() == (
            "Stopping: the rig is safe (stage stopped, field at its safe state). The "
            "subtraction 'induced' into session.h5 is finishing; the recipe ends when it "
            "returns.")
        assert not go.is_set() and view.runner.running  # the subtraction still held
    finally:
        go.set()
    qtbot.waitUntil(lambda: not view.runner.running, timeout=WAIT_MS)
    assert "stopped" in view.message.text() and "has not returned" not in view.message.text()


def test_a_subtraction_and_an_mmt_save_during_a_stalled_scan_write_do_not_hold_the_close(
        window, qtbot, tmp_path, monkeypatch):
    """A subtraction started into the session file while the scan's write to it is stalled
    waits for that write (the file's lock; a write stalled inside HDF5 holds h5py's lock,
    which every file's write waits for): closing the window, which does not wait for the
    scan's write, waits no more for it, nor for an MMT result being saved; the user is told
    they are left unwritten."""
    scan, session, mmt = window.scan, window.session, window.mmt
    path = tmp_path / "session.h5"
    write_map_entry(path, bump_map("rem", (48, 48), 2 * UT), kind="scan")
    write_map_entry(path, bump_map("inf", (51, 48), 2 * UT, field=(0, 40 * UT, 0)),
                    kind="scan")
    assert opened(session, qtbot, path) and len(session.entries) == 2
    asked, _ = closing_answered(monkeypatch)
    saving = Held(lambda: "inf_mmt")  # an MMT save into the file, in the MMT tab's worker
    slow = stall_a_small_scan(scan, qtbot, monkeypatch, "held")
    try:
        assert session.subtract("inf", "rem", "induced", register=False)
        mmt._set_saving(True)
        mmt.saving_into = path
        mmt.worker.submit(saving)
        saving.wait_entered()
        qtbot.mouseClick(scan.abort_button, QtCore.Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: scan.live.write_stalled, timeout=WAIT_MS)
        assert window.close()  # asked (Yes), and closed without waiting for either
        assert not slow.go.is_set() and not saving.go.is_set() and session.subtracting
        assert len(asked) == 1
        assert asked[0].endswith(
            " Nor does it wait for the subtraction 'induced' into session.h5 and the MMT result "
            "being saved into session.h5, which wait for the stalled disk too: they are left "
            "unwritten; do them again once the file opens.\n\nClose without waiting for the "
            "write?")
    finally:
        slow.go.set()
        saving.go.set()
    # the stalled write returned (the program still running): the subtraction was left to it
    qtbot.waitUntil(lambda: "induced" in {e.name for e in list_entries(path)},
                    timeout=WAIT_MS)


@contextlib.contextmanager
def _aborted_while_its_thread_makes_safe(window, qtbot, monkeypatch
                                         ) -> Iterator[threading.Lock]:
    """A small scan held in its line 1's write (a stalled disk), aborted from the Scan tab:
    the scan's thread's making safe has not ended, its lock (yielded) held. On leaving, the
    lock is let go (if held still) and then the write, and the scan ends "aborted"."""
    scan, live = window.scan, window.scan.live
    slow = stall_a_small_scan(scan, qtbot, monkeypatch, "held")
    held = threading.Lock()  # the scan's thread's making safe, which has not ended
    try:
        qtbot.mouseClick(scan.abort_button, QtCore.Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: live.write_stalled, timeout=WAIT_MS)
        running = live.sequencer
        held.acquire()
        running._safing = held
        yield held
    finally:
        if held.locked():
            held.release()
        slow.go.set()
    assert running.wait(WAIT_MS / 1000) == "aborted"


def test_closing_says_when_the_scans_thread_may_still_be_making_the_rig_safe(
        window, qtbot, capsys, monkeypatch):
    """Closing past a stalled write waits `hand_back_wait_s` for the scan's thread's making
    safe under way, no longer: past that, the window says at once on stderr (what is left
    once the window has gone) that the rig may not be safe until that thread ends, with what
    to run; its own making safe, after that one, did every step here, and it says the rig is
    safe, no warning shown (one stuck too: the test below)."""
    asked, warned = closing_answered(monkeypatch)
    monkeypatch.setattr(sequencer, "hand_back_wait_s", lambda _rig: 0.0)
    with _aborted_while_its_thread_makes_safe(window, qtbot, monkeypatch):
        assert window.close()  # asked (Yes), and closed, the making safe not waited for
        assert len(asked) == 1 and window.holder.rig is None
        said = "the scan's thread was still making the rig safe 0 s after closing was agreed to"
        assert not warned
        err = capsys.readouterr().err
        assert f"smm-daq: {said}" in err and "smm-daq safe --profile" in err
        assert err.endswith("smm-daq: the window's own making safe, after the scan's thread's, "
                            "did every step: the rig is safe (coils at their safe state, stage "
                            "stopped)\n")


def test_closing_ends_when_the_windows_own_making_safe_does_not(
        window, qtbot, capsys, monkeypatch):
    """Closing past a stalled write, the scan's thread stuck inside the rig's making safe (its
    lock held: an instrument not answering): the window's own making safe waits for it
    `safe_wait_s` at most, then the window closes, saying in the close's warning and on
    stderr that the rig may not be safe and what to run; the making safe, left to run,
    closes the rig once it ends."""
    rig = window.holder.rig
    asked, warned = closing_answered(monkeypatch)
    monkeypatch.setattr(sequencer, "hand_back_wait_s", lambda _rig: 0.0)
    monkeypatch.setattr(safe_close, "safe_wait_s", lambda _rig: 0.0)
    with _aborted_while_its_thread_makes_safe(window, qtbot, monkeypatch):
        rig._safing.acquire()  # ... inside the rig's make_safe
        try:
            assert window.close()  # asked (Yes), and closed though the rig's lock is held
            assert len(asked) == 1 and window.holder.rig is None
            said = "making it safe at the close did not end within 0 s"
            assert len(warned) == 1 and said in warned[0]
            assert warned[0].startswith("The rig may not be safe:\nThe scan's thread was still "
                                        "making the rig safe 0 s after closing was agreed to")
            err = capsys.readouterr().err
            assert f"smm-daq: the rig may NOT be safe: {said}" in err
            assert err.count("smm-daq safe --profile") == 2  # the hand-back's, then the close's
            closing = [t for t in threading.enumerate() if t.name == safe_close.THREAD]
            assert len(closing) == 1
        finally:
            rig._safing.release()
    closing[0].join(WAIT_MS / 1000)  # made safe and closed, once the lock was free
    assert not closing[0].is_alive()


def _release_once_the_dialog_shows(window, lock) -> tuple[QtCore.QTimer, list[str]]:
    """A timer of the window's thread that, once the close's dialog shows, notes its text and
    releases `lock`: it fires only while the window's events are handled during the close."""
    seen: list[str] = []

    def look() -> None:
        dialog = window.findChild(QtWidgets.QProgressDialog, "closeWaitDialog")
        if not seen and dialog is not None and dialog.isVisible():
            seen.append(dialog.labelText())
            lock.release()

    timer = QtCore.QTimer()
    timer.timeout.connect(look)
    timer.start(10)
    return timer, seen


def test_the_window_answers_while_its_close_waits_for_the_scans_thread(
        window, qtbot, capsys, monkeypatch):
    """Closing past a stalled write while the scan's thread is still making the rig safe (a
    ramp-down): the close waits for it (`hand_back_wait_s`), and then for its own making safe,
    in a thread of its own, a dialog saying so and the window's events handled meanwhile;
    once that thread's making safe ends, the window's own does, and the close completes."""
    asked, warned = closing_answered(monkeypatch)
    # the test gives up first
    monkeypatch.setattr(sequencer, "hand_back_wait_s", lambda _rig: WAIT_MS / 1000)
    with _aborted_while_its_thread_makes_safe(window, qtbot, monkeypatch) as held:
        timer, seen = _release_once_the_dialog_shows(window, held)
        try:
            assert window.close()  # asked (Yes), and closed once the making safe ended
        finally:
            timer.stop()
        assert len(seen) == 1  # unfixed: the window's thread waited, no event handled
        assert seen[0].startswith("Waiting for the scan's thread to end its making the rig "
                                  "safe, then making the rig safe and closing it…\nThe window "
                                  "closes once that is done (at most ")
        assert len(asked) == 1 and not warned and window.holder.rig is None
        assert not window.rig_may_be_unsafe
        assert "still making the rig safe" not in capsys.readouterr().err


def test_the_window_answers_while_its_close_makes_the_rig_safe(window, capsys, monkeypatch):
    """A close whose making safe waits (another making safe under way holds the rig's lock,
    or a ramp-down): the window's events are handled meanwhile, a dialog saying what it
    waits for; the close completes once the rig is safe, with nothing to warn of."""
    warned: list[str] = []
    monkeypatch.setattr(QtWidgets.QMessageBox, "warning", lambda *a, **k: warned.append(a[2]))
    monkeypatch.setattr(safe_close, "safe_wait_s", lambda _rig: WAIT_MS / 1000)  # gives up
    rig = window.holder.rig
    rig._safing.acquire()
    timer, seen = _release_once_the_dialog_shows(window, rig._safing)
    try:
        assert window.close()
        assert len(seen) == 1  # unfixed: the window's thread waited, no event handled
        assert seen[0].startswith("Making the rig safe and closing it…\nThe window closes once "
                                  "that is done (at most ")
    finally:
        timer.stop()
        if rig._safing.locked():
            rig._safing.release()
    assert not warned and not window.rig_may_be_unsafe
    assert "NOT safe" not in capsys.readouterr().err


# The head of a program whose scan's final status is written by a write that blocks inside
# HDF5 (holding h5py's lock, as a write on a stalled disk does) and never returns; the close's
# question is answered Yes; `close_when_told(window)` closes the window once it is told
STALLING_AT_THE_END = """
import sys, threading
from h5py._objects import phil
from PyQt6 import QtCore, QtWidgets
from gui import main_window
from smm_daq.acquisition import safe_close, sequencer
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.cli.main import main
from smm_daq.storage.scan_entry import ScanEntryWriter

sequencer.WRITE_STALLED_S = 0.0
set_status, init = ScanEntryWriter.set_status, main_window.MainWindow.__init__

def stalling(writer, status, message=""):
    if status not in ("running", "paused"):
        with phil:
            threading.Event().wait()
    return set_status(writer, status, message)

def close_when_told(window):
    def told(_safe):
        if "final status" in window.scan.live.message:
            window.close()
    window.scan.live.madeSafe.connect(told)

ScanEntryWriter.set_status = stalling
QtWidgets.QMessageBox.question = staticmethod(
    lambda *a, **k: QtWidgets.QMessageBox.StandardButton.Yes)
QtWidgets.QMessageBox.warning = staticmethod(lambda *a, **k: None)
"""

# `smm-daq gui`, a scan started into FILE (argv[1]) once the rig is open
STALLED_AT_THE_END = STALLING_AT_THE_END + """
path = sys.argv[1]

def opened(window, *args, **kwargs):
    init(window, *args, **kwargs)
    def start():
        if window.holder.rig is None:
            QtCore.QTimer.singleShot(20, start)
            return
        window.scan.file_edit.setText(path)
        assert window.scan.start(ScanPlan.from_center(
            "held", (12.5e-3, 12.5e-3), (40e-6, 40e-6), 20e-6, settle_tau=1.0))
    close_when_told(window)
    QtCore.QTimer.singleShot(0, start)

main_window.MainWindow.__init__ = opened
sys.exit(main(["gui"]))
"""


def test_the_program_ends_though_its_scans_write_stalls_inside_hdf5(tmp_path, gui_env):
    """A write blocked inside HDF5 holds h5py's lock for good, and the interpreter's
    finalization waits for that lock: closed past such a write, `smm-daq gui` must still
    end, with the commands' exit code for a write left to a stalled disk (3), and the file
    it leaves opens as it is."""
    path = tmp_path / "session.h5"
    done = subprocess.run([sys.executable, "-c", STALLED_AT_THE_END, str(path)], env=gui_env,
                          capture_output=True, text=True, timeout=WAIT_MS / 1000)
    assert done.returncode == EXIT_WRITE_STALLED, done.stderr
    with open_read(path) as f:  # the lines all stored; the status: as a crash leaves it
        assert np.asarray(f["held/data/line_done"][()]).all()
        assert f["held/status"][()].decode() == "interrupted"


# `smm-daq gui --demo`, the demo's first scan (a small one: its size is no part of this)
DEMO_STALLED_AT_THE_END = STALLING_AT_THE_END + """
import functools
from gui import app, demo

def opened(window, *args, **kwargs):
    init(window, *args, **kwargs)
    close_when_told(window)

main_window.MainWindow.__init__ = opened
app.Demo = functools.partial(demo.Demo, size_um=300.0, step_um=25.0)
sys.exit(main(["gui", "--demo", "--time-scale", "0"]))
"""


def test_the_demo_ends_though_its_scans_write_stalls_inside_hdf5(tmp_path, gui_env):
    """Closed past a write blocked inside HDF5, `smm-daq gui --demo` still ends: its folder,
    whose session file cannot be read while h5py's lock is held, is kept as it is, and said
    so, not read to decide what to remove."""
    done = subprocess.run([sys.executable, "-c", DEMO_STALLED_AT_THE_END],
                          env={**gui_env, "TMPDIR": str(tmp_path)},
                          capture_output=True, text=True, timeout=WAIT_MS / 1000)
    assert done.returncode == EXIT_WRITE_STALLED, done.stderr
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("smm-daq-demo-")]
    assert len(kept) == 1 and (kept[0] / "demo.h5").exists()
    assert f"demo folder kept as it is: {kept[0]}" in done.stdout, done.stdout + done.stderr


# `smm-daq gui`, closed once the rig is open, its making safe never returning (an instrument's
# link stuck) and waited for 0 s; the close's warning answered
STUCK_AT_THE_CLOSE = """
import sys, threading
from PyQt6 import QtCore, QtWidgets
from gui import main_window
from smm_daq.acquisition import safe_close
from smm_daq.cli.main import main

safe_close.safe_wait_s = lambda rig: 0.0
QtWidgets.QMessageBox.warning = staticmethod(lambda *a, **k: print("warned:", a[2]))
init = main_window.MainWindow.__init__

def opened(window, *args, **kwargs):
    init(window, *args, **kwargs)
    def close():
        if window.holder.rig is None:
            QtCore.QTimer.singleShot(20, close)
            return
        window.holder.rig.make_safe = threading.Event().wait
        window.close()
    QtCore.QTimer.singleShot(0, close)

main_window.MainWindow.__init__ = opened
sys.exit(main(["gui"]))
"""


def test_the_program_ends_though_making_the_rig_safe_at_the_close_never_does(tmp_path, gui_env):
    """Closed while the rig's making safe never returns (an instrument's link stuck), `smm-daq
    gui` still ends, its warning and stderr saying the rig may not be safe and what to run,
    and its exit code 1, as a command whose rig may not be safe at its end."""
    done = subprocess.run([sys.executable, "-c", STUCK_AT_THE_CLOSE], env=gui_env,
                          capture_output=True, text=True, timeout=WAIT_MS / 1000)
    assert done.returncode == EXIT_FAILED, done.stderr
    said = "the rig may NOT be safe: making it safe at the close did not end within 0 s"
    assert f"smm-daq: {said}" in done.stderr and "`smm-daq safe --profile " in done.stderr
    warned = done.stdout[done.stdout.index("warned: "):]
    assert warned.startswith("warned: The rig may not be safe:\nmaking it safe at the close did "
                             "not end within 0 s"), done.stdout
    assert "\nMake it safe with `smm-daq safe --profile " in warned
