"""One Kepco BOP bipolar power supply answering SCPI, driving one coil of a `CoilModel`.

Constructor:

    KepcoBOPEmulator(coil_model: CoilModel, axis_index: int, *, model="BOP 20-5M", idn=None)

`model` is the supply on the label, "BOP <volts>-<amps>[suffix]": its rating is ±volts and
±amps (a BOP 20-5M: ±20 V, ±5 A), and `*IDN?` answers "KEPCO,<model>,E<serial>,1.66-1.66".
Commands follow the BOP's SCPI (BIT 4886 interface manual; case-insensitive, long or short
nodes, optional SOURce:, :LEVel[:IMMediate][:AMPlitude], MEASure[:SCALar] and [:DC], :STATe,
each only where the manual puts it (`CURR:DC 1` is an undefined header),
several joined with ';', each header after the first read from the path of the one before it
as the BOP manual says, so that `MEAS:VOLT?;CURR?` reads the output current and
`FUNC:MODE CURR;CURR 1` is an undefined header, `FUNC:MODE CURR;:CURR 1` not:
`simulators.scpi_path`):
`FUNC:MODE VOLT|CURR`, `FUNC:MODE?` (0 voltage, 1 current), `CURR <A>`, `CURR?`, `VOLT <V>`,
`VOLT?`, `MEAS:CURR?`, `MEAS:VOLT?`, `OUTP ON|OFF|1|0`, `OUTP?`, `SYST:ERR?`, `SYST:BEEP`, and
the IEEE 488.2 common commands `*IDN?`, `*RST`, `*CLS`, `*OPC`, `*OPC?`, `*WAI`, `*TST?`,
`*OPT?`, `*ESR?`, `*ESE`, `*ESE?`, `*SRE`, `*SRE?`, `*STB?`.

Both modes drive the coil (resistance R of the coil model) physically:
- current mode: the output current follows `CURR`, within the compliance |`VOLT`| / R;
- voltage mode: the output voltage is `VOLT` (bipolar), so the coil carries V/R, limited to
  ±|`CURR`|, the current limit in this mode.
`CURR?` and `VOLT?` return the value as programmed, sign included, in either mode (the
manual: "returns the programmed current (Current mode) or current limit (Voltage mode)").
Errors go to the SCPI error queue read by `SYST:ERR?` (`0,"No error"` when empty; 16 deep,
then -350 "Queue overflow") and set the standard event status bits (-1xx command error,
-2xx execution error, -3xx device-specific error): -104 data type error, -109 missing
parameter, -113 undefined header, -222 data out of range, -224 illegal parameter value (also
`MIN` or `MAX` as a value, which are not emulated), and -300 for a supply that tripped (its
output found off, see `CoilModel.trip`).
"""

from __future__ import annotations

import math
import re

from simulators.coil_model import CoilModel
from simulators.emulator import Emulator, number_reply
from simulators.scpi_path import message_units
from simulators.scpi_status import UNHANDLED, ScpiStatus

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
    "AMPLITUDE": "AMP",  # the BOP manual's spelling, "AMPlitude"
    "SCALAR": "SCAL",
    "DC": "DC",
    "BEEP": "BEEP",
}
# [SOURce:]CURRent[:LEVel][:IMMediate][:AMPlitude], MEASure[:SCALar]:CURRent[:DC]?,
# OUTPut[:STATe]
_OPTIONAL = {"SOUR", "LEV", "IMM", "AMP", "SCAL", "DC", "STAT"}
# the headers the manual lists (short nodes): an optional node elsewhere is undefined (-113)
_HEADERS = re.compile(r"(SOUR:)?(FUNC:MODE|(CURR|VOLT)(:LEV)?(:IMM)?(:AMP)?)"
                      r"|MEAS(:SCAL)?:(CURR|VOLT)(:DC)?|OUTP(:STAT)?|SYST:(ERR|BEEP)")
_RATING = re.compile(r"^BOP\s*(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)", re.IGNORECASE)


def rating(model: str) -> tuple[float, float]:
    """'BOP 20-5M' -> (20.0, 5.0): the supply's ± voltage and current. ValueError if not a BOP."""
    match = _RATING.match(model.strip())
    if match is None:
        raise ValueError(f"not a Kepco BOP model: {model!r} (expected 'BOP <volts>-<amps>')")
    return float(match.group(1)), float(match.group(2))


def _short(node: str) -> str | None:
    node = node.upper()
    for long, short in _NODES.items():
        if node in (long, short):
            return short
    return None


class KepcoBOPEmulator(Emulator):
    """A Kepco BOP in SCPI, one coil axis of the shared coil model."""

    name = "kepco_bop"

    def __init__(
        self,
        coil_model: CoilModel,
        axis_index: int,
        *,
        model: str = "BOP 20-5M",
        idn: str | None = None,
    ) -> None:
        if axis_index not in (0, 1, 2):
            raise ValueError(f"axis_index must be 0, 1 or 2, got {axis_index}")
        self.model = coil_model
        self.axis = axis_index
        self.max_voltage, self.max_current = rating(model)
        self.idn = idn or f"KEPCO,{model},E{4711 + axis_index},1.66-1.66"
        self.name = f"kepco_bop[{'xyz'[axis_index]}]"
        self.status = ScpiStatus()
        self.errors = self.status.errors  # the SCPI error queue
        self._reset()

    def _reset(self) -> None:
        """*RST: voltage mode, 0 V, current limit at the rating, output off."""
        self.mode = "VOLT"
        self.current_setting = 0.0
        self.voltage_setting = 0.0
        self.limit_current = self.max_current
        self.model.set_output(self.axis, False)
        self._apply()

    def _apply(self) -> None:
        """Drive the coil from the settings of the present mode."""
        r = self.model.resistance
        amps_max = min(self.model.rating, self.max_current)
        if self.mode == "CURR":
            self.model.set_voltage_limit(self.axis, abs(self.voltage_setting))
            self.model.set_current(self.axis, max(-amps_max, min(amps_max, self.current_setting)))
        else:
            limit = min(abs(self.limit_current), amps_max)
            self.model.set_voltage_limit(self.axis, self.max_voltage)
            self.model.set_current(self.axis, max(-limit, min(limit, self.voltage_setting / r)))

    def _error(self, code: int, text: str) -> None:
        self.status.error(code, text)

    def handle(self, message: str) -> str | None:
        replies = []
        for command in message_units(message):
            reply = self._one(command)
            if reply is not None:
                replies.append(reply)
        return ";".join(replies) if replies else None

    def _one(self, command: str) -> str | None:
        header, _, arg = command.partition(" ")
        arg = arg.strip()
        upper = header.upper()
        if upper.startswith("*"):
            return self._common(upper, arg)
        query = upper.endswith("?")
        nodes = [_short(n) for n in header.rstrip("?").lstrip(":").split(":")]
        if None in nodes or not _HEADERS.fullmatch(":".join(n or "" for n in nodes)):
            self._error(-113, "Undefined header")
            return None
        path = ":".join(n for n in nodes if n not in _OPTIONAL) + ("?" if query else "")
        handler = {
            "FUNC:MODE": self._set_mode,
            "FUNC:MODE?": lambda _: "1" if self.mode == "CURR" else "0",
            "CURR": self._set_current,
            "CURR?": lambda _: number_reply(self._current_value(), ".6E"),
            "VOLT": self._set_voltage,
            "VOLT?": lambda _: number_reply(self.voltage_setting, ".6E"),
            "MEAS:CURR?": lambda _: number_reply(self.model.measured_current(self.axis), ".6E"),
            "MEAS:VOLT?": lambda _: number_reply(self.model.voltage(self.axis), ".6E"),
            "OUTP": self._set_output,
            "OUTP?": lambda _: "1" if self.model.output(self.axis) else "0",
            "SYST:ERR?": self._next_error,
            "SYST:BEEP": lambda _: None,
        }.get(path)
        if handler is None:
            self._error(-113, "Undefined header")
            return None
        return handler(arg)

    def _current_value(self) -> float:
        return self.current_setting if self.mode == "CURR" else self.limit_current

    def _common(self, header: str, arg: str) -> str | None:
        if header == "*IDN?":
            return self.idn
        if header == "*OPT?":
            return "0"  # no options installed
        if header == "*RST":
            self._reset()
            return None
        if header == "*STB?":
            self._collect_fault()
        if header == "*CLS":
            self.model.pop_fault(self.axis)
        reply = self.status.common(header, arg)
        if reply is UNHANDLED:
            self._error(-113, "Undefined header")
            return None
        return reply  # type: ignore[return-value]

    def _number(self, arg: str) -> float | None:
        if not arg:
            self._error(-109, "Missing parameter")
            return None
        if arg.upper() in ("MIN", "MAX"):  # not emulated: refused, never taken as a value
            self._error(-224, "Illegal parameter value")
            return None
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
        self._apply()

    def _set_current(self, arg: str) -> None:
        value = self._number(arg)
        if value is None:
            return
        if abs(value) > min(self.max_current, self.model.rating):
            self._error(-222, "Data out of range")
            return
        if self.mode == "CURR":
            self.current_setting = value
        else:  # kept as programmed (CURR? returns it), acting as the limit ±|value|
            self.limit_current = value
        self._apply()

    def _set_voltage(self, arg: str) -> None:
        value = self._number(arg)
        if value is None:
            return
        if abs(value) > self.max_voltage:
            self._error(-222, "Data out of range")
            return
        self.voltage_setting = value
        self._apply()

    def _set_output(self, arg: str) -> None:
        state = arg.upper()
        if state not in ("ON", "OFF", "1", "0"):
            self._error(-224, "Illegal parameter value")
            return
        self.model.set_output(self.axis, state in ("ON", "1"))

    def _collect_fault(self) -> None:
        fault = self.model.pop_fault(self.axis)
        if fault is not None:
            self._error(-300, f"Device-specific error; {fault}")

    def _next_error(self, _arg: str) -> str:
        self._collect_fault()
        return self.status.next_error()
