"""Making the rig safe and closing it at a close, waited for a bounded time (`safe_close`);
the window's and the command line's closes that leave it to run: test_gui_stalled_disk,
test_cli_stalled_disk."""

from __future__ import annotations

import os
import signal
import threading

import pytest
from acq_fakes import fake_rig

from smm_daq import interrupts
from smm_daq.acquisition import safe_close
from smm_daq.clock import VirtualClock
from smm_daq.instruments.rig import safe_time_bound


def test_what_making_safe_could_not_do_comes_back_with_the_rig_closed():
    rig = fake_rig()
    closed = []
    rig.close = lambda: closed.append(True)
    rig.safe_problems = ["stage not stopped: no reply"]
    assert safe_close.make_safe_and_close(rig) == (True, ["stage not stopped: no reply"])
    assert rig.safe_calls == 1 and closed == [True]


def test_a_making_safe_that_raises_is_a_problem_and_the_rig_is_closed_all_the_same():
    rig = fake_rig()
    closed = []
    rig.close = lambda: closed.append(True)

    def raising():
        raise OSError("link reset")

    rig.make_safe = raising
    assert safe_close.make_safe_and_close(rig) == (True, ["make_safe raised OSError: link reset"])
    assert closed == [True]


def test_an_error_closing_the_rig_reaches_the_caller():
    rig = fake_rig()

    def failing():
        raise OSError("lock file gone")

    rig.close = failing
    with pytest.raises(OSError, match="lock file gone"):
        safe_close.make_safe_and_close(rig)
    assert rig.safe_calls == 1


@pytest.mark.parametrize("scale, times", [(0.0, 1.0), (1.0, 1.0), (60.0, 1.0), (0.25, 4.0)])
def test_the_wait_is_the_profiles_bound_in_real_seconds(scale, times):
    """A simulated rig run slower than real time (time scale below 1) takes longer for real
    to ramp down; one run as fast as possible, or faster than real, no longer."""
    rig = fake_rig()
    rig.clock = VirtualClock(time_scale=scale)
    assert safe_close.safe_wait_s(rig) == pytest.approx(times * safe_time_bound(rig.profile))


def test_a_signal_while_the_close_waits_is_acknowledged_and_the_making_safe_ends(
        monkeypatch, capfd):
    """Ctrl-C (or SIGTERM) while the command's close waits for the rig's making safe does not
    end the wait, which would leave the ramp-down to be cut off as the program ends: it is
    acknowledged, and the making safe ends."""
    rig = fake_rig()
    entered, go = threading.Event(), threading.Event()
    make_safe = rig.make_safe

    def slow() -> list[str]:
        entered.set()
        go.wait(30)  # the test gives up first
        return make_safe()

    def interrupt() -> None:
        if entered.wait(30):
            os.kill(os.getpid(), signal.SIGINT)  # handled in the main thread, which waits

    acknowledge = interrupts.acknowledge
    monkeypatch.setattr(interrupts, "acknowledge", lambda name: (acknowledge(name), go.set()))
    rig.make_safe = slow
    threading.Thread(target=interrupt, daemon=True).start()
    try:
        with interrupts.installed():
            outcome = safe_close.make_safe_and_close(rig)
    except KeyboardInterrupt:  # not left to end the test session
        pytest.fail("the signal ended the close's wait for the making safe")
    finally:
        go.set()
    assert outcome == (True, [])
    assert rig.safe_calls == 1
    assert "SIGINT: making the rig safe, at most" in capfd.readouterr().err
