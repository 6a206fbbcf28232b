"""The Session tab exports, levels and takes the noise of the selected map as the command
line does, through the command line's own functions."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path

from PyQt6 import QtCore, QtWidgets
from test_gui_subtract import browser  # noqa: F401  # the tab on two small scans

from smm_daq.cli.main import main

WAIT_MS = 60_000


def cli(*words: str) -> int:
    """`smm-daq WORDS`, run in process, its output kept off the test's."""
    with redirect_stdout(io.StringIO()):
        return main(list(words))


def select(browser, name: str) -> None:  # noqa: F811
    row = browser._row_of(name)
    assert row is not None
    browser.table.selectRow(row)


def export_clicked(browser, qtbot, monkeypatch, chosen: Path, replace: bool = False  # noqa: F811
                   ) -> tuple[bool, str]:
    """Export… clicked, `chosen` picked in its file dialog (and `replace` answered where
    it asks): (written?, what the tab said)."""
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName",
                        lambda *_a, **_k: (str(chosen), ""))
    answer = (QtWidgets.QMessageBox.StandardButton.Yes if replace
              else QtWidgets.QMessageBox.StandardButton.No)
    monkeypatch.setattr(QtWidgets.QMessageBox, "question", lambda *_a, **_k: answer)
    with qtbot.waitSignal(browser.exported, timeout=WAIT_MS) as ended:
        qtbot.mouseClick(browser.export_button, QtCore.Qt.MouseButton.LeftButton)
    return ended.args[0], ended.args[1]


def test_export_writes_what_the_command_line_writes(browser, qtbot, monkeypatch,  # noqa: F811
                                                     tmp_path) -> None:
    select(browser, "inf")
    assert browser.export_button.isEnabled()
    written, said = export_clicked(browser, qtbot, monkeypatch, tmp_path / "gui")
    assert written, said
    assert cli("export", str(browser.path), "--entry", "inf", "--csv",
               str(tmp_path / "cli.csv"), "--png", str(tmp_path / "cli.png")) == 0
    for suffix in (".csv", ".png"):
        assert (tmp_path / f"gui{suffix}").read_bytes() == \
            (tmp_path / f"cli{suffix}").read_bytes()
    assert "gui.csv" in browser.message.text() and "gui.png" in browser.message.text()


def test_export_over_the_session_file_is_refused(browser, qtbot, monkeypatch  # noqa: F811
                                                 ) -> None:
    """The command line's rule: never text over an HDF5 file, replaced or not."""
    select(browser, "inf")
    before = browser.path.read_bytes()
    written, said = export_clicked(browser, qtbot, monkeypatch, browser.path, replace=True)
    assert not written
    assert "an HDF5 file" in said and "nothing was written" in said
    assert browser.message.text() == said
    assert browser.path.read_bytes() == before
    assert not browser.path.with_suffix(".png").exists()
