"""The demo in the window, and `smm-daq gui --screenshot`."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PyQt6 import QtGui

from gui.app import SCREENSHOT_SIZE
from gui.demo import IN_FIELD, INDUCED, REMANENT, Demo
from gui.main_window import MainWindow
from smm_daq.analysis.grains import read_grains
from smm_daq.instruments.profile import load_profile
from smm_daq.storage.nexus import list_entries

WAIT_MS = 120_000


def test_the_demo_fills_the_session_and_compares_the_maps(qtbot, settings, tmp_path):
    w = MainWindow(load_profile(), settings, persist=False)
    qtbot.addWidget(w)
    w.show()
    demo = Demo(w, tmp_path, size_um=300.0, step_um=25.0)
    demo.start()  # before the rig is open: the demo waits for it
    with qtbot.waitSignal(demo.finished, timeout=WAIT_MS) as done:
        w.instruments.connect_rig()
    assert done.args == [True, "all steps done"]
    entries = {e.name: (e.kind, e.status) for e in list_entries(tmp_path / "demo.h5")}
    assert entries == {
        REMANENT: ("scan", "finished"),
        IN_FIELD: ("scan", "finished"),
        INDUCED: ("induced", "finished"),
    }
    views = w.session.compare.views
    assert [views[r].map.name for r in ("remanent", "in-field", "induced")] == [
        REMANENT,
        IN_FIELD,
        INDUCED,
    ]
    assert w.tabs.tabText(w.tabs.currentIndex()) == "Session"
    sample = w.holder.rig.world.sample
    grains = read_grains(tmp_path / "demo-grains.csv")  # the grains under the scan
    assert grains.n_grains >= 1
    for label in grains.labels:
        mine = grains.cuboids[grains.grain == np.flatnonzero(grains.labels == label)[0]]
        np.testing.assert_allclose(mine, sample.cuboids[sample.grain == label], rtol=1e-12)
    qtbot.waitUntil(lambda: views["induced"].outlines.getData()[0] is not None
                    and views["induced"].outlines.getData()[0].size > 0, timeout=WAIT_MS)
    mmt = w.mmt  # the remanent scan inverted with the demo's grain file
    assert mmt.result is not None and mmt.result.grains.n_grains == grains.n_grains
    assert mmt.entry.currentText() == REMANENT
    w.holder.close()


def smm_daq_gui(tmp_path, *args: str) -> subprocess.CompletedProcess:
    """Run `smm-daq gui ...` in its own process (it runs and ends its own Qt event loop),
    with its settings in a temporary folder."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path),
           "HOME": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-m", "smm_daq.cli.main", "gui", *args], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=WAIT_MS / 1000,
    )


@pytest.mark.slow
def test_screenshot_of_a_view_then_quit(tmp_path):
    shot = tmp_path / "instruments.png"
    done = smm_daq_gui(tmp_path, "--view", "instruments", "--screenshot", str(shot))
    assert done.returncode == 0, done.stderr
    image = QtGui.QImage(str(shot))
    assert (image.width(), image.height()) == SCREENSHOT_SIZE
    assert (tmp_path / "smm-daq" / "gui.ini").exists()  # settings kept, in the given folder


@pytest.mark.slow
def test_demo_command_writes_a_screenshot(tmp_path):
    """The demo's MMT tab, its result shown, keeps to the window's size (wider controls would
    widen the window past the screenshot's, as they once did)."""
    shot = tmp_path / "demo.png"
    done = smm_daq_gui(tmp_path, "--demo", "--view", "mmt", "--screenshot", str(shot))
    assert done.returncode == 0, done.stderr
    image = QtGui.QImage(str(shot))
    assert (image.width(), image.height()) == SCREENSHOT_SIZE
    assert "demo files in" in done.stdout
