"""Abstract instruments, in SI units and in the sample frame (x, y in the scan plane, z up).

Drivers (package `drivers`) implement these against real wire protocols; the rest of smm-daq
sees only these interfaces. Every method may raise `smm_daq.errors.InstrumentError` (or a
subclass); settings outside the instrument's range raise `RangeError` before anything is sent.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Identity:
    """What an instrument says it is (from *IDN? or its equivalent)."""

    vendor: str
    model: str
    serial: str
    firmware: str

    def __str__(self) -> str:
        return f"{self.vendor} {self.model} (serial {self.serial}, firmware {self.firmware})"


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
    def move_to(self, x: float, y: float, z: float | None = None, *, wait: bool = True) -> None:
        """Move to (x, y[, z]) in m; range-checked against `limits()` before moving.

        With `wait`, return once the stage reports on target (or raise on timeout).
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


class FieldSource(Instrument):
    """A three-axis coil set producing a field vector at the sample (T, sample frame)."""

    name = "coils"

    @abstractmethod
    def set_field(self, b: np.ndarray, *, ramp: bool = True) -> None:
        """Set the applied field vector (3,) in T, ramping the currents within the rate limit.

        The field is the total at the sample, ambient included (the source nulls the ambient
        field through its calibration). Raises `RangeError` beyond `limits()`.
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
    def reference(self) -> tuple[float, float]:
        """Reference frequency (Hz) and sine-out amplitude (V rms)."""

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
