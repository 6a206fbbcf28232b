"""A ramp's steps are paced by the rig's clock: a slow step is caught up by the next one, a
lost reply's timeout is not (the current would jump by what the ramp moves in it)."""

from __future__ import annotations

import pytest

from drivers.ramp_pace import ramp_fractions
from smm_daq.clock import VirtualClock


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
