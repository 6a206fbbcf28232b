"""What the acquisition software itself costs per point, and its memory on a 501 × 501 grid.

    .venv/bin/python benchmarks/acquisition_per_point.py [--n 501] [--sim-n 41]

1. Software cost: the sequencer and the crash-safe file writer on instant instruments (every
   call returns at once; no settling, time scale 0), a 501 × 501 grid. Everything measured is
   the software's: loop, checks, volts-to-tesla, events, per-line SWMR writes and flushes.
   Run with and without an event subscriber.
2. Memory: Python peak (tracemalloc) and peak RSS of a fresh process scanning 1/5 of the
   lines and all of them; the grid is on disk, the sequencer holds one line, so neither grows.
3. The file writer per line: each line opens the file (SWMR write), writes and flushes the
   line and its flag, and closes it, so that a killed scan leaves a file every reader opens.
4. For reference, the whole simulated rig (real drivers over emulated protocols and the
   simulated world) per point with no settling, on a smaller grid: that is the simulator's
   cost, not what the software adds on real instruments.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.clock import VirtualClock
from smm_daq.instruments.profile import Profile, load_profile


class _Stage:
    def move_to(self, x: float, y: float, z: float | None = None, *, wait: bool = True,
                stop: Callable[[], bool] | None = None) -> None:
        pass

    def stop(self) -> None:
        pass


class _Coils:
    honours_stop = True  # a stop asked for is honoured at once (there is no ramp)

    def set_field(self, b: np.ndarray, *, ramp: bool = True,
                  stop: Callable[[], bool] | None = None) -> None:
        pass

    def field(self) -> np.ndarray:
        return np.zeros(3)

    def zero(self) -> None:
        pass


class _LockIn:
    def time_constant(self) -> float:
        return 0.03

    def sensitivity(self) -> float:
        return 0.5

    def reference(self, *, stop: object = None) -> tuple[float, float]:
        return 1000.0, 0.5

    def read_xy(self) -> tuple[float, float]:
        return 1e-3, 0.0

    def overloaded(self) -> bool:
        return False


@dataclass
class _InstantRig:
    """Instruments that answer at once: only the software's own time is measured."""

    profile: Profile
    clock: VirtualClock
    stage: _Stage
    coils: _Coils
    lockin: _LockIn
    fluxgate: None = None

    def make_safe(self) -> list[str]:
        return []

    def begin_measurement(self, name: str, run: int | None) -> None:
        """No simulated world: no noise to draw."""

    def snapshot(self) -> dict[str, object]:
        return {}


def _plan(name: str, n: int, ny: int | None = None) -> ScanPlan:
    return ScanPlan(name, 10e-3, 10e-3, n, ny or n, 1e-6, 1e-6, settle_tau=0.0)


def software_cost(n: int, subscriber: bool, directory: Path) -> float:
    rig = _InstantRig(load_profile(), VirtualClock(), _Stage(), _Coils(), _LockIn())
    seq = Sequencer(rig, directory / f"soft-{subscriber}.h5", _plan("bench", n))
    if subscriber:
        count = [0]
        seq.subscribe(lambda e: count.__setitem__(0, count[0] + 1))
    t = time.perf_counter()
    assert seq.run() == "finished"
    return (time.perf_counter() - t) / (n * n)


def memory_child(n: int, lines: int, directory: Path) -> tuple[float, float]:
    """(Python peak MB, process peak RSS MB) of one scan of `lines` lines, in this process."""
    rig = _InstantRig(load_profile(), VirtualClock(), _Stage(), _Coils(), _LockIn())
    tracemalloc.start()
    Sequencer(rig, directory / f"mem-{lines}.h5", _plan("mem", n, lines)).run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory(n: int, directory: Path) -> list[tuple[int, str]]:
    """Each run in a fresh process, so that peak RSS belongs to that run alone."""
    rows = []
    for lines in (n // 5, n):
        out = subprocess.run(
            [sys.executable, __file__, "--n", str(n), "--memory-child", str(lines),
             "--dir", str(directory)],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        rows.append((lines, out))
    return rows


def line_write_cost(n: int, lines: int, directory: Path) -> float:
    """Seconds per `write_line` of an n-point line (open, write, flush, close)."""
    from smm_daq.storage.scan_entry import ScanEntryWriter

    plan = _plan("lines", n, lines)
    writer = ScanEntryWriter.create(
        directory / f"lines-{n}.h5", name="lines", title="", x=plan.x, y=plan.y,
        field=np.zeros(3), height=plan.height, plan_text=plan.to_text(),
        profile=load_profile(), snapshot={},
    )
    row = np.linspace(0.0, 1e-6, n)
    t = time.perf_counter()
    for iy in range(lines):
        writer.write_line(iy, row, row, row, row, row)
    return (time.perf_counter() - t) / lines


def simulator_cost(n: int, directory: Path) -> float:
    from smm_daq.instruments.rig import open_rig

    rig = open_rig(load_profile())
    warm = ScanPlan.from_center("warm", (12.5e-3, 12.5e-3), (20e-6, 0.0), 10e-6, settle_tau=0.0)
    Sequencer(rig, directory / "sim.h5", warm).run()  # first-call compilation out of the way
    plan = ScanPlan.from_center("sim", (12.5e-3, 12.5e-3), ((n - 1) * 20e-6,) * 2, 20e-6,
                                settle_tau=0.0)
    t = time.perf_counter()
    Sequencer(rig, directory / "sim.h5", plan).run()
    return (time.perf_counter() - t) / plan.points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=501, help="grid side for the software cost")
    parser.add_argument("--sim-n", type=int, default=41, help="grid side for the simulator")
    parser.add_argument("--memory-child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--dir", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        py, rss = memory_child(args.n, args.memory_child, Path(args.dir))
        print(f"{py:7.2f} MB  {rss:7.1f} MB")
        return
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        bare = software_cost(args.n, False, d)
        subscribed = software_cost(args.n, True, d)
        print(f"software cost per point, {args.n} x {args.n} grid, instant instruments:")
        print(f"  no subscriber      {bare * 1e3:.4f} ms")
        print(f"  one subscriber     {subscribed * 1e3:.4f} ms")
        print("peak memory (lines scanned: Python peak, process peak RSS):")
        for lines, figures in memory(args.n, d):
            print(f"  {lines:4d} lines of {args.n}: {figures}")
        per_line = line_write_cost(args.n, 200, d)
        print(f"file writer per line of {args.n} points (open, write, flush, close): "
              f"{per_line * 1e3:.2f} ms")
        sim = simulator_cost(args.sim_n, d)
        print(f"whole simulated rig per point (simulator included), {args.sim_n} x "
              f"{args.sim_n} grid, no settling: {sim * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
