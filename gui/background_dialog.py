"""Choosing how to remove a map's background: what `smm-daq background` and `smm-daq level`
offer (the model or the line levelling, a border of background along the map's edges,
rectangles of background, the sample's outlines with the background outside them), as the
command's words, run by the command's own function (`smm_daq.cli.maps.background_entry`,
`level_entry`)."""

from __future__ import annotations

from pathlib import Path

from PyQt6 import QtWidgets

from gui.command import file_word
from gui.number_boxes import ClampingSpinBox
from gui.subtract_dialog import unused_name
from smm_daq.cli.maps import MAX_UM, um_pairs
from smm_daq.errors import InputError
from smm_daq.storage.names import lookalike, typed_entry_name
from smm_daq.storage.nexus import check_entry_name
from smm_daq.text_files import text_lines

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
    ("(--background-rect, --sample-polygon, --border-um)",
     "(the rectangles, the sample's outlines and the border)"),
    ("expected --background-rect, --sample-polygon or --border-um",
     "expected a rectangle, an outline of the sample or a border of background"),
    ("--sample-polygon ", "the outline "),
    ("--background-rect is", "a rectangle is"),
    (" (or --overwrite to replace it)", ""),  # the window replaces no entry
)


def said_in_window(refusal: str) -> str:
    """The command's refusal as the window says it: the background named as the dialog
    gives it, not as the command's options."""
    for option, words in _WINDOW_WORDS:
        refusal = refusal.replace(option, words)
    return refusal


def _outline_refusal(line: str) -> str:
    """Why `smm-daq` refuses `line` as a --sample-polygon, in the window's words; "" where it
    takes it."""
    try:
        um_pairs("--sample-polygon", line)
    except InputError as exc:
        return said_in_window(str(exc))
    return ""


def _length_box(tip: str, lowest: float) -> ClampingSpinBox:
    box = ClampingSpinBox()
    box.setRange(lowest, MAX_UM)
    box.setDecimals(3)
    box.setSuffix(" µm")
    box.setToolTip(tip)
    return box


class BackgroundDialog(QtWidgets.QDialog):
    """What to remove from entry `entry`'s map, where its background is (a border, any number
    of rectangles, the sample's outlines: the command's --border-um, --background-rect and
    --sample-polygon), and the new entry's name; `arguments` gives them as the command's
    words."""

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
        self.rect = QtWidgets.QGroupBox("Rectangles of background (µm)")
        self._rows = QtWidgets.QGridLayout()
        for column, what in enumerate(RECT):
            self._rows.addWidget(QtWidgets.QLabel(what.capitalize()), 0, column)
        self.rectangles: list[list[ClampingSpinBox]] = []  # a row of 4 boxes each
        self._removers: list[QtWidgets.QToolButton] = []
        self.add_button = QtWidgets.QPushButton("Add a rectangle")
        self.add_button.clicked.connect(lambda: self.add_rectangle())
        rect_layout = QtWidgets.QVBoxLayout(self.rect)
        rect_layout.addLayout(self._rows)
        rect_layout.addWidget(self.add_button)
        self.outlines = QtWidgets.QPlainTextEdit()
        self.outlines.setPlaceholderText("x,y; x,y; x,y; … in µm, one outline a line")
        self.outlines.setToolTip(
            "The sample's outlines, µm, one a line, each as smm-daq's --sample-polygon takes "
            "it: its vertices in order around it, 'x,y' each, ';' between two ('.' before the "
            "decimals); the background is outside every outline")
        self.outlines.setTabChangesFocus(True)
        self.outlines.setFixedHeight(self.outlines.fontMetrics().lineSpacing() * 4 + 12)
        self._outlines_read: dict[str, str] = {}  # each outline typed: why refused, or ""
        self.outlines.textChanged.connect(self._check)
        self.name = QtWidgets.QLineEdit()
        self._named = ""  # the name last proposed: replaced as the removal changes, unless typed
        self.problem = QtWidgets.QLabel("")
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color: #a00000")
        # what a box did with a number typed (refused it, or took its range's end), said
        # until typed into again, and stopping OK once: seen before the entry is written
        self._typed = ""
        self._watch(self.border)
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
        form.addRow("Sample's outlines", self.outlines)
        form.addRow("New entry", self.name)
        form.addRow(self.problem)
        form.addRow(self.buttons)
        self._removal_changed()

    @property
    def ok_button(self) -> QtWidgets.QPushButton:
        return self.buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Ok)

    def _watch(self, box: ClampingSpinBox) -> None:
        """What `box` does with a number typed said (`_typed_said`), its value checked."""
        box.refused.connect(lambda text: self._typed_said(box.refusal(text)))
        box.clamped.connect(lambda typed, taken: self._typed_said(
            f"{box.say(typed)} is beyond the box's range; {box.say(taken)} is used"))
        box.lineEdit().textEdited.connect(lambda _text: self._typed_said(""))
        box.valueChanged.connect(lambda _v: self._check())

    def add_rectangle(self, corners: tuple[float, float, float, float] = (0, 0, 0, 0)
                      ) -> list[ClampingSpinBox]:
        """A row of boxes for one more rectangle (x from, x to, y from, y to, µm), its
        Remove button beside them; the boxes, focus in the first."""
        boxes = [_length_box(f"The background rectangle's {what}, µm", -MAX_UM)
                 for what in RECT]
        remove = QtWidgets.QToolButton(text="Remove")
        remove.setToolTip("No longer take this rectangle as background")
        remove.clicked.connect(lambda: self.remove_rectangle(self.rectangles.index(boxes)))
        row = len(self.rectangles) + 1
        for column, (box, value) in enumerate(zip(boxes, corners, strict=True)):
            box.setValue(value)
            self._watch(box)
            self._rows.addWidget(box, row, column)
        self._rows.addWidget(remove, row, len(RECT))
        self.rectangles.append(boxes)
        self._removers.append(remove)
        boxes[0].setFocus()
        self._check()
        return boxes

    def remove_rectangle(self, index: int) -> None:
        """Rectangle `index` (from 0) taken away; those below it move up."""
        for widget in [*self.rectangles.pop(index), self._removers.pop(index)]:
            self._rows.removeWidget(widget)
            widget.deleteLater()
        for row, widgets in enumerate(zip(self.rectangles, self._removers, strict=True), 1):
            boxes, remove = widgets
            for column, widget in enumerate([*boxes, remove]):
                self._rows.addWidget(widget, row, column)
        self._check()

    def outline_lines(self) -> list[str]:
        """The outlines typed, a line each as the box shows them (`text_lines`: a form feed or
        NEL pasted within a line, which `str.splitlines` breaks at, ends no line), blank lines
        left out."""
        return [line.strip() for line in text_lines(self.outlines.toPlainText())
                if line.strip()]

    def _removal_changed(self) -> None:
        """A new name proposed for the new removal, unless one was typed."""
        if self.name.text() in ("", self._named):
            self._named = unused_name(f"{self.entry}_{REMOVALS[self.removal.currentIndex()][2]}",
                                      self.taken)
            self.name.setText(self._named)
        self._check()

    @property
    def boxes(self) -> list[ClampingSpinBox]:
        return [self.border, *(box for boxes in self.rectangles for box in boxes)]

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
        if not self.ok_button.isEnabled():  # an outline typed but not readable
            return
        super().accept()

    def _typed_said(self, text: str) -> None:
        self._typed = text
        self._check()

    def _say(self, text: str) -> None:
        self.problem.setText(text)
        self.problem.setVisible(bool(text))

    def _outline_problem(self) -> str:
        """Why an outline typed is not one the command takes (read by its own `um_pairs`:
        too few vertices, a number unread, an outline crossing itself), naming its line.
        Each line is read once while it stays as typed (`_outlines_read`): one of thousands
        of vertices takes seconds, which each key typed anywhere in the dialog repeated."""
        known, self._outlines_read = self._outlines_read, {}
        problem = ""
        for number, line in enumerate(text_lines(self.outlines.toPlainText()), 1):
            line = line.strip()
            if not line:
                continue
            refusal = known[line] if line in known else _outline_refusal(line)
            self._outlines_read[line] = refusal
            if refusal and not problem:
                problem = f"Sample's outlines, line {number}: {refusal}"
        return problem

    def _check(self) -> None:
        """Say at once what the command would refuse of the choice before it runs: no
        background given (but for the field's reading), an outline it cannot read, the new
        entry's name taken or no name; where the background lies on the map is checked when
        it runs."""
        words = REMOVALS[self.removal.currentIndex()][1]
        problem = self._outline_problem()
        if not problem and words[-1] != "field" and not (
                self.border.value() > 0 or self.rectangles or self.outline_lines()):
            problem = ("Give a border of background, a rectangle of background or an outline "
                       "of the sample.")
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
        its option ("="), so that a name beginning with '-' is a value, not an option (and a
        rectangle or outline from x -10 a value too)."""
        words = REMOVALS[self.removal.currentIndex()][1]
        arguments = [words[0], file_word(path), f"--entry={self.entry}",
                     f"--name={self.new_name()}", *words[1:]]
        if self.border.value() > 0:
            arguments += [f"--border-um={self.border.value()!r}"]
        arguments += ["--background-rect=" + ",".join(repr(box.value()) for box in boxes)
                      for boxes in self.rectangles]
        arguments += [f"--sample-polygon={line}" for line in self.outline_lines()]
        return arguments
