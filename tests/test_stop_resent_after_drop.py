"""A stop sent amid the drop of a stage reply cut short is sent once more whatever ends that
drop: a drain that gave up and the one begun again after it, the link's close before the
drain ends, a raw socket's new connection; its checks refused by the make-safe path let the
window's poll after them be refused rather than held; two stops never overlap on the line.
The drains are held by events, not by time: nothing sleeps."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from test_abort_mid_recording import hpa_cut_at_the_deadline
from test_drop_on_socket import CutOnSocket
from test_stop_amid_drop import (
    DRAIN_GUARD_S,
    HANG_GUARD_S,
    LinePerRead,
    _on_the_rigs_thread,
    cut_stage_reply,
    make_safe_past_the_stages_share,
    stop_amid_held_drop,
)

from drivers.link import parse_int
from drivers.pi_gcs import STOP_ALL
from smm_daq.clock import VirtualClock
from smm_daq.errors import InstrumentLost, InstrumentTimeout, StillDropping
from smm_daq.instruments import loss_budget
from smm_daq.instruments.loss_budget import GivenUp
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import open_rig

CLOSED = "<closed>"  # noted in a line's `sent` as its transport closes


class StopNotTakenOnce(LinePerRead):
    """`LinePerRead` whose first stop is not taken (its write times out); only its first
    drain (the drop aside's) holds until `release`, the link's clear after the failed write
    ends at once."""

    def __init__(self, inner: Any, clock: Any) -> None:
        super().__init__(inner, clock)
        self.drains = 0
        self.refused = False

    def write(self, message: str) -> None:
        if message == STOP_ALL and not self.refused:
            self.refused = True
            self.sent.append((message, True))
            raise InstrumentTimeout("could not send within 5 s", instrument="stage")
        super().write(message)

    def clear(self) -> None:
        self.drains += 1
        if self.drains == 1:
            super().clear()


@pytest.mark.parametrize("answered_since", [False, True])
def test_a_poll_after_a_stop_not_taken_amid_a_drop_is_not_held(answered_since: bool) -> None:
    """The window's poll meets the rest of a cut stage reply (dropped aside, refused). Then
    the stop's write amid that drop times out: on the link lost with the cut reply, its one
    attempt (`InstrumentLost`, not taken); on one that answered since, while the rig is made
    safe, the stage's last lost reply, its next attempt refused (`GivenUp`). No check
    follows: the window's poll after it is refused at once while the drop goes on.
    Unfixed, only `DeadlineReached` gave the stop's checks up: the poll, taken for the
    stop's check, waited for the whole drain, a Stop queued behind it."""
    rig = open_rig(load_profile())
    poll = None
    try:
        line = cut_stage_reply(rig, StopNotTakenOnce)
        with pytest.raises(StillDropping):
            rig.stage.position()  # the window's poll: the drop goes aside
        try:
            if answered_since:
                rig.stage.link.lost = False  # type: ignore[attr-defined]
                with loss_budget.making_safe(5, stage=1, clock=rig.clock, deadline_s=1e3), \
                        pytest.raises(GivenUp):
                    rig.stage.stop()
            else:
                with pytest.raises(InstrumentLost, match="not taken"):
                    rig.stage.stop()
            assert (STOP_ALL, True) in line.sent  # tried amid the drop
            poll, polled = _on_the_rigs_thread([rig.stage.position])
            poll.join(HANG_GUARD_S)
            assert not poll.is_alive(), "the poll after the stop not taken waited for the drop"
        finally:
            line.release.set()
            if poll is not None:
                poll.join(HANG_GUARD_S)
        assert isinstance(polled[0], StillDropping), polled
    finally:
        rig.close()


class NeverQuietOnceStopRefused(LinePerRead):
    """`LinePerRead` whose first drain, held until `release`, gives up (the line never went
    quiet), and the stop sent once more after it is refused (the port could not be
    reopened); its second drain ends at once. Each drain's end is noted in `sent`."""

    def __init__(self, inner: Any, clock: Any) -> None:
        super().__init__(inner, clock)
        self.drains = 0
        self.refused = False

    def clear(self) -> None:
        self.drains += 1
        super().clear()
        self.sent.append((f"<drained {self.drains}>", False))
        if self.drains == 1:
            raise InstrumentTimeout("the line did not go quiet", instrument="stage")

    def write(self, message: str) -> None:
        if message == STOP_ALL and self.drains == 1 and self.release.is_set() \
                and not self.refused:
            self.refused = True
            raise InstrumentLost("the port failed and could not be reopened",
                                 instrument="stage")
        super().write(message)


def test_a_stop_whose_resend_failed_with_its_drain_is_sent_again_after_the_next() -> None:
    """The window's poll meets the rest of a cut stage reply (dropped aside, refused); then
    `Rig.make_safe` sends the stop amid the drop, its check waiting. The drain gives up (the
    line never went quiet) and the stop sent once more after it is refused (the port could
    not be reopened); the check has the rest drained aside again, and once that drain ends,
    the stop is sent once more before the check reads the controller's error. Unfixed, the
    drain's own failure was kept, the stop taken as done with the first drop: none was sent
    after the second, and a controller that cannot say what moves was said stopped."""
    rig = open_rig(load_profile())
    try:
        line = cut_stage_reply(rig, NeverQuietOnceStopRefused)
        with pytest.raises(StillDropping):
            rig.stage.position()
        done = stop_amid_held_drop(line, [rig.make_safe])
        assert done == [[]], done
        sent = [m for m, _ in line.sent]
        assert line.drains == 2
        assert STOP_ALL in sent[sent.index("<drained 2>"):], sent
    finally:
        rig.close()


class ClosedMidDrain(LinePerRead):
    """`LinePerRead` whose close is noted in `sent` (`CLOSED`); a write after it is refused,
    as a closed port's is."""

    def __init__(self, inner: Any, clock: Any) -> None:
        super().__init__(inner, clock)
        self.closed = False

    def write(self, message: str) -> None:
        if self.closed:
            raise InstrumentLost("link closed", instrument="stage")
        super().write(message)

    def close(self) -> None:
        self.closed = True
        self.sent.append((CLOSED, False))
        super().close()


def test_closing_amid_a_drop_a_stop_went_amid_sends_the_stop_once_more_first() -> None:
    """The field is on; the window's poll meets the rest of a cut stage reply (dropped
    aside). `Rig.make_safe` sends the stop amid the drop and gives up waiting for it at the
    end of the stage's share; the window then closes the rig while the drain goes on. The
    close sends the stop once more before it closes the stage's port, which ends the drain.
    Unfixed, the close closed the port, and the drop's sending of the stop as it ended was
    refused (the link closed): the stop went once, amid the drop that may have lost it."""
    profile = load_profile()
    rig = open_rig(profile)
    closed = False
    try:
        rig.coils.set_field(np.array([0.0, 0.0, 100e-6]))
        line = cut_stage_reply(rig, ClosedMidDrain)
        with pytest.raises(StillDropping) as polled:
            rig.stage.position()
        with make_safe_past_the_stages_share(rig, line) as done:
            assert polled.value.drop is not None and polled.value.drop.is_alive()
            rig.close()  # the drain still under way
            closed = True
        [problems] = done
        assert len(problems) == 1 and "the stage's share" in problems[0], problems
        sent = [m for m, _ in line.sent]
        assert sent[sent.index(CLOSED) - 2:sent.index(CLOSED) + 1] == [
            STOP_ALL, STOP_ALL, CLOSED], sent  # amid the drop, then as the link closed
        assert polled.value.wait(HANG_GUARD_S)
        assert sent.count(STOP_ALL) == 2, line.sent  # not once more after the close
    finally:
        if not closed:
            rig.close()


class NotedOnSocket(CutOnSocket):
    """`CutOnSocket` noting what is written and each new connection, in order."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(clock)
        self.noted: list[str] = []

    def write(self, message: str) -> None:
        self.noted.append(message)
        super().write(message)

    def clear(self) -> None:
        self.noted.append("<new connection>")
        super().clear()


def test_a_stop_sent_amid_a_cut_reply_on_a_socket_is_sent_again_on_the_new_connection() -> None:
    """HPA? cut at the make-safe deadline on a raw socket; the stop goes at once, before the
    rest is dropped; its check then opens a new connection, which resets the old one with
    the reply still coming (and the stop with it, where the controller had not read it),
    and sends the stop once more on it before the check. Unfixed, the check read the error
    over the new connection, the stop sent only on the one it reset."""
    clock = VirtualClock()
    transport = NotedOnSocket(clock)
    link = hpa_cut_at_the_deadline(transport, clock)
    link.write(STOP_ALL)
    assert link.query("ERR?", lambda r: parse_int(r, what="error code"), destructive=True) == 0
    assert transport.noted[-4:] == [STOP_ALL, "<new connection>", STOP_ALL, "ERR?"]
    assert link.query("ERR?", lambda r: parse_int(r, what="error code"), destructive=True) == 0
    assert transport.noted.count(STOP_ALL) == 2  # not again with the next exchange


class OverlapsNoted(LinePerRead):
    """`LinePerRead` noting writes that overlap another: its first stop's write, made amid
    the drop, holds until `go` (set by a second write that begins meanwhile, or by the
    drop's asking to send the stop once more)."""

    def __init__(self, inner: Any, clock: Any) -> None:
        super().__init__(inner, clock)
        self.go = threading.Event()
        self.overlaps: list[str] = []
        self._writing = 0
        self._counted = threading.Lock()
        self._first_stop = True

    def write(self, message: str) -> None:
        with self._counted:
            self._writing += 1
            if self._writing > 1:
                self.overlaps.append(message)
                self.go.set()
        try:
            super().write(message)
            if message == STOP_ALL and self._first_stop:
                self._first_stop = False
                assert self.go.wait(DRAIN_GUARD_S), "the drop never sent its stop"
        finally:
            with self._counted:
                self._writing -= 1


class AskedFromTheDrop:
    """The link's lock for its stops (`_amid`), calling `asked` when the drop's own thread
    asks for it."""

    def __init__(self, lock: Any, asked: Any) -> None:
        self.lock = lock
        self.asked = asked

    def __enter__(self) -> Any:
        if threading.current_thread().name.startswith("drop the rest"):
            self.asked()
        return self.lock.__enter__()

    def __exit__(self, *exc: object) -> Any:
        return self.lock.__exit__(*exc)


def test_a_stop_amid_a_drop_and_the_drops_own_stop_never_overlap_on_the_line() -> None:
    """The window's poll meets the rest of a cut stage reply (dropped aside, refused); its
    Stop writes the stop amid the drop, and the drain ends while that write is under way:
    the drop's sending of the stop once more waits for it, the two never written at once
    (a byte of one amid the other's, on a serial line). Without the lock, the two writes
    overlapped."""
    rig = open_rig(load_profile())
    try:
        line = cut_stage_reply(rig, OverlapsNoted)
        link = rig.stage.link  # type: ignore[attr-defined]
        link._amid = AskedFromTheDrop(link._amid, line.go.set)
        done = stop_amid_held_drop(line, [rig.stage.position, rig.stage.stop])
        assert isinstance(done[0], StillDropping), done
        assert done[1] is None, done
        assert line.overlaps == [], line.sent
        assert [m for m, _ in line.sent].count(STOP_ALL) == 2, line.sent
    finally:
        rig.close()


class ResendNotTaken(ClosedMidDrain):
    """`ClosedMidDrain` whose stop sent once more (its second) is not taken: its write times
    out, as on a line held by flow control."""

    def write(self, message: str) -> None:
        if message == STOP_ALL and [m for m, _ in self.sent].count(STOP_ALL) == 1:
            self.sent.append((message, True))
            raise InstrumentTimeout("could not send within 3 s", instrument="stage")
        super().write(message)


def test_a_close_whose_stop_sent_once_more_is_not_taken_still_closes_without_raising() -> None:
    """As above, but the stop the close sends once more is not taken (its write times out).
    The close still closes the port, and says nothing: a close is called where another
    error is under way (a connect given up, `stop_alone`'s end), which its own would
    replace, and the stop went amid the drop already. Unfixed, the stage's close raised
    `InstrumentLost` ("was not taken")."""
    profile = load_profile()
    rig = open_rig(profile)
    try:
        line = cut_stage_reply(rig, ResendNotTaken)
        with pytest.raises(StillDropping):
            rig.stage.position()
        with make_safe_past_the_stages_share(rig, line) as done:
            rig.stage.close()  # the drain still under way
        [problems] = done
        assert len(problems) == 1 and "the stage's share" in problems[0], problems
        sent = [m for m, _ in line.sent]
        assert sent[-2:] == [STOP_ALL, CLOSED], sent  # tried once more, then closed
    finally:
        rig.close()
