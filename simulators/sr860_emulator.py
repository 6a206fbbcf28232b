"""Emulator of the Stanford Research SR860 500 kHz DSP lock-in amplifier.

Follows the SR860 manual, chapter 4 (Programming), command reference: reference (FREQ,
FREQINT, FREQEXT?, FREQDET?, SLVL, SOFF, REFM, PHAS, HARM, HARMDUAL, RSRC, RTRG, REFZ,
TBMODE, TBSTAT?, and the presets PSTF, PSTA, PSTL), display (DBLK, DLAY, GSPD, CGRF), signal
input (IVMD, ISRC, ICUR, ICPL, IGND, IRNG, ILVL?),
filters (OFLT, OFSL, SYNC, ENBW?, ADVFILT), gain and offsets (SCAL, COFP, CEXP, COFA, APHS,
ASCL, ARNG), aux I/O (OAUX?, AUXV), outputs (OUTP?, SNAP?, SNAPD?, CDSP), status (*CLS, *ESE,
*ESR?, *SRE, *STB?, *OPC?, LIAE, LIAS?, CUROVLDSTAT?) and the capture buffer (CAPTURELEN,
CAPTURECFG, CAPTURERATEMAX?, CAPTURERATE, CAPTURESTART, CAPTURESTOP, CAPTURESTAT?,
CAPTUREBYTES?, CAPTUREPROG?, CAPTUREVAL?, CAPTUREGET?, TRIG). Long parameter names are
accepted by their short forms or in full (X, THeta, ONE, CONTinuous, IMMediate, ...).

The capture buffer samples X, Y, R, θ (as CAPTURECFG says) at CAPTURERATE in simulated time,
or one sample per trigger, into CAPTURELEN kB of 4-byte floats; one-shot stops when full,
continuous wraps. CAPTURESTAT? gives bit 0 capturing, bit 1 started (by the command or a
trigger), bit 2 wrapped (a one-shot capture's end), bits 1 and 2 held until CAPTURECFG or
CAPTURELEN resets the capture system. The memory fills in 2 kB blocks, and the manual says a
capture may go on after CAPTURESTOP until its current block is full (bit 0 still 1): here a
capture paced by its rate always does, on the virtual clock (up to 2.56 s of X and Y at 100 Hz),
and one stopped on a block's edge, or not yet begun, stops at once. One sample per trigger
(SAMP) stops at once: no sample need ever come to fill its block, and QCoDeS's SR86x driver,
verified on SR860s, reads such a capture right after stopping it. CAPTUREGET? answers an IEEE
488.2 binary block, only while capture is stopped (otherwise an execution error and no reply),
as the manual says; over the socket the block ends with a line feed where GPIB would signal
END, and its payload never holds one.
CAPTURERATEMAX? is 1.25 MHz / 2^n with the least n that gives at most 390.625 samples per time
constant. The manual says only that the time constant sets it (shorter ones faster, up to
1.25 MHz, in steps of 2); the one real answer found, an SR860 on firmware 1.47 in QCoDeS's SR86x
example notebook, is 39062.5 Hz (n = 5) at 10 ms, which this rule gives with the least number of
samples per time constant that does: any rule of this form that gives it allows as much or more
at every time constant. Only the 10 ms value is confirmed.

Command syntax as the manual's "Command Syntax" (chapter 4) says: at least one space between
the mnemonic and its first argument, no space between the mnemonic and '?'. A command that
breaks it ("PSTF2, 1000", "FREQ ? ") is a command error (ESR bit 5), no reply, nothing changed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import numpy as np

from simulators.emulator import number_reply
from simulators.lockin_emulator import (
    SPACED_COMMAND,
    BadCommand,
    BadValue,
    Handler,
    SignalSource,
    SRSLockInEmulator,
    decade_values,
    ieee_block,
    in_range,
    index,
    lf_free_float32,
    no_args,
    one,
)
from simulators.sensor_model import enbw
from smm_daq.clock import Clock

SR860_SENSITIVITIES = tuple(reversed(decade_values((1, 2, 5), -9, 28)))  # SCAL 0..27: 1 V .. 1 nV
SR860_TIME_CONSTANTS = decade_values((1, 3), -6, 22)  # OFLT 0..21: 1 µs .. 30 ks
SR860_INPUT_RANGES = (1.0, 0.3, 0.1, 0.03, 0.01)  # IRNG 0..4, V
CURRENT_GAINS = (1e6, 1e8)  # ICUR 0 (1 MΩ), 1 (100 MΩ): V/A
MAX_CAPTURE_RATE = 1.25e6  # Hz
SAMPLES_PER_TIME_CONSTANT = 390.625  # 39062.5 Hz at 10 ms, as a real SR860 answers
CAPTURE_KB_MAX = 4096
CAPTUREGET_KB_MAX = 64
BLOCK_FLOATS = 2048 // 4  # the capture memory fills in 2 kB blocks
CAPTURE_VARIABLES = (("X",), ("X", "Y"), ("R", "T"), ("X", "Y", "R", "T"))  # CAPTURECFG 0..3
PRESETS = 4  # PSTF, PSTA, PSTL i: i = 0..3, the F1..F4, A1..A4, L1..L4 buttons
CHART_SPEEDS = 17  # GSPD 0..16: 0.5 s .. 2 days per horizontal division
# OUTP?/SNAP?/CDSP parameters 0..16 and their names (upper case = the short form).
PARAMETERS = (
    "X", "Y", "R", "THeta", "IN1", "IN2", "IN3", "IN4", "XNOise", "YNOise", "OUT1", "OUT2",
    "PHAse", "SAMp", "LEVel", "FInt", "FExt",
)  # fmt: skip


def token(text: str, names: tuple[str, ...]) -> int:
    """The index of a parameter given as a number, its short form or its full name."""
    word = text.strip().upper()
    if word.isdigit():
        return index(word, len(names))
    for i, name in enumerate(names):
        short = "".join(c for c in name if c.isupper() or c.isdigit())
        if word in (short, name.upper()):
            return i
    raise BadValue(text)


class SR860Emulator(SRSLockInEmulator):
    """The SR860 500 kHz DSP lock-in (GPIB, RS-232, USB, Ethernet)."""

    MODEL = "SR860"
    IDN = "Stanford_Research_Systems,SR860,004317,v1.51"
    SENSITIVITIES = SR860_SENSITIVITIES
    TIME_CONSTANTS = SR860_TIME_CONSTANTS
    FREQ_RANGE = (0.001, 500000.0)
    AMPLITUDE_RANGE = (1e-9, 2.0)
    MAX_DETECTION_FREQUENCY = 500000.0
    MAX_HARMONIC = 99
    PHASE_RANGE = (-360000.0, 360000.0)
    PHASE_STEP = 1e-7
    OFFSET_LIMIT = 999.99
    DEFAULTS: ClassVar[dict[str, float]] = {
        "sens": 0,
        "tau": 10,
        "slope": 1,
        "freq": 1000.0,
        "amplitude": 1.0,
    }
    OVERLOAD_BITS = (4, 0)  # LIAS / CUROVLDSTAT bit 4 input range, bit 0 CH1 output
    COMMAND_SYNTAX = SPACED_COMMAND
    CH2_BIT = 1
    LIAS_SIZE = 65536

    def __init__(
        self, clock: Clock, source: SignalSource, *, rng: np.random.Generator | None = None
    ) -> None:
        self.capture_kb = 256
        self.capture_config = 0
        self.capture_rate_index = 0
        self._capture: np.ndarray = np.zeros(0, dtype=np.float32)
        self._write = 0  # next float to write
        self._captured = 0  # floats captured (≤ the buffer size)
        self._capture_state = "stopped"  # stopped, armed (waiting for a trigger), running
        self._stopping = False  # CAPTURESTOP taken: running on to the end of the block
        self._capture_mode = "ONE"
        self._capture_trigger = "IMM"
        self._capture_status = 0  # bits 1 (started) and 2 (wrapped), latched until CAPTURECFG
        self._next_sample = math.inf
        self.data_channels = [0, 1, 2, 3]  # CDSP: DAT1..DAT4 show X, Y, R, θ
        self.ref_source = 0
        # the RS-232 and telnet reply terminator, a front-panel setting (no command sets it)
        self.terminator = "\n"
        super().__init__(clock, source, rng=rng)

    @property
    def reply_end(self) -> str:
        """What ends each reply where it is served (a socket, reached as RS-232 or telnet):
        the terminator chosen on the front panel."""
        return self.terminator

    def _reset(self) -> None:
        super()._reset()
        self.input_range_index = 0
        self.current_mode = False
        self.current_gain_index = 0
        self.sine_offset = 0.0
        self.ref_source = 0
        self.ref_trigger = 0
        self.ref_impedance = 0
        self.advanced_filter = True
        self.dual_harmonic = 1
        self.timebase_mode = 0
        self.screen_blanked = False
        self.screen_layout = 0
        self.sine_dc_mode = 0  # REFM: 0 common, 1 difference (where SOFF's level appears)
        self.chart_speed = 0  # GSPD
        self.chart_shown = [True] * 4  # CGRF: DAT1..DAT4 drawn on the strip chart
        self.preset_frequencies = [1e3] * PRESETS  # PSTF (power-on values assumed)
        self.preset_amplitudes = [1.0] * PRESETS  # PSTA
        self.preset_levels = [0.0] * PRESETS  # PSTL
        self.input_source = 0  # ISRC: 0 A, 1 A−B
        self.data_channels = [0, 1, 2, 3]
        self._apply_input()

    @property
    def reference_internal(self) -> bool:  # type: ignore[override]
        """RSRC 0; external, dual and chop need a reference input nothing drives here."""
        return self.ref_source == 0

    @reference_internal.setter
    def reference_internal(self, value: bool) -> None:
        self.ref_source = 0 if value else 1

    # --- settings with physics -----------------------------------------------------------

    def input_limit(self) -> float:
        if self.current_mode:
            return 1.0  # the transimpedance amplifier's output, V
        return SR860_INPUT_RANGES[self.input_range_index]

    def _apply_input(self) -> None:
        self.current_gain = CURRENT_GAINS[self.current_gain_index] if self.current_mode else 0.0
        self.differential = self.input_source == 1 and not self.current_mode

    def _latch_overloads(self, volts: float) -> None:
        super()._latch_overloads(volts)
        if abs(self._raw_outputs()[1]) > self.full_scale:  # CH2 shows Y
            self._lias |= 1 << self.CH2_BIT

    def _current_overloads(self) -> int:
        """CUROVLDSTAT?: the overloads present now (not latched)."""
        volts = float(self._input_volts([self.clock.now()])[0])
        x, y = self._raw_outputs()
        status = 0
        if abs(x) > self.full_scale:
            status |= 1
        if abs(y) > self.full_scale:
            status |= 1 << self.CH2_BIT
        if not self.reference_internal:
            status |= 1 << self.UNLOCK_BIT
        if self._input_overloaded(volts):
            status |= 1 << 4
        return status

    def _signal_level(self) -> int:
        """ILVL?: 0..4, the input amplitude against the input range (4 is overload)."""
        volts = abs(float(self._input_volts([self.clock.now()])[0]))
        fraction = volts * self.conversion * (self.current_gain or 1.0) / self.input_limit()
        for level, edge in ((4, 1.0), (3, 0.3), (2, 0.1), (1, 0.03)):
            if fraction > edge:
                return level
        return 0

    def parameter_value(self, p: int, values: dict[str, float]) -> float:
        if p <= 3:
            return values["XYRT"[p]]
        if p <= 7:
            return self.aux_inputs[p - 4]
        if p <= 9:
            return self.noise_density()
        if p <= 11:
            return self.aux_outputs[p - 10]
        return (
            self.phase,
            self.amplitude,
            self.sine_offset,
            self.frequency,
            self.frequency if self.reference_internal else 0.0,
        )[p - 12]

    # --- capture buffer ------------------------------------------------------------------

    def capture_rate_max(self) -> float:
        wanted = SAMPLES_PER_TIME_CONSTANT / self.time_constant
        n = max(0, math.ceil(math.log2(MAX_CAPTURE_RATE / wanted) - 1e-12))
        return MAX_CAPTURE_RATE / 2**n

    def capture_rate(self) -> float:
        return self.capture_rate_max() / 2**self.capture_rate_index

    def _capture_floats(self) -> int:
        return self.capture_kb * 1024 // 4

    def _start_capture(self, args: list[str]) -> None:
        if len(args) != 2:
            raise BadValue(",".join(args))
        mode = ("ONE", "CONT")[token(args[0], ("ONE", "CONTinuous"))]
        trigger = ("IMM", "TRIG", "SAMP")[token(args[1], ("IMMediate", "TRIGstart", "SAMPpertrig"))]
        if self._capture_state != "stopped":
            raise BadValue(",".join(args))
        self._capture = np.zeros(self._capture_floats(), dtype=np.float32)
        self._write = self._captured = 0
        self._capture_mode, self._capture_trigger = mode, trigger
        self._capture_status = 0
        if trigger == "IMM":
            self._begin(self.clock.now())
        else:
            self._capture_state = "armed"

    def _begin(self, t: float) -> None:
        self._capture_state = "running"
        self._capture_status |= 1 << 1
        per_trigger = self._capture_trigger == "SAMP"
        self._next_sample = math.inf if per_trigger else t + 1 / self.capture_rate()

    def _stop_command(self) -> None:
        """CAPTURESTOP: a capture paced by its rate runs on until its current 2 kB block is
        full; one armed, on a block's edge or storing a sample per trigger stops now."""
        on_edge = self._write % BLOCK_FLOATS == 0
        if self._capture_state == "running" and self._capture_trigger != "SAMP" and not on_edge:
            self._stopping = True
        else:
            self._stop_capture()

    def _stop_capture(self) -> None:
        self._capture_state = "stopped"
        self._stopping = False
        self._next_sample = math.inf

    def _trigger(self, at: float | None = None) -> None:
        """A rising edge at TRIG IN (the TRIG command, or a wired cable at time `at`)."""
        t = self.clock.now() if at is None else at
        if self._capture_state == "armed":
            self._begin(t)
            if self._capture_trigger == "SAMP":
                self._store_sample(t)
        elif self._capture_state == "running" and self._capture_trigger == "SAMP":
            self._store_sample(t)

    def _sample_times(self, now: float) -> list[float]:
        if self._capture_state != "running" or self._next_sample > now:
            return []
        rate = self.capture_rate()
        due = math.floor((now - self._next_sample) * rate + 1e-9) + 1
        per_sample = len(CAPTURE_VARIABLES[self.capture_config])
        room = len(self._capture) // per_sample
        first = 0
        if self._capture_mode == "CONT" and due > room:
            first = due - room  # overwritten before anyone could read them
        elif self._capture_mode == "ONE":
            due = min(due, room - self._write // per_sample)
        if self._stopping:  # no sample past the end of the block under way
            due = min(due, (BLOCK_FLOATS - self._write % BLOCK_FLOATS) // per_sample)
        times = [self._next_sample + k / rate for k in range(first, due)]
        self._next_sample += due / rate
        return times

    def _store_sample(self, t: float) -> None:
        values = self.outputs_at_filter()
        names = CAPTURE_VARIABLES[self.capture_config]
        size = len(self._capture)
        for name in names:
            self._capture[self._write] = lf_free_float32(values[name])
            self._write += 1
        self._captured = min(self._captured + len(names), size)
        if self._write + len(names) > size:
            self._capture_status |= 1 << 2  # wrapped: the end of a one-shot capture
            self._write = 0
            if self._capture_mode == "ONE":
                self._stop_capture()
        if self._stopping and self._write % BLOCK_FLOATS == 0:
            self._stop_capture()

    def _capture_stat(self, args: list[str]) -> str:
        no_args(args)
        return str(self._capture_status | int(self._capture_state == "running"))

    def _capture_progress(self, args: list[str]) -> str:
        no_args(args)
        if self._capture_state != "stopped":
            raise BadValue("capture running")
        if self._capture_status & (1 << 2) and self._capture_mode == "CONT":
            return str(self.capture_kb)
        return str(2 * math.ceil(self._captured * 4 / 2048))

    def _capture_get(self, args: list[str]) -> str:
        if len(args) != 2:
            raise BadValue(",".join(args))
        offset = index(args[0], CAPTURE_KB_MAX)
        size = index(args[1], CAPTUREGET_KB_MAX, 1)
        if self._capture_state != "stopped" or offset >= self.capture_kb:
            raise BadValue(",".join(args))
        data = self._capture.tobytes() or bytes(self.capture_kb * 1024)
        memory = data * (1 + (offset + size) // self.capture_kb)  # wraps past the end
        return ieee_block(memory[offset * 1024 : (offset + size) * 1024])

    def _capture_val(self, args: list[str]) -> str:
        names = CAPTURE_VARIABLES[self.capture_config]
        n = index(one(args), self._capture_floats() // len(names))
        values = self._capture[n * len(names) : (n + 1) * len(names)] if len(self._capture) else []
        values = list(values) + [0.0] * (len(names) - len(values))
        return ",".join(number_reply(v, ".6e") for v in values)

    # --- status --------------------------------------------------------------------------

    def status_byte(self) -> int:
        stb = bool(self._lias & self._liae) << 3
        stb |= bool(self._esr & self._ese) << 5
        stb |= bool(stb & self._sre) << 6
        return stb

    # --- commands ------------------------------------------------------------------------

    def _add_model_commands(self) -> None:
        add = self._add
        add("SCAL", self.indexed("sens_index", len(self.SENSITIVITIES)))
        add("IRNG", self.indexed("input_range_index", len(SR860_INPUT_RANGES)))
        add("RSRC", self.indexed("ref_source", 4))
        add("RTRG", self.indexed("ref_trigger", 3))
        add("REFZ", self.indexed("ref_impedance", 2))
        add("ADVFILT", self.flag("advanced_filter"))
        add("FREQINT", self._frequency)  # the internal oscillator: what FREQ sets here
        add("FREQEXT", self.reading(lambda: "0"))  # no external reference is wired
        add("FREQDET", self.reading(lambda: number_reply(self.frequency * self.harmonic, ".6g")))
        add("HARMDUAL", self.indexed("dual_harmonic", self.MAX_HARMONIC, 1))
        add("TBMODE", self.indexed("timebase_mode", 2))
        add("TBSTAT", self.reading(lambda: "1"))  # 1: the internal timebase in use
        add("DBLK", self.flag("screen_blanked"))
        add("DLAY", self.indexed("screen_layout", 6))
        add("GSPD", self.indexed("chart_speed", CHART_SPEEDS))
        add("CGRF", self._listed("chart_shown", lambda text: bool(index(text, 2)), int))
        add("REFM", self.indexed("sine_dc_mode", 2))
        add("PSTF", self._listed("preset_frequencies",
                                 lambda text: in_range(text, *self.FREQ_RANGE)))
        add("PSTA", self._listed("preset_amplitudes",
                                 lambda text: in_range(text, *self.AMPLITUDE_RANGE)))
        add("PSTL", self._listed("preset_levels", lambda text: in_range(text, -5.0, 5.0)))
        add("IVMD", self._input_setting("current_mode"))
        add("ISRC", self._input_setting("input_source"))
        add("ICUR", self._input_setting("current_gain_index"))
        add("SOFF", self._sine_offset)
        add("ENBW", self.query_only(self._enbw))
        add("ILVL", self.reading(lambda: str(self._signal_level())))
        add("CUROVLDSTAT", self.reading(lambda: str(self._current_overloads())))
        add("*OPC", self.reading(lambda: "1"))
        add("OUTP", self.query_only(self._outp))
        add("SNAP", self.query_only(self._snap))
        add("SNAPD", self.query_only(self._snapd))
        add("CDSP", self._cdsp)
        add("OAUX", self._aux_input(0))
        add("AUXV", self._aux_output(0))
        add("COFP", self._offset)
        add("CEXP", self._expand)
        add("COFA", self._auto_offset_command)
        add("ASCL", self.action(self._auto_gain))
        add("ARNG", self.action(self._auto_range))
        add("TRIG", self.action(lambda: self._trigger()))
        add("CAPTURELEN", self._capture_setting("capture_kb"))
        add("CAPTURECFG", self._capture_setting("capture_config"))
        add("CAPTURERATE", self._capture_rate_command)
        add("CAPTURERATEMAX", self.query_only(self._rate_max))
        add("CAPTURESTART", self._action_with_args(self._start_capture))
        add("CAPTURESTOP", self.action(self._stop_command))
        add("CAPTURESTAT", self.query_only(self._capture_stat))
        add("CAPTUREBYTES", self.reading(lambda: str(4 * self._captured)))
        add("CAPTUREPROG", self.query_only(self._capture_progress))
        add("CAPTUREVAL", self.query_only(self._capture_val))
        add("CAPTUREGET", self.query_only(self._capture_get))

    @staticmethod
    def _action_with_args(run: Callable[[list[str]], None]) -> Handler:
        def handler(query: bool, args: list[str]) -> str | None:
            if query:
                raise BadCommand("no query form")
            run(args)
            return None

        return handler

    def _listed(self, attr: str, parse: Callable[[str], object],
                shown: Callable[[float], object] = lambda v: number_reply(v, ".6g")) -> Handler:
        """A setting held per index i in the list attribute `attr`: `CMD i, x` sets (x parsed
        by `parse`), `CMD? i` reads (as `shown` gives it)."""

        def handler(query: bool, args: list[str]) -> str | None:
            values = getattr(self, attr)
            if query:
                return str(shown(values[index(one(args), len(values))]))
            if len(args) != 2:
                raise BadValue(",".join(args))
            values[index(args[0], len(values))] = parse(args[1])
            return None

        return handler

    def _input_setting(self, attr: str) -> Handler:
        def handler(query: bool, args: list[str]) -> str | None:
            if query:
                no_args(args)
                return str(int(getattr(self, attr)))
            value = index(one(args), 2)
            setattr(self, attr, bool(value) if attr == "current_mode" else value)
            self._apply_input()
            return None

        return handler

    def _sine_offset(self, query: bool, args: list[str]) -> str | None:
        if query:
            no_args(args)
            return number_reply(self.sine_offset, ".6g")
        self.sine_offset = in_range(one(args), -5.0, 5.0)
        return None

    def _enbw(self, args: list[str]) -> str:
        no_args(args)
        return number_reply(enbw(self.time_constant, self.poles), ".6g")

    def _outp(self, args: list[str]) -> str:
        p = token(one(args), PARAMETERS)
        return number_reply(self.parameter_value(p, self.outputs()), ".6e")

    def _snap(self, args: list[str]) -> str:
        if not 2 <= len(args) <= 3:
            raise BadValue(",".join(args))
        values = self.outputs()
        chosen = [token(a, PARAMETERS) for a in args]
        return ",".join(number_reply(self.parameter_value(p, values), ".6e") for p in chosen)

    def _snapd(self, args: list[str]) -> str:
        no_args(args)
        values = self.outputs()
        return ",".join(number_reply(self.parameter_value(p, values), ".6e")
                        for p in self.data_channels)

    def _cdsp(self, query: bool, args: list[str]) -> str | None:
        names = ("DAT1", "DAT2", "DAT3", "DAT4")
        if query:
            return str(self.data_channels[token(one(args), names)])
        if len(args) != 2:
            raise BadValue(",".join(args))
        self.data_channels[token(args[0], names)] = token(args[1], PARAMETERS)
        return None

    def _offset(self, query: bool, args: list[str]) -> str | None:
        if query:
            return number_reply(self.offsets[token(one(args), ("X", "Y", "R"))], ".2f")
        if len(args) != 2:
            raise BadValue(",".join(args))
        channel = token(args[0], ("X", "Y", "R"))
        self.offsets[channel] = round(in_range(args[1], -self.OFFSET_LIMIT, self.OFFSET_LIMIT), 2)
        return None

    def _expand(self, query: bool, args: list[str]) -> str | None:
        if query:
            return str(self.expands[token(one(args), ("X", "Y", "R"))])
        if len(args) != 2:
            raise BadValue(",".join(args))
        self.expands[token(args[0], ("X", "Y", "R"))] = token(args[1], ("OFF", "X10", "X100"))
        return None

    def _auto_offset_command(self, query: bool, args: list[str]) -> str | None:
        if query:
            raise BadCommand("no query form")
        self._auto_offset(token(one(args), ("X", "Y", "R")))
        return None

    def _auto_range(self) -> None:
        """The smallest input range that does not overload now."""
        volts = float(self._input_volts([self.clock.now()])[0])
        for i in reversed(range(len(SR860_INPUT_RANGES))):
            self.input_range_index = i
            if not self._input_overloaded(volts):
                return

    def _capture_setting(self, attr: str) -> Handler:
        size = CAPTURE_KB_MAX if attr == "capture_kb" else len(CAPTURE_VARIABLES)
        first = 1 if attr == "capture_kb" else 0

        def handler(query: bool, args: list[str]) -> str | None:
            if query:
                no_args(args)
                return str(getattr(self, attr))
            if attr == "capture_kb":
                value = index(one(args), size, first)
            else:
                value = token(one(args), ("X", "XY", "RT", "XYRT"))
            if self._capture_state != "stopped":
                raise BadValue(args[0])
            if attr == "capture_kb":
                value = min(value + value % 2, CAPTURE_KB_MAX)  # whole 2 kB blocks
            setattr(self, attr, value)
            self._capture_status = 0  # a new configuration resets the capture system
            self._capture = np.zeros(0, dtype=np.float32)
            self._write = self._captured = 0
            return None

        return handler

    def _capture_rate_command(self, query: bool, args: list[str]) -> str | None:
        if query:
            no_args(args)
            return number_reply(self.capture_rate(), ".6g")
        value = index(one(args), 21)
        if self._capture_state != "stopped":
            raise BadValue(args[0])
        self.capture_rate_index = value
        return None

    def _rate_max(self, args: list[str]) -> str:
        no_args(args)
        return number_reply(self.capture_rate_max(), ".6g")

