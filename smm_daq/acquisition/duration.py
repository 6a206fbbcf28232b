"""How long a scan plan takes on the rig, in parts: what `smm-daq scan`, the Scan tab and a
recipe's check print before the start, and what the time left counts once the lines' own pace
is known (the ramp down after the last line).

Counted: the field's ramp up from the safe state (or from the field a recipe's earlier step
left) and back down to it at the profile's ramp rate through the calibration (and a plug-in
driver's settling, `ramp_settling_s`: after each piece of the ramp up, once after the ramp
down, which is handed to it whole), the stage's way from the middle of its travel to the
first point (where a stage referenced at connect stands on the simulator; from elsewhere it
takes more or less), and the lines: a step scan's moves, stage settling and lock-in settle
and dwell; a flown line's duration with its run-ups, the lock-in's storing on after it, and
the move to the next line's run-up start (a step along y, or on a unidirectional raster back
across the whole line). Instrument communication is not counted: the time left learns it as
the scan runs.
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

    ramp_up_s: float  # the field from the safe state (or where it was) to the plan's, settled
    way_down_s: float  # the stage to the first point (a flown scan's: its run-up start)
    lines_s: float  # every line, with the moves between them
    ramp_down_s: float  # the field back to the safe state after the last line, settled

    @property
    def total_s(self) -> float:
        return self.ramp_up_s + self.way_down_s + self.lines_s + self.ramp_down_s


def ramp_settling_s(profile: Profile, seconds: float, *, whole: bool = False) -> float:
    """What a field's ramp of `seconds` of ramping spends settling on the coil driver the
    profile names (`ramp_pieces.settling_s`: once a piece, for a driver handed it in pieces;
    once for the ramp to the safe state, `whole`)."""
    driver = driver_class(profile, "coils", profile.coils.link.implementation)
    return ramp_pieces.settling_s(cast(type[FieldSource], driver), seconds, whole=whole)


def safe_field(profile: Profile) -> np.ndarray:
    """The field (T) of the profile's safe state: "zero" is zero applied field (the ambient
    field nulled); "off" is every current at 0 A (the ambient field left)."""
    coils = profile.coils
    return coils.ambient_field.copy() if coils.safe_state == "off" else np.zeros(3)


def ramp_s(profile: Profile, field: tuple[float, ...] | np.ndarray,
           start: tuple[float, ...] | np.ndarray | None = None) -> float:
    """Seconds of ramping from `start` (T; the safe state's field when None) to `field` (T)
    at the profile's rate: the largest change of a coil's current, as the ramp is made."""
    coils = profile.coils
    begin = safe_field(profile) if start is None else np.asarray(start, dtype=float)
    change = np.linalg.solve(coils.calibration, np.asarray(field, dtype=float) - begin)
    return float(np.max(np.abs(change))) / coils.max_ramp_rate


def field_ramp_s(profile: Profile, field: tuple[float, ...] | np.ndarray,
                 start: tuple[float, ...] | np.ndarray | None = None) -> float:
    """A field's ramp from `start` (the safe state when None) to `field`, settled: a scan's
    ramp up and a recipe's set_field step, handed to a plug-in driver in pieces."""
    seconds = ramp_s(profile, field, start)
    return seconds + ramp_settling_s(profile, seconds)


def safe_ramp_s(profile: Profile, field: tuple[float, ...] | np.ndarray) -> float:
    """The ramp from `field` to the safe state, settled once (the driver's `zero` or
    `output_off`, handed it whole): a scan's end and a recipe's zero_field step."""
    seconds = ramp_s(profile, safe_field(profile), field)
    return seconds + ramp_settling_s(profile, seconds, whole=True)


def scan_duration(plan: ScanPlan, profile: Profile, time_constant: float | None = None,
                  fly_line: FlyLine | None = None,
                  start: tuple[float, ...] | np.ndarray | None = None) -> ScanDuration:
    """The parts of `plan`'s duration on the rig of `profile`. `time_constant` is the
    lock-in's (s) for a step scan, the profile's when None; `fly_line` the line a flown plan
    flies (`plan_line`), from the limits of the profile's driver classes when None; `start`
    the field (T) the coils are at before it, the safe state's when None."""
    stage = profile.stage
    ramp_up = field_ramp_s(profile, plan.field, start)
    first = np.array([plan.x[0], plan.y[0], plan.height])
    if plan.fly is None:
        lines = _step_lines_s(plan, profile, time_constant)
    else:
        line = fly_line or _fly_line(plan, profile)
        first[0] -= line.run_up if int(plan.line_order(0)[0]) == 0 else -line.run_up
        lines = _fly_lines_s(plan, profile, line)
    middle = np.mean(np.asarray(stage.travel, dtype=float), axis=1)
    way_down = float(np.max(np.abs(first - middle))) / stage.velocity + stage.settle_time
    return ScanDuration(ramp_up, way_down, lines, safe_ramp_s(profile, plan.field))


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


def run_on_unsaid(plan: ScanPlan, profile: Profile) -> str:
    """Where `plan` flies and the profile's lock-in driver does not say how long it stores on
    after a line's stop (its class keeps `BufferedLockIn.run_on_s` as the interface gives
    it, 0: a plug-in's written without it), what its estimate leaves out, said; else ""."""
    if plan.fly is None:
        return ""
    lockin = driver_class(profile, "lockin", profile.lockin.link.implementation)
    interface = vars(BufferedLockIn)["run_on_s"].__func__
    if getattr(getattr(lockin, "run_on_s", None), "__func__", None) is not interface:
        return ""
    return (f"the lock-in's storing on after each line is not counted: its driver "
            f"{lockin.__module__}.{lockin.__qualname__} does not say how long it stores on "
            "after a line's stop (BufferedLockIn.run_on_s)")


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
