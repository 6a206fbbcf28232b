"""Instruments: connection state, stage go-to and jog, field set and zero, lock-in settings.

Readings are polled in the rig's thread twice a second while no scan owns the rig, during a
recipe's wait too (between its slices) and a field's ramp (between its steps). Moves do not
wait for the stage, so Stop is the next call the rig's thread makes, and the readings queued
before it are skipped. A simulated rig's virtual clock only moves when something waits on it;
each poll in its own turn moves it on by the poll interval (`RigHolder.read`'s `idle_s`), so
while the window is idle the simulated world runs at the wall clock's pace.
Entries are in µm and µT; everything sent to the rig is SI.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtWidgets

from gui.confirm import confirm
from gui.lazy_menu import LazyMenuViewBox
from gui.number_boxes import ClampingSpinBox
from gui.rig_holder import INSTRUMENTS, RigHolder
from gui.typed_numbers import si_examples, si_number, si_text
from smm_daq.errors import InputError, StillDropping
from smm_daq.instruments.profile import LOCKIN_SENSITIVITY_V, TIME_CONSTANTS_S, Profile
from smm_daq.instruments.ramp_stop import RampStop

UM = 1e-6
UT = 1e-6
STOP_KEY, CONNECT_KEY = "Esc", "Ctrl+K"  # window-wide shortcuts (`MainWindow`)
POLL_MS = 500
NOT_AVAILABLE = "the rig is not available (not connected or scanning)"
# Stage z is the height of the sensor's active layer above the sample top (`ScanPlan.height`),
# so z = 0 is not contact: the chip touches the sample at the layer's stand-off above its face,
# z > 0, and z = 0 would push the layer into the top surface, the chip crushed on the way.
# z jogs move toward the sample: their step is their own and small (a step of the x, y
# default, 100 µm, from the usual scan height of 100 µm asks for z = 0: through contact), and
# a z− jog that would take the sensor below the lowest jog height is refused; Go to, typed on
# purpose, goes anywhere in travel
Z_JOG_STEP_UM = 10.0
Z_JOG_FLOOR_UM = 20.0
TRACE_POINTS = 240  # two minutes of readings
LABELS = {"lockin": "Lock-in", "stage": "Stage", "coils": "Coils", "fluxgate": "Fluxgate"}
INSTRUMENT_OF_READING = {
    "position": "stage", "on_target": "stage", "field_setpoint": "coils", "field": "coils",
    "currents": "coils", "xy": "lockin", "time_constant": "lockin", "sensitivity": "lockin",
    "overloaded": "lockin", "fluxgate": "fluxgate",
}
NO_POSITION, NO_FIELD, NO_LOCKIN = "x, y, z: –", "setpoint –\nread-back –\nfluxgate –", "X, Y: –"
# a connection line from the rig's opening (when the status line says it connected) until the
# instrument's identity, asked for then, comes back
IDENTIFYING = "connected; asking its identity…"
# said before a connect that may reference the stage (stage.reference_on_connect = true)
CONNECT_REFERENCES = ("Connecting: stage axes found unreferenced are referenced now, each driving "
                      "to its reference switch (stage.reference_on_connect = true); keep the "
                      "sensor clear of the sample.")


def _spin(lo: float, hi: float, decimals: int, suffix: str, value: float = 0.0,
          series: tuple[float, ...] | None = None) -> ClampingSpinBox:
    if series is None:
        box = ClampingSpinBox()
        box.setSuffix(suffix)
    else:  # the unit, with its prefix, is part of the number's text
        box = _SeriesSpinBox(series, suffix.strip())
    box.setRange(lo, hi)
    box.setDecimals(decimals)
    box.setValue(value)
    box.setKeyboardTracking(False)
    return box


class _SeriesSpinBox(ClampingSpinBox):
    """A lock-in setting: a step (arrow key, Page key, mouse wheel) moves to the next value
    of its decade series (1-3-10 for time constants, 1-2-5-10 for sensitivities, the values
    SR830 and SR860 lock-ins have), not by a fixed amount (1 s or 1 V: one wheel notch over the
    sensitivity sent it to 1 nV or 1 V). A typed value is sent as typed (the lock-in takes
    its next value up).

    Shown and typed with the unit's prefix, as the lock-in's front panel says them: 200 µV,
    30 ms (not 0.000200000 V, where one zero more or less is a range ten times off); a number
    typed without a prefix or unit is in the unit itself (0.0002 is 200 µV)."""

    def __init__(self, mantissas: tuple[float, ...], unit: str) -> None:
        super().__init__()
        self._mantissas = mantissas
        self.unit = unit

    def textFromValue(self, value: float) -> str:
        return self.say(value)

    def _number(self, text: str) -> float | None:
        number = si_number(text, self.unit, self._decimal_comma())
        return number if number is None or number > 0 else None  # a setting is positive

    def say(self, value: float) -> str:
        """With the locale's decimal mark: 1.234 ms, shown under a decimal comma, was its own
        text refused as the box was left (a thousands point there)."""
        text = si_text(value, self.unit)
        return text.replace(".", ",") if self._decimal_comma() else text

    def examples(self) -> str:
        """With the locale's decimal mark, as `say`: 1.234 ms, suggested under a decimal
        comma, is refused there (a thousands point)."""
        text = si_examples(self.value(), self.unit)
        return text.replace(".", ",") if self._decimal_comma() else text

    def _series(self) -> list[float]:
        lo, hi = self.minimum(), self.maximum()
        decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
        return [float(f"{m}e{e}") for e in decades for m in self._mantissas
                if lo * (1 - 1e-9) <= float(f"{m}e{e}") <= hi * (1 + 1e-9)]

    def stepBy(self, steps: int) -> None:
        value, series = self.value(), self._series()
        above = [v for v in series if v > value * (1 + 1e-9)]
        below = [v for v in series if v < value * (1 - 1e-9)]
        if steps > 0 and above:
            self.setValue(above[min(steps, len(above)) - 1])
        elif steps < 0 and below:
            self.setValue(below[-min(-steps, len(below))])


def read_all(rig: Any, *, held: Callable[[], bool] = lambda: False) -> dict[str, Any] | None:
    """Every reading the panel shows; one failing instrument does not hide the others. None
    once `held()` (a stop or a making safe asked for meanwhile, `RigHolder.readings_held`):
    the instruments asked nothing more, so that it goes next."""
    readings: dict[str, Any] = {}
    calls = {
        "position": lambda: rig.stage.position(),
        "on_target": lambda: rig.stage.on_target(),
        "field_setpoint": lambda: rig.coils.field_setpoint(),
        "field": lambda: rig.coils.field(),
        "currents": lambda: rig.coils.currents(),
        "xy": lambda: rig.lockin.read_xy(),
        "time_constant": lambda: rig.lockin.time_constant(),
        "sensitivity": lambda: rig.lockin.sensitivity(),
        "overloaded": lambda: rig.lockin.overloaded(),
    }
    if rig.fluxgate is not None:
        calls["fluxgate"] = lambda: rig.fluxgate.read_field()
    for key, call in calls.items():
        if held():
            return None
        try:
            readings[key] = call()
        except Exception as exc:  # shown in place of the reading
            readings[key] = exc
    return readings


def field_applied(setpoint: np.ndarray, profile: Profile) -> bool:
    """Whether the coils hold a field someone applied: neither resting state, the ambient
    field nulled (setpoint 0) nor the currents off (setpoint the ambient field), within the
    profile's field tolerance."""
    coils = profile.coils
    return all(np.linalg.norm(setpoint - rest) > coils.field_tolerance
               for rest in (np.zeros(3), coils.ambient_field))


class InstrumentsPanel(QtWidgets.QWidget):
    """The Instruments tab."""

    updated = QtCore.pyqtSignal()  # fresh readings are on show
    # Stop pressed while a scan owns the rig: the scan must be aborted (its sequencer then
    # stops the stage and makes the rig safe), not the stage commanded from a second thread.
    stopDuringScan = QtCore.pyqtSignal()
    # Stop pressed with the rig free of scans: a recipe's field ramp under way ends too
    stopPressed = QtCore.pyqtSignal()

    def __init__(self, holder: RigHolder, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.holder = holder
        self.profile = holder.profile
        self._polling = False
        self.readings: dict[str, Any] = {}
        # fields asked for by Set whose call has not returned (queued or ramping): the coils'
        # setpoint changes only once a ramp is done
        self.field_requests: list[np.ndarray] = []
        self._field_stops: list[RampStop] = []  # each Set field's, set by Stop
        # what the panel last put in each Go-to box (the stage's position at rest), or what a
        # Go to sent from it: a box holding anything else has been typed in (`_goto_edited`)
        self._goto_shown: list[float] = []
        # per Go-to box: typed into since the panel last put a number there or a Go to took
        # it, even a number equal to that one (the stage has moved on: it is gone to)
        self._goto_typed = [False, False, False]
        # where the last Go to or jog sent the stage (set in the rig's thread), until a scan,
        # a recipe or a connect begins or ends, or Stop: a jog made before the stage settles
        # adds to it, not to a position read mid-move (clicks made while it moved were lost)
        self._sent_to: np.ndarray | None = None
        # Go-tos and jogs asked for, and how many of them had been asked for when a reading
        # that found the stage at rest was asked for (`stage_may_be_moving`)
        self._moves_asked = 0
        self._moves_at_rest = 0
        # how many had been asked for when the last one the rig's thread ran was (set there):
        # a reading run in a field's ramp or a recipe's wait overtakes those queued behind it
        self._moves_run = 0
        self._identities: dict[str, str] = {}  # each connection line as the connect left it
        self._not_answering = ""  # the instruments the last readings found not answering
        self._box_said: dict[ClampingSpinBox, str] = {}  # each box's typing, clamped or refused

        layout = QtWidgets.QGridLayout(self)
        layout.addWidget(self._connection_box(), 0, 0)
        layout.addWidget(self._stage_box(), 0, 1)
        layout.addWidget(self._field_box(), 1, 0)
        layout.addWidget(self._lockin_box(), 1, 1)
        self.trace = pg.PlotWidget(
            viewBox=LazyMenuViewBox(), title="Sensor Bz from the lock-in X reading"
        )
        self.trace.setLabel("bottom", f"reading (one each {POLL_MS / 1000:g} s)")
        self.trace.setLabel("left", "Bz", units="µT")
        for axis in ("left", "bottom"):  # no "(x0.001)" on a count of readings
            self.trace.getAxis(axis).enableAutoSIPrefix(False)
        self.trace_curve = self.trace.plot(pen=pg.mkPen("b", width=1.5))
        self.trace_values: deque[float] = deque(maxlen=TRACE_POINTS)
        layout.addWidget(self.trace, 2, 0, 1, 2)
        self.message = QtWidgets.QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #a00000")
        layout.addWidget(self.message, 3, 0, 1, 2)
        layout.setRowStretch(2, 1)

        holder.changed.connect(self._holder_changed)
        holder.opened.connect(self._rig_opened)
        holder.failed.connect(self._rig_failed)
        holder.identities.connect(self._show_identities)
        holder.busyChanged.connect(self._busy_changed)
        holder.recipeChanged.connect(self._recipe_changed)
        self.timer = QtCore.QTimer(self, interval=POLL_MS)
        self.timer.timeout.connect(self.poll)
        self._set_controls_enabled(False)

    # --- layout --------------------------------------------------------------------------
    def _connection_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("Connections")
        form = QtWidgets.QFormLayout(box)
        self.state_labels: dict[str, QtWidgets.QLabel] = {}
        for name in INSTRUMENTS:
            label = QtWidgets.QLabel("not connected")
            label.setWordWrap(True)
            self.state_labels[name] = label
            form.addRow(LABELS[name], label)
        if self.profile.fluxgate is None:
            self.state_labels["fluxgate"].setText("none in the profile")
        self.connect_button = QtWidgets.QPushButton("Connect")
        self.connect_button.setToolTip(f"Connect the instruments ({CONNECT_KEY}). Reconnect "
                                       "makes the rig safe first: the coils go to their safe "
                                       "state and the stage stops")
        self.connect_button.clicked.connect(self.connect_rig)
        form.addRow(self.connect_button)
        # what the profile warned of as it loaded (a key without effect on the instrument
        # named): beside Connect, where it is read before the rig is used, and kept on show
        self.profile_warnings = QtWidgets.QLabel("")
        self.profile_warnings.setWordWrap(True)
        self.profile_warnings.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        self.profile_warnings.setTextInteractionFlags(
            QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.profile_warnings.setStyleSheet("color: #8a5a00")
        self.profile_warnings.hide()
        form.addRow(self.profile_warnings)
        return box

    def show_profile_warnings(self, texts: Sequence[str]) -> None:
        """Show what the profile warned of as it loaded, in place of what was shown before."""
        self.profile_warnings.setText("\n".join(f"Profile warning: {t}" for t in texts))
        self.profile_warnings.setVisible(bool(texts))

    def _stage_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("Stage")
        grid = QtWidgets.QGridLayout(box)
        travel = self.profile.stage.travel / UM
        self.position_label = QtWidgets.QLabel(NO_POSITION)
        grid.addWidget(self.position_label, 0, 0, 1, 4)
        self.goto_boxes = []
        for i, axis in enumerate("xyz"):
            spin = self._number_box(f"Go to {axis}", travel[i, 0], travel[i, 1], 2, " µm",
                                    travel[i, 0])
            spin.returnPressed.connect(self.go_to)
            spin.valueChanged.connect(lambda _value: self._mark_goto_edits())
            spin.lineEdit().textEdited.connect(lambda _text, i=i: self._goto_typed_in(i))
            spin.setToolTip(f"Follows the stage's {axis} until typed in (then bold): Go to "
                            "moves the axes typed in, the others stay where the stage is")
            grid.addWidget(QtWidgets.QLabel(axis), 1, i * 1, QtCore.Qt.AlignmentFlag.AlignTop)
            grid.addWidget(spin, 2, i)
            self.goto_boxes.append(spin)
        self.goto_button = QtWidgets.QPushButton("Go to")
        self.goto_button.setToolTip("Move to the x, y, z typed (Return in a box does it too)")
        self.goto_button.clicked.connect(self.go_to)
        grid.addWidget(self.goto_button, 2, 3)
        self.jog_step = self._number_box("Jog step", 0.01, 10000.0, 2, " µm", 100.0)
        grid.addWidget(QtWidgets.QLabel("x, y jog step"), 3, 0)
        grid.addWidget(self.jog_step, 3, 1)
        z_span = travel[2, 1] - travel[2, 0]
        self.z_jog_step = self._number_box("z jog step", 0.01, z_span, 2, " µm",
                                           min(Z_JOG_STEP_UM, z_span))
        self.z_jog_step.setToolTip("The step of the z jogs, small: z− moves the sensor "
                                   "toward the sample")
        grid.addWidget(QtWidgets.QLabel("z jog step"), 4, 0)
        grid.addWidget(self.z_jog_step, 4, 1)
        self.z_floor = self._number_box("Lowest z by jog", travel[2, 0], travel[2, 1], 2, " µm",
                                        min(max(Z_JOG_FLOOR_UM, travel[2, 0]), travel[2, 1]))
        self.z_floor.setToolTip("A z− jog that would take the sensor below this height "
                                "above the sample top is refused; Go to goes lower")
        grid.addWidget(QtWidgets.QLabel("lowest z by jog"), 5, 0)
        grid.addWidget(self.z_floor, 5, 1)
        self.jog_buttons = []
        for col, (axis, sign) in enumerate(
            [(0, -1), (0, 1), (1, -1), (1, 1), (2, -1), (2, 1)]
        ):
            button = QtWidgets.QPushButton(f"{'xyz'[axis]}{'−' if sign < 0 else '+'}")
            button.clicked.connect(lambda _=False, a=axis, s=sign: self.jog(a, s))
            grid.addWidget(button, 6 + col // 3, col % 3)
            self.jog_buttons.append(button)
        self.stop_button = QtWidgets.QPushButton("Stop")
        self.stop_button.setToolTip(f"Stop the stage ({STOP_KEY}, from any tab; during a "
                                    "scan it aborts the scan; during a field's ramp-up, Set "
                                    "field's or a recipe's, it ramps down from there; during a "
                                    "connect it stops the reference move, and the connect "
                                    "fails)")
        self.stop_button.clicked.connect(self.stop_stage)
        grid.addWidget(self.stop_button, 6, 3, 2, 1)
        return box

    def _number_box(self, what: str, lo: float, hi: float, decimals: int, suffix: str,
                    value: float = 0.0,
                    series: tuple[float, ...] | None = None) -> ClampingSpinBox:
        """A number box whose typing beyond its range is clamped, and said."""
        box = _spin(lo, hi, decimals, suffix, value, series)
        box.clamped.connect(lambda typed, taken: self._box_says(
            box, f"{what}: {box.say(typed)} is beyond its range ({box.say(lo)} .. "
                 f"{box.say(hi)}); {box.say(taken)} is used."))
        box.refused.connect(lambda text: self._box_says(box, f"{what}: {box.refusal(text)}."))
        # what was said of the box is of the text typed before: typing again forgets it
        box.lineEdit().textEdited.connect(lambda _text: self._box_said.pop(box, None))
        return box

    def _boxes_said(self, boxes: Sequence[ClampingSpinBox]) -> str:
        """What was said of the numbers typed into `boxes` (clamped, refused), taken from
        them: said again once the action they are sent to has ended."""
        return " ".join(said for said in (self._box_said.pop(box, "") for box in boxes) if said)

    def _box_says(self, box: ClampingSpinBox, text: str) -> None:
        """Say what became of a value typed into `box`; a lock-in setting sent on says it
        again beside what the lock-in took."""
        self.message.setText(text)
        self._box_said[box] = text

    def _field_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("Field at the sample")
        grid = QtWidgets.QGridLayout(box)
        limit = self.profile.coils.max_field / UT
        self.field_boxes = []
        for i, axis in enumerate("xyz"):
            grid.addWidget(QtWidgets.QLabel(f"B{axis}"), 0, i)
            spin = self._number_box(f"B{axis}", -limit, limit, 3, " µT")
            spin.returnPressed.connect(self.set_field)
            grid.addWidget(spin, 1, i)
            self.field_boxes.append(spin)
        self.set_field_button = QtWidgets.QPushButton("Set")
        self.set_field_button.setToolTip("Apply the field typed (Return in a box does it too)")
        self.set_field_button.clicked.connect(self.set_field)
        self.zero_button = QtWidgets.QPushButton("Zero")
        self.zero_button.clicked.connect(self.zero_field)
        grid.addWidget(self.set_field_button, 1, 3)
        grid.addWidget(self.zero_button, 1, 4)
        self.field_label = QtWidgets.QLabel(NO_FIELD)
        grid.addWidget(self.field_label, 2, 0, 1, 5)
        return box

    def _lockin_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("Lock-in")
        form = QtWidgets.QFormLayout(box)
        self.lockin_label = QtWidgets.QLabel(NO_LOCKIN)
        form.addRow(self.lockin_label)
        # every time constant a profile may set, to the µs (an SR860's shortest is 1 µs)
        self.tau_box = self._number_box("Time constant", *TIME_CONSTANTS_S, 6, " s",
                                        self.profile.lockin.time_constant, series=(1, 3))
        self.tau_box.editingFinished.connect(self.set_time_constant)
        form.addRow("Time constant", self.tau_box)
        self.sensitivity_box = self._number_box("Sensitivity", *LOCKIN_SENSITIVITY_V, 9, " V",
                                                self.profile.lockin.sensitivity,
                                                series=(1, 2, 5))
        self.sensitivity_box.editingFinished.connect(self.set_sensitivity)
        form.addRow("Sensitivity", self.sensitivity_box)
        return box

    # --- connection ----------------------------------------------------------------------
    def connect_rig(self) -> None:
        """Connect, or reconnect (e.g. after an instrument was power-cycled): the rig open
        now is made safe and closed first, after a Yes when a field is applied or asked for and
        not yet set (an in-field measurement by hand would lose it). Refused while a scan or a
        recipe drives the rig."""
        rig = self.holder.rig
        fields = [*self.field_requests, *([rig.coils.field_setpoint()] if rig is not None else [])]
        applied = any(field_applied(b, self.profile) for b in fields)
        if applied and not confirm(
                self, "Reconnecting makes the rig safe first: the coils go to their safe "
                "state (the field now applied is lost) and the stage stops. Reconnect?"):
            return
        # said before the connect starts, so before any reference move
        self.message.setText(CONNECT_REFERENCES if self.profile.stage.reference_on_connect
                             else "")
        if not self.holder.open():
            self.message.setText("Not reconnected: a scan or a recipe drives the rig, or a "
                                 "connect is under way.")

    def _holder_changed(self) -> None:
        """A connect begun (by whoever opened the holder): nothing of the rig before is
        usable until it ends, nor are its readings (its trace would run on into the new
        rig's) shown as if live."""
        if not self.holder.connecting:
            return
        self.timer.stop()
        self._clear_readings()
        self._identities = {}  # the rig before's: said again of the new one once it answers
        self._set_controls_enabled(False)
        self._update_connect_button()
        for name, label in self.state_labels.items():
            if name != "fluxgate" or self.profile.fluxgate is not None:
                label.setText("reconnecting…" if self.holder.reconnecting else "connecting…")

    def _update_connect_button(self) -> None:
        """Usable whenever nothing else drives the rig and no connect is under way."""
        h = self.holder
        self.connect_button.setEnabled(not (h.connecting or h.busy or h.recipe_running))

    def _rig_opened(self, rig: Any) -> None:
        """The rig is open: its connection lines leave "connecting…" now, on the signal that
        has the status line say so, not once the identities asked for then come back."""
        for name, label in self.state_labels.items():
            if name not in self._identities and (
                    name != "fluxgate" or self.profile.fluxgate is not None):
                label.setText(IDENTIFYING)
        self.connect_button.setText("Reconnect")
        self._update_connect_button()
        self._set_controls_enabled(not self.holder.busy and not self.holder.recipe_running)
        if self.holder.reconnect_problems:
            self.message.setText("Reconnected; making the rig safe before it reported: "
                                 + "; ".join(self.holder.reconnect_problems))
        else:
            self.message.setText("")  # the connect's own note (referencing) is done with
        self.timer.start()
        self.poll()

    def _rig_failed(self, why: str) -> None:
        """No rig is open now (a reconnect has closed the one before; its last readings went
        as the connect began)."""
        self.connect_button.setText("Connect")
        self._update_connect_button()
        self._update_stop_button()
        for name, label in self.state_labels.items():
            if name != "fluxgate" or self.profile.fluxgate is not None:
                label.setText("not connected")
        self.message.setText(f"Could not open the rig: {why}")

    def _clear_readings(self) -> None:
        """A connect begun: the readings go, and the moves asked for (the rig open before is
        made safe, its stage stopped, before the new one opens)."""
        self.readings = {}
        self._not_answering = ""
        self._moves_at_rest = self._moves_asked
        self.position_label.setText(NO_POSITION)
        self.field_label.setText(NO_FIELD)
        self.lockin_label.setText(NO_LOCKIN)
        self.trace_values.clear()
        self._show_trace()

    def _show_trace(self) -> None:
        """The trace of readings: a line, and a dot where there is a lone reading (the first
        after a connect), which a line alone does not draw."""
        values = np.array(self.trace_values)
        self.trace_curve.setData(values, symbol="o" if values.size == 1 else None,
                                 symbolSize=6, symbolBrush="b", symbolPen=None)

    def _show_identities(self, found: dict[str, object]) -> None:
        self._identities = {}
        for name, what in found.items():
            if isinstance(what, Exception):
                self._identities[name] = _failed_html(what)
            else:
                self._identities[name] = f"<span style='color:#007000'>●</span> {escape(str(what))}"
            self.state_labels[name].setText(self._identities[name])

    def _show_answering(self, readings: dict[str, Any]) -> None:
        """Each instrument's connection line says whether it answered the last readings: one
        that did not (its cable pulled, switched off) is shown red with why, not left green
        with its name, and the message line says what to do as it stops answering, and again
        once that line is free (a scan that failed on it has ended), not over every message
        said after it."""
        failed: dict[str, BaseException] = {}
        for key, value in readings.items():
            # a reading refused while its link drops the rest of a reply cut short is no
            # silence: the instrument answers, and the next poll asks again
            if isinstance(value, Exception) and not isinstance(value, StillDropping) \
                    and key in INSTRUMENT_OF_READING:
                failed.setdefault(INSTRUMENT_OF_READING[key], value)
        for name, label in self.state_labels.items():
            if name in failed:
                label.setText(_failed_html(failed[name]))
            elif name in self._identities:
                label.setText(self._identities[name])
        said = "; ".join(f"{LABELS[name]}: {exc}" for name, exc in failed.items())
        if said and (said != self._not_answering or not self.message.text()):
            self.message.setText(f"Not answering: {said}. Check the instrument (power, cable), "
                                 f"then Reconnect ({CONNECT_KEY}).")
        elif not said and self._not_answering and self.message.text().startswith(
                "Not answering: "):
            self.message.setText("")
        self._not_answering = said

    def _busy_changed(self, busy: bool) -> None:
        recipe = self.holder.recipe_running
        self._update_connect_button()
        self._set_controls_enabled(not busy and not recipe and self.holder.rig is not None)
        if busy:  # greyed until readings taken after the scan are shown (`_show_readings`)
            self._show_stale(True)
            self.message.setText("A scan owns the rig: nothing is read here while it runs, so "
                                 "the readings shown (greyed) are from before it began; they "
                                 "and the controls are back when it ends.")
        elif recipe:
            self.message.setText("A recipe drives the rig; controls are back when it ends.")
        else:
            self.message.setText("")
            self.poll()

    def _show_stale(self, stale: bool) -> None:
        """Grey the readings (and the trace) while nothing reads them: during a scan the field
        and position shown would otherwise pass for the rig's now (zero field, hours after a
        scan ramped it). They stay greyed after the scan until read again: the first reading
        after it may take a while (an instrument lost, each of its calls timing out)."""
        for widget in (self.position_label, self.field_label, self.lockin_label, self.trace):
            widget.setEnabled(not stale)

    def _recipe_changed(self, running: bool) -> None:
        self._busy_changed(self.holder.busy)

    def _set_controls_enabled(self, on: bool) -> None:
        # a scan, a recipe or a connect begins or ends: a target sent before is not where the
        # next jog starts (a jog queued just before one begins has run by the time it ends),
        # and what was typed into the Go-to boxes before it is forgotten (`_forget_goto_edits`)
        self._sent_to = None
        self._forget_goto_edits()
        for w in [
            *self.goto_boxes,
            self.goto_button,
            self.jog_step,
            self.z_jog_step,
            self.z_floor,
            *self.jog_buttons,
            *self.field_boxes,
            self.set_field_button,
            self.zero_button,
            self.tau_box,
            self.sensitivity_box,
        ]:
            w.setEnabled(on)
        self._update_stop_button()

    def _update_stop_button(self) -> None:
        """Usable while a rig is open, or a connect is under way (it may reference the
        stage: `stop_stage`)."""
        self.stop_button.setEnabled(self.holder.rig is not None or self.holder.connecting)

    # --- polling -------------------------------------------------------------------------
    def poll(self) -> None:
        """Ask for fresh readings unless one request is already out or a scan runs."""
        if self._polling:
            return
        rig, asked = self.holder.rig, self._moves_asked
        holder = self.holder

        def reading(between: bool) -> tuple[dict[str, Any], int] | None:
            """The readings, and the moves asked for that ran before them: in their own turn
            all those asked for before the poll; in a field's ramp or a recipe's wait, those
            the rig's thread ran before it (a Go to asked for during a Set field's ramp waits
            behind it, unsent)."""
            ran = asked if not between else min(asked, self._moves_run)
            readings = read_all(rig, held=lambda: holder.readings_held(between))
            return None if readings is None else (readings, ran)

        if holder.read(reading, lambda r: self._polled(rig, r),
                       lambda exc: self._polled(rig, exc), idle_s=POLL_MS / 1000,
                       failed=self.reading_failed):
            self._polling = True

    @staticmethod
    def reading_failed(polled: tuple[dict[str, Any], int]) -> bool:
        """Whether an instrument's reading in a poll's `polled` failed (an error, a timeout):
        its length says nothing of the next reading's (`RigHolder.read`'s `failed`)."""
        return any(isinstance(value, Exception) for value in polled[0].values())

    def _polled(self, rig: Any, polled: tuple[dict[str, Any], int] | BaseException | None
                ) -> None:
        """Readings of `rig` (or why it could not be read) shown, unless a connect has begun
        since they were asked for (its note, e.g. that the stage may move, stays); at rest,
        the moves that ran before them (`polled`'s count) have ended. None: the reading was
        skipped (`RigHolder.read`), the next poll asks again."""
        self._polling = False
        if rig is not self.holder.rig or polled is None:
            return
        if isinstance(polled, BaseException):
            self.message.setText(str(polled))
        else:
            readings, ran = polled
            if readings.get("on_target") is True:
                self._moves_at_rest = max(self._moves_at_rest, ran)
            self._show_readings(readings)

    @property
    def field_ramping(self) -> bool:
        """Whether a Set field has not returned (queued or ramping), which Stop ends."""
        return bool(self._field_stops)

    @property
    def stage_may_be_moving(self) -> bool:
        """Whether a Go to or jog may still be moving the stage (no reading asked for after it
        has found the stage at rest), or the last reading found it moving or could not tell
        (a recipe's move, say). Readings are asked for in the rig's thread after the calls
        before them, so one asked for after a move was sent sees that move."""
        on_target = self.readings.get("on_target")
        return (self._moves_at_rest < self._moves_asked or on_target is False
                or isinstance(on_target, Exception))

    def _show_readings(self, readings: dict[str, Any]) -> None:
        self._polling = False
        self.readings = readings
        self._show_stale(False)
        self._show_answering(readings)
        pos = readings.get("position")
        if isinstance(pos, Exception):
            self.position_label.setText(f"position unknown: {pos}")
        elif pos is not None:
            settled = "" if readings.get("on_target") is True else "  (moving)"
            self.position_label.setText(
                "x = {:.2f} µm, y = {:.2f} µm, z = {:.2f} µm".format(*(np.asarray(pos) / UM))
                + settled
            )
            if not self.stage_may_be_moving:
                self._fill_goto(np.asarray(pos, dtype=float) / UM)
        self.field_label.setText(
            f"setpoint {_vector(readings.get('field_setpoint'))}\n"
            f"read-back {_vector(readings.get('field'))}\n"
            f"fluxgate {_vector(readings.get('fluxgate', 'none'))}"
        )
        xy = readings.get("xy")
        if isinstance(xy, Exception) or xy is None:
            self.lockin_label.setText(f"X, Y: {xy}")
        else:
            bz = (xy[0] - self.profile.sensor.offset_V) / self.profile.sensor.sensitivity_V_per_T
            self.trace_values.append(bz / UT)
            self._show_trace()
            overload = "  OVERLOAD" if readings.get("overloaded") is True else ""
            self.lockin_label.setText(
                f"X = {xy[0] * 1e3:.4f} mV, Y = {xy[1] * 1e3:.4f} mV "
                f"(Bz ≈ {bz / UT:.3f} µT){overload}"
            )
        for key, box in (("time_constant", self.tau_box), ("sensitivity", self.sensitivity_box)):
            value = readings.get(key)
            if isinstance(value, float) and not box.hasFocus():
                box.setValue(value)
        self.updated.emit()

    # --- Go-to boxes ----------------------------------------------------------------------
    # The boxes follow the stage wherever it comes to rest (a Go to, a jog, a scan, a recipe,
    # a resume, a connect, or a reading that finds it elsewhere), except a box typed in since
    # the last Go to, or one being typed in (it has the focus): the operator's number is not
    # overwritten. Go to moves only the axes typed in; the others stay where the stage is (or
    # was last sent), so a box that could not follow (typed in, or not yet refreshed after the
    # stage moved) never drives an axis the operator did not ask for, z down toward the sample
    # above all. A scan, a recipe or a connect forgets what was typed before it: the stage has
    # moved under it, and the boxes show where it is once it ends.
    def _goto_edited(self) -> list[bool]:
        """Per axis: whether its Go-to box holds a number typed in (or being typed), not one
        the panel put."""
        return [typed or box.value() != shown for box, shown, typed
                in zip(self.goto_boxes, self._goto_shown, self._goto_typed, strict=True)]

    def _goto_typed_in(self, axis: int) -> None:
        self._goto_typed[axis] = True
        self._mark_goto_edits()

    def _forget_goto_edits(self) -> None:
        self._goto_shown = [box.value() for box in self.goto_boxes]
        self._goto_typed = [False, False, False]
        self._mark_goto_edits()

    def _mark_goto_edits(self) -> None:
        """A box typed in (its axis moves on Go to) is shown bold."""
        for box, edited in zip(self.goto_boxes, self._goto_edited(), strict=True):
            font = box.font()
            if font.bold() != edited:
                font.setBold(edited)
                box.setFont(font)

    def _fill_goto(self, position_um: np.ndarray) -> None:
        """The Go-to boxes not typed in, nor being typed in, at the stage's position at rest
        (a box with the focus and nothing typed follows too: the focus stays in a box after
        Return sent its Go to, and Esc may stop the stage short of it)."""
        for i, (box, edited) in enumerate(zip(self.goto_boxes, self._goto_edited(),
                                              strict=True)):
            if not edited:
                box.setValue(position_um[i])
                self._goto_shown[i] = box.value()
        self._mark_goto_edits()

    # --- actions -------------------------------------------------------------------------
    def _act(self, fn: Callable[[], object], what: str,
             ended: Callable[[], None] = lambda: None,
             succeeded: Callable[[], None] = lambda: None, said: str | None = "",
             first: bool = False) -> None:
        """Run `fn` in the rig's thread; `ended()` once it has returned or failed, or at once
        when it could not be started; `succeeded()` first when it returned. `said`: what was
        said of the numbers sent (a field typed beyond the coils' range: the range's end was
        sent), kept on the message line once `fn` has returned; None: the line kept as it is
        then. `first`: a making safe, which the readings queued before it do not delay
        (`RigHolder.call_first`)."""

        def done(_: object) -> None:
            succeeded()
            ended()
            if said is not None:
                self.message.setText(said)
            self.poll()

        def failed(exc: BaseException) -> None:
            ended()
            self.message.setText(failure_text(what, exc))

        if not (self.holder.call_first if first else self.holder.call)(fn, done, failed):
            ended()
            self.message.setText(f"{what}: {NOT_AVAILABLE}")

    def go_to(self) -> None:
        """Move the axes whose boxes were typed in to what they hold; the others stay where
        the stage is, or was last sent if it has not settled (see the Go-to boxes above)."""
        for box in self.goto_boxes:
            box.interpretText()  # a number still being typed counts
        typed = [box.value() for box in self.goto_boxes]
        edited = np.array(self._goto_edited())
        rig = self.holder.rig
        self._moves_asked += 1
        asked = self._moves_asked

        def move() -> None:
            self._moves_run = asked
            self._send(rig, np.where(edited, np.array(typed) * UM, self._move_from(rig)))

        def sent() -> None:  # the boxes sent follow the stage again, unless typed in since
            for i, box in enumerate(self.goto_boxes):
                if box.value() == typed[i]:
                    self._goto_shown[i] = typed[i]
                    self._goto_typed[i] = False
            self._mark_goto_edits()

        self._act(move, "Go to", succeeded=sent, said=self._boxes_said(self.goto_boxes))

    def _move_from(self, rig: Any) -> np.ndarray:
        """Where a move starts (m, in the rig's thread): where the last Go to or jog sent the
        stage while it is still on its way, else where the stage is."""
        sent = self._sent_to
        moving = sent is not None and not rig.stage.on_target()
        return np.array(sent if moving else rig.stage.position(), dtype=float)

    def _send(self, rig: Any, target: np.ndarray) -> None:
        """Move the stage to `target` (m) without waiting (in the rig's thread)."""
        rig.stage.move_to(*target, wait=False)
        self._sent_to = target

    def jog(self, axis: int, sign: int) -> None:
        """Move one axis by its jog step from where the stage is (or was last sent); a z−
        jog that would take the sensor below the lowest jog height is refused, said."""
        box = self.z_jog_step if axis == 2 else self.jog_step
        rig, step = self.holder.rig, sign * box.value() * UM
        floor = self.z_floor.value() * UM
        self._moves_asked += 1
        asked = self._moves_asked

        def move() -> None:
            self._moves_run = asked
            target = self._move_from(rig)
            target[axis] += step
            if axis == 2 and step < 0 and target[2] < floor - 1e-12:
                raise InputError(
                    f"refused: it would take the sensor to z = {target[2] / UM:.2f} µm, below "
                    f"the lowest z by jog ({floor / UM:.2f} µm above the sample top); expected "
                    "a smaller z jog step, or a lower 'lowest z by jog' to go closer (Go to "
                    "goes anywhere in the travel)")
            self._send(rig, target)

        self._act(move, f"Jog {'xyz'[axis]}{'−' if sign < 0 else '+'}")

    def stop_stage(self) -> None:
        rig = self.holder.rig
        if self.holder.busy:
            self.stopDuringScan.emit()
        elif self.holder.stop_connect():  # no rig yet: the connect stops, and fails
            self.message.setText("Stop: the connect stops (a reference move under way stops "
                                 "short, the axes left unreferenced) and fails, the stage "
                                 "stopped and the coils at their safe state.")
        elif rig is not None:  # moves do not wait, so the stop is next in the rig's thread
            self.stop_field_ramps()
            self.stopPressed.emit()

            def stop() -> None:
                # where it stops is where the next jog starts, on a controller that does not
                # take the stopped position as its target too
                self._sent_to = None
                rig.stage.stop()

            self.holder.call_first(
                stop, on_error=lambda exc: self.message.setText(f"Stop: {exc}"))

    def stop_field_ramps(self) -> None:
        """End each Set field's ramp at its next step (a ramp asks between its steps); it then
        makes the rig safe from there. A reading under way in the ramp's pause asks nothing
        more, and none is run in the ramp any more, until that Set field has ended."""
        for field_stop in self._field_stops:
            self.holder.hold_readings(field_stop)
            field_stop.set()

    def set_field(self) -> None:
        """Ramp to the field typed; Stop (or Esc, or the window's close) meanwhile ends the
        ramp at its next step and makes the rig safe from there by the bounded make-safe path
        (`Rig.make_safe`: the stage stopped, the coils ramped to their safe state within its
        deadline). The step under way as Stop comes is in that path too (`ramp_field`: its
        deadline and loss budget count from the stop), so the call ends within the bound a
        close waits for, however slow or lossy the links. That path is the rig's one at a
        time, so a close's making safe waits for this one rather than ramping the coils beside
        it."""
        b = np.array([box.value() for box in self.field_boxes]) * UT
        rig = self.holder.rig
        if rig is None:  # Set is disabled then; a Return in a box may come first
            self.message.setText(f"Set field: {NOT_AVAILABLE}")
            return
        stop = RampStop(rig.clock)
        self.field_requests.append(b)
        self._field_stops.append(stop)
        self._act(lambda: self.holder.ramp_field(rig, b, stop), "Set field",
                  ended=lambda: self._field_request_ended(b, stop),
                  said=self._boxes_said(self.field_boxes))

    def _field_request_ended(self, b: np.ndarray, stop: RampStop) -> None:
        self.field_requests = [r for r in self.field_requests if r is not b]
        self._field_stops = [e for e in self._field_stops if e is not stop]
        self.holder.release_readings(stop)  # that of a Stop or Zero pressed during its ramp

    def zero_field(self) -> None:
        """Ramp the coils to their safe state within the make-safe path's deadline and loss
        budget (`Rig.zero_coils`), the stage left moving if it moves."""
        for box in self.field_boxes:
            box.setValue(0.0)
        # a Set field ramping up meanwhile ends at its next step, and ramps down from there
        # by the path Stop's takes (the stage stopped too), saying so: else the field went
        # on up to the one typed before this came down
        ramping = bool(self._field_stops)
        self.stop_field_ramps()
        rig = self.holder.rig
        self._act(lambda: rig.zero_coils(), "Zero field", said=None if ramping else "",
                  first=True)

    def set_time_constant(self) -> None:
        self._set_lockin("Time constant", self.tau_box, lambda rig: (
            rig.lockin.set_time_constant, rig.lockin.time_constant))

    def set_sensitivity(self) -> None:
        self._set_lockin("Sensitivity", self.sensitivity_box, lambda rig: (
            rig.lockin.set_sensitivity, rig.lockin.sensitivity))

    def _set_lockin(self, what: str, box: ClampingSpinBox,
                    calls: Callable[[Any], tuple[Callable[[float], None], Callable[[], float]]]
                    ) -> None:
        """Send the value typed and read back what the lock-in took: a value between its
        steps is taken as its next step up, which the status line says (the box shows it)."""
        typed, rig = box.value(), self.holder.rig
        said = self._box_said.pop(box, "")  # the value typed clamped or refused: still said

        def send() -> float:
            set_value, read_value = calls(rig)
            set_value(typed)
            return read_value()

        def done(taken: float) -> None:
            box.setValue(taken)
            took = ("" if math.isclose(taken, typed, rel_tol=1e-6)
                    else f"{what}: the lock-in has no {box.say(typed)}; it took "
                         f"{box.say(taken)}, its next value up.")
            self.message.setText(" ".join(t for t in (said, took) if t))
            self.poll()

        def failed(exc: BaseException) -> None:
            self.message.setText(failure_text(what, exc))

        if not self.holder.call(send, done, failed):
            self.message.setText(f"{what}: {NOT_AVAILABLE}")


def failure_text(what: str, exc: BaseException) -> str:
    """How the message line says that the action `what` failed with `exc`: one refused while
    a link drops the rest of a reply cut short (`StillDropping`) did nothing, and is not
    made again by itself (a scan's and a recipe's calls are; the window's buttons are not)."""
    if isinstance(exc, StillDropping):
        return (f"{what}: not done: {exc}. Ask again once it has been dropped (on a serial "
                "line, once the line is quiet: up to a minute and more)")
    return f"{what}: {exc}"


def _failed_html(exc: object) -> str:
    return f"<span style='color:#a00000'>✖ {escape(str(exc))}</span>"


def _vector(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Exception):
        return f"unknown ({value})"
    if value is None:
        return "–"
    bx, by, bz = np.asarray(value, dtype=float) / UT
    return f"({bx:.3f}, {by:.3f}, {bz:.3f}) µT"
