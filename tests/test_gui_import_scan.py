"""The Session tab's Import scan… brings in a scan of the multipole library (MetaDict JSON +
NPZ) or the MMT community's (QDM Bz text + scan JSON) as `smm-daq import mpe | mmt-scan`
does, off the window's thread: the same map written, the same refusals (file, line, column
named; nothing written), the same new-file and entry rules, in the window's words."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from PyQt6 import QtWidgets
from session_reads import opened

from gui.import_dialog import OVERWRITE_LABEL, ImportChoice, ImportDialog
from gui.session_browser import SessionBrowser
from smm_daq.analysis.mmt.formats import scan_import
from smm_daq.cli.main import main
from smm_daq.storage.nexus import list_entries, read_map

DATA = Path(__file__).parent / "data"
JSON = DATA / "MetaDict_mpe_demo.json"
NPZ = DATA / "MagneticSample_mpe_demo.npz"
WAIT_MS = 60_000
PARAMS = {"Sensor center domain LL-x-y": [0.0, 1e-5], "Sensor center domain UR-x-y":
          [3e-6, 1.2e-5], "Scan spacing": 1e-6, "Scan delta-x": 5e-7, "Scan delta-y": 5e-7,
          "Scan height": 2e-6}


@pytest.fixture
def browser(qtbot):
    b = SessionBrowser()
    qtbot.addWidget(b)
    return b


def imported(browser, qtbot, choice: ImportChoice) -> list:
    with qtbot.waitSignal(browser.imported, timeout=WAIT_MS) as ended:
        assert browser.import_scan(choice)
    return ended.args


def test_an_mpe_scan_is_imported_as_the_command_line_imports_it(browser, qtbot, tmp_path,
                                                               monkeypatch):
    h5, cli = tmp_path / "new.h5", tmp_path / "cli.h5"
    threads = []
    importing = scan_import.import_scan

    def noted(*args, **kwargs):
        threads.append(threading.current_thread())
        return importing(*args, **kwargs)

    monkeypatch.setattr(scan_import, "import_scan", noted)
    ok, said = imported(browser, qtbot, ImportChoice("mpe", str(JSON), str(NPZ), str(h5),
                                                     " qdm "))
    assert ok and said.startswith("Imported a ") and said.endswith(
        f" map into entry 'qdm' of {h5}"), said
    assert threads and threading.main_thread() not in threads  # read in the tab's worker
    assert main(["import", "mpe", str(JSON), str(NPZ), "--out", str(cli), "--name", "qdm"]) == 0
    window, line = read_map(h5, "qdm"), read_map(cli, "qdm")
    np.testing.assert_array_equal(window.bz, line.bz)
    assert (window.height, window.sensor_size) == (line.height, line.sensor_size)
    qtbot.waitUntil(lambda: browser.path == h5, timeout=WAIT_MS)  # the new file shown
    ok, said = imported(browser, qtbot, ImportChoice("mpe", str(JSON), str(NPZ), str(h5),
                                                     "qdm"))
    assert not ok and said == (f"Not imported: {h5}: entry 'qdm' already exists and is "
                               "imported data (kind 'import'); expected a new entry name (or "
                               f'"{OVERWRITE_LABEL}" ticked to replace it)'), said
    ok, _ = imported(browser, qtbot, ImportChoice("mpe", str(JSON), str(NPZ), str(h5), "qdm",
                                                  overwrite=True))
    assert ok


def test_a_bad_cell_is_refused_naming_its_line_and_column_and_nothing_is_written(
        browser, qtbot, tmp_path, capsys):
    m, p, h5 = tmp_path / "map.txt", tmp_path / "p.json", tmp_path / "s.h5"
    m.write_text("1e-6 2e-6 3e-6 4e-6\n1e-6 2e-6 x 4e-6\n1e-6 2e-6 3e-6 4e-6\n")
    p.write_text(json.dumps(PARAMS))
    assert main(["import", "mmt-scan", str(m), "--params", str(p), "--out", str(h5),
                 "--name", "qdm"]) == 2
    cli = capsys.readouterr().err.removeprefix("smm-daq: error: ").strip()
    ok, said = imported(browser, qtbot, ImportChoice("mmt-scan", str(m), str(p), str(h5),
                                                     "qdm"))
    assert not ok and said == f"Not imported: {cli}", (said, cli)
    assert f"{m}, line 2, column 11: holds 'x'" in said
    assert not h5.exists()
    ok, said = imported(browser, qtbot, ImportChoice("mmt-scan", str(m), str(p), str(h5),
                                                     "a/b"))
    assert not ok and "the entry name 'a/b' is not usable: it " in said, said
    assert not browser.import_scan(ImportChoice("mmt-scan", str(m), "", str(h5), ""))
    assert browser.message.text() == (
        "Not imported: no Parameters (scan JSON), entry name given; expected both files, the "
        "session file and the new entry's name")


def test_the_dialog_offers_both_formats_and_the_open_file(qtbot, tmp_path):
    dialog = ImportDialog(tmp_path / "s.h5")
    qtbot.addWidget(dialog)
    dialog.format.setCurrentIndex(1)
    assert [label.text() for label in dialog.labels] == ["Map (Bz text, T)",
                                                         "Parameters (scan JSON)"]
    dialog.files[0].setText("m.txt")
    dialog.files[1].setText("p.json")
    dialog.name.setText("qdm")
    dialog.overwrite.setChecked(True)
    assert dialog.choice() == ImportChoice("mmt-scan", "m.txt", "p.json",
                                           str(tmp_path / "s.h5"), "qdm", True)


def test_the_button_s_ok_imports_into_the_open_file_and_lists_the_entry(browser, qtbot,
                                                                          tmp_path, monkeypatch):
    """Import scan…, its dialog answered OK: the scan goes into the file open (the dialog's
    first choice), which is read again and lists the new entry; Cancel imports nothing."""
    h5 = tmp_path / "s.h5"
    assert main(["import", "mpe", str(JSON), str(NPZ), "--out", str(h5), "--name", "first"]) == 0
    assert opened(browser, qtbot, h5)
    offered = []

    def answered(dialog: ImportDialog, accept: bool):
        def exec_() -> int:
            offered.append(dialog.out.text())
            dialog.files[0].setText(str(JSON))
            dialog.files[1].setText(str(NPZ))
            dialog.name.setText("second")
            code = QtWidgets.QDialog.DialogCode
            return (code.Accepted if accept else code.Rejected).value
        return exec_

    monkeypatch.setattr(ImportDialog, "exec", lambda self: answered(self, False)())
    browser.import_button.click()
    assert offered == [str(h5)] and browser.writes == []  # Cancel: no import begun
    monkeypatch.setattr(ImportDialog, "exec", lambda self: answered(self, True)())
    with qtbot.waitSignal(browser.imported, timeout=WAIT_MS) as ended:
        browser.import_button.click()
    assert ended.args[0], ended.args[1]
    assert offered == [str(h5)] * 2
    qtbot.waitUntil(lambda: browser.reading is None, timeout=WAIT_MS)
    assert sorted(browser.table.item(r, 0).text() for r in range(browser.table.rowCount())) \
        == ["first", "second"]
    assert sorted(e.name for e in list_entries(h5)) == ["first", "second"]


def test_a_file_opened_while_the_import_runs_stays_open(browser, qtbot, tmp_path, monkeypatch):
    """The import ends after another file was opened: that file stays open (and so the file
    the Scan tab scans into), not the one imported into; it is said where the scan went."""
    h5, other = tmp_path / "s.h5", tmp_path / "other.h5"
    for path in (h5, other):
        assert main(["import", "mpe", str(JSON), str(NPZ), "--out", str(path), "--name",
                     "first"]) == 0
    assert opened(browser, qtbot, h5)
    started, release = threading.Event(), threading.Event()
    importing = scan_import.import_scan

    def held(*args, **kwargs):
        started.set()
        assert release.wait(WAIT_MS / 1000)
        return importing(*args, **kwargs)

    monkeypatch.setattr(scan_import, "import_scan", held)
    with qtbot.waitSignal(browser.imported, timeout=WAIT_MS) as ended:
        assert browser.import_scan(ImportChoice("mpe", str(JSON), str(NPZ), str(h5), "second"))
        assert started.wait(WAIT_MS / 1000)
        assert opened(browser, qtbot, other)
        release.set()
    assert ended.args[0], ended.args[1]
    qtbot.waitUntil(lambda: browser.reading is None, timeout=WAIT_MS)
    assert browser.path == other, browser.path
    assert browser.message.text() == ended.args[1]
    assert ended.args[1].endswith(f" map into entry 'second' of {h5}"), ended.args[1]
