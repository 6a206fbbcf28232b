"""The pace of one ramp's steps on the rig's clock, so that a supply slow to answer does not
make the ramp longer than its duration.

A ramp sends its supplies a step every `step_s` seconds. Each step's exchanges take time as
well (a bus's latency, a supply that answers within its link's timeout but slowly): a ramp
counted in steps of fixed size would take its duration plus every step's exchanges, several
times its duration on a slow link, and making the rig safe would outlast the limit
`safe_time_bound` prints. So each step goes as far as the time the ramp has run: after a slow
step comes a larger one, and the current is never further from its start than the ramp rate
times the time since the ramp began.

Time in which a reply was lost (`lost()` grew) is not caught up: that step goes `step_s` on,
as in a ramp of fixed steps. Lost replies are counted apart by the bound (`loss_budget`), and
a link's timeout caught up at once would step the current by as much as the ramp moves in it.

That catching up is for the ramps with a deadline (the make-safe path's ramp-down, and the
ramps out of voltage mode of the connect it starts with): there, a ramp that ran late is cut
off by the deadline, each supply still energised switched off where it stands, a step of all
the current left at once, larger than any step that catches up. A field set has no deadline,
and a step that catches up drives the coil at the supply's own slew, faster than the profile's
ramp limit the ramp is there to keep (an inductive kick, a field step at the sample). So a
field set's steps are `capped_fractions`: each no larger than the rate allows in one step's
interval, each begun that interval or more after the one before: a slow link makes it longer,
never steeper. The waits between a field set's steps are lent to the caller's own work
(`smm_daq.instruments.ramp_pauses`: the window's readings), whose time comes out of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from smm_daq.clock import Clock
from smm_daq.instruments import ramp_pauses


def ramp_fractions(clock: Clock, duration: float, step_s: float,
                   lost: Callable[[], int]) -> Iterator[float]:
    """Sleep a step, then yield how far (0 to 1) the ramp of `duration` s is to step; the last
    yielded is 1.0. `lost()`: the replies its supplies have lost so far (a count that only
    grows)."""
    steps = max(1, math.ceil(duration / step_s - 1e-9))
    pause = duration / steps
    ran = 0.0
    at, count = clock.now(), lost()
    fraction = 0.0
    j = 0
    while fraction < 1.0:
        clock.sleep(pause)
        now, now_lost = clock.now(), lost()
        ran += pause if now_lost != count else now - at
        at, count = now, now_lost
        j += 1
        # never behind the fixed steps; ended where either is (whatever the rounding)
        ended = j >= steps or ran >= duration * (1 - 1e-9)
        fraction = 1.0 if ended else max(j / steps, ran / duration)
        yield fraction


def capped_fractions(clock: Clock, duration: float, step_s: float) -> Iterator[float]:
    """Wait, then yield how far (0 to 1) a ramp of `duration` s is to step, in equal steps
    (their number as in `ramp_fractions`), each yielded at least a step's interval after the
    one before was: the exchanges of a step count towards the wait for the next, and time they
    overran is not caught up. The last yielded is 1.0. Each wait is lent first to the caller's
    work (`ramp_pauses.pause`), the sleep then shortened by what that took."""
    steps = max(1, math.ceil(duration / step_s - 1e-9))
    pause = duration / steps
    at = clock.now()
    for j in range(1, steps + 1):
        ramp_pauses.pause(at + pause - clock.now())
        clock.sleep(max(0.0, at + pause - clock.now()))
        at = clock.now()
        yield 1.0 if j == steps else j / steps
