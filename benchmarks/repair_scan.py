"""Repairing a scan file: seconds `repair` takes to rebuild a file holding one scan entry of
--lines lines of --nx points, whole (every line written) and half written (a scan cut off
halfway: its unmeasured lines never written), and the size of each file after the repair.

    .venv/bin/python benchmarks/repair_scan.py [--nx 201] [--lines 200] [--repeat 3]

Run it with PYTHONPATH at two checkouts to compare them; the figures are the best of
--repeat runs (the machine is shared: the best is the least disturbed).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from smm_daq.instruments.profile import load_profile
from smm_daq.storage.h5file import repair
from smm_daq.storage.scan_entry import ScanEntryWriter


def _scan(path: Path, nx: int, lines: int, written: int) -> None:
    """A session file whose scan entry has `written` of its `lines` lines written."""
    x = np.arange(nx) * 1e-5
    w = ScanEntryWriter.create(path, name="scan", title="bench", x=x,
                               y=np.arange(lines) * 1e-5, field=np.zeros(3), height=1e-4,
                               plan_text="{}", profile=load_profile(), snapshot={})
    row = np.linspace(0.0, 1e-6, nx)
    for iy in range(written):
        w.write_line(iy, row, row, row, np.ones(nx), np.arange(nx, dtype=float))
    w.close()


def _repaired(path: Path) -> float:
    """Seconds `repair` takes on `path`."""
    start = time.perf_counter()
    repair(path)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nx", type=int, default=201)
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    kinds = {"whole": args.lines, "half written": args.lines // 2}
    best = dict.fromkeys(kinds, float("inf"))
    size = dict.fromkeys(kinds, 0)
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            for kind, written in kinds.items():
                path = Path(tmp) / f"{kind.replace(' ', '-')}.h5"
                _scan(path, args.nx, args.lines, written)
                best[kind] = min(best[kind], _repaired(path))
                size[kind] = path.stat().st_size
    print(f"{args.nx} points a line, {args.lines} lines, best of {args.repeat}:")
    for kind in kinds:
        print(f"  repair, {kind + ':':14} {best[kind] * 1e3:8.1f} ms, "
              f"file after it {size[kind] / 1e3:8.1f} kB")


if __name__ == "__main__":
    main()
