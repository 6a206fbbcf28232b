"""The Stop of a field's ramp, which remembers when it came on the rig's clock.

A ramp asks its stop between its steps (`FieldSource.set_field(stop=...)`); the step under way
as Stop comes still runs, and then the rig is made safe from there. Both belong to the bounded
make-safe path that the stop begins (`Rig.safe_from`): its deadline counts from the stop's
time, so that a slow or lossy link cannot stretch the step past the bound a closing window
waits for.
"""

from __future__ import annotations

import threading

from smm_daq.clock import Clock


class RampStop(threading.Event):
    """A `threading.Event` that keeps the time on `clock` at which it was first set (`at`)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self._clock = clock
        self._first = threading.Lock()
        self.at: float | None = None  # when first set, on the rig's clock

    def set(self) -> None:
        with self._first:
            if self.at is None:
                self.at = self._clock.now()
        super().set()
