"""The window through a whole long scan: GUI-thread time per line, and RSS, as lines go by.

    .venv/bin/python benchmarks/gui_long_scan.py [--n 1001] [--at 10,500,1000] [--simulated]

The main window (offscreen) runs an n × n scan through its Scan tab, as an operator starts
one: the real sequencer and file writer in their worker thread, the live map in the GUI
thread. The instruments answer at once (see `acquisition_per_point.py`), so a million
points take a minute at most; `--simulated` runs the whole simulated rig instead (real
drivers, emulated protocols, the simulated world on its virtual clock: use a smaller --n).

Figures, at each line of --at (the scan is held there, its events all taken in):
- busy: GUI-thread time spent on the scan (the live scan's intake of events and its redraws,
  the Scan tab's progress, the paint of images) per line over the lines since the last hold,
  with the redraws per line made meanwhile (at most 10 a second, so their number per line
  depends on how fast lines come: here, far faster than on a rig);
- intake: GUI-thread time to take in one line's point events (pushed and taken in);
- row redraw: one live redraw as the timer makes it while the line fills (its new points in
  one row), with the paint, in ms, and the pixels coloured; whole redraw: the same when the
  colour range widens (every pixel recoloured);
- RSS of the process (MB).
At the end: how many paints coloured the whole map (the first range, and each widening),
and the GUI-thread time per line at a rig's pace (--hours for the scan): a rig's line of 1001
points takes about 29 s in an 8-hour scan, so the map is redrawn about 290 times a line.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import tempfile
import threading
import time
from pathlib import Path

from acquisition_per_point import _Coils, _InstantRig, _LockIn, _Stage
from PyQt6 import QtCore, QtWidgets

from smm_daq.acquisition.plan import ScanPlan
from smm_daq.clock import VirtualClock
from smm_daq.instruments.profile import load_profile

PAGE = 4096
STEP = 10e-6
CENTRE = (12.5e-3, 12.5e-3)  # the simulated sample's middle


class _Rig(_InstantRig):
    def close(self) -> None:
        pass


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE / 2**20


class BusyMeter:
    """GUI-thread time spent on the scan: the live scan's intake of events and its redraws,
    the Scan tab's progress, and the paint of images; each method timed (the window's
    signals connect to them when it is built, so this comes first)."""

    def __init__(self) -> None:
        import pyqtgraph as pg

        from gui.live_scan import LiveScan
        from gui.scan_tab import ScanTab

        self.busy = 0.0
        self._depth = 0
        for cls, name in ((LiveScan, "_take_events"), (LiveScan, "_redraw"),
                          (ScanTab, "_progressed"), (pg.ImageItem, "paint")):
            setattr(cls, name, self._timed(getattr(cls, name)))

    def _timed(self, fn):
        def timed(*args, **kw):
            self._depth += 1
            t = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self.busy += time.perf_counter() - t

        return timed


class WholeDrawings:
    """Counts the paints that coloured the whole live map (not some of its rows)."""

    def __init__(self, view) -> None:
        self.whole = 0
        self._counting = True
        render = view.image.render

        def counted() -> None:
            render()
            self.whole += self._counting

        view.image.render = counted

    @contextlib.contextmanager
    def paused(self):
        self._counting = False
        try:
            yield
        finally:
            self._counting = True


class Holds:
    """Wraps the bridge's `push` (called in the scan's thread): after "line_done" of a line
    in `at` the scan waits until the GUI lets it go."""

    def __init__(self, push, at: set[int]) -> None:
        self.push, self.at = push, at
        self.held = threading.Event()
        self.go = threading.Event()
        self.line = -1

    def __call__(self, event) -> None:
        self.push(event)
        if event.kind == "line_done" and event.line + 1 in self.at:
            self.line = event.line
            self.held.set()
            assert self.go.wait(600)
            self.go.clear()


def _spin(app: QtWidgets.QApplication, until, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while not until():
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 20)
        if time.monotonic() > deadline:
            raise TimeoutError("the window did not get there in time")


def _redraw_cost(app: QtWidgets.QApplication, window, line: int, repeats: int = 5
                 ) -> list[tuple[float, int]]:
    """(median seconds, pixels coloured) of a live redraw with its paint: one as the timer
    makes it while line `line` fills (its new points in that row), and one after the colour
    range widened (every pixel recoloured)."""
    from gui.map_geometry import symmetric_level

    live, view = window.scan.live, window.scan.view
    coloured = [0]
    image = view.image
    colour = image._colour

    def counting(start: int, stop: int) -> None:
        coloured[0] += (stop - start) * image.image.shape[1]
        colour(start, stop)

    image._colour = counting
    row = range(line, line + 1)
    figures = []
    try:
        for widen in (False, True):
            times, coloured[0] = [], 0
            for _ in range(repeats):
                view.graphics.viewport().repaint()
                app.processEvents()
                coloured[0] = 0
                t = time.perf_counter()
                if widen:  # as if the row's points were beyond the range
                    view.level_T = 0.999 * symmetric_level(live.bz[line])
                live._rows = row  # as if the row's points had come in
                live._redraw()
                app.processEvents()  # the paint of what changed, as in the window
                times.append(time.perf_counter() - t)
            figures.append((statistics.median(times), coloured[0]))
    finally:
        del image._colour
        view._apply_levels()  # the map's own range again
    live._rows = None
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1001, help="grid side (points per line, lines)")
    parser.add_argument("--at", default="10,500,1000", help="lines at which to measure")
    parser.add_argument("--simulated", action="store_true", help="on the simulated rig")
    parser.add_argument("--hours", type=float, default=8.0,
                        help="a rig's scan time, for the GUI time per line at its pace")
    args = parser.parse_args()
    at = sorted({int(v) for v in args.at.split(",") if 0 < int(v) <= args.n})

    from gui.gui_thread_gc import collect_in_gui_thread
    from gui.main_window import MainWindow

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    # as the application: worker threads never delete widgets (a window freed in one crashed
    # or hung the exit)
    with tempfile.TemporaryDirectory() as tmp, collect_in_gui_thread():
        settings = QtCore.QSettings(str(Path(tmp) / "gui.ini"),
                                    QtCore.QSettings.Format.IniFormat)
        meter = BusyMeter()
        window = MainWindow(load_profile(), settings, persist=False)
        window.instruments.timer.stop()
        window.resize(1400, 900)
        window.show()
        window.show_view("scan")
        if args.simulated:
            holder = window.holder
            holder.open()
            _spin(app, lambda: holder.rig is not None)
        else:
            window.holder.rig = _Rig(load_profile(), VirtualClock(), _Stage(), _Coils(), _LockIn())
        plan = ScanPlan.from_center("long", CENTRE, ((args.n - 1) * STEP,) * 2, STEP,
                                    settle_tau=0.0)
        window.scan.file_edit.setText(str(Path(tmp) / "long.h5"))
        live = window.scan.live
        holds = Holds(live.bridge.push, set(at))
        live.bridge.push = holds  # type: ignore[method-assign]
        wholes = WholeDrawings(window.scan.view)
        rss0 = _rss_mb()
        print(f"{args.n} x {args.n} scan from the window "
              f"({'simulated rig' if args.simulated else 'instant instruments'}), offscreen; "
              f"RSS at start {rss0:.1f} MB")
        print("   line  busy ms/line  redraws/line  intake ms/line   row redraw ms (pixels)  "
              "whole redraw ms (pixels)  RSS MB")
        assert window.scan.start(plan)
        last_line, last_busy, last_redraws = 0, 0.0, 0
        t0 = time.perf_counter()
        at_pace: list[tuple[int, float, float, float]] = []
        for k in at:
            _spin(app, holds.held.is_set)
            holds.held.clear()
            _spin(app, lambda k=k: live.points >= k * args.n)
            app.processEvents()
            lines = k - last_line
            busy = (meter.busy - last_busy) / lines
            redraws = (live.redraws - last_redraws) / lines
            intake = _intake_cost(live, args.n)
            with wholes.paused():
                (row, row_px), (whole, whole_px) = _redraw_cost(app, window,
                                                                min(k, args.n - 1))
            at_pace.append((k, intake, row, whole))
            print(f"  {k:5d}  {busy * 1e3:12.2f}  {redraws:12.2f}  {intake * 1e3:14.2f}  "
                  f"{row * 1e3:8.2f} ({row_px:9d})  {whole * 1e3:9.2f} ({whole_px:9d})  "
                  f"{_rss_mb():6.1f}")
            last_line, last_busy, last_redraws = k, meter.busy, live.redraws
            holds.go.set()
        _spin(app, lambda: not live.running)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"scan {live.state} in {time.perf_counter() - t0:.0f} s; RSS at the end "
              f"{_rss_mb():.1f} MB (peak {peak:.1f} MB), growth {(_rss_mb() - rss0):.1f} MB")
        print(f"paints that coloured the whole map: {wholes.whole} of {live.redraws} live "
              "redraws (the first range, and each widening)")
        _print_pace(at_pace, args.n, args.hours, wholes.whole)
        window.scan.live.timer.stop()
        window.holder.close()
        window.close()
        del window


def _print_pace(rows: list[tuple[int, float, float, float]], n: int, hours: float,
                widenings: int) -> None:
    """GUI-thread time per line if the scan took `hours` on a rig: the map is redrawn
    REDRAWS_PER_S times a second, each redraw the line's row, and whole `widenings` times in
    the scan (spread over its lines here)."""
    from gui.live_scan import REDRAWS_PER_S

    line_s = hours * 3600 / n
    redraws = line_s * REDRAWS_PER_S
    print(f"at a rig's pace ({hours:g} h for {n} lines: {line_s:.1f} s and {redraws:.0f} "
          "redraws a line), GUI-thread time per line:")
    for k, intake, row, whole in rows:
        per_line = intake + redraws * row + whole * widenings / n
        print(f"  line {k:5d}: {per_line * 1e3:7.0f} ms ({100 * per_line / line_s:.1f} % of "
              "the GUI thread)")


def _intake_cost(live, nx: int, repeats: int = 3) -> float:
    """Seconds the GUI thread takes to take in one line of point events (into a copy of the
    live scan's state, so the scan's own is untouched)."""
    from smm_daq.acquisition.events import ScanEvent

    events = [ScanEvent(kind="point", entry="long", line=0, index=(0, ix), bz=1e-6,
                        progress=0.5, eta_s=1.0) for ix in range(nx)]
    saved = live.bz, live.points, live._rows
    times = []
    try:
        live.bz = live.bz.copy()
        for _ in range(repeats):
            t = time.perf_counter()
            for e in events:
                type(live.bridge).push(live.bridge, e)
            live._take_events()
            times.append(time.perf_counter() - t)
    finally:
        live.bz, live.points, live._rows = saved
    return statistics.median(times)


if __name__ == "__main__":
    main()
