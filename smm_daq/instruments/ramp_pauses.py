"""The pauses between a field set's steps, lent to work of the caller's own.

A field set ramps its coils in steps sent a fixed interval apart, and waits out what is left of
each interval once a step's exchanges are done (`drivers.ramp_pace.capped_fractions`). A
caller may have work for that time: the window's readouts, which would otherwise freeze for
the whole ramp. `lent_to(use)` lends it every such pause in this thread until the block ends:
`use(free)` runs in each, `free` the seconds on the rig's clock until the next step is due. What
`use` takes on the clock comes out of the pause, so a `use` that ends within `free` neither
slows the ramp nor steepens it (the next step goes when it was due, never sooner); one that
overruns delays the next step, which a ramp's pace takes as a slow step (longer, never
steeper). `use` decides what fits; it is never handed a pause once the ramp's stop is set
(the caller's `stop` check: making the rig safe comes first).

Only the field set's ramp lends its pauses: a making safe's ramp-down (`ramp_fractions`) does
not, so nothing of the caller's runs in the make-safe path. A driver that paces its ramp
otherwise lends none: its ramp runs as before, the caller's work waiting for its end.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

_lent = threading.local()  # `use`: the current thread's borrower, if any


@contextlib.contextmanager
def lent_to(use: Callable[[float], None]) -> Iterator[None]:
    """The pauses of the field sets' ramps run in this thread within the block go to `use`."""
    before = getattr(_lent, "use", None)
    _lent.use = use
    try:
        yield
    finally:
        _lent.use = before


def pause(free: float) -> None:
    """A ramp's pause in this thread, `free` seconds before its next step is due: lent to the
    borrower, if any (`lent_to`)."""
    use = getattr(_lent, "use", None)
    if use is not None and free > 0:
        use(free)
