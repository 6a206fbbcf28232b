"""How `make_safe_and_close` ends where test_safe_close does not look: a making safe not
ended within its limit is said and left to its daemon thread, which still closes the rig once
it returns; a KeyboardInterrupt (or SystemExit) inside it reaches the caller, the rig closed
first."""

from __future__ import annotations

import threading

import pytest
from acq_fakes import fake_rig

from smm_daq.acquisition import safe_close

WAIT_S = 30  # bounded waits for the held making safe: the test fails rather than hangs


def test_a_making_safe_not_ended_in_time_is_said_and_still_closes_the_rig_once_it_returns(
    monkeypatch,
):
    rig = fake_rig()
    go, closed = threading.Event(), threading.Event()
    rig.close = closed.set

    def held() -> list[str]:
        assert go.wait(WAIT_S)
        return []

    rig.make_safe = held
    monkeypatch.setattr(safe_close, "safe_wait_s", lambda _rig: 0.01)
    try:
        ended, problems = safe_close.make_safe_and_close(rig, "at the end of the recipe")
        left = [t for t in threading.enumerate() if t.name == safe_close.THREAD]
    finally:
        go.set()
    assert not ended
    assert len(problems) == 1
    assert problems[0].startswith("making it safe at the end of the recipe did not end within")
    assert "the program does not wait for it any longer" in problems[0]
    assert len(left) == 1 and left[0].daemon  # the process may end meanwhile
    assert closed.wait(WAIT_S)


@pytest.mark.parametrize("ended_by", [KeyboardInterrupt, SystemExit])
def test_an_end_that_is_no_error_inside_the_making_safe_reaches_the_caller_rig_closed(ended_by):
    rig = fake_rig()
    closed = []
    rig.close = lambda: closed.append(True)

    def ending() -> list[str]:
        raise ended_by("stop")

    rig.make_safe = ending
    with pytest.raises(ended_by, match="stop"):
        safe_close.make_safe_and_close(rig)
    assert closed == [True]
