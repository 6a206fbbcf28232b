"""The simulated coils: field = C @ I + ambient, slew, resolution, compliance, output, trips."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.coil_model import CoilModel
from smm_daq.clock import VirtualClock
from smm_daq.instruments.profile import load_profile

C = np.array([[5e-5, 1e-6, 0.0], [-2e-6, 4.8e-5, 3e-7], [0.0, 5e-7, 5.1e-5]])
AMBIENT = np.array([14e-6, 0.6e-6, -49e-6])


def make(clock: VirtualClock, **kw) -> CoilModel:
    m = CoilModel(clock, calibration=C, ambient=AMBIENT, **kw)
    for i in range(3):
        m.set_output(i, True)
    return m


def test_each_coil_adds_its_calibration_column_to_the_ambient_field():
    clock = VirtualClock()
    m = make(clock)
    np.testing.assert_allclose(m.field_at_sample(), AMBIENT)
    for i in range(3):
        m.set_current(i, 1.0)
        clock.advance(1.0)
        np.testing.assert_allclose(m.field_at_sample() - AMBIENT, C[:, : i + 1].sum(axis=1))


def test_output_follows_a_new_setpoint_at_the_slew_rate():
    clock = VirtualClock()
    m = make(clock, slew_rate=4.0)
    m.set_current(0, 2.0)
    clock.advance(0.25)
    assert m.current(0) == pytest.approx(1.0)
    clock.advance(0.5)
    assert m.current(0) == pytest.approx(2.0)
    m.set_current(0, -2.0)
    clock.advance(0.5)
    assert m.current(0) == pytest.approx(0.0, abs=1e-12)


def test_setpoints_are_rounded_to_the_supply_resolution():
    clock = VirtualClock()
    m = make(clock, resolution=1e-4)
    for request in (0.123456, -1.00004, 2.99996):
        m.set_current(1, request)
        assert abs(m.setpoint(1) - request) <= 0.5e-4 + 1e-12
        assert m.setpoint(1) / 1e-4 == pytest.approx(round(m.setpoint(1) / 1e-4), abs=1e-6)


def test_output_off_gives_zero_current_and_the_ambient_field():
    clock = VirtualClock()
    m = make(clock)
    m.set_current(2, 1.0)
    clock.advance(1.0)
    m.set_output(2, False)
    assert m.current(2) == 0.0
    np.testing.assert_allclose(m.field_at_sample(), AMBIENT)
    m.set_output(2, True)  # back on: ramps from zero
    assert m.current(2) == 0.0
    clock.advance(1.0)
    assert m.current(2) == pytest.approx(1.0)


def test_voltage_limit_caps_the_current():
    clock = VirtualClock()
    m = make(clock, resistance=4.0)
    m.set_voltage_limit(0, 6.0)  # 6 V / 4 Ω = 1.5 A
    m.set_current(0, 2.0)
    clock.advance(1.0)
    assert m.current(0) == pytest.approx(1.5)
    assert m.voltage(0) == pytest.approx(6.0)
    assert m.in_compliance(0)
    assert not m.in_compliance(1)


def test_trip_switches_the_output_off_and_reports_once():
    clock = VirtualClock()
    m = make(clock)
    m.set_current(1, 1.0)
    clock.advance(1.0)
    m.trip(1, "overtemperature")
    assert not m.output(1)
    assert m.current(1) == 0.0
    assert m.pop_fault(1) == "overtemperature"
    assert m.pop_fault(1) is None
    assert m.pop_fault(0) is None


def test_current_beyond_rating_rejected():
    m = make(VirtualClock(), rating=5.0)
    with pytest.raises(ValueError):
        m.set_current(0, 5.5)


def test_readback_noise_has_the_stated_spread():
    clock = VirtualClock()
    m = make(clock, measure_noise=1e-3, seed=3)
    m.set_current(0, 1.0)
    clock.advance(1.0)
    reads = np.array([m.measured_current(0) for _ in range(4000)])
    assert reads.mean() == pytest.approx(1.0, abs=4 * 1e-3 / np.sqrt(4000))
    assert reads.std() == pytest.approx(1e-3, rel=0.06)


def test_from_settings_true_matrix_differs_from_nominal_by_the_stated_error():
    settings = load_profile().coils
    clock = VirtualClock()
    errors = []
    for seed in range(40):
        m = CoilModel.from_settings(settings, clock, calibration_error=0.01, seed=seed)
        errors.append(np.linalg.solve(settings.calibration, m.calibration) - np.eye(3))
    errors = np.array(errors)
    # E has independent N(0, 0.01²) entries: 360 draws, SD estimated within ~8 %.
    assert errors.std() == pytest.approx(0.01, rel=0.15)
    assert abs(errors.mean()) < 4 * 0.01 / np.sqrt(errors.size)
    same = CoilModel.from_settings(settings, clock, seed=7).calibration
    np.testing.assert_array_equal(
        same, CoilModel.from_settings(settings, clock, seed=7).calibration
    )
