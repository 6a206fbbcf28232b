"""An eight-hour scan as a rock magnetist runs it, on the simulator's virtual clock, in small:
memory per line, storage time per line against the line's number, ETA error, the resume at
7/8 of the way, and the live map's cost per line at two map sizes.

    .venv/bin/python benchmarks/eight_hour_scan.py [--n 41] [--fly-nx 201] [--fly-ny 11]
        [--store-nx 1001] [--store-lines 1001] [--resume-n 41] [--sizes 501,1001]

Everything that follows a line's number is linear in it (a line's points, its write, the
pace), so a smaller grid is run and the figures per line are given with what they come to
over a 1000 × 1000 scan; the machine's 2 cores are shared, so the defaults keep each part
under a minute or so.

1. ETA: the simulated rig (real drivers, emulated protocols, simulated world, virtual clock)
   runs an n × n step scan at zero field, the same in a 40 µT field along +y (ramps up and
   down, field checks), and a flown scan (--fly-nx × --fly-ny). For each: the plan's estimate
   before the start (what `scan` and the Scan tab show) against the rig-clock time the scan
   took (from its start, before the field's ramp up, to its end), and the time left that the
   events give at each 10 % of the lines against the time the scan then took; with the
   zero-field scan, Python's memory (tracemalloc) per line from its line n/5 to its last but
   one, less the simulators' own (their caches fill over a small grid's whole scan, and a
   real rig has none; tracking each allocation's 40 frames makes that scan some 5 times
   slower). What is left still holds objects the product made and the simulators keep (the
   virtual clock's times in the stage model's history): `scan_memory.py` on instruments that
   answer at once gives the product's alone.
2. Storage: the crash-safe writer alone stores --store-lines lines of --store-nx points (open,
   write, two flushes, close a line): median ms per line in each tenth of the lines (whether
   it grows with the line's number), the file's size against the values it holds, and
   Python's memory per line after the first 300 (the global-heap check's memory of file
   states fills over the first 128 lines: 256 states).
3. Resume at 7/8: an n × n step scan aborted after 7/8 of its lines, then resumed on a new
   connection: seconds from the resume's start to its first point (the checks, the field, the
   way down), and Python's peak memory over the resume.
4. Live map (offscreen): the GUI-thread time per line once half the map is measured, at two
   map sizes (`long_scan.live_map_per_line`, 100 redraws a line).
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from long_scan import MIN_SIDE, map_sizes

CENTRE_UM = (12500.0, 12500.0)  # the simulated sample's middle
STEP_UM = 10.0
FRAMES = 40  # deep enough to reach a simulator's frame under the drivers' calls


def _product_memory() -> int:
    """Bytes Python holds now, less what the simulators allocated (the simulated world's cache
    of sample responses, bounded at 20,000 sensor positions, and the stage model's motion
    history, 4096 moves an axis, both fill over a small grid's whole scan): what the product
    holds on a real rig."""
    gc.collect()
    ours = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, f"*{os.sep}simulators{os.sep}*", all_frames=True)])
    return sum(t.size for t in ours.traces)


def _share(e: object, end: float) -> tuple[float, float]:
    left = end - e.time  # type: ignore[attr-defined]
    return float(e.eta_s), left  # type: ignore[attr-defined]


def eta_run(path: Path, label: str, nx: int, ny: int, field_uT: tuple[float, float, float],
            fly: bool, memory_too: bool = False) -> None:
    """One scan through `Session.scan`: its estimate, its ETA at each 10 %, its memory."""
    from smm_daq.acquisition.fly.settings import FlySettings
    from smm_daq.acquisition.plan import ScanPlan
    from smm_daq.acquisition.session import Session

    events: list[object] = []
    memory: dict[int, int] = {}
    tenth = max(1, ny // 10)

    def on_event(e: object) -> None:
        events.append(e) if e.kind != "point" else None  # type: ignore[attr-defined]
        if memory_too and e.kind == "line_done" and e.line + 1 in (2 * tenth, ny - 1):  # type: ignore[attr-defined]
            memory[e.line + 1] = _product_memory()  # type: ignore[attr-defined]

    plan = ScanPlan.from_center(
        label, (CENTRE_UM[0] * 1e-6, CENTRE_UM[1] * 1e-6),
        ((nx - 1) * STEP_UM * 1e-6, (ny - 1) * STEP_UM * 1e-6), STEP_UM * 1e-6,
        field=tuple(b * 1e-6 for b in field_uT),  # type: ignore[arg-type]
        fly=FlySettings(pixel_time=0.05) if fly else None)
    session = Session.open(str(path), None, time_scale=0)
    if memory_too:
        tracemalloc.start(FRAMES)
    start = session.rig.clock.now()  # the scan's time counts its field's ramp up too
    try:
        session.scan_plan(plan, on_event=on_event)
    finally:
        tracemalloc.stop()
        profile = session.profile
        session.close()
    end = events[-1].time  # type: ignore[attr-defined]
    taken = end - start
    estimate = plan.estimate_duration(profile)
    per_point = taken / (nx * ny)
    print(f"{label}: {nx} x {ny}, {taken:.1f} s of rig clock ({per_point * 1e3:.1f} ms a point: "
          f"1000 x 1000 would take {per_point * 1e6 / 3600:.1f} h); estimate before the start "
          f"{estimate:.1f} s ({100 * (estimate - taken) / taken:+.1f} %)")
    lines = [e for e in events if e.kind == "line_done"]  # type: ignore[attr-defined]
    print("   lines done   ETA s   left s   error")
    for e in lines:
        if (e.line + 1) % tenth or e.line + 1 == ny:  # type: ignore[attr-defined]
            continue
        eta, left = _share(e, end)
        print(f"   {e.line + 1:10d}  {eta:6.1f}  {left:7.1f}  {100 * (eta - left) / left:+6.1f} %")
    done = sorted(memory)
    if len(done) == 2:
        a, b = done
        print(f"   Python memory from line {a} to {b}: "
              f"{(memory[b] - memory[a]) / (b - a):+.0f} B per line")


def storage(path: Path, nx: int, lines: int) -> None:
    from smm_daq.acquisition.plan import ScanPlan
    from smm_daq.instruments.profile import load_profile
    from smm_daq.storage.scan_entry import ScanEntryWriter

    plan = ScanPlan("store", 10e-3, 10e-3, nx, lines, 1e-6, 1e-6, settle_tau=0.0)
    writer = ScanEntryWriter.create(
        path, name="store", title="", x=plan.x, y=plan.y, field=np.zeros(3),
        height=plan.height, plan_text=plan.to_text(), profile=load_profile(), snapshot={})
    row = np.linspace(0.0, 1e-6, nx)
    seconds = np.empty(lines)
    warm = min(300, lines // 2)
    tracemalloc.start()
    for iy in range(lines):
        if iy == warm:
            before = tracemalloc.get_traced_memory()[0]
        t = time.perf_counter()
        writer.write_line(iy, row, row, row, row, row)
        seconds[iy] = time.perf_counter() - t
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(f"storage: {lines} lines of {nx} points, the writer alone")
    print("   tenth of the lines   median ms a line")
    for k in range(10):
        part = seconds[k * lines // 10:(k + 1) * lines // 10]
        print(f"   {k + 1:17d}   {np.median(part) * 1e3:16.2f}")
    values = 5 * 8 * nx * lines  # Bz, lock-in X and Y, range, time: float64
    size = path.stat().st_size
    print(f"   file {size / 2**20:.2f} MiB for {values / 2**20:.2f} MiB of values "
          f"({size / values:.3f}x); {seconds.sum():.1f} s in all "
          f"({seconds.sum() / lines * 1000:.1f} s over 1000 lines)")
    print(f"   Python memory after line {warm}: "
          f"{(after - before) / max(1, lines - warm):+.0f} B per line")


def resume(path: Path, n: int) -> None:
    from smm_daq.acquisition.plan import ScanPlan
    from smm_daq.acquisition.sequencer import Sequencer
    from smm_daq.instruments.profile import load_profile
    from smm_daq.instruments.rig import open_rig

    profile = load_profile()
    plan = ScanPlan.from_center("resume", (12.5e-3, 12.5e-3), ((n - 1) * 10e-6,) * 2, 10e-6)
    cut = n * 7 // 8
    with open_rig(profile) as rig:
        seq = Sequencer(rig, path, plan)
        seq.subscribe(lambda e: seq.abort() if e.kind == "line_done" and e.line == cut - 1
                      else None)
        assert seq.run() == "aborted"
    first: list[float] = []
    tracemalloc.start()
    t = time.perf_counter()
    with open_rig(profile) as rig:
        seq = Sequencer(rig, path, plan, resume=True)
        seq.subscribe(lambda e: first.append(time.perf_counter() - t)
                      if e.kind == "point" and not first else None)
        assert seq.run() == "finished"
    total = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"resume at 7/8 ({cut} of {n} lines stored): {first[0]:.2f} s to its first point "
          f"(connect, checks, field, way down), {total:.1f} s to finish the {n - cut} lines "
          f"left; Python peak {peak / 2**20:.1f} MiB")


def live_map(sizes: list[int]) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from long_scan import live_map_per_line  # Qt's imports only when the map is measured

    print("live map, offscreen, half the map measured, 100 redraws a line:")
    print("   grid (n x n)   GUI ms a line   of which redraws+paints")
    for n in sizes:
        per_line, drawing, _ = live_map_per_line(n, 100)
        print(f"   {n:5d} x {n:<5d}  {per_line * 1e3:13.2f}  {drawing * 1e3:23.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=41, help="side of the step scans (ETA)")
    parser.add_argument("--fly-nx", type=int, default=201)
    parser.add_argument("--fly-ny", type=int, default=11)
    parser.add_argument("--store-nx", type=int, default=1001)
    parser.add_argument("--store-lines", type=int, default=1001)
    parser.add_argument("--resume-n", type=int, default=41)
    parser.add_argument("--sizes", type=map_sizes, default="501,1001",
                        help=f"live map sides, each at least {MIN_SIDE}")
    args = parser.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        eta_run(d / "zero.h5", "zero-field", args.n, args.n, (0, 0, 0), False, memory_too=True)
        eta_run(d / "in.h5", "in-field", args.n, args.n, (0, 40, 0), False)
        eta_run(d / "fly.h5", "flown", args.fly_nx, args.fly_ny, (0, 0, 0), True)
        storage(d / "store.h5", args.store_nx, args.store_lines)
        resume(d / "resume.h5", args.resume_n)
    live_map(args.sizes)


if __name__ == "__main__":
    main()
