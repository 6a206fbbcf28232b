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
- `deceleration`: m/s² each axis brakes at after a stop (a controller's DEC, parameter 0xB);
  math.inf stops it where it is at once.
- `start`: (3,) sample-frame start position in m (default: the lower travel limit).
- `needs_reference`: the axes have incremental sensors (a motor stage): after power-up they are
  unreferenced, their position counter reads 0 wherever they are, and they refuse moves until
  `reference` has driven each to its reference switch (the middle of its travel). Axes with
  absolute sensors (a flexure piezo stage) are referenced from the start.

Each axis moves at its velocity along a straight line from where it was when the move was
commanded; a new move or a velocity change restarts the line from the present position. A stop
brakes the axis at its deceleration: it moves on, slowing, for velocity / deceleration s and
reports it moves meanwhile (unless its target is nearer than that braking takes it).
Servo starts off, as on a real controller after power-up; moves need the servo on.
All positions here are SI metres; the emulator converts to the controller's units.
`stall(axis)` injects a fault: the axis stops where it is and never reaches its target.
Each axis keeps the straight-line segments of its recent motion, so `position_at` and
`target_at` answer for past times too (what a data recorder sampled then).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from smm_daq.clock import Clock
from smm_daq.instruments.profile import StageSettings

LIMIT_SLACK = 1e-12  # m: limits compare with this slack, for unit conversions' rounding


HISTORY = 4096  # motion segments kept per axis for `position_at`

Trajectory = Callable[[float], float]  # time (s) -> controller-frame position (m)
_Segment = tuple[float, float, float, float, bool, "Trajectory | None", float]


class StageRefused(Exception):
    """A command the controller refuses: `reason` is "servo_off", "unreferenced" or
    "out_of_limits"."""

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
    referenced: bool = True
    origin: float = 0.0  # m: where the position counter reads 0 (the start, until referenced)
    referencing: bool = False  # driving to the reference switch
    reference_velocity: float = 0.0  # m/s of a reference move (a controller parameter)
    setting: float | None = None  # the velocity setting, kept while a reference move runs
    trajectory: Trajectory | None = None  # position set point as a function of time (a wave)
    lag: float = 0.0  # s: how far the closed loop trails a trajectory
    deceleration: float = math.inf  # m/s² a stop brakes at
    braking: bool = False  # braking after a stop (a stop meanwhile changes nothing)
    segments: list[_Segment] = field(default_factory=list)
    segment_times: list[float] = field(default_factory=list)  # each segment's t0, for bisect

    def _current(self) -> _Segment:
        return (
            self.start, self.t0, self.target, self.velocity, self.stalled, self.trajectory,
            self.lag,
        )  # fmt: skip

    def position(self, now: float) -> float:
        return _segment_position(*self._current(), now)

    def _segment(self, t: float) -> _Segment:
        current = self._current()
        if t >= self.t0 or not self.segments:
            return current
        k = bisect.bisect_right(self.segment_times, t) - 1
        return self.segments[max(k, 0)]

    def position_at(self, t: float) -> float:
        return _segment_position(*self._segment(t), t)

    def target_at(self, t: float) -> float:
        segment = self._segment(t)
        trajectory = segment[5]
        return trajectory(t) if trajectory is not None else segment[2]

    def arrival(self) -> float:
        if self.stalled:
            return math.inf
        return self.t0 + abs(self.target - self.start) / self.velocity

    def moving(self, now: float) -> bool:
        if self.trajectory is not None:
            return now < self.settled_at
        return self.position(now) != self.target

    def restart(
        self,
        now: float,
        target: float,
        settle_time: float,
        trajectory: Trajectory | None = None,
        end: float = math.inf,
        lag: float = 0.0,
    ) -> None:
        self.segments.append(self._current())
        self.segment_times.append(self.t0)
        del self.segments[:-HISTORY], self.segment_times[:-HISTORY]
        self.braking = False
        self.start = self.position(now)
        self.t0 = now
        self.target = target
        self.trajectory = trajectory
        self.lag = lag if trajectory is not None else 0.0
        self.settled_at = (end + lag if trajectory is not None else self.arrival()) + settle_time


def _segment_position(
    start: float,
    t0: float,
    target: float,
    velocity: float,
    stalled: bool,
    trajectory: Trajectory | None,
    lag: float,
    now: float,
) -> float:
    if stalled:
        return start
    if trajectory is not None:  # the closed loop trails its set point by `lag`
        return start if now - lag < t0 else trajectory(now - lag)
    distance = target - start
    travelled = velocity * max(0.0, now - t0)
    if travelled >= abs(distance):
        return target
    return start + math.copysign(travelled, distance)


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
        needs_reference: bool = False,
        deceleration: float = math.inf,
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
        if not deceleration > 0:
            raise ValueError(f"deceleration must be > 0 m/s², got {deceleration}")
        self.clock = clock
        self.axis_names = tuple(axes)
        self.axis_sign = tuple(int(s) for s in axis_sign)
        self.resolution = float(resolution)
        self.settle_time = float(settle_time)
        self.max_velocity = float(max_velocity)
        self.needs_reference = bool(needs_reference)
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
            self._axes[name].referenced = not needs_reference
            self._axes[name].reference_velocity = float(velocity)
            self._axes[name].origin = p if needs_reference else 0.0
            self._axes[name].deceleration = float(deceleration)

    @classmethod
    def from_settings(
        cls,
        settings: StageSettings,
        clock: Clock,
        *,
        start: Sequence[float] | None = None,
        travel: np.ndarray | None = None,
        needs_reference: bool = False,
    ) -> StageModel:
        """The stage a profile describes (its axes, signs, velocity, resolution); `travel`
        (sample frame, m) is the stage's own, the profile's when None."""
        return cls(
            clock,
            axes=settings.axes,
            axis_sign=settings.axis_sign,
            travel=settings.travel if travel is None else travel,
            needs_reference=needs_reference,
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
        """Controller-frame position (m) of one axis now (the true one, whatever the counter)."""
        return self._axis(name).position(self.clock.now())

    def position_at(self, name: str, t: float) -> float:
        """Controller-frame position (m) of one axis at a past (or present) time `t`."""
        return self._axis(name).position_at(t)

    def target_at(self, name: str, t: float) -> float:
        """Where the axis was commanded to be (m) at time `t`."""
        return self._axis(name).target_at(t)

    def counter(self, name: str) -> float:
        """The origin (m) of the axis' position counter: 0 once referenced."""
        self._update_reference(self._axis(name))
        return self._axis(name).origin

    def referenced(self, name: str) -> bool:
        a = self._axis(name)
        self._update_reference(a)
        return a.referenced

    def _update_reference(self, a: _Axis) -> None:
        if a.referencing and self.clock.now() >= a.settled_at:
            a.referencing, a.referenced, a.origin = False, True, 0.0
            self._end_reference_velocity(a)

    def _end_reference_velocity(self, a: _Axis) -> None:
        """The axis moves at its velocity setting again (a reference move ran at its own)."""
        if a.setting is None:
            return
        settled = a.settled_at
        a.restart(self.clock.now(), a.target, 0.0)  # the past motion keeps its own velocity
        a.velocity, a.setting = a.setting, None
        a.settled_at = settled

    def reference(self, names: Sequence[str]) -> None:
        """Drive the axes to their reference switches (mid travel) at each one's reference
        velocity (not its velocity setting, as a motor controller does); referenced on arrival.

        Raises StageRefused("servo_off") before any axis moves.
        """
        for name in names:
            if not self._axis(name).servo:
                raise StageRefused("servo_off", name)
        now = self.clock.now()
        for name in names:
            a = self._axes[name]
            self._update_reference(a)
            a.restart(now, a.position(now), 0.0)  # from here on at the reference velocity
            if a.setting is None:
                a.setting = a.velocity
            a.velocity = a.reference_velocity
            a.restart(now, (a.lo + a.hi) / 2, self.settle_time)
            a.referencing = True

    def reference_velocity(self, name: str) -> float:
        return self._axis(name).reference_velocity

    def set_reference_velocity(self, name: str, v: float) -> None:
        """The velocity of the axis' next reference move. Raises ValueError outside
        (0, max_velocity]."""
        if not 0 < v <= self.max_velocity:
            raise ValueError(f"reference velocity {v} m/s outside (0, {self.max_velocity}]")
        self._axis(name).reference_velocity = float(v)

    def moving(self, name: str) -> bool:
        return self._axis(name).moving(self.clock.now())

    def deceleration(self, name: str) -> float:
        """m/s² the axis brakes at after a stop."""
        return self._axis(name).deceleration

    def set_deceleration(self, name: str, dec: float) -> None:
        """Raises ValueError unless `dec` > 0 (math.inf: a stop holds the axis at once)."""
        if not dec > 0:
            raise ValueError(f"deceleration {dec} m/s² is not > 0")
        self._axis(name).deceleration = float(dec)

    def follow(self, name: str, trajectory: Trajectory, end: float, lag: float = 0.0) -> None:
        """The axis' set point follows `trajectory` (controller frame, m) until time `end`
        (math.inf: until stopped), as a wave generator drives it; the position trails the set
        point by `lag` s, as a closed loop of finite bandwidth does."""
        a = self._axis(name)
        a.restart(self.clock.now(), trajectory(end) if math.isfinite(end) else a.target,
                  self.settle_time, trajectory, end, lag)  # fmt: skip

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
        """The velocity setting (a reference move under way runs at its own)."""
        a = self._axis(name)
        self._update_reference(a)
        return a.velocity if a.setting is None else a.setting

    def set_velocity(self, name: str, v: float) -> None:
        """Raises ValueError outside (0, max_velocity]."""
        if not 0 < v <= self.max_velocity:
            raise ValueError(f"velocity {v} m/s outside (0, {self.max_velocity}]")
        a = self._axis(name)
        now = self.clock.now()
        self._update_reference(a)
        if a.setting is not None:  # a reference move keeps its velocity; this one is for after
            a.setting = float(v)
        elif a.moving(now):
            a.restart(now, a.target, self.settle_time)
            a.velocity = float(v)
            a.settled_at = a.arrival() + self.settle_time
        else:  # a new segment from where it stands: the past motion keeps its own velocity
            settled = a.settled_at
            a.restart(now, a.target, 0.0)
            a.velocity = float(v)
            a.settled_at = settled

    def move(self, targets: Mapping[str, float]) -> None:
        """Start moving the named axes (controller frame, m). All or nothing.

        Raises StageRefused (servo off, unreferenced, or a target outside the limits) before
        any axis moves.
        """
        for name, t in targets.items():
            a = self._axis(name)
            if not a.servo:
                raise StageRefused("servo_off", name)
            self._update_reference(a)
            if not a.referenced:
                raise StageRefused("unreferenced", name)
            if not a.lo - LIMIT_SLACK <= t <= a.hi + LIMIT_SLACK:
                raise StageRefused("out_of_limits", name)
        now = self.clock.now()
        for name, t in targets.items():
            a = self._axes[name]
            snapped = round(t / self.resolution) * self.resolution
            a.restart(now, min(max(snapped, a.lo), a.hi), self.settle_time)

    def stop(self) -> None:
        """Every axis stops where it is now."""
        for name in self._axes:
            self.stop_axis(name)  # a referencing move cut short leaves the axis unreferenced

    def stop_axis(self, name: str) -> None:
        """One axis stops: a straight-line move brakes at the axis' deceleration (a reference
        move and a wave's motion stop where they are)."""
        a = self._axis(name)
        now = self.clock.now()
        self._update_reference(a)
        if a.moving(now) and not a.braking and not self._brake(a, now):
            a.restart(now, a.position(now), self.settle_time)
        a.referencing = False
        self._end_reference_velocity(a)

    def _brake(self, a: _Axis, now: float) -> bool:
        """`a` braking from its straight-line move at its deceleration; False where it stops
        at once (an infinite deceleration, a reference move, a wave's motion, a stalled axis).
        An axis nearer its target than its braking distance goes on to arrive there."""
        if (
            math.isinf(a.deceleration)
            or a.setting is not None
            or a.trajectory is not None
            or a.stalled
        ):
            return False
        p0, v, dec = a.position(now), a.velocity, a.deceleration
        direction = math.copysign(1.0, a.target - p0)
        duration = v / dec
        if abs(a.target - p0) <= v * duration / 2:
            return True

        def braking(t: float) -> float:
            dt = min(max(t - now, 0.0), duration)
            return p0 + direction * (v * dt - dec * dt * dt / 2)

        a.restart(now, braking(now + duration), self.settle_time, braking, now + duration)
        a.braking = True
        return True

    def stall(self, name: str) -> None:
        """Fault injection: the axis freezes where it is and never arrives."""
        a = self._axis(name)
        now = self.clock.now()
        a.start, a.t0 = a.position(now), now
        a.stalled, a.braking = True, False
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
