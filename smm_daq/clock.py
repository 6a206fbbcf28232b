"""Injectable clocks: everything in smm-daq that waits asks a `Clock`.

Real instruments run on `SystemClock`. Simulators and tests run on `VirtualClock`, whose
`sleep` advances simulated time at once (or, with a time scale, after a proportionally
shorter real wait), so a six-hour scan simulates in seconds and no test ever sleeps.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod


class Clock(ABC):
    """Monotonic time in seconds, and a way to wait."""

    @abstractmethod
    def now(self) -> float:
        """Seconds since an arbitrary origin; never decreases."""

    @abstractmethod
    def sleep(self, seconds: float) -> None:
        """Wait `seconds` (of this clock's time)."""


class SystemClock(Clock):
    """Wall-clock time for real hardware."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class VirtualClock(Clock):
    """Simulated time, shared by a simulated world and everything that talks to it.

    `time_scale` is simulated seconds per real second: 0 (the default) means as fast as
    possible, never waiting for real; 1 is real time; 60 runs a minute a second. Thread safe:
    the sequencer's worker thread and the GUI may both read it.
    """

    def __init__(self, start: float = 0.0, time_scale: float = 0.0) -> None:
        if time_scale < 0:
            raise ValueError(f"time_scale must be >= 0 (0 = as fast as possible), got {time_scale}")
        self._t = float(start)
        self.time_scale = float(time_scale)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._t

    def advance(self, seconds: float) -> None:
        """Move simulated time forward without any real wait."""
        if seconds < 0:
            raise ValueError(f"cannot advance a clock backwards ({seconds} s)")
        with self._lock:
            self._t += seconds

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self.time_scale > 0:
            time.sleep(seconds / self.time_scale)
        self.advance(seconds)
