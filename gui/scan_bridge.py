"""Carries sequencer events from its worker thread to the GUI thread.

The sequencer calls `push` from its thread for every event. Point events, one a measured
point, are gathered into arrays and tell the GUI nothing: it takes them in on its own
frame timer, a batch at a time, so what the window spends on a scan is per frame, however
fast (a fly scan) or slow (a rig's step scan, each point alone) points come. Every other
event (started, line done, paused, the end, ...) tells the GUI at once, by one queued Qt
signal (at most one waits in the GUI's queue), and is taken in with the points before it, in
order. The signal is emitted in the GUI thread (`gui_caller`): a scan's thread that outlives
the window (a write left to a stalled disk) never signals through a deleted bridge.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from PyQt6 import QtCore

from gui.background import gui_caller
from smm_daq.acquisition.events import ScanEvent


@dataclass(frozen=True)
class PointBatch:
    """Point events that came one after another: their grid indices and Bz (T), in the order
    they came, and the last of them (its progress, ETA and line are the batch's)."""

    rows: np.ndarray  # iy of each point (intp)
    columns: np.ndarray  # ix of each point (intp)
    bz: np.ndarray  # Bz of each point (float, T)
    last: ScanEvent


class ScanEventBridge(QtCore.QObject):
    """Thread-safe queue of events, points in batches, plus a Qt signal saying 'there are
    events other than points'."""

    eventsReady = QtCore.pyqtSignal()

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._items: list[ScanEvent | PointBatch] = []
        self._points: list[tuple[int, int, float]] = []  # (iy, ix, bz) since the last item
        self._last_point: ScanEvent | None = None
        self._lock = threading.Lock()
        self._notified = False
        self._notify = gui_caller(self, lambda bridge: bridge.eventsReady.emit())

    def push(self, event: ScanEvent) -> None:
        """Called from the sequencer's worker thread."""
        with self._lock:
            if event.kind == "point" and event.index is not None and event.bz is not None:
                self._points.append((*event.index, event.bz))
                self._last_point = event
                return
            self._close_points()
            self._items.append(event)
            notify = not self._notified
            self._notified = True
        if notify:
            self._notify()

    def drain(self) -> list[ScanEvent | PointBatch]:
        """All events pushed so far, oldest first, points that came together as one
        `PointBatch` (GUI thread)."""
        with self._lock:
            self._close_points()
            items, self._items = self._items, []
            self._notified = False
        return items

    def _close_points(self) -> None:
        """The points gathered since the last event become one batch (lock held)."""
        if not self._points:
            return
        assert self._last_point is not None
        table = np.array(self._points, dtype=float)
        indices = table[:, :2].astype(np.intp)
        self._items.append(PointBatch(indices[:, 0], indices[:, 1], table[:, 2],
                                      self._last_point))
        self._points, self._last_point = [], None
