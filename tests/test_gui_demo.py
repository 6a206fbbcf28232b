"""The demo in the window, and `smm-daq gui --screenshot`."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PyQt6 import QtGui

from gui.app import SCREENSHOT_SIZE
from gui.demo import GRAINS_FILE, IN_FIELD, INDUCED, RECIPE_FILE, REMANENT, SESSION_FILE, Demo
from gui.demo_folder import clean_up
from gui.main_window import MainWindow
from smm_daq.analysis.grains import read_grains
from smm_daq.instruments.profile import load_profile
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import list_entries, write_map_entry

WAIT_MS = 120_000


def test_the_demo_fills_the_session_and_compares_the_maps(qtbot, settings, tmp_path):
    w = MainWindow(load_profile(), settings, persist=False)
    qtbot.addWidget(w)
    w.show()
    folder = tmp_path / "demo"
    folder.mkdir()
    demo = Demo(w, folder, size_um=300.0, step_um=25.0)
    demo.start()  # before the rig is open: the demo waits for it
    with qtbot.waitSignal(demo.finished, timeout=WAIT_MS) as done:
        w.instruments.connect_rig()
    assert done.args == [True, "all steps done"]
    entries = {e.name: (e.kind, e.status) for e in list_entries(folder / "demo.h5")}
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
    grains = read_grains(folder / "demo-grains.csv")  # the grains under the scan
    assert grains.n_grains >= 1
    for label in grains.labels:
        mine = grains.cuboids[grains.grain == np.flatnonzero(grains.labels == label)[0]]
        np.testing.assert_allclose(mine, sample.cuboids[sample.grain == label], rtol=1e-12)
    assert views["induced"].outlines.getData()[0].size > 0
    mmt = w.mmt  # the remanent scan inverted with the demo's grain file
    assert mmt.result is not None and mmt.result.grains.n_grains == grains.n_grains
    assert mmt.entry.currentText() == REMANENT
    w.holder.close()
    assert clean_up(folder) == f"demo files removed ({folder})"  # only the demo's own files
    assert not folder.exists()


def test_an_inversion_of_the_users_after_the_demo_is_not_taken_for_the_demos(
        qtbot, settings, tmp_path, monkeypatch):
    """The demo's own result closes unasked and ends the demo; an inversion the user runs in
    the window afterwards is neither: its result is asked for at the close, and the demo does
    not end again (its outcome, the command's exit code, is the demo's)."""
    w = MainWindow(load_profile(), settings, persist=False)
    qtbot.addWidget(w)
    demo = Demo(w, tmp_path)
    ended: list[list] = []
    demo.finished.connect(lambda *args: ended.append(list(args)))
    monkeypatch.setattr(w.mmt, "run", lambda: True)  # the demo's inversion, started
    demo._invert()
    w.mmt.unsaved = "The MMT result of 'demo-remanent' of demo.h5"
    w.mmt.finished.emit(True, "the demo's")
    assert ended == [[True, "all steps done"]] and w.mmt.unsaved is None
    w.mmt.unsaved = "The MMT result of 'demo-in-field' of demo.h5"  # the user's, later
    w.mmt.finished.emit(False, "cancelled")  # and another of the user's, cancelled
    assert ended == [[True, "all steps done"]]
    assert w.mmt.unsaved == "The MMT result of 'demo-in-field' of demo.h5"
    w.mmt.unsaved = None  # closed unasked by qtbot


def demo_folder(path):
    """A folder as the demo leaves it: its recipe, grain file and session file."""
    path.mkdir()
    (path / RECIPE_FILE).write_text("[recipe]\n")
    (path / GRAINS_FILE).write_text("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n")
    x = np.arange(4) * 1e-6
    for name in (REMANENT, IN_FIELD, INDUCED):
        write_map_entry(path / SESSION_FILE, MapData(bz=np.zeros((4, 4)), x=x, y=x, name=name),
                        kind="scan")
    return path


def test_the_demo_folder_is_kept_when_the_user_added_to_it(tmp_path):
    """A scan, a saved result or an export into the demo's folder may be wanted: the folder
    stays, named with what was added; else it goes."""
    folder = demo_folder(tmp_path / "scanned")
    write_map_entry(folder / SESSION_FILE, MapData(bz=np.zeros((4, 4)), x=np.arange(4) * 1e-6,
                                                   y=np.arange(4) * 1e-6, name="my-scan"),
                    kind="scan")
    assert clean_up(folder) == ("demo folder kept, as it holds what you added (entry "
                                f"'my-scan' of demo.h5): {folder}")
    assert (folder / SESSION_FILE).exists()
    folder = demo_folder(tmp_path / "exported")
    (folder / "grains.csv").write_text("grain\n")
    assert "(grains.csv)" in clean_up(folder) and (folder / "grains.csv").exists()
    folder = demo_folder(tmp_path / "untouched")
    assert clean_up(folder) == f"demo files removed ({folder})"
    assert not folder.exists()


# `smm-daq gui ARGS`, its demo (if asked for) scanning a small area: the size of the demo's
# scans is no part of what the command's tests check
SMALL_DEMO_GUI = """
import functools, sys
from gui import app, demo
from smm_daq.cli.main import main
app.Demo = functools.partial(demo.Demo, size_um=300.0, step_um=25.0)
sys.exit(main(["gui", *sys.argv[1:]]))
"""


def smm_daq_gui(tmp_path, *args: str) -> subprocess.CompletedProcess:
    """Run `smm-daq gui ...` in its own process (it runs and ends its own Qt event loop),
    with its settings in a temporary folder."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path),
           "HOME": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-c", SMALL_DEMO_GUI, *args], cwd=tmp_path, env=env,
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
    folder = done.stdout.split("smm-daq: demo files in ", 1)[1].splitlines()[0]
    assert f"smm-daq: demo files removed ({folder})" in done.stdout
    assert not os.path.exists(folder)


def test_closing_the_window_during_the_demos_recipe_ends_cleanly(qtbot, settings, tmp_path,
                                                                   monkeypatch):
    """The recipe's end comes after the window has shut its workers down: the demo's next
    steps (the grain outlines, the inversion) are not started then (an error raised in the
    event loop ends a PyQt6 application)."""
    from PyQt6 import QtWidgets

    w = MainWindow(load_profile(), settings, persist=False)
    qtbot.addWidget(w)
    w.show()
    demo = Demo(w, tmp_path, size_um=300.0, step_um=25.0)
    demo.start()
    w.instruments.connect_rig()
    live = w.scan.live
    qtbot.waitUntil(lambda: live.running and live.points > 3, timeout=WAIT_MS)
    yes = QtWidgets.QMessageBox.StandardButton.Yes
    with monkeypatch.context() as patch:
        patch.setattr(QtWidgets.QMessageBox, "question", lambda *a, **k: yes)
        with qtbot.waitSignal(demo.finished, timeout=WAIT_MS) as ended:
            w.close()
    assert not w.isVisible() and w.holder.rig is None
    assert ended.args[0] is False


def test_no_screenshot_of_a_window_closed_before_the_demo_ended(qtbot, settings, tmp_path,
                                                                monkeypatch, capsys):
    """`smm-daq gui --demo --screenshot PATH`, its window closed during the recipe: no picture
    of a closed window is written (nor one that was there replaced), the command says why and
    exits 1."""
    import functools
    from types import SimpleNamespace

    from PyQt6 import QtWidgets

    from gui import app

    monkeypatch.setattr(app, "Demo", functools.partial(Demo, size_um=300.0, step_um=25.0))
    shot = tmp_path / "shot.png"
    shot.write_bytes(b"an earlier picture")
    args = SimpleNamespace(file=None, view=None, screenshot=shot)
    w = MainWindow(load_profile(), settings, persist=False)
    qtbot.addWidget(w)
    w.show()
    w.instruments.connect_rig()
    outcome = {"ok": True, "shot": False, "shot_failed": False}
    folder = tmp_path / "demo"
    folder.mkdir()
    app._start_demo(w, args, outcome, folder)
    live = w.scan.live
    qtbot.waitUntil(lambda: live.running and live.points > 3, timeout=WAIT_MS)
    yes = QtWidgets.QMessageBox.StandardButton.Yes
    monkeypatch.setattr(QtWidgets.QMessageBox, "question", lambda *a, **k: yes)
    w.close()
    assert w.isVisible() and w.closing  # shown while its scan is made safe, closing all the same
    app._screenshot(w, shot, outcome)
    assert shot.read_bytes() == b"an earlier picture"
    qtbot.waitUntil(lambda: not outcome["ok"], timeout=WAIT_MS)  # the demo ended, failed
    assert not w.isVisible()
    assert shot.read_bytes() == b"an earlier picture"
    capsys.readouterr()
    assert app.exit_code(args, outcome, 0) == 1
    assert capsys.readouterr().err == (f"smm-daq: no screenshot written to {shot}: the window "
                                       "was closed before it was due\n")


def test_a_screenshot_that_could_not_be_written_exits_1(qtbot, settings, tmp_path, capsys):
    """The picture asked for is not there: the command says so once and fails (it exited 0)."""
    from types import SimpleNamespace

    from gui import app

    w = MainWindow(load_profile(), settings, persist=False)
    qtbot.addWidget(w)
    w.show()
    shot = tmp_path / "removed" / "shot.png"  # its folder gone since the command was checked
    outcome = {"ok": True, "shot": False, "shot_failed": False}
    app._screenshot(w, shot, outcome)
    assert not shot.exists() and not w.isVisible()
    args = SimpleNamespace(file=None, view=None, screenshot=shot)
    assert app.exit_code(args, outcome, 0) == 1
    assert capsys.readouterr().err == f"smm-daq: could not write {shot}\n"


def test_the_demo_runs_the_simulator_whatever_profile_the_window_last_ran_on(settings, repo):
    """`smm-daq gui --demo` after the window last ran on a real rig's profile: the demo runs on
    the simulator's (it was refused, naming the remembered profile, not one the user gave);
    without --demo the remembered profile is used, and a real rig's given to --demo is
    refused."""
    import argparse

    from gui.app import chosen_profile
    from smm_daq.errors import InputError

    lab = repo / "configs" / "example-lab.toml"
    settings.setValue("profile/path", str(lab))
    profile, _ = chosen_profile(argparse.Namespace(profile=None, demo=True), settings)
    assert profile.simulated
    profile, _ = chosen_profile(argparse.Namespace(profile=None, demo=False), settings)
    assert profile.path == lab and not profile.simulated
    with pytest.raises(InputError, match=r"example-lab\.toml has rig\.simulated = false"):
        chosen_profile(argparse.Namespace(profile=lab, demo=True), settings)


def test_the_demo_neither_refuses_nor_warns_of_a_remembered_profile(settings, repo, tmp_path):
    """`smm-daq gui --demo` after the window last ran on a real rig's profile that warns as it
    loads (an SR860 asked for a reserve), or on one that no longer loads (edited since): the
    demo runs the simulator, saying nothing of that profile (it printed the rig's warning,
    or refused the demo with exit 2 naming the profile the user had not given)."""
    import argparse
    import warnings

    from gui.app import chosen_profile

    text = (repo / "configs" / "example-lab.toml").read_text()
    for old, new in (('implementation = "sr830"', 'implementation = "sr860"'),
                     ('reserve = "normal"', 'reserve = "high"')):
        assert old in text
        text = text.replace(old, new)
    lab, broken = tmp_path / "lab.toml", tmp_path / "broken.toml"
    lab.write_text(text)
    broken.write_text(text.replace("simulated = false", "simulated = "))
    for remembered in (lab, broken):
        settings.setValue("profile/path", str(remembered))
        with warnings.catch_warnings(record=True) as shown:
            warnings.simplefilter("always")
            profile, warned = chosen_profile(argparse.Namespace(profile=None, demo=True),
                                             settings)
        assert profile.simulated and warned == [] and shown == []
