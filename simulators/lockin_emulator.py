"""Emulators of the Stanford Research SR830 and SR860 lock-in amplifiers.

They answer the commands the drivers use, in each instrument's own syntax (SR830: SENS, OUTX,
SNAP? 1,2, LIAS?, ERRS?; SR860: SCAL, RSRC, IRNG, SNAP? X,Y, SNAPD?, LIAS?, CUROVLDSTAT?), plus
*IDN?, *CLS, *RST, *ESR? and *STB?. Unknown commands set the command-error bit (5) and
out-of-range values the execution-error bit (4) of the standard event register, with no reply,
as the instruments do. The enable registers are not emulated: *STB? summarises every bit.

Physics, in simulated time: the sensor's in-phase voltage passes through the output low-pass
filter, `poles` cascaded RC sections of the time constant (6, 12, 18, 24 dB/oct), integrated
exactly for input held constant over sub-steps no longer than one time constant. The sensor's
white noise is added as a unit-variance Ornstein-Uhlenbeck process (correlation time one time
constant) scaled to density × √ENBW, so its RMS follows the filter's equivalent noise
bandwidth. An input beyond the input limit (SR830) or input range (SR860) and an output beyond
full scale latch the overload bits; outputs saturate a little above full scale.
"""

from __future__ import annotations

import math
import re
from abc import abstractmethod
from collections.abc import Sequence
from typing import ClassVar, Protocol

import numpy as np

from simulators.emulator import Emulator
from simulators.sensor_model import enbw
from smm_daq.clock import Clock

# Largest output reading, in full scales, before the output saturates.
OUTPUT_HEADROOM = 1.1
# History older than this many time constants is forgotten (its weight is below 3e-6).
_MEMORY_TAUS = 20.0
_MAX_SUBSTEPS = 10

_COMMAND = re.compile(r"^\s*(\*?[A-Za-z]+)\s*(\?)?\s*(.*?)\s*$")


class SignalSource(Protocol):
    """What feeds the lock-in's input (the simulated world's MTJ)."""

    def lockin_signal(self, times: Sequence[float], excitation: float) -> np.ndarray:
        """Noiseless in-phase input volts at each time, for a sine-out amplitude (V rms)."""

    def lockin_noise_density(self, excitation: float) -> float:
        """White input noise, V/√Hz."""


class _BadValue(Exception):
    """A parameter out of range or not a number: execution error, nothing changes."""


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _BadValue(text) from None
    if not math.isfinite(value):
        raise _BadValue(text)
    return value


def _index(text: str, size: int) -> int:
    value = _number(text)
    if value != int(value) or not 0 <= value < size:
        raise _BadValue(text)
    return int(value)


def _decade_values(mantissas: Sequence[float], first: int, count: int) -> tuple[float, ...]:
    """count values m × 10^e stepping through mantissas, starting at decade `first`."""
    out = []
    e, k = first, 0
    while len(out) < count:
        out.append(float(f"{mantissas[k]}e{e}"))
        k += 1
        if k == len(mantissas):
            k, e = 0, e + 1
    return tuple(out)


SR830_SENSITIVITIES = _decade_values((2, 5, 10), -9, 27)  # SENS 0..26: 2 nV .. 1 V
SR830_TIME_CONSTANTS = _decade_values((10, 30), -6, 20)  # OFLT 0..19: 10 µs .. 30 ks
SR860_SENSITIVITIES = tuple(reversed(_decade_values((1, 2, 5), -9, 28)))  # SCAL 0..27: 1 V .. 1 nV
SR860_TIME_CONSTANTS = _decade_values((1, 3), -6, 22)  # OFLT 0..21: 1 µs .. 30 ks
SR860_INPUT_RANGES = (1.0, 0.3, 0.1, 0.03, 0.01)  # IRNG 0..4, V


class SRSLockInEmulator(Emulator):
    """What the SR830 and SR860 share: reference, filter, outputs, status registers."""

    MODEL: ClassVar[str]
    IDN: ClassVar[str]
    SENSITIVITIES: ClassVar[tuple[float, ...]]
    TIME_CONSTANTS: ClassVar[tuple[float, ...]]
    SENS_HEADER: ClassVar[str]
    REF_HEADER: ClassVar[str]  # reference source command
    REF_INTERNAL: ClassVar[int]  # its value for the internal reference
    REF_CHOICES: ClassVar[int] = 2  # how many reference sources it knows
    FREQ_RANGE: ClassVar[tuple[float, float]]
    AMPLITUDE_RANGE: ClassVar[tuple[float, float]]
    DEFAULTS: ClassVar[dict[str, float]]
    OVERLOAD_BITS: ClassVar[tuple[int, int]]  # (input, output) bits of LIAS
    UNLOCK_BIT = 3

    def __init__(
        self, clock: Clock, source: SignalSource, *, rng: np.random.Generator | None = None
    ) -> None:
        self.name = self.MODEL
        self.clock = clock
        self.source = source
        self.rng = rng if rng is not None else np.random.default_rng()
        self.interference = 0.0  # V in phase at the input: fault injection (pick-up, a spike)
        self._t = clock.now()
        self._filter = np.zeros(4)  # the four RC sections, V (in phase)
        self._noise = self.rng.normal(size=2)  # unit-variance X, Y noise processes
        self._esr = 0
        self._lias = 0
        self._reset()

    # --- settings ------------------------------------------------------------------------

    def _reset(self) -> None:
        d = self.DEFAULTS
        self.sens_index = int(d["sens"])
        self.tau_index = int(d["tau"])
        self.slope_index = int(d["slope"])
        self.frequency = d["freq"]
        self.amplitude = d["amplitude"]
        self.ref_source = self.REF_INTERNAL

    @property
    def time_constant(self) -> float:
        return self.TIME_CONSTANTS[self.tau_index]

    @property
    def full_scale(self) -> float:
        return self.SENSITIVITIES[self.sens_index]

    @property
    def poles(self) -> int:
        return self.slope_index + 1

    @abstractmethod
    def input_limit(self) -> float:
        """Largest input amplitude (V) before the input overloads."""

    # --- simulated time ------------------------------------------------------------------

    def _input(self, times: Sequence[float]) -> np.ndarray:
        if self.ref_source != self.REF_INTERNAL:  # no external reference is wired: unlocked
            return np.zeros(len(times))
        return self.source.lockin_signal(times, self.amplitude) + self.interference

    def _step(self, u: float, h: float) -> None:
        """Exact response of the cascade to input u held for h seconds."""
        a = h / self.time_constant
        e = self._filter - u
        decay = math.exp(-a)
        new = np.empty(4)
        for k in range(4):
            new[k] = decay * sum(e[j] * a ** (k - j) / math.factorial(k - j) for j in range(k + 1))
        self._filter = u + new

    def advance_to(self, now: float) -> None:
        """Integrate the filter and the noise from the last update to `now`."""
        t0 = self._t
        if now <= t0:
            return
        self._t = now
        tau = self.time_constant
        window = min(now - t0, _MEMORY_TAUS * tau)
        start = now - window
        if start > t0:  # a long gap: older input is forgotten but for its value at `start`
            self._step(float(self._input([start])[0]), start - t0)
        k = min(max(math.ceil(window / tau), 1), _MAX_SUBSTEPS)
        times = start + window * np.arange(1, k + 1) / k
        u = self._input(times)
        for value in u:
            self._step(float(value), window / k)
        rho = math.exp(-(now - t0) / tau)
        self._noise = rho * self._noise + math.sqrt(1 - rho * rho) * self.rng.normal(size=2)
        self._latch_overloads(float(u[-1]))

    def _noise_rms(self) -> float:
        density = self.source.lockin_noise_density(self.amplitude)
        return density * math.sqrt(enbw(self.time_constant, self.poles))

    def _raw_outputs(self) -> tuple[float, float]:
        noise = self._noise_rms() * self._noise
        return float(self._filter[self.poles - 1] + noise[0]), float(noise[1])

    def _latch_overloads(self, u: float) -> None:
        input_bit, output_bit = self.OVERLOAD_BITS
        x, y = self._raw_outputs()
        if abs(u) > self.input_limit():
            self._lias |= 1 << input_bit
        if max(abs(x), abs(y)) > self.full_scale:
            self._lias |= 1 << output_bit
        if self.ref_source != self.REF_INTERNAL:
            self._lias |= 1 << self.UNLOCK_BIT

    def outputs(self) -> dict[str, float]:
        """X, Y, R (V) and θ (degrees) now, saturating above full scale."""
        self.advance_to(self.clock.now())
        limit = OUTPUT_HEADROOM * self.full_scale
        x, y = (min(max(v, -limit), limit) for v in self._raw_outputs())
        return {"X": x, "Y": y, "R": math.hypot(x, y), "T": math.degrees(math.atan2(y, x))}

    # --- protocol ------------------------------------------------------------------------

    def device_clear(self) -> None:
        """Nothing is buffered between messages here; a clear changes no setting."""

    def handle(self, message: str) -> str | None:
        self.advance_to(self.clock.now())
        replies = []
        for command in message.split(";"):
            if not command.strip():
                continue
            match = _COMMAND.match(command)
            if match is None:
                self._esr |= 1 << 5
                continue
            head, query, rest = match.group(1).upper(), bool(match.group(2)), match.group(3)
            args = [a.strip() for a in rest.split(",")] if rest else []
            try:
                reply = self._dispatch(head, query, args)
            except _BadValue:
                self._esr |= 1 << 4
                continue
            except KeyError:
                self._esr |= 1 << 5
                continue
            if reply is not None:
                replies.append(reply)
        return ";".join(replies) if replies else None

    def _dispatch(self, head: str, query: bool, args: list[str]) -> str | None:
        """Common commands; a model adds its own in `_model_command`. KeyError if unknown."""
        if head == "*IDN" and query:
            return self.IDN
        if head == "*CLS" and not query:
            self._esr = self._lias = 0
            self._clear_model_status()
            return None
        if head == "*RST" and not query:
            self._reset()
            return None
        if head == "*ESR" and query:
            value, self._esr = self._esr, 0
            return str(value)
        if head == "*STB" and query:
            return str(self._status_byte())
        if head == "LIAS" and query:
            return self._read_latch(args)
        if head == "SNAP" and query:
            if not 2 <= len(args) <= 6:
                raise _BadValue(",".join(args))
            values = self.outputs()
            return ",".join(f"{values[self._parameter(a)]:.6e}" for a in args)
        if head == "OUTP" and query:
            if len(args) != 1:
                raise _BadValue(",".join(args))
            return f"{self.outputs()[self._parameter(args[0])]:.6e}"
        if head == self.SENS_HEADER:
            if query:
                return str(self.sens_index)
            self.sens_index = _index(self._one(args), len(self.SENSITIVITIES))
            return None
        if head == "OFLT":
            if query:
                return str(self.tau_index)
            self.tau_index = _index(self._one(args), len(self.TIME_CONSTANTS))
            return None
        if head == "OFSL":
            if query:
                return str(self.slope_index)
            self.slope_index = _index(self._one(args), 4)
            return None
        if head == "FREQ":
            if query:
                return f"{self.frequency:.6g}"
            self.frequency = self._in_range(self._one(args), self.FREQ_RANGE)
            return None
        if head == "SLVL":
            if query:
                return f"{self.amplitude:.6g}"
            self.amplitude = self._amplitude(self._in_range(self._one(args), self.AMPLITUDE_RANGE))
            return None
        if head == self.REF_HEADER:
            if query:
                return str(self.ref_source)
            self.ref_source = _index(self._one(args), self.REF_CHOICES)
            return None
        return self._model_command(head, query, args)

    @staticmethod
    def _one(args: list[str]) -> str:
        if len(args) != 1:
            raise _BadValue(",".join(args))
        return args[0]

    @staticmethod
    def _in_range(text: str, limits: tuple[float, float]) -> float:
        value = _number(text)
        if not limits[0] <= value <= limits[1]:
            raise _BadValue(text)
        return value

    def _amplitude(self, value: float) -> float:
        return value

    def _read_latch(self, args: list[str]) -> str:
        """LIAS? reads and clears the latched status; LIAS? i reads and clears bit i."""
        if not args:
            value, self._lias = self._lias, 0
            return str(value)
        bit = _index(self._one(args), 16)
        value = (self._lias >> bit) & 1
        self._lias &= ~(1 << bit)
        return str(value)

    def _status_byte(self) -> int:
        return (bool(self._lias) << 3) | (bool(self._esr) << 5) | (self._model_error() << 2)

    @abstractmethod
    def _parameter(self, token: str) -> str:
        """The output ('X', 'Y', 'R', 'T') a SNAP?/OUTP? parameter names; _BadValue if none."""

    @abstractmethod
    def _model_command(self, head: str, query: bool, args: list[str]) -> str | None:
        """A command only this model has; KeyError if it has none of that name."""

    def _clear_model_status(self) -> None:
        """Model-specific status cleared by *CLS."""

    def _model_error(self) -> int:
        return 0


class SR830Emulator(SRSLockInEmulator):
    """The SR830 DSP lock-in (GPIB or RS-232)."""

    MODEL = "SR830"
    IDN = "Stanford_Research_Systems,SR830,s/n86514,ver1.07"
    SENSITIVITIES = SR830_SENSITIVITIES
    TIME_CONSTANTS = SR830_TIME_CONSTANTS
    SENS_HEADER = "SENS"
    REF_HEADER = "FMOD"  # 0 external, 1 internal
    REF_INTERNAL = 1
    FREQ_RANGE = (0.001, 102000.0)
    AMPLITUDE_RANGE = (0.004, 5.0)
    DEFAULTS: ClassVar[dict[str, float]] = {
        "sens": 26,
        "tau": 8,
        "slope": 1,
        "freq": 1000.0,
        "amplitude": 1.0,
    }
    OVERLOAD_BITS = (0, 2)  # LIAS bit 0 INPUT/RESRV, bit 2 OUTPT
    INPUT_LIMIT = 1.0  # V: beyond it the input overloads whatever the sensitivity
    _PARAMETERS: ClassVar[dict[str, str]] = {"1": "X", "2": "Y", "3": "R", "4": "T"}

    def __init__(
        self, clock: Clock, source: SignalSource, *, rng: np.random.Generator | None = None
    ) -> None:
        self.outx = 1
        self._errs = 0
        super().__init__(clock, source, rng=rng)

    def input_limit(self) -> float:
        return self.INPUT_LIMIT

    def _amplitude(self, value: float) -> float:
        return round(value / 0.002) * 0.002  # SLVL resolution 2 mV

    def _parameter(self, token: str) -> str:
        try:
            return self._PARAMETERS[token]
        except KeyError:
            raise _BadValue(token) from None

    def _model_command(self, head: str, query: bool, args: list[str]) -> str | None:
        if head == "OUTX":
            if query:
                return str(self.outx)
            self.outx = _index(self._one(args), 2)
            return None
        if head == "ERRS" and query:
            value, self._errs = self._errs, 0
            return str(value)
        raise KeyError(head)

    def _clear_model_status(self) -> None:
        self._errs = 0

    def _model_error(self) -> int:
        return int(bool(self._errs))


class SR860Emulator(SRSLockInEmulator):
    """The SR860 500 kHz DSP lock-in (GPIB, RS-232, USB, Ethernet)."""

    MODEL = "SR860"
    IDN = "Stanford_Research_Systems,SR860,004317,v1.51"
    SENSITIVITIES = SR860_SENSITIVITIES
    TIME_CONSTANTS = SR860_TIME_CONSTANTS
    SENS_HEADER = "SCAL"
    REF_HEADER = "RSRC"  # 0 internal, 1 external, 2 dual, 3 chop
    REF_INTERNAL = 0
    REF_CHOICES = 4
    FREQ_RANGE = (0.001, 500000.0)
    AMPLITUDE_RANGE = (1e-9, 2.0)
    DEFAULTS: ClassVar[dict[str, float]] = {
        "sens": 0,
        "tau": 10,
        "slope": 1,
        "freq": 1000.0,
        "amplitude": 1.0,
    }
    OVERLOAD_BITS = (4, 0)  # LIAS / CUROVLDSTAT bit 4 input range, bit 0 CH1 output
    CH2_BIT = 1
    _PARAMETERS: ClassVar[dict[str, str]] = {
        "0": "X",
        "1": "Y",
        "2": "R",
        "3": "T",
        "X": "X",
        "Y": "Y",
        "R": "R",
        "TH": "T",
        "THETA": "T",
    }

    def __init__(
        self, clock: Clock, source: SignalSource, *, rng: np.random.Generator | None = None
    ) -> None:
        self.input_range_index = 0
        super().__init__(clock, source, rng=rng)

    def _reset(self) -> None:
        super()._reset()
        self.input_range_index = 0

    def input_limit(self) -> float:
        return SR860_INPUT_RANGES[self.input_range_index]

    def _latch_overloads(self, u: float) -> None:
        super()._latch_overloads(u)
        if abs(self._raw_outputs()[1]) > self.full_scale:  # CH2 shows Y
            self._lias |= 1 << self.CH2_BIT

    def _parameter(self, token: str) -> str:
        try:
            return self._PARAMETERS[token.upper()]
        except KeyError:
            raise _BadValue(token) from None

    def _current_overloads(self) -> int:
        """CUROVLDSTAT?: the overloads present now (not latched)."""
        u = float(self._input([self.clock.now()])[0])
        x, y = self._raw_outputs()
        status = 0
        if abs(x) > self.full_scale:
            status |= 1
        if abs(y) > self.full_scale:
            status |= 1 << self.CH2_BIT
        if self.ref_source != self.REF_INTERNAL:
            status |= 1 << self.UNLOCK_BIT
        if abs(u) > self.input_limit():
            status |= 1 << 4
        return status

    def _model_command(self, head: str, query: bool, args: list[str]) -> str | None:
        if head == "IRNG":
            if query:
                return str(self.input_range_index)
            self.input_range_index = _index(self._one(args), len(SR860_INPUT_RANGES))
            return None
        if head == "CUROVLDSTAT" and query:
            return str(self._current_overloads())
        if head == "SNAPD" and query:  # data channels 1..4 show X, Y, R, θ by default
            values = self.outputs()
            return ",".join(f"{values[k]:.6e}" for k in ("X", "Y", "R", "T"))
        raise KeyError(head)
