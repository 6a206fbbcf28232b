"""A scan running in the sequencer's worker thread, shown live in a map view.

Events cross to the GUI thread through `ScanEventBridge`. Points are taken in from a frame
timer, `REDRAWS_PER_S` times a second: each frame puts the points that came since the last
into the map's array at once (one array assignment, not one call a point), shows the
progress once and redraws the map once, however fast or slow points arrive; so the window's
work during a scan is per frame, not per point, and it stays responsive during a fast fly
scan. Every other event (started, paused, a line stored, the end) is taken in as soon as it
comes, with the points before it. A redraw draws the rows that changed since the last
(`MapView.fill_rows`), not the whole grid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PyQt6 import QtCore

from gui.map_view import MapView
from gui.scan_bridge import PointBatch, ScanEventBridge
from smm_daq.acquisition.events import ScanEvent
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.storage.mapdata import MapData

REDRAWS_PER_S = 10
TERMINAL = ("finished", "failed", "aborted")


class LiveScan(QtCore.QObject):
    """Starts a Sequencer, follows its events, fills `view`; one scan at a time."""

    stateChanged = QtCore.pyqtSignal(str)  # idle, starting, running, paused, finished, ...
    progressed = QtCore.pyqtSignal(float, object)  # progress 0..1, ETA s or None
    ended = QtCore.pyqtSignal(str, str)  # final kind, message
    # aborted during a line's write that has not returned: the rig made safe (True) or not
    # all of it (the message says what); the scan ends once the write returns
    madeSafe = QtCore.pyqtSignal(bool)
    # a warning the scan gave at a line's end (the ambient field's drift); "" as a scan starts
    warned = QtCore.pyqtSignal(str)

    def __init__(self, view: MapView, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self.bridge = ScanEventBridge(self)
        self.bridge.eventsReady.connect(self._take_events)
        self.timer = QtCore.QTimer(self, interval=1000 // REDRAWS_PER_S)
        self.timer.timeout.connect(self._frame)
        self.sequencer: Any = None
        self.plan: ScanPlan | None = None
        self.path: Path | None = None
        self.state = "idle"
        self.bz = np.zeros((0, 0))
        self.points = 0  # point events taken in
        self.redraws = 0  # map refreshes made
        self.lines_stored = 0  # lines in the file, finished before a resume included
        self.message = ""
        self.warnings: list[str] = []  # the scan's warnings at its lines' ends, in order
        self.rig_safe: bool | None = None  # how the sequencer left the rig (None: not told)
        self.write_stalled = False  # aborted, rig made safe, a line's write not returned
        self._rows: range | None = None  # the rows with points not yet drawn
        self._asked: str | None = None  # "pause" or "resume" clicked before `attach`

    @property
    def running(self) -> bool:
        """True from start until the final event (finished, failed or aborted)."""
        return self.state not in ("idle", *TERMINAL)

    def prepare(self, plan: ScanPlan, path: Path, sensor_size: tuple[float, float] | None,
                bz: np.ndarray | None = None) -> None:
        """Show the plan's grid, empty or with the lines already measured (`bz`, a resumed
        scan); call before the sequencer starts."""
        self.plan, self.path = plan, Path(path)
        self.sequencer, self._asked = None, None  # the last scan's is done with
        self.bz = np.full((plan.ny, plan.nx), np.nan) if bz is None else np.array(bz, float)
        self.points = self.redraws = 0
        self.lines_stored = int(np.isfinite(self.bz).all(axis=1).sum())  # stored whole
        self._rows = None
        self.message = ""
        self.warnings = []
        self.warned.emit("")
        self.rig_safe, self.write_stalled = None, False
        self.view.set_map(
            MapData(
                bz=self.bz.copy(), x=plan.x, y=plan.y, height=plan.height,
                sensor_size=sensor_size, applied_field=np.array(plan.field), name=plan.name,
                title=plan.title,
            )
        )
        self.view.plot.setTitle(f"{plan.name} (live)")
        self._set_state("starting")
        # the last scan's progress is not this one's: what is measured already (a resumed
        # scan's lines), until the sequencer's first event (after the field and the first
        # move, which can take a while on a rig)
        self.progressed.emit(float(np.isfinite(self.bz).mean()) if self.bz.size else 0.0, None)
        self.timer.start()

    def attach(self, sequencer: Any) -> None:
        """The sequencer built for the prepared plan (already subscribed to `bridge.push`),
        before or after it starts: a Pause, Resume or Abort clicked before it is here is
        passed on now."""
        self.sequencer = sequencer
        if self.state == "aborting":
            sequencer.abort()
        elif self._asked == "pause":
            sequencer.pause()
        elif self._asked == "resume":
            sequencer.resume()
        self._asked = None

    def pause(self) -> None:
        if self.state == "running":
            self._ask("pause")

    def resume(self) -> None:
        if self.state == "paused":
            self._ask("resume")

    def _ask(self, action: str) -> None:
        """Pause or resume the sequencer, or, before it is attached, once it is."""
        if self.sequencer is None:
            self._asked = action
        else:
            getattr(self.sequencer, action)()

    def abort(self) -> None:
        """Ask the sequencer to stop; it makes the rig safe, then sends "aborted"."""
        if not self.running:
            return
        self._set_state("aborting")
        if self.sequencer is not None:
            self.sequencer.abort()

    def fail_to_start(self, message: str, kind: str = "failed") -> None:
        """The sequencer could not be built or started: nothing was written, and the rig is
        as it was, or made safe (`message` says when it could not be). `kind` is the end
        told (`ended`): "not started" where the scan was refused before it began."""
        self.timer.stop()
        self.sequencer = None  # never scanned: nothing of it to tell or hand back
        self.message = message
        self._set_state("failed")
        self.ended.emit(kind, message)

    # --- events --------------------------------------------------------------------------
    def _frame(self) -> None:
        """The timer's frame: the points that came since the last, taken in and drawn."""
        self._take_events()
        self._redraw()

    def _take_events(self) -> None:
        """Everything the sequencer sent since the last intake, in order; the progress of
        the last event before the end shown once, before the end is (what the end shows,
        e.g. the status line, stays)."""
        last: ScanEvent | None = None
        for item in self.bridge.drain():
            if isinstance(item, PointBatch):
                self._take_points(item)
                last = item.last
            elif item.kind in TERMINAL:
                self._show_progress(last)
                last = None
                self._apply(item)
            else:
                last = item
                self._apply(item)
        self._show_progress(last)

    def _show_progress(self, last: ScanEvent | None) -> None:
        if last is not None:
            self.progressed.emit(last.progress, last.eta_s)

    def _take_points(self, batch: PointBatch) -> None:
        """A batch's points into the map's array; their rows are drawn at the next redraw."""
        self.bz[batch.rows, batch.columns] = batch.bz  # the sequencer sends each point once
        self.points += batch.rows.size
        low, high = int(batch.rows.min()), int(batch.rows.max()) + 1
        rows = self._rows
        self._rows = (range(low, high) if rows is None
                      else range(min(rows.start, low), max(rows.stop, high)))

    def _apply(self, event: ScanEvent) -> None:
        if event.kind == "line_done":
            self.lines_stored += 1
            if event.message:
                self.warnings.append(event.message)
                self.warned.emit(event.message)
        elif event.kind in ("started", "resumed") and self.state != "aborting":
            self._set_state("running")
        elif event.kind == "paused" and self.state != "aborting":
            self.message = event.message
            self._set_state("paused")
        elif event.kind == "made_safe":
            self.message, self.rig_safe, self.write_stalled = (event.message, event.rig_safe,
                                                               True)
            self.madeSafe.emit(bool(event.rig_safe))
        elif event.kind in TERMINAL:
            self.timer.stop()
            self._redraw()
            self.message, self.rig_safe, self.write_stalled = event.message, event.rig_safe, False
            self._set_state(event.kind)
            self.ended.emit(event.kind, event.message)

    def _redraw(self) -> None:
        if self._rows is not None:
            self.view.fill_rows(self.bz, self._rows)
            self._rows = None
            self.redraws += 1

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.stateChanged.emit(state)
