"""How a plan is flown, and the check of a flown plan against the instruments' limits.

A fly plan scans each line at constant velocity v = step_x / pixel_time over the plan's
pixels plus a run-up at each end (long enough for the stage's motion and the lock-in's filter
to be steady before the first pixel), the lock-in storing X and Y at a fixed rate of at least
`oversample` samples per pixel with a time constant of at most pixel_time / 5 (the filter is
then only an anti-alias filter, `smm_daq.acquisition.fly.noise`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from smm_daq.acquisition.fly.reconstruct import model_lag
from smm_daq.errors import InputError
from smm_daq.finite import finite_number
from smm_daq.instruments.interfaces import BufferLimits

TAU_FRACTION = 5.0  # τ ≤ pixel time / TAU_FRACTION
# The filter's blur along the line (RMS, √n·τ of time) is kept under this part of a pixel by
# the choice of τ, so no flown line needs deconvolving: with 3 or 4 poles (18, 24 dB/oct) that
# asks for a shorter τ than pixel time / 5.
MAX_BLUR_PX = 0.3
RUN_UP_TAUS = 10.0  # run-up beyond the filter lag, in time constants
MAX_PIXEL_TIME_S = 3600.0  # an hour a pixel: beyond it a fly line's numbers overflow
# samples a pixel: more than any lock-in's buffer holds for a whole line (the SR860's half a
# million), and beyond a float a whole number the rate's arithmetic overflows
MAX_OVERSAMPLE = 1_000_000
# what a fly scan takes when no pixel time or oversampling is given
DEFAULT_PIXEL_TIME_S = 0.05
DEFAULT_OVERSAMPLE = 8


@dataclass(frozen=True)
class FlySettings:
    """`pixel_time` s per pixel; `oversample` lock-in samples per pixel at least;
    `trigger` True when the stage's trigger output is wired to the lock-in's TRIG IN (the
    buffer then starts on the edge instead of by software); `baselines` subtracts each line's
    median (slow drift between lines) from the stored map."""

    pixel_time: float
    oversample: int = DEFAULT_OVERSAMPLE
    trigger: bool = False
    baselines: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"pixel_time_s": self.pixel_time, "oversample": self.oversample,
                "trigger": self.trigger, "baselines": self.baselines}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "plan") -> FlySettings:
        """Inverse of `to_dict`, kind by kind: JSON's "no" is no false, nor 2.7 samples a
        whole number (KeyError for a key missing)."""
        if not isinstance(d, Mapping):
            raise InputError(f"plan key 'fly' is {d!r}; expected a table of fly settings",
                             source=source)
        pixel_time, oversample = d["pixel_time_s"], d["oversample"]
        if not finite_number(pixel_time):
            raise InputError(f"fly pixel_time_s is {pixel_time!r}; expected a time in s",
                             source=source)
        if isinstance(oversample, bool) or not isinstance(oversample, int):
            raise InputError(f"fly oversample is {oversample!r}; expected a whole number of "
                             "samples per pixel", source=source)
        flags = {key: d.get(key, False) for key in ("trigger", "baselines")}
        for key, flag in flags.items():
            if not isinstance(flag, bool):
                raise InputError(f"fly {key} is {flag!r}; expected true or false",
                                 source=source)
        return cls(pixel_time=float(pixel_time), oversample=oversample, **flags)

    def check(self) -> None:
        """InputError for values no instrument could fly."""
        if not 0 < self.pixel_time <= MAX_PIXEL_TIME_S:
            raise InputError(f"fly pixel_time_s is {self.pixel_time!r}; expected a time > 0 s, "
                             f"at most {MAX_PIXEL_TIME_S:g} s")
        if isinstance(self.oversample, bool) or not 1 <= self.oversample <= MAX_OVERSAMPLE:
            raise InputError(f"fly oversample is {_shown(self.oversample)}; expected a whole "
                             f"number of samples per pixel from 1 to {MAX_OVERSAMPLE:,}")


def _shown(n: int) -> str:
    """A whole number as a message shows it: one of hundreds of digits by its size alone."""
    text = repr(n)
    return text if len(text) <= 20 else f"a number of {len(text.lstrip('-'))} digits"


@dataclass(frozen=True)
class FlyLine:
    """What every line of a fly plan uses: time constant τ (s), filter poles, buffer rate
    (Hz), velocity (m/s), model lag (s), run-up (m), the line's duration (s) and samples."""

    time_constant: float
    poles: int
    rate: float
    velocity: float
    lag: float
    run_up: float
    duration: float
    samples: int


def plan_line(fly: FlySettings, step_x: float, nx: int, limits: BufferLimits,
              velocity_limit: float) -> FlyLine:
    """The line every fly line will be, checked against the lock-in's buffer and the stage's
    velocity; InputError naming the limit it breaks (before anything moves)."""
    fly.check()
    wanted_tau = min(fly.pixel_time / TAU_FRACTION,
                     MAX_BLUR_PX * fly.pixel_time / math.sqrt(limits.poles))
    taus = [t for t in limits.time_constants if t <= wanted_tau * (1 + 1e-9)]
    if not taus:
        shortest = limits.time_constants[0] * max(TAU_FRACTION,
                                                  math.sqrt(limits.poles) / MAX_BLUR_PX)
        raise InputError(
            f"fly pixel_time_s {fly.pixel_time:g} s needs a lock-in time constant <= "
            f"{wanted_tau:g} s (pixel time / {TAU_FRACTION:g}, and a blur of at most "
            f"{MAX_BLUR_PX:g} pixel with {limits.poles} filter poles); the lock-in's shortest "
            f"is {limits.time_constants[0]:g} s: expected a pixel time of at least "
            f"{shortest:g} s")
    wanted_rate = fly.oversample / fly.pixel_time
    rates = [r for r in limits.rates if r >= wanted_rate * (1 - 1e-9)]
    if not rates:
        raise InputError(
            f"fly oversample {fly.oversample} at pixel_time_s {fly.pixel_time:g} s needs "
            f"{wanted_rate:g} samples/s; the lock-in buffer's highest rate is "
            f"{limits.rates[-1]:g} Hz; expected a longer pixel time or fewer samples per pixel")
    rate = min(rates)
    # the longest τ allowed whose capture ceiling admits the rate (a shorter τ allows more)
    fitting = [t for t in taus if limits.max_rate(t) >= rate * (1 - 1e-9)]
    if not fitting:
        raise InputError(
            f"fly oversample {fly.oversample} at pixel_time_s {fly.pixel_time:g} s needs "
            f"{wanted_rate:g} samples/s; the lock-in captures at most "
            f"{limits.max_rate(taus[0]):g} Hz at its shortest time constant "
            f"{taus[0]:g} s; expected a longer pixel time or fewer samples per pixel")
    tau = max(fitting)
    velocity = step_x / fly.pixel_time
    if velocity > velocity_limit * (1 + 1e-9):
        raise InputError(
            f"fly speed {velocity * 1e3:g} mm/s (step_x / pixel_time_s) exceeds the stage's "
            f"maximum velocity {velocity_limit * 1e3:g} mm/s; expected a longer pixel time")
    lag = model_lag(tau, limits.poles)
    run_up = velocity * (lag + RUN_UP_TAUS * tau) + step_x
    duration = (nx * step_x + 2 * run_up) / velocity
    samples = math.ceil(duration * rate) + 1
    if samples > limits.points:
        raise InputError(
            f"a fly line of {nx} pixels takes {duration:.4g} s with its run-up, "
            f"{samples} samples at {rate:g} Hz: more than the lock-in buffer's "
            f"{limits.points} points; expected fewer pixels per line, or a shorter "
            "pixel_time_s")
    return FlyLine(tau, limits.poles, rate, velocity, lag, run_up, duration, samples)
