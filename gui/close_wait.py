"""Waiting for slow work as the window closes, the window answering meanwhile.

Making the rig safe as the window closes may take minutes (a field's ramp-down, the scan's
thread still making the rig safe, an instrument not answering, each bounded), and so may a
save or a subtraction in hand: done on the window's own thread it would freeze the window,
not repainting, with nothing said. Here the work runs in a thread of its own, the window's
events handled meanwhile (a nested event loop), and the call returns the work's result once
it has ended, so the close completes then, as it did before.

A modal dialog says what the close waits for, but only once it has lasted `SHOW_AFTER_MS`:
most closes take milliseconds, and a dialog flashing up for them (saying "at most 181 s")
only alarms. Until it shows, the window takes no input (it is closing), though it repaints.

The wait is bounded by what the caller says the work takes at most (`limit_s`, and a little
more), whether the window's events are handled or not (the application quitting meanwhile
ends every event loop): past it the work is left to its thread (a daemon, which does not
keep the process alive) and `NotEnded` says so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from PyQt6 import QtCore, QtGui, QtWidgets

T = TypeVar("T")
THREAD = "the window's close waiting for the rig"  # the name of the thread doing the work
SHOW_AFTER_MS = 500  # a close that ends sooner shows no dialog
GRACE_S = 5.0  # beyond the work's own bound, for its thread to be scheduled and to return
QUIT_SLICE_S = 0.05  # the window repainted this often once the application quits
# how often the window's thread looks whether the work has ended (the work's thread signals
# nothing: a Qt object it held the last reference to would be deleted there, which crashes)
POLL_MS = 20
# work the close waited no longer for, kept for the program's life: a Qt object it holds the
# last reference to would otherwise be deleted in its thread as it ends, which crashes
_LEFT: list[Callable[[], Any]] = []


class NotEnded(Exception):
    """The work had not ended when the close waited no longer for it (`limit_s` past)."""

    def __init__(self, waited_s: float) -> None:
        self.waited_s = waited_s
        super().__init__(f"it had not ended {waited_s:.0f} s after the close began")


class WaitDialog(QtWidgets.QProgressDialog):
    """A busy indicator with no Cancel: what it waits for is bounded and cannot be cut short
    (Escape and the title bar's close do nothing)."""

    def __init__(self, text: str, parent: QtWidgets.QWidget) -> None:
        super().__init__(text, None, 0, 0, parent)  # no Cancel button; range 0-0: busy
        self.setObjectName("closeWaitDialog")
        self.setWindowModality(QtCore.Qt.WindowModality.ApplicationModal)
        self.setAutoClose(False)
        self.setAutoReset(False)
        self.reset()  # stops the dialog's own timer, which would show it at once

    def reject(self) -> None:  # Escape
        pass

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        event.ignore()


def wait_with_dialog(parent: QtWidgets.QWidget, title: str, text: str,
                     work: Callable[[], T], limit_s: float) -> T:
    """`work()` in a thread of its own, `text` shown in a modal dialog over `parent` once it
    has lasted `SHOW_AFTER_MS`, until it ends; returns its result (raises its error). `work`
    must end by itself within `limit_s` (each of its waits bounded): nothing cuts it short,
    but it is waited for `limit_s + GRACE_S` at most, then `NotEnded` is raised."""
    outcome: list[tuple[bool, Any]] = []
    ended = threading.Event()
    loop = QtCore.QEventLoop()
    woken: list[str] = []  # why the loop was quit: none, the application quit

    def run() -> None:  # touches no Qt object: the last reference to one must not be here
        try:
            outcome.append((True, work()))
        except BaseException as exc:  # for the caller, in the window's thread
            outcome.append((False, exc))
        finally:
            ended.set()

    def wake(why: str) -> Callable[[], None]:
        def call() -> None:
            if why != "ended" or ended.is_set():
                woken.append(why)
                loop.quit()
        return call

    waited = limit_s + GRACE_S
    deadline = time.monotonic() + waited
    dialog = WaitDialog(text, parent)
    dialog.setWindowTitle(title)
    show, give_up = _timer(SHOW_AFTER_MS, wake("show")), _timer(waited * 1000, wake("late"))
    look = _timer(POLL_MS, wake("ended"), single=False)
    thread = threading.Thread(target=run, daemon=True, name=THREAD)
    thread.start()
    try:
        while not ended.is_set() and "late" not in woken:
            shown = dialog.isVisible()
            before = len(woken)
            loop.exec(QtCore.QEventLoop.ProcessEventsFlag.AllEvents if shown else
                      QtCore.QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents)
            if len(woken) == before:  # the application quits: no event loop runs any more
                _repaint_until(ended, deadline)
                break
            if "show" in woken and not shown:
                dialog.show()
    finally:
        for timer in (show, give_up, look):
            timer.stop()
        dialog.hide()
        dialog.deleteLater()
    if not ended.is_set():
        _LEFT.append(work)  # what it holds (the window, say) is never freed in its thread
        raise NotEnded(waited)
    thread.join(GRACE_S)  # it has returned: its thread lets go of `work` before this does
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def run_events_until(done: Callable[[], bool], limit_s: float) -> bool:
    """The window's events handled (an event loop of its own: the application's has ended, say)
    until `done()`, looked at every `POLL_MS`, for `limit_s` at most; whether it is done. Once
    the application quits meanwhile (every event loop ended), in slices."""
    deadline = time.monotonic() + limit_s
    loop = QtCore.QEventLoop()
    woken: list[bool] = []

    def look() -> None:
        if done() or time.monotonic() >= deadline:
            woken.append(True)
            loop.quit()

    look_timer = _timer(POLL_MS, look, single=False)
    try:
        while not woken:
            loop.exec()
            if not woken:  # the application quits: no event loop runs any more
                while not done() and time.monotonic() < deadline:
                    QtCore.QCoreApplication.processEvents()
                    threading.Event().wait(QUIT_SLICE_S)
                break
    finally:
        look_timer.stop()
    return done()


def _timer(ms: float, call: Callable[[], None], *, single: bool = True) -> QtCore.QTimer:
    timer = QtCore.QTimer()
    timer.setSingleShot(single)
    timer.timeout.connect(call)
    timer.start(max(0, min(int(ms), 2**31 - 1)))
    return timer


def _repaint_until(ended: threading.Event, deadline: float) -> None:
    """Once the application quits (every event loop ended), the work is waited for until
    `deadline`, the window's events still handled (its dialog repainted) in slices."""
    while not ended.wait(max(0.0, min(QUIT_SLICE_S, deadline - time.monotonic()))):
        if time.monotonic() >= deadline:
            return
        QtCore.QCoreApplication.processEvents()
