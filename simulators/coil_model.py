"""The physics of three coil supplies and the field they make at the sample, on the virtual clock.

Constructor (what the world and the emulators build):

    CoilModel(clock, *, calibration, ambient=EARTH_FIELD, ambient_drift=(0, 0, 0),
              resolution=1e-4, slew_rate=10.0, resistance=2.0, rating=5.0, measure_noise=0.0,
              seed=0)
    CoilModel.from_settings(settings: CoilSettings, clock, *, calibration_error=0.01,
                            ambient=EARTH_FIELD, ambient_drift=(0, 0, 0), seed=0, **kw)

- `calibration`: the TRUE (3, 3) T/A matrix, sample frame, columns = coils x, y, z.
  `from_settings` perturbs the profile's nominal matrix by `calibration_error` (relative
  scale and cross-talk errors drawn with `seed`), so that coil calibration has work to do.
- `ambient`: the true (3,) T field with every current at zero (default an Earth-like field).
- `ambient_drift`: (3,) T/s, how the ambient field changes on the clock from the model's
  making (a lab's field drifting over a long scan: `ambient_at(now)`); `set_ambient_drift`
  changes it from now on.
- `resolution`: A, the smallest current step a supply sets (setpoints are rounded to it).
- `slew_rate`: A/s, how fast a supply's output follows a new setpoint (the coil's inductance).
- `resistance`: Ω per coil; the supply's voltage limit (compliance) caps |I| at V_limit / R.
- `rating`: A, the largest current a supply accepts.
- `measure_noise`: A RMS of the supplies' current read-back (MEAS:CURR?).

Supply index i drives coil axis i.
`field_at_sample(now) = calibration @ I(now) + ambient_at(now)`.
Outputs start off with zero setpoints. `trip(i)` injects a fault: the output switches off and
a fault message waits in `pop_fault(i)` for the emulator's error queue.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from smm_daq.clock import Clock
from smm_daq.instruments.profile import CoilSettings

EARTH_FIELD = np.array([14.0e-6, 0.6e-6, -49.0e-6])  # T, sample frame (z up: points down)


@dataclass
class _Supply:
    setpoint: float = 0.0  # A, after rounding to the resolution
    start: float = 0.0  # output current at t0
    t0: float = 0.0
    output: bool = False
    voltage_limit: float = 20.0  # V
    fault: str | None = None


class CoilModel:
    """Three bipolar current supplies driving a three-axis coil set."""

    def __init__(
        self,
        clock: Clock,
        *,
        calibration: np.ndarray,
        ambient: Sequence[float] | np.ndarray = EARTH_FIELD,
        ambient_drift: Sequence[float] | np.ndarray = (0.0, 0.0, 0.0),
        resolution: float = 1e-4,
        slew_rate: float = 10.0,
        resistance: float = 2.0,
        rating: float = 5.0,
        measure_noise: float = 0.0,
        seed: int = 0,
    ) -> None:
        calibration = np.array(calibration, dtype=float)
        ambient = np.array(ambient, dtype=float)
        drift = np.array(ambient_drift, dtype=float)
        if calibration.shape != (3, 3) or ambient.shape != (3,) or drift.shape != (3,):
            raise ValueError("calibration must be (3, 3) T/A, ambient (3,) T and ambient_drift "
                             "(3,) T/s")
        if min(resolution, slew_rate, resistance, rating) <= 0 or measure_noise < 0:
            raise ValueError("resolution, slew_rate, resistance, rating must be > 0")
        self.clock = clock
        self.calibration = calibration
        self.ambient = ambient
        self.ambient_drift = drift
        self._drift_from = clock.now()
        self.resolution = float(resolution)
        self.slew_rate = float(slew_rate)
        self.resistance = float(resistance)
        self.rating = float(rating)
        self.measure_noise = float(measure_noise)
        self._rng = np.random.default_rng(seed)
        now = clock.now()
        self._supplies = [_Supply(t0=now) for _ in range(3)]

    @classmethod
    def from_settings(
        cls,
        settings: CoilSettings,
        clock: Clock,
        *,
        calibration_error: float = 0.01,
        ambient: Sequence[float] | np.ndarray = EARTH_FIELD,
        ambient_drift: Sequence[float] | np.ndarray = (0.0, 0.0, 0.0),
        seed: int = 0,
        **kw: float,
    ) -> CoilModel:
        """Coils like the profile's, whose true matrix differs from the nominal one.

        true = nominal @ (1 + E), E with independent normal entries of SD `calibration_error`:
        scale errors on the diagonal, cross-talk off it.
        """
        rng = np.random.default_rng(seed)
        error = rng.normal(0.0, calibration_error, (3, 3))
        true = settings.calibration @ (np.eye(3) + error)
        return cls(clock, calibration=true, ambient=ambient, ambient_drift=ambient_drift,
                   seed=seed + 1, **kw)

    def _current(self, s: _Supply, now: float) -> float:
        if not s.output:
            return 0.0
        change = s.setpoint - s.start
        slewed = self.slew_rate * max(0.0, now - s.t0)
        i = s.setpoint if slewed >= abs(change) else s.start + math.copysign(slewed, change)
        cap = s.voltage_limit / self.resistance
        return min(max(i, -cap), cap)

    def _restart(self, s: _Supply) -> None:
        now = self.clock.now()
        s.start, s.t0 = self._current(s, now), now

    def set_current(self, i: int, amps: float) -> None:
        """New setpoint (rounded to the resolution). Raises ValueError beyond the rating."""
        if not abs(amps) <= self.rating:
            raise ValueError(f"current {amps} A beyond the rating ±{self.rating} A")
        s = self._supplies[i]
        self._restart(s)
        s.setpoint = round(amps / self.resolution) * self.resolution

    def setpoint(self, i: int) -> float:
        return self._supplies[i].setpoint

    def set_output(self, i: int, on: bool) -> None:
        """Switch an output; switching on clears a trip and ramps from zero at the slew rate."""
        s = self._supplies[i]
        if on and not s.output:
            s.start, s.t0 = 0.0, self.clock.now()
        if not on:
            self._restart(s)
        s.output = bool(on)

    def output(self, i: int) -> bool:
        return self._supplies[i].output

    def set_voltage_limit(self, i: int, volts: float) -> None:
        if not volts >= 0:
            raise ValueError(f"voltage limit must be >= 0 V, got {volts}")
        s = self._supplies[i]
        self._restart(s)
        s.voltage_limit = float(volts)

    def voltage_limit(self, i: int) -> float:
        return self._supplies[i].voltage_limit

    def current(self, i: int, now: float | None = None) -> float:
        """True output current (A) of supply i."""
        return self._current(self._supplies[i], self.clock.now() if now is None else now)

    def currents(self, now: float | None = None) -> np.ndarray:
        t = self.clock.now() if now is None else now
        return np.array([self._current(s, t) for s in self._supplies])

    def measured_current(self, i: int) -> float:
        """The supply's read-back: true current plus read-back noise."""
        noise = self._rng.normal(0.0, self.measure_noise) if self.measure_noise else 0.0
        return self.current(i) + noise

    def voltage(self, i: int) -> float:
        """Output voltage (V) across coil i."""
        return self.current(i) * self.resistance

    def in_compliance(self, i: int) -> bool:
        """True when the voltage limit keeps the current below its setpoint."""
        s = self._supplies[i]
        cap = s.voltage_limit / self.resistance
        return s.output and abs(s.setpoint) > cap

    def ambient_at(self, now: float | None = None) -> np.ndarray:
        """The ambient field (3,) in T at clock time `now` (default: now), drifted."""
        t = self.clock.now() if now is None else now
        return self.ambient + self.ambient_drift * (t - self._drift_from)

    def set_ambient_drift(self, rate: Sequence[float] | np.ndarray) -> None:
        """From now on the ambient field drifts at `rate` (3,) T/s, from where it is now."""
        now = self.clock.now()
        self.ambient = self.ambient_at(now)
        self.ambient_drift = np.array(rate, dtype=float)
        self._drift_from = now

    def field_at_sample(self, now: float | None = None) -> np.ndarray:
        """Total field (3,) in T at the sample: calibration @ currents + ambient."""
        return self.calibration @ self.currents(now) + self.ambient_at(now)

    def trip(self, i: int, reason: str = "output protection tripped") -> None:
        """Fault injection: supply i switches its output off and records why."""
        s = self._supplies[i]
        self.set_output(i, False)
        s.fault = reason

    def pop_fault(self, i: int) -> str | None:
        """The fault message of supply i since the last call, if any."""
        s = self._supplies[i]
        fault, s.fault = s.fault, None
        return fault
