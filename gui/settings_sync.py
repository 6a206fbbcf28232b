"""The window's settings written to disk beside the window as it closes.

`QSettings.sync()` writes the settings file, in the user's home folder: on a stalled disk (a
network home that stopped answering) it does not return, and on the window's thread it held
the close, before the rig was made safe, for good. Here it runs in a thread of its own, which
the close waits for, bounded (`SYNC_WAIT_S`); the update Qt posts to the window's thread for
the same settings (which would write the file there, and wait there for the same disk) is
withdrawn.

The thread holds the settings, a Qt object, which must not be freed there: the window's thread
keeps them until the thread has ended (`wait`), or, the write left to the disk (`leave`), for
the program's life. The program then ends without QSettings' destructor, which would write
what is unwritten on the window's thread (`MainWindow.left_stalled_write`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from PyQt6 import QtCore

SYNC_WAIT_S = 10.0  # real seconds: a small file; a disk that answers writes it at once
THREAD = "the window's settings being written"
_LEFT: list[QtCore.QSettings] = []  # settings whose write a close waited no longer for


class SettingsSync:
    """`settings.sync()` under way in a thread of its own (started here)."""

    def __init__(self, settings: QtCore.QSettings) -> None:
        QtCore.QCoreApplication.removePostedEvents(settings, QtCore.QEvent.Type.UpdateRequest)
        self.file = settings.fileName()
        self._settings = settings
        self._ended = threading.Event()
        self._thread = threading.Thread(target=_sync, args=(settings.sync, self._ended),
                                        daemon=True, name=THREAD)
        self._thread.start()

    def wait(self, timeout: float) -> bool:
        """Whether the write has ended, waiting `timeout` seconds at most (any thread)."""
        if not self._ended.wait(timeout):
            return False
        self._thread.join()  # it lets go of the settings before the window's thread can
        return True

    def leave(self) -> None:
        """The write is left to the disk (from the window's thread): its settings are kept."""
        _LEFT.append(self._settings)


def _sync(sync: Callable[[], None], ended: threading.Event) -> None:
    try:
        sync()
    finally:
        ended.set()
