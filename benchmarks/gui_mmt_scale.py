"""The window at the MMT lab's scale: GUI-thread time per action with 4,300 grains.

    .venv/bin/python benchmarks/gui_mmt_scale.py [--grains 4300] [--cuboids 10]
        [--nx 951] [--ny 771] [--step-um 1.2] [--points]

A session file holds a map of nx × ny sensors at step-um and an MMT result entry of the
grains, written by the product's own writer (`write_result_entry`) from a result of random
values (the inversion itself is `mmt_scale.py --preset lab-size`): cuboid grains of
--cuboids cuboids each, or with --points point grains (a dipole model, as a Dragonfly export
inverts). The main window (offscreen) then lists the file, opens the result entry on the
Session tab, draws the grains' outlines there, shows the result on the MMT tab (table,
outlines, maps, net), sorts, filters, selects grains, exports the table, saves it, and shows
the saved entry again as read back from the file (`load_result`).

With --invert, the MMT tab then inverts a mid-size synthetic sample made by `smm-daq mmt synth`
(--invert-size-um, --invert-step-um, 1e5 grains/mm³ in 50 µm, a point sensor 1 µm above the
top, as its figures have always been taken; --points: a dipole model of point grains) from
the window, as a user runs it: while it runs a 10 ms timer on the GUI thread measures how
long the window goes without handling an event (the longest gap between its ticks), the
progress bar's updates are counted, and a second run is cancelled at its first block of
sensors (the wall time from Cancel until the tab says it stopped).

Figures, per action: milliseconds of GUI-thread time (the calls made on the GUI thread; the
paint of the window after it, `grab`, on its own line); for work handed to a worker, the wall
time until its result is on show. Counts of work: the calls of the table model's `data` (a
cell, for one role) and the outline segments handed to the map views.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
from PyQt6 import QtCore, QtWidgets

import gui.mmt_view as mmt_view
from gui.grain_outlines import grain_segments
from gui.grain_table import GrainTableModel
from gui.main_window import MainWindow
from smm_daq.analysis.grains import GrainSet, write_grains_csv
from smm_daq.analysis.mmt.formats.points import write_points
from smm_daq.analysis.mmt.models.multipole import PointGrains
from smm_daq.analysis.mmt.result_file import write_result_entry
from smm_daq.analysis.mmt.solver.joint import MultipoleResult
from smm_daq.cli.main import main as cli_main
from smm_daq.instruments.profile import load_profile
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry

UM = 1e-6
UT = 1e-6
HEIGHT = 5 * UM
WAIT_S = 600.0


class CountingModel(GrainTableModel):
    """The grain table, counting the calls of its `data` (a cell, for one role)."""

    reads = 0

    def data(self, index, role=QtCore.Qt.ItemDataRole.DisplayRole):
        CountingModel.reads += 1
        return super().data(index, role)


def cuboid_grains(n: int, per: int, width: float, height: float,
                  rng: np.random.Generator) -> GrainSet:
    """`n` grains of `per` cuboids each under a `width` × `height` map, one grain to a cell
    of a lattice: a stack of slabs 1 µm thick, each of its own footprint (2-8 µm a side,
    shifted), as micro-CT voxels merged into cuboids make them."""
    side = int(np.ceil(np.sqrt(n * width / height)))
    cell_x, cell_y = width / side, height / int(np.ceil(n / side))
    k = np.arange(n)
    corner = np.c_[(k % side) * cell_x, (k // side) * cell_y]
    size = rng.uniform(2 * UM, min(8 * UM, 0.4 * min(cell_x, cell_y)), (n, per, 2))
    shift = rng.uniform(0, 1, (n, per, 2)) * (0.5 * min(cell_x, cell_y) - 0.5 * size)
    top = rng.uniform(-50 * UM, -3 * UM, n)
    xy = corner[:, None, :] + 0.25 * min(cell_x, cell_y) + shift + size / 2
    z = top[:, None] - (np.arange(per)[None, :] + 0.5) * UM
    cub = np.concatenate([xy, z[..., None], size, np.full((n, per, 1), UM)], axis=2)
    return GrainSet(cub.reshape(-1, 6), np.repeat(k, per), k + 1)


def result_of(grains: GrainSet | PointGrains, data: MapData,
              rng: np.random.Generator) -> MultipoleResult:
    """A dipole-model result (cuboid grains: the cuboid model) of random values."""
    g = grains.n_grains
    m = rng.normal(0, 3e4, (g, 3))
    cov = np.zeros((g, 3, 3))
    cov[:, range(3), range(3)] = rng.uniform(1e6, 1e9, (g, 3))
    fitted = data.with_bz(data.bz * 0.9, name="fitted")
    residual = data.with_bz(data.bz * 0.1, name="residual")
    point = isinstance(grains, PointGrains)
    return MultipoleResult(
        grains=grains, magnetization=m, covariance=cov, sigma=0.25 * UT,
        sigma_from_residual=True, fitted=fitted, residual=residual, condition_number=1e3,
        n_sensors=data.bz.size, damping=0.0, height=HEIGHT,
        model="dipole" if point else "cuboid", coefficients=m, coefficient_covariance=cov,
        scans=(data.name,), sigmas=(0.25 * UT,), fits=[(fitted, residual)], masks=[None])


class Clock:
    """GUI-thread time of the calls it times, and the wall time of waits."""

    def __init__(self, app: QtWidgets.QApplication, window: MainWindow) -> None:
        self.app, self.window = app, window

    def call(self, what: str, fn: Callable[[], Any], paint: bool = True) -> Any:
        CountingModel.reads = 0
        t0 = time.perf_counter()
        value = fn()
        busy = time.perf_counter() - t0
        reads = CountingModel.reads
        line = f"{what:<46s} {busy * 1e3:9.1f} ms GUI thread"
        if reads:
            line += f", {reads} data() calls"
        print(line, flush=True)
        if paint:
            t0 = time.perf_counter()
            self.window.grab()
            print(f"{'  then the paint of the window':<46s} "
                  f"{(time.perf_counter() - t0) * 1e3:9.1f} ms", flush=True)
        return value

    def wait(self, what: str, signal: Any, start: Callable[[], Any]) -> list:
        """Start work handed to a worker: the wall time until `signal` (the worker's time and
        the GUI thread's)."""
        got: list = []
        signal.connect(lambda *args: got.append(args))
        t0 = time.perf_counter()
        start()
        while not got and time.perf_counter() - t0 < WAIT_S:
            self.app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 20)
        print(f"{what:<46s} {(time.perf_counter() - t0) * 1e3:9.1f} ms until shown "
              "(worker + GUI)", flush=True)
        return got[0] if got else []


def invert_from_window(app: QtWidgets.QApplication, mmt: Any, folder: Path,
                       args: argparse.Namespace) -> None:
    """Invert a synthetic sample from the MMT tab: the GUI thread's longest stall while it
    runs, the progress shown, then a run cancelled at its first block."""
    path, grains = folder / "synthetic.h5", folder / ("points.txt" if args.points else "g.csv")
    synth = ["mmt", "synth", "--out", str(path), "--grains-out", str(grains), "--truth-out",
             str(folder / "truth.csv"), "--size-um", args.invert_size_um, "--thickness-um",
             "50", "--density-per-mm3", "1e5", "--height-um", "1", "--sensor-size-um", "0,0",
             "--step-um", str(args.invert_step_um), "--seed", "2"]
    cli_main(synth + (["--model", "dipole"] if args.points else []))
    mmt.set_file(path)
    mmt.set_grain_file(grains, "points" if args.points else "cuboids")
    mmt.model.setCurrentText("dipole" if args.points else "cuboid")
    ticks: list[float] = []
    timer = QtCore.QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    updates: list[int] = []
    mmt.progress_bridge.sensors.connect(lambda done, _total: updates.append(done))
    ended: list[tuple] = []
    mmt.finished.connect(lambda *a: ended.append(a))
    shown_in: list[tuple[float, float]] = []  # when the result was shown on the GUI thread
    show = mmt._done

    def timed_show(value: Any) -> None:
        start = time.perf_counter()
        show(value)
        shown_in.append((start, time.perf_counter()))

    mmt._done = timed_show
    t0 = time.perf_counter()
    timer.start()
    mmt.run()
    while not ended and time.perf_counter() - t0 < WAIT_S:
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 20)
    timer.stop()
    wall = time.perf_counter() - t0
    gaps = np.diff(ticks) * 1e3 if len(ticks) > 1 else np.zeros(1)
    print(f"Invert from the window: {mmt.result.grains.n_grains if ended and ended[0][0] else '?'}"
          f" grains, {mmt.status.text().splitlines()[0][:70]}", flush=True)
    print(f"{'  wall time until the result is shown':<46s} {wall * 1e3:9.1f} ms", flush=True)
    before = np.diff([t for t in ticks if not shown_in or t <= shown_in[0][0]]) * 1e3
    print(f"{'  longest GUI-thread stall while it ran':<46s} "
          f"{before.max() if before.size else float('nan'):9.1f} ms "
          f"(10 ms timer; median gap {np.median(gaps):.1f} ms)", flush=True)
    if shown_in:
        print(f"{'  showing the result (GUI thread)':<46s} "
              f"{(shown_in[0][1] - shown_in[0][0]) * 1e3:9.1f} ms", flush=True)
    mmt._done = show
    print(f"{'  progress bar updates':<46s} {len(updates):9d}", flush=True)
    ended.clear()
    cancel_at: list[float] = []

    def cancel_once(_done: int, _total: int) -> None:
        if not cancel_at:
            cancel_at.append(time.perf_counter())
            mmt.cancel()

    mmt.progress_bridge.sensors.connect(cancel_once)
    mmt.run()
    t0 = time.perf_counter()
    while not ended and time.perf_counter() - t0 < WAIT_S:
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 20)
    mmt.progress_bridge.sensors.disconnect(cancel_once)
    stopped = (time.perf_counter() - cancel_at[0]) * 1e3 if cancel_at else float("nan")
    print(f"{'  Cancel at the first block: stopped after':<46s} {stopped:9.1f} ms "
          f"({ended[0][1] if ended else 'not ended'})", flush=True)


def show_saved(app: QtWidgets.QApplication, mmt: Any, clock: Clock, path: Path,
               grain_file: Path, fmt: str) -> None:
    """Show the saved result entry on the MMT tab as a user does after `mmt invert`: read in
    the tab's load worker (with the grain file, for the outlines), then shown; the longest
    the GUI thread goes without handling an event while it is read (a 10 ms timer), and the
    GUI-thread time that shows it once read."""
    mmt.set_grain_file(grain_file, fmt)
    ticks: list[float] = []
    timer = QtCore.QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    show, shown_in = mmt._show, []

    def timed_show(*a: Any) -> None:
        t0 = time.perf_counter()
        show(*a)
        shown_in.append((t0, time.perf_counter()))

    mmt._show = timed_show
    timer.start()
    ended = clock.wait("MMT: show the saved entry (read in a worker)", mmt.loadEnded,
                       lambda: mmt.load_result(path, "scan_mmt"))
    timer.stop()
    mmt._show = show
    start = shown_in[0][0] if shown_in else np.inf
    reading = np.diff([t for t in ticks if t <= start] + [min(start, time.perf_counter())])
    print(f"{'  shown?':<46s} {ended[0] if ended else 'no'}: "
          f"{ended[1].splitlines()[0][:60] if ended else ''}", flush=True)
    print(f"{'  of it, showing it (GUI thread)':<46s} "
          f"{(shown_in[0][1] - start) * 1e3 if shown_in else float('nan'):9.1f} ms",
          flush=True)
    print(f"{'  longest GUI-thread stall while it is read':<46s} "
          f"{reading.max() * 1e3 if reading.size else float('nan'):9.1f} ms (10 ms timer)",
          flush=True)
    print(f"{'  outline segments on the map':<46s} "
          f"{mmt.data_view.outlines.xData.size // 2:9d}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grains", type=int, default=4300)
    parser.add_argument("--cuboids", type=int, default=10, help="cuboids per grain")
    parser.add_argument("--nx", type=int, default=951)
    parser.add_argument("--ny", type=int, default=771)
    parser.add_argument("--step-um", type=float, default=1.2)
    parser.add_argument("--points", action="store_true", help="point grains, dipole model")
    parser.add_argument("--invert", action="store_true",
                        help="then invert a mid-size synthetic sample from the window")
    parser.add_argument("--invert-size-um", default="300,300")
    parser.add_argument("--invert-step-um", type=float, default=2.0)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    mmt_view.GrainTableModel = CountingModel  # the MMT tab's table counts its reads

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        x = np.arange(args.nx) * args.step_um * UM
        y = np.arange(args.ny) * args.step_um * UM
        X, Y = np.meshgrid(x, y)
        bz = 5 * UT * np.sin(X / (40 * UM)) * np.cos(Y / (35 * UM))
        data = MapData(bz=bz, x=x, y=y, height=HEIGHT, sensor_size=(0.0, 0.0), name="scan")
        path = folder / "s.h5"
        write_map_entry(path, data, kind="scan")
        if args.points:
            grains: GrainSet | PointGrains = PointGrains(
                np.c_[rng.uniform(0, x[-1], args.grains), rng.uniform(0, y[-1], args.grains),
                      rng.uniform(-60 * UM, -5 * UM, args.grains)],
                rng.uniform(1, 30, args.grains) * UM**3, np.arange(1, args.grains + 1))
            grain_file, fmt = folder / "grains.txt", "points"
            write_points(grain_file, grains)
        else:
            grains = cuboid_grains(args.grains, args.cuboids, x[-1], y[-1], rng)
            grain_file, fmt = folder / "grains.csv", "cuboids"
            write_grains_csv(grain_file, grains)
        result = result_of(grains, data, rng)
        table = result.table()
        t0 = time.perf_counter()
        write_result_entry(path, "scan_mmt", "scan", result, table, {"command": "benchmark"})
        print(f"{args.grains} {'point' if args.points else 'cuboid'} grains"
              + ("" if args.points else f" ({grains.cuboids.shape[0]} cuboids)")
              + f", map {args.nx} × {args.ny}; result entry written in "
              f"{time.perf_counter() - t0:.2f} s", flush=True)

        app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
        settings = QtCore.QSettings(str(folder / "settings.ini"), QtCore.QSettings.Format.IniFormat)
        window = MainWindow(load_profile(), settings, persist=False)
        window.resize(1500, 950)
        window.show()
        app.processEvents()
        clock = Clock(app, window)
        session, mmt = window.session, window.mmt

        window.tabs.setCurrentWidget(session)
        clock.wait("Session: open the file (list its entries)", session.entriesRead,
                   lambda: session.open_file(path))
        row = session._row_of("scan_mmt")
        clock.wait("Session: open the result entry", session.mapShown,
                   lambda: session.show_entry(row))
        clock.wait("Session: draw the grain outlines", session.grainsLoaded,
                   lambda: session.load_grains(grain_file, fmt))
        print(f"{'  outline segments on the map':<46s} "
              f"{session.map_view.outlines.xData.size // 2:9d}")
        clock.call("Session: paint the window with the outlines", window.grab, paint=False)

        t0 = time.perf_counter()
        outlines = grain_segments(grains)
        print(f"{'MMT: the outlines (in the inversion worker)':<46s} "
              f"{(time.perf_counter() - t0) * 1e3:9.1f} ms", flush=True)
        made = {"command": "benchmark"}
        t0 = time.perf_counter()
        note = mmt_view.grains_note(result, made, table)
        print(f"{'MMT: the grains note (in the inversion worker)':<46s} "
              f"{(time.perf_counter() - t0) * 1e3:9.1f} ms", flush=True)
        window.tabs.setCurrentWidget(mmt)
        mmt._inverting = path  # as `run` sets it: the result is of this file's scans
        clock.call("MMT: show the result (table, maps, outlines, net)",
                   lambda: mmt._done(([data], result, table, [], made, outlines, note)))
        print(f"{'  outline segments on the map':<46s} "
              f"{mmt.data_view.outlines.xData.size // 2:9d}")
        clock.call("MMT: sort by ssr", lambda: mmt.sort_by("ssr_per_um"))
        clock.call("MMT: sort by depth_um, descending",
                   lambda: mmt.sort_by("depth_um", QtCore.Qt.SortOrder.DescendingOrder))
        clock.call("MMT: filter (uncertainty ratio ≤ its median)",
                   lambda: mmt.max_ratio.setValue(float(np.median(table["uncertainty_ratio_pct"]))))
        print(f"{'  grains shown':<46s} {mmt.proxy.rowCount():9d}")
        clock.call("MMT: filter off", lambda: mmt.max_ratio.setValue(0.0))
        for g in (0, args.grains // 2):
            clock.wait(f"MMT: select grain {g} (its own field)", mmt.grainShown,
                       lambda g=g: mmt.table.selectRow(mmt.proxy.shown_rows().index(g)))
            clock.call(f"MMT: select grain {g} (GUI thread)", lambda g=g: mmt.select_grain(g))
        clock.call("MMT: export CSV", lambda: mmt.export_csv(folder / "out.csv"), paint=False)
        if args.points:
            clock.call("MMT: export NPZ", lambda: mmt.export_library(folder / "out.npz"),
                       paint=False)
        clock.wait("MMT: save to the file (worker)", mmt.saveEnded, lambda: mmt.save_to_file())
        show_saved(app, mmt, clock, path, grain_file, fmt)
        if args.invert:
            invert_from_window(app, mmt, folder, args)
        window.persist = False
        window.mmt.unsaved = None  # --invert's result: closed unasked (offscreen, no one to)
        window.close()


if __name__ == "__main__":
    main()
