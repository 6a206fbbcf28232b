"""Scan set-up: the plan's numbers, checked as the command line checks them.

Entries are in µm, µT and lock-in time constants; `plan()` returns an SI `ScanPlan`.
A plan that fails `ScanPlan.validate` shows the message next to the field it names.
"""

from __future__ import annotations

import contextlib
import math
import re
from typing import Any

from PyQt6 import QtCore, QtWidgets

from gui.map_geometry import grid_from_rectangle
from gui.number_boxes import ClampingSpinBox, CountBox, TrimmedSpinBox
from smm_daq.acquisition.fly.settings import FlySettings
from smm_daq.acquisition.plan import DEFAULT_SETTLE_TAU, RASTERS, ScanPlan, size_note
from smm_daq.errors import InputError
from smm_daq.instruments.profile import RESOLUTION_NM, Profile
from smm_daq.storage.names import typed_entry_name
from smm_daq.storage.nexus import check_entry_name

UM = 1e-6
UT = 1e-6
FAR_UM = 1e7  # spin box bounds are loose on purpose: the plan's validation names the limit

# Steps in µm to the finest stage resolution a profile may declare: every step the command
# line takes (a float in µm, at least the resolution) can be entered, none rounded.
STEP_DECIMALS = math.ceil(-math.log10(RESOLUTION_NM[0] * 1e-3))
PIXEL_TIME_DECIMALS = 6  # s

# Messages that name no plan key, or not the row that sets what they refuse -> that row.
ROW_OF_PHRASE = {
    "plan title": "title",  # first: the title it quotes may hold any phrase below
    "plan grid": "nx",  # too many points
    "is estimated to take": "duration",
    "a fly line runs": "x0",  # its run-up leaves the stage travel
    "a fly line of": "nx",  # more samples than the lock-in buffer holds
    "fly scans need": "mode",  # the profile's lock-in or stage cannot fly
}
# The word after "plan" in a validation message -> the row that shows it.
FIELD_OF_KEY = {
    "name": "name", "raster": "raster", "nx": "nx", "ny": "ny", "step_x": "step_x",
    "step_y": "step_y", "x": "x0", "y": "y0", "height": "height", "settle_tau": "settle_tau",
    "dwell_tau": "dwell_tau", "field": "field",
}
FLY_FIELD_OF_KEY = {"pixel_time_s": "pixel_time", "oversample": "oversample",
                    "speed": "pixel_time", "trigger": "fly_trigger"}
MODES = ("step", "fly")  # step and settle at each point; or fly the lines at constant speed


def field_of_message(message: str) -> str | None:
    """Which form row a plan validation message is about, or None if it names none."""
    for phrase, row in ROW_OF_PHRASE.items():
        if phrase in message:
            return row
    match = re.search(r"\bplan (\w+)", message)
    if match is None:
        fly = re.search(r"\bfly (\w+)", message)
        return FLY_FIELD_OF_KEY.get(fly.group(1)) if fly else None
    return FIELD_OF_KEY.get(match.group(1))


def format_duration(seconds: float) -> str:
    """'2 h 05 min', '4 min 10 s', '12 s'."""
    seconds = max(0.0, float(seconds))
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


class ScanForm(QtWidgets.QWidget):
    """The plan entry form with an error label beside each row and the estimated duration."""

    changed = QtCore.pyqtSignal()

    def __init__(self, profile: Profile, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.profile = profile
        self.inputs: dict[str, Any] = {}
        # a number typed beyond a box's range, said once the value it became is checked
        self._typed_notes: dict[str, str] = {}
        self._said = 0  # numbers the boxes have refused or clamped, counted (`take_typing`)
        # what was said of a number as its box was left (Start clicked: the box is left as the
        # button is pressed), by box (its row's key, what was said), until typed over: Start
        # says it again, and starts not
        self._said_leaving: dict[QtWidgets.QWidget, tuple[str, str]] = {}
        self.errors: dict[str, QtWidgets.QLabel] = {}
        self.form = QtWidgets.QFormLayout(self)

        self.name = QtWidgets.QLineEdit("scan-1")
        self.title = QtWidgets.QLineEdit("")
        self._row("name", "Entry name", self.name)
        self._row("title", "Title", self.title)
        travel = profile.stage.travel / UM
        self.x0 = self._spin(-FAR_UM, FAR_UM, float(travel[0].mean()), " µm")
        self.y0 = self._spin(-FAR_UM, FAR_UM, float(travel[1].mean()), " µm")
        self._row("x0", "First point x", self.x0)
        self._row("y0", "First point y", self.y0)
        self.nx = self._count(21)
        self.ny = self._count(21)
        self._row("nx", "Points along x", self.nx)
        self._row("ny", "Lines (along y)", self.ny)
        self.step_x = self._spin(0.0, FAR_UM, 10.0, " µm", STEP_DECIMALS)
        self.step_y = self._spin(0.0, FAR_UM, 10.0, " µm", STEP_DECIMALS)
        self._row("step_x", "Step x", self.step_x)
        self._row("step_y", "Step y", self.step_y)
        self.from_area = QtWidgets.QPushButton("Grid from the area selected on the map")
        self.from_area.setEnabled(False)
        self.form.addRow(self.from_area)
        limit = 10 * profile.coils.max_field / UT
        self.field = [self._spin(-limit, limit, 0.0, " µT") for _ in range(3)]
        field_row = QtWidgets.QHBoxLayout()
        for axis, box in zip("xyz", self.field, strict=True):
            field_row.addWidget(QtWidgets.QLabel(f"B{axis}"))
            field_row.addWidget(box)
        holder = QtWidgets.QWidget()
        holder.setLayout(field_row)
        field_row.setContentsMargins(0, 0, 0, 0)
        self._row("field", "Field", holder)
        self.height = self._spin(-FAR_UM, FAR_UM, profile.sensor.height / UM, " µm")
        self._row("height", "Sensor height", self.height)
        self.raster = QtWidgets.QComboBox()
        self.raster.addItems(RASTERS)
        self.raster.currentTextChanged.connect(self._changed)
        self._row("raster", "Raster", self.raster)
        self.settle_tau = self._spin(-100.0, 1000.0, DEFAULT_SETTLE_TAU, " τ")
        self.dwell_tau = self._spin(-100.0, 1000.0, 0.0, " τ")
        self._row("settle_tau", "Settle", self.settle_tau)
        self._row("dwell_tau", "Dwell (average)", self.dwell_tau)
        self.mode = QtWidgets.QComboBox()
        self.mode.addItems(MODES)
        self.mode.setToolTip("step: move, settle and read at each point; fly: each line at "
                             "constant velocity, the lock-in buffered in time")
        self.mode.currentTextChanged.connect(self._changed)
        self._row("mode", "Mode", self.mode)
        # to 1 µs: a lock-in's shortest time constants allow pixels of a few µs
        self.pixel_time = self._spin(-100.0, 1e4, 0.05, " s", decimals=PIXEL_TIME_DECIMALS)
        self._row("pixel_time", "Fly: pixel time", self.pixel_time)
        self.oversample = self._count(8)
        self._row("oversample", "Fly: samples per pixel", self.oversample)
        self.fly_trigger = QtWidgets.QCheckBox("start the lock-in on the stage's trigger")
        self.fly_trigger.setToolTip("needs the cable and the profile's [fly] trigger_wired")
        self.fly_trigger.toggled.connect(self._changed)
        self._row("fly_trigger", "Fly: trigger", self.fly_trigger)
        self.line_baselines = QtWidgets.QCheckBox("subtract each line's median")
        self.line_baselines.setToolTip("takes out slow drift between lines (and with it any "
                                       "field uniform along a line), as --line-baselines")
        self.line_baselines.toggled.connect(self._changed)
        self._row("line_baselines", "Fly: line baselines", self.line_baselines)
        self.duration = QtWidgets.QLabel("")
        self._row("duration", "Estimated duration", self.duration)
        self.name.textChanged.connect(self._changed)
        self.title.textChanged.connect(self._changed)
        self._changed()

    # --- construction helpers ------------------------------------------------------------
    def _spin(self, lo: float, hi: float, value: float, suffix: str, decimals: int = 3
              ) -> QtWidgets.QDoubleSpinBox:
        box = TrimmedSpinBox()
        box.setRange(lo, hi)
        box.setDecimals(decimals)
        box.setSuffix(suffix)
        box.setValue(value)
        box.valueChanged.connect(self._changed)
        return box

    def _count(self, value: int) -> CountBox:
        box = CountBox()
        box.setRange(0, 1_000_000)
        box.setValue(value)
        box.valueChanged.connect(self._changed)
        return box

    def _row(self, key: str, label: str, widget: QtWidgets.QWidget) -> None:
        error = QtWidgets.QLabel("")
        error.setObjectName(f"error_{key}")
        error.setStyleSheet("color: #b00000")
        error.setWordWrap(True)
        error.hide()
        column = QtWidgets.QVBoxLayout()
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(widget)
        column.addWidget(error)
        self.form.addRow(label, column)
        self.inputs[key] = widget
        self.errors[key] = error
        boxes = widget.findChildren(ClampingSpinBox) + widget.findChildren(CountBox)
        for box in [widget] if isinstance(widget, ClampingSpinBox | CountBox) else boxes:
            box.refused.connect(lambda text, box=box, key=key: self._refused(box, text, key))
            box.clamped.connect(lambda typed, taken, box=box, key=key: self._clamped(
                box, typed, taken, key))
            box.lineEdit().textEdited.connect(
                lambda _text, box=box: self._said_leaving.pop(box, None))

    # --- the plan ------------------------------------------------------------------------
    def plan(self) -> ScanPlan:
        """The plan as entered (not yet validated against the profile)."""
        return ScanPlan(
            name=typed_entry_name(self.name.text()),
            title=self.title.text().strip(),
            x0=self.x0.value() * UM,
            y0=self.y0.value() * UM,
            nx=self.nx.value(),
            ny=self.ny.value(),
            step_x=self.step_x.value() * UM,
            step_y=self.step_y.value() * UM,
            field=tuple(b.value() * UT for b in self.field),  # type: ignore[arg-type]
            height=self.height.value() * UM,
            raster=self.raster.currentText(),
            settle_tau=self.settle_tau.value(),
            dwell_tau=self.dwell_tau.value(),
            fly=FlySettings(pixel_time=self.pixel_time.value(),
                            oversample=self.oversample.value(),
                            trigger=self.fly_trigger.isChecked(),
                            baselines=self.line_baselines.isChecked())
            if self.mode.currentText() == "fly" else None,
        )

    def set_plan(self, plan: ScanPlan) -> None:
        self.name.setText(plan.name)
        self.title.setText(plan.title)
        for box, value in (
            (self.x0, plan.x0 / UM), (self.y0, plan.y0 / UM), (self.step_x, plan.step_x / UM),
            (self.step_y, plan.step_y / UM), (self.height, plan.height / UM),
            (self.settle_tau, plan.settle_tau), (self.dwell_tau, plan.dwell_tau),
        ):
            box.setValue(value)
        self.nx.setValue(plan.nx)
        self.ny.setValue(plan.ny)
        for box, b in zip(self.field, plan.field, strict=True):
            box.setValue(b / UT)
        self.raster.setCurrentText(plan.raster)
        self.mode.setCurrentText("step" if plan.fly is None else "fly")
        if plan.fly is not None:
            self.pixel_time.setValue(plan.fly.pixel_time)
            self.oversample.setValue(plan.fly.oversample)
            self.fly_trigger.setChecked(plan.fly.trigger)
            self.line_baselines.setChecked(plan.fly.baselines)

    def checked_plan(self) -> ScanPlan | None:
        """The plan if it passes the profile's limits; else None, the message by its field."""
        for label in self.errors.values():
            label.hide()
        try:
            plan = self.plan()
            plan.validate(self.profile)
        except InputError as exc:
            self.show_error(str(exc))
            return None
        try:  # a new entry's name, said here rather than when the scan starts
            check_entry_name(plan.name, source="")
        except InputError as exc:
            self.show_error(str(exc), "name")
            return None
        return plan

    def _refused(self, box: ClampingSpinBox | CountBox, text: str, key: str) -> None:
        self._said += 1
        self.show_error(box.refusal(text), key)
        self._note_leaving(box, key, box.refusal(text))

    def _clamped(self, box: ClampingSpinBox | CountBox, typed: float, taken: float,
                 key: str) -> None:
        self._said += 1
        self._typed_notes[key] = (f"{box.say(typed)} is beyond this box's range; "
                                  f"{box.say(taken)} is used")
        self._note_leaving(box, key, self._typed_notes[key])

    def _note_leaving(self, box: QtWidgets.QWidget, key: str, said: str) -> None:
        if not box.hasFocus():  # left, not Return: said as Start's click came, maybe unseen
            self._said_leaving[box] = (key, said)

    def take_typing(self) -> bool:
        """Read what is typed into the number boxes and not yet entered (a box's number is
        taken on Return or as the box is left: Start's key pressed with the focus in a box
        started the scan with the number before); False, said by its row, when a box refused
        what was typed or took its range's end for it, now or as it was left and not typed
        into since (unseen: Start's check of the plan wipes what was said; Start again takes
        what the box holds)."""
        said = self._said
        for box in self.findChildren(ClampingSpinBox) + self.findChildren(CountBox):
            box.interpretText()
        if self._typed_notes:  # clamped to the value the box held: no change said it
            self._changed()
        leaving, self._said_leaving = self._said_leaving, {}
        for key, text in leaving.values():
            self.show_error(text, key)
        return self._said == said and not leaving

    def show_error(self, message: str, key: str | None = None) -> None:
        """`message` by the row of `key`, or of the plan key the message names."""
        key = key or field_of_message(message) or "name"
        self.errors[key].setText(message)
        self.errors[key].show()

    def error_text(self, key: str) -> str:
        """The message shown beside a row ('' when none)."""
        label = self.errors[key]
        return label.text() if not label.isHidden() else ""

    def use_area(self, x0: float, y0: float, x1: float, y1: float) -> None:
        """Fill the grid from a rectangle (m) with the steps already entered."""
        step = (self.step_x.value() * UM, self.step_y.value() * UM)
        for key, value in zip(("step_x", "step_y"), step, strict=True):
            if value <= 0:  # said by the step that is zero
                self.show_error(f"plan {key} must be > 0 to fit a grid into the area")
                return
        gx, gy, nx, ny = grid_from_rectangle((x0, y0), (x1, y1), step)
        self.x0.setValue(gx / UM)
        self.y0.setValue(gy / UM)
        self.nx.setValue(nx)
        self.ny.setValue(ny)
        note = size_note((abs(x1 - x0), abs(y1 - y0)), step, (nx, ny))
        if note and not self.error_text("nx"):  # said until the plan is next changed
            self.show_error(f"the area drawn: {note}", "nx")

    def _changed(self) -> None:
        flying = self.mode.currentText() == "fly"
        for key in ("pixel_time", "oversample", "fly_trigger", "line_baselines"):
            self.inputs[key].setEnabled(flying)
        for key in ("settle_tau", "dwell_tau"):
            self.inputs[key].setEnabled(not flying)
        plan = self.checked_plan()
        if plan is None:
            self.duration.setText("–")
        else:
            self.duration.setText(format_duration(plan.estimate_duration(self.profile)))
        for key, note in self._typed_notes.items():
            if not self.error_text(key):  # the plan's own refusal of it says more
                self.show_error(note, key)
        self._typed_notes.clear()
        self.changed.emit()

    # --- settings ------------------------------------------------------------------------
    def save(self, settings: QtCore.QSettings) -> None:
        self.take_typing()  # saved as the window closes, the focus maybe still in a box
        settings.setValue("scan/plan", self.plan().to_text())

    def restore(self, settings: QtCore.QSettings) -> None:
        text = settings.value("scan/plan")
        if isinstance(text, str):
            # a plan saved by another version is dropped: the defaults stay
            with contextlib.suppress(InputError, ValueError):
                self.set_plan(ScanPlan.from_text(text))

