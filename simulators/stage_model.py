"""The physics of a closed-loop piezo stage, in controller axes, driven by the virtual clock.

Constructor (what the world and the emulator build):

    StageModel(clock, *, axes=("1", "2", "3"), axis_sign=(1, 1, 1), travel, velocity,
               resolution=10e-9, settle_time=0.005, max_velocity=0.01, start=None)
    StageModel.from_settings(settings: StageSettings, clock, *, start=None)

- `axes`: the controller's axis names, in sample x, y, z order (the profile's `stage.axes`);
  the controller reports them in this order (GCS `SAI?`).
- `axis_sign`: sample coordinate = sign × controller position, per axis.
- `travel`: (3, 2) [min, max] per axis in m, sample frame; the controller's own limits are
  that range mapped into controller coordinates.
- `velocity`: initial velocity of every axis (m/s); `max_velocity` the largest accepted.
- `resolution`: closed-loop precision (m): an axis settles on its target rounded to this grid.
- `settle_time`: s after arrival before the axis reports on target.
- `start`: (3,) sample-frame start position in m (default: the lower travel limit).

Each axis moves at its velocity along a straight line from where it was when the move was
commanded; a new move, a stop or a velocity change restarts the line from the present position.
Servo starts off, as on a real controller after power-up; moves need the servo on.
All positions here are SI metres; the emulator converts to the controller's units.
`stall(axis)` injects a fault: the axis stops where it is and never reaches its target.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from smm_daq.clock import Clock
from smm_daq.instruments.profile import StageSettings

LIMIT_SLACK = 1e-12  # m: limits compare with this slack, for unit conversions' rounding


class StageRefused(Exception):
    """A command the controller refuses: `reason` is "servo_off" or "out_of_limits"."""

    def __init__(self, reason: str, axis: str) -> None:
        self.reason = reason
        self.axis = axis
        super().__init__(f"axis {axis}: {reason}")


@dataclass
class _Axis:
    name: str
    lo: float  # controller-frame limits, m
    hi: float
    velocity: float
    start: float  # position at t0, m
    t0: float
    target: float  # where the axis is heading (after rounding to the resolution)
    servo: bool = False
    stalled: bool = False
    settled_at: float = -math.inf  # when the axis reports on target (arrival + settle time)

    def position(self, now: float) -> float:
        if self.stalled:
            return self.start
        distance = self.target - self.start
        travelled = self.velocity * max(0.0, now - self.t0)
        if travelled >= abs(distance):
            return self.target
        return self.start + math.copysign(travelled, distance)

    def arrival(self) -> float:
        if self.stalled:
            return math.inf
        return self.t0 + abs(self.target - self.start) / self.velocity

    def moving(self, now: float) -> bool:
        return self.position(now) != self.target

    def restart(self, now: float, target: float, settle_time: float) -> None:
        self.start = self.position(now)
        self.t0 = now
        self.target = target
        self.settled_at = self.arrival() + settle_time


class StageModel:
    """Three closed-loop axes with travel limits, velocity, settling and resolution."""

    def __init__(
        self,
        clock: Clock,
        *,
        axes: Sequence[str] = ("1", "2", "3"),
        axis_sign: Sequence[int] = (1, 1, 1),
        travel: np.ndarray,
        velocity: float,
        resolution: float = 10e-9,
        settle_time: float = 0.005,
        max_velocity: float = 0.01,
        start: Sequence[float] | None = None,
    ) -> None:
        travel = np.asarray(travel, dtype=float)
        if len(axes) != 3 or len(set(axes)) != 3:
            raise ValueError(f"need three distinct axis names, got {axes!r}")
        if travel.shape != (3, 2) or np.any(travel[:, 1] <= travel[:, 0]):
            raise ValueError(f"travel must be (3, 2) [min, max] with min < max, got {travel}")
        if not 0 < velocity <= max_velocity:
            raise ValueError(f"velocity must be in (0, {max_velocity}] m/s, got {velocity}")
        if resolution <= 0 or settle_time < 0:
            raise ValueError("resolution must be > 0 and settle_time >= 0")
        self.clock = clock
        self.axis_names = tuple(axes)
        self.axis_sign = tuple(int(s) for s in axis_sign)
        self.resolution = float(resolution)
        self.settle_time = float(settle_time)
        self.max_velocity = float(max_velocity)
        start_sample = travel[:, 0] if start is None else np.asarray(start, dtype=float)
        now = clock.now()
        self._axes: dict[str, _Axis] = {}
        for k, name in enumerate(self.axis_names):
            sign = self.axis_sign[k]
            lo, hi = sorted((sign * travel[k, 0], sign * travel[k, 1]))
            p = sign * float(start_sample[k])
            if not lo <= p <= hi:
                raise ValueError(f"start position {start_sample[k]} m outside travel of axis {k}")
            self._axes[name] = _Axis(name, lo, hi, float(velocity), p, now, p)

    @classmethod
    def from_settings(
        cls, settings: StageSettings, clock: Clock, *, start: Sequence[float] | None = None
    ) -> StageModel:
        """The stage a profile describes (its axes, signs, travel, velocity, resolution)."""
        return cls(
            clock,
            axes=settings.axes,
            axis_sign=settings.axis_sign,
            travel=settings.travel,
            velocity=settings.velocity,
            resolution=settings.resolution,
            settle_time=settings.settle_time,
            max_velocity=max(0.01, settings.velocity),
            start=start,
        )

    def _axis(self, name: str) -> _Axis:
        try:
            return self._axes[name]
        except KeyError:
            raise KeyError(f"no axis {name!r}; axes are {self.axis_names}") from None

    def has_axis(self, name: str) -> bool:
        return name in self._axes

    def limits(self, name: str) -> tuple[float, float]:
        """Controller-frame travel (m) of one axis."""
        a = self._axis(name)
        return a.lo, a.hi

    def position(self, name: str) -> float:
        """Controller-frame position (m) of one axis now."""
        return self._axis(name).position(self.clock.now())

    def target(self, name: str) -> float:
        return self._axis(name).target

    def on_target(self, name: str) -> bool:
        a = self._axis(name)
        return a.servo and self.clock.now() >= a.settled_at

    def servo(self, name: str) -> bool:
        return self._axis(name).servo

    def set_servo(self, name: str, on: bool) -> None:
        a = self._axis(name)
        now = self.clock.now()
        if bool(on) != a.servo:  # either way the axis holds where it is now
            a.restart(now, a.position(now), self.settle_time)
        a.servo = bool(on)

    def velocity(self, name: str) -> float:
        return self._axis(name).velocity

    def set_velocity(self, name: str, v: float) -> None:
        """Raises ValueError outside (0, max_velocity]."""
        if not 0 < v <= self.max_velocity:
            raise ValueError(f"velocity {v} m/s outside (0, {self.max_velocity}]")
        a = self._axis(name)
        now = self.clock.now()
        if a.moving(now):
            a.restart(now, a.target, self.settle_time)
            a.velocity = float(v)
            a.settled_at = a.arrival() + self.settle_time
        else:
            a.velocity = float(v)

    def move(self, targets: Mapping[str, float]) -> None:
        """Start moving the named axes (controller frame, m). All or nothing.

        Raises StageRefused (servo off, or a target outside the limits) before any axis moves.
        """
        for name, t in targets.items():
            a = self._axis(name)
            if not a.servo:
                raise StageRefused("servo_off", name)
            if not a.lo - LIMIT_SLACK <= t <= a.hi + LIMIT_SLACK:
                raise StageRefused("out_of_limits", name)
        now = self.clock.now()
        for name, t in targets.items():
            a = self._axes[name]
            snapped = round(t / self.resolution) * self.resolution
            a.restart(now, min(max(snapped, a.lo), a.hi), self.settle_time)

    def stop(self) -> None:
        """Every axis stops where it is now."""
        now = self.clock.now()
        for a in self._axes.values():
            if a.moving(now):
                a.restart(now, a.position(now), self.settle_time)

    def stall(self, name: str) -> None:
        """Fault injection: the axis freezes where it is and never arrives."""
        a = self._axis(name)
        now = self.clock.now()
        a.start, a.t0 = a.position(now), now
        a.stalled = True
        a.settled_at = math.inf

    def sample_position(self, now: float | None = None) -> np.ndarray:
        """Position (3,) in m in the sample frame at `now` (default: the clock's now)."""
        t = self.clock.now() if now is None else now
        return np.array(
            [
                sign * self._axes[name].position(t)
                for name, sign in zip(self.axis_names, self.axis_sign, strict=True)
            ]
        )
