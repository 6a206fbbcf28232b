"""Coil calibration and field nulling with a fluxgate at the sample position.

1. Measure: step each coil's current about the nominal null (currents the profile's
   calibration says cancel the ambient field), reading the coils' measured currents and the
   fluxgate's field at each step.
2. Fit B = C I + a by linear least squares: C the 3 × 3 T/A matrix, a the ambient field.
3. Null: start from the currents the fit says cancel the field, then correct them with the
   fluxgate reading until the measured field is below the target. The ambient field stored is
   the one consistent with the nulled state (a = B_null − C I_null), so ramping to "zero" with
   the stored calibration reproduces the null.
4. Store the result as TOML where the profile says (`rig.calibration_file`), in the keys
   `smm_daq.instruments.profile` overlays on the profile's coil section.

Everything goes through the `FieldSource` and `Magnetometer` interfaces. The coils are asked
for fields; the fields they are asked for map to currents through the calibration they were
built with (the profile's, `nominal`), which is how requested currents become requests.
The coils are left at their safe state whatever happens, by the bounded make-safe path
(`rig.zero_within_bound`): a slow or dead supply cannot hold the calibration's end past the
limit `smm-daq safe` prints, and one still energised at its deadline is switched off. Each
step's ramp asks the calibration's stop (`ramp_pieces.set_field`): a plug-in driver not
trusted to honour it is handed the ramp in pieces, so a stop it ignores (or a supply's own
ramp going on past Ctrl-C) lets the field on by one piece at most.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from smm_daq.clock import Clock
from smm_daq.errors import InstrumentError, RangeError
from smm_daq.instruments import ramp_pieces
from smm_daq.instruments.interfaces import FieldSource, Magnetometer
from smm_daq.instruments.profile import Profile
from smm_daq.instruments.rig import zero_within_bound
from smm_daq.whole_files import written_whole

UT = 1e-6
NT = 1e-9


@dataclass(frozen=True)
class CoilFit:
    """B = calibration @ I + ambient, fitted by least squares."""

    calibration: np.ndarray  # (3, 3) T/A, sample frame, columns = coils x, y, z
    ambient: np.ndarray  # (3,) T
    residual: float  # T, RMS misfit per field component (degrees of freedom counted)
    points: int


@dataclass(frozen=True)
class CalibrationResult:
    fit: CoilFit
    ambient: np.ndarray  # (3,) T, the ambient field consistent with the nulled state
    null_currents: np.ndarray  # (3,) A measured at the null
    null_residual: float  # T, |B| measured at the null
    target: float  # T
    iterations: int
    fitted_at: str  # ISO 8601, UTC

    @property
    def reached(self) -> bool:
        return self.null_residual < self.target


def fit_coils(currents: np.ndarray, fields: np.ndarray) -> CoilFit:
    """Least-squares fit of B = C I + a to N measured (current, field) pairs.

    `currents` (N, 3) A and `fields` (N, 3) T. Needs the currents to span all three coils and
    more points than unknowns (N >= 5); raises InstrumentError when the data cannot give a fit.
    """
    currents = np.asarray(currents, dtype=float)
    fields = np.asarray(fields, dtype=float)
    if currents.ndim != 2 or currents.shape[1] != 3 or fields.shape != currents.shape:
        raise ValueError(
            f"need (N, 3) currents and fields of the same shape, got {currents.shape} "
            f"and {fields.shape}"
        )
    n = currents.shape[0]
    if n < 5:
        raise InstrumentError(f"{n} calibration points: need at least 5 to fit 4 per axis")
    if not (np.all(np.isfinite(currents)) and np.all(np.isfinite(fields))):
        raise InstrumentError("a calibration reading is not finite")
    design = np.column_stack([currents, np.ones(n)])
    if np.linalg.matrix_rank(design) < 4:
        raise InstrumentError(
            "the measured currents do not span the three coils (a supply not following?)"
        )
    solution, *_ = np.linalg.lstsq(design, fields, rcond=None)
    calibration = solution[:3].T
    if np.linalg.cond(calibration) > 1e6:
        raise InstrumentError(
            f"the fitted coil matrix is singular (condition {np.linalg.cond(calibration):.3g}): "
            "is the fluxgate at the sample and are all coils connected?"
        )
    misfit = fields - design @ solution
    residual = math.sqrt(float(np.sum(misfit**2)) / (3 * (n - 4))) if n > 4 else 0.0
    return CoilFit(calibration, solution[3].copy(), residual, n)


class _Session:
    """Requests currents through the coils' nominal calibration; reads currents and field."""

    def __init__(
        self,
        coils: FieldSource,
        fluxgate: Magnetometer,
        profile: Profile,
        clock: Clock,
        average: int,
        settle: float,
        stop: Callable[[], bool],
    ) -> None:
        self.coils = coils
        self.fluxgate = fluxgate
        self.profile = profile
        self.nominal = profile.coils
        self.stop = stop
        self.clock = clock
        self.average = average
        self.settle = settle

    def request(self, currents: np.ndarray) -> np.ndarray:
        """The field to ask the coils for so that they drive `currents`."""
        return self.nominal.calibration @ currents + self.nominal.ambient_field

    def measure(self, field_request: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Set a field request; return the mean measured currents (A) and field (T). The
        ramp ends at its next step once `stop` is true (`RampStopped`), in pieces where the
        driver does not say it honours the stop."""
        ramp_pieces.set_field(self.coils, self.profile, field_request, self.stop)
        self.clock.sleep(self.settle)
        currents = np.mean([self.coils.currents() for _ in range(self.average)], axis=0)
        field = np.mean([self.fluxgate.read_field() for _ in range(self.average)], axis=0)
        return currents, field


def calibrate_coils(
    coils: FieldSource,
    fluxgate: Magnetometer,
    profile: Profile,
    clock: Clock,
    *,
    fraction: float = 0.5,
    levels: tuple[float, ...] = (-1.0, -0.5, 0.5, 1.0),
    average: int = 10,
    settle: float = 0.2,
    target: float = 5 * NT,
    max_iterations: int = 8,
    safe_on_failure: bool = True,
    stop: Callable[[], bool] | None = None,
) -> CalibrationResult:
    """Fit the coil matrix and ambient field of `profile`'s coils (its calibration the
    nominal one), then null the field; coils left at their safe state by the bounded
    make-safe path on `clock` (`zero_within_bound`).

    Each coil is stepped by `levels` × a current making `fraction` of the field limit (kept
    within the current limit); each point averages `average` readings after `settle` s.
    Not `safe_on_failure`: a failure leaves the coils where it found them, for a caller that
    makes the rig safe itself (`Rig.make_safe`); a ramp-down here first would add a second
    make-safe path to the time the caller may take. `stop` (Ctrl-C: `interrupts.interrupted`)
    is asked before every step of each ramp, or between its pieces where the driver does not
    say it honours it: once true, `RampStopped`, and the coils are made safe as on any failure.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if average < 1 or max_iterations < 1 or len(levels) < 2:
        raise ValueError("need average >= 1, max_iterations >= 1 and two or more levels")
    session = _Session(coils, fluxgate, profile, clock, average, settle,
                       stop if stop is not None else _never)
    try:
        result = _calibrate(session, fraction, levels, target, max_iterations)
    except BaseException as exc:
        if not safe_on_failure:
            raise
        try:
            zero_within_bound(profile, clock, coils)
        except InstrumentError as safe_exc:
            exc.add_note(f"also, the coils did not reach their safe state: {safe_exc}")
        raise
    zero_within_bound(profile, clock, coils)
    return result


def _never() -> bool:
    return False


def _calibrate(
    s: _Session,
    fraction: float,
    levels: tuple[float, ...],
    target: float,
    max_iterations: int,
) -> CalibrationResult:
    limits = s.coils.limits()
    null0 = np.linalg.solve(s.nominal.calibration, -s.nominal.ambient_field)
    headroom = limits["max_current_A"] - float(np.max(np.abs(null0)))
    if headroom <= 0:
        raise RangeError(
            f"the nominal null currents {np.round(null0, 4).tolist()} A leave no room within "
            f"±{limits['max_current_A']:g} A to step the coils"
        )
    points = [s.measure(s.request(null0))]
    for k in range(3):
        column = np.linalg.norm(s.nominal.calibration[:, k])
        step = min(fraction * limits["max_field_T"] / column, 0.9 * headroom)
        for level in levels:
            points.append(s.measure(s.request(null0 + level * step * np.eye(3)[k])))
    points.append(s.measure(s.request(null0)))
    fit = fit_coils(np.array([p[0] for p in points]), np.array([p[1] for p in points]))

    # Null: request corrections through the fitted matrix until the fluxgate reads ~0.
    currents_wanted = np.linalg.solve(fit.calibration, -fit.ambient)
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    iterations = 0
    while iterations < max_iterations and (best is None or best[0] >= target):
        iterations += 1
        measured_currents, field = s.measure(s.request(currents_wanted))
        magnitude = float(np.linalg.norm(field))
        if best is None or magnitude < best[0]:
            best = (magnitude, measured_currents, field)
        currents_wanted = currents_wanted - np.linalg.solve(fit.calibration, field)
    assert best is not None  # at least one iteration (checked by calibrate_coils)
    magnitude, null_currents, null_field = best
    return CalibrationResult(
        fit=fit,
        ambient=null_field - fit.calibration @ null_currents,
        null_currents=null_currents,
        null_residual=magnitude,
        target=target,
        iterations=iterations,
        fitted_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def calibration_toml(result: CalibrationResult) -> str:
    """The file `calibrate-coils` stores: the keys the profile's calibration overlay reads."""

    def number(x: float) -> str:
        return repr(float(x))

    rows = ", ".join(
        "[" + ", ".join(number(v) for v in row) + "]" for row in result.fit.calibration
    )
    ambient = ", ".join(number(v / UT) for v in result.ambient)
    return (
        "# Coil calibration written by `smm-daq calibrate-coils`; overrides the profile's\n"
        "# coils.calibration_T_per_A and coils.ambient_field_uT.\n"
        f"# Nulled to {result.null_residual / NT:.3g} nT at currents "
        f"{np.round(result.null_currents, 6).tolist()} A.\n"
        f"calibration_T_per_A = [{rows}]\n"
        f"ambient_field_uT = [{ambient}]\n"
        f'fitted_at = "{result.fitted_at}"\n'
        f"residual_nT = {number(result.fit.residual / NT)}\n"
    )


def write_calibration(path: Path, result: CalibrationResult) -> None:
    """Store the result at `path`, atomically (an old file stays whole if writing fails)."""
    with written_whole(path) as part, part.open("w", encoding="utf-8") as f:
        f.write(calibration_toml(result))
