"""Choosing two entries to subtract: in-field minus remanent, registered or not."""

from __future__ import annotations

from PyQt6 import QtWidgets

from gui.compare_view import guess_roles
from smm_daq.storage.nexus import EntryInfo


def unused_name(base: str, taken: set[str]) -> str:
    """`base`, or `base_2`, `base_3`, … whichever is not in `taken`."""
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    return name


class SubtractDialog(QtWidgets.QDialog):
    """The in-field and remanent entries, registration options and the new entry's name."""

    def __init__(self, entries: list[EntryInfo], parent: QtWidgets.QWidget | None = None
                 ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Induced map: in-field − remanent")
        names = [e.name for e in entries if e.shape is not None]
        roles = guess_roles(entries)
        self.in_field = QtWidgets.QComboBox()
        self.remanent = QtWidgets.QComboBox()
        for box, role in ((self.in_field, "in-field"), (self.remanent, "remanent")):
            box.addItems(names)
            if role in roles:
                box.setCurrentText(roles[role])
        self.register = QtWidgets.QCheckBox("Register the remanent map onto the in-field map")
        self.register.setChecked(True)
        self.register.setToolTip("Estimate the shift between the scans from the maps themselves"
                                 " (a remount, a stage that did not return exactly)")
        self.rotation = QtWidgets.QCheckBox("Also fit a rotation")
        self.register.toggled.connect(self.rotation.setEnabled)
        self.name = QtWidgets.QLineEdit(unused_name("induced", {e.name for e in entries}))
        self.buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Ok
            | QtWidgets.QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form = QtWidgets.QFormLayout(self)
        form.addRow("In-field entry", self.in_field)
        form.addRow("Remanent entry", self.remanent)
        form.addRow(self.register)
        form.addRow(self.rotation)
        form.addRow("New entry", self.name)
        form.addRow(self.buttons)

    def choice(self) -> tuple[str, str, str, bool, bool]:
        """(in-field, remanent, new name, register, rotation)."""
        register = self.register.isChecked()
        return (self.in_field.currentText(), self.remanent.currentText(),
                self.name.text().strip(), register, register and self.rotation.isChecked())
