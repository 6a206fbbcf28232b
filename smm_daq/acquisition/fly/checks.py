"""The checks of a fly plan against the rig: one set, run before connecting and again at start.

Before anything connects (`ScanPlan.validate`: `smm-daq scan`, every step of a recipe before
its first, the window's plan form) they take what the profile says: the `[fly]
trigger_wired` cable, the stage's travel, and the limits the driver classes it names state
for their models (the lock-in's buffer length, rates and time constants; the stage's
velocity). When the scan starts, the sequencer runs the same checks on the connected
instruments' own limits, then adds what only a connected controller can tell
(`smm_daq.acquisition.fly.scan`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from smm_daq.acquisition.fly.settings import FlyLine, plan_line
from smm_daq.errors import InputError
from smm_daq.instruments.interfaces import BufferedLockIn, BufferLimits, FlyStage
from smm_daq.instruments.profile import Profile
from smm_daq.instruments.rig import driver_class

if TYPE_CHECKING:
    from smm_daq.acquisition.plan import ScanPlan

UM = 1e-6


@dataclass(frozen=True)
class FlyLimits:
    """What the lock-in's buffer and the stage's velocity allow a fly line."""

    buffer: BufferLimits
    velocity_limit: float  # m/s


def require_fly_kinds(lockin: type, stage: type) -> None:
    """InputError unless the lock-in keeps a data buffer and the stage records its position."""
    if not issubclass(lockin, BufferedLockIn):
        raise InputError(f"fly scans need a lock-in with a data buffer; {lockin.__name__} "
                         "has none")
    if not issubclass(stage, FlyStage):
        raise InputError(f"fly scans need a stage that records its position; "
                         f"{stage.__name__} does not")


def profile_fly_limits(profile: Profile) -> FlyLimits:
    """The limits of the lock-in and stage the profile names, from their driver classes
    (nothing is connected); InputError when either cannot fly."""
    lockin = driver_class(profile, "lockin", profile.lockin.link.implementation)
    stage = driver_class(profile, "stage", profile.stage.link.implementation)
    require_fly_kinds(lockin, stage)
    return FlyLimits(lockin.buffer_limits(),  # type: ignore[attr-defined]
                     stage.velocity_limit_for(profile.stage))  # type: ignore[attr-defined]


def check_fly_plan(plan: ScanPlan, profile: Profile, limits: FlyLimits) -> FlyLine:
    """The line every fly line of `plan` will be; InputError naming what the plan asks beyond
    the profile or `limits`: a trigger start without the cable, a pixel time or sample rate
    the lock-in cannot give, a speed beyond the stage's, a line longer than the buffer, or a
    run-up beyond the stage's x travel."""
    fly = plan.fly
    assert fly is not None
    if fly.trigger and not profile.fly_trigger_wired:
        raise InputError("fly trigger: a lock-in started by the stage's trigger output needs "
                         "the cable, and the profile does not say it is wired; expected "
                         "[fly] trigger_wired = true in the profile (with the cable in place), "
                         "or the buffer started by software")
    line = plan_line(fly, plan.step_x, plan.nx, limits.buffer, limits.velocity_limit)
    tmin, tmax = profile.stage.travel[0]
    lo, hi = plan.x[0] - line.run_up, plan.x[-1] + line.run_up
    if lo < tmin or hi > tmax:
        raise InputError(
            f"a fly line runs from {lo / UM:g} to {hi / UM:g} µm with its run-up "
            f"({line.run_up / UM:g} µm each side), beyond the stage x travel "
            f"{tmin / UM:g} .. {tmax / UM:g} µm (move the region inward)")
    return line


def check_controller(plan: ScanPlan, stage: FlyStage) -> None:
    """What only a connected stage controller can tell a fly plan (its command set, a
    parameter): whether it puts out a trigger, whether it can fly a line at all
    (`FlyStage.fly_refused`), and whether its position recorder holds a line; InputError
    otherwise. Run when a scan starts, and by a recipe once connected,
    before its first step."""
    assert plan.fly is not None
    if plan.fly.trigger and not stage.trigger_output():
        raise InputError("fly trigger: this stage controller puts out no trigger for a fly "
                         "line; expected one that does, or the buffer started by software")
    refused = stage.fly_refused()
    if refused:
        raise InputError(f"fly scan: {refused}")
    points = stage.recorder_points()
    if points < 2:
        raise InputError(f"the stage's position recorder holds {points} points; a fly line "
                         "needs at least 2")
