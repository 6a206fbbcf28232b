"""A field's ramp that its stop ends whether or not the coil driver honours the stop.

`FieldSource.set_field` is to ask its `stop` before every step of its ramp. The driver shipped
with smm-daq does, and says so (`FieldSource.honours_stop`); a plug-in driver is a user's own,
and one that ignores its stop would ramp on to the field asked for before the rig could be made
safe: a field far beyond the one the stop found, held past the bound `smm-daq safe` prints. So
a driver that does not say so is handed the ramp in pieces of at most `PIECE_S` of ramping at
the profile's rate, the stop asked between them here: a stop ends the ramp within one piece,
whatever the driver does with it. One that was told to stop (its stop answered true) and ramped
on is said loudly; and once the rig is made safe, such a driver's field is read back, and
said loudly where it is not at the safe state (`off_safe_state`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from smm_daq.errors import RampStopped, RangeError
from smm_daq.instruments.interfaces import FieldSource
from smm_daq.instruments.profile import CoilSettings, Profile

PIECE_S = 1.0  # rig-clock s of ramping at the profile's rate: the most a stop ignored lets on
UT = 1e-6
LIMIT_ROUNDING = 1e-9  # relative: a field this little past the coils' limit is at it
# of the coils' largest field: what a supply's read-back may be off at any field, its offset
# (the shipped Kepco driver takes its currents' read-back within 5 mA, 0.1 % of its range; a
# field ramping on past its ramp-down reaches far beyond either)
READBACK_FRACTION = 0.01
# of the field read back: what a supply's read-back may be off beyond its offset, its gain
READBACK_GAIN = 0.02


def set_field(coils: FieldSource, profile: Profile, b: np.ndarray,
              stop: Callable[[], bool]) -> None:
    """`coils.set_field(b, ramp=True, stop=stop)`, in pieces where the driver does not say it
    honours its stop (`RangeError` beyond its `limits()` before any piece is sent);
    `RampStopped` once `stop()` is true between two pieces, or told to the driver in one."""
    b = np.asarray(b, dtype=float)
    if type(coils).honours_stop:
        coils.set_field(b, ramp=True, stop=stop)
        return
    limit = float(coils.limits()["max_field_T"])
    # within rounding of the limit, as the plan's check (`check_field`) and the shipped
    # driver take it: |B| = 100 µT written [28, 96, 0] µT is one ulp above it in floats
    if float(np.linalg.norm(b)) > limit * (1 + LIMIT_ROUNDING):
        raise RangeError(f"field {_ut(b)} µT is beyond the coils' limit of {limit / UT:g} µT",
                         instrument=coils.name)
    start = np.asarray(coils.field_setpoint(), dtype=float)
    pieces = _pieces(start, b, profile)
    reached = start
    for k, piece in enumerate(pieces):
        if stop():
            raise RampStopped(
                f"{coils.name}: the ramp was stopped after piece {k} of {len(pieces)} (a "
                f"plug-in driver, {_named(coils)}, is ramped in pieces of {PIECE_S:g} s, the "
                f"stop asked between them), the field set to {_ut(reached)} µT on its way to "
                f"{_ut(b)} µT")
        told = _Told(stop)
        coils.set_field(piece, ramp=True, stop=told)
        reached = piece
        if told.ignored:
            raise RampStopped(
                f"WARNING: {coils.name}: the plug-in driver {_named(coils)} IGNORED THE STOP: "
                "its set_field was told to stop and returned without raising RampStopped, so "
                f"it may have ramped on to {_ut(piece)} µT, the end of its piece of the ramp "
                f"to {_ut(b)} µT; fix the driver (FieldSource.set_field must end its ramp once "
                "its stop is true, and raise RampStopped)")


def off_safe_state(profile: Profile, coils: FieldSource) -> list[str]:
    """What is wrong with the field of `coils`, ramped to their safe state just now, where
    their driver does not say it honours its stop: read back, it should be the safe state's
    (zero applied field, or with the outputs off the ambient field) within what a supply's
    read-back may be off (`readback_allowed`: the field tolerance is the fluxgate's check,
    tighter than a read-back); a driver that ramps on (a stop it ignored, a ramp of the
    supply's own that goes on) is said loudly. [] where it is, or where the driver says it
    honours its stop (its own ramp-down checks its currents)."""
    if type(coils).honours_stop:
        return []
    settings = profile.coils
    safe = settings.ambient_field if settings.safe_state == "off" else np.zeros(3)
    try:
        field = np.asarray(coils.field(), dtype=float)
    except Exception as exc:
        return [f"the field of {coils.name} ({_named(coils)}, a plug-in driver) was not read "
                f"back once ramped to its safe state: {exc}"]
    off = float(np.linalg.norm(field - safe))
    allowed = readback_allowed(settings, safe)
    if off <= allowed:
        return []
    return [f"WARNING: {coils.name}: the field reads {_ut(field)} µT once ramped to its safe "
            f"state ({_ut(safe)} µT), off by {off * 1e9:.0f} nT (allowed {allowed * 1e9:.0f} "
            f"nT): the plug-in driver {_named(coils)} may be ramping on, its stop ignored"]


def readback_allowed(settings: CoilSettings, b: np.ndarray) -> float:
    """How far (T) the field a plug-in driver's currents make, read back once made safe, may
    be from the safe state's `b` before it is taken for a field ramping on: ten field
    tolerances (the fluxgate's check, which a read-back cannot match), the read-back's
    offset (`READBACK_FRACTION` of the coils' largest field, which is all there is at zero
    field) or its gain (`READBACK_GAIN` of |b|), whichever is most. (The scan's check at
    each line's end takes no share of the largest field, `field_held.held_allowed`: on
    coils made for fields far above the scan's, it would exceed an axis lost.)"""
    return max(10 * settings.field_tolerance, READBACK_FRACTION * settings.max_field,
               READBACK_GAIN * float(np.linalg.norm(b)))


def _pieces(start: np.ndarray, b: np.ndarray, profile: Profile) -> list[np.ndarray]:
    """The fields a ramp from `start` to `b` is handed over in, each at most `PIECE_S` of
    ramping at the profile's rate from the one before, `b` the last."""
    coils = profile.coils
    amps = np.linalg.solve(coils.calibration, b - start)  # the currents' change
    count = _piece_count(float(np.max(np.abs(amps))) / coils.max_ramp_rate)
    return [start + (b - start) * (k / count) for k in range(1, count)] + [b]


def settling_s(driver: type[FieldSource], seconds: float, *, whole: bool = False) -> float:
    """What a ramp of `seconds` of ramping at the profile's rate spends settling on a driver
    of class `driver`: its `settle_s` once for each `set_field` it is handed, the whole ramp
    where it says it honours its stop or the ramp is to the safe state (`whole`: `zero` or
    `output_off`, never in pieces), else each of its pieces."""
    calls = 1 if driver.honours_stop or whole else _piece_count(seconds)
    return calls * float(driver.settle_s)


def _piece_count(seconds: float) -> int:
    """The pieces a ramp of `seconds` of ramping is handed over in: `PIECE_S` each at most,
    one where it ramps nothing (its field set all the same)."""
    return max(1, math.ceil(seconds / PIECE_S))


class _Told:
    """A driver's `stop`: `stop()`, remembering whether it ever answered true."""

    def __init__(self, stop: Callable[[], bool]) -> None:
        self._stop = stop
        self.ignored = False  # answered true (and the driver returned: it may have ramped on)

    def __call__(self) -> bool:
        stopped = bool(self._stop())
        self.ignored = self.ignored or stopped
        return stopped


def _named(coils: FieldSource) -> str:
    cls = type(coils)
    return f"{cls.__module__}.{cls.__qualname__}"


def _ut(b: np.ndarray) -> str:
    return "(" + ", ".join(f"{v / UT:.3f}" for v in np.asarray(b, dtype=float)) + ")"
