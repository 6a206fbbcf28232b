"""A long scan, line after line: the live map's GUI-thread time per line against the grid's
size, and RSS per line over a long simulated scan, headless and in the window.

    .venv/bin/python benchmarks/long_scan.py [--sizes 251,501,1001,2001] [--redraws 100]
        [--n 401] [--every 50] [--warm 150] [--skip-sizes] [--skip-scans]

1. Live map, offscreen, for each grid of --sizes (n × n): half the map measured, then
   LINES more lines come in as a rig sends them, point by point, the live redraw and a paint
   --redraws times a line (a rig's 8-hour scan of 1001 lines redraws some 290 times a line).
   GUI-thread time per line: all of it (the live scan's intake of the points, its redraws and
   the paints), and the redraws and paints alone. Then the cost of one redraw after the
   colour range widened (every pixel recoloured).
2. Headless: the simulated rig (real drivers, emulated protocols, the simulated world on its
   virtual clock, as fast as possible) runs an n × n scan (--n) through the sequencer into a
   session file, in a fresh process; RSS every --every lines.
3. Window: the same scan started from the main window's Scan tab (offscreen), in a fresh
   process: RSS, and the GUI-thread time spent on the scan (intake of events, redraws, the
   Scan tab's progress, the paint of images) per line, every --every lines.
RSS growth per line is given over the first --warm lines (the simulated world's cache of
sample responses fills over its first 20,000 sensor positions, the stage model's motion
history over its first 4096 moves per axis) and after them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PAGE = 4096
STEP = 10e-6
CENTRE = (12.5e-3, 12.5e-3)  # the simulated sample's middle
LINES = 32  # lines measured per grid size
MIN_SIDE = 2 * LINES + 1  # half the map, LINES lines measured, one more for the widened redraw


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE / 2**20


def _plan(name: str, n: int):
    from smm_daq.acquisition.plan import ScanPlan

    return ScanPlan.from_center(name, CENTRE, ((n - 1) * STEP,) * 2, STEP, settle_tau=0.0)


# --- 1. the live map against the grid's size ------------------------------------------------
def map_sizes(text: str) -> list[int]:
    """--sizes as grid sides, each large enough for `live_map_per_line` (argparse's type)."""
    try:
        sizes = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected grid sides separated by commas, e.g. 251,501; got {text!r}") from None
    if min(sizes) < MIN_SIDE:
        raise argparse.ArgumentTypeError(
            f"each grid side must be at least {MIN_SIDE} (half the map, then {LINES} lines "
            f"measured and one more); got {text}")
    return sizes


def live_map_per_line(n: int, redraws: int) -> tuple[float, float, float]:
    """(GUI-thread s per line, of which redraws and paints, s for one redraw after a
    widening) on an n × n grid, `redraws` a line."""
    import numpy as np
    from PyQt6 import QtWidgets

    from gui.live_scan import LiveScan
    from gui.map_view import MapView
    from smm_daq.acquisition.events import ScanEvent

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    view = MapView()
    view.resize(1000, 800)
    view.show()
    app.processEvents()
    live = LiveScan(view)
    plan = _plan("sizes", n)
    live.prepare(plan, Path("sizes.h5"), None)
    live.timer.stop()  # redraws come when this benchmark says
    yy, xx = np.mgrid[0:n, 0:n] / n
    values = 1e-6 * np.sin(7 * xx) * np.cos(5 * yy)  # the largest |Bz| in the first half
    half = n // 2
    live.bz[:half] = values[:half]
    live._rows = range(0, half)
    live._redraw()
    app.processEvents()
    view.graphics.viewport().repaint()
    every = max(1, n // redraws)
    drawing = 0.0
    t = time.perf_counter()
    for iy in range(half, half + LINES):
        for k, ix in enumerate(plan.line_order(iy)):
            live.bridge.push(ScanEvent(kind="point", entry="sizes", line=iy,
                                       index=(iy, int(ix)), bz=float(values[iy, ix])))
            if (k + 1) % every == 0 or k == n - 1:
                live._take_events()
                d = time.perf_counter()
                live._redraw()
                app.processEvents()  # the paint of what the redraw changed
                drawing += time.perf_counter() - d
    per_line = (time.perf_counter() - t) / LINES
    widened = time.perf_counter()
    live.bz[half + LINES, 0] = 2e-6  # beyond the range: every pixel takes a new colour
    live._rows = range(half + LINES, half + LINES + 1)
    live._redraw()
    app.processEvents()
    widened = time.perf_counter() - widened
    view.close()
    return per_line, drawing / LINES, widened


# --- 2. headless ------------------------------------------------------------------------------
def headless_child(n: int, every: int, path: Path) -> None:
    from smm_daq.acquisition.sequencer import Sequencer
    from smm_daq.instruments.profile import load_profile
    from smm_daq.instruments.rig import open_rig

    rig = open_rig(load_profile())
    seq = Sequencer(rig, path, _plan("long", n))
    t0 = time.perf_counter()

    def on_event(e) -> None:
        if e.kind == "line_done" and (e.line + 1) % every == 0:
            print(f"{e.line + 1} {_rss_mb():.3f} 0 {time.perf_counter() - t0:.2f}", flush=True)

    seq.subscribe(on_event)
    assert seq.run() == "finished"
    rig.close()


# --- 3. in the window -------------------------------------------------------------------------
def window_child(n: int, every: int, path: Path) -> None:
    from gui_long_scan import BusyMeter  # first: it times methods the window connects to
    from PyQt6 import QtCore, QtWidgets

    meter = BusyMeter()
    from gui.gui_thread_gc import collect_in_gui_thread
    from gui.main_window import MainWindow
    from smm_daq.instruments.profile import load_profile

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    settings = QtCore.QSettings(str(path.with_suffix(".ini")), QtCore.QSettings.Format.IniFormat)
    with collect_in_gui_thread():  # as the application: worker threads never delete widgets
        window = MainWindow(load_profile(), settings, persist=False)
        window.instruments.timer.stop()
        window.resize(1400, 900)
        window.show()
        window.show_view("scan")
        holder = window.holder
        holder.open()
        _spin(app, lambda: holder.rig is not None)
        window.scan.file_edit.setText(str(path))
        live = window.scan.live
        t0 = time.perf_counter()
        assert window.scan.start(_plan("long", n))
        reported = 0
        while live.running or live.state == "starting":
            app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 20)
            if live.lines_stored >= reported + every:
                reported = live.lines_stored - live.lines_stored % every
                print(f"{reported} {_rss_mb():.3f} {meter.busy:.6f} "
                      f"{time.perf_counter() - t0:.2f}", flush=True)
        assert live.state == "finished", live.message
        holder.close()
        window.close()
        del window


def _spin(app, until, timeout_s: float = 600) -> None:
    from PyQt6 import QtCore

    deadline = time.monotonic() + timeout_s
    while not until():
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 20)
        if time.monotonic() > deadline:
            raise TimeoutError("the window did not get there in time")


def _run_child(kind: str, n: int, every: int) -> list[tuple[float, ...]]:
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [sys.executable, __file__, "--child", kind, "--n", str(n), "--every", str(every),
             "--out", str(Path(tmp) / "long.h5")],
            capture_output=True, text=True, cwd=Path(__file__).parent,
            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        )
    if done.returncode:
        print(f"the {kind} scan's process ended with code {done.returncode}:\n"
              f"{done.stderr[-2000:]}")
    return [tuple(float(v) for v in line.split()) for line in done.stdout.split("\n")
            if line.strip()]


def _print_rows(title: str, rows: list[tuple[float, ...]], warm: int, gui: bool) -> None:
    print(title)
    print("   lines    RSS MB" + ("   GUI ms/line" if gui else "") + "   seconds")
    last_line, last_busy = 0.0, 0.0
    for line, rss, busy, t in rows:
        per_line = (busy - last_busy) / (line - last_line) * 1e3
        print(f"  {int(line):6d}  {rss:8.1f}" + (f"  {per_line:12.2f}" if gui else "")
              + f"  {t:8.1f}")
        last_line, last_busy = line, busy
    warm_rows = [r for r in rows if r[0] <= warm]
    late = [r for r in rows if r[0] >= warm]
    if warm_rows:
        (l0, r0, *_), (l1, r1, *_) = warm_rows[0], warm_rows[-1]
        if l1 > l0:
            print(f"  RSS growth over the warm-up (lines {int(l0)}-{int(l1)}): "
                  f"{(r1 - r0) * 1024 / (l1 - l0):.1f} kB per line")
    if len(late) >= 2:
        (l0, r0, *_), (l1, r1, *_) = late[0], late[-1]
        print(f"  RSS growth after it (lines {int(l0)}-{int(l1)}): "
              f"{(r1 - r0) * 1024 / (l1 - l0):.2f} kB per line")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=map_sizes, default="251,501,1001,2001",
                        help=f"grid sides for part 1, each at least {MIN_SIDE}")
    parser.add_argument("--redraws", type=int, default=100, help="live redraws a line, part 1")
    parser.add_argument("--n", type=int, default=401, help="grid side of the simulated scan")
    parser.add_argument("--every", type=int, default=50, help="lines between RSS readings")
    parser.add_argument("--warm", type=int, default=150, help="lines of the warm-up")
    parser.add_argument("--skip-sizes", action="store_true", help="no part 1")
    parser.add_argument("--skip-scans", action="store_true", help="no parts 2 and 3")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child = headless_child if args.child == "headless" else window_child
        child(args.n, args.every, Path(args.out))
        return
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if not args.skip_sizes:
        print(f"live map, offscreen: {LINES} lines after half the map, {args.redraws} redraws "
              "and paints a line")
        print("   grid (n x n)   GUI ms/line   per 1000 points   redraws+paints ms/line   "
              "widened redraw ms")
        for n in args.sizes:
            per_line, drawing, widened = live_map_per_line(n, args.redraws)
            print(f"  {n:6d} x {n:<6d}  {per_line * 1e3:11.2f}  {per_line * 1e6 / n:15.2f}  "
                  f"{drawing * 1e3:22.2f}  {widened * 1e3:18.2f}")
    if not args.skip_scans:
        for kind, title in (("headless", "headless"), ("window", "in the window (offscreen)")):
            rows = _run_child(kind, args.n, args.every)
            _print_rows(f"{args.n} x {args.n} simulated scan, {title}:", rows, args.warm,
                        gui=kind == "window")


if __name__ == "__main__":
    main()
