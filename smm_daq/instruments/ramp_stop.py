"""The Stop of a field's ramp, which remembers when it came on the rig's clock.

A ramp asks its stop between its steps (`FieldSource.set_field(stop=...)`); the step under way
as Stop comes still runs, and then the rig is made safe from there. Both belong to the bounded
make-safe path that the stop begins (`Rig.safe_from`): its deadline counts from the stop's
time, so that a slow or lossy link cannot stretch the step past the bound a closing window
waits for.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

from smm_daq.clock import Clock
from smm_daq.errors import RampStopped
from smm_daq.instruments import ramp_pieces

if TYPE_CHECKING:
    from smm_daq.instruments.rig import Rig

UT = 1e-6


class RampStop(threading.Event):
    """A `threading.Event` that keeps the time on `clock` at which it was first set (`at`)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self._clock = clock
        self._first = threading.Lock()
        self.at: float | None = None  # when first set, on the rig's clock

    @property
    def clock(self) -> Clock:
        """The clock `at` is on: the rig's, whose make-safe deadline counts from it."""
        return self._clock

    def set(self) -> None:
        with self._first:
            if self.at is None:
                self.at = self._clock.now()
        super().set()


def ramp_field(rig: Rig, b: np.ndarray, stop: RampStop) -> None:
    """Ramp `rig`'s coils to the field `b` (T). `stop` set meanwhile (Stop, Esc, a window's
    close) ends the ramp at its next step, and the rig is made safe from there (`make_safe`:
    the stage stopped, the coils ramped to their safe state); the step under way and that
    making safe are one bounded make-safe path from the stop (`Rig.safe_from`), so the call
    ends within `safe_time_bound` of it, however slow or lossy the links. Stopped, raises
    `RampStopped` saying where the ramp got to and what making the rig safe left (its
    `safe_problems`); a step that failed once stopped is made safe all the same, and said."""
    with rig.safe_from(stop):
        try:
            ramp_pieces.set_field(rig.coils, rig.profile, b, stop.is_set)
            if stop.is_set():  # set after the ramp's last step was asked about
                raise RampStopped(
                    f"{rig.coils.name}: the ramp was stopped as it ended, the field at "
                    f"{_ut(b)}")
        except Exception as exc:
            if not stop.is_set():
                raise
            stopped = exc if isinstance(exc, RampStopped) else RampStopped(
                f"{rig.coils.name}: the ramp was stopped during its step, which failed: {exc}")
            problems = rig.make_safe()
            if problems:
                raise RampStopped(f"{stopped}; making the rig safe from there left: "
                                  f"{'; '.join(problems)}", safe_problems=problems) from None
            raise RampStopped(f"{stopped}; ramped to the safe state from there, the stage "
                              "stopped", safe_problems=[]) from None


def _ut(b: np.ndarray) -> str:
    bx, by, bz = np.asarray(b, dtype=float) / UT
    return f"({bx:.3f}, {by:.3f}, {bz:.3f}) µT"
