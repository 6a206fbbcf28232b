"""A scanning digital multimeter (Agilent/Keysight 34970A) reading the simulated fluxgate.

SCPI as in the 34970A User's Guide (command reference), case-insensitive, long or short node
names, several commands joined by ';' (each header after the first read from the path of the
one before it, as the instrument reads them: `simulators.scpi_path`):
`CONF:VOLT:DC [range[,resolution],](@list)` (configures the channels for DC volts and makes
them the scan list), `CONF? (@list)`, `ROUT:SCAN (@list)`, `ROUT:SCAN?` (a definite-length
block, "#214(@101,102,103)"), `INIT` (one sweep of the scan list into reading memory),
`FETC?` (the readings in memory), `READ?` (INIT then FETC?), `MEAS:VOLT:DC? [range,](@list)`,
`VOLT:DC:NPLC <n>,(@list)` and `VOLT:DC:NPLC? (@list)`, `FORM:READ:CHAN|TIME|UNIT|ALAR
ON|OFF` and their queries (what each reading carries), `SYST:ERR?` (`+0,"No error"` when
empty), and the common commands `*IDN?`, `*RST`, `*CLS`, `*OPC`, `*OPC?`, `*WAI`, `*TST?`,
`*ESR?`, `*ESE`, `*SRE`, `*STB?`.

Channels are numbered by slot and channel, as on the instrument: 101-140 in slot 1, 201-240
in slot 2, 301-340 in slot 3; any other number is refused with -222 "Data out of range".
Ranges 0.1, 1, 10, 100 and 300 V (AUTO, MIN, MAX, DEF accepted), each reading to 120 %; a
reading beyond reads +9.90000000E+37, as the instrument shows an overload. Integration times
0.02 to 200 power-line cycles (NPLC; a value between the steps takes the next one up). Other
errors queued: -113 undefined header, -221 settings conflict (a scan with no scan list),
-224 illegal parameter value, -230 data stale (FETC? with no readings). The fluxgate's x, y,
z outputs are wired to the profile's three channels; other channels read a few microvolts of
noise, less the longer they integrate.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import numpy as np

from simulators.emulator import Emulator, number_reply
from simulators.scpi_path import message_units
from simulators.scpi_status import UNHANDLED, ScpiStatus

IDN = "Agilent Technologies,34970A,MY44021523,13-2-2"
RANGES = (0.1, 1.0, 10.0, 100.0, 300.0)
OVERLOAD = 9.9e37
NPLCS = (0.02, 0.2, 1.0, 2.0, 10.0, 20.0, 100.0, 200.0)
_OPEN_NOISE = 3e-6  # V RMS on an unwired channel at 1 NPLC
_HEADERS = {  # long or short node -> short
    "CONFIGURE": "CONF", "CONF": "CONF", "MEASURE": "MEAS", "MEAS": "MEAS",
    "VOLTAGE": "VOLT", "VOLT": "VOLT", "DC": "DC", "ROUTE": "ROUT", "ROUT": "ROUT",
    "SCAN": "SCAN", "READ": "READ", "SYSTEM": "SYST", "SYST": "SYST", "ERROR": "ERR",
    "ERR": "ERR", "INITIATE": "INIT", "INIT": "INIT", "FETCH": "FETC", "FETC": "FETC",
    "NPLCYCLES": "NPLC", "NPLC": "NPLC", "FORMAT": "FORM", "FORM": "FORM",
    "READING": "READ", "CHANNEL": "CHAN", "CHAN": "CHAN", "TIME": "TIME", "UNIT": "UNIT",
    "ALARM": "ALAR", "ALAR": "ALAR",
}  # fmt: skip
FORMAT_FLAGS = ("UNIT", "TIME", "CHAN", "ALAR")
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
            _check_channel(first)
            _check_channel(last)
            channels.extend(c for c in range(first, last + 1) if 1 <= c % 100 <= 40)
        else:
            channels.append(_check_channel(int(part)))
    return channels


def _check_channel(channel: int) -> int:
    """Slot (1-3) times 100 plus channel (1-40): 101-140, 201-240, 301-340."""
    if not (1 <= channel // 100 <= 3 and 1 <= channel % 100 <= 40):
        raise _ScpiError(-222, '"Data out of range"')
    return channel


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
        self.status = ScpiStatus(depth=20, no_error='+0,"No error"')
        self._reset()

    def _reset(self) -> None:
        self.scan: list[int] = []
        self.config: dict[int, tuple[float | None, float]] = {}  # channel -> (range, NPLC)
        self.format = dict.fromkeys(FORMAT_FLAGS, False)
        self.memory: list[tuple[float, float, int]] = []  # (volts, time, channel)
        self.scan_start = self.now()

    def handle(self, message: str) -> str | None:
        replies = []
        for command in message_units(message):
            try:
                reply = self._one(command)
            except _ScpiError as exc:
                self.status.error(exc.code, exc.text.strip('"'))
                continue
            if reply is not None:
                replies.append(reply)
        return ";".join(replies) if replies else None

    def _one(self, command: str) -> str | None:
        head, _, rest = command.partition(" ")
        upper = head.upper()
        rest = rest.strip()
        if upper.startswith("*"):
            return self._common(upper, rest)
        query = upper.endswith("?")
        nodes = []
        for node in upper.rstrip("?").lstrip(":").split(":"):
            short = _HEADERS.get(node)
            if short is None:
                raise _ScpiError(-113, '"Undefined header"')
            nodes.append(short)
        path = ":".join(nodes) + ("?" if query else "")
        if path == "CONF:VOLT:DC":
            self._configure(rest)
            return None
        if path == "CONF?":
            return ",".join(self._conf_text(c) for c in self._channels(rest))
        if path == "MEAS:VOLT:DC?":
            self._configure(rest)
            return self._read()
        if path == "ROUT:SCAN":
            self.scan = parse_channel_list(rest)
            return None
        if path == "ROUT:SCAN?":
            text = "(@" + ",".join(str(c) for c in self.scan) + ")"
            return f"#{len(str(len(text)))}{len(text)}{text}"
        if path == "INIT":
            self._initiate()
            return None
        if path == "FETC?":
            return self._fetch()
        if path == "READ?":
            return self._read()
        if path in ("VOLT:DC:NPLC", "VOLT:NPLC"):
            self._set_nplc(rest)
            return None
        if path in ("VOLT:DC:NPLC?", "VOLT:NPLC?"):
            return ",".join(number_reply(self._setting(c)[1], "+.8E") for c in self._channels(rest))
        if len(nodes) == 3 and nodes[:2] == ["FORM", "READ"] and nodes[2] in FORMAT_FLAGS:
            if query:
                return "1" if self.format[nodes[2]] else "0"
            if rest.upper() not in ("ON", "OFF", "1", "0"):
                raise _ScpiError(-224, '"Illegal parameter value"')
            self.format[nodes[2]] = rest.upper() in ("ON", "1")
            return None
        if path == "SYST:ERR?":
            return self.status.next_error()
        raise _ScpiError(-113, '"Undefined header"')

    def _common(self, header: str, rest: str) -> str | None:
        if header == "*IDN?":
            return IDN
        if header == "*RST":
            self._reset()
            return None
        reply = self.status.common(header, rest)
        if reply is UNHANDLED:
            raise _ScpiError(-113, '"Undefined header"')
        return reply  # type: ignore[return-value]

    def _channels(self, rest: str) -> list[int]:
        at = rest.find("(@")
        if at < 0:
            raise _ScpiError(-109, '"Missing parameter"')
        return parse_channel_list(rest[at:])

    def _setting(self, channel: int) -> tuple[float | None, float]:
        return self.config.get(channel, (None, 1.0))

    def _conf_text(self, channel: int) -> str:
        rng, nplc = self._setting(channel)
        shown = rng if rng is not None else RANGES[2]
        resolution = shown * 3e-6 / math.sqrt(nplc)
        return f'"VOLT {shown:+.6E},{resolution:+.6E}"'

    def _configure(self, rest: str) -> None:
        channels = self._channels(rest)
        params = [p.strip().upper() for p in rest[: rest.find("(@")].split(",") if p.strip()]
        if len(params) > 2:
            raise _ScpiError(-224, '"Illegal parameter value"')
        rng = self._range(params[0]) if params else None
        for c in channels:
            self.config[c] = (rng, 1.0)
        self.scan = channels

    def _range(self, text: str) -> float | None:
        if text in ("AUTO", "DEF"):
            return None
        if text in ("MIN", "MAX"):
            return RANGES[0] if text == "MIN" else RANGES[-1]
        try:
            value = float(text)
        except ValueError:
            raise _ScpiError(-224, '"Illegal parameter value"') from None
        fits = [r for r in RANGES if r >= value]
        if not fits or value <= 0:
            raise _ScpiError(-222, '"Data out of range"')
        return fits[0]

    def _set_nplc(self, rest: str) -> None:
        channels = self._channels(rest)
        text = rest[: rest.find("(@")].strip().rstrip(",").strip().upper()
        if text in ("MIN", "MAX", "DEF"):
            nplc = {"MIN": NPLCS[0], "MAX": NPLCS[-1], "DEF": 1.0}[text]
        else:
            try:
                value = float(text)
            except ValueError:
                raise _ScpiError(-224, '"Illegal parameter value"') from None
            fits = [n for n in NPLCS if n >= value * (1 - 1e-9)]
            if not fits or value <= 0:
                raise _ScpiError(-222, '"Data out of range"')
            nplc = fits[0]
        for c in channels:
            self.config[c] = (self._setting(c)[0], nplc)

    def _initiate(self) -> None:
        if not self.scan:
            raise _ScpiError(-221, '"Settings conflict"')
        now = self.now()
        if not self.memory:
            self.scan_start = now
        outputs = self.volts(now)
        self.memory = []
        for channel in self.scan:
            rng, nplc = self._setting(channel)
            axis = self.wiring.get(channel)
            if axis is not None:
                v = float(outputs[axis])
            else:
                v = float(self.rng.normal(0.0, _OPEN_NOISE / math.sqrt(nplc)))
            limit = RANGES[-1] if rng is None else rng
            self.memory.append((OVERLOAD if abs(v) > 1.2 * limit else v, now, channel))

    def _fetch(self) -> str:
        if not self.memory:
            raise _ScpiError(-230, '"Data stale"')
        return ",".join(self._formatted(r) for r in self.memory)

    def _formatted(self, reading: tuple[float, float, int]) -> str:
        volts, t, channel = reading
        text = number_reply(volts, "+.8E") + (" VDC" if self.format["UNIT"] else "")
        fields = [text]
        if self.format["TIME"]:
            fields.append(f"{t - self.scan_start:013.3f}")
        if self.format["CHAN"]:
            fields.append(str(channel))
        if self.format["ALAR"]:
            fields.append("0")
        return ",".join(fields)

    def _read(self) -> str:
        self._initiate()
        return self._fetch()
