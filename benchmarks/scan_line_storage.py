"""Session-file storage per scan line: how many lines a second a scan's writer stores
(`ScanEntryWriter.write_line`: one open, write, flush and close of the file a line), alone
and with a reader opening the file once a line (`open_read`, as the window's live views and
`info` do), and how many reads a second `open_read` makes alone.

    .venv/bin/python benchmarks/scan_line_storage.py [--nx 201] [--lines 200] [--repeat 3]

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
from smm_daq.storage.h5file import open_read
from smm_daq.storage.scan_entry import ScanEntryWriter


def _writer(path: Path, nx: int, lines: int) -> ScanEntryWriter:
    x = np.arange(nx) * 1e-5
    y = np.arange(lines) * 1e-5
    return ScanEntryWriter.create(path, name="scan", title="bench", x=x, y=y,
                                  field=np.zeros(3), height=1e-4, plan_text="{}",
                                  profile=load_profile(), snapshot={})


def _write_lines(w: ScanEntryWriter, nx: int, lines: int, *, read: bool) -> float:
    """Lines stored a second (a read of the file after each line where `read`)."""
    row = np.linspace(0.0, 1e-6, nx)
    start = time.perf_counter()
    for iy in range(lines):
        w.write_line(iy, row, row, row, np.ones(nx), np.arange(nx, dtype=float))
        if read:
            with open_read(w.path) as f:
                f["scan/data/line_done"][iy]
    return lines / (time.perf_counter() - start)


def _reads(path: Path, count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        with open_read(path) as f:
            f["scan/data/line_done"][0]
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nx", type=int, default=201)
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    best = {"write": 0.0, "write+read": 0.0, "read": 0.0}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            for kind, read in (("write", False), ("write+read", True)):
                path = Path(tmp) / f"{kind}.h5"
                w = _writer(path, args.nx, args.lines)
                best[kind] = max(best[kind], _write_lines(w, args.nx, args.lines, read=read))
            best["read"] = max(best["read"], _reads(Path(tmp) / "write.h5", args.lines))
    print(f"{args.nx} points a line, {args.lines} lines, best of {args.repeat}:")
    print(f"  lines written a second:                 {best['write']:8.1f}")
    print(f"  lines written a second, a read a line:  {best['write+read']:8.1f}")
    print(f"  open_read a second:                     {best['read']:8.1f}")


if __name__ == "__main__":
    main()
