"""Waiting for slow work as the window closes, the window answering meanwhile.

Making the rig safe as the window closes may take minutes (a field's ramp-down, the scan's
thread still making the rig safe, an instrument not answering, each bounded): done on the
window's own thread it would freeze the window, not repainting, with nothing said. Here the
work runs in a thread of its own while a modal dialog says what the close waits for; the
window's events are handled meanwhile (a nested event loop), and the call returns the work's
result once it has ended, so the close completes then, as it did before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from PyQt6 import QtCore, QtGui, QtWidgets

T = TypeVar("T")
THREAD = "the window's close waiting for the rig"  # the name of the thread doing the work


class WaitDialog(QtWidgets.QProgressDialog):
    """A busy indicator with no Cancel: what it waits for is bounded and cannot be cut short
    (Escape and the title bar's close do nothing)."""

    def __init__(self, text: str, parent: QtWidgets.QWidget) -> None:
        super().__init__(text, None, 0, 0, parent)  # no Cancel button; range 0-0: busy
        self.setObjectName("closeWaitDialog")
        self.setWindowModality(QtCore.Qt.WindowModality.ApplicationModal)
        self.setAutoClose(False)
        self.setAutoReset(False)
        self.setMinimumDuration(0)

    def reject(self) -> None:  # Escape
        pass

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        event.ignore()


class _Ended(QtCore.QObject):
    ended = QtCore.pyqtSignal()


def wait_with_dialog(parent: QtWidgets.QWidget, title: str, text: str,
                     work: Callable[[], T]) -> T:
    """`work()` in a thread of its own, `text` shown in a modal dialog over `parent` until it
    ends; returns its result (raises its error). `work` must end by itself (each of its waits
    bounded): nothing cuts it short. Should the application quit meanwhile (which ends every
    event loop), the thread is waited for without the dialog's events."""
    outcome: list[tuple[bool, Any]] = []
    loop = QtCore.QEventLoop()
    signal = _Ended()
    signal.ended.connect(loop.quit, QtCore.Qt.ConnectionType.QueuedConnection)

    def run() -> None:
        try:
            outcome.append((True, work()))
        except BaseException as exc:  # for the caller, in the window's thread
            outcome.append((False, exc))
        finally:
            signal.ended.emit()

    dialog = WaitDialog(text, parent)
    dialog.setWindowTitle(title)
    dialog.show()
    thread = threading.Thread(target=run, daemon=True, name=THREAD)
    thread.start()
    try:
        loop.exec()
        thread.join()  # ended already, unless the application quit meanwhile
    finally:
        dialog.hide()
        dialog.deleteLater()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value
