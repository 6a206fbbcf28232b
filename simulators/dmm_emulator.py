"""A scanning digital multimeter (Agilent/Keysight 34970A style) reading the simulated fluxgate.

SCPI, case-insensitive, long or short node names, several commands joined by ';':
`*IDN?`, `*RST`, `*CLS`, `CONF:VOLT:DC [range[,resolution],](@list)` (configures the channels
for DC volts and makes them the scan list), `ROUT:SCAN (@list)`, `READ?` (one reading per
channel of the scan list, comma-separated), `MEAS:VOLT:DC? [range[,resolution],](@list)`
(configure and read), `SYST:ERR?` (`+0,"No error"` when the queue is empty).

Ranges 0.1, 1, 10, 100 and 300 V (AUTO, MIN, MAX, DEF accepted), each reading to 120 %; a
reading beyond reads +9.90000000E+37, as the instrument shows an overload. Errors queued: -113
undefined header, -222 data out of range, -221 settings conflict (READ? with no scan list),
-224 illegal parameter value. The fluxgate's x, y, z outputs are wired to the profile's three
channels; other channels read a few microvolts of noise.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np

from simulators.emulator import Emulator

IDN = "Agilent Technologies,34970A,MY44021523,13-2-2"
RANGES = (0.1, 1.0, 10.0, 100.0, 300.0)
OVERLOAD = 9.9e37
_OPEN_NOISE = 3e-6  # V RMS on an unwired channel
_HEADERS = {  # long or short node -> short
    "CONFIGURE": "CONF", "CONF": "CONF", "MEASURE": "MEAS", "MEAS": "MEAS",
    "VOLTAGE": "VOLT", "VOLT": "VOLT", "DC": "DC", "ROUTE": "ROUT", "ROUT": "ROUT",
    "SCAN": "SCAN", "READ": "READ", "SYSTEM": "SYST", "SYST": "SYST", "ERROR": "ERR",
    "ERR": "ERR",
}  # fmt: skip
_CHANNEL_LIST = re.compile(r"^\(@\s*(\d+(?:\s*[,:]\s*\d+)*)\s*\)$")


class _ScpiError(Exception):
    def __init__(self, code: int, text: str) -> None:
        self.code, self.text = code, text
        super().__init__(f"{code},{text}")


def parse_channel_list(text: str) -> list[int]:
    """'(@101,102,105:107)' -> [101, 102, 105, 106, 107]; _ScpiError if malformed."""
    match = _CHANNEL_LIST.match(text.strip())
    if match is None:
        raise _ScpiError(-224, '"Illegal parameter value"')
    channels: list[int] = []
    for part in match.group(1).split(","):
        if ":" in part:
            first, last = (int(v) for v in part.split(":"))
            if last < first:
                raise _ScpiError(-224, '"Illegal parameter value"')
            channels.extend(range(first, last + 1))
        else:
            channels.append(int(part))
    return channels


class DMMEmulator(Emulator):
    """The multimeter: `volts(now)` gives the fluxgate's (3,) outputs wired to `channels`."""

    name = "dmm"

    def __init__(
        self,
        volts: Callable[[float], np.ndarray],
        clock_now: Callable[[], float],
        channels: Sequence[int],
        *,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.volts = volts
        self.now = clock_now
        self.wiring = {int(c): axis for axis, c in enumerate(channels)}
        self.rng = rng if rng is not None else np.random.default_rng()
        self.errors: deque[tuple[int, str]] = deque(maxlen=20)
        self._reset()

    def _reset(self) -> None:
        self.scan: list[int] = []
        self.range = RANGES[2]
        self.autorange = True

    def handle(self, message: str) -> str | None:
        replies = []
        for command in message.split(";"):
            if not command.strip():
                continue
            try:
                reply = self._one(command.strip())
            except _ScpiError as exc:
                self.errors.append((exc.code, exc.text))
                continue
            if reply is not None:
                replies.append(reply)
        return ";".join(replies) if replies else None

    def _one(self, command: str) -> str | None:
        head, _, rest = command.partition(" ")
        upper = head.upper()
        if upper == "*IDN?":
            return IDN
        if upper == "*RST":
            self._reset()
            return None
        if upper == "*CLS":
            self.errors.clear()
            return None
        query = upper.endswith("?")
        nodes = []
        for node in upper.rstrip("?").lstrip(":").split(":"):
            short = _HEADERS.get(node)
            if short is None:
                raise _ScpiError(-113, '"Undefined header"')
            nodes.append(short)
        path = ":".join(nodes)
        if path == "CONF:VOLT:DC" and not query:
            self._configure(rest)
            return None
        if path == "MEAS:VOLT:DC" and query:
            self._configure(rest)
            return self._read()
        if path == "ROUT:SCAN" and not query:
            self.scan = parse_channel_list(rest)
            return None
        if path == "READ" and query:
            return self._read()
        if path == "SYST:ERR" and query:
            if not self.errors:
                return '+0,"No error"'
            code, text = self.errors.popleft()
            return f"{code:+d},{text}"
        raise _ScpiError(-113, '"Undefined header"')

    def _configure(self, rest: str) -> None:
        at = rest.find("(@")
        if at < 0:
            raise _ScpiError(-224, '"Illegal parameter value"')
        channels = parse_channel_list(rest[at:])
        params = [p.strip().upper() for p in rest[:at].split(",") if p.strip()]
        if len(params) > 2:
            raise _ScpiError(-224, '"Illegal parameter value"')
        if params:
            self._set_range(params[0])
        self.scan = channels

    def _set_range(self, text: str) -> None:
        if text in ("AUTO", "DEF"):
            self.autorange = True
            return
        self.autorange = False
        if text in ("MIN", "MAX"):
            self.range = RANGES[0] if text == "MIN" else RANGES[-1]
            return
        try:
            value = float(text)
        except ValueError:
            raise _ScpiError(-224, '"Illegal parameter value"') from None
        fits = [r for r in RANGES if r >= value]
        if not fits or value <= 0:
            raise _ScpiError(-222, '"Data out of range"')
        self.range = fits[0]

    def _read(self) -> str:
        if not self.scan:
            raise _ScpiError(-221, '"Settings conflict"')
        outputs = self.volts(self.now())
        values = []
        for channel in self.scan:
            axis = self.wiring.get(channel)
            v = float(outputs[axis]) if axis is not None else self.rng.normal(0.0, _OPEN_NOISE)
            limit = RANGES[-1] if self.autorange else self.range
            values.append(OVERLOAD if abs(v) > 1.2 * limit else v)
        return ",".join(f"{v:+.8E}" for v in values)
