"""Python's cyclic garbage collector, run only in the GUI thread while the application is up.

A collection can run in whichever thread happens to allocate, and the worker threads
(`gui.background`: scans, inversions) allocate a great deal. If such a collection frees the
last Python reference to a widget Python owns (a closed window, a view dropped with its
cycles), Qt deletes the C++ object in that worker thread while the GUI thread may be using it:
pyqtgraph's view boxes then receive events after deletion and the process crashes. pyqtgraph's
`GarbageCollector` turns the automatic collector off and collects on a GUI-thread timer instead.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

from pyqtgraph.util.garbage_collector import GarbageCollector

INTERVAL_S = 1.0  # how often the GUI thread collects what the thresholds call for


@contextmanager
def collect_in_gui_thread(interval_s: float = INTERVAL_S) -> Iterator[GarbageCollector]:
    """Within the block, garbage is collected by a timer in this (the GUI) thread only; on
    leaving, everything is collected here and the automatic collector turned back on."""
    was_enabled = gc.isenabled()
    collector = None
    try:
        collector = GarbageCollector(interval=interval_s)
        yield collector
    finally:
        if collector is not None:
            collector.timer.stop()
        gc.collect()
        if was_enabled:
            gc.enable()
