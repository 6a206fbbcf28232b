"""Scan plans: grids, validation against the profile (naming field and limit), duration."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from smm_daq.acquisition.plan import ScanPlan
from smm_daq.errors import InputError
from smm_daq.instruments.profile import load_profile

C = 12.5e-3


@pytest.fixture(scope="module")
def profile():
    return load_profile()


def test_from_center_builds_a_centred_grid():
    p = ScanPlan.from_center("s", (C, 5e-3), (100e-6, 40e-6), (10e-6, 20e-6))
    assert (p.nx, p.ny) == (11, 3)
    assert np.mean(p.x) == pytest.approx(C) and np.mean(p.y) == pytest.approx(5e-3)
    assert p.x[-1] - p.x[0] == pytest.approx(100e-6)
    assert p.points == 33


def test_zero_size_is_a_single_point():
    p = ScanPlan.from_center("s", (C, C), (0.0, 0.0), 10e-6)
    assert (p.nx, p.ny) == (1, 1) and p.x0 == C


def test_serpentine_reverses_odd_lines_only():
    p = ScanPlan.from_center("s", (C, C), (20e-6, 20e-6), 10e-6)
    assert list(p.line_order(0)) == [0, 1, 2] and list(p.line_order(1)) == [2, 1, 0]
    u = replace(p, raster="unidirectional")
    assert list(u.line_order(1)) == [0, 1, 2]


def test_a_good_plan_validates(profile):
    ScanPlan.from_center("s", (C, C), (1e-3, 1e-3), 10e-6, field=(0, 40e-6, 0)).validate(profile)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"x0": 24.99e-3}, ["plan x range", "25000 µm"]),
        ({"y0": -1e-6}, ["plan y range", "0 .. 25000 µm"]),
        ({"step_x": 5e-9}, ["plan step_x is 0.005 µm", "resolution 0.01 µm"]),
        ({"field": (0.0, 0.0, 101e-6)}, ["plan field", "max_field 100 µT"]),
        ({"height": 20e-3}, ["plan height is 20000 µm", "z travel"]),
        ({"height": 0.0}, ["plan height is 0 µm", "sample's top surface", "stand-off"]),
        ({"height": -5e-6}, ["plan height is -5 µm", "stand-off"]),
        ({"raster": "zigzag"}, ["plan raster is 'zigzag'", "serpentine"]),
        ({"settle_tau": -1.0}, ["plan settle_tau is -1.0"]),
        ({"nx": 0}, ["plan nx is 0"]),
        ({"name": "a/b"}, ["plan name 'a/b'"]),
        ({"nx": 6000, "ny": 6000, "step_x": 1e-6, "step_y": 1e-6},
         ["6000 × 6000", "at most 25,000,000"]),
        ({"dwell_tau": float("nan")}, ["plan dwell_tau is nan"]),
    ],
)
def test_validation_names_the_field_value_and_limit(profile, change, words):
    plan = replace(ScanPlan.from_center("s", (C, C), (100e-6, 100e-6), 10e-6), **change)
    with pytest.raises(InputError) as err:
        plan.validate(profile)
    for w in words:
        assert w in str(err.value)


def test_field_needing_more_than_max_current_is_refused(profile):
    weak = replace(profile.coils, calibration=np.eye(3) * 1e-5)  # 100 µT would need 10 A
    p = replace(profile, coils=weak)
    plan = ScanPlan.from_center("s", (C, C), (0, 0), 10e-6, field=(50e-6, 0, 0))
    with pytest.raises(InputError, match=r"needs 5 A in coil x; expected at most max_current 3 A"):
        plan.validate(p)


def test_estimate_duration_adds_up_moves_settling_and_ramp(profile):
    plan = ScanPlan.from_center(
        "s", (C, C), (90e-6, 40e-6), 10e-6, field=(0, 50e-6, 0), settle_tau=5.0
    )
    st, tau = profile.stage, profile.lockin.time_constant
    ramp = 2 * 1.0 / profile.coils.max_ramp_rate  # 50 µT at 5e-5 T/A is 1 A, up and down
    # 5 lines of 10 points: 9 steps along x a line, and 4 moves to the next line's first
    # point; every point settles, the first as the way down's end
    per_point = st.settle_time + 5 * tau
    along = 5 * 9 * 10e-6 / st.velocity
    middle = np.mean(st.travel, axis=1)  # the way down: from where a referenced stage stands
    first = np.array([plan.x[0], plan.y[0], plan.height])
    way_down = np.max(np.abs(first - middle)) / st.velocity + st.settle_time
    lines = 50 * per_point - st.settle_time + along
    expected = ramp + way_down + lines + 4 * 10e-6 / st.velocity  # a step along y a turn
    assert plan.estimate_duration(profile) == pytest.approx(expected)
    uni = replace(plan, raster="unidirectional")  # back across the line as it steps along y
    expected = ramp + way_down + lines + 4 * 90e-6 / st.velocity
    assert uni.estimate_duration(profile) == pytest.approx(expected)


def test_text_round_trip_and_difference():
    plan = ScanPlan.from_center(
        "s",
        (C, C),
        (90e-6, 40e-6),
        10e-6,
        field=(1e-6, 2e-6, 3e-6),
        title="t",
        raster="unidirectional",
        dwell_tau=2.0,
    )
    back = ScanPlan.from_text(plan.to_text())
    assert back.difference(plan) is None
    assert "field_uT" in replace(plan, field=(0, 0, 0)).difference(plan)
    assert '"height_um": 100.0' in plan.to_text()


def test_malformed_plan_text_names_the_source():
    with pytest.raises(InputError, match=r"f\.h5: plan key 'nx' is missing"):
        ScanPlan.from_text('{"name": "s", "x0_um": 1, "y0_um": 1}', source="f.h5")
    with pytest.raises(InputError, match="not JSON"):
        ScanPlan.from_text("{", source="f.h5")


def test_a_height_above_zero_below_the_resolution_is_refused_for_the_resolution(profile):
    """0.005 µm is a height above the sample top, only finer than the stage can set: its
    refusal names the resolution, not why 0 is no height."""
    plan = replace(ScanPlan.from_center("s", (C, C), (100e-6, 100e-6), 10e-6), height=5e-9)
    with pytest.raises(InputError) as err:
        plan.validate(profile)
    assert "plan height is 0.005 µm" in str(err.value)
    assert "resolution 0.01 µm" in str(err.value)
    assert "0 would put" not in str(err.value) and "stand-off" not in str(err.value)
