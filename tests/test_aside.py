"""Aside: the work the sequencer's file work (`wait_aside`) and the field's ramp
(`field_aside`) run in a daemon thread of its own, waited for awake. What the work returns
comes back to the waiter, and what it raises, even a KeyboardInterrupt, is raised there, not
lost in the thread. The thread is held at a point of its work by events."""

from __future__ import annotations

import threading

import pytest

from smm_daq.acquisition.aside import Aside

WAIT_S = 30.0  # a hung thread fails instead of hanging; never reached when all is well


def test_the_work_runs_in_a_daemon_thread_of_its_name_and_its_value_comes_back() -> None:
    go = threading.Event()
    ran_in: list[threading.Thread] = []

    def work() -> int:
        ran_in.append(threading.current_thread())
        assert go.wait(WAIT_S)
        return 42

    aside = Aside(work, "writing the scan")
    aside.start()
    assert aside.began.wait(WAIT_S)
    assert not aside.done.is_set() and aside.raised() is None  # still at work
    go.set()
    assert aside.done.wait(WAIT_S)
    assert aside.result() == 42 and aside.raised() is None
    (thread,) = ran_in
    assert thread is not threading.main_thread()
    assert thread.daemon and thread.name == "writing the scan"


@pytest.mark.parametrize(
    "error", [OSError(28, "No space left on device"), KeyboardInterrupt("SIGTERM")]
)
def test_what_the_work_raised_is_raised_in_the_waiter(error: BaseException, monkeypatch) -> None:
    """The work's own error (a disk full, a signal's KeyboardInterrupt in the thread) is the
    waiter's to raise: the same object, and nothing of it said by the thread's hook."""
    escaped: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: escaped.append(args.exc_value))

    def work() -> None:
        raise error

    aside = Aside(work, "ramping the field")
    aside.start()
    assert aside.done.wait(WAIT_S)
    assert aside.raised() is error
    with pytest.raises(type(error)) as caught:
        aside.result()
    assert caught.value is error
    assert escaped == []
