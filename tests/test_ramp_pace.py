"""A ramp's steps are paced by the rig's clock: a slow step is caught up by the next one, a
lost reply's timeout is not (the current would jump by what the ramp moves in it)."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.ramp_pace import ramp_fractions
from smm_daq.clock import VirtualClock
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import open_rig


def test_a_step_slow_to_answer_is_caught_up_so_the_ramp_keeps_its_duration() -> None:
    clock = VirtualClock()
    fractions = ramp_fractions(clock, 1.0, 0.1, lambda: 0)
    assert next(fractions) == pytest.approx(0.1)
    clock.sleep(0.3)  # the step's exchanges took 0.3 s, every reply came
    assert next(fractions) == pytest.approx(0.5)
    assert list(fractions) == pytest.approx([0.6, 0.7, 0.8, 0.9, 1.0])
    assert clock.now() == pytest.approx(1.0)


def test_a_lost_reply_is_not_caught_up() -> None:
    clock = VirtualClock()
    lost = [0]
    fractions = ramp_fractions(clock, 1.0, 0.1, lambda: lost[0])
    assert next(fractions) == pytest.approx(0.1)
    clock.sleep(3.0)  # a reply timed out
    lost[0] += 1
    assert next(fractions) == pytest.approx(0.2)  # one step on, not to the end at once
    assert len(list(fractions)) == 8


def test_a_ramp_of_no_length_is_one_step_to_its_end() -> None:
    clock = VirtualClock()
    assert list(ramp_fractions(clock, 0.0, 0.1, lambda: 0)) == [1.0]
    assert clock.now() == 0.0


def test_a_field_set_on_a_slow_link_ramps_at_its_rate_not_slower() -> None:
    """Every message takes 100 ms to reach a supply (a slow bus): a field set of 2 A at
    1 A/s ramps in about 2 s, each step as far as the time since the ramp began allows, never
    ahead of the rate. (Its steps were fixed, 0.1 A each: with three supplies' exchanges in
    each, the ramp took 19 s.)"""
    profile = load_profile()
    rate = profile.coils.max_ramp_rate
    with open_rig(profile, world_options={"bus_latency": 0.1}) as rig:
        world = rig.world.coils
        original = world.set_current
        sent: list[tuple[float, float]] = []  # coil x's setpoints, as the world takes them

        def set_current(i: int, amps: float) -> None:
            original(i, amps)
            if i == 0:
                sent.append((rig.clock.now(), amps))

        world.set_current = set_current
        began = rig.clock.now()
        rig.coils.set_field(np.array([100e-6, 0.0, 0.0]))
    steps = [(t, a) for t, a in sent if a != 0.0]
    assert steps[-1][1] == pytest.approx(2.0)
    first, last = steps[0][0], steps[-1][0]
    # the ramp's 2 s, and the exchanges of the step under way and the last (nine each)
    assert last - first <= 2.0 / rate + 2 * 9 * 0.1
    assert all(abs(a) <= rate * (t - began) for t, a in steps)  # never ahead of the rate
