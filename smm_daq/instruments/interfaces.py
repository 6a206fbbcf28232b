"""Abstract instruments, in SI units and in the sample frame (x, y in the scan plane, z up).

Drivers (package `drivers`) implement these against real wire protocols; the rest of smm-daq
sees only these interfaces. Every method may raise `smm_daq.errors.InstrumentError` (or a
subclass); settings outside the instrument's range raise `RangeError` before anything is sent.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

if TYPE_CHECKING:
    from smm_daq.instruments.profile import StageSettings


# rig-clock s: how often a wait that a stop or an abort can end asks it: a stage's move, a
# scan's settling, dwell and field check, a fly line's motion, a recipe's wait step; so that
# the rig is made safe within this of the stop, however long the wait
STOP_SLICE_S = 0.1


@dataclass(frozen=True)
class Identity:
    """What an instrument says it is (from *IDN? or its equivalent)."""

    vendor: str
    model: str
    serial: str
    firmware: str

    def __str__(self) -> str:
        return f"{self.vendor} {self.model} (serial {self.serial}, firmware {self.firmware})"


@dataclass(frozen=True)
class StoppedAlone:
    """What a stage driver's optional `stop_alone` (a stop on a link of its own, before any
    connect: `smm-daq safe`) did, and what the controller held from before it: an error an
    earlier program or command left pending, which the stop's own check would otherwise have
    replaced unread ("" when there was none)."""

    done: str
    found: str = ""


class Instrument(ABC):
    """Common to all instruments: identity, status for a snapshot, and closing."""

    name: str = "instrument"

    @abstractmethod
    def identify(self) -> Identity:
        """Ask the instrument who it is."""

    @abstractmethod
    def snapshot(self) -> dict[str, object]:
        """Present settings and readings, JSON-serialisable, SI units in the key names."""

    def close(self) -> None:  # noqa: B027 - optional for implementations
        """Release the connection. Idempotent."""


class Stage(Instrument):
    """A positioning stage in the sample frame (m)."""

    name = "stage"

    @abstractmethod
    def move_to(self, x: float, y: float, z: float | None = None, *, wait: bool = True,
                stop: Callable[[], bool] | None = None) -> None:
        """Move to (x, y[, z]) in m; range-checked against `limits()` before moving.

        With `wait`, return once the stage reports on target (or raise on timeout). `stop`
        is asked before the move is sent and then at least every `STOP_SLICE_S` of the wait
        (from any thread's abort): once it is true, every axis is stopped (`stop()`) and
        `MoveStopped` is raised, the stage left where it stopped for the caller to make safe
        rather than waited for until it arrives (a move across the travel takes seconds).
        """

    @abstractmethod
    def position(self) -> np.ndarray:
        """Present position (x, y, z) in m."""

    @abstractmethod
    def limits(self) -> np.ndarray:
        """Travel limits as a (3, 2) array of [min, max] per axis in m."""

    @abstractmethod
    def velocity(self) -> float:
        """Present velocity setting in m/s."""

    @abstractmethod
    def set_velocity(self, v: float) -> None:
        """Set the velocity in m/s (range-checked)."""

    @abstractmethod
    def on_target(self) -> bool:
        """True when every axis has settled at its target."""

    @abstractmethod
    def stop(self) -> None:
        """Stop all motion at once. Must work at any time, also after an error."""

    def unreferenced_axes(self) -> list[str]:
        """Axes left unreferenced at connect (they refuse to move); none on a stage whose
        sensors need no referencing."""
        return []


class FieldSource(Instrument):
    """A three-axis coil set producing a field vector at the sample (T, sample frame)."""

    name = "coils"
    # Whether `set_field` asks its `stop` before every step of its ramp and ends the ramp
    # once it is true, as below: a driver that says so is handed a ramp whole. One that does
    # not (a plug-in's, by default) is handed it in pieces, the stop asked between them
    # (`smm_daq.instruments.ramp_pieces`), and its field is read back once the rig is made
    # safe: a stop it ignored must not ramp the field on to the one asked for.
    honours_stop: ClassVar[bool] = False
    # About how long (rig-clock s) one `set_field` waits once its ramp's last step is sent,
    # for the currents to settle: a driver handed its ramp in pieces waits it once a piece,
    # and once after its ramp to the safe state (`zero`, `output_off`), which a scan's and a
    # recipe's time estimates count (`ramp_pieces.settling_s`). One that does not say (a
    # plug-in's, by default) is taken to wait as long as the shipped driver waits at most
    # (its settle timeout), so that an estimate errs long, not short.
    settle_s: ClassVar[float] = 2.0

    @abstractmethod
    def set_field(self, b: np.ndarray, *, ramp: bool = True,
                  stop: Callable[[], bool] | None = None) -> None:
        """Set the applied field vector (3,) in T, ramping the currents within the rate limit.

        The field is the total at the sample, ambient included (the source nulls the ambient
        field through its calibration). Raises `RangeError` beyond `limits()`. `stop` is asked
        before every step of the ramp (from any thread's abort): once it is true, the ramp
        ends where it is and `RampStopped` is raised, the field left part-way for the caller
        to make safe.
        """

    @abstractmethod
    def field_setpoint(self) -> np.ndarray:
        """The field (3,) in T last requested."""

    @abstractmethod
    def field(self) -> np.ndarray:
        """The field (3,) in T computed from the measured currents through the calibration."""

    @abstractmethod
    def currents(self) -> np.ndarray:
        """Measured coil currents (3,) in A, coil axes order."""

    @abstractmethod
    def zero(self) -> None:
        """Ramp to the safe state (zero applied field, i.e. the ambient field nulled)."""

    @abstractmethod
    def limits(self) -> dict[str, float]:
        """`max_field_T`, `max_current_A`, `max_ramp_A_per_s`."""

    @abstractmethod
    def output_off(self) -> None:
        """Ramp currents to zero and switch the supplies' outputs off (end of day, faults)."""


class LockIn(Instrument):
    """A lock-in amplifier reading the sensor (V)."""

    name = "lockin"

    @abstractmethod
    def time_constant(self) -> float:
        """Time constant in s."""

    @abstractmethod
    def set_time_constant(self, tau: float) -> None:
        """Set the time constant to the nearest available value at or above `tau` (s)."""

    @abstractmethod
    def sensitivity(self) -> float:
        """Full-scale sensitivity in V."""

    @abstractmethod
    def set_sensitivity(self, volts: float) -> None:
        """Set the smallest full scale at or above `volts` (V)."""

    @abstractmethod
    def reference(self, *, stop: Callable[[], bool] | None = None) -> tuple[float, float]:
        """Reference frequency (Hz) and sine-out amplitude (V rms). `stop` is asked between
        the exchanges that read them (where they are more than one): once it is true, the
        read ends with `ReadStopped`, nothing more asked. (A plug-in driver's `reference`
        written before `stop` is called without it: `driver_calls.reference`.)"""

    @abstractmethod
    def set_reference(self, frequency: float, amplitude: float) -> None:
        """Set the internal reference frequency (Hz) and amplitude (V rms)."""

    @abstractmethod
    def read_xy(self) -> tuple[float, float]:
        """X and Y (V) sampled at one instant."""

    @abstractmethod
    def overloaded(self) -> bool:
        """True when the input or output has overloaded since the last check."""


class Magnetometer(Instrument):
    """A three-axis field sensor (fluxgate) at the sample position, sample frame."""

    name = "fluxgate"

    @abstractmethod
    def read_field(self) -> np.ndarray:
        """The field (3,) in T."""


# -- optional capabilities for fly scans ---------------------------------------------------
# A driver that can take part in a fly scan also derives from these. A fly plan is checked
# against the classes the profile names before anything connects, and against the connected
# instruments when its scan starts (`smm_daq.acquisition.fly.checks`).


@dataclass(frozen=True)
class BufferLimits:
    """What a lock-in's data buffer can do: its length (samples per channel), the sample
    rates it offers (Hz, ascending), its time constants (s, ascending), the highest rate it
    offers at each of those time constants (Hz: a DSP lock-in samples its filter's output no
    faster than the filter allows) and its filter poles."""

    points: int
    rates: tuple[float, ...]
    time_constants: tuple[float, ...]
    max_rates: tuple[float, ...]
    poles: int

    def max_rate(self, time_constant: float) -> float:
        """The highest rate at `time_constant`, one of `time_constants`."""
        i = min(range(len(self.time_constants)),
                key=lambda k: abs(self.time_constants[k] - time_constant))
        return self.max_rates[i]


CLOCK_RATE_SLACK = 0.1
"""The share of a span timed on the rig clock that a lock-in's buffer may store fewer
samples of: the lock-in counts on its own crystal (tens of ppm off), the rig clock may be
off by as much (a free-running PC crystal) or slewed while NTP corrects it (500 ppm through
the kernel, chrony up to 8.3 %). A count short by more is samples missing, not clocks."""


def least_stored(seconds: float, rate: float) -> int:
    """The fewest samples a buffer storing at `rate` (Hz) holds after `seconds` on the rig
    clock: `CLOCK_RATE_SLACK` off for the clocks, a sample of slack for rounding."""
    return max(0, math.floor(seconds * rate * (1 - CLOCK_RATE_SLACK)) - 1)


@dataclass(frozen=True)
class BufferTrace:
    """X and Y (V) as the buffer stored them, `rate` Hz apart; sample k was taken
    (k + 1)/rate after the buffer started."""

    rate: float
    x: np.ndarray
    y: np.ndarray

    def times(self, start: float) -> np.ndarray:
        """Sample times (s) on the rig clock, for a buffer started at `start`."""
        return start + (np.arange(self.x.size) + 1.0) / self.rate


class BufferedLockIn(ABC):
    """A lock-in that stores X and Y at a fixed rate into its own buffer."""

    @classmethod
    @abstractmethod
    def buffer_limits(cls) -> BufferLimits:
        """The buffer's length and rates, and the filter's time constants and poles: fixed
        by the model, so a fly plan is checked against them before connecting."""

    @abstractmethod
    def configure_buffer(self, rate: float, *,
                         stop: Callable[[], bool] | None = None) -> float:
        """Store X and Y at the smallest offered rate at or above `rate` (Hz), one shot
        (stop when full); returns the rate set. RangeError above the highest rate. `stop`
        (an abort) is asked while a capture under way is waited for to stop (a lock-in that
        captures on after its stop command: an SR860 to its block's end, up to minutes): once
        it is true, `ReadStopped`, nothing more asked. (A plug-in driver's
        `configure_buffer(self, rate)` without it is called without it: `driver_calls`.)"""

    @abstractmethod
    def start_buffer(self, *, on_trigger: bool,
                     pixel_time: float | None = None) -> float | None:
        """Clear the buffer and start storing now, or (`on_trigger`) at the next edge on
        the trigger input. Returns the rig-clock time storage started (bounded by the
        buffer's count read right after the start, within a span tied to the fly line's
        `pixel_time` where given: a wider one is refused as transient, so the start is
        retried), or None when armed or when the driver has no clock."""

    @classmethod
    def run_on_s(cls, samples: float, rate: float) -> float:
        """About how long (rig-clock s) `read_buffer` waits for the storing to stop after a
        line of `samples` stored at `rate` (Hz): what a flown scan's estimate counts a line.
        0 for a lock-in that stops at once, which a driver says by giving this method; one
        that does not (a plug-in's written without it) is counted 0, and the estimate says
        that its storing on is not counted (`duration.run_on_unsaid`)."""
        return 0.0

    @abstractmethod
    def read_buffer(self, *, stop: Callable[[], bool] | None = None) -> BufferTrace:
        """Stop storing and read back every stored sample. `stop` is asked before each piece
        of the read (on a slow serial line a full buffer takes minutes), and where the link
        can tell, within the piece under way too (one piece may take seconds): once it is
        true, the read ends with `ReadStopped`, nothing more asked (the rest of a piece cut
        short is dropped before the link's next exchange: on a serial line aside, the
        exchanges meanwhile refused, `StillDropping`)."""


@dataclass(frozen=True)
class RecordedMotion:
    """Where the stage actually was (sample-frame x, m) at times `t` (s, rig clock)."""

    t: np.ndarray
    x: np.ndarray


class FlyStage(ABC):
    """A stage that moves along x at a constant velocity while recording its position."""

    @classmethod
    @abstractmethod
    def velocity_limit_for(cls, settings: StageSettings) -> float:
        """The largest velocity (m/s) such a stage accepts once connected with `settings`:
        known before connecting, so a fly plan's speed is checked up front."""

    @abstractmethod
    def velocity_limit(self) -> float:
        """The largest velocity (m/s) the stage accepts."""

    @abstractmethod
    def recorder_points(self) -> int:
        """The most recorded positions `read_recorded` gives back for one line."""

    def fly_refused(self) -> str:
        """Why the connected controller cannot fly a line at all, "" where it can: asked
        when a scan starts, before anything is written, ramped or moved."""
        return ""

    @abstractmethod
    def trigger_output(self) -> bool:
        """True when `fly_x` pulses trigger output line 1 as the constant velocity starts."""

    @abstractmethod
    def fly_x(self, x_end: float, velocity: float, duration: float) -> float:
        """Start recording x (enough samples for `duration` s) and move along x to `x_end` at
        `velocity` m/s, without waiting; returns the rig-clock time the motion started."""

    @abstractmethod
    def read_recorded(self, start: float) -> RecordedMotion:
        """The recorded x positions since the motion that started at `start` (rig clock)."""
