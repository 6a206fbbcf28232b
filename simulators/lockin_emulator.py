"""What the SR830 and SR860 emulators share: the signal path, the output filter, the status
registers and the command parser. `simulators.sr830_emulator` and `simulators.sr860_emulator`
add each model's commands in its own syntax; docs/emulated_commands/srs_lockins.md lists them.

Signal path, in simulated time. The world's MTJ drives input A with its in-phase voltage s(t)
at the reference frequency; pick-up (`interference`, fault injection) appears on A and B alike.
The demodulated input is

    z = [harmonic = 1] · H_coupling(f) · e^(−iφ) · c · (s + pick-up on A only)

where φ is the reference phase, H_coupling the AC-coupling high-pass (one pole at
`AC_COUPLING_CORNER`), and c = 1 on a voltage input (A or A−B, where common-mode pick-up
cancels) or 1/(R_source + R_in) A/V on a current input, whose outputs are in amperes and whose
full scale is the voltage sensitivity over the transimpedance gain (1e6 or 1e8 V/A). A harmonic
other than the first sees no signal: the sensor responds linearly. Re z and Im z (X and Y) pass
through the output low-pass filter, `poles` cascaded RC sections of the time constant (6, 12,
18, 24 dB/oct), integrated exactly for input held constant over sub-steps no longer than one
time constant. The sensor's white noise passes the same cascade (`simulators.filtered_noise`,
stepped exactly), so readings are correlated as the filter makes them and long averages
have the variance the density promises; it is scaled to density · |c| · √ENBW per reading.
An input beyond the input limit and an output beyond full scale latch the overload bits;
outputs saturate a little above full scale. Channel offsets (in % of full scale) are
subtracted from X, Y and R.

Protocol. Commands are separated by ';' or sent one per message; each reply goes on its own
line (the SR830 way: a compound query gives one terminated line per query). An unknown command
sets the command-error bit (5) and an out-of-range or malformed parameter the execution-error
bit (4) of the standard event status register, with no reply and nothing changed, as the
instruments do. Binary transfers are `BinaryReply`s, sent without a terminator.
"""

from __future__ import annotations

import math
import re
from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar, Protocol

import numpy as np

from simulators import filtered_noise
from simulators.emulator import BinaryReply, Emulator, number_reply
from simulators.sensor_model import enbw
from smm_daq.clock import Clock

# Largest output reading, in full scales, before the output saturates.
OUTPUT_HEADROOM = 1.1
# History older than this many time constants is forgotten (its weight is below 3e-6).
_MEMORY_TAUS = 20.0
_MAX_SUBSTEPS = 10
# The MTJ's output resistance as wired to input A: on a current input it drives
# s / (SENSOR_SOURCE_RESISTANCE + the input's own impedance) into the virtual ground.
SENSOR_SOURCE_RESISTANCE = 10e3  # Ω
CURRENT_INPUT_IMPEDANCE = 1e3  # Ω (SR830: 1 kΩ to virtual ground)
AC_COUPLING_CORNER = 0.16  # Hz, the input high-pass with AC coupling
COMMON_MODE_REJECTION = 1e-5  # 100 dB: what is left of pick-up on A−B

_COMMAND = re.compile(r"^\s*(\*?[A-Za-z]+)\s*(\?)?\s*(.*?)\s*$")
# The SR860's syntax: '?' right after the mnemonic, at least one space before the arguments
SPACED_COMMAND = re.compile(r"^\s*(\*?[A-Za-z]+)(\?)?(?:\s+([^?\s].*?))?\s*$")

Handler = Callable[[bool, list[str]], str | None]


class SignalSource(Protocol):
    """What feeds the lock-in's input (the simulated world's MTJ)."""

    def lockin_signal(self, times: Sequence[float], excitation: float) -> np.ndarray:
        """Noiseless in-phase input volts at each time, for a sine-out amplitude (V rms)."""

    def lockin_noise_density(self, excitation: float) -> float:
        """White input noise, V/√Hz."""


class BadValue(Exception):
    """A parameter out of range or not a number: execution error, nothing changes."""


class BadCommand(Exception):
    """A command the instrument does not know, or a query of a set-only command."""


def number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadValue(text) from None
    if not math.isfinite(value):
        raise BadValue(text)
    return value


def index(text: str, size: int, first: int = 0) -> int:
    """An integer first..first+size-1 (an integral float such as '14.000000' is accepted)."""
    value = number(text)
    if value != int(value) or not first <= value < first + size:
        raise BadValue(text)
    return int(value)


def in_range(text: str, lo: float, hi: float) -> float:
    value = number(text)
    if not lo <= value <= hi:
        raise BadValue(text)
    return value


def one(args: list[str]) -> str:
    if len(args) != 1:
        raise BadValue(",".join(args))
    return args[0]


def no_args(args: list[str]) -> None:
    if args:
        raise BadValue(",".join(args))


def decade_values(mantissas: Sequence[float], first: int, count: int) -> tuple[float, ...]:
    """count values m × 10^e stepping through mantissas, starting at decade `first`."""
    out = []
    e, k = first, 0
    while len(out) < count:
        out.append(float(f"{mantissas[k]}e{e}"))
        k += 1
        if k == len(mantissas):
            k, e = 0, e + 1
    return tuple(out)


def wrap_phase(degrees: float) -> float:
    """Into (−180, 180]; never −0.0 (fmod(−360, 360)), which PHAS? would answer as "-0"."""
    wrapped = math.fmod(degrees, 360.0)
    if wrapped > 180.0:
        wrapped -= 360.0
    elif wrapped <= -180.0:
        wrapped += 360.0
    return wrapped + 0.0


def ieee_block(data: bytes) -> BinaryReply:
    """An IEEE 488.2 definite-length block: '#', digit count, length, bytes, then a line feed.

    Over GPIB the block ends with END (EOI); a raw socket has no END, so the line feed stands
    for it, and the payload holds no line feed (see `lf_free_float32`): a reader that stops at
    the terminator and one that counts the block's bytes both get all of it and nothing more.
    """
    length = str(len(data))
    return BinaryReply(f"#{len(length)}{length}" + data.decode("latin-1") + "\n")


def lf_free_float32(value: float) -> float:
    """The float32 nearest `value` (at most a few units in the last place away) whose four
    little-endian bytes hold no line feed, so binary transfers over a socket stay whole; where
    the line feed sits in the exponent byte no small change removes it and the value is kept."""
    v = np.float32(value)
    for _ in range(8):
        if b"\n" not in v.tobytes():
            return float(v)
        v = np.nextafter(v, np.float32(0.0) if v > 0 else np.float32(1.0))
    return float(np.float32(value))  # the line feed is in the exponent byte: keep the value


_FACTORIALS = np.array([math.factorial(m) for m in range(4)], dtype=float)


def cascade_decay(e: np.ndarray, a: float) -> np.ndarray:
    """The four RC sections' departures `e` (4, 2) from a held input, a time constants later:
    section k is e^−a Σ_{j ≤ k} e_j a^(k−j) / (k−j)!. Each term is rounded as
    `e_j · a^(k−j)` then divided by the factorial, and summed from j = 0, as the emulator
    always has: the same floats, section by section, in four array operations."""
    powers = np.array([a ** m for m in range(4)])[:, None]
    total = np.zeros_like(e)
    for j in range(4):
        total[j:] += e[j] * powers[:4 - j] / _FACTORIALS[:4 - j, None]
    return math.exp(-a) * total


def _transition(a: float) -> np.ndarray:
    """The four RC sections' response, `a` time constants on, to their departures from a
    held input (`cascade_decay` as a matrix)."""
    return math.exp(-a) * np.array(
        [[a ** (k - j) / math.factorial(k - j) if j <= k else 0.0 for j in range(4)]
         for k in range(4)]
    )  # fmt: skip


class SRSLockInEmulator(Emulator):
    """What the SR830 and SR860 share: signal path, filter, outputs, status registers."""

    MODEL: ClassVar[str]
    IDN: ClassVar[str]
    SENSITIVITIES: ClassVar[tuple[float, ...]]
    TIME_CONSTANTS: ClassVar[tuple[float, ...]]
    FREQ_RANGE: ClassVar[tuple[float, float]]
    AMPLITUDE_RANGE: ClassVar[tuple[float, float]]
    MAX_DETECTION_FREQUENCY: ClassVar[float]
    MAX_HARMONIC: ClassVar[int]
    PHASE_RANGE: ClassVar[tuple[float, float]]
    PHASE_STEP: ClassVar[float]
    OFFSET_LIMIT: ClassVar[float]  # % of full scale
    DEFAULTS: ClassVar[dict[str, float]]
    OVERLOAD_BITS: ClassVar[tuple[int, int]]  # (input, output) bits of LIAS
    # the command syntax: the SR830's takes spaces anywhere between mnemonic, '?' and
    # arguments, or none ("SNAP?1,2"); the SR860's needs them as `SPACED_COMMAND` says
    COMMAND_SYNTAX: ClassVar[re.Pattern[str]] = _COMMAND
    UNLOCK_BIT = 3

    def __init__(
        self, clock: Clock, source: SignalSource, *, rng: np.random.Generator | None = None
    ) -> None:
        self.name = self.MODEL
        self.clock = clock
        self.source = source
        self.rng = rng if rng is not None else np.random.default_rng()
        self.interference = 0.0  # V in phase on both inputs: fault injection (pick-up, a spike)
        self.aux_inputs = [0.0, 0.0, 0.0, 0.0]  # V at the rear-panel aux inputs (unconnected)
        self._t = clock.now()
        self._filter = np.zeros((4, 2))  # the four RC sections, (X, Y) in output units
        self._noise = np.zeros((filtered_noise.SECTIONS, 2))  # X, Y noise through the sections
        self._noise_tau = 0.0  # the time constant the noise state was drawn for
        self._esr = 1 << 7  # PON: set at power-on
        self._ese = self._sre = 0
        self._lias = self._liae = 0
        self._commands: dict[str, Handler] = {}
        self._add_common_commands()
        self._add_model_commands()
        self._reset()

    # --- settings ------------------------------------------------------------------------

    def _reset(self) -> None:
        d = self.DEFAULTS
        self.sens_index = int(d["sens"])
        self.tau_index = int(d["tau"])
        self.slope_index = int(d["slope"])
        self.frequency = d["freq"]
        self.amplitude = d["amplitude"]
        self.phase = 0.0
        self.harmonic = 1
        self.differential = False  # A−B rather than A
        self.current_gain = 0.0  # V/A on a current input; 0 on a voltage input
        self.dc_coupled = False
        self.shield_grounded = False
        self.sync_filter = False
        self.reference_internal = True
        self.offsets = [0.0, 0.0, 0.0]  # % of full scale on X, Y, R
        self.expands = [0, 0, 0]  # 0: ×1, 1: ×10, 2: ×100 on X, Y, R
        self.aux_outputs = [0.0, 0.0, 0.0, 0.0]

    @property
    def time_constant(self) -> float:
        return self.TIME_CONSTANTS[self.tau_index]

    @property
    def poles(self) -> int:
        return self.slope_index + 1

    @property
    def conversion(self) -> float:
        """Output units per input volt: 1 on a voltage input, A/V on a current input."""
        if self.current_gain:
            return 1.0 / (SENSOR_SOURCE_RESISTANCE + CURRENT_INPUT_IMPEDANCE)
        return 1.0

    @property
    def full_scale(self) -> float:
        """Full scale in output units (V, or A on a current input)."""
        volts = self.SENSITIVITIES[self.sens_index]
        return volts / self.current_gain if self.current_gain else volts

    @abstractmethod
    def input_limit(self) -> float:
        """Largest input amplitude (V at the input amplifier) before the input overloads."""

    # --- simulated time ------------------------------------------------------------------

    def _input_volts(self, times: Sequence[float]) -> np.ndarray:
        """Volts at the input amplifier (after A−B), in phase with the signal."""
        signal = (
            self.source.lockin_signal(times, self.amplitude)
            if self.reference_internal
            else np.zeros(len(times))  # no external reference is wired: unlocked
        )
        pickup = self.interference * (COMMON_MODE_REJECTION if self.differential else 1.0)
        return signal + pickup

    def demodulation_gain(self) -> complex:
        """z per input volt in phase with the reference, with every setting now in force."""
        if self.harmonic != 1 or not self.reference_internal:
            return 0j
        f = self.frequency
        coupling = 1.0 if self.dc_coupled else 1.0 / complex(1.0, -AC_COUPLING_CORNER / f)
        rotation = complex(math.cos(math.radians(self.phase)), -math.sin(math.radians(self.phase)))
        return coupling * rotation * self.conversion

    def _step(self, u: np.ndarray, h: float) -> None:
        """Exact response of the cascade to input u (X, Y) held for h seconds."""
        self._filter = u + cascade_decay(self._filter - u, h / self.time_constant)

    def _demodulated(self, times: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        volts = self._input_volts(times)
        g = self.demodulation_gain()
        return np.stack([volts * g.real, volts * g.imag], axis=1), volts

    def _integrate_to(self, now: float) -> None:
        t0 = self._t
        if now <= t0:
            return
        self._t = now
        tau = self.time_constant
        window = min(now - t0, _MEMORY_TAUS * tau)
        start = now - window
        if start > t0:  # a long gap: older input is forgotten but for its value at `start`
            self._step(self._demodulated([start])[0][0], start - t0)
        k = min(max(math.ceil(window / tau), 1), _MAX_SUBSTEPS)
        times = start + window * np.arange(1, k + 1) / k
        z, volts = self._demodulated(times)
        for value in z:
            self._step(value, window / k)
        self._step_noise(now - t0)
        self._latch_overloads(float(volts[-1]))

    def advance_to(self, now: float) -> None:
        """Integrate filter and noise from the last update to `now`, storing buffer samples."""
        times = self._sample_times(now)
        if len(times):
            self._integrate_to(times[0])
            self._store_sample(times[0])
            spacing = times[1] - times[0] if len(times) > 1 else math.inf
            if spacing <= self.time_constant:
                self._sample_evenly(times[1:], spacing)
            elif len(times) > 1:
                self._sample_sparsely(times[1:], spacing)
        self._integrate_to(now)

    def _sample_evenly(self, times: Sequence[float], spacing: float) -> None:
        """Samples `spacing` (≤ one time constant) apart: the input held at each sample's value
        over the interval before it, as `_integrate_to` does, with the world asked once."""
        tau = self.time_constant
        transition = _transition(spacing / tau)
        self._step_noise(0.0)  # the state drawn for this time constant
        phi, root = filtered_noise.step(spacing, tau)
        kick = root @ self.rng.normal(size=(len(times), filtered_noise.SECTIONS, 2))
        z, volts = self._demodulated(times)
        self._batch_noise_rms = self._noise_rms()  # no setting changes within the batch
        try:
            for i, t in enumerate(times):
                self._filter = z[i] + transition @ (self._filter - z[i])
                self._noise = phi @ self._noise + kick[i]
                self._t = t
                self._latch_overloads(float(volts[i]))
                self._store_sample(t)
        finally:
            self._batch_noise_rms = None

    def _sample_sparsely(self, times: Sequence[float], spacing: float) -> None:
        """Samples `spacing` (> one time constant) apart, each made as `_integrate_to` then
        `_store_sample` make it (the input before its last `_MEMORY_TAUS` time constants held
        at its value then, the rest in at most `_MAX_SUBSTEPS` held steps), but with the world
        asked once for all of them and each sample's filter update one matrix product. Sample
        by sample, a capture caught up on cost a millisecond a sample: a served world faster
        than real time kept the lock-in, and every instrument waiting on the world, busy for
        seconds."""
        tau = self.time_constant
        window = min(spacing, _MEMORY_TAUS * tau)
        k = min(max(math.ceil(window / tau), 1), _MAX_SUBSTEPS)
        steps = [window / k] * k
        offsets = list(window * np.arange(1, k + 1) / k - window)  # before each sample
        if spacing > window:  # older input forgotten but for its value at the window's start
            steps.insert(0, spacing - window)
            offsets.insert(0, -window)
        # a step held at u: filter -> D filter + (1 - D)·1 u; over all steps of a sample,
        # filter -> A filter + sum over steps of weight ⊗ u
        through, weights = np.eye(4), np.zeros((0, 4))
        for h in steps:
            d = _transition(h / tau)
            through = d @ through
            weights = np.vstack([weights @ d.T, (np.eye(4) - d).sum(axis=1)])
        at = (np.asarray(times, dtype=float)[:, None] + np.array(offsets)[None, :]).ravel()
        z, volts = self._demodulated(at)
        drive = np.einsum("ma,nmb->nab", weights, z.reshape(len(times), len(steps), 2))
        last_volts = volts.reshape(len(times), len(steps))[:, -1]
        self._step_noise(0.0)  # the state drawn for this time constant
        phi, root = filtered_noise.step(spacing, tau)
        kick = root @ self.rng.normal(size=(len(times), filtered_noise.SECTIONS, 2))
        self._batch_noise_rms = self._noise_rms()  # no setting changes within the batch
        try:
            for i, t in enumerate(times):
                self._filter = through @ self._filter + drive[i]
                self._noise = phi @ self._noise + kick[i]
                self._t = t
                self._latch_overloads(float(last_volts[i]))
                self._store_sample(t)
        finally:
            self._batch_noise_rms = None

    def _step_noise(self, h: float) -> None:
        """Advance the noise state by h seconds (a new time constant: a fresh stationary draw,
        as the filter's past noise is then of another bandwidth anyway)."""
        tau = self.time_constant
        if tau != self._noise_tau:
            self._noise = filtered_noise.initial(tau, self.rng)
            self._noise_tau = tau
        if h > 0:
            phi, root = filtered_noise.step(h, tau)
            kick = root @ self.rng.normal(size=(filtered_noise.SECTIONS, 2))
            self._noise = phi @ self._noise + kick

    def trigger_in(self, t: float) -> None:
        """A rising edge reaches TRIG IN at time t (≤ now) through a cable: the instrument
        is brought up to t, then acts on it as on the TRIG command."""
        self.advance_to(t)
        self._trigger(t)

    def _trigger(self, at: float | None = None) -> None:
        """What a rising edge at TRIG IN does (nothing unless the model has a buffer)."""

    def _sample_times(self, now: float) -> Sequence[float]:
        """Times up to `now` at which the data buffer stores a sample (none by default)."""
        return ()

    def _store_sample(self, t: float) -> None:
        """Store the outputs at time t in the data buffer."""

    def _noise_rms(self) -> float:
        density = self.source.lockin_noise_density(self.amplitude) * self.conversion
        return density * math.sqrt(enbw(self.time_constant, self.poles))

    _batch_noise_rms: float | None = None

    def _raw_outputs(self) -> tuple[float, float]:
        rms = self._batch_noise_rms if self._batch_noise_rms is not None else self._noise_rms()
        if self._noise_tau != self.time_constant:
            self._step_noise(0.0)
        noise = rms * filtered_noise.unit_scale(self.poles, self.time_constant) * self._noise[
            self.poles - 1]
        xy = self._filter[self.poles - 1]
        return float(xy[0] + noise[0]), float(xy[1] + noise[1])

    def _input_overloaded(self, volts: float) -> bool:
        amplifier = abs(volts) * self.conversion * (self.current_gain or 1.0)
        return amplifier > self.input_limit()

    def _latch_overloads(self, volts: float) -> None:
        input_bit, output_bit = self.OVERLOAD_BITS
        x, y = self._raw_outputs()
        if self._input_overloaded(volts):
            self._lias |= 1 << input_bit
        expand = [10 ** e for e in self.expands]
        if max(abs(x) * expand[0], abs(y) * expand[1]) > self.full_scale:
            self._lias |= 1 << output_bit
        if not self.reference_internal:
            self._lias |= 1 << self.UNLOCK_BIT

    def outputs(self) -> dict[str, float]:
        """X, Y, R (V, or A on a current input) and θ (degrees) now, offsets applied."""
        self.advance_to(self.clock.now())
        return self.outputs_at_filter()

    def outputs_at_filter(self) -> dict[str, float]:
        """The outputs from the filter as it stands (time not advanced)."""
        limit = OUTPUT_HEADROOM * self.full_scale
        x, y = (min(max(v, -limit), limit) for v in self._raw_outputs())
        fs = self.full_scale / 100.0
        return {
            "X": x - self.offsets[0] * fs,
            "Y": y - self.offsets[1] * fs,
            "R": math.hypot(x, y) - self.offsets[2] * fs,
            "T": math.degrees(math.atan2(y, x)),
        }

    def noise_density(self) -> float:
        """The X (= Y) noise an instrument estimates, in output units per √Hz."""
        return self.source.lockin_noise_density(self.amplitude) * self.conversion

    # --- protocol ------------------------------------------------------------------------

    def device_clear(self) -> None:
        """Nothing is buffered between messages here; a clear changes no setting."""

    def handle(self, message: str) -> str | None:
        self.advance_to(self.clock.now())
        replies: list[str] = []
        for command in message.split(";"):
            if not command.strip():
                continue
            reply = self._execute(command)
            if reply is not None:
                replies.append(reply)
        if not replies:
            return None
        if len(replies) == 1:
            return replies[0]
        return self.reply_end.join(replies)  # the transport adds the last terminator

    def _execute(self, command: str) -> str | None:
        match = self.COMMAND_SYNTAX.match(command)
        if match is None:
            self._esr |= 1 << 5
            return None
        head, query, rest = match.group(1).upper(), bool(match.group(2)), match.group(3)
        args = [a.strip() for a in rest.split(",")] if rest else []
        handler = self._commands.get(head)
        try:
            if handler is None:
                raise BadCommand(head)
            return handler(query, args)
        except BadValue:
            self._esr |= 1 << 4
        except BadCommand:
            self._esr |= 1 << 5
        return None

    def _add(self, names: str, handler: Handler) -> None:
        for name in names.split():
            self._commands[name] = handler

    @abstractmethod
    def _add_model_commands(self) -> None:
        """Register the model's own commands with `_add`."""

    # --- generic handlers ----------------------------------------------------------------

    def indexed(self, attr: str, size: int, first: int = 0) -> Handler:
        """A setting held as an integer first..first+size-1 in attribute `attr`."""

        def handler(query: bool, args: list[str]) -> str | None:
            if query:
                no_args(args)
                return str(getattr(self, attr))
            setattr(self, attr, index(one(args), size, first))
            return None

        return handler

    def flag(self, attr: str) -> Handler:
        """A setting held as a bool, sent and read as 0 or 1."""

        def handler(query: bool, args: list[str]) -> str | None:
            if query:
                no_args(args)
                return str(int(getattr(self, attr)))
            setattr(self, attr, bool(index(one(args), 2)))
            return None

        return handler

    @staticmethod
    def action(run: Callable[[], None]) -> Handler:
        """A command without parameters and without a query form."""

        def handler(query: bool, args: list[str]) -> str | None:
            if query:
                raise BadCommand("query of an action")
            no_args(args)
            run()
            return None

        return handler

    @staticmethod
    def query_only(answer: Callable[[list[str]], str]) -> Handler:
        def handler(query: bool, args: list[str]) -> str | None:
            if not query:
                raise BadCommand("a query only")
            return answer(args)

        return handler

    @staticmethod
    def reading(produce: Callable[[], object]) -> Handler:
        """A query without parameters answering str(produce())."""

        def handler(query: bool, args: list[str]) -> str | None:
            if not query:
                raise BadCommand("a query only")
            no_args(args)
            return str(produce())

        return handler

    def _register(self, attr: str, size: int = 256) -> Handler:
        """An enable register: set with a value, or one bit with 'i, j'; read whole or one bit."""

        def handler(query: bool, args: list[str]) -> str | None:
            value = getattr(self, attr)
            if query:
                if not args:
                    return str(value)
                bit = index(one(args), size.bit_length() - 1)
                return str((value >> bit) & 1)
            if len(args) == 1:
                setattr(self, attr, index(args[0], size))
            elif len(args) == 2:
                bit = index(args[0], size.bit_length() - 1)
                on = index(args[1], 2)
                setattr(self, attr, (value & ~(1 << bit)) | (on << bit))
            else:
                raise BadValue(",".join(args))
            return None

        return handler

    def _status(self, attr: str, size: int = 256) -> Handler:
        """A latched status register: reading it (or bit i of it) clears what was read."""

        def handler(query: bool, args: list[str]) -> str | None:
            if not query:
                raise BadCommand("a query only")
            value = getattr(self, attr)
            if not args:
                setattr(self, attr, 0)
                return str(value)
            bit = index(one(args), size.bit_length() - 1)
            setattr(self, attr, value & ~(1 << bit))
            return str((value >> bit) & 1)

        return handler

    def _add_common_commands(self) -> None:
        self._add("*IDN", self.reading(lambda: self.IDN))
        self._add("*RST", self.action(self._reset))
        self._add("*CLS", self.action(self._clear_status))
        self._add("*ESR", self._status("_esr"))
        self._add("*ESE", self._register("_ese"))
        self._add("*SRE", self._register("_sre"))
        self._add("*STB", self.query_only(self._read_status_byte))
        self._add("LIAS", self._status("_lias", self.LIAS_SIZE))
        self._add("LIAE", self._register("_liae", self.LIAS_SIZE))
        self._add("OFLT", self.indexed("tau_index", len(self.TIME_CONSTANTS)))
        self._add("OFSL", self.indexed("slope_index", 4))
        self._add("SYNC", self.flag("sync_filter"))
        self._add("FREQ", self._frequency)
        self._add("SLVL", self._amplitude_command)
        self._add("PHAS", self._phase)
        self._add("HARM", self._harmonic)
        self._add("ICPL", self.flag("dc_coupled"))
        self._add("IGND", self.flag("shield_grounded"))
        self._add("APHS", self.action(self._auto_phase))

    LIAS_SIZE: ClassVar[int] = 256

    def _clear_status(self) -> None:
        self._esr = self._lias = 0

    def _read_status_byte(self, args: list[str]) -> str:
        value = self.status_byte()
        if not args:
            return str(value)
        return str((value >> index(one(args), 8)) & 1)

    @abstractmethod
    def status_byte(self) -> int:
        """The serial poll status byte now."""

    def _frequency(self, query: bool, args: list[str]) -> str | None:
        if query:
            no_args(args)
            return number_reply(self.frequency, ".6g")
        value = in_range(one(args), *self.FREQ_RANGE)
        self._detection_changes(value, self.harmonic)
        self.frequency = value
        # the harmonic drops to the largest whose detection frequency is allowed
        self.harmonic = max(1, min(self.harmonic, int(self.MAX_DETECTION_FREQUENCY // value)))
        return None

    def _harmonic(self, query: bool, args: list[str]) -> str | None:
        if query:
            no_args(args)
            return str(self.harmonic)
        value = index(one(args), self.MAX_HARMONIC, 1)
        if value * self.frequency > self.MAX_DETECTION_FREQUENCY:
            raise BadValue(args[0])
        self._detection_changes(self.frequency, value)
        self.harmonic = value
        return None

    def _detection_changes(self, frequency: float, harmonic: int) -> None:
        """Hook: the detection frequency is about to become frequency × harmonic."""

    def _amplitude_command(self, query: bool, args: list[str]) -> str | None:
        if query:
            no_args(args)
            return number_reply(self.amplitude, ".6g")
        self.amplitude = self._amplitude(in_range(one(args), *self.AMPLITUDE_RANGE))
        return None

    def _amplitude(self, value: float) -> float:
        return value

    def _phase(self, query: bool, args: list[str]) -> str | None:
        if query:
            no_args(args)
            return number_reply(self.phase, ".7g")
        value = in_range(one(args), *self.PHASE_RANGE)
        self.phase = wrap_phase(round(value / self.PHASE_STEP) * self.PHASE_STEP)
        return None

    def _auto_phase(self) -> None:
        """Shift the reference phase by the signal's phase now, so that Y reads zero."""
        x, y = self._raw_outputs()
        self.phase = wrap_phase(self.phase + math.degrees(math.atan2(y, x)))

    def _auto_offset(self, channel: int) -> None:
        """Set the offset of X, Y or R (0, 1, 2) so that it reads zero now."""
        self.offsets[channel] = 0.0
        value = self.outputs()["XYR"[channel]]
        limit = self.OFFSET_LIMIT
        self.offsets[channel] = min(max(100.0 * value / self.full_scale, -limit), limit)

    def _auto_gain(self) -> None:
        """The most sensitive scale whose full scale holds R with a third to spare."""
        r = math.hypot(*self._raw_outputs())
        volts = r * (self.current_gain or 1.0) * 1.5
        fits = [i for i, s in enumerate(self.SENSITIVITIES) if s >= volts]
        self.sens_index = (
            min(fits, key=lambda i: self.SENSITIVITIES[i])
            if fits
            else max(range(len(self.SENSITIVITIES)), key=lambda i: self.SENSITIVITIES[i])
        )

    def _aux_output(self, first: int) -> Handler:
        """AUXV i, x (−10.5..10.5 V, 1 mV steps) and AUXV? i, outputs numbered from `first`."""

        def handler(query: bool, args: list[str]) -> str | None:
            if query:
                return number_reply(self.aux_outputs[index(one(args), 4, first) - first], ".3f")
            if len(args) != 2:
                raise BadValue(",".join(args))
            channel = index(args[0], 4, first) - first
            self.aux_outputs[channel] = round(in_range(args[1], -10.5, 10.5), 3)
            return None

        return handler

    def _aux_input(self, first: int) -> Handler:
        """OAUX? i: the aux input voltages (1/3 mV resolution), numbered from `first`."""

        def answer(args: list[str]) -> str:
            volts = self.aux_inputs[index(one(args), 4, first) - first]
            return number_reply(round(volts * 3000.0) / 3000.0, ".4f")

        return self.query_only(answer)
