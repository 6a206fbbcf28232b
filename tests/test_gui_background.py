"""The GUI's worker threads: a call that never returns (a read behind a stalled disk's write)
does not hold the application's exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _run(repo: Path, env: dict[str, str], script: str) -> subprocess.CompletedProcess:
    """`script` in a Python process of its own (a crash there is an exit status, not the
    end of the test run), this checkout importable, Qt offscreen."""
    return subprocess.run([sys.executable, "-c", script], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=120)


STUCK_AT_EXIT = """
import threading
from PyQt6 import QtWidgets
from gui.background import Background

app = QtWidgets.QApplication([])
never = threading.Event()
worker = Background("stuck")
worker.submit(never.wait)  # a read waiting for a write that never returns
worker.submit(lambda: print("dropped call ran"))
worker.shutdown(wait=False)  # the window closes
print("closed", flush=True)
"""


def test_a_call_that_never_returns_does_not_hold_the_process_at_exit(repo, gui_env):
    done = _run(repo, gui_env, STUCK_AT_EXIT)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "closed\n"


def test_calls_dropped_at_shutdown_are_no_longer_pending(qtbot):
    """The window's screenshot waits for the pending reads to be drawn: one dropped by the
    close would be waited for forever."""
    import threading

    from gui.background import Background

    go, ran = threading.Event(), []
    worker = Background("dropped")
    worker.submit(lambda: go.wait(60), ran.append)
    worker.submit(lambda: "dropped", ran.append)
    worker.shutdown(wait=False)
    assert worker.pending in (0, 1)  # the first call may not have started yet: dropped too
    go.set()
    qtbot.waitUntil(lambda: worker.pending == 0, timeout=60_000)
    assert "dropped" not in ran


def test_a_call_ended_by_system_exit_or_ctrl_c_ends_with_its_error_callback(qtbot):
    """A call ended by SystemExit or KeyboardInterrupt (something it calls exits) is told to
    its `on_error`, as an error of the program's: what waits for the call's end (a flag, a
    button disabled) is undone; the future returned still holds the exception itself."""
    from gui.background import Background, CallEnded

    worker = Background("ended")
    for ending in (SystemExit(3), KeyboardInterrupt()):
        told: list[BaseException] = []

        def end(ending: BaseException = ending) -> None:
            raise ending

        future = worker.submit(end, told.append, told.append)
        qtbot.waitUntil(lambda: bool(told), timeout=60_000)  # noqa: B023
        assert worker.pending == 0
        [error] = told
        assert isinstance(error, CallEnded) and error.__cause__ is ending
        assert type(ending).__name__ in str(error)
        assert future.exception(60) is ending


OWNER_DELETED = """
import threading
from PyQt6 import QtWidgets, sip
from gui.background import Background

app = QtWidgets.QApplication([])
widget = QtWidgets.QWidget()  # a tab, with its worker
worker = Background("owned", widget)
began, go = threading.Event(), threading.Event()
told = []
call = worker.submit(lambda: (began.set(), go.wait())[1], told.append, told.append)
began.wait()
sip.delete(widget)  # the window freed while the call runs (its read left to a slow disk)
go.set()
call.result()  # the call has ended, its end sent
app.processEvents()
print("told", told, flush=True)
"""


def test_a_call_ending_after_its_widget_was_deleted_neither_crashes_nor_calls_back(
        repo, gui_env):
    """A call that ends once the widget owning its worker is deleted (the window freed after
    its close, a test torn down) is dropped: it had crashed the process (SIGSEGV), its worker
    signalling through the deleted worker object."""
    done = _run(repo, gui_env, OWNER_DELETED)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "told []\n"
    assert "Error" not in done.stderr, done.stderr


FIRST_MADE_OFF_THE_GUI_THREAD = """
import threading
from PyQt6 import QtCore, QtWidgets
from gui.background import Background

app = QtWidgets.QApplication([])
maker = threading.Thread(target=lambda: Background("made-in-a-worker"))
maker.start()  # the application's first Background, made in a thread with no event loop
maker.join(60)
told = []
worker = Background("view")
worker.submit(lambda: 42, lambda v: told.append((v, QtCore.QThread.currentThread()
                                                 is app.thread())))
worker.shutdown(wait=True, timeout=60)
app.processEvents()
print("told", told, flush=True)
"""


def test_outcomes_reach_the_gui_thread_whichever_thread_made_the_first_worker(
        repo, gui_env):
    """The relay that carries every worker's outcomes was made in the thread of the first
    `Background`: made in a worker, it stayed there, and no outcome of any window worker
    was ever delivered."""
    done = _run(repo, gui_env, FIRST_MADE_OFF_THE_GUI_THREAD)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "told [(42, True)]\n", done.stderr


BRIDGE_DELETED = """
import threading
from PyQt6 import QtCore, QtWidgets, sip
from gui.scan_bridge import ScanEventBridge
from smm_daq.acquisition.events import ScanEvent

app = QtWidgets.QApplication([])
owner = QtCore.QObject()  # the window's live scan
bridge = ScanEventBridge(owner)
told, raised = [], []
threading.excepthook = lambda args: raised.append(repr(args.exc_value))  # the window's hook
bridge.eventsReady.connect(lambda: told.append(bridge.drain()))
sip.delete(owner)  # the window freed, its scan's write left to a stalled disk
# which returns: the scan's thread tells its end
ended = threading.Thread(target=bridge.push, args=(ScanEvent("aborted", "s", 0),))
ended.start()
ended.join()
app.processEvents()
print("told", told, "raised", raised, flush=True)
"""


def test_a_scan_event_after_the_window_was_deleted_raises_nothing(repo, gui_env):
    """A scan's thread that outlives the window (its write left to a stalled disk, the
    window freed before the program ends) tells its end into a deleted bridge: that had
    raised in the scan's thread (RuntimeError, the bridge deleted), which the window's hook
    reports as an error of its code (exit code 1)."""
    done = _run(repo, gui_env, BRIDGE_DELETED)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "told [] raised []\n"
