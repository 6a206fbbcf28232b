"""Carries sequencer events from its worker thread to the GUI thread.

The sequencer calls `push` from its thread for every event; the GUI is told by one queued
Qt signal per batch, not per event, so however fast points arrive the GUI's event queue
holds at most one notification and the window stays responsive.
"""

from __future__ import annotations

import threading
from collections import deque

from PyQt6 import QtCore


class ScanEventBridge(QtCore.QObject):
    """Thread-safe queue of events plus a Qt signal saying 'there are some'."""

    eventsReady = QtCore.pyqtSignal()

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._events: deque[object] = deque()
        self._lock = threading.Lock()
        self._notified = False

    def push(self, event: object) -> None:
        """Called from the sequencer's worker thread."""
        with self._lock:
            self._events.append(event)
            notify = not self._notified
            self._notified = True
        if notify:
            self.eventsReady.emit()

    def drain(self) -> list[object]:
        """All events pushed so far, oldest first (GUI thread)."""
        with self._lock:
            events = list(self._events)
            self._events.clear()
            self._notified = False
        return events
