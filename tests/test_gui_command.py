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
        (["gui", "--screenshot", "/no/such/folder/shot.png"], "does not exist"),
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
