"""A GCS reply of many lines (`HPA?`, `HLP?`, one line per axis) is read a line at a time,
each line as late as the link allows: on the make-safe path, its lines past the path's
deadline are refused, so that only the line under way is waited for past it, as
`safe_bound` counts the stage's exchange under way (`STAGE_REPLIES_PER_ATTEMPT` replies).
On the virtual clock, which the fake link's reads advance; nothing sleeps."""

from __future__ import annotations

import pytest

from drivers.pi_gcs import GCSLink
from smm_daq.clock import VirtualClock
from smm_daq.instruments import loss_budget
from smm_daq.instruments.loss_budget import DeadlineReached

LINE_S = 2.9  # each line just within a 3 s timeout
LINES = 40  # an HPA? of a C-884 runs to hundreds
DEADLINE_S = 10.0


class SlowLines:
    """A stage link whose every reply line comes `LINE_S` after the one before."""

    timeout = 3.0

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.sent = 0

    def _line(self) -> str:
        self.clock.advance(LINE_S)
        self.sent += 1
        return f"0x{self.sent:08X}=parameter {self.sent}" + (" " if self.sent < LINES else "")

    def query(self, message: str) -> str:
        return self._line()

    def read(self) -> str:
        return self._line()

    def write(self, message: str) -> None:
        pass

    def clear(self) -> None:
        pass

    def close(self) -> None:
        pass


def _link(clock: VirtualClock) -> tuple[GCSLink, SlowLines]:
    transport = SlowLines(clock)
    return GCSLink(transport, name="stage", budget=loss_budget.STAGE), transport


@pytest.mark.parametrize("read", ["query_lines", "replies_until"])
def test_a_reply_of_many_lines_is_cut_at_the_make_safe_deadline(read: str) -> None:
    clock = VirtualClock()
    link, transport = _link(clock)
    with loss_budget.making_safe(5, stage=3, clock=clock, deadline_s=DEADLINE_S), \
            pytest.raises(DeadlineReached, match="deadline reached before 'HPA\\?'"):
        if read == "query_lines":
            link.query_lines("HPA?", lambda lines: lines)
        else:
            link.replies_until("HPA?", lambda reply: False, ahead=0)
    assert clock.now() <= DEADLINE_S + LINE_S  # the line under way, no more
    assert transport.sent < LINES


def test_a_reply_of_many_lines_is_cut_at_the_stages_share_but_read_whole_off_the_path(
        ) -> None:
    """Off the make-safe path a reply is read whole, however long (a data recorder's
    table); on it, what comes past the stage's share is refused."""
    clock = VirtualClock()
    link, _ = _link(clock)
    assert len(link.query_lines("HPA?", lambda lines: lines)) == LINES
    clock = VirtualClock()
    link, _ = _link(clock)
    with loss_budget.making_safe(5, stage=3, clock=clock, deadline_s=100.0), \
            loss_budget.stage_share(DEADLINE_S), \
            pytest.raises(DeadlineReached, match="stage's share"):
        link.query_lines("HPA?", lambda lines: lines)
    assert clock.now() <= DEADLINE_S + LINE_S
