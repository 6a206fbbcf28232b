"""Ctrl-C, SIGTERM and SIGHUP to `smm-daq gui`: the window closes as its close button does,
answered Yes (a scan aborted, the rig made safe), and the program exits 130 as the commands
do. The signal comes from outside, while the window is idle or scanning: Python runs a
handler only when the interpreter runs, and Qt's event loop is C++ (`gui.signals`)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from gui_process import CONNECT_AT_ONCE
from test_gui_long_scan import WAIT_MS

from smm_daq.cli.main import EXIT_INTERRUPTED
from smm_daq.storage.h5file import open_read

# `smm-daq gui` that prints READY once the rig is open (argv[2] "idle") or once a scan into
# FILE (argv[1]) is running, its entry made (argv[2] "scan"); a question or warning box
# would fail the test (nobody answers one when a supervisor stops the program). With
# argv[3] "quit", a field is on (set in idle, the scan's own), and once READY the event loop
# is ended with the window open; the program prints the rig's state (AFTER, the largest
# coil current in A and whether the stage moves) once the command has returned.
READY_WHEN = CONNECT_AT_ONCE + """
import sys
import numpy as np
from PyQt6 import QtCore, QtWidgets
from gui import main_window
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.cli.main import main

path, mode = sys.argv[1], sys.argv[2]
quit = sys.argv[3:] == ["quit"]
field = (0.0, 2e-6, 0.0) if quit else (0.0, 0.0, 0.0)
rigs = []
init = main_window.MainWindow.__init__

def no_box(*args, **kwargs):
    raise AssertionError(f"a box was shown: {args[2:]}")

QtWidgets.QMessageBox.question = staticmethod(no_box)
QtWidgets.QMessageBox.warning = staticmethod(no_box)

def opened(window, *args, **kwargs):
    init(window, *args, **kwargs)
    def ready():
        if window.holder.rig is None:
            QtCore.QTimer.singleShot(20, ready)
            return
        rigs.append(window.holder.rig)
        if mode == "scan":
            window.scan.file_edit.setText(path)
            assert window.scan.start(ScanPlan.from_center(
                "held", (12.5e-3, 12.5e-3), (400e-6, 400e-6), 20e-6, settle_tau=1.0,
                field=field))
            announce()
        elif quit:
            coils = window.holder.rig.coils
            window.holder.call(lambda: coils.set_field(np.array(field), ramp=False),
                               lambda _: announce())
        else:
            announce()
    def announce():
        if window.scan.live.running and window.scan.live.state != "running":
            QtCore.QTimer.singleShot(20, announce)  # its entry not yet made, its field not on
            return
        print("READY", flush=True)
        if quit:  # a plugin, say, ends the event loop (quit() would close the window first)
            QtCore.QCoreApplication.exit(0)
    QtCore.QTimer.singleShot(0, ready)

main_window.MainWindow.__init__ = opened
code = main(["gui", "--time-scale", "1"])
world = rigs[0].world
moving = any(world.stage.moving(a) for a in "123" if world.stage.has_axis(a))
print("AFTER", float(np.abs(world.coils.currents()).max()), moving, flush=True)
sys.exit(code)
"""


@pytest.mark.parametrize(("mode", "sig"), [("idle", signal.SIGTERM), ("scan", signal.SIGINT)])
def test_a_signal_closes_the_window_making_the_rig_safe_and_exits_130(
        tmp_path, gui_env, mode: str, sig: signal.Signals) -> None:
    path = tmp_path / "session.h5"
    with subprocess.Popen([sys.executable, "-c", READY_WHEN, str(path), mode], env=gui_env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as gui:
        try:
            assert gui.stdout is not None and gui.stdout.readline() == "READY\n"
            gui.send_signal(sig)
            _, err = gui.communicate(timeout=WAIT_MS / 1000)
        finally:
            if gui.poll() is None:
                gui.kill()
    assert gui.returncode == EXIT_INTERRUPTED, err
    assert f"smm-daq: {sig.name}: closing the window; the rig is made safe first" in err
    assert "Traceback" not in err
    if mode == "scan":  # aborted once the rig was made safe, its lines kept
        with open_read(path) as f:
            assert f["held/status"][()].decode() == "aborted"


@pytest.mark.parametrize("mode", ["idle", "scan"])
def test_the_event_loop_ended_with_the_window_open_makes_the_rig_safe(
        tmp_path, gui_env, mode: str) -> None:
    """`QCoreApplication.exit()` called directly (a plugin, say), with a field on, while idle
    or scanning: the window closes all the same, as a signal closes it (a scan aborted, its
    lines kept), the field ramped down and the stage stopped before the program ends; what
    is said goes to stderr, no box (the program ends: nobody may answer one)."""
    path = tmp_path / "session.h5"
    with subprocess.Popen([sys.executable, "-c", READY_WHEN, str(path), mode, "quit"], env=gui_env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as gui:
        try:
            out, err = gui.communicate(timeout=WAIT_MS / 1000)
        finally:
            if gui.poll() is None:
                gui.kill()
    assert gui.returncode == 0, err
    lines = out.splitlines()
    assert lines[0] == "READY" and lines[-1].startswith("AFTER "), out
    current, moving = lines[-1].split()[1:]
    assert float(current) < 1e-6 and moving == "False"  # unfixed: 0.04 A (2 µT) still on
    assert "smm-daq: the application is quitting with the window open: closing it; the rig " \
        "is made safe first" in err
    assert "Traceback" not in err
    if mode == "scan":  # aborted once the rig was made safe, its lines kept
        with open_read(path) as f:
            assert f["held/status"][()].decode() == "aborted"
