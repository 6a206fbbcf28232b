"""The window through a whole long scan: GUI-thread time per line, and RSS, as lines go by.

    .venv/bin/python benchmarks/gui_long_scan.py [--n 1001] [--at 10,500,1000] [--simulated]
        [--hours 8] [--fast-line-s 0.5]

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
- intakes, progress: the live scan's intakes of events (each frame of its timer, and each
  event other than a point) and the progress updates shown, per line;
- intake: GUI-thread time to take in one line's point events that came together (pushed
  from another thread, as the sequencer pushes them);
- row redraw: one live redraw as the timer makes it while the line fills (its new points in
  one row), with the paint, in ms, and the pixels coloured; whole redraw: the same when the
  colour range widens (every pixel recoloured);
- RSS of the process (MB).
At the end: how many paints coloured the whole map (the first range, and each widening),
and the GUI-thread time per line at a rig's pace (--hours for the scan) and at a fast line's
(--fast-line-s), each measured on a line whose points come one at a time, the window idle
between them: a rig's line of 1001 points takes about 29 s in an 8-hour scan, so the live
timer makes about 290 frames a line; a fast line of 0.5 s, 5.
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
        self.calls = {"_take_events": 0, "_redraw": 0, "_progressed": 0, "paint": 0}
        self._depth = 0
        for cls, name in ((LiveScan, "_take_events"), (LiveScan, "_redraw"),
                          (ScanTab, "_progressed"), (pg.ImageItem, "paint")):
            setattr(cls, name, self._timed(getattr(cls, name), name))

    def _timed(self, fn, name: str):
        def timed(*args, **kw):
            self.calls[name] += 1
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
    parser.add_argument("--fast-line-s", type=float, default=0.5,
                        help="a fast line's time (s), for the GUI time per line at its pace")
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
        print("   line  busy ms/line  intakes/line  progress/line  redraws/line  "
              "intake ms/line   row redraw ms (pixels)  whole redraw ms (pixels)  RSS MB")
        assert window.scan.start(plan)
        last_line, last_busy, last_calls = 0, 0.0, dict(meter.calls)
        t0 = time.perf_counter()
        widenings: list[tuple[int, float]] = []
        for k in at:
            _spin(app, holds.held.is_set)
            holds.held.clear()
            _spin(app, lambda k=k: live.points >= k * args.n)
            app.processEvents()
            lines = k - last_line
            busy = (meter.busy - last_busy) / lines
            calls = {name: (meter.calls[name] - last_calls[name]) / lines for name in last_calls}
            intake = _intake_cost(app, live, args.n)
            with wholes.paused():
                (row, row_px), (whole, whole_px) = _redraw_cost(app, window,
                                                                min(k, args.n - 1))
            widenings.append((k, whole))
            print(f"  {k:5d}  {busy * 1e3:12.2f}  {calls['_take_events']:12.2f}  "
                  f"{calls['_progressed']:13.2f}  {calls['_redraw']:12.2f}  "
                  f"{intake * 1e3:14.2f}  {row * 1e3:8.2f} ({row_px:9d})  "
                  f"{whole * 1e3:9.2f} ({whole_px:9d})  {_rss_mb():6.1f}")
            last_line, last_busy, last_calls = k, meter.busy, dict(meter.calls)
            holds.go.set()
        _spin(app, lambda: not live.running)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"scan {live.state} in {time.perf_counter() - t0:.0f} s; RSS at the end "
              f"{_rss_mb():.1f} MB (peak {peak:.1f} MB), growth {(_rss_mb() - rss0):.1f} MB")
        print(f"paints that coloured the whole map: {wholes.whole} of {live.redraws} live "
              "redraws (the first range, and each widening)")
        with wholes.paused():
            _print_pace(app, live, meter, widenings, args.n, args.hours, args.fast_line_s,
                        wholes.whole)
        window.scan.live.timer.stop()
        window.holder.close()
        window.close()
        del window


def _print_pace(app: QtWidgets.QApplication, live, meter: BusyMeter,
                widenings: list[tuple[int, float]], n: int, hours: float, fast_line_s: float,
                whole: int) -> None:
    """GUI-thread time per line at a rig's pace (the scan taking `hours`) and at a fast
    line's (`fast_line_s` a line), measured on one line of n points (a row of the finished
    map drawn again): the points come one at a time, the window idle between them (what each
    one tells it taken in at once), and the live timer makes its REDRAWS_PER_S frames a
    second, spread over the line; at the rig's pace plus the whole map's recolouring `whole`
    times in the scan (the first range and each widening, at its cost at each line of --at),
    spread over its lines."""
    from gui.live_scan import REDRAWS_PER_S

    rig_line_s = hours * 3600 / n
    per_line = {}
    for line_s, what in ((rig_line_s, f"a rig's pace ({hours:g} h for {n} lines)"),
                         (fast_line_s, "a fast line's pace")):
        frames = max(1, round(line_s * REDRAWS_PER_S))
        busy, calls = per_line[line_s] = _rig_pace_line(app, live, meter, n, frames)
        print(f"at {what}: {line_s:.3g} s and {frames} frames of the live timer a line, one "
              f"line of {n} points, each alone, costs the GUI thread {busy * 1e3:.1f} ms "
              f"({100 * busy / line_s:.2f} %: {calls['_take_events']} intakes, "
              f"{calls['_progressed']} progress updates, {calls['_redraw']} redraws)")
    busy = per_line[rig_line_s][0]
    print(f"at a rig's pace, with the whole map's {whole} recolourings spread over the lines:")
    for k, cost in widenings:
        total = busy + cost * whole / n
        print(f"  line {k:5d}: {total * 1e3:7.0f} ms ({100 * total / rig_line_s:.1f} % of "
              "the GUI thread)")


def _line_events(n: int, iy: int, values) -> list:
    from smm_daq.acquisition.events import ScanEvent

    return [ScanEvent(kind="point", entry="long", line=iy, index=(iy, ix),
                      bz=float(values[ix]), progress=0.5, eta_s=1.0) for ix in range(n)]


def _intake_cost(app: QtWidgets.QApplication, live, nx: int, repeats: int = 3) -> float:
    """Seconds the GUI thread takes to take in one line of point events that came together
    (a fly scan's line, or a busy window's), pushed from another thread as the sequencer
    pushes them (into a copy of the live scan's state, so the scan's own is untouched)."""
    events = _line_events(nx, 0, [1e-6] * nx)
    push = type(live.bridge).push
    saved = live.bz, live.points, live._rows
    times = []
    try:
        live.bz = live.bz.copy()
        for _ in range(repeats):
            pusher = threading.Thread(target=lambda: [push(live.bridge, e) for e in events])
            pusher.start()
            pusher.join()
            t = time.perf_counter()
            live._take_events()
            times.append(time.perf_counter() - t)
        app.processEvents()  # what the pushes told the window finds them taken in
    finally:
        live.bz, live.points, live._rows = saved
    return statistics.median(times)


def _rig_pace_line(app: QtWidgets.QApplication, live, meter: BusyMeter, n: int,
                   frames: int) -> tuple[float, dict[str, int]]:
    """(GUI-thread seconds, the BusyMeter's calls) for one line of n points pushed one at a
    time from another thread, the window's events processed after each push as an idle
    window does, and `frames` frames of the live timer spread over the line. The points go
    into a copy of the map's array, into the last row (its own values again), which is drawn
    back from the map's own array after."""
    iy = live.bz.shape[0] - 1
    events = _line_events(n, iy, live.bz[iy].copy())
    push = type(live.bridge).push
    go, pushed = threading.Semaphore(0), threading.Semaphore(0)

    def pusher() -> None:
        for e in events:
            go.acquire()
            push(live.bridge, e)
            pushed.release()

    frame = getattr(live, "_frame", live._redraw)  # the timer's slot
    saved = live.bz, live.points, live._rows
    busy, calls = meter.busy, dict(meter.calls)
    thread = threading.Thread(target=pusher)
    thread.start()
    try:
        live.bz = live.bz.copy()
        for i in range(n):
            go.release()
            pushed.acquire()
            app.processEvents()
            if (i + 1) * frames // n > i * frames // n:  # `frames` of them, spread evenly
                frame()
                app.processEvents()  # the paint of what the frame drew
        busy = meter.busy - busy
        calls = {name: meter.calls[name] - calls[name] for name in calls}
    finally:
        thread.join()
        live.bz, live.points = saved[0], saved[1]
        live._rows = range(iy, iy + 1)
        live._redraw()
        app.processEvents()
    return busy, calls


if __name__ == "__main__":
    main()
