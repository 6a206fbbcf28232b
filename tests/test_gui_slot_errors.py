"""An error raised in the window's code (a slot, a timer, an event handler, a thread) is
reported and the window goes on (`gui.slot_errors`): PyQt6 would otherwise abort the program
(SIGABRT), leaving the rig as it was, a field on. One box, counting repeats; the close after
it makes the rig safe as ever, and `smm-daq gui` exits 1."""

from __future__ import annotations

import importlib
import subprocess
import sys
import threading
from functools import reduce

import pytest
from gui_process import CONNECT_AT_ONCE
from PyQt6 import QtCore, QtWidgets
from test_gui_long_scan import WAIT_MS

from gui.slot_errors import SAFETY_CODE, reporting_slot_errors
from smm_daq.cli.main import EXIT_FAILED
from smm_daq.instruments.profile import load_profile
from smm_daq.storage.h5file import open_read

# `smm-daq gui` on the simulator, a field on (set in idle, a scan's own in "scan"): once the
# rig is open (argv[2] "idle") or a scan into FILE (argv[1]) runs (argv[2] "scan"), a timer's
# slot raises. The program prints whether the error's box is up and blocks nothing, the coil
# current (A) and whether the scan still runs (BOX, then DURING), closes the window as its
# close button does (a scan's question answered Yes), and once the command has returned,
# prints the rig's state (AFTER, the largest coil current in A and whether the stage moves).
# With argv[3] "bare", the hook before the window's is Python's own, with which PyQt6 aborts
# the program (pyqtgraph, imported by the window, sets one that only prints, unless one is set).
RAISING_SLOT = CONNECT_AT_ONCE + """
import sys
import numpy as np
from PyQt6 import QtCore, QtWidgets
from gui import main_window
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.cli.main import main

path, mode = sys.argv[1], sys.argv[2]
if sys.argv[3] == "bare":
    sys.excepthook = sys.__excepthook__
field = (0.0, 2e-6, 0.0)
rigs = []
init = main_window.MainWindow.__init__
main_window.confirm = lambda *_: True  # the close's question answered Yes

def current():
    return float(np.abs(rigs[0].world.coils.currents()).max())

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
            running()
        else:
            coils = window.holder.rig.coils
            window.holder.call(lambda: coils.set_field(np.array(field), ramp=False),
                               lambda _: QtCore.QTimer.singleShot(0, raising))
    def running():
        if window.scan.live.state != "running":
            QtCore.QTimer.singleShot(20, running)  # the scan's field not yet on
            return
        QtCore.QTimer.singleShot(0, raising)
    def raising():
        QtCore.QTimer.singleShot(0, after)
        raise ValueError("a bug in a slot")
    def after():
        box = window.findChild(QtWidgets.QMessageBox, "slotErrorBox")
        print("BOX", box is not None and box.isVisible() and not box.isModal()
              and QtWidgets.QApplication.activeModalWidget() is None, flush=True)
        print("DURING", current(), window.scan.live.state, flush=True)
        window.close()
    QtCore.QTimer.singleShot(0, ready)

main_window.MainWindow.__init__ = opened
code = main(["gui", "--time-scale", "1"])
world = rigs[0].world
moving = any(world.stage.moving(a) for a in "123" if world.stage.has_axis(a))
print("AFTER", current(), moving, flush=True)
sys.exit(code)
"""


@pytest.mark.parametrize(("mode", "hook"), [("idle", "bare"), ("scan", "pyqtgraph")])
def test_a_slot_raising_is_reported_and_the_close_still_makes_the_rig_safe(
        tmp_path, gui_env, mode: str, hook: str) -> None:
    """Unfixed, with Python's own hook before: aborted (SIGABRT, exit 134) at the error, a
    field of 2 µT left on; with pyqtgraph's: the traceback printed, nobody told, exit 0."""
    path = tmp_path / "session.h5"
    with subprocess.Popen([sys.executable, "-c", RAISING_SLOT, str(path), mode, hook], env=gui_env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as gui:
        try:
            out, err = gui.communicate(timeout=WAIT_MS / 1000)
        finally:
            if gui.poll() is None:
                gui.kill()
    assert gui.returncode == EXIT_FAILED, (out, err)
    said = dict(line.split(" ", 1) for line in out.splitlines())
    assert said["BOX"] == "True"  # shown, blocking nothing
    current, state = said["DURING"].split()
    assert float(current) > 0.01  # the rig left as it was
    assert state == ("running" if mode == "scan" else "idle")  # a scan goes on
    current, moving = said["AFTER"].split()
    assert float(current) < 1e-6 and moving == "False"  # made safe by the window's close
    assert "smm-daq: error in the window's code (the window goes on):\nTraceback" in err
    assert err.count("Traceback") == 1 and "ValueError: a bug in a slot" in err
    assert "smm-daq: 1 error in the window's code while it ran (tracebacks above)" in err
    if mode == "scan":  # aborted by the close once the rig was made safe, its lines kept
        with open_read(path) as f:
            assert f["held/status"][()].decode() == "aborted"


def _raise() -> None:
    raise ValueError("again")


def test_a_timer_raising_again_and_again_opens_one_box_counting_the_repeats(
        qtbot, capsys) -> None:
    window = QtWidgets.QMainWindow()
    qtbot.addWidget(window)
    window.show()
    hooks = sys.excepthook, threading.excepthook
    with reporting_slot_errors(load_profile()) as errors:
        timer = QtCore.QTimer()
        timer.timeout.connect(_raise)
        timer.start(0)
        qtbot.waitUntil(lambda: errors.count >= 25, timeout=WAIT_MS)
        timer.stop()
        boxes = [box for box in window.findChildren(QtWidgets.QMessageBox) if box.isVisible()]
        assert len(boxes) == 1 and not boxes[0].isModal()
        assert f"ValueError: again ({errors.count} times)" in boxes[0].text()
        assert "The window goes on: the rig was left as it was" in boxes[0].text()
        assert "smm-daq safe" not in boxes[0].text()
        assert window.isVisible()
        boxes[0].close()  # repeats of what it showed are told in the status bar only
        timer.start(0)
        qtbot.waitUntil(lambda: bool(window.statusBar().currentMessage()), timeout=WAIT_MS)
        timer.stop()
        assert not [box for box in window.findChildren(QtWidgets.QMessageBox) if box.isVisible()]
        assert window.statusBar().currentMessage().startswith("Error again (")
    assert (sys.excepthook, threading.excepthook) == hooks
    err = capsys.readouterr().err
    assert err.count("Traceback") == 1  # printed once; the repeats counted
    assert "smm-daq: the same error again, 10 times so far: ValueError: again" in err


def test_a_thread_raising_is_shown_in_the_window(qtbot, capsys) -> None:
    window = QtWidgets.QMainWindow()
    qtbot.addWidget(window)
    window.show()
    with reporting_slot_errors(load_profile()) as errors:
        thread = threading.Thread(target=_raise, name="smm-gui-test")
        thread.start()
        thread.join()
        qtbot.waitUntil(lambda: errors.box is not None, timeout=WAIT_MS)  # in the GUI thread
        assert "ValueError: again" in errors.box.text() and errors.count == 1
    assert "smm-daq: error in thread 'smm-gui-test' (the window goes on)" in capsys.readouterr().err


def test_an_error_in_the_close_says_how_to_make_the_rig_safe(window, qtbot, monkeypatch) -> None:
    """The close failing half-way may have left the rig unsafe: the box says what to run."""
    def failing(**_kwargs) -> None:
        monkeypatch.undo()  # once
        raise RuntimeError("a bug in the close")

    monkeypatch.setattr(window.mmt, "shutdown", failing)
    with reporting_slot_errors(window.profile) as errors:
        window.close()
        assert errors.count == 1 and errors.box is not None
        assert "RuntimeError: a bug in the close" in errors.box.text()
        assert f"smm-daq safe --profile {window.profile.path}" in errors.box.text()
        assert "may NOT be safe" in errors.box.text()


def test_the_code_named_as_making_the_rig_safe_exists() -> None:
    """A renamed function would silently drop out of `SAFETY_CODE`."""
    for module, names in SAFETY_CODE.items():
        for name in names or ():
            reduce(getattr, name.split("."), importlib.import_module(module))


def _make_safe_failing() -> None:
    """Code whose name says it makes the rig safe (counted as such)."""
    _raise()


def test_an_error_raised_again_by_the_code_making_the_rig_safe_is_said_to_be_from_it(
        qtbot) -> None:
    """The same error (raised at one place) first from a plain slot, then by making the rig
    safe: the box then says the rig may not be safe."""
    window = QtWidgets.QMainWindow()
    qtbot.addWidget(window)
    window.show()
    with reporting_slot_errors(load_profile()) as errors:
        QtCore.QTimer.singleShot(0, _raise)
        qtbot.waitUntil(lambda: errors.box is not None, timeout=WAIT_MS)
        assert "may NOT be safe" not in errors.box.text()
        QtCore.QTimer.singleShot(0, _make_safe_failing)
        qtbot.waitUntil(lambda: errors.count == 2, timeout=WAIT_MS)
        assert "ValueError: again (2 times)" in errors.box.text()
        assert "may NOT be safe" in errors.box.text()
