"""A new session file whose name leaves no room for its hidden scratch files is refused by the
window before anything starts, as the command line refuses it (`check_scratch_room`): the
scan began (the rig ramped, the stage moved) and failed only when the file was made."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest
from recipe_opening import recipe_opened
from test_gui_recipes import RECIPE

LONG_NAME = "é" * 124 + ".h5"  # 251 bytes: the folder takes it, its scratch files not
SAID = "whose name of 251 bytes leaves no room for the hidden files a session file is made"


def _refused(window, qtbot) -> str:
    """Start pressed: the scan ends "not started" (the check runs off the window's thread);
    what the status line says."""
    scan = window.scan
    with qtbot.waitSignal(scan.scanEnded, timeout=60_000) as ended:
        assert scan.start()
    assert ended.args[0] == "not started", ended.args
    assert not window.holder.busy and scan.live.sequencer is None
    return scan.status.text()


def _no_session_file(tmp_path: Path, kind: str) -> Path:
    """An existing file that is no session file: plain text, or another program's HDF5."""
    path = tmp_path / "notes.h5"
    if kind == "text":
        path.write_text("my notes\n", encoding="utf-8")
    else:
        with h5py.File(path, "w") as f:
            f["x"] = 1.0  # another program's HDF5 file
    return path


def test_the_scan_tab_refuses_a_new_file_without_room_for_its_scratch_files(
        window, qtbot, tmp_path):
    path = tmp_path / LONG_NAME
    window.scan.file_edit.setText(str(path))

    text = _refused(window, qtbot)
    assert text.startswith(f"Not started: the session file is {str(path)!r}, {SAID}"), text
    assert "expected a name of at most " in text and "nothing was written" in text, text
    assert not path.exists()


def test_a_name_longer_than_the_file_system_takes_is_refused_alike(window, qtbot, tmp_path):
    """Its name's length asked of the system (whether a file is there) raised OSError
    (ENAMETOOLONG) out of Start."""
    path = tmp_path / ("a" * 300 + ".h5")
    window.scan.file_edit.setText(str(path))

    text = _refused(window, qtbot)
    assert text.startswith(f"Not started: the session file is {str(path)!r}, whose name of "
                           "303 bytes leaves no room for the hidden files"), text


def test_the_check_asks_the_file_system_off_the_windows_thread(window, qtbot, tmp_path,
                                                              monkeypatch):
    """It resolves the file's links (`final_file`), which a stalled network mount can hold up
    for minutes: on the window's thread, the window froze meanwhile."""
    import threading

    import gui.scan_tab
    from smm_daq.cli.args import check_scratch_room

    threads = []

    def checked(option: str, text: str) -> None:
        threads.append(threading.current_thread())
        check_scratch_room(option, text)

    monkeypatch.setattr(gui.scan_tab, "check_scratch_room", checked)
    window.scan.file_edit.setText(str(tmp_path / LONG_NAME))
    assert _refused(window, qtbot).startswith("Not started: the session file is ")
    assert len(threads) == 1 and threads[0] is not threading.main_thread(), threads


@pytest.mark.parametrize(("name", "said"), [
    (LONG_NAME, f", {SAID}"),
    ("no-such-folder/s.h5", "; there is no directory ")])
def test_a_recipe_into_such_a_file_is_refused_as_it_is_opened(window, qtbot, tmp_path: Path,
                                                              name, said):
    """A file in a folder that does not exist: the recipe began, its first scan not started."""
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(RECIPE, encoding="utf-8")
    window.scan.file_edit.setText(str(tmp_path / name))
    view = window.recipes

    assert not recipe_opened(view, qtbot, recipe)
    assert f"the session file on the Scan tab is {str(tmp_path / name)!r}{said}" \
        in view.message.text(), view.message.text()
    assert not view.run_button.isEnabled()


@pytest.mark.parametrize("kind", ["text", "foreign"])
def test_a_recipe_into_a_file_that_is_no_session_file_is_refused_as_it_is_opened(
        window, qtbot, tmp_path, kind):
    """As `smm-daq run --out` refuses it: another program's HDF5 file was taken, the recipe
    ran, its steps before the first scan ramped and moved, and that scan was refused."""
    path = _no_session_file(tmp_path, kind)
    before = path.read_bytes()
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(RECIPE, encoding="utf-8")
    window.scan.file_edit.setText(str(path))
    view = window.recipes

    assert not recipe_opened(view, qtbot, recipe)
    text = view.message.text()
    assert str(path) in text, text
    assert ("not an HDF5 file" if kind == "text" else "not an smm-daq session file") in text
    assert not view.run_button.isEnabled() and path.read_bytes() == before


def test_a_scan_not_started_does_not_say_its_file_has_new_entries(window, qtbot, tmp_path):
    """The refusal, now told as the scan's end ("not started"), wrote nothing: the status bar
    said '… has new entries: open … in the Session tab to see them' of the file refused,
    beside the file the operator has open there."""
    import numpy as np
    from session_reads import opened

    from smm_daq.storage.mapdata import MapData
    from smm_daq.storage.nexus import write_map_entry

    other = tmp_path / "other.h5"
    write_map_entry(other, MapData(bz=np.zeros((4, 5)), x=np.arange(5) * 5e-6,
                                   y=np.arange(4) * 5e-6, height=50e-6, sensor_size=(1e-6, 1e-6),
                                   applied_field=np.zeros(3), name="earlier"), kind="scan")
    assert opened(window.session, qtbot, other)
    window.scan.file_edit.setText(str(tmp_path / LONG_NAME))

    _refused(window, qtbot)
    said = window.statusBar().currentMessage()
    assert said.startswith("Scan not started: the session file is "), said
    assert "new entries" not in said, said
    assert window.session.path == other


@pytest.mark.parametrize("kind", ["text", "foreign"])
def test_a_file_that_is_no_session_file_is_refused_as_the_command_line_does(
        window, qtbot, tmp_path, kind):
    """The scan began (the rig ramped, the stage moved) and failed as it opened the file ("…
    cannot open as HDF5"), and the status bar could say the file had new entries; the command
    line refuses it before anything starts."""
    path = _no_session_file(tmp_path, kind)
    before = path.read_bytes()
    window.scan.file_edit.setText(str(path))

    text = _refused(window, qtbot)
    assert text.startswith("Not started: ") and str(path) in text, text
    assert ("not an HDF5 file" if kind == "text" else "not an smm-daq session file") in text
    assert "new entries" not in text and path.read_bytes() == before


def test_a_file_in_a_folder_that_does_not_exist_is_refused_as_the_command_line_does(
        window, qtbot, tmp_path):
    """The scan failed as it made its file, on the name of a scratch file in the folder
    ("unable to open file: name = '…/.s.h5.…new', errno = 2"), and the status bar said the
    file had new entries."""
    path = tmp_path / "no-such-folder" / "s.h5"
    window.scan.file_edit.setText(str(path))

    text = _refused(window, qtbot)
    assert text == (f"Not started: the session file is {str(path)!r}; there is no directory "
                    f"{path.parent}; expected a file in a folder that exists"), text
