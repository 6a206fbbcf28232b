"""A make-safe ramp's steps are paced by the rig's clock: a slow step is caught up by the next
one, a lost reply's timeout is not (the current would jump by what the ramp moves in it). A
field set's steps are capped at what its rate allows in one step's interval: a slow link makes
it longer, never steeper."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from drivers.ramp_pace import capped_fractions, ramp_fractions
from smm_daq.clock import VirtualClock
from smm_daq.instruments import ramp_pauses
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


def test_a_capped_ramp_does_not_catch_up_a_slow_step() -> None:
    clock = VirtualClock()
    fractions = capped_fractions(clock, 1.0, 0.1)
    assert next(fractions) == pytest.approx(0.1)
    clock.sleep(0.3)  # the step's exchanges took 0.3 s
    assert next(fractions) == pytest.approx(0.2)  # one step on, at once: not to 0.5
    assert clock.now() == pytest.approx(0.4)
    clock.sleep(0.04)  # a quick step: the next waits out the rest of its interval
    assert next(fractions) == pytest.approx(0.3)
    assert clock.now() == pytest.approx(0.5)
    assert list(fractions) == pytest.approx([0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])


# latency per message (s) -> (steps, largest step in A, ramp time in s on the rig's clock)
FIELD_SET_MEASURED = {
    0.0: (20, 0.1, 2.0),
    0.02: (20, 0.1, 3.8),
    0.1: (20, 0.1, 18.6),
    0.3: (20, 0.1, 55.6),
}


@pytest.mark.parametrize("latency", sorted(FIELD_SET_MEASURED))
def test_a_field_set_on_a_slow_link_is_longer_never_steeper(latency: float) -> None:
    """Every message takes `latency` to reach a supply (a slow bus): a field set of 2 A at
    1 A/s goes in 20 steps of 0.1 A (what the rate allows in one 0.1 s step's interval), each
    begun at least that interval after the one before, so the coil never ramps faster than
    the profile's limit; with three supplies' exchanges (nine messages) in each step, the
    ramp takes longer than 2 s. (Its steps had caught up the time the exchanges took: at
    300 ms per message, 2 steps, the largest 1.9 A, sent at the supply's own slew.)"""
    profile = load_profile()
    rate = profile.coils.max_ramp_rate
    with open_rig(profile, world_options={"bus_latency": latency}) as rig:
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
    steps = [(began, 0.0)] + [(t, a) for t, a in sent if a != 0.0]
    assert steps[-1][1] == pytest.approx(2.0)
    sizes = [abs(b - a) for (_, a), (_, b) in itertools.pairwise(steps)]
    gaps = [u - t for (t, _), (u, _) in itertools.pairwise(steps)]
    # never steeper than the rate, step by step, not only on average
    assert all(size <= rate * gap * (1 + 1e-9) for size, gap in zip(sizes, gaps, strict=True))
    count, largest, ramp_s = FIELD_SET_MEASURED[latency]
    assert (len(sizes), max(sizes), steps[-1][0] - began) == (
        count, pytest.approx(largest), pytest.approx(ramp_s))


def test_a_field_sets_pauses_are_lent_its_pace_unchanged() -> None:
    """Work lent the pauses between a field set's steps (`ramp_pauses.lent_to`: the window's
    readings), taking 0.06 s of the rig's clock in each: the field set of 2 A at 1 A/s still
    goes in 20 steps of 0.1 A, each sent 0.1 s after the one before, 2 s in all; the work was
    handed each pause as it began, 0.1 s before its step was due. (Unlent, the window's
    readings waited for the ramp's end: the readouts froze for it.)"""
    with open_rig(load_profile()) as rig:
        world = rig.world.coils
        original = world.set_current
        sent: list[float] = []  # when coil x's steps were taken, on the rig's clock

        def set_current(i: int, amps: float) -> None:
            original(i, amps)
            if i == 0 and amps != 0.0:
                sent.append(rig.clock.now())

        free: list[float] = []

        def use(seconds: float) -> None:
            free.append(seconds)
            rig.clock.advance(0.06)

        world.set_current = set_current
        began = rig.clock.now()
        with ramp_pauses.lent_to(use):
            rig.coils.set_field(np.array([100e-6, 0.0, 0.0]))
    assert free == pytest.approx([0.1] * 20)
    assert [u - t for t, u in itertools.pairwise([began, *sent])] == pytest.approx([0.1] * 20)
