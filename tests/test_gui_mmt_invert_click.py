"""Invert's click imports no solver module on the window's thread: they pull in SciPy's
statistics and numba, which held the window for 3 to 6 s on the first click of a session
(the MMT tutorial's scan, a loaded 2-core machine); the worker imports them."""

from __future__ import annotations

import builtins
import threading

from test_gui_mmt import WAIT_MS, open_view, write_cuboid_session

# modules whose first import takes seconds (each imports the solver)
HEAVY = ("smm_daq.analysis.mmt.solver", "smm_daq.analysis.mmt.result_file")


def test_invert_imports_no_solver_module_on_the_windows_thread(qtbot, tmp_path, monkeypatch):
    view = open_view(qtbot, *write_cuboid_session(tmp_path))
    imported: list[str] = []
    importing = builtins.__import__
    gui_thread = threading.current_thread()

    def noting(name, *args, **kwargs):
        if threading.current_thread() is gui_thread:
            imported.append(name)
        return importing(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", noting)
    started = view.run()
    monkeypatch.setattr(builtins, "__import__", importing)
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS):
        view.cancel()  # the test needs no result: it ends before or after its first block
    assert started, view.status.text()
    assert [name for name in imported if name.startswith(HEAVY)] == []
