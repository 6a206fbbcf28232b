"""The IEEE 488.2 status reporting and SCPI error queue that SCPI instruments share.

`ScpiStatus` holds the error queue (read by `SYST:ERR?`, `0,"No error"` when empty; `depth`
entries, the last one replaced by -350 "Queue overflow" when it fills), the standard event
status register (ESR: bit 0 operation complete, 2 query error, 3 device-dependent error,
4 execution error, 5 command error; each queued error sets the bit of its class), its enable
mask (ESE), the service request enable mask (SRE) and the status byte (bit 2 error queue not
empty, bit 5 ESB = ESR & ESE, bit 6 MSS = STB & SRE). `common(header, arg)` answers the
common commands *CLS, *ESE, *ESE?, *ESR?, *OPC, *OPC?, *SRE, *SRE?, *STB?, *WAI, *TST?.
"""

from __future__ import annotations

from collections import deque

OPC, QYE, DDE, EXE, CME = 1, 4, 8, 16, 32
UNHANDLED = object()  # `common` did not know the header


class ScpiStatus:
    """Error queue and status registers of one SCPI instrument."""

    def __init__(self, *, depth: int = 16, no_error: str = '0,"No error"') -> None:
        self.depth = depth
        self.no_error = no_error
        self.errors: deque[tuple[int, str]] = deque()
        self.ese = 0
        self.sre = 0
        self.esr = 0

    def error(self, code: int, text: str) -> None:
        """Queue an error and set the event bit of its class."""
        if -199 <= code <= -100:
            self.esr |= CME
        elif -299 <= code <= -200:
            self.esr |= EXE
        elif -399 <= code <= -300 or code > 0:
            self.esr |= DDE
        elif -499 <= code <= -400:
            self.esr |= QYE
        if len(self.errors) < self.depth - 1:
            self.errors.append((code, text))
        elif len(self.errors) == self.depth - 1:
            self.errors.append((-350, "Queue overflow"))

    def next_error(self) -> str:
        if not self.errors:
            return self.no_error
        code, text = self.errors.popleft()
        return f'{code:+d},"{text}"' if self.no_error.startswith("+") else f'{code},"{text}"'

    def status_byte(self) -> int:
        stb = (4 if self.errors else 0) | (32 if self.esr & self.ese else 0)
        return stb | 64 if stb & self.sre else stb

    def clear(self) -> None:
        """*CLS: the error queue and the event register."""
        self.errors.clear()
        self.esr = 0

    def common(self, header: str, arg: str) -> object:
        """A reply (str), None for a command without one, or UNHANDLED."""
        if header == "*CLS":
            self.clear()
            return None
        if header == "*OPC":
            self.esr |= OPC  # every operation completes at once
            return None
        if header == "*WAI":
            return None
        if header in ("*ESE", "*SRE"):
            value = self._mask(arg)
            if value is not None:
                if header == "*ESE":
                    self.ese = value
                else:
                    self.sre = value & ~64  # bit 6 (MSS) cannot be enabled
            return None
        queries = {
            "*OPC?": lambda: "1",
            "*TST?": lambda: "0",  # self-test passed
            "*ESE?": lambda: str(self.ese),
            "*SRE?": lambda: str(self.sre),
            "*STB?": lambda: str(self.status_byte()),
            "*ESR?": self._read_esr,
        }
        if header in queries:
            return queries[header]()
        return UNHANDLED

    def _read_esr(self) -> str:
        value, self.esr = self.esr, 0
        return str(value)

    def _mask(self, arg: str) -> int | None:
        if not arg:
            self.error(-109, "Missing parameter")
            return None
        try:
            value = int(float(arg))
        except (ValueError, OverflowError):
            self.error(-104, "Data type error")
            return None
        if not 0 <= value <= 255:
            self.error(-222, "Data out of range")
            return None
        return value
