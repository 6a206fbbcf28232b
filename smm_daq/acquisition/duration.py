"""How long a scan plan takes on the rig, in parts: what `smm-daq scan`, the Scan tab and a
recipe's check print before the start, and what the time left counts once the lines' own pace
is known (the ramp down after the last line).

Counted: the field's ramp up from the safe state and back down to it at the profile's ramp
rate through the calibration (and a plug-in driver's settling after each piece of the ramp up,
`ramp_settling_s`), the stage's way from the middle of its travel to the first point (where a
stage referenced at connect stands on the simulator; from elsewhere it takes more or less),
and the lines: a step scan's moves, stage settling and lock-in settle and dwell; a flown
line's duration with its run-ups, the lock-in's storing on after it, and the move to the
next line's run-up start (a step along y, or on a unidirectional raster back across the
whole line). Instrument communication is not counted: the time left learns it as the scan
runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np

from smm_daq.acquisition.fly.checks import profile_fly_limits
from smm_daq.acquisition.fly.settings import FlyLine, plan_line
from smm_daq.instruments import ramp_pieces
from smm_daq.instruments.interfaces import BufferedLockIn, FieldSource
from smm_daq.instruments.profile import Profile
from smm_daq.instruments.rig import driver_class

if TYPE_CHECKING:
    from smm_daq.acquisition.plan import ScanPlan


@dataclass(frozen=True)
class ScanDuration:
    """Rig-clock seconds of a scan's parts, in the order they run."""

    ramp_up_s: float  # the field from the safe state to the plan's, settled
    way_down_s: float  # the stage to the first point (a flown scan's: its run-up start)
    lines_s: float  # every line, with the moves between them
    ramp_down_s: float  # the field back to the safe state after the last line

    @property
    def total_s(self) -> float:
        return self.ramp_up_s + self.way_down_s + self.lines_s + self.ramp_down_s


def ramp_settling_s(profile: Profile, seconds: float) -> float:
    """What a field's ramp of `seconds` of ramping spends settling on the coil driver the
    profile names (`ramp_pieces.settling_s`: once a piece, for a driver handed it in pieces)."""
    driver = driver_class(profile, "coils", profile.coils.link.implementation)
    return ramp_pieces.settling_s(cast(type[FieldSource], driver), seconds)


def ramp_s(profile: Profile, field: tuple[float, float, float]) -> float:
    """Seconds of ramping between the safe state and `field` (T) at the profile's rate: the
    largest change of a coil's current. The safe state "zero" is zero applied field (the
    ambient field nulled); "off" is every current at 0 A (the ambient field left)."""
    coils = profile.coils
    safe = coils.ambient_field if coils.safe_state == "off" else np.zeros(3)
    change = np.linalg.solve(coils.calibration, np.asarray(field, dtype=float) - safe)
    return float(np.max(np.abs(change))) / coils.max_ramp_rate


def scan_duration(plan: ScanPlan, profile: Profile, time_constant: float | None = None,
                  fly_line: FlyLine | None = None) -> ScanDuration:
    """The parts of `plan`'s duration on the rig of `profile`. `time_constant` is the
    lock-in's (s) for a step scan, the profile's when None; `fly_line` the line a flown plan
    flies (`plan_line`), from the limits of the profile's driver classes when None."""
    stage = profile.stage
    up = ramp_s(profile, plan.field)
    ramp_up = up + ramp_settling_s(profile, up)
    first = np.array([plan.x[0], plan.y[0], plan.height])
    if plan.fly is None:
        lines = _step_lines_s(plan, profile, time_constant)
    else:
        line = fly_line or _fly_line(plan, profile)
        first[0] -= line.run_up if int(plan.line_order(0)[0]) == 0 else -line.run_up
        lines = _fly_lines_s(plan, profile, line)
    middle = np.mean(np.asarray(stage.travel, dtype=float), axis=1)
    way_down = float(np.max(np.abs(first - middle))) / stage.velocity + stage.settle_time
    return ScanDuration(ramp_up, way_down, lines, up)


def _step_lines_s(plan: ScanPlan, profile: Profile, time_constant: float | None) -> float:
    """Each point's stage settling and lock-in settle and dwell (the first point's move and
    settling are the way down's), a step along x to each point after a line's first, and
    between lines the move to the next line's first point: a step along y where the raster
    turns (serpentine), else back across the line too, the axes moving together."""
    stage = profile.stage
    tau = profile.lockin.time_constant if time_constant is None else time_constant
    per_point = stage.settle_time + (plan.settle_tau + plan.dwell_tau) * tau
    along = plan.ny * (plan.nx - 1) * plan.step_x / stage.velocity
    across = (plan.nx - 1) * plan.step_x if plan.raster == "unidirectional" else 0.0
    turns = (plan.ny - 1) * max(plan.step_y, across) / stage.velocity
    return plan.points * per_point - stage.settle_time + along + turns


def _fly_line(plan: ScanPlan, profile: Profile) -> FlyLine:
    assert plan.fly is not None
    limits = profile_fly_limits(profile)
    return plan_line(plan.fly, plan.step_x, plan.nx, limits.buffer, limits.velocity_limit)


def _fly_lines_s(plan: ScanPlan, profile: Profile, line: FlyLine) -> float:
    """Each line's flight (its pixels and both run-ups at the line's velocity) and the
    lock-in's storing after it (`BufferedLockIn.run_on_s`: an SR860's to its block's end),
    and between lines the move at the profile's velocity to the next run-up start with the
    stage's settling: a step along y where the raster turns at the line's end (serpentine),
    else back across the line and both run-ups too."""
    stage = profile.stage
    lockin = cast(type[BufferedLockIn],
                  driver_class(profile, "lockin", profile.lockin.link.implementation))
    flight = line.duration + lockin.run_on_s(line.duration * line.rate, line.rate)
    across = 0.0
    if plan.raster == "unidirectional":
        across = (plan.nx - 1) * plan.step_x + 2 * line.run_up
    turn = max(plan.step_y, across) / stage.velocity + stage.settle_time
    return plan.ny * flight + (plan.ny - 1) * turn
