"""A Physik Instrumente GCS 2.0 controller (E-727 style) answering over its ASCII protocol.

Constructor:

    PIGCSEmulator(stage_model: StageModel, *, idn=DEFAULT_IDN, unit_scale=1e-3)

`unit_scale` is metres per controller unit: 1e-3, the controller works in mm. Commands:
`*IDN?`, `SAI?` [ALL], `SVO ax v ...`, `SVO? [ax ...]`, `MOV ax p ...`, `MOV? [ax ...]`,
`POS? [ax ...]`, `ONT? [ax ...]`, `TMN? [ax ...]`, `TMX? [ax ...]`, `VEL ax v ...`,
`VEL? [ax ...]`, `STP`, `HLT [ax ...]`, `ERR?`.

As on the real controller: a set command has no reply; a refused command leaves an error code
that `ERR?` returns (and clears); only the last error is kept. A query for several axes answers
one line per axis, `axis=value`, every line but the last ending in a space before the line feed
(the GCS multi-line convention). An unknown command gets no reply (and error 2). Codes used
(from PI's GCS error list): 1 parameter syntax error, 2 unknown command, 5 move with servo off,
7 position out of limits, 8 velocity out of limits, 10 controller was stopped by command,
15 invalid axis identifier.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from simulators.emulator import Emulator
from simulators.stage_model import StageModel, StageRefused

DEFAULT_IDN = "(c)2015 Physik Instrumente (PI) GmbH & Co. KG, E-727, 0116044408, 13.21.00.09"

PARAM_SYNTAX = 1
UNKNOWN_COMMAND = 2
MOVE_WITHOUT_SERVO = 5
POS_OUT_OF_LIMITS = 7
VEL_OUT_OF_LIMITS = 8
STOPPED = 10
INVALID_AXIS = 15


class _CommandError(Exception):
    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(code)


def gcs_lines(lines: list[str]) -> str:
    """Join reply lines the GCS way: every line but the last ends with ' ' before the LF."""
    return " \n".join(lines)


class PIGCSEmulator(Emulator):
    """A GCS 2.0 piezo controller over a `StageModel`."""

    name = "pi_gcs"

    def __init__(
        self, stage_model: StageModel, *, idn: str = DEFAULT_IDN, unit_scale: float = 1e-3
    ) -> None:
        self.model = stage_model
        self.idn = idn
        self.unit_scale = unit_scale
        self.error = 0
        self._queries: dict[str, Callable[[str], str]] = {
            "POS?": lambda ax: self._number(self.model.position(ax)),
            "MOV?": lambda ax: self._number(self.model.target(ax)),
            "ONT?": lambda ax: "1" if self.model.on_target(ax) else "0",
            "SVO?": lambda ax: "1" if self.model.servo(ax) else "0",
            "TMN?": lambda ax: self._number(self.model.limits(ax)[0]),
            "TMX?": lambda ax: self._number(self.model.limits(ax)[1]),
            "VEL?": lambda ax: self._number(self.model.velocity(ax)),
        }

    def _number(self, metres: float) -> str:
        return f"{metres / self.unit_scale:.7f}"

    def handle(self, message: str) -> str | None:
        parts = message.split()
        if not parts:
            return None
        command, args = parts[0].upper(), parts[1:]
        try:
            return self._dispatch(command, args)
        except _CommandError as exc:
            self.error = exc.code
            return None

    def _dispatch(self, command: str, args: list[str]) -> str | None:
        if command == "*IDN?":
            return self.idn
        if command == "ERR?":
            code, self.error = self.error, 0
            return str(code)
        if command == "SAI?":
            if args not in ([], ["ALL"]):
                raise _CommandError(PARAM_SYNTAX)
            return gcs_lines(list(self.model.axis_names))
        if command in self._queries:
            axes = args or list(self.model.axis_names)
            for ax in axes:
                self._check_axis(ax)
            return gcs_lines([f"{ax}={self._queries[command](ax)}" for ax in axes])
        if command == "SVO":
            pairs = self._pairs(args)
            if any(value not in ("0", "1") for _, value in pairs):
                raise _CommandError(PARAM_SYNTAX)
            for ax, value in pairs:
                self.model.set_servo(ax, value == "1")
            return None
        if command == "MOV":
            targets = {ax: self._float(v) * self.unit_scale for ax, v in self._pairs(args)}
            try:
                self.model.move(targets)
            except StageRefused as exc:
                raise _CommandError(
                    MOVE_WITHOUT_SERVO if exc.reason == "servo_off" else POS_OUT_OF_LIMITS
                ) from None
            return None
        if command == "VEL":
            velocities = {ax: self._float(v) * self.unit_scale for ax, v in self._pairs(args)}
            if any(not 0 < v <= self.model.max_velocity for v in velocities.values()):
                raise _CommandError(VEL_OUT_OF_LIMITS)
            for ax, v in velocities.items():
                self.model.set_velocity(ax, v)
            return None
        if command in ("STP", "HLT"):
            for ax in args if command == "HLT" else []:
                self._check_axis(ax)
            self.model.stop()
            self.error = STOPPED
            return None
        raise _CommandError(UNKNOWN_COMMAND)

    def _check_axis(self, ax: str) -> None:
        if not self.model.has_axis(ax):
            raise _CommandError(INVALID_AXIS)

    def _pairs(self, args: list[str]) -> list[tuple[str, str]]:
        if not args or len(args) % 2:
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
