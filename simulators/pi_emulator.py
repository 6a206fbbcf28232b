"""Physik Instrumente GCS 2.0 controllers answering over their ASCII protocol.

Constructor:

    PIGCSEmulator(stage_model: StageModel, *, controller=E727)

`controller` says which instrument it is: `E727`, the digital piezo controller of flexure
stages (positions in µm, capacitive sensors that need no referencing, at most about 2 mm of
travel), or `C884`, a DC-motor controller of motorized stages (positions in mm, incremental
encoders: every axis must be referenced with `FRF` before it moves). `HLP?` lists exactly the
commands implemented (see `docs/emulated_commands/pi_gcs.md`).

As on the real controllers: a set command has no reply; a refused command leaves an error code
that `ERR?` returns (and clears); only the last error is kept. A query for several items answers
one line each, every line but the last ending in a space before the line feed. An unknown
command gets no reply (and error 2). The single-byte commands #4 (status), #5 (moving axes),
#7 (ready: 0xB1, busy: 0xB0), #8 (macro running), #9 (wave generator running) and #24 (stop
all) arrive without a line feed and are answered at once (`handle_byte`), ahead of a line the
controller has not parsed yet (the transports keep that order: `EmulatorTransport`,
`simulators.tcp_server`). Replies are text in
the controller's 8-bit code page ("µm" is 0xB5 0x6D on the wire).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from simulators.emulator import Emulator, number_reply
from simulators.pi_recorder import DataRecorder, RecorderError
from simulators.pi_wave import WaveError, WaveGenerator
from simulators.stage_model import StageModel, StageRefused

# PI GCS error codes (GCS error list)
PARAM_SYNTAX = 1
UNKNOWN_COMMAND = 2
MOVE_WITHOUT_REF_OR_SERVO = 5
POS_OUT_OF_LIMITS = 7
VEL_OUT_OF_LIMITS = 8
STOPPED = 10
INVALID_AXIS = 15
PARAM_OUT_OF_RANGE = 17
PARAM_NR = 24
MISSING_PARAM = 26
UNKNOWN_PARAMETER = 54
PARAM_PROTECTION = 60
WAVE_GENERATOR_ACTIVE = 73

READY, BUSY = "\xb1", "\xb0"
UNIT_PARAMETER = 0x07000601
RECORDER_POINTS = 0x16000200  # Data Recorder Max Points: the recorder's samples in all
RECORDER_TABLES = 0x16000300  # Data Recorder Chan Number: its record tables, where shared


# m/s²: the deceleration answered for a model axis that stops at once (one set so, as a
# piezo stage does), as the largest a controller takes
MAX_DECELERATION = 1e3


# m/s²: a C-884's closed-loop deceleration from power-up: a DC-motor stage brakes for a fraction
# of a second (0.2 s from the profile's 2 mm/s; 1 s from the fastest velocity it takes, 10 mm/s,
# the most a stop waits for its braking)
MOTOR_DECELERATION = 10e-3


@dataclass(frozen=True)
class Controller:
    """What distinguishes one PI controller model from another, as far as emulated."""

    model: str
    idn: str
    firmware: tuple[str, ...]  # VER? lines
    unit: str
    unit_scale: float  # metres per controller unit
    referencing: bool  # incremental sensors: FRF before moves (FRF, FRF?, RON, RON?)
    max_travel: float  # m: the longest travel of the stages it drives
    servo_cycle: float  # s
    record_tables: int
    record_points: int  # Data Recorder Max Points (SPA 0x16000200)
    wave_generators: int  # 0: no wave generator
    min_param: int  # SPA id of the lower soft limit (TMN?)
    max_param: int  # SPA id of the upper soft limit (TMX?)
    stage_name: str
    tracking_lag: float = 0.0  # s: how far the closed-loop position trails a wave's set point
    # SPA id of the velocity reference moves run at (FRF does not use VEL); None: no FRF
    reference_velocity_param: int | None = None
    # SPA id of the closed-loop deceleration a stop brakes at (DEC); None: stops at once
    deceleration_param: int | None = None
    # m/s²: that deceleration from power-up, where the stage model brings none of its own
    deceleration: float | None = None
    # the recorder's points are shared equally among its tables (TNR?), as an E-727's are
    # (its manual: 262144 in all, 32768 a table of 8); False: each table holds them all
    points_shared: bool = False

    def table_points(self) -> int:
        """The samples one record table holds."""
        return self.record_points // (self.record_tables if self.points_shared else 1)


E727 = Controller(
    model="E-727",
    idn="(c)2015 Physik Instrumente (PI) GmbH & Co. KG, E-727, 0116044408, 13.21.00.09",
    firmware=("FW_DSP: V13.21.00.09", "FW_FPGA: V01.04.02.01", "DRV_EMU: smm-daq E-727 emulator"),
    unit="µm",
    unit_scale=1e-6,
    referencing=False,
    max_travel=2.0e-3,
    servo_cycle=2e-5,  # 50 kHz servo update
    record_tables=8,
    record_points=262144,
    wave_generators=3,
    min_param=0x07000000,
    max_param=0x07000001,
    stage_name="P-629.2CD",
    tracking_lag=1.5e-3,  # the phase lag of a closed loop of about 100 Hz bandwidth
    points_shared=True,
)
C884 = Controller(
    model="C-884",
    idn="(c)2017 Physik Instrumente (PI) GmbH & Co. KG, C-884.4DC, 0117012345, 01.00.03.06",
    firmware=("FW_ARM: V01.00.03.06", "DRV_EMU: smm-daq C-884 emulator"),
    unit="mm",
    unit_scale=1e-3,
    referencing=True,
    max_travel=0.3,
    # neither confirmed, nor that a C-884 lists them in HPA? (PIPython's presets for the
    # C-884.4D: 50 µs, 8192 points a table): docs/emulated_commands/pi_gcs.md
    servo_cycle=1e-4,  # 10 kHz servo update
    record_tables=8,
    record_points=1024,
    wave_generators=0,
    min_param=0x30,
    max_param=0x15,
    stage_name="M-112.1DG1",
    reference_velocity_param=0x50,  # "Velocity For Reference Moves", set with SPA at level 0
    deceleration_param=0xB,  # "Closed-Loop Deceleration", set with SPA (or DEC) at level 0
    deceleration=MOTOR_DECELERATION,
)
CONTROLLERS = {c.model: c for c in (E727, C884)}


class _CommandError(Exception):
    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(code)


def gcs_lines(lines: list[str]) -> str:
    """Join reply lines the GCS way: every line but the last ends with ' ' before the LF."""
    return " \n".join(lines)


class PIGCSEmulator(Emulator):
    """A GCS 2.0 controller over a `StageModel`."""

    name = "pi_gcs"
    immediate_bytes = frozenset({4, 5, 7, 8, 9, 24})

    def __init__(self, stage_model: StageModel, *, controller: Controller = E727) -> None:
        self.model = stage_model
        self.controller = controller
        self.unit_scale = controller.unit_scale
        self.error = 0
        self.ron = dict.fromkeys(stage_model.axis_names, True)
        if controller.deceleration is not None:  # a motor controller never stops dead
            for ax in stage_model.axis_names:
                if math.isinf(stage_model.deceleration(ax)):  # the model's own: none
                    stage_model.set_deceleration(ax, controller.deceleration)
        now = stage_model.clock.now
        self.recorder = DataRecorder(
            stage_model,
            now,
            tables=controller.record_tables,
            points=controller.table_points(),
            servo_cycle=controller.servo_cycle,
            to_units=lambda _ax, metres: metres / self.unit_scale,
            controller=controller.model,
        )
        self.wave = (
            WaveGenerator(
                stage_model,
                now,
                generators=controller.wave_generators,
                servo_cycle=controller.servo_cycle,
                unit_scale=controller.unit_scale,
                on_start=self.recorder.wave_started,
                tracking_lag=controller.tracking_lag,
            )
            if controller.wave_generators
            else None
        )
        self._axis_queries: dict[str, tuple[str, Callable[[str], str]]] = {
            "POS?": ("Get Real Position", lambda ax: self._number(self._counter(ax))),
            "MOV?": ("Get Target Position", lambda ax: self._number(self._target(ax))),
            "ONT?": ("Get On-Target State", lambda ax: self._flag(self._on_target(ax))),
            "SVO?": ("Get Servo Mode", lambda ax: self._flag(self.model.servo(ax))),
            "TMN?": ("Get Minimum Commandable Position", lambda ax: self._number(self._lo(ax))),
            "TMX?": ("Get Maximum Commandable Position", lambda ax: self._number(self._hi(ax))),
            "VEL?": ("Get Closed-Loop Velocity", lambda ax: self._number(self.model.velocity(ax))),
            "PUN?": ("Get Position Unit", lambda _ax: controller.unit),
        }
        if controller.referencing:
            self._axis_queries["FRF?"] = (
                "Get Referencing Result",
                lambda ax: self._flag(self.model.referenced(ax)),
            )
            self._axis_queries["RON?"] = (
                "Get Reference Mode",
                lambda ax: self._flag(self.ron[ax]),
            )
        self._commands: dict[str, tuple[str, Callable[[list[str]], str | None]]] = {
            "*IDN?": ("Get Device Identification", lambda _a: controller.idn),
            "CSV?": ("Get Current Syntax Version", lambda _a: "2.0"),
            "VER?": ("Get Versions Of Firmware And Drivers", lambda _a: gcs_lines(
                list(controller.firmware))),
            "HLP?": ("Get List Of Available Commands", self._help),
            "HPA?": ("Get List Of Available Parameters", self._help_parameters),
            "ERR?": ("Get Error Number", self._error_query),
            "SAI?": ("Get List Of Current Axis Identifiers", self._axes_query),
            "SPA?": ("Get Volatile Memory Parameters", self._parameters),
            "SEP?": ("Get Non-Volatile Memory Parameters", self._parameters),
            "SPA": ("Set Volatile Memory Parameters", self._set_parameters),
            "SVO": ("Set Servo Mode", self._servo),
            "MOV": ("Set Target Position", lambda a: self._move(a, relative=False)),
            "MVR": ("Set Target Relative To Current Position", lambda a: self._move(
                a, relative=True)),
            "VEL": ("Set Closed-Loop Velocity", self._velocity),
            "STP": ("Stop All Axes", self._stop_all),
            "HLT": ("Halt Motion Smoothly", self._halt),
            "TNR?": ("Get Number Of Record Tables", lambda _a: str(controller.record_tables)),
            "DRC": ("Set Data Recorder Configuration", self._recorder_config),
            "DRC?": ("Get Data Recorder Configuration", lambda a: self.recorder.query_tables(
                a, lambda k: f"{self.recorder.tables[k].source} {self.recorder.tables[k].option}")),
            "DRT": ("Set Data Recorder Trigger Source", self._recorder_trigger),
            "DRT?": ("Get Data Recorder Trigger Source", lambda a: self.recorder.query_tables(
                a, lambda k: f"{self.recorder.triggers[k]} 0")),
            "RTR": ("Set Record Table Rate", self._record_rate),
            "RTR?": ("Get Record Table Rate", lambda _a: str(self.recorder.rate)),
            "DRL?": ("Get Number Of Recorded Points", lambda a: self.recorder.query_tables(
                a, lambda k: str(self.recorder.recorded(k)))),
            "DRR?": ("Get Recorded Data Values", self._record_read),
        }  # fmt: skip
        if controller.referencing:
            self._commands["FRF"] = ("Fast Reference Move To Reference Switch", self._reference)
            self._commands["RON"] = ("Set Reference Mode", self._reference_mode)
        if self.wave is not None:
            self._commands.update(self.wave.commands())
        self._bytes: dict[int, tuple[str, Callable[[], str | None]]] = {
            4: ("Request Status Register", self._status),
            5: ("Request Motion Status", self._moving),
            7: ("Request Controller Ready Status", self._ready),
            8: ("Query If Macro Is Running", lambda: "0"),
            24: ("Stop All Axes", self._stop_byte),
        }
        if self.wave is not None:
            self._bytes[9] = ("Query Wave Generator Status", self.wave.running_mask)

    # -- units and state -----------------------------------------------------------------------

    def _number(self, metres: float) -> str:
        return number_reply(metres / self.unit_scale, ".7f")

    @staticmethod
    def _flag(on: bool) -> str:
        return "1" if on else "0"

    def _counter(self, ax: str) -> float:
        """What the position counter reads (m): the true position less the counter's origin."""
        return self.model.position(ax) - self.model.counter(ax)

    def _target(self, ax: str) -> float:
        if self.wave is not None and self.wave.drives(ax):
            return self.wave.target(ax) - self.model.counter(ax)
        return self.model.target(ax) - self.model.counter(ax)

    def _on_target(self, ax: str) -> bool:
        if self.wave is not None and self.wave.drives(ax):
            return False
        return self.model.on_target(ax)

    def _lo(self, ax: str) -> float:
        return self.model.limits(ax)[0]

    def _hi(self, ax: str) -> float:
        return self.model.limits(ax)[1]

    # -- message handling ----------------------------------------------------------------------

    def handle(self, message: str) -> str | None:
        parts = message.split()
        if not parts:
            return None
        command, args = parts[0].upper(), parts[1:]
        try:
            reply = self._dispatch(command, args)
        except _CommandError as exc:
            self.error = exc.code
            return None
        except (RecorderError, WaveError) as exc:
            self.error = exc.code
            return None
        return reply

    def handle_byte(self, code: int) -> str | None:
        """A single-byte command (#4, #5, #7, #8, #9, #24), answered at once."""
        entry = self._bytes.get(code)
        return entry[1]() if entry is not None else None

    def _dispatch(self, command: str, args: list[str]) -> str | None:
        changes_target = command in ("MOV", "MVR")
        self.recorder.command_seen(changes_target)
        if command in self._axis_queries:
            axes = args or list(self.model.axis_names)
            for ax in axes:
                self._check_axis(ax)
            query = self._axis_queries[command][1]
            return gcs_lines([f"{ax}={query(ax)}" for ax in axes])
        entry = self._commands.get(command)
        if entry is None:
            raise _CommandError(UNKNOWN_COMMAND)
        return entry[1](args)

    # -- information ---------------------------------------------------------------------------

    def _help(self, _args: list[str]) -> str:
        entries = [(f"#{code}", text) for code, (text, _) in sorted(self._bytes.items())]
        entries += [(name, text) for name, (text, _) in self._commands.items()]
        entries += [(name, text) for name, (text, _) in self._axis_queries.items()]
        lines = ["The following commands are valid:"]
        lines += [f"{name} {text}" for name, text in entries]
        lines.append("end of help")
        return gcs_lines(lines)

    def _parameter_table(self) -> dict[int, tuple[str, str, Callable[[str], str]]]:
        c = self.controller
        table: dict[int, tuple[str, str, Callable[[str], str]]] = {
            c.min_param: ("FLOAT", "Range Limit min", lambda ax: self._number(self._lo(ax))),
            c.max_param: ("FLOAT", "Range Limit max", lambda ax: self._number(self._hi(ax))),
            UNIT_PARAMETER: ("CHAR", "Axis Unit", lambda _ax: c.unit),
            0x0E000200: ("FLOAT", "Servo Update Time", lambda _ax: f"{c.servo_cycle:.9g}"),
            0x3C: ("CHAR", "Stage Name", lambda _ax: c.stage_name),
            RECORDER_POINTS: ("INT", "Data Recorder Max Points",
                              lambda _ax: str(c.record_points)),
        }
        if c.points_shared:  # listed where the points are shared, as on an E-727
            table[RECORDER_TABLES] = ("INT", "Data Recorder Chan Number",
                                      lambda _ax: str(c.record_tables))
        if c.reference_velocity_param is not None:
            table[c.reference_velocity_param] = (
                "FLOAT", "Velocity For Reference Moves",
                lambda ax: self._number(self.model.reference_velocity(ax)))
        if c.deceleration_param is not None:
            table[c.deceleration_param] = (
                "FLOAT", "Closed-Loop Deceleration",
                lambda ax: self._number(min(self.model.deceleration(ax), MAX_DECELERATION)))
        return table

    def _help_parameters(self, _args: list[str]) -> str:
        lines = ["The following parameters are valid:"]
        n = len(self.model.axis_names)
        for pid, (kind, text, _) in sorted(self._parameter_table().items()):
            lines.append(f"0x{pid:08X}=\t0\t{n}\t{kind}\taxis\t{text}")
        lines.append("end of help")
        return gcs_lines(lines)

    def _parameters(self, args: list[str]) -> str:
        table = self._parameter_table()
        if not args:
            pairs = [(ax, pid) for ax in self.model.axis_names for pid in sorted(table)]
        else:
            if len(args) % 2:
                raise _CommandError(PARAM_SYNTAX)
            pairs = [
                (ax, self._parameter_id(p)) for ax, p in zip(args[::2], args[1::2], strict=True)
            ]
        lines = []
        for ax, pid in pairs:
            self._check_axis(ax)
            if pid not in table:
                raise _CommandError(UNKNOWN_PARAMETER)
            lines.append(f"{ax} 0x{pid:08X}={table[pid][2](ax)}")
        return gcs_lines(lines)

    def _set_parameters(self, args: list[str]) -> None:
        if len(args) < 3 or len(args) % 3:
            raise _CommandError(PARAM_SYNTAX)
        table = self._parameter_table()
        c = self.controller
        writable = {
            c.reference_velocity_param: (self.model.max_velocity,
                                         self.model.set_reference_velocity),
            c.deceleration_param: (MAX_DECELERATION, self.model.set_deceleration),
        }
        values = []
        for ax, p, v in zip(args[::3], args[1::3], args[2::3], strict=True):
            self._check_axis(ax)
            pid = self._parameter_id(p)
            if pid not in table:
                raise _CommandError(UNKNOWN_PARAMETER)
            if pid not in writable:
                raise _CommandError(PARAM_PROTECTION)  # needs a higher command level (CCL)
            values.append((ax, pid, self._float(v) * self.unit_scale))
        if any(not 0 < v <= writable[pid][0] for _, pid, v in values):
            raise _CommandError(PARAM_OUT_OF_RANGE)
        for ax, pid, v in values:
            writable[pid][1](ax, v)

    @staticmethod
    def _parameter_id(text: str) -> int:
        try:
            return int(text, 0)
        except ValueError:
            raise _CommandError(PARAM_SYNTAX) from None

    def _error_query(self, _args: list[str]) -> str:
        code, self.error = self.error, 0
        return str(code)

    def _axes_query(self, args: list[str]) -> str:
        if [a.upper() for a in args] not in ([], ["ALL"]):
            raise _CommandError(PARAM_SYNTAX)
        return gcs_lines(list(self.model.axis_names))

    # -- motion --------------------------------------------------------------------------------

    def _servo(self, args: list[str]) -> None:
        pairs = self._pairs(args)
        if any(value not in ("0", "1") for _, value in pairs):
            raise _CommandError(PARAM_SYNTAX)
        for ax, value in pairs:
            self.model.set_servo(ax, value == "1")

    def _move(self, args: list[str], *, relative: bool) -> None:
        if self.wave is not None and any(self.wave.drives(ax) for ax, _ in self._pairs(args)):
            raise _CommandError(WAVE_GENERATOR_ACTIVE)
        targets = {}
        for ax, v in self._pairs(args):
            value = self._float(v) * self.unit_scale
            base = self.model.target(ax) if relative else self.model.counter(ax)
            targets[ax] = base + value
        try:
            self.model.move(targets)
        except StageRefused as exc:
            raise _CommandError(
                POS_OUT_OF_LIMITS if exc.reason == "out_of_limits" else MOVE_WITHOUT_REF_OR_SERVO
            ) from None

    def _velocity(self, args: list[str]) -> None:
        velocities = {ax: self._float(v) * self.unit_scale for ax, v in self._pairs(args)}
        if any(not 0 < v <= self.model.max_velocity for v in velocities.values()):
            raise _CommandError(VEL_OUT_OF_LIMITS)
        for ax, v in velocities.items():
            self.model.set_velocity(ax, v)

    def _stop_all(self, _args: list[str]) -> None:
        self._stop_everything()
        raise _CommandError(STOPPED)

    def _halt(self, args: list[str]) -> None:
        axes = args or list(self.model.axis_names)
        for ax in axes:
            self._check_axis(ax)
        for ax in axes:
            if self.wave is not None and self.wave.drives(ax):
                self.wave.stop_axis(ax)
            self.model.stop_axis(ax)
        raise _CommandError(STOPPED)

    def _stop_byte(self) -> None:
        self._stop_everything()
        self.error = STOPPED
        return None

    def _stop_everything(self) -> None:
        if self.wave is not None:
            self.wave.stop_all()
        self.model.stop()

    def _reference(self, args: list[str]) -> None:
        axes = args or list(self.model.axis_names)
        for ax in axes:
            self._check_axis(ax)
        try:
            self.model.reference(axes)
        except StageRefused:
            raise _CommandError(MOVE_WITHOUT_REF_OR_SERVO) from None

    def _reference_mode(self, args: list[str]) -> None:
        pairs = self._pairs(args)
        if any(value not in ("0", "1") for _, value in pairs):
            raise _CommandError(PARAM_SYNTAX)
        for ax, value in pairs:
            self.ron[ax] = value == "1"

    # -- data recorder -------------------------------------------------------------------------

    @staticmethod
    def _triplets(args: list[str]) -> list[tuple[str, str, str]]:
        if not args or len(args) % 3:
            raise _CommandError(PARAM_NR)
        return list(zip(args[::3], args[1::3], args[2::3], strict=True))

    def _recorder_config(self, args: list[str]) -> None:
        for table, source, option in self._triplets(args):
            self.recorder.configure(table, source, option)

    def _recorder_trigger(self, args: list[str]) -> None:
        for table, source, value in self._triplets(args):
            self.recorder.set_trigger(table, source, value)

    def _record_rate(self, args: list[str]) -> None:
        if len(args) != 1:
            raise _CommandError(PARAM_NR)
        self.recorder.set_rate(args[0])

    def _record_read(self, args: list[str]) -> str:
        return self.recorder.read(args)

    # -- single-byte commands ------------------------------------------------------------------

    def _status(self) -> str:
        """#4: bit 0 an error is pending, bits 16.. on target per axis (a simplified register)."""
        word = 1 if self.error else 0
        for k, ax in enumerate(self.model.axis_names):
            if self._on_target(ax):
                word |= 1 << (16 + k)
        return f"0x{word:08X}"

    def _moving(self) -> str:
        mask = 0
        for k, ax in enumerate(self.model.axis_names):
            if self.model.moving(ax) or (self.wave is not None and self.wave.drives(ax)):
                mask |= 1 << k
        return f"{mask:X}"

    def _ready(self) -> str:
        busy = any(
            self.model.moving(ax) and not self.model.referenced(ax) for ax in self.model.axis_names
        )
        return BUSY if busy else READY

    # -- arguments -----------------------------------------------------------------------------

    def _check_axis(self, ax: str) -> None:
        if not self.model.has_axis(ax):
            raise _CommandError(INVALID_AXIS)

    def _pairs(self, args: list[str]) -> list[tuple[str, str]]:
        if not args:
            raise _CommandError(MISSING_PARAM)
        if len(args) % 2:
            raise _CommandError(PARAM_SYNTAX)
        pairs = list(zip(args[::2], args[1::2], strict=True))
        for ax, _ in pairs:
            self._check_axis(ax)
        return pairs

    @staticmethod
    def _float(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise _CommandError(PARAM_SYNTAX) from None
        if not math.isfinite(value):
            raise _CommandError(PARAM_SYNTAX)
        return value
