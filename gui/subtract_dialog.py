"""Choosing two entries to subtract: in-field minus remanent, registered or not.

Only entries a subtraction accepts are offered: a measured map on a grid (a scan, an imported
map, or one processed from them), never a model's Bz (χ, M, an MMT result) nor an image of
the sample, as `smm_daq.analysis.subtract_inputs` decides for the command line.
"""

from __future__ import annotations

from pathlib import Path

from PyQt6 import QtWidgets

from gui.command import recorded_command
from gui.compare_view import guess_roles
from smm_daq.analysis.registration import FORCE_HINT, NO_REGISTER_HINT
from smm_daq.analysis.subtract_inputs import (
    holds_measured_map,
    induced_among,
    require_alike,
    require_two_scans,
    tolerance_among,
)
from smm_daq.cli.maps import INSIGNIFICANT_SHIFT_HELP
from smm_daq.errors import InputError
from smm_daq.storage.names import lookalike, typed_entry_name
from smm_daq.storage.nexus import EntryInfo, check_entry_name

FORCE_SHIFT_LABEL = "Apply a shift not significantly different from zero"
REGISTER_LABEL = "Register the remanent map onto the in-field map"


def said_in_window(warning: str, *, recipe: bool = False) -> str:
    """A subtraction's warning as the window says it: how to force a shift not applied, and
    how to subtract the maps as they lie, named as the window does them (the subtract
    dialog's checkboxes; for a recipe, its step's keys), not as the command line's flags."""
    force, lie = (("apply_insignificant_shift = true in the recipe's subtract step",
                   "register = false in the recipe's subtract step") if recipe
                  else (f'the subtract dialog\'s "{FORCE_SHIFT_LABEL}"',
                        f'the subtract dialog\'s "{REGISTER_LABEL}" unticked'))
    return warning.replace(FORCE_HINT, force).replace(NO_REGISTER_HINT, lie)


def unused_name(base: str, taken: set[str]) -> str:
    """`base`, or `base_2`, `base_3`, … whichever is not in `taken`."""
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    return name


def subtract_command(path: Path, in_field: str, remanent: str, name: str, *,
                     register: bool, rotation: bool, apply_insignificant: bool = False) -> str:
    """The window's subtraction as the command line would run it, for the entry's record."""
    arguments = ["subtract", str(path), "--in-field", in_field, "--remanent", remanent,
                 "--name", name]
    arguments += [] if register else ["--no-register"]
    arguments += ["--rotation"] if rotation else []
    arguments += ["--apply-insignificant-shift"] if register and apply_insignificant else []
    return recorded_command(arguments)


class SubtractDialog(QtWidgets.QDialog):
    """The in-field and remanent entries, registration options and the new entry's name."""

    def __init__(self, entries: list[EntryInfo], parent: QtWidgets.QWidget | None = None
                 ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Induced map: in-field − remanent")
        self.offered = {e.name: e for e in entries if holds_measured_map(e)}
        self.listed = {e.name: e for e in entries}  # each entry's sources followed from here
        roles = guess_roles(list(self.offered.values()))
        self.in_field = QtWidgets.QComboBox()
        self.remanent = QtWidgets.QComboBox()
        for box, role in ((self.in_field, "in-field"), (self.remanent, "remanent")):
            box.addItems(list(self.offered))
            if role in roles:
                box.setCurrentText(roles[role])
            box.currentTextChanged.connect(lambda _text: self._check())
        self.register = QtWidgets.QCheckBox(REGISTER_LABEL)
        self.register.setChecked(True)
        self.register.setToolTip("Estimate the shift between the scans from the maps themselves"
                                 " (a remount, a stage that did not return exactly)")
        self.rotation = QtWidgets.QCheckBox("Also fit a rotation")
        self.register.toggled.connect(self.rotation.setEnabled)
        self.force_shift = QtWidgets.QCheckBox(FORCE_SHIFT_LABEL)
        self.force_shift.setToolTip(INSIGNIFICANT_SHIFT_HELP[0].upper()
                                     + INSIGNIFICANT_SHIFT_HELP[1:])  # the command line's
        self.register.toggled.connect(self.force_shift.setEnabled)
        self.taken = {e.name for e in entries}
        self.name = QtWidgets.QLineEdit(unused_name("induced", self.taken))
        self.name.textChanged.connect(lambda _text: self._check())
        self.problem = QtWidgets.QLabel("")
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color: #a00000")
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
        form.addRow(self.force_shift)
        form.addRow("New entry", self.name)
        form.addRow(self.problem)
        form.addRow(self.buttons)
        self._check()

    @property
    def ok_button(self) -> QtWidgets.QPushButton:
        return self.buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Ok)

    def _check(self) -> None:
        """Say at once what the subtraction would refuse of the chosen pair (one entry as
        both, two given the wrong way round, an induced map with a scan) and of the new
        entry's name (taken, or not a name), before a registration is computed in vain; grids
        are compared when it runs."""
        a = self.offered.get(self.in_field.currentText())
        b = self.offered.get(self.remanent.currentText())
        problem = "" if a and b else "The file holds no scans to subtract."
        name = typed_entry_name(self.name.text())
        try:
            if a and b:
                require_two_scans(a, b,  # type: ignore[arg-type]  # name, applied_field
                                  tolerances=(tolerance_among(self.listed, a.name),
                                              tolerance_among(self.listed, b.name)))
                require_alike(a.name, induced_among(self.listed, a.name),
                              b.name, induced_among(self.listed, b.name))
            check_entry_name(name, source="New entry")
            if name in self.taken or lookalike(self.taken, name):
                problem = problem or f"Entry '{name}' exists already; choose a new name."
        except InputError as exc:
            problem = problem or str(exc)
        self.problem.setText(problem)
        self.problem.setVisible(bool(problem))
        self.ok_button.setEnabled(not problem)

    def choice(self) -> tuple[str, str, str, bool, bool, bool]:
        """(in-field, remanent, new name, register, rotation, apply a shift not significantly
        different from zero)."""
        register = self.register.isChecked()
        return (self.in_field.currentText(), self.remanent.currentText(),
                typed_entry_name(self.name.text()), register,
                register and self.rotation.isChecked(),
                register and self.force_shift.isChecked())
