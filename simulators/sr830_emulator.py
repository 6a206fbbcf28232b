"""Emulator of the Stanford Research SR830 DSP lock-in amplifier (GPIB or RS-232).

Follows the SR830 manual, chapter 5 (Remote Programming): reference and phase (FMOD, PHAS,
HARM, FREQ, SLVL, RSLP), input and filters (ISRC, IGND, ICPL, ILIN), gain and time constant
(SENS, RMOD, OFLT, OFSL, SYNC), displays and offsets (DDEF, FPOP, OEXP, AOFF), aux I/O (OAUX?,
AUXV), auto functions (AGAN, ARSV, APHS), setups (SSET, RSET), data storage (SRAT, SEND, TRIG,
TSTR, STRT, STRD, PAUS, REST, FAST, SPTS?, TRCA?, TRCB?, TRCL?), data transfer (OUTP?, OUTR?,
SNAP? with parameters 1..11), interface (OUTX, OVRM, LOCL) and status (*CLS, *ESE, *ESR?,
*SRE, *STB?, *PSC, ERRE, ERRS?, LIAE, LIAS?); docs/emulated_commands/srs_lockins.md has the
table and what is left out.

The data buffer samples the CH1 and CH2 displays at the SRAT rate in simulated time (or one
point per trigger) and holds 16383 points, stopping when full in one-shot mode (SEND 0) or
overwriting the oldest in loop mode (SEND 1). Points are kept in the instrument's own 4-byte
format (a 16-bit mantissa m and exponent e, value m · 2^(e−124)), so TRCA?, TRCB? and TRCL?
return the same values. A binary transfer over GPIB ends with EOI; over a socket there is no
EOI, so the emulator sends no terminator and, of the representations of a point that differ
by at most a few units of its 15-bit mantissa (up to 0.4 % where the float's second byte
would be a line feed), stores one whose TRCB? and TRCL? bytes hold no line feed: a client
reading to its terminator or to its timeout gets every byte.
"""

from __future__ import annotations

import math
import struct
from collections import deque
from typing import ClassVar

import numpy as np

from simulators.emulator import BinaryReply, number_reply
from simulators.lockin_emulator import (
    BadCommand,
    BadValue,
    SignalSource,
    SRSLockInEmulator,
    decade_values,
    in_range,
    index,
    no_args,
    one,
)
from smm_daq.clock import Clock

SR830_SENSITIVITIES = decade_values((2, 5, 10), -9, 27)  # SENS 0..26: 2 nV .. 1 V
SR830_TIME_CONSTANTS = decade_values((10, 30), -6, 20)  # OFLT 0..19: 10 µs .. 30 ks
SR830_SAMPLE_RATES = tuple(0.0625 * 2**i for i in range(14))  # SRAT 0..13; 14 is trigger
SRAT_TRIGGER = 14
BUFFER_POINTS = 16383
# Dynamic reserve (RMOD 0 high, 1 normal, 2 low noise): the input overloads above the full
# scale times this factor, and never above the 1 V input limit.
RESERVE_FACTORS = (1e5, 1e3, 1e1)
CURRENT_GAINS = {2: 1e6, 3: 1e8}  # ISRC 2 I (1 MΩ), ISRC 3 I (100 MΩ): V/A
RANGE_EDGE = 200.0  # Hz: the detection frequency ranges switch here (LIAS bit 4)
_STRD_DELAY = 0.5  # s
_SETTINGS = (
    "sens_index", "tau_index", "slope_index", "frequency", "amplitude", "phase", "harmonic",
    "input_config", "dc_coupled", "shield_grounded", "sync_filter", "reference_internal",
    "line_notch", "reserve", "ref_trigger", "offsets", "expands", "aux_outputs", "displays",
    "front_outputs", "sample_rate_index", "loop", "trigger_starts",
)  # fmt: skip


def point_words(value: float) -> tuple[int, int]:
    """The SR830's (mantissa, exponent) for a value, with a 15-bit mantissa where it fits."""
    if value == 0.0 or not math.isfinite(value):
        return 0, 0
    e = min(max(math.floor(math.log2(abs(value))) + 124 - 14, 0), 248)
    m = round(value * 2.0 ** (124 - e))
    if abs(m) > 32767:
        e = min(e + 1, 248)
        m = max(min(round(value * 2.0 ** (124 - e)), 32767), -32768)
    return m, e


_BAND_UNITS = 300  # mantissa units searched: more than half the widest 0x0A band
_NUDGES = sorted(range(-_BAND_UNITS, _BAND_UNITS + 1), key=lambda d: (abs(d), -d))


def storable_point(value: float) -> tuple[int, int]:
    """The nearest point whose TRCL? and TRCB? bytes hold no line feed.

    Mostly a few units of the mantissa away; but where the 4-byte float's second byte is
    0x0A (a band of 1/128 of each octave) the nearest such point is at the band's edge, up to
    0.4 % away, never zero."""
    m, e = point_words(value)
    for dm in _NUDGES:
        mm = m + dm
        if not -32768 <= mm <= 32767:
            continue
        as_float = struct.pack("<f", mm * 2.0 ** (e - 124))
        if b"\n" not in struct.pack("<hh", mm, e) and b"\n" not in as_float:
            return mm, e
    return 0, 0


def point_value(words: tuple[int, int]) -> float:
    m, e = words
    return m * 2.0 ** (e - 124)


class SR830Emulator(SRSLockInEmulator):
    """The SR830 DSP lock-in (GPIB or RS-232)."""

    MODEL = "SR830"
    IDN = "Stanford_Research_Systems,SR830,s/n86514,ver1.07"
    SENSITIVITIES = SR830_SENSITIVITIES
    TIME_CONSTANTS = SR830_TIME_CONSTANTS
    FREQ_RANGE = (0.001, 102000.0)
    AMPLITUDE_RANGE = (0.004, 5.0)
    MAX_DETECTION_FREQUENCY = 102000.0
    MAX_HARMONIC = 19999
    PHASE_RANGE = (-360.0, 729.99)
    PHASE_STEP = 0.01
    OFFSET_LIMIT = 105.0
    DEFAULTS: ClassVar[dict[str, float]] = {
        "sens": 26,
        "tau": 8,
        "slope": 1,
        "freq": 1000.0,
        "amplitude": 1.0,
    }
    OVERLOAD_BITS = (0, 2)  # LIAS bit 0 INPUT/RESRV, bit 2 OUTPT
    TRIGGER_BIT = 6
    RANGE_BIT = 4
    INPUT_LIMIT = 1.0  # V: beyond it the input overloads whatever the sensitivity or reserve

    def __init__(
        self, clock: Clock, source: SignalSource, *, rng: np.random.Generator | None = None
    ) -> None:
        self.outx = 1  # replies to GPIB (1) or RS-232 (0)
        # The port the client is wired to ("gpib", "rs232"): replies to the other one never
        # reach it, as on the instrument. None: whichever OUTX names (one served socket
        # stands for both ports).
        self.port: str | None = None
        self.override_remote = False
        self.local_state = 0
        self.power_on_clear = True
        self._errs = 0
        self._erre = 0
        self._setups: dict[int, dict[str, object]] = {}
        self._points: deque[tuple[tuple[int, int], tuple[int, int]]] = deque()
        self._storage = "reset"  # reset, running, paused or done
        self._next_sample = math.inf
        self.fast_mode = 0
        super().__init__(clock, source, rng=rng)

    def _reset(self) -> None:
        super()._reset()
        self.input_config = 0
        self.line_notch = 0
        self.reserve = 1
        self.ref_trigger = 0
        self.displays = [[0, 0], [0, 0]]  # (display, ratio) of CH1 and CH2
        self.front_outputs = [1, 1]  # FPOP: 0 the display, 1 X (CH1) or Y (CH2)
        self.sample_rate_index = 4  # 1 Hz
        self.loop = True
        self.trigger_starts = False
        self._reset_buffer()

    # --- settings with physics -----------------------------------------------------------

    def input_limit(self) -> float:
        volts = self.SENSITIVITIES[self.sens_index]
        return min(self.INPUT_LIMIT, volts * RESERVE_FACTORS[self.reserve])

    def _set_input(self, config: int) -> None:
        self.input_config = config
        self.differential = config == 1
        self.current_gain = CURRENT_GAINS.get(config, 0.0)

    def _detection_changes(self, frequency: float, harmonic: int) -> None:
        before = self.frequency * self.harmonic >= RANGE_EDGE
        if before != (frequency * harmonic >= RANGE_EDGE):
            self._lias |= 1 << self.RANGE_BIT

    def _amplitude(self, value: float) -> float:
        return round(value / 0.002) * 0.002  # SLVL resolution 2 mV

    # --- outputs and displays ------------------------------------------------------------

    def _display(self, channel: int, values: dict[str, float]) -> float:
        """CH1 (channel 0) or CH2 (1) as the display shows it, ratio included."""
        shown, ratio = self.displays[channel]
        if shown == 0:
            value = values["XY"[channel]]
        elif shown == 1:
            value = values["R"] if channel == 0 else values["T"]
        elif shown == 2:
            value = self.noise_density()
        else:
            value = self.aux_inputs[2 * channel + shown - 3]
        if ratio:
            aux = self.aux_inputs[2 * channel + ratio - 1]
            value = value / aux if abs(aux) >= 1.0 / 3000.0 else 0.0
        return value

    def _snap_value(self, token: str, values: dict[str, float]) -> float:
        p = index(token, 11, 1)
        if p <= 4:
            return values["XYRT"[p - 1]]
        if p <= 8:
            return round(self.aux_inputs[p - 5] * 3000.0) / 3000.0
        if p == 9:
            return self.frequency * self.harmonic
        return self._display(p - 10, values)

    def _snap(self, args: list[str]) -> str:
        if not 2 <= len(args) <= 6:
            raise BadValue(",".join(args))
        values = self.outputs()
        return ",".join(number_reply(self._snap_value(a, values), ".6e") for a in args)

    def _outp(self, args: list[str]) -> str:
        p = index(one(args), 4, 1)
        return number_reply(self.outputs()["XYRT"[p - 1]], ".6e")

    def _outr(self, args: list[str]) -> str:
        channel = index(one(args), 2, 1) - 1
        return number_reply(self._display(channel, self.outputs()), ".6e")

    # --- data storage --------------------------------------------------------------------

    def _reset_buffer(self) -> None:
        self._points = deque(maxlen=BUFFER_POINTS if self.loop else None)
        self._storage = "reset"
        self._next_sample = math.inf

    def _start(self, at: float | None = None) -> None:
        if self._storage in ("running", "done"):
            return  # ignored while storing, and once a one-shot buffer is full
        self._storage = "running"
        now = self.clock.now() if at is None else at
        triggered = self.sample_rate_index == SRAT_TRIGGER
        self._next_sample = math.inf if triggered else now + 1 / self._rate()

    def _rate(self) -> float:
        return SR830_SAMPLE_RATES[self.sample_rate_index]

    def _pause(self) -> None:
        if self._storage == "running":
            self._storage = "paused"
            self._next_sample = math.inf

    def _sample_times(self, now: float) -> list[float]:
        if self._storage != "running" or self._next_sample > now:
            return []
        rate = self._rate()
        due = math.floor((now - self._next_sample) * rate + 1e-9) + 1
        first = 0
        room = BUFFER_POINTS - len(self._points)
        if self.loop and due > BUFFER_POINTS:
            first = due - BUFFER_POINTS  # older points would be overwritten before a read
        elif not self.loop:
            due = min(due, room)
        times = [self._next_sample + k / rate for k in range(first, due)]
        self._next_sample += due / rate
        return times

    def _store_sample(self, t: float) -> None:
        values = self.outputs_at_filter()
        self._points.append(
            (storable_point(self._display(0, values)), storable_point(self._display(1, values)))
        )
        if not self.loop and len(self._points) >= BUFFER_POINTS:
            self._storage = "done"
            self._next_sample = math.inf

    def _trigger(self, at: float | None = None) -> None:
        """A rising edge at TRIG IN (the TRIG command, or a wired cable at time `at`)."""
        t = self.clock.now() if at is None else at
        self._lias |= 1 << self.TRIGGER_BIT
        if self.trigger_starts and self._storage in ("reset", "paused"):
            self._start(t)
        elif self._storage == "running" and self.sample_rate_index == SRAT_TRIGGER:
            self._store_sample(t)

    def _trace(self, args: list[str]) -> list[tuple[int, int]]:
        if len(args) != 3:
            raise BadValue(",".join(args))
        channel = index(args[0], 2, 1) - 1
        start = index(args[1], BUFFER_POINTS)
        count = index(args[2], BUFFER_POINTS, 1)
        if start + count > len(self._points):
            raise BadValue(",".join(args))
        return [self._points[i][channel] for i in range(start, start + count)]

    def _trca(self, args: list[str]) -> str:
        return "".join(number_reply(point_value(w), "+.6e") + "," for w in self._trace(args))

    def _trcb(self, args: list[str]) -> BinaryReply:
        values = [point_value(w) for w in self._trace(args)]
        return BinaryReply(struct.pack(f"<{len(values)}f", *values).decode("latin-1"))

    def _trcl(self, args: list[str]) -> BinaryReply:
        words = [v for w in self._trace(args) for v in w]
        return BinaryReply(struct.pack(f"<{len(words)}h", *words).decode("latin-1"))

    # --- status --------------------------------------------------------------------------

    def status_byte(self) -> int:
        stb = (self._storage != "running" and self._storage != "paused") << 0
        stb |= 1 << 1  # IFC: no command execution in progress
        stb |= bool(self._errs & self._erre) << 2
        stb |= bool(self._lias & self._liae) << 3
        stb |= bool(self._esr & self._ese) << 5
        stb |= bool(stb & self._sre) << 6
        return stb

    def _clear_status(self) -> None:
        super()._clear_status()
        self._errs = 0

    def _execute(self, command: str) -> str | None:
        """The manual: commands "may contain any number of embedded space characters"; they
        are read with the spaces dropped ("P H A S ?", "phas 4 5"), as the instrument reads
        them (every argument of its commands is a number)."""
        return super()._execute("".join(command.split()))

    def handle(self, message: str) -> str | None:
        reply = super().handle(message)
        if self.port is not None and self.port != ("rs232" if self.outx == 0 else "gpib"):
            return None  # sent to the interface OUTX names, not the one the client is on
        return reply

    @property
    def reply_end(self) -> str:
        """A carriage return ends each reply on RS-232 (OUTX 0), a line feed on GPIB."""
        return "\r" if self.outx == 0 else "\n"

    @property
    def command_ends(self) -> bytes:
        """The manual: "The terminator must be a linefeed <lf> or carriage return <cr> on
        RS232, or a linefeed <lf> or EOI on GPIB": a CR ends a command but on the GPIB port
        (a socket standing for both ports takes it too)."""
        return b"\n" if self.port == "gpib" else b"\r\n"

    # --- commands ------------------------------------------------------------------------

    def _add_model_commands(self) -> None:
        add = self._add
        add("SENS", self.indexed("sens_index", len(self.SENSITIVITIES)))
        add("RMOD", self.indexed("reserve", 3))
        add("ILIN", self.indexed("line_notch", 4))
        add("RSLP", self.indexed("ref_trigger", 3))
        add("FMOD", self.flag("reference_internal"))
        add("ISRC", self._isrc)
        add("OUTX", self.indexed("outx", 2))
        add("OVRM", self.flag("override_remote"))
        add("LOCL", self.indexed("local_state", 3))
        add("*PSC", self.flag("power_on_clear"))
        add("ERRE", self._register("_erre"))
        add("ERRS", self._status("_errs"))
        add("SNAP", self.query_only(self._snap))
        add("OUTP", self.query_only(self._outp))
        add("OUTR", self.query_only(self._outr))
        add("OAUX", self._aux_input(1))
        add("AUXV", self._aux_output(1))
        add("DDEF", self._ddef)
        add("FPOP", self._fpop)
        add("OEXP", self._oexp)
        add("AOFF", self._aoff)
        add("AGAN", self.action(self._auto_gain))
        add("ARSV", self.action(self._auto_reserve))
        add("SSET", self._sset)
        add("RSET", self._rset)
        add("SRAT", self._srat)
        add("SEND", self._send)
        add("TSTR", self.flag("trigger_starts"))
        add("TRIG", self.action(lambda: self._trigger()))
        add("STRT", self.action(self._start))
        add("STRD", self.action(lambda: self._start(self.clock.now() + _STRD_DELAY)))
        add("PAUS", self.action(self._pause))
        add("REST", self.action(self._reset_buffer))
        add("FAST", self.indexed("fast_mode", 3))
        add("SPTS", self.reading(lambda: str(len(self._points))))
        add("TRCA", self.query_only(self._trca))
        add("TRCB", self.query_only(self._trcb))
        add("TRCL", self.query_only(self._trcl))

    def _isrc(self, query: bool, args: list[str]) -> str | None:
        if query:
            no_args(args)
            return str(self.input_config)
        self._set_input(index(one(args), 4))
        return None

    def _ddef(self, query: bool, args: list[str]) -> str | None:
        if query:
            shown, ratio = self.displays[index(one(args), 2, 1) - 1]
            return f"{shown},{ratio}"
        if len(args) != 3:
            raise BadValue(",".join(args))
        channel = index(args[0], 2, 1) - 1
        self.displays[channel] = [index(args[1], 5), index(args[2], 3)]
        return None

    def _fpop(self, query: bool, args: list[str]) -> str | None:
        if query:
            return str(self.front_outputs[index(one(args), 2, 1) - 1])
        if len(args) != 2:
            raise BadValue(",".join(args))
        self.front_outputs[index(args[0], 2, 1) - 1] = index(args[1], 2)
        return None

    def _oexp(self, query: bool, args: list[str]) -> str | None:
        if query:
            channel = index(one(args), 3, 1) - 1
            return f"{number_reply(self.offsets[channel], '.2f')},{self.expands[channel]}"
        if len(args) != 3:
            raise BadValue(",".join(args))
        channel = index(args[0], 3, 1) - 1
        offset = in_range(args[1], -self.OFFSET_LIMIT, self.OFFSET_LIMIT)
        expand = index(args[2], 3)
        self.offsets[channel] = round(offset, 2)
        self.expands[channel] = expand
        return None

    def _aoff(self, query: bool, args: list[str]) -> str | None:
        if query:
            raise BadCommand("AOFF has no query")
        self._auto_offset(index(one(args), 3, 1) - 1)
        return None

    def _auto_reserve(self) -> None:
        """The least reserve that does not overload the input now."""
        volts = float(self._input_volts([self.clock.now()])[0])
        for reserve in (2, 1, 0):
            self.reserve = reserve
            if not self._input_overloaded(volts):
                return

    def _sset(self, query: bool, args: list[str]) -> str | None:
        if query:
            raise BadCommand("SSET has no query")
        self._setups[index(one(args), 9, 1)] = {
            k: _copy(getattr(self, k)) for k in _SETTINGS
        }
        return None

    def _rset(self, query: bool, args: list[str]) -> str | None:
        if query:
            raise BadCommand("RSET has no query")
        setup = self._setups.get(index(one(args), 9, 1))
        if setup is None:
            raise BadValue(args[0])  # nothing saved there
        for key, value in setup.items():
            setattr(self, key, _copy(value))
        self._set_input(self.input_config)
        return None

    def _srat(self, query: bool, args: list[str]) -> str | None:
        if query:
            no_args(args)
            return str(self.sample_rate_index)
        value = index(one(args), 15)
        if self._storage == "running":
            raise BadValue(args[0])  # the rate cannot change while storing
        self.sample_rate_index = value
        return None

    def _send(self, query: bool, args: list[str]) -> str | None:
        if query:
            no_args(args)
            return str(int(self.loop))
        self.loop = bool(index(one(args), 2))
        self._points = deque(self._points, maxlen=BUFFER_POINTS if self.loop else None)
        return None


def _copy(value: object) -> object:
    if isinstance(value, list):
        return [list(v) if isinstance(v, list) else v for v in value]
    return value
