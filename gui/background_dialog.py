"""Choosing how to remove a map's background: what `smm-daq background` and `smm-daq level`
offer that a user needs most (the model or the line levelling, a border of background along
the map's edges, a rectangle of background), as the command's words, run by the command's
own function (`smm_daq.cli.maps.background_entry`, `level_entry`)."""

from __future__ import annotations

from pathlib import Path

from PyQt6 import QtWidgets

from gui.command import file_word
from gui.number_boxes import ClampingSpinBox
from gui.subtract_dialog import unused_name
from smm_daq.cli.maps import MAX_UM
from smm_daq.errors import InputError
from smm_daq.storage.names import lookalike, typed_entry_name
from smm_daq.storage.nexus import check_entry_name

# what is removed: (said in the dialog, the command's words, the new entry's name's ending)
REMOVALS = (
    ("an offset, fitted on the background", ["background", "--model", "offset"], "offset"),
    ("a plane, fitted on the background", ["background", "--model", "plane"], "plane"),
    ("the applied field's reading (from the background if given, else the entry's field)",
     ["background", "--model", "field"], "field"),
    ("a drift per line: an offset each, fitted on the background", ["level", "--order", "0"],
     "levelled"),
    ("a drift per line: an offset and a slope each", ["level", "--order", "1"], "levelled"),
)
RECT = ("x from", "x to", "y from", "y to")
# the command's options as the dialog names what they give
_WINDOW_WORDS = (
    ("(--background-rect, --sample-polygon, --border-um)", "(the rectangle and the border)"),
    ("expected --background-rect, --sample-polygon or --border-um",
     "expected a rectangle or a border of background"),
    (" (or --overwrite to replace it)", ""),  # the window replaces no entry
)


def said_in_window(refusal: str) -> str:
    """The command's refusal as the window says it: the background named as the dialog
    gives it, not as the command's options."""
    for option, words in _WINDOW_WORDS:
        refusal = refusal.replace(option, words)
    return refusal


def _length_box(tip: str, lowest: float) -> ClampingSpinBox:
    box = ClampingSpinBox()
    box.setRange(lowest, MAX_UM)
    box.setDecimals(3)
    box.setSuffix(" µm")
    box.setToolTip(tip)
    return box


class BackgroundDialog(QtWidgets.QDialog):
    """What to remove from entry `entry`'s map, where its background is, and the new entry's
    name; `arguments` gives them as the command's words."""

    def __init__(self, entry: str, taken: set[str], parent: QtWidgets.QWidget | None = None
                 ) -> None:
        super().__init__(parent)
        self.entry, self.taken = entry, taken
        self.setWindowTitle(f"Remove the background of '{entry}'")
        self.removal = QtWidgets.QComboBox()
        self.removal.addItems([said for said, _words, _end in REMOVALS])
        self.removal.currentIndexChanged.connect(lambda _i: self._removal_changed())
        self.border = _length_box("A frame this wide along the map's edges is background "
                                  "(none: no frame)", 0.0)
        self.border.setSpecialValueText("none")
        self.border.setValue(0.0)
        self.rect = QtWidgets.QGroupBox("A rectangle of background (µm)")
        self.rect.setCheckable(True)
        self.rect.setChecked(False)
        self.corners = [_length_box(f"The background rectangle's {what}, µm", -MAX_UM)
                        for what in RECT]
        grid = QtWidgets.QFormLayout(self.rect)
        for what, box in zip(RECT, self.corners, strict=True):
            grid.addRow(what.capitalize(), box)
        self.name = QtWidgets.QLineEdit()
        self._named = ""  # the name last proposed: replaced as the removal changes, unless typed
        self.problem = QtWidgets.QLabel("")
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color: #a00000")
        # what a box did with a number typed (refused it, or took its range's end), said
        # until typed into again, and stopping OK once: seen before the entry is written
        self._typed = ""
        for box in self.boxes:
            box.refused.connect(lambda text, box=box: self._typed_said(box.refusal(text)))
            box.clamped.connect(lambda typed, taken, box=box: self._typed_said(
                f"{box.say(typed)} is beyond the box's range; {box.say(taken)} is used"))
            box.lineEdit().textEdited.connect(lambda _text: self._typed_said(""))
            box.valueChanged.connect(lambda _v: self._check())
        self.rect.toggled.connect(lambda _on: self._check())
        self.name.textChanged.connect(lambda _text: self._check())
        self.buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Ok
            | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form = QtWidgets.QFormLayout(self)
        form.addRow("Remove", self.removal)
        form.addRow("Border of background", self.border)
        form.addRow(self.rect)
        form.addRow("New entry", self.name)
        form.addRow(self.problem)
        form.addRow(self.buttons)
        self._removal_changed()

    @property
    def ok_button(self) -> QtWidgets.QPushButton:
        return self.buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Ok)

    def _removal_changed(self) -> None:
        """A new name proposed for the new removal, unless one was typed."""
        if self.name.text() in ("", self._named):
            self._named = unused_name(f"{self.entry}_{REMOVALS[self.removal.currentIndex()][2]}",
                                      self.taken)
            self.name.setText(self._named)
        self._check()

    @property
    def boxes(self) -> list[ClampingSpinBox]:
        return [self.border, *self.corners]

    def accept(self) -> None:
        """Accepted with the numbers typed and not yet entered (a box takes its number on
        Return or as it is left: a click on OK that takes no focus, as on macOS, leaves it
        untaken), unless a box refused or clamped a number typed, now or as it was left:
        that is said, and OK again takes what the boxes hold."""
        for box in self.boxes:
            box.interpretText()
        if self._typed:
            self._typed = ""
            return
        super().accept()

    def _typed_said(self, text: str) -> None:
        self._typed = text
        self._check()

    def _say(self, text: str) -> None:
        self.problem.setText(text)
        self.problem.setVisible(bool(text))

    def _check(self) -> None:
        """Say at once what the command would refuse of the choice before it runs: no
        background given (but for the field's reading), the new entry's name taken or no
        name; where the background lies on the map is checked when it runs."""
        words = REMOVALS[self.removal.currentIndex()][1]
        problem = ""
        if words[-1] != "field" and not (self.border.value() > 0 or self.rect.isChecked()):
            problem = "Give a border of background, a rectangle of background, or both."
        name = typed_entry_name(self.name.text())
        try:
            check_entry_name(name, source="New entry")
        except InputError as exc:
            problem = problem or str(exc)
        if not problem and (name in self.taken or lookalike(self.taken, name)):
            problem = f"Entry '{name}' exists already; choose a new name."
        self._say(problem or self._typed)
        self.ok_button.setEnabled(not problem)

    def new_name(self) -> str:
        return typed_entry_name(self.name.text())

    def arguments(self, path: Path) -> list[str]:
        """The choice as `smm-daq`'s words for the session file `path`: each name joined to
        its option ("="), so that a name beginning with '-' is a value, not an option."""
        words = REMOVALS[self.removal.currentIndex()][1]
        arguments = [words[0], file_word(path), f"--entry={self.entry}",
                     f"--name={self.new_name()}", *words[1:]]
        if self.border.value() > 0:
            arguments += [f"--border-um={self.border.value()!r}"]
        if self.rect.isChecked():
            # "=": a rectangle from x -10 is a value, not an option
            arguments += ["--background-rect="
                          + ",".join(repr(box.value()) for box in self.corners)]
        return arguments
