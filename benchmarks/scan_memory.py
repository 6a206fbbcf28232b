"""Memory over a long scan: process RSS every N lines of a 601 × 601 scan, and its growth.

    .venv/bin/python benchmarks/scan_memory.py [--n 601] [--every 50] [--simulated]

The scan runs the real sequencer and file writer on instruments that answer at once (see
`acquisition_per_point.py`), or with `--simulated` on the whole simulated rig (real drivers,
emulated protocols, the simulated world: minutes for 601²), in a fresh process, so RSS
belongs to this scan alone. The grid
is on disk and the sequencer holds one line, so RSS should stay flat: the figure to watch is
the growth per line after the first lines (allocator and HDF5 caches warm up).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from acquisition_per_point import _Coils, _InstantRig, _LockIn, _plan, _Stage

from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.clock import VirtualClock
from smm_daq.instruments.profile import load_profile

PAGE = 4096


def _rss_kb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE / 1024


def child(n: int, every: int, path: Path, simulated: bool) -> None:
    if simulated:
        from smm_daq.acquisition.plan import ScanPlan
        from smm_daq.instruments.rig import open_rig

        rig = open_rig(load_profile())
        plan = ScanPlan.from_center("mem", (12.5e-3, 12.5e-3), ((n - 1) * 10e-6,) * 2, 10e-6,
                                    settle_tau=0.0)
    else:
        rig = _InstantRig(load_profile(), VirtualClock(), _Stage(), _Coils(), _LockIn())
        plan = _plan("mem", n)
    seq = Sequencer(rig, path, plan)
    rows: list[tuple[int, float, float]] = []
    t0 = time.perf_counter()

    def on_event(e: object) -> None:
        if e.kind == "line_done" and (e.line + 1) % every == 0:  # type: ignore[attr-defined]
            rows.append((e.line + 1, _rss_kb(), time.perf_counter() - t0))  # type: ignore[attr-defined]

    seq.subscribe(on_event)
    assert seq.run() == "finished"
    for line, rss, t in rows:
        print(f"{line} {rss:.0f} {t:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=601)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--simulated", action="store_true", help="on the simulated rig")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.n, args.every, Path(args.child), args.simulated)
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, __file__, "--n", str(args.n), "--every", str(args.every),
             "--child", str(Path(tmp) / "mem.h5"), *(["--simulated"] if args.simulated else [])],
            check=True, capture_output=True, text=True, cwd=Path(__file__).parent,
        ).stdout.split("\n")
    rows = [tuple(float(v) for v in line.split()) for line in out if line.strip()]
    rig = "the simulated rig" if args.simulated else "instant instruments"
    print(f"RSS over a {args.n} x {args.n} scan ({rig}):")
    print("  lines    RSS MB   seconds")
    for line, rss, t in rows:
        print(f"  {int(line):5d}  {rss / 1024:8.1f}  {t:8.2f}")
    (l0, r0, _), (l1, r1, _) = rows[1], rows[-1]
    print(f"growth from line {int(l0)} to {int(l1)}: {(r1 - r0) / (l1 - l0):.2f} kB per line")


if __name__ == "__main__":
    main()
