"""Coil calibration: the least-squares fit against known truths, nulling with the simulated
coils, the stored file as the profile reads it, and the coils left safe whatever happens."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from drivers.kepco_bop import KepcoBOPCoils
from simulators.coil_model import CoilModel
from simulators.emulator import EmulatorTransport
from simulators.kepco_emulator import KepcoBOPEmulator
from smm_daq.clock import VirtualClock
from smm_daq.errors import InstrumentError
from smm_daq.instruments import loss_budget
from smm_daq.instruments import rig as rig_module
from smm_daq.instruments.coil_calibration import (
    calibrate_coils,
    calibration_toml,
    fit_coils,
    write_calibration,
)
from smm_daq.instruments.interfaces import Identity, Magnetometer
from smm_daq.instruments.profile import load_profile, parse_profile
from smm_daq.instruments.safe_bound import switch_off_tail_s

C_TRUE = np.array([[5.1e-5, 8e-7, -3e-7], [-6e-7, 4.9e-5, 1.1e-6], [4e-7, -9e-7, 5.05e-5]])
AMBIENT = np.array([14.2e-6, 0.8e-6, -48.5e-6])
SIMULATOR = Path(__file__).resolve().parents[1] / "configs" / "simulator.toml"


class Fluxgate(Magnetometer):
    """A fluxgate at the sample reading the coil model's field with white noise."""

    def __init__(self, coils: CoilModel, noise: float, seed: int = 0) -> None:
        self.coils = coils
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.broken_after: int | None = None
        self.reads = 0

    def read_field(self) -> np.ndarray:
        self.reads += 1
        if self.broken_after is not None and self.reads > self.broken_after:
            raise InstrumentError("fluxgate: no reply", instrument="fluxgate")
        return self.coils.field_at_sample() + self.rng.normal(0.0, self.noise, 3)

    def identify(self) -> Identity:
        return Identity("test", "fluxgate", "0", "0")

    def snapshot(self) -> dict[str, object]:
        return {}


def simulated_coils(settings, *, seed=0, resolution=1e-4):
    clock = VirtualClock()
    model = CoilModel.from_settings(
        settings, clock, calibration_error=0.03, ambient=AMBIENT, seed=seed, resolution=resolution
    )
    emulators = iter([KepcoBOPEmulator(model, i) for i in range(3)])
    coils = KepcoBOPCoils.from_profile(
        settings,
        clock=clock,
        open_transport=lambda _a, _l: EmulatorTransport(next(emulators), clock=clock),
    )
    return coils, model, clock


# -- the fit ------------------------------------------------------------------------------------


def design_currents(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.uniform(-2.0, 2.0, (n, 3))


def test_fit_recovers_the_matrix_and_ambient_exactly_without_noise():
    currents = design_currents(np.random.default_rng(1), 9)
    fit = fit_coils(currents, currents @ C_TRUE.T + AMBIENT)
    np.testing.assert_allclose(fit.calibration, C_TRUE, rtol=0, atol=1e-17)
    np.testing.assert_allclose(fit.ambient, AMBIENT, rtol=0, atol=1e-17)
    assert fit.residual < 1e-17


def test_fit_errors_match_least_squares_statistics_over_noise_draws():
    """Errors of the fitted ambient, over many noise draws, have the SD that the closed-form
    covariance σ² (XᵀX)⁻¹ gives; the residual estimates σ without bias."""
    rng = np.random.default_rng(2)
    sigma = 3e-9
    currents = design_currents(rng, 14)
    design = np.column_stack([currents, np.ones(14)])
    sd_ambient = sigma * np.sqrt(np.linalg.inv(design.T @ design)[3, 3])
    sd_c00 = sigma * np.sqrt(np.linalg.inv(design.T @ design)[0, 0])
    errors_a, errors_c, residuals = [], [], []
    for _ in range(400):
        fields = currents @ C_TRUE.T + AMBIENT + rng.normal(0, sigma, (14, 3))
        fit = fit_coils(currents, fields)
        errors_a.append(fit.ambient - AMBIENT)
        errors_c.append(fit.calibration[0, 0] - C_TRUE[0, 0])
        residuals.append(fit.residual**2)
    errors_a = np.array(errors_a)
    assert np.all(np.abs(errors_a.mean(axis=0)) < 4 * sd_ambient / np.sqrt(400))
    np.testing.assert_allclose(errors_a.std(axis=0), sd_ambient, rtol=0.15)
    assert np.std(errors_c) == pytest.approx(sd_c00, rel=0.15)
    assert np.mean(residuals) == pytest.approx(sigma**2, rel=0.08)


@pytest.mark.parametrize(
    ("currents", "fields", "error", "match"),
    [
        (np.zeros((6, 2)), np.zeros((6, 2)), ValueError, "shape"),
        (np.zeros((6, 3)), np.zeros((5, 3)), ValueError, "shape"),
        (np.eye(3)[[0, 1, 2, 0]], np.zeros((4, 3)), InstrumentError, "at least 5"),
        (
            np.array([[1, 0, 0], [0, 1, 0], [2, 0, 0], [0, 2, 0], [1, 1, 0.0]]),
            np.ones((5, 3)),
            InstrumentError,
            "do not span",
        ),
        (np.vstack([np.eye(3), np.eye(3)]), np.full((6, 3), np.nan), InstrumentError, "finite"),
    ],
)
def test_fit_refuses_data_that_cannot_give_a_calibration(currents, fields, error, match):
    with pytest.raises(error, match=match):
        fit_coils(currents, fields)


# -- calibration and nulling with the simulated coils ---------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_calibration_recovers_the_true_coils_and_nulls_below_10_nT(seed):
    profile = load_profile(SIMULATOR)
    settings = profile.coils
    coils, model, clock = simulated_coils(settings, seed=seed)
    result = calibrate_coils(coils, Fluxgate(model, 2e-9, seed), profile, clock)
    # Truth differs from the nominal matrix by ~3 %: the fit must see that.
    assert np.max(np.abs(model.calibration - settings.calibration)) > 3e-7
    np.testing.assert_allclose(result.fit.calibration, model.calibration, rtol=0, atol=5e-9)
    np.testing.assert_allclose(result.fit.ambient, AMBIENT, rtol=0, atol=3e-9)
    assert result.fit.residual < 5e-9
    assert result.null_residual < 10e-9 and result.reached
    # Coils left at their safe state: zero requested field.
    np.testing.assert_array_equal(coils.field_setpoint(), 0.0)


def test_stored_calibration_makes_zero_field_a_true_null(tmp_path):
    text = SIMULATOR.read_text(encoding="utf-8").replace(
        "simulated = true", 'simulated = true\ncalibration_file = "coils.toml"'
    )
    profile_path = tmp_path / "rig.toml"
    profile_path.write_text(text, encoding="utf-8")
    profile = parse_profile(text, profile_path)
    settings = profile.coils
    coils, model, clock = simulated_coils(settings, seed=3)
    result = calibrate_coils(coils, Fluxgate(model, 2e-9, 3), profile, clock)
    write_calibration(tmp_path / "coils.toml", result)

    reloaded = parse_profile(text, profile_path).coils
    np.testing.assert_array_equal(reloaded.calibration, result.fit.calibration)
    np.testing.assert_allclose(reloaded.ambient_field, result.ambient, rtol=1e-15)
    emulators = iter([KepcoBOPEmulator(model, i) for i in range(3)])
    fresh = KepcoBOPCoils.from_profile(
        reloaded,
        clock=clock,
        open_transport=lambda _a, _l: EmulatorTransport(next(emulators), clock=clock),
    )
    fresh.zero()
    assert np.linalg.norm(model.field_at_sample()) < 10e-9
    fresh.set_field(np.array([0.0, 0.0, 50e-6]))
    np.testing.assert_allclose(model.field_at_sample(), [0.0, 0.0, 50e-6], atol=15e-9)


def test_calibration_file_holds_exactly_the_keys_the_profile_reads():
    profile = load_profile(SIMULATOR)
    settings = profile.coils
    coils, model, clock = simulated_coils(settings)
    text = calibration_toml(calibrate_coils(coils, Fluxgate(model, 1e-9), profile, clock))
    data = tomllib.loads(text)
    assert set(data) == {"calibration_T_per_A", "ambient_field_uT", "fitted_at", "residual_nT"}
    assert np.array(data["calibration_T_per_A"]).shape == (3, 3)
    assert data["residual_nT"] >= 0


def test_a_failure_midway_leaves_the_coils_at_the_safe_state():
    profile = load_profile(SIMULATOR)
    settings = profile.coils
    coils, model, clock = simulated_coils(settings)
    fluxgate = Fluxgate(model, 1e-9)
    fluxgate.broken_after = 35  # partway through the current steps
    with pytest.raises(InstrumentError, match="fluxgate"):
        calibrate_coils(coils, fluxgate, profile, clock)
    np.testing.assert_array_equal(coils.field_setpoint(), 0.0)
    nominal_null = np.linalg.solve(settings.calibration, -settings.ambient_field)
    np.testing.assert_allclose(model.currents(), nominal_null, atol=1e-4)


def test_a_tripped_supply_ends_in_an_error_naming_it_and_the_safe_state_attempt():
    profile = load_profile(SIMULATOR)
    settings = profile.coils
    coils, model, clock = simulated_coils(settings)
    fluxgate = Fluxgate(model, 1e-9)
    original = fluxgate.read_field

    def trip_on_read() -> np.ndarray:
        if fluxgate.reads == 15:
            model.trip(2)
        return original()

    fluxgate.read_field = trip_on_read
    with pytest.raises(InstrumentError, match="coil z") as info:
        calibrate_coils(coils, fluxgate, profile, clock)
    assert any("safe state" in note for note in info.value.__notes__)
    assert model.currents()[:2] == pytest.approx([0.0, 0.0], abs=1e-4)


def test_bad_arguments_are_refused_before_anything_moves():
    profile = load_profile(SIMULATOR)
    settings = profile.coils
    coils, model, clock = simulated_coils(settings)
    for kw in ({"fraction": 0.0}, {"average": 0}, {"max_iterations": 0}, {"levels": (1.0,)}):
        with pytest.raises(ValueError):
            calibrate_coils(coils, Fluxgate(model, 1e-9), profile, clock, **kw)
    assert [model.output(i) for i in range(3)] == [False] * 3


def test_the_coils_end_at_their_safe_state_by_the_bounded_make_safe_path():
    """The calibration's last ramp to the safe state has the make-safe path's deadline and
    loss budget (it ramped outside them, unbounded)."""
    profile = load_profile(SIMULATOR)
    coils, model, clock = simulated_coils(profile.coils)
    bounded: list[bool] = []
    zero = coils.zero

    def zero_noting_its_bound() -> None:
        budget = loss_budget.current()
        bounded.append(budget is not None and budget.deadline is not None)
        zero()

    coils.zero = zero_noting_its_bound
    calibrate_coils(coils, Fluxgate(model, 1e-9), profile, clock)
    assert bounded == [True]


def test_a_failure_on_a_slow_link_makes_the_coils_safe_within_the_bound(monkeypatch):
    """The fluxgate fails partway, the supplies' links slow from then on (2.5 s a message on
    the clock, within their timeout), the make-safe path's deadline 5 s (monkeypatched, so
    that the ramp-down outlasts it): the coils are ramped down by the bounded path, each
    supply still energised at the deadline switched off where it stands, said in the error's
    note, within the bound; every supply ends off or at its safe current. Unfixed, the
    ramp-down ran outside any deadline, as long as the link made it."""
    monkeypatch.setattr(rig_module, "safe_deadline", lambda profile: 5.0)
    profile = load_profile(SIMULATOR)
    coils, model, clock = simulated_coils(profile.coils)
    fluxgate = Fluxgate(model, 1e-9)
    fluxgate.broken_after = 35  # partway through the current steps
    read_field, failed_at = fluxgate.read_field, []

    def slow_once_it_fails() -> np.ndarray:
        if fluxgate.reads == fluxgate.broken_after:  # this read fails
            for supply in coils._supplies:
                supply.link.transport.latency = 2.5
            failed_at.append(clock.now())
        return read_field()

    fluxgate.read_field = slow_once_it_fails
    with pytest.raises(InstrumentError, match="fluxgate") as info:
        calibrate_coils(coils, fluxgate, profile, clock)
    assert clock.now() - failed_at[0] <= 5.0 + switch_off_tail_s(profile)
    notes = " ".join(info.value.__notes__)
    assert "deadline reached" in notes and "switched off at" in notes, notes
    safe = np.linalg.solve(profile.coils.calibration, -profile.coils.ambient_field)
    for k in range(3):
        assert not model.output(k) or abs(model.current(k) - safe[k]) < 1e-3, k
