"""The GUI's garbage collection runs in the GUI thread only (gui.gui_thread_gc); these tests
use `qapp`, not `qtbot`, so that conftest's fixture does not already hold the collector."""

from __future__ import annotations

import gc
import threading
import weakref

from PyQt6 import QtWidgets

from gui.gui_thread_gc import collect_in_gui_thread


class _Cyclic(QtWidgets.QWidget):
    """A widget Python owns that only the cyclic collector can free (it refers to itself)."""

    def __init__(self) -> None:
        super().__init__()
        self.me = self


def _allocate_cycles(n: int) -> None:
    for _ in range(n):
        a: list = []
        a.append(a)


def test_a_worker_thread_never_frees_a_widget_the_gui_thread_collects_it(qapp):
    gc.collect()
    with collect_in_gui_thread() as collector:
        ref = weakref.ref(_Cyclic())
        worker = threading.Thread(target=_allocate_cycles, args=(50 * gc.get_threshold()[0],))
        worker.start()
        worker.join()
        assert ref() is not None  # the worker's allocations collected nothing
        assert collector.timer.isActive()
        collector.timer.timeout.emit()  # the GUI thread's timer firing
        assert ref() is None


def test_leaving_collects_everything_and_turns_the_collector_back_on(qapp):
    assert gc.isenabled()
    with collect_in_gui_thread():
        assert not gc.isenabled()
        ref = weakref.ref(_Cyclic())
    assert ref() is None
    assert gc.isenabled()
