"""Signals: the first interrupts (after the instrument exchange under way), the rest are
acknowledged; none interrupts the rig being made safe."""

from __future__ import annotations

import signal

import pytest

from smm_daq import interrupts
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import safe_time_bound


def send(sig: signal.Signals = signal.SIGINT) -> None:
    """Raise `sig` in this (the main) thread: its handler runs before this returns."""
    signal.raise_signal(sig)


def test_the_first_signal_interrupts_and_later_ones_are_acknowledged(capfd) -> None:
    with interrupts.installed():
        with pytest.raises(KeyboardInterrupt):
            send(signal.SIGTERM)
        send(signal.SIGINT)
        send(signal.SIGHUP)
    err = capfd.readouterr().err
    assert err.count("stopping; the rig is made safe before the program ends") == 2
    assert "SIGINT" in err and "SIGHUP" in err


def test_a_signal_during_an_exchange_waits_for_its_end() -> None:
    done = []
    with interrupts.installed(), pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        with interrupts.atomic():
            send(signal.SIGTERM)
            done.append("the reply was read")
        done.append("not reached")
    assert done == ["the reply was read"]


def test_signals_while_making_safe_are_acknowledged_with_the_time_left(capfd) -> None:
    with interrupts.installed(), interrupts.making_safe(30.0):
        send(signal.SIGTERM)  # even the first: the ramp-down is not cut short
        send(signal.SIGINT)
    err = capfd.readouterr().err
    assert err.count("making the rig safe, at most 30 s left") == 2


def test_handlers_are_restored_after_the_command() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with interrupts.installed():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before


def test_the_kill_grace_follows_the_profile() -> None:
    p = load_profile()
    c, s = p.coils, p.stage.link
    ramp = c.max_current / c.max_ramp_rate  # the simulator's profile nulls no ambient field
    ramp += 3 * 1.1 * c.supply_rating / c.max_ramp_rate  # each supply found in voltage mode
    talk = 3 * c.link.timeout_s * (c.link.retries + 5) + s.timeout_s * (s.retries + 5)
    assert safe_time_bound(p) == pytest.approx(1.5 * ramp + 2.0 + talk)
