"""Signals: the first interrupts (after the instrument exchange under way), the rest are
acknowledged; none interrupts the rig being made safe."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from smm_daq import interrupts
from smm_daq.acquisition import safe_close
from smm_daq.clock import VirtualClock
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import _making_safe, safe_time_bound


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
    """... the first, where none came before, then stops what runs (a kill that lands in the
    ramp-down a scan ends with would otherwise be lost, the next step run)."""
    done = []
    with interrupts.installed(), pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        with interrupts.making_safe(30.0):
            send(signal.SIGTERM)  # even the first: the ramp-down is not cut short
            send(signal.SIGINT)
            done.append("made safe")
        done.append("the next step")
    assert done == ["made safe"]
    err = capfd.readouterr().err
    assert err.count("making the rig safe, at most 30 s left") == 2


def test_a_simulated_rig_run_slower_than_real_time_says_the_time_left_in_real_seconds(
        capfd) -> None:
    """A simulated rig at a quarter of real time takes up to four times its bound (rig-clock
    seconds) in real seconds, as the window's close waits (`safe_close.wait_s`): a signal is
    told that, not the bound (the ramp-down had gone on past the time said)."""
    profile = load_profile()
    bound = safe_time_bound(profile)
    with interrupts.installed(), pytest.raises(KeyboardInterrupt), \
            _making_safe(profile, VirtualClock(time_scale=0.25)):
        send(signal.SIGINT)
    left = int(re.search(r"at most (\d+) s left", capfd.readouterr().err).group(1))
    assert left == pytest.approx(4 * bound, abs=1)
    assert left == pytest.approx(safe_close.wait_s(profile, 0.25), abs=1)


def test_handlers_are_restored_after_the_command() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with interrupts.installed():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before


def test_the_kill_grace_follows_the_profile() -> None:
    p = load_profile()
    c, s = p.coils, p.stage.link
    assert s.address.startswith("ASRL") and not c.addresses[0].startswith("ASRL")
    # the deadline: each supply found in voltage mode, ramped down at the connect of the
    # three, and one of them, that cut short, again on its own from a setpoint up to its
    # rating; settling; a timeout for each reply the supplies and the stage may lose
    ramp = 4 * (1.1 * c.supply_rating / c.max_ramp_rate + 0.1)
    budget = c.link.retries + 1 + 4 + 2  # a dead supply's, and its ramp-down's lost replies
    # and the stage's braking: `safe`'s two series of three stops, each stop followed by up
    # to 1 s of braking and each series reading the parameter list (a 64 kB reply at most,
    # sent at the serial line's baud rate)
    transfer = 65552 * 10 / s.baud_rate
    braking = 2 * (3 * 1.0 + transfer)
    deadline = (ramp + 2.05 + 3 * budget * c.link.timeout_s + (s.retries + 5) * s.timeout_s
                + braking)
    # then the attempt under way: a supply's (its timeout, a GPIB clear: a timeout) or the
    # serial stage's (three replies, each with a 64 kB reply's transfer, a serial clear: 6
    # timeouts and a transfer); and each supply's switch-off, five exchanges at most
    under_way = max(2 * c.link.timeout_s, 3 * (s.timeout_s + transfer) + 6 * s.timeout_s
                    + transfer)
    tail = under_way + 3 * 5 * 2 * c.link.timeout_s
    # then the close: the lock-in's and the fluxgate's links (GPIB) each wait for an exchange
    # under way in another thread, all its attempts, each its timeout and a clear (a timeout)
    lockin, fluxgate = p.lockin.link, p.fluxgate.link
    assert not lockin.address.startswith("ASRL") and not fluxgate.address.startswith("ASRL")
    close = sum((k.retries + 1) * 2 * k.timeout_s for k in (lockin, fluxgate))
    # and the stage's stop, sent once more as its serial link closes amid a drop aside: a
    # reopen's wait and its write, a timeout each
    close += 2 * s.timeout_s
    assert safe_time_bound(p) == pytest.approx(deadline + tail + close)


@pytest.mark.parametrize("argv", [
    ["calibrate-coils"],
    ["scan", "--out", "s.h5", "--name", "k", "--center-um", "0,0", "--size-um", "10,10",
     "--step-um", "5"],
    ["safe", "--profile", "configs/example-lab.toml"],
])
def test_ctrl_c_before_connecting_says_the_rig_is_as_it_was(argv, monkeypatch, tmp_path,
                                                            capsys) -> None:
    """Every command that drives the rig says whether it is safe; stopped before its
    connect (the profile still being read), it says the rig was not touched."""
    from smm_daq.cli import acquisition, calibrate
    from smm_daq.cli.main import main

    def ctrl_c(*_args, **_kw):
        raise KeyboardInterrupt("SIGINT")

    monkeypatch.setattr(calibrate, "load_profile", ctrl_c)
    monkeypatch.setattr(acquisition, "load_profile", ctrl_c)
    monkeypatch.chdir(Path(__file__).parent.parent)
    argv = [str(tmp_path / a) if a == "s.h5" else a for a in argv]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "smm-daq: interrupted (SIGINT)\n" in err
    assert ("smm-daq: the rig is as it was: stopped before connecting to it, nothing was set "
            "or moved") in err


def test_ctrl_c_once_connecting_began_says_how_the_connect_left_the_rig(monkeypatch,
                                                                         capfd) -> None:
    """From the connect on, the safety statement is the connect's (or the command's), never
    "as it was"; for a real rig, a signal acknowledged while it is made safe names the
    command that makes it safe if the process is killed."""
    from smm_daq.cli.main import main
    from smm_daq.instruments import rig

    profile = Path(__file__).parent.parent / "configs" / "example-lab.toml"

    def ctrl_c(*_args, **_kw):
        assert interrupts.recovery() == f"smm-daq safe --profile {profile}"
        interrupts.acknowledge("SIGTERM")
        raise KeyboardInterrupt("SIGINT")

    monkeypatch.setattr(rig, "_open_instrument", ctrl_c)
    assert main(["calibrate-coils", "--profile", str(profile)]) == 130
    err = capfd.readouterr().err
    assert f"(if the process is killed, run `smm-daq safe --profile {profile}`)" in err
    assert "smm-daq: interrupted (SIGINT)" in err
    assert "the rig" in err and "as it was" not in err
