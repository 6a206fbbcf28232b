"""Choosing a scan of the MMT community's programs to import, as `smm-daq import mpe |
mmt-scan` takes it: its two files, the session file and the new entry's name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PyQt6 import QtWidgets

from smm_daq.analysis.mmt.formats.scan_import import IMPORT_OVERWRITE_HELP, SCAN_FORMATS
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.names import (
    NEW_ENTRY_NAME_RULE,
    new_entry_name_problem,
    shown_name,
    typed_entry_name,
)

# per format: what the dialog offers it as, and its two files (label, file dialog filter)
FORMATS = {
    "mpe": ("the multipole library (MetaDict JSON + NPZ)",
            (("Parameters (MetaDict JSON)", "JSON (*.json);;All files (*)"),
             ("Data (NPZ with Bz_array)", "NPZ (*.npz);;All files (*)"))),
    "mmt-scan": ("the MMT community, QDM (Bz text + scan parameters JSON)",
                 (("Map (Bz text, T)", "Text (*.txt *.csv *.dat);;All files (*)"),
                  ("Parameters (scan JSON)", "JSON (*.json);;All files (*)"))),
}
OVERWRITE_LABEL = "Replace an earlier import of that name"


@dataclass(frozen=True)
class ImportChoice:
    """What Import scan… was given, as typed: the format ("mpe" or "mmt-scan"), its two files
    in the command line's order, the session file and the new entry's name."""

    fmt: str
    first: str
    second: str
    out: str
    name: str
    overwrite: bool = False

    def missing(self) -> str:
        """What is not given, in words ("" when all is)."""
        files = FORMATS[self.fmt][1]
        empty = [what for what, text in ((files[0][0], self.first), (files[1][0], self.second),
                                         ("session file", self.out), ("entry name", self.name))
                 if not text.strip()]
        return ", ".join(empty)


def import_job(choice: ImportChoice) -> Callable[[], MapData]:
    """The import's work, for a worker: the entry's name checked as a new entry's, the
    session file as the command line checks --out (a new file, or one smm-daq made), then the
    scan read and written as `smm-daq import` does (`scan_import.import_scan`); the map
    written."""
    name = typed_entry_name(choice.name)

    def job() -> MapData:
        from smm_daq.analysis.mmt.formats.scan_import import import_scan
        from smm_daq.cli.args import session_file

        problem = new_entry_name_problem(name)
        if problem is not None:
            raise InputError(f"the entry name {shown_name(name)} is not usable: it {problem}; "
                             f"expected {NEW_ENTRY_NAME_RULE}")
        out = session_file("the session file", choice.out.strip())
        return import_scan(choice.fmt, choice.first.strip(), choice.second.strip(), out, name,
                           overwrite=choice.overwrite)

    return job


def import_said(text: str) -> str:
    """An import's refusal as the window says it: the box to tick, not --overwrite."""
    return text.replace("(or --overwrite to replace it)",
                        f'(or "{OVERWRITE_LABEL}" ticked to replace it)')


class ImportDialog(QtWidgets.QDialog):
    """The import's format, files, session file (the one open, at first) and entry name."""

    def __init__(self, session_file: Path | None, parent: QtWidgets.QWidget | None = None
                 ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import a scan")
        self.format = QtWidgets.QComboBox()
        for fmt in SCAN_FORMATS:
            self.format.addItem(FORMATS[fmt][0], fmt)
        self.files = [QtWidgets.QLineEdit(), QtWidgets.QLineEdit()]
        self.labels = [QtWidgets.QLabel(), QtWidgets.QLabel()]
        self.out = QtWidgets.QLineEdit(str(session_file) if session_file else "")
        self.out.setToolTip("The session file the scan is written into: a new one, or one "
                            "smm-daq made (its entries kept)")
        self.name = QtWidgets.QLineEdit()
        self.name.setPlaceholderText("the new entry's name")
        self.overwrite = QtWidgets.QCheckBox(OVERWRITE_LABEL)
        self.overwrite.setToolTip(f"As smm-daq import --overwrite: {IMPORT_OVERWRITE_HELP}")
        form = QtWidgets.QFormLayout(self)
        form.addRow("Format", self.format)
        for i, (label, edit) in enumerate(zip(self.labels, self.files, strict=True)):
            form.addRow(label, self._with_browse(edit, lambda i=i: self._choose_file(i)))
        form.addRow("Session file", self._with_browse(self.out, self._choose_out))
        form.addRow("Entry", self.name)
        form.addRow(self.overwrite)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Ok
                                             | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.format.currentIndexChanged.connect(lambda _i: self._label_files())
        self._label_files()

    def _with_browse(self, edit: QtWidgets.QLineEdit, choose) -> QtWidgets.QWidget:
        row = QtWidgets.QWidget()
        layout = QtWidgets.QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        browse = QtWidgets.QToolButton(text="…")
        browse.clicked.connect(choose)
        layout.addWidget(edit, 1)
        layout.addWidget(browse)
        return row

    def _label_files(self) -> None:
        for label, (text, _filter) in zip(self.labels, FORMATS[self.format.currentData()][1],
                                          strict=True):
            label.setText(text)

    def _choose_file(self, i: int) -> None:
        text, filter_ = FORMATS[self.format.currentData()][1][i]
        name, _ = QtWidgets.QFileDialog.getOpenFileName(self, text, self.files[i].text(),
                                                        filter_)
        if name:
            self.files[i].setText(name)

    def _choose_out(self) -> None:
        # a new file or an existing one: asked before an existing file is named (its
        # entries are kept; only an entry of the name given may be replaced, when ticked)
        name, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Session file to import into", self.out.text(), "Session files (*.h5)",
            options=QtWidgets.QFileDialog.Option.DontConfirmOverwrite)
        if name:
            self.out.setText(name)

    def choice(self) -> ImportChoice:
        return ImportChoice(self.format.currentData(), self.files[0].text(),
                            self.files[1].text(), self.out.text(), self.name.text(),
                            self.overwrite.isChecked())
