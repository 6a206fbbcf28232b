"""`smm-daq gui`: the command's parsing and checks; the core never imports Qt."""

from __future__ import annotations

import subprocess
import sys

import pytest

from smm_daq.cli.main import main


@pytest.fixture(autouse=True)
def private_settings(tmp_path):
    """The application's QSettings go to a temporary folder, never the user's."""
    from PyQt6 import QtCore

    for fmt in (QtCore.QSettings.Format.IniFormat, QtCore.QSettings.Format.NativeFormat):
        QtCore.QSettings.setPath(fmt, QtCore.QSettings.Scope.UserScope, str(tmp_path / "cfg"))


def test_help_does_not_import_qt():
    code = (
        "import sys\n"
        "from smm_daq.cli.main import build_parser\n"
        "build_parser().format_help()\n"
        "print(sorted(m for m in ('PyQt6', 'pyqtgraph', 'gui.app') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_gui_is_a_sub_command(capsys):
    with pytest.raises(SystemExit) as done:
        main(["gui", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for option in ("--profile", "--demo", "--screenshot", "FILE.h5"):
        assert option in text


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["gui", "--screenshot", "shot.txt"], "--screenshot"),
        (["gui", "--screenshot", "/no/such/folder/shot.png"], "no directory /no/such/folder"),
        (["gui", "missing.h5"], "not found"),
        (["gui", "--time-scale", "-1"], "--time-scale"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(argv, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_demo_refuses_a_real_profile(capsys, tmp_path, monkeypatch, repo):
    monkeypatch.chdir(tmp_path)
    assert main(["gui", "--demo", "--profile", str(repo / "configs" / "example-lab.toml")]) == 2
    assert "simulated" in capsys.readouterr().err


def a_session_file(path):
    import numpy as np

    from smm_daq.storage.mapdata import MapData
    from smm_daq.storage.nexus import write_map_entry

    x = np.arange(40) * 1e-6
    write_map_entry(path, MapData(bz=np.zeros((40, 40)), x=x, y=x, name="scan"), kind="scan")
    return path


@pytest.mark.parametrize("damage", ["missing", "directory", "not HDF5", "truncated"])
def test_a_session_file_that_cannot_be_read_exits_2_naming_it(damage, capsys, tmp_path,
                                                             monkeypatch):
    """As every other command: one line naming the file and what is wrong, before any
    window opens."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "sample.h5"
    if damage == "directory":
        path.mkdir()
    elif damage == "not HDF5":
        path.write_text("scan notes\n")
    elif damage == "truncated":
        whole = a_session_file(tmp_path / "whole.h5").read_bytes()
        path.write_bytes(whole[: len(whole) // 2])
    assert main(["gui", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"smm-daq: error: {path}: ")
    assert main(["info", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == err  # the words `info` has for it


def test_the_demo_refuses_a_session_file_it_would_destroy(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.h5").write_text("scan notes\n")
    assert main(["gui", "--demo", str(tmp_path / "notes.h5")]) == 2
    assert "is not an HDF5 file" in capsys.readouterr().err
    assert (tmp_path / "notes.h5").read_text() == "scan notes\n"


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder this process cannot write (as root, whom permissions do not stop: /sys)."""
    import os
    import tempfile

    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    for candidate in (folder, "/sys"):
        try:
            tempfile.TemporaryFile(dir=candidate).close()
        except OSError:
            yield candidate
            break
    else:
        pytest.skip("no folder this process cannot write")
    folder.chmod(0o755)
    assert os.access(folder, os.W_OK)


def test_a_screenshot_that_cannot_be_written_exits_2_before_the_window(
        read_only_folder, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shot = f"{read_only_folder}/shot.png"
    assert main(["gui", "--screenshot", shot]) == 2
    err = capsys.readouterr().err
    assert f"--screenshot is {shot!r}, which cannot be written" in err


def test_a_screenshot_may_replace_a_picture_never_a_session_file(capsys, tmp_path,
                                                                 monkeypatch):
    from types import SimpleNamespace

    from gui.app import _check

    monkeypatch.chdir(tmp_path)
    picture = tmp_path / "view.png"
    picture.write_bytes(b"an older picture")
    _check(SimpleNamespace(file=None, demo=False, screenshot=picture, time_scale=None))
    session = a_session_file(tmp_path / "shot.png")
    assert main(["gui", "--screenshot", str(session)]) == 2
    assert "an HDF5 file" in capsys.readouterr().err
