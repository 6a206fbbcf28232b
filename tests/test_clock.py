"""The virtual clock: simulated time advances on sleep, never backwards, without real waits."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from simulators import tcp_server
from simulators.tcp_server import RealTimeClock
from smm_daq.clock import VirtualClock


def test_sleep_advances_simulated_time_only() -> None:
    clock = VirtualClock()
    clock.sleep(6 * 3600.0)  # six hours, at once
    assert clock.now() == pytest.approx(6 * 3600.0)
    clock.sleep(-1.0)
    assert clock.now() == pytest.approx(6 * 3600.0)


def test_cannot_go_backwards_or_have_negative_scale() -> None:
    clock = VirtualClock(start=5.0)
    with pytest.raises(ValueError):
        clock.advance(-1.0)
    with pytest.raises(ValueError):
        VirtualClock(time_scale=-2.0)


def test_a_served_worlds_clock_changes_pace_without_a_jump(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = [100.0]  # the system's monotonic clock, stood in for (in that module only)
    monkeypatch.setattr(tcp_server, "time", SimpleNamespace(monotonic=lambda: real[0]))
    clock = RealTimeClock(time_scale=50.0, start=2.0)
    real[0] += 0.5
    assert clock.now() == pytest.approx(27.0)
    clock.set_time_scale(1.0)
    assert clock.now() == pytest.approx(27.0)
    real[0] += 3.0
    assert clock.now() == pytest.approx(30.0)
    with pytest.raises(ValueError, match="time scale must be > 0"):
        clock.set_time_scale(0.0)
