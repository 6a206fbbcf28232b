"""The make-safe path's refusals quote a long command as the links do (`shown`): its start
and its length, not the whole of it (a fly line's table of thousands of characters would
bury what the message says)."""

from __future__ import annotations

import pytest

from smm_daq.clock import VirtualClock
from smm_daq.instruments import loss_budget
from smm_daq.instruments.loss_budget import LossBudget

LONG = "WAV_PNT 1 1 4000 X " + " ".join(["0.1234"] * 600)
CUT = rf"'WAV_PNT 1 1 4000 X 0\.1234 .*\.\.\. \({len(LONG)} characters\)"


def test_given_up_quotes_a_long_command_cut_short() -> None:
    budget = LossBudget(allowed=1)
    budget.charge("supply 1")
    with pytest.raises(loss_budget.GivenUp, match=f"given up before {CUT}: 1 reply") as caught:
        budget.refuse("supply 1", LONG)
    assert LONG not in str(caught.value)


def test_past_the_deadline_quotes_a_long_command_cut_short() -> None:
    clock = VirtualClock()
    budget = LossBudget(allowed=1, clock=clock, deadline=0.0, deadline_s=10.0)
    with pytest.raises(
        loss_budget.DeadlineReached, match=f"deadline reached before {CUT}:"
    ) as caught:
        budget.refuse_late("supply 1", LONG)
    assert LONG not in str(caught.value)


def test_the_stages_share_ended_quotes_a_long_command_cut_short() -> None:
    clock = VirtualClock()
    budget = LossBudget(
        allowed=1, clock=clock, deadline=100.0, stage_deadline=0.0, stage_share_s=5.0
    )
    with pytest.raises(loss_budget.DeadlineReached, match=f"ended before {CUT}:") as caught:
        budget.refuse_late("stage", LONG, loss_budget.STAGE)
    assert LONG not in str(caught.value)


def test_a_short_command_is_quoted_whole() -> None:
    budget = LossBudget(allowed=1)
    budget.charge("supply 1")
    with pytest.raises(loss_budget.GivenUp, match="given up before 'OUTP OFF': "):
        budget.refuse("supply 1", "OUTP OFF")
