"""One Kepco BOP bipolar power supply answering SCPI, driving one coil of a `CoilModel`.

Constructor:

    KepcoBOPEmulator(coil_model: CoilModel, axis_index: int, *, idn=None)

`idn` defaults to "KEPCO,BOP 20-5M,E<serial>,1.66-1.66" with a serial per axis. Commands (SCPI,
case-insensitive, long or short node names, optional SOURce: and :LEVel[:IMMediate] nodes):
`*IDN?`, `*RST`, `*CLS`, `FUNC:MODE CURR|VOLT`, `FUNC:MODE?` (0 voltage, 1 current mode),
`CURR <A>`, `CURR?`, `VOLT <V>` (in current mode: the compliance limit), `VOLT?`,
`MEAS:CURR?`, `MEAS:VOLT?`, `OUTP ON|OFF|1|0`, `OUTP?`, `SYST:ERR?`. Several commands may be
joined with ';'.

Errors go to the SCPI error queue read by `SYST:ERR?` (`0,"No error"` when empty):
-104 data type error, -113 undefined header, -222 data out of range, -224 illegal parameter
value, and -300 device-specific error for a supply that tripped (its output found off, see
`CoilModel.trip`). The output current follows the setpoint only in current mode.
"""

from __future__ import annotations

import math
from collections import deque

from simulators.coil_model import CoilModel
from simulators.emulator import Emulator

_NODES = {  # long name -> short name
    "SOURCE": "SOUR",
    "FUNCTION": "FUNC",
    "MODE": "MODE",
    "CURRENT": "CURR",
    "VOLTAGE": "VOLT",
    "MEASURE": "MEAS",
    "OUTPUT": "OUTP",
    "STATE": "STAT",
    "SYSTEM": "SYST",
    "ERROR": "ERR",
    "LEVEL": "LEV",
    "IMMEDIATE": "IMM",
}
_OPTIONAL = {"SOUR", "LEV", "IMM", "STAT"}


def _short(node: str) -> str | None:
    node = node.upper()
    for long, short in _NODES.items():
        if node in (long, short):
            return short
    return None


class KepcoBOPEmulator(Emulator):
    """A Kepco BOP in SCPI, one coil axis of the shared coil model."""

    name = "kepco_bop"
    max_voltage = 20.0  # V, the BOP 20-5M's output range

    def __init__(self, coil_model: CoilModel, axis_index: int, *, idn: str | None = None) -> None:
        if axis_index not in (0, 1, 2):
            raise ValueError(f"axis_index must be 0, 1 or 2, got {axis_index}")
        self.model = coil_model
        self.axis = axis_index
        self.idn = idn or f"KEPCO,BOP 20-5M,E{4711 + axis_index},1.66-1.66"
        self.name = f"kepco_bop[{'xyz'[axis_index]}]"
        self.mode = "VOLT"
        self.current_setting = 0.0
        self.errors: deque[tuple[int, str]] = deque()

    def _error(self, code: int, text: str) -> None:
        if len(self.errors) < 16:
            self.errors.append((code, text))

    def handle(self, message: str) -> str | None:
        replies = []
        for command in message.split(";"):
            if command.strip():
                reply = self._one(command.strip())
                if reply is not None:
                    replies.append(reply)
        return ";".join(replies) if replies else None

    def _one(self, command: str) -> str | None:
        header, _, arg = command.partition(" ")
        arg = arg.strip()
        upper = header.upper()
        if upper.startswith("*"):
            return self._common(upper)
        query = upper.endswith("?")
        nodes = [_short(n) for n in header.rstrip("?").lstrip(":").split(":")]
        if None in nodes:
            self._error(-113, "Undefined header")
            return None
        path = ":".join(n for n in nodes if n not in _OPTIONAL) + ("?" if query else "")
        handler = {
            "FUNC:MODE": self._set_mode,
            "FUNC:MODE?": lambda _: "1" if self.mode == "CURR" else "0",
            "CURR": self._set_current,
            "CURR?": lambda _: f"{self.current_setting:.6E}",
            "VOLT": self._set_voltage,
            "VOLT?": lambda _: f"{self.model.voltage_limit(self.axis):.6E}",
            "MEAS:CURR?": lambda _: f"{self.model.measured_current(self.axis):.6E}",
            "MEAS:VOLT?": lambda _: f"{self.model.voltage(self.axis):.6E}",
            "OUTP": self._set_output,
            "OUTP?": lambda _: "1" if self.model.output(self.axis) else "0",
            "SYST:ERR?": self._next_error,
        }.get(path)
        if handler is None:
            self._error(-113, "Undefined header")
            return None
        return handler(arg)

    def _common(self, header: str) -> str | None:
        if header == "*IDN?":
            return self.idn
        if header == "*RST":
            self.mode = "VOLT"
            self.current_setting = 0.0
            self.model.set_current(self.axis, 0.0)
            self.model.set_output(self.axis, False)
            return None
        if header == "*CLS":
            self.errors.clear()
            self.model.pop_fault(self.axis)
            return None
        self._error(-113, "Undefined header")
        return None

    def _number(self, arg: str) -> float | None:
        try:
            value = float(arg)
        except ValueError:
            self._error(-104, "Data type error")
            return None
        if not math.isfinite(value):
            self._error(-104, "Data type error")
            return None
        return value

    def _set_mode(self, arg: str) -> None:
        mode = _short(arg) if arg else None
        if mode not in ("CURR", "VOLT"):
            self._error(-224, "Illegal parameter value")
            return
        self.mode = mode
        self.model.set_current(self.axis, self.current_setting if mode == "CURR" else 0.0)

    def _set_current(self, arg: str) -> None:
        value = self._number(arg)
        if value is None:
            return
        if abs(value) > self.model.rating:
            self._error(-222, "Data out of range")
            return
        self.current_setting = value
        if self.mode == "CURR":
            self.model.set_current(self.axis, value)

    def _set_voltage(self, arg: str) -> None:
        value = self._number(arg)
        if value is None:
            return
        if not 0 < value <= self.max_voltage:
            self._error(-222, "Data out of range")
            return
        self.model.set_voltage_limit(self.axis, value)

    def _set_output(self, arg: str) -> None:
        state = arg.upper()
        if state not in ("ON", "OFF", "1", "0"):
            self._error(-224, "Illegal parameter value")
            return
        self.model.set_output(self.axis, state in ("ON", "1"))

    def _next_error(self, _arg: str) -> str:
        fault = self.model.pop_fault(self.axis)
        if fault is not None:
            self._error(-300, f"Device-specific error; {fault}")
        if not self.errors:
            return '0,"No error"'
        code, text = self.errors.popleft()
        return f'{code},"{text}"'
