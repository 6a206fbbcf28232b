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
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from smm_daq.clock import Clock


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
