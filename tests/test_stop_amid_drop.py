"""A Stop pressed in the window after the make-safe path's deadline cut a stage reply short
(its rest left to drop before the stage's next exchange: on a serial line a drain until the
line is quiet, up to 36 s on the example lab's stage) takes effect at once: the window's call
that meets the rest first (its readings' poll, on the rig's one thread) drops it aside and is
refused at once, so the Stop queued behind it sends its stop amid the drop, and its checks
read their own replies once the drop has ended. The drain is held by events, not by time:
nothing sleeps."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from drivers.pi_gcs import STOP_ALL
from smm_daq.errors import InstrumentLost, InstrumentTimeout, StillDropping
from smm_daq.instruments import loss_budget
from smm_daq.instruments.loss_budget import DeadlineReached
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import open_rig
from smm_daq.instruments.safe_bound import stage_share_s

HANG_GUARD_S = 10.0  # real seconds; only a call that waits for the held drain reaches it
LINE_S = 0.5  # rig-clock seconds each line of a reply takes to come
# real seconds a held drain waits for `release`: past every wait a test makes while it holds
# it (a test may wait HANG_GUARD_S several times over, on a loaded machine), only a drain a
# test forgot reaches it
DRAIN_GUARD_S = 6 * HANG_GUARD_S
BAUD = 115200  # the stage's serial line


class LinePerRead:
    """The stage's transport as a line delivers it: each read one line of a reply, `LINE_S`
    apart on the rig's clock; its `clear` (the drain of a reply cut short) holds until
    `release` is set. Each command is noted with whether the drain was under way then."""

    def __init__(self, inner: Any, clock: Any) -> None:
        self.inner = inner
        self.clock = clock
        self.timeout = inner.timeout
        self.baud_rate = BAUD  # a serial line: its clear drains, aside (`Link._drop_rest`)
        self.pending: deque[str] = deque()
        self.draining = threading.Event()
        self.release = threading.Event()
        self.stop_sent = threading.Event()
        self.sent: list[tuple[str, bool]] = []

    def write(self, message: str) -> None:
        self.sent.append((message, self.draining.is_set() and not self.release.is_set()))
        if message == STOP_ALL:
            self.stop_sent.set()
        self.inner.write(message)

    def read(self) -> str:
        if not self.pending:
            self.pending.extend(self.inner.read().split("\n"))
        self.clock.sleep(LINE_S)
        return self.pending.popleft()

    def query(self, message: str) -> str:
        self.write(message)
        return self.read()

    def clear(self) -> None:
        self.draining.set()
        assert self.release.wait(DRAIN_GUARD_S), "the drain was never released"
        self.pending.clear()
        self.inner.clear()

    def close(self) -> None:
        self.inner.close()


def cut_stage_reply(rig: Any, line_class: type[LinePerRead] | None = None) -> LinePerRead:
    """The stage's `HPA?` cut at a making safe's deadline on a `line_class` line
    (`LinePerRead` by default) put in place of its transport: its rest is left to drop."""
    link = rig.stage.link
    line = (line_class or LinePerRead)(link.transport, rig.clock)
    link.transport = line
    with loss_budget.making_safe(5, stage=5, clock=rig.clock, deadline_s=4 * LINE_S), \
            pytest.raises(DeadlineReached):
        link.query_lines("HPA?", lambda lines: lines)
    return line


def field_on_then_cut(rig: Any) -> tuple[LinePerRead, Any]:
    """The field on (100 µT, a coil over 1 A), then a stage reply cut at its deadline
    (`cut_stage_reply`): the line, and the simulated coils to check the ramp down on."""
    rig.coils.set_field(np.array([0.0, 0.0, 100e-6]))
    world = rig.world.coils
    assert max(abs(world.current(k)) for k in range(3)) > 1.0
    return cut_stage_reply(rig), world


def _on_the_rigs_thread(jobs: list[Callable[[], object]]) -> tuple[threading.Thread,
                                                                      list[object]]:
    """`jobs` run one after another on a thread of their own, as the window's rig thread runs
    its calls: what each returned or raised."""
    done: list[object] = []
    todo: queue.Queue[Callable[[], object]] = queue.Queue()
    for job in jobs:
        todo.put(job)

    def run() -> None:
        while not todo.empty():
            try:
                done.append(todo.get()())
            except Exception as exc:
                done.append(exc)

    thread = threading.Thread(target=run, name="rig", daemon=True)
    thread.start()
    return thread, done


def stop_amid_held_drop(line: LinePerRead, jobs: list[Callable[[], object]], *,
                        sent_amid: bool = False) -> list[object]:
    """`jobs` run on the rig's thread while `line`'s drain is held, until the stop is sent
    amid it (with `sent_amid`, checked before the drain is released to be noted as sent amid
    it); then the drain is released and the thread ends: what each job returned or raised."""
    thread, done = _on_the_rigs_thread(jobs)
    try:
        assert line.stop_sent.wait(HANG_GUARD_S), "the stop waited for the drop"
        if sent_amid:
            assert (STOP_ALL, True) in line.sent  # sent while the rest was being dropped
    finally:
        line.release.set()
        thread.join(HANG_GUARD_S)
    assert not thread.is_alive()
    return done


@contextlib.contextmanager
def make_safe_past_the_stages_share(rig: Any, line: LinePerRead) -> Iterator[list[object]]:
    """`Rig.make_safe` on the rig's thread sends the stop amid `line`'s held drain and,
    the rig's clock moved past the stage's share, returns while the drain goes on: in the
    block, what it returned (`[problems]`); the drain is released as the block ends."""
    thread, done = _on_the_rigs_thread([rig.make_safe])
    try:
        assert line.stop_sent.wait(HANG_GUARD_S), "the stop waited for the drop"
        rig.clock.advance(stage_share_s(rig.profile) + 1.0)
        thread.join(HANG_GUARD_S)
        assert not thread.is_alive(), "make_safe waited for the drop past the stage's share"
        yield done
    finally:
        line.release.set()
        thread.join(HANG_GUARD_S)


def test_a_stop_after_a_reply_cut_at_the_deadline_goes_amid_the_drop_of_its_rest() -> None:
    """The stage's parameter list (`HPA?`) is cut at the make-safe deadline with most of its
    lines still coming. Then, on the rig's thread, the window's poll of the position comes
    first, then a Stop: the poll is refused at once (`StillDropping`) as the rest is dropped
    aside, the stop byte goes while that drop is still under way, and once it ends, the
    stop's checks read their own replies and the stop succeeds. Unfixed, the poll drained
    the line itself, and the Stop waited behind it for the whole drain."""
    rig = open_rig(load_profile())
    try:
        line = cut_stage_reply(rig)
        assert line.pending, "HPA? was read whole"
        done = stop_amid_held_drop(line, [rig.stage.position, rig.stage.stop], sent_amid=True)
        assert isinstance(done[0], StillDropping), done
        assert "not sent: the rest of a reply cut short is being dropped" in str(done[0])
        assert done[1] is None, done  # stopped, checked
        assert not line.pending
        assert len(rig.stage.position()) == 3  # then read as ever
    finally:
        rig.close()



def test_make_safe_waits_for_a_stage_drop_aside_only_within_the_stages_share() -> None:
    """The field is on; a stage reply cut at a deadline leaves its rest to drop, and the
    window's poll starts that drop aside (a drain that goes on, here until the test ends).
    Then `Rig.make_safe`: the stage's stop goes at once, amid the drop; its checks wait for
    the drop only until the stage's share of the path ends (the rig's clock moved past it),
    the stage then said not stopped for that, and the coils are ramped down to 0 A in their
    time, outputs on; the window's poll after it is refused at once while the drop goes on,
    not held for it. Unfixed, the checks waited for the whole drain, the coils behind them."""
    profile = load_profile()
    rig = open_rig(profile)
    try:
        line, world = field_on_then_cut(rig)
        with pytest.raises(StillDropping):
            rig.stage.position()  # the window's poll: the drop goes aside
        with make_safe_past_the_stages_share(rig, line) as done:
            poll, polled = _on_the_rigs_thread([rig.stage.position])  # the window's, after
            poll.join(HANG_GUARD_S)
            assert not poll.is_alive(), "the poll after make_safe waited for the drop"
            assert isinstance(polled[0], StillDropping), polled
        [problems] = done
        assert isinstance(problems, list), problems
        assert len(problems) == 1 and "the stage's share of making the rig safe" in problems[0]
        assert all(abs(world.current(k)) < 1e-3 and world.output(k) for k in range(3))
    finally:
        rig.close()


class NeverQuietOnce(LinePerRead):
    """`LinePerRead` whose first drain fails as a line that never goes quiet does (the
    transport's `clear` gives up, `InstrumentTimeout`); its later drains hold until
    `release`."""

    def __init__(self, inner: Any, clock: Any) -> None:
        super().__init__(inner, clock)
        self.drains = 0

    def clear(self) -> None:
        self.drains += 1
        if self.drains == 1:
            raise InstrumentTimeout("the line did not go quiet", instrument="stage")
        super().clear()


def test_a_stop_after_a_drop_aside_that_failed_goes_amid_the_next_drop() -> None:
    """The rest of a stage reply cut short is dropped aside, and that drain fails (the line
    never went quiet). Then, on the rig's thread, the window's poll, then a Stop: the poll is
    refused at once as the rest is dropped aside again, and the stop goes amid that drop.
    Unfixed, the poll took the failed drain for its own failed attempt and drained the line
    itself, on the rig's thread, the Stop behind it for the whole drain."""
    rig = open_rig(load_profile())
    try:
        line = cut_stage_reply(rig, NeverQuietOnce)
        with pytest.raises(StillDropping) as first:
            rig.stage.position()
        assert first.value.wait(HANG_GUARD_S)
        assert line.drains == 1
        done = stop_amid_held_drop(line, [rig.stage.position, rig.stage.stop], sent_amid=True)
        assert isinstance(done[0], StillDropping), done
        assert "did not go quiet" in str(done[0])
        assert done[1] is None, done  # stopped, checked
        assert len(rig.stage.position()) == 3
    finally:
        rig.close()


class NeverQuiet(LinePerRead):
    """`LinePerRead` on a line that never goes quiet: each drain gives up
    (`InstrumentTimeout`) at once."""

    def __init__(self, inner: Any, clock: Any) -> None:
        super().__init__(inner, clock)
        self.drains = 0

    def clear(self) -> None:
        self.drains += 1
        raise InstrumentTimeout("the line did not go quiet", instrument="stage")


def test_a_line_never_quiet_is_drained_aside_again_once_then_said_lost() -> None:
    """The rest of a stage reply cut short is dropped aside on a line that never goes quiet:
    the poll after the failed drain is refused as it is drained aside again, and the poll
    after that second failed drain fails (`InstrumentLost`, saying why), not refused as a
    third drain begins: a scan's worker, which asks again after each refusal, would wait
    forever, the window showing the stage answering. The poll after it is sent. Unfixed, each
    poll began one more drain, refused."""
    rig = open_rig(load_profile())
    try:
        line = cut_stage_reply(rig, NeverQuiet)
        for drains in (1, 2):
            with pytest.raises(StillDropping) as refused:
                rig.stage.position()
            assert refused.value.wait(HANG_GUARD_S)
            assert line.drains == drains
        with pytest.raises(InstrumentLost, match="did not go quiet twice"):
            rig.stage.position()
        assert line.drains == 2
        sent = len(line.sent)
        with contextlib.suppress(InstrumentLost):  # what the line still brings, read
            rig.stage.position()
        assert len(line.sent) > sent
    finally:
        rig.close()


def test_make_safe_meeting_a_cut_reply_drops_it_aside_within_the_stages_share() -> None:
    """The field is on; a stage reply cut at a deadline leaves its rest to drop, and no call
    has met it yet. Then `Rig.make_safe`: the stage's stop goes at once; its check meets the
    rest, which is dropped aside (a drain that goes on, here until the test ends), and waits
    for it only until the stage's share of the path ends (the rig's clock moved past it):
    the stage said sent, not confirmed, and the coils ramped down to 0 A in their time,
    outputs on. Unfixed, the check drained the line itself, on the make-safe path's thread,
    for as long as the drain took (up to 36 s on the example lab's stage), the coils
    behind it."""
    profile = load_profile()
    rig = open_rig(profile)
    try:
        line, world = field_on_then_cut(rig)
        assert line.pending and rig.stage.link._dropping is None  # no drop begun
        thread, done = _on_the_rigs_thread([rig.make_safe])
        try:
            assert line.draining.wait(HANG_GUARD_S), "the stop's check never met the rest"
            assert line.stop_sent.is_set()
            rig.clock.advance(stage_share_s(profile) + 1.0)
            thread.join(HANG_GUARD_S)
            assert not thread.is_alive(), "make_safe drained the line past the stage's share"
        finally:
            line.release.set()
            thread.join(HANG_GUARD_S)
        [problems] = done
        assert isinstance(problems, list), problems
        assert len(problems) == 1, problems
        assert "the stage's share of making the rig safe" in problems[0], problems
        assert "the stop (#24) was sent, not confirmed" in problems[0], problems
        assert problems[0].startswith("stage stop not confirmed: "), problems  # not "not
        # stopped", which its stop's own words belie
        assert all(abs(world.current(k)) < 1e-3 and world.output(k) for k in range(3))
    finally:
        rig.close()


class NeverQuietOnRelease(LinePerRead):
    """`LinePerRead` whose first drain, held until `release`, then fails as a line that never
    goes quiet does (`InstrumentTimeout`); its later drains end at once."""

    def __init__(self, inner: Any, clock: Any) -> None:
        super().__init__(inner, clock)
        self.drains = 0

    def clear(self) -> None:
        self.drains += 1
        super().clear()
        if self.drains == 1:
            raise InstrumentTimeout("the line did not go quiet", instrument="stage")


def test_a_stop_whose_check_meets_a_failed_drop_says_it_was_sent_not_confirmed() -> None:
    """The window's poll meets the rest of a cut stage reply (dropped aside, refused); its
    Stop sends the stop amid the drop and its check waits for it; the drain then fails (the
    line never went quiet) and is begun again aside, the check refused. The Stop says what
    is true: the stop was sent (amid the drop, and once more as each drain ended), not
    confirmed, refused as the drop goes on (a scan's worker waits for that drop and stops
    again).
    Unfixed, it said only that its check was not sent, as a call refused unsent, and the
    drop it could wait for was lost."""
    rig = open_rig(load_profile())
    try:
        line = cut_stage_reply(rig, NeverQuietOnRelease)
        done = stop_amid_held_drop(line, [rig.stage.position, rig.stage.stop])
        assert isinstance(done[0], StillDropping), done
        stop = done[1]
        assert isinstance(stop, StillDropping), done
        said = str(stop)
        assert "the stop (#24) was sent, not confirmed" in said, said
        assert "did not go quiet" in said, said
        assert stop.drop is not None and stop.wait(HANG_GUARD_S)
        # amid, then after each drain (the second begun as the first gave up)
        assert [m for m, _ in line.sent].count(STOP_ALL) == 3, line.sent
        assert line.drains == 2
        assert len(rig.stage.position()) == 3
    finally:
        rig.close()


def test_make_safe_whose_drop_failed_drops_it_aside_again_within_the_stages_share() -> None:
    """As above, but the first drain the stop's check meets gives up at once (the line never
    went quiet): the check has the rest dropped aside again, and waits for that drain too
    only until the stage's share ends. Unfixed, the check failed on the first drain, and the
    link's clear after a failed attempt drained the line on the make-safe path's thread, for
    as long as that drain took."""
    profile = load_profile()
    rig = open_rig(profile)
    try:
        line = cut_stage_reply(rig, NeverQuietOnce)
        thread, done = _on_the_rigs_thread([rig.make_safe])
        try:
            assert line.draining.wait(HANG_GUARD_S), "no second drain began"
            assert line.drains == 2
            rig.clock.advance(stage_share_s(profile) + 1.0)
            thread.join(HANG_GUARD_S)
            assert not thread.is_alive(), "make_safe drained the line past the stage's share"
        finally:
            line.release.set()
            thread.join(HANG_GUARD_S)
        [problems] = done
        assert isinstance(problems, list) and len(problems) == 1, problems
        assert "the stage's share of making the rig safe" in problems[0], problems
    finally:
        rig.close()


class ShareEndsAsTheStopGoes(LinePerRead):
    """`LinePerRead` on which the rig's clock passes the stage's share of a making safe as
    its stop is written: its check, the next exchange, is refused before it begins."""

    share_s = 0.0

    def write(self, message: str) -> None:
        super().write(message)
        if message == STOP_ALL:
            self.clock.advance(self.share_s + 1.0)


def test_a_poll_after_make_safe_refused_the_stops_check_unbegun_is_not_held() -> None:
    """A stage reply cut short is dropped aside (the window's poll met it); `Rig.make_safe`
    sends the stop amid the drop, and the stage's share ends just then, so the stop's check
    is refused before it begins (not while it waits for the drop). The window's poll after
    it is refused at once while the drop goes on, not held for it. Unfixed, only a check
    refused as it waited gave the stop's checks up, and the poll waited for the whole
    drain, a Stop queued behind it."""
    profile = load_profile()
    rig = open_rig(profile)
    try:
        line = cut_stage_reply(rig, ShareEndsAsTheStopGoes)
        line.share_s = stage_share_s(profile)
        with pytest.raises(StillDropping):
            rig.stage.position()  # the window's poll: the drop goes aside
        thread, done = _on_the_rigs_thread([rig.make_safe, rig.stage.position])
        try:
            assert line.stop_sent.wait(HANG_GUARD_S), "the stop waited for the drop"
            thread.join(HANG_GUARD_S)
            assert not thread.is_alive(), "the poll after make_safe waited for the drop"
        finally:
            line.release.set()
            thread.join(HANG_GUARD_S)
        problems, polled = done
        assert isinstance(problems, list) and len(problems) == 1, problems
        assert "the stage's share of making the rig safe" in problems[0], problems
        assert isinstance(polled, StillDropping), polled
    finally:
        rig.close()


class StopNotTakenAfterDrain(LinePerRead):
    """`LinePerRead` whose line, once the drain has ended, takes no stop: the stop the drop
    sends once more waits its whole write timeout (`InstrumentTimeout`)."""

    def __init__(self, inner: Any, clock: Any) -> None:
        super().__init__(inner, clock)
        self.drains = 0

    def clear(self) -> None:
        self.drains += 1
        super().clear()

    def write(self, message: str) -> None:
        if message == STOP_ALL and self.release.is_set():
            self.sent.append((message, False))
            raise InstrumentTimeout("could not send within 5 s", instrument="stage")
        super().write(message)


def test_a_stop_sent_again_as_the_drop_ends_and_not_taken_fails_its_check() -> None:
    """The window's poll meets the rest of a cut stage reply (dropped aside, refused); its
    Stop sends the stop amid the drop and its check waits for it; the drain ends well (the
    line went quiet), but the stop the drop sends once more is not taken (its write timed
    out). The check fails saying so: the stop sent, not confirmed, the stop sent again not
    taken; the line is not drained again. Unfixed, the write's timeout was taken for a line
    that never went quiet: the check was refused (`StillDropping`, "did not go quiet"), and
    a second drain began, the stop not sent again after it."""
    rig = open_rig(load_profile())
    try:
        line = cut_stage_reply(rig, StopNotTakenAfterDrain)
        done = stop_amid_held_drop(line, [rig.stage.position, rig.stage.stop])
        assert isinstance(done[0], StillDropping), done
        stop = done[1]
        assert isinstance(stop, InstrumentLost) and not isinstance(stop, StillDropping), done
        said = str(stop)
        assert "the stop (#24) was sent, not confirmed" in said, said
        assert "not taken" in said and "did not go quiet" not in said, said
        assert [m for m, _ in line.sent].count(STOP_ALL) == 2, line.sent  # amid, then after
        assert line.drains == 1
    finally:
        rig.close()
