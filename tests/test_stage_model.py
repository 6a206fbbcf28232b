"""The simulated piezo stage: straight-line motion at its velocity, settling, limits, servo."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.stage_model import StageModel, StageRefused
from smm_daq.clock import VirtualClock

TRAVEL = np.array([[0.0, 25e-3], [0.0, 25e-3], [0.0, 10e-3]])


def make(clock: VirtualClock, **kw) -> StageModel:
    args = dict(travel=TRAVEL, velocity=2e-3, resolution=10e-9, settle_time=0.01)
    args.update(kw)
    m = StageModel(clock, **args)
    for ax in m.axis_names:
        m.set_servo(ax, True)
    return m


def test_axis_moves_at_its_velocity_and_settles_after_arrival():
    clock = VirtualClock()
    m = make(clock)
    m.move({"1": 4e-3})
    clock.advance(1.0)  # 2 mm/s for 1 s: halfway
    assert m.position("1") == pytest.approx(2e-3, abs=1e-12)
    assert not m.on_target("1")
    clock.advance(1.0)  # arrived, not yet settled
    assert m.position("1") == pytest.approx(4e-3, abs=1e-12)
    assert not m.on_target("1")
    clock.advance(0.0101)
    assert m.on_target("1")


def test_axes_move_independently_each_at_its_velocity():
    clock = VirtualClock()
    m = make(clock)
    m.set_velocity("2", 1e-3)
    m.move({"1": 2e-3, "2": 2e-3})
    clock.advance(1.0)
    assert m.position("1") == pytest.approx(2e-3)
    assert m.position("2") == pytest.approx(1e-3)


def test_target_lands_on_the_resolution_grid():
    clock = VirtualClock()
    m = make(clock, resolution=10e-9)
    m.move({"1": 1.234567891e-3})
    clock.advance(10.0)
    assert abs(m.position("1") - 1.234567891e-3) <= 5e-9 + 1e-15
    assert m.position("1") / 10e-9 == pytest.approx(round(m.position("1") / 10e-9), abs=1e-6)


def test_axis_sign_maps_controller_onto_sample_frame():
    clock = VirtualClock()
    m = make(clock, axes=("A", "B", "C"), axis_sign=(1, -1, 1))
    assert m.limits("B") == pytest.approx((-25e-3, 0.0))
    m.move({"A": 3e-3, "B": -5e-3})
    clock.advance(10.0)
    np.testing.assert_allclose(m.sample_position(), [3e-3, 5e-3, 0.0], atol=1e-12)


def test_move_refused_with_servo_off_and_nothing_moves():
    clock = VirtualClock()
    m = make(clock)
    m.set_servo("2", False)
    with pytest.raises(StageRefused) as info:
        m.move({"1": 1e-3, "2": 1e-3})
    assert (info.value.reason, info.value.axis) == ("servo_off", "2")
    clock.advance(5.0)
    assert m.position("1") == 0.0


def test_move_out_of_limits_refused_all_or_nothing():
    clock = VirtualClock()
    m = make(clock)
    with pytest.raises(StageRefused) as info:
        m.move({"1": 1e-3, "3": 11e-3})
    assert info.value.reason == "out_of_limits"
    clock.advance(5.0)
    np.testing.assert_array_equal(m.sample_position(), [0.0, 0.0, 0.0])


def test_stop_freezes_every_axis_where_it_is():
    clock = VirtualClock()
    m = make(clock)
    m.move({"1": 10e-3})
    clock.advance(1.0)
    m.stop()
    clock.advance(10.0)
    assert m.position("1") == pytest.approx(2e-3)
    assert m.on_target("1")


def test_velocity_change_mid_move_continues_from_where_it_is():
    clock = VirtualClock()
    m = make(clock)
    m.move({"1": 10e-3})
    clock.advance(1.0)
    m.set_velocity("1", 4e-3)
    clock.advance(1.0)
    assert m.position("1") == pytest.approx(2e-3 + 4e-3)


def test_velocity_outside_range_rejected():
    m = make(VirtualClock(), max_velocity=5e-3)
    with pytest.raises(ValueError):
        m.set_velocity("1", 6e-3)
    with pytest.raises(ValueError):
        m.set_velocity("1", 0.0)


def test_stalled_axis_never_reaches_target():
    clock = VirtualClock()
    m = make(clock)
    m.move({"1": 2e-3})
    clock.advance(0.5)
    m.stall("1")
    clock.advance(100.0)
    assert m.position("1") == pytest.approx(1e-3)
    assert not m.on_target("1")


def test_start_position_and_bad_construction():
    m = StageModel(VirtualClock(), travel=TRAVEL, velocity=1e-3, start=(1e-3, 2e-3, 3e-3))
    np.testing.assert_allclose(m.sample_position(), [1e-3, 2e-3, 3e-3])
    assert not m.servo("1")  # off at power-up, like the real controller
    with pytest.raises(ValueError):
        StageModel(VirtualClock(), travel=TRAVEL, velocity=1e-3, start=(30e-3, 0, 0))
    with pytest.raises(ValueError):
        StageModel(VirtualClock(), axes=("1", "1", "2"), travel=TRAVEL, velocity=1e-3)


def test_a_velocity_change_after_arrival_leaves_the_position_and_its_history_alone():
    clock = VirtualClock()
    m = make(clock)
    m.move({"1": 4e-3})
    clock.advance(3.0)  # arrived at 2 s, settled at 2.01 s
    m.set_velocity("1", 0.5e-3)
    assert m.position("1") == pytest.approx(4e-3, abs=1e-15)
    assert m.on_target("1")
    assert m.position_at("1", clock.now() - 2.0) == pytest.approx(2e-3, abs=1e-12)  # at 1 s
