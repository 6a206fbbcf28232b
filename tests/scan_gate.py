"""Holding a simulated scan at a chosen point, so a test's click lands mid-scan for sure."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

WAIT_S = 60.0  # generous: the whole suite shares two cores


class Turnstile:
    """Wraps the lock-in's read: the read numbered `hold_at` waits (`waiting` set) until `go`
    is set, so a click lands while the scan is surely mid-way (on a busy machine the
    simulated scan, which runs as fast as it can, could otherwise end before the click is
    handled)."""

    def __init__(self, read: Callable[[], tuple[float, float]]) -> None:
        self.read, self.count, self.hold_at = read, 0, 0
        self.waiting, self.go = threading.Event(), threading.Event()

    def __call__(self) -> tuple[float, float]:
        self.count += 1
        if self.count == self.hold_at:
            self.waiting.set()
            assert self.go.wait(WAIT_S)
        return self.read()

    def hold(self, at: int) -> None:
        self.hold_at = at
        self.waiting.clear()
        self.go.clear()

    def hold_scan(self, at_point: int) -> None:
        """Hold the read of point `at_point` of a scan just started (its first read comes
        before the scan, then one a point)."""
        self.hold(at_point + 1)


def gate_the_scan(window: Any, qtbot: Any, monkeypatch: Any) -> Turnstile:
    """A Turnstile on the window's lock-in that only the scan reads: the Instruments tab's
    poll (every 500 ms, also a lock-in read) is stopped and let finish first, as a poll read
    could take the held number and leave the scan running on to its end."""
    window.instruments.timer.stop()
    qtbot.waitUntil(lambda: window.holder.background.pending == 0, timeout=int(WAIT_S * 1000))
    lockin = window.holder.rig.lockin
    gate = Turnstile(lockin.read_xy)
    monkeypatch.setattr(lockin, "read_xy", gate)
    return gate


class Held:
    """Wraps a function so that each call waits, once `entered` is set, until `go` is set:
    the caller's work is then surely in flight when the test acts. `then` replaces what the
    call does once let go (e.g. a failure to raise); `threads` are those of the calls."""

    def __init__(self, fn: Callable[..., Any], then: Callable[..., Any] | None = None) -> None:
        self.fn, self.then = fn, then
        self.entered, self.go = threading.Event(), threading.Event()
        self.threads: list[threading.Thread] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.threads.append(threading.current_thread())
        self.entered.set()
        assert self.go.wait(WAIT_S)
        return (self.then or self.fn)(*args, **kwargs)

    def wait_entered(self) -> None:
        assert self.entered.wait(WAIT_S)
