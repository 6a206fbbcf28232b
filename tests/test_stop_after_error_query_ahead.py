"""The `ERR?` the make-safe path writes ahead of a PI stage's stop (`PIGCSStage.stop`) costs the
stop nothing: its failure leaves the stop its retries, its reply refused unread is dropped
before the next exchange, and its reply lost sends the stop once more before its check. On
the simulated rig's virtual clock; nothing sleeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pi_stage_patches import (
    first_stop_not_taken,
    queries_noted,
    share_ends_after,
    window_stop_exchanges,
    writes_noted,
)

from drivers.pi_gcs import STOP_ALL
from smm_daq.errors import InstrumentTimeout
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import open_rig

PROFILE = Path(__file__).resolve().parents[1] / "configs" / "simulator-e727.toml"


def test_an_error_query_ahead_not_taken_leaves_the_stop_its_retries() -> None:
    """The `ERR?` ahead of the stop is not taken (its write times out), nor is the stop's
    first write: the stop is tried again, as any command whose write timed out is, and
    confirmed. Unfixed, the one failed `ERR?` took the link for lost, the stop had one
    attempt, and the rig was said not safe with its stage left unstopped."""
    rig = open_rig(load_profile(PROFILE))
    try:
        transport: Any = rig.stage.link.transport  # type: ignore[attr-defined]
        sent = writes_noted(transport, lambda sent, _message: len(sent) <= 2)
        assert rig.make_safe() == []
        assert sent[:4] == ["ERR?", STOP_ALL, STOP_ALL, "ERR?"], sent
    finally:
        rig.close()


def test_an_error_query_ahead_refused_unread_leaves_no_reply_behind() -> None:
    """The stage's share of the path ends just as its stop is written, after the `ERR?`
    ahead of it: the stop went, its reads are refused, and the reply to that `ERR?` is left
    coming. It is dropped before the stage's next exchange: the window's Stop after it reads
    its own check and finds nothing moving. Unfixed, that check read the reply to the `ERR?`
    ahead, and every reply after it was one behind (`#5` read the check's `10` as axes
    moving)."""
    profile = load_profile(PROFILE)
    rig = open_rig(profile)
    try:
        passed = share_ends_after(rig, profile, STOP_ALL)
        rig.coils.set_field(np.array([0.0, 0.0, 50e-6]))
        problems = rig.make_safe()
        assert passed and len(problems) == 1 and "stop not confirmed" in problems[0], problems
        exchanged = window_stop_exchanges(rig)
        assert exchanged[:2] == [("ERR?", "10"), ("\x05", "0")], exchanged
    finally:
        rig.close()


def test_an_error_query_ahead_whose_reply_is_lost_sends_the_stop_once_more() -> None:
    """The reply to the `ERR?` ahead of the stop is lost (its read times out), and the clear
    after it drops the stop not yet taken (a serial line's output flushed, a socket's new
    connection): the stop is sent once more before its check, as after its check's reply
    lost, and the controller is stopped by command. Unfixed, the check read 0 on a controller
    the stop never reached, and the stop was taken as confirmed."""
    rig = open_rig(load_profile(PROFILE))
    try:
        transport: Any = rig.stage.link.transport  # type: ignore[attr-defined]
        write, read, clear = transport.write, transport.read, transport.clear
        held: list[str] = []  # a stop written, not yet taken by the controller
        reached: list[str] = []  # what the controller took
        lost: list[bool] = []

        def taken(message: str) -> None:
            reached.append(message)
            write(message)

        def stop_held_once(message: str) -> None:
            if message == STOP_ALL and not lost:
                held.append(message)
                return
            for stop in held:
                taken(stop)
            held.clear()
            taken(message)

        def first_read_after_the_stop_lost() -> str:
            if held and not lost:
                lost.append(True)
                raise InstrumentTimeout("no reply within 1 s", instrument="stage")
            return read()

        def dropping_what_is_held() -> None:
            held.clear()
            clear()

        transport.write = stop_held_once
        transport.read = first_read_after_the_stop_lost
        transport.clear = dropping_what_is_held
        assert rig.make_safe() == []
        assert lost, reached
        after = reached[reached.index("ERR?"):]
        assert after[1] == STOP_ALL, reached  # the stop reached the controller before its check
    finally:
        rig.close()


def test_no_other_thread_reads_the_reply_to_the_error_query_ahead() -> None:
    """A refused move leaves error 15 pending; the rig is made safe while another thread (a
    window's call in flight, which its close makes safe under) still asks the stage. Between
    the `ERR?` ahead of the stop and the read of its reply, that thread's exchange does not
    come: it would read `15` for its own reply, and the stop's read would find none. So the
    link is held from the `ERR?` ahead to its reply; the error is kept (the stop by `STP`,
    parsed after that `ERR?`; a #24 would be acted on ahead of it). Unfixed, the other
    thread's position query took the `15` (and was asked again), and what the stage held
    before the stop was said unknown."""
    import threading

    rig = open_rig(load_profile(PROFILE))
    try:
        stage: Any = rig.stage
        stage._commands.discard("#24")  # a controller that stops by STP
        link = stage.link
        rig.backend.endpoint(rig.profile.stage.link.address).handle("MOV 9 0")
        write = link.write
        between: list[bool] = []

        def another_thread_asks(command: str, **kw: Any) -> None:
            write(command, **kw)
            if command != "ERR?" or between:
                return

            def asks_if_free() -> None:
                if link._lock.acquire(blocking=False):
                    link._lock.release()
                    between.append(True)
                    stage.position()

            other = threading.Thread(target=asks_if_free)
            other.start()
            other.join()

        link.write = another_thread_asks
        assert rig.make_safe() == []
        assert stage.found_before_stop.startswith(
            "the controller held error 15 (invalid axis identifier)"), stage.found_before_stop
        assert not between
    finally:
        rig.close()


def test_a_stop_written_again_waits_for_no_reply_its_clear_dropped() -> None:
    """The `ERR?` ahead of the stop goes, then the stop's first write is not taken (it times
    out): the clear before its second attempt dropped the reply to that `ERR?`. The stop's
    check is read right after it, no read waits for the dropped reply, and what the
    controller held before the stop is said unknown. Unfixed, the read of that reply waited
    a whole timeout for nothing, and the stop was sent a third time."""
    rig = open_rig(load_profile(PROFILE))
    try:
        transport: Any = rig.stage.link.transport  # type: ignore[attr-defined]
        read = transport.read
        sent = writes_noted(transport, first_stop_not_taken)
        timed_out: list[str] = []

        def noted_read() -> str:
            try:
                return read()
            except InstrumentTimeout:
                timed_out.append(sent[-1])
                raise

        transport.read = noted_read
        assert rig.make_safe() == []
        assert sent[:4] == ["ERR?", STOP_ALL, STOP_ALL, "ERR?"], sent
        assert timed_out == []
        found = rig.stage.found_before_stop  # type: ignore[attr-defined]
        assert found.startswith("whether the controller held an error from before the stop "
                                "is unknown (the reply to the ERR? sent ahead of it was "
                                "dropped"), found
    finally:
        rig.close()


def test_a_reply_the_failed_clear_left_is_dropped_before_the_stops_check() -> None:
    """As above, but the clear between the stop's two attempts times out itself: the reply to
    the `ERR?` ahead may have survived it (here it did). The link says its clear failed
    (`Link.clears_failed`), and that reply is dropped before the stop's check, which reads
    its own, as each exchange after it does. Unfixed, the check read the reply to the
    `ERR?` ahead, `#5` the check's, and `WGO?` the `#5`'s `0`, garbled, a reply lost and
    its retry the only way back in step (a `0` read for `#5` told nothing true)."""
    rig = open_rig(load_profile(PROFILE))
    try:
        stage: Any = rig.stage
        transport: Any = stage.link.transport
        clear = transport.clear
        sent = writes_noted(transport, first_stop_not_taken)
        clears: list[bool] = []

        def first_clear_times_out() -> None:
            clears.append(True)
            if len(clears) == 1:  # nothing cleared: the reply to the ERR? ahead still comes
                raise InstrumentTimeout("clear: no reply within 1 s", instrument="stage")
            clear()

        transport.clear = first_clear_times_out
        exchanged = queries_noted(transport)
        failures, clears_failed = stage.link.failures, stage.link.clears_failed
        assert rig.make_safe() == []
        assert sent[:4] == ["ERR?", STOP_ALL, STOP_ALL, "ERR?"], sent
        assert stage.link.clears_failed == clears_failed + 1
        assert stage.link.failures == failures + 1, exchanged  # the stop's first write alone
        assert [m for m, _ in exchanged] == ["ERR?", "\x05", "WGO?"], exchanged
        assert exchanged[2][1].startswith("1=0"), exchanged
        assert len(clears) == 2  # the one that failed, then the drop before the check
        assert "may have survived" in stage.found_before_stop, stage.found_before_stop
    finally:
        rig.close()
