"""The main window's construction: CPU time per window (its start-up, and every GUI test's).

    .venv/bin/python benchmarks/gui_window_start.py [--n 8]

Builds the main window on the simulator profile (offscreen, settings in a temporary ini
file, nothing written) n + 1 times in one process, each deleted before the next; the first
(imports, pyqtgraph's caches) is left out. Prints the CPU seconds of each window's
constructor, their mean and median, and the Python function calls one constructor makes
(a figure that the load of the machine does not move).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PyQt6 import QtCore, QtWidgets

from gui.main_window import MainWindow
from smm_daq.instruments.profile import load_profile


def build(app: QtWidgets.QApplication, folder: str, i: int, profiler: cProfile.Profile | None
          ) -> float:
    """CPU seconds of one window's constructor; the window is deleted before this returns."""
    settings = QtCore.QSettings(os.path.join(folder, f"{i}.ini"),
                                QtCore.QSettings.Format.IniFormat)
    profile = load_profile()
    t0 = time.process_time()
    if profiler is not None:
        profiler.enable()
    window = MainWindow(profile, settings, persist=False)
    if profiler is not None:
        profiler.disable()
    spent = time.process_time() - t0
    window.holder.close()
    window.close()
    window.deleteLater()
    del window
    app.sendPostedEvents(None, QtCore.QEvent.Type.DeferredDelete.value)
    app.processEvents()
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="windows timed (default 8)")
    args = parser.parse_args()
    if args.n < 1:
        parser.error(f"--n must be at least 1 window, not {args.n}")
    app = QtWidgets.QApplication([])
    with tempfile.TemporaryDirectory() as folder:
        build(app, folder, 0, None)  # imports and caches
        times = [build(app, folder, i, None) for i in range(1, args.n + 1)]
        profiler = cProfile.Profile()
        build(app, folder, args.n + 1, profiler)
    calls = pstats.Stats(profiler).total_calls
    print("CPU s per window:", " ".join(f"{t:.3f}" for t in times))
    print(f"mean {statistics.mean(times):.3f} s, median {statistics.median(times):.3f} s; "
          f"{calls} Python function calls per window")


if __name__ == "__main__":
    main()
