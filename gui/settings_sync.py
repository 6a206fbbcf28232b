"""The window's settings written to their file in a thread of their own, while the window runs
and as it closes.

`QSettings` writes its file, in the user's home folder, on the thread the settings belong to:
in `sync()`, and in the update Qt posts there after each `setValue`. On a stalled disk (a
network home that stopped answering) neither returns: on the window's thread that froze the
window (a session file opened, say), or held its close, before the rig was made safe, for good.
So the window hands every setting it changes to a `SettingsWriter`, whose thread sets it in
settings of its own (made there: Qt posts their updates to that thread, which handles no
events) and writes the file. The window's own settings are only read, as it opens: while the
writer's thread waits for the disk it holds Qt's lock of the file, which any read or write of
the same file, by any settings, would wait for.

The close waits for the last write, bounded (`SYNC_WAIT_S`); past it the write is left to the
disk. The thread's settings are never freed: they must not be freed outside their thread, and
QSettings' destructor would write what is unwritten again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from PyQt6 import QtCore

SYNC_WAIT_S = 10.0  # real seconds: a small file; a disk that answers writes it at once
THREAD = "the window's settings being written"
_KEPT: list[QtCore.QSettings] = []  # each writer's thread's settings, for the program's life


class SettingsWriter:
    """Settings set from the window's thread (`setValue`, as on QSettings), written to the
    file of `settings` in a thread of the writer's own, started at the first; a key set again
    before its write is written with its latest value."""

    def __init__(self, settings: QtCore.QSettings) -> None:
        self.file = settings.fileName()
        self._format = settings.format()
        self.sync: Callable[[QtCore.QSettings], None] = QtCore.QSettings.sync  # the write
        self._lock = threading.Lock()
        self._woken = threading.Condition(self._lock)
        self._pending: dict[str, object] = {}
        self._written = threading.Event()  # nothing set is left unwritten
        self._written.set()
        self._thread: threading.Thread | None = None

    def setValue(self, key: str, value: object) -> None:
        """`key` set to `value` (from the window's thread); returns at once."""
        with self._lock:
            self._pending[key] = value
            self._written.clear()
            self._woken.notify()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name=THREAD)
            self._thread.start()

    def wait(self, timeout: float) -> bool:
        """Whether everything set has been written, waiting `timeout` seconds at most."""
        return self._written.wait(timeout)

    def _run(self) -> None:
        settings = QtCore.QSettings(self.file, self._format)
        _KEPT.append(settings)
        while True:
            with self._lock:
                while not self._pending:
                    self._written.set()
                    self._woken.wait()
                batch, self._pending = self._pending, {}
            for key, value in batch.items():
                settings.setValue(key, value)
            self.sync(settings)
