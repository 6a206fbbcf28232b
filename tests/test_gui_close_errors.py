"""The window's close when its own code raises, and Ctrl-C while the window starts: the rig
is made safe once all the same, and `smm-daq gui` exits as a command that drives the rig does
(1 for the error, 130 for the interruption). Mostly in a process of its own, as `smm-daq gui`
runs: what happens once the event loop has ended is what is tested."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from gui_process import CONNECT_AT_ONCE

from smm_daq.cli.main import EXIT_FAILED, EXIT_INTERRUPTED

WAIT_S = 60.0  # generous: the whole suite shares two cores

# `smm-daq gui` on the simulator, a field on once the rig is open, then the window closed as
# its close button does; the close's own code raises (the MMT tab's shutdown, each time). Once
# the command has returned, prints the largest coil current (A) and how often the rig's close
# ran (AFTER).
RAISING_CLOSE = CONNECT_AT_ONCE + """
import sys
import numpy as np
from PyQt6 import QtCore
from gui import main_window, mmt_view, rig_holder
from smm_daq.cli.main import main

rigs, closes = [], []
init, close = main_window.MainWindow.__init__, rig_holder.RigHolder.close

def counted(holder, **kwargs):
    closes.append(kwargs)
    return close(holder, **kwargs)

def failing(*_args, **_kwargs):
    raise RuntimeError("a bug in the close")

def opened(window, *args, **kwargs):
    init(window, *args, **kwargs)
    def ready():
        if window.holder.rig is None:
            QtCore.QTimer.singleShot(20, ready)
            return
        rigs.append(window.holder.rig)
        coils = window.holder.rig.coils
        window.holder.call(lambda: coils.set_field(np.array((0.0, 2e-6, 0.0)), ramp=False),
                           lambda _: QtCore.QTimer.singleShot(0, window.close))
    QtCore.QTimer.singleShot(0, ready)

main_window.MainWindow.__init__ = opened
rig_holder.RigHolder.close = counted
mmt_view.MMTView.shutdown = failing
code = main(["gui", "--time-scale", "1"])
print("AFTER", float(np.abs(rigs[0].world.coils.currents()).max()), len(closes), flush=True)
sys.exit(code)
"""


def _env(repo: Path, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(repo), "QT_QPA_PLATFORM": "offscreen",
            "XDG_CONFIG_HOME": str(tmp_path / "cfg"), "HOME": str(tmp_path)}


def test_a_close_that_raises_makes_the_rig_safe_once_and_exits_1(tmp_path, repo) -> None:
    """Unfixed: Qt took the raising close as accepted; once the event loop had ended, the
    close was run again (`close_left_open`), raised again, and waited for a close that never
    came: the field left on."""
    with subprocess.Popen([sys.executable, "-c", RAISING_CLOSE], env=_env(repo, tmp_path),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as gui:
        try:
            out, err = gui.communicate(timeout=WAIT_S)
        finally:
            if gui.poll() is None:
                gui.kill()
    assert gui.returncode == EXIT_FAILED, (out, err)
    current, closes = dict(line.split(" ", 1) for line in out.splitlines())["AFTER"].split()
    assert float(current) < 1e-6  # made safe
    assert closes == "1"  # once
    assert err.count("Traceback") == 1 and "RuntimeError: a bug in the close" in err
    assert ("smm-daq: the window's close raised an error (its traceback is told apart); the "
            "window closes all the same: the rig is safe") in err
    assert "smm-daq: 1 error in the window's code while it ran (tracebacks above)" in err


# `smm-daq gui` on the simulator whose opening, once its rig is open and a field on, goes on
# handling the window's events (a slow step of its start-up) until a line comes on stdin,
# having printed STARTED; once the command has returned, prints the largest coil current (A).
SIGNAL_WHILE_STARTING = CONNECT_AT_ONCE + """
import sys
import numpy as np
from PyQt6 import QtCore
from gui import app
from smm_daq.cli.main import main

rigs = []
open_window = app._open_window

def opening(*args, **kwargs):
    window, outcome = open_window(*args, **kwargs)
    loop = QtCore.QEventLoop()
    def ready():
        if window.holder.rig is None:
            QtCore.QTimer.singleShot(20, ready)
            return
        rigs.append(window.holder.rig)
        coils = window.holder.rig.coils
        window.holder.call(lambda: coils.set_field(np.array((0.0, 2e-6, 0.0)), ramp=False),
                           lambda _: QtCore.QTimer.singleShot(0, slow_step))
    def slow_step():
        try:
            print("STARTED", flush=True)
            sys.stdin.readline()
        finally:
            loop.quit()
    QtCore.QTimer.singleShot(0, ready)
    loop.exec()
    return window, outcome

app._open_window = opening
code = main(["gui", "--time-scale", "1"])
print("AFTER", float(np.abs(rigs[0].world.coils.currents()).max()), flush=True)
sys.exit(code)
"""


def test_ctrl_c_while_the_window_opens_is_an_interruption(tmp_path, repo) -> None:
    """Ctrl-C once the rig has opened, before the window's start-up has ended: the window
    closes, the rig made safe, and the command exits 130. Unfixed: a KeyboardInterrupt in
    the window's code, reported as an error of it (a box), and the window left open, the
    field on."""
    with subprocess.Popen([sys.executable, "-c", SIGNAL_WHILE_STARTING], env=_env(repo, tmp_path),
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as gui:
        try:
            assert gui.stdout is not None and gui.stdin is not None
            assert gui.stdout.readline() == "STARTED\n"  # the marker: the start-up goes on
            gui.send_signal(signal.SIGINT)
            out, err = gui.communicate("\n", timeout=WAIT_S)
        finally:
            if gui.poll() is None:
                gui.kill()
    assert gui.returncode == EXIT_INTERRUPTED, (out, err)
    assert float(dict(line.split(" ", 1) for line in out.splitlines())["AFTER"]) < 1e-6
    assert "Traceback" not in err and "error" not in err
    assert "smm-daq: SIGINT: closing the window; the rig is made safe first" in err


def test_an_error_of_the_close_after_the_event_loop_is_reported_not_raised(
        window, qtbot, monkeypatch, capsys) -> None:
    """The event loop ended with the window open and the close run then (`close_left_open`)
    raises itself, where no event loop's hook would see it: reported as the hooks report an
    error (exit 1), and the rig made safe once all the same. Unfixed: the error escaped the
    command, the rig left as it was."""
    from gui.slot_errors import reporting_slot_errors

    closes: list[bool] = []
    close = window.holder.close

    def counted(**kwargs: bool) -> list[str]:
        closes.append(True)
        return close(**kwargs)

    def failing() -> None:
        raise RuntimeError("a bug in the close")

    monkeypatch.setattr(window.holder, "close", counted)
    monkeypatch.setattr(window, "_close_answered_yes", failing)
    with reporting_slot_errors(window.profile) as errors:
        window.close_left_open()
        assert errors.count == 1
    assert closes == [True] and window.holder.rig is None and not window.rig_may_be_unsafe
    window.close_left_open()  # nothing again
    assert closes == [True]
    err = capsys.readouterr().err
    assert err.count("Traceback") == 1 and "RuntimeError: a bug in the close" in err
