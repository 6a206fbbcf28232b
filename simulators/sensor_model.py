"""The simulated sensors: the MTJ read by the lock-in, and the three-axis fluxgate.

MTJ: volts at the lock-in input = sensitivity × (Bz + drift) × excitation / reference
amplitude + offset. Its white noise is stated as an RMS field in a noise bandwidth (by default
the lock-in's equivalent noise bandwidth at the profile's time constant and 12 dB/oct), so a
reading at the profile's settings scatters by `noise_rms`, and a longer time constant averages
it down as on the real instrument.

Fluxgate: V = gain @ B + offset + noise, the TRUE response differing from the nominal
calibration of the profile by scale, orthogonality and offset errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def enbw(time_constant: float, poles: int) -> float:
    """Equivalent noise bandwidth (Hz) of `poles` cascaded RC filters of one time constant."""
    # ∫0^∞ |1 / (1 + 2πifτ)^n|² df = (2n-2)! / ((n-1)!² 2^(2n-1)) / (2τ)
    n = poles
    return (
        math.factorial(2 * n - 2)
        / (math.factorial(n - 1) ** 2 * 2 ** (2 * n - 1))
        / (2 * time_constant)
    )


@dataclass(frozen=True)
class MTJSensor:
    """A magnetic tunnel junction bridge and its preamplifier, as the lock-in sees it."""

    sensitivity: float  # V/T at the lock-in input, at `reference_amplitude` excitation
    active_area: tuple[float, float]  # (w, l) m
    noise_rms: float  # T, white noise RMS in `noise_bandwidth`
    noise_bandwidth: float  # Hz
    drift_rate: float  # T/s, slow linear drift of the zero
    offset: float  # V at the lock-in input with no field
    reference_amplitude: float  # V rms of excitation at which `sensitivity` holds

    def __post_init__(self) -> None:
        if self.sensitivity == 0 or self.noise_rms < 0 or self.noise_bandwidth <= 0:
            raise ValueError("sensitivity must be non-zero, noise >= 0 and bandwidth > 0")
        if self.reference_amplitude <= 0:
            raise ValueError("reference amplitude must be > 0")

    def noise_density(self) -> float:
        """White field noise in T/√Hz."""
        return self.noise_rms / math.sqrt(self.noise_bandwidth)

    def gain(self, excitation: float) -> float:
        """V per T at the lock-in input for an excitation amplitude (V rms)."""
        return self.sensitivity * excitation / self.reference_amplitude

    def volts(self, bz: np.ndarray, elapsed: np.ndarray, excitation: float) -> np.ndarray:
        """Noiseless input voltage for fields `bz` (T) at `elapsed` s since the world began."""
        return self.gain(excitation) * (bz + self.drift_rate * elapsed) + self.offset


@dataclass(frozen=True)
class FluxgateModel:
    """The true response of a three-axis fluxgate: V = gain @ B + offset (+ noise)."""

    gain: np.ndarray  # (3, 3) V/T, rows: outputs x, y, z
    offset: np.ndarray  # (3,) V
    noise_rms: float  # V per output

    @classmethod
    def with_errors(
        cls,
        nominal_scale: np.ndarray,
        nominal_offset: np.ndarray,
        *,
        scale_error: float,
        orthogonality_error: float,
        offset_error: np.ndarray,
        noise_rms: float,
        rng: np.random.Generator,
    ) -> FluxgateModel:
        """A fluxgate whose nominal calibration (B = scale @ (V - offset)) is slightly wrong.

        scale_error: relative SD of each output's gain; orthogonality_error: SD (rad) of each
        sensing axis' tilt towards the other two; offset_error (3,) T and noise_rms T are
        field-equivalent and converted to volts through the nominal response.
        """
        nominal_gain = np.linalg.inv(np.asarray(nominal_scale, dtype=float))
        tilt = rng.normal(0.0, orthogonality_error, (3, 3))
        np.fill_diagonal(tilt, 0.0)
        scale = np.diag(1.0 + rng.normal(0.0, scale_error, 3))
        gain = scale @ nominal_gain @ (np.eye(3) + tilt)
        offset = np.asarray(nominal_offset, dtype=float) + nominal_gain @ np.asarray(
            offset_error, dtype=float
        )
        volts_per_tesla = float(np.mean(np.abs(np.diag(nominal_gain))))
        return cls(gain=gain, offset=offset, noise_rms=noise_rms * volts_per_tesla)

    def volts(self, field: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Output voltages (3,) for the field (3,) T at the sensor, noise included."""
        noise = rng.normal(0.0, self.noise_rms, 3) if self.noise_rms > 0 else np.zeros(3)
        return self.gain @ np.asarray(field, dtype=float) + self.offset + noise
