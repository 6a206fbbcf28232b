"""The virtual clock: simulated time advances on sleep, never backwards, without real waits."""

from __future__ import annotations

import pytest

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
