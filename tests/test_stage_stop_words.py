"""What `smm-daq safe` (`make_rig_safe`) says of a stage whose stop went out but was not
confirmed, or was confirmed but its position not read: what is true, not "not stopped". On
the simulator's virtual clock; nothing sleeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drivers.pi_gcs import STOPS, PIGCSStage
from smm_daq.errors import InstrumentError, InstrumentLost
from smm_daq.instruments import rig as rig_module
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import make_rig_safe

PROFILE = Path(__file__).resolve().parents[1] / "configs" / "simulator-e727.toml"
SHARE_S = 5.0  # the stage's share of the making safe here (s)


class ShareEndsAsTheStopGoes:
    """A stage transport on which the rig's clock passes the stage's share as a stop is
    written: the stop's check, the next exchange, is refused."""

    def __init__(self, inner: Any, clock: Any) -> None:
        self.inner = inner
        self.clock = clock

    def write(self, message: str) -> None:
        self.inner.write(message)
        if message in STOPS:
            self.clock.sleep(2 * SHARE_S)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _first_stop_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """`stop_alone` fails as a controller that answered does (it is connected after it)."""

    def failed(cls: Any, settings: Any, **_: Any) -> Any:
        raise InstrumentError("PI error 1 (parameter syntax error) after 'STP'",
                              instrument=f"PI stage at {settings.link.address}")

    monkeypatch.setattr(PIGCSStage, "stop_alone", classmethod(failed))
    monkeypatch.setattr(rig_module, "stage_share_s", lambda profile: SHARE_S)


def test_a_stop_sent_whose_check_the_share_refused_is_said_not_confirmed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The first stop (`stop_alone`) failed; connected, the stage's stop goes out and the
    stage's share ends just then, its check refused (`DeadlineReached`). The stage is said
    not safe, its stop sent but not confirmed: not "not stopped", which the stop's own
    words ("was sent") belied. Unfixed, any `DeadlineReached` was taken for a stop refused
    unsent."""
    _first_stop_fails(monkeypatch)
    original = PIGCSStage.from_profile.__func__  # type: ignore[attr-defined]

    def connected(cls: Any, settings: Any, *, clock: Any, open_transport: Any) -> Any:
        stage = original(cls, settings, clock=clock, open_transport=open_transport)
        stage.link.transport = ShareEndsAsTheStopGoes(stage.link.transport, clock)
        return stage

    monkeypatch.setattr(PIGCSStage, "from_profile", classmethod(connected))
    _, stage = make_rig_safe(load_profile(PROFILE))
    assert not stage.safe, stage.state
    assert stage.state.startswith("stop not confirmed: "), stage.state
    assert "was sent, not confirmed" in stage.state, stage.state
    assert "the stage's share of making the rig safe (5 s) ended" in stage.state, stage.state
    assert "not stopped" not in stage.state, stage.state


def test_a_stop_confirmed_whose_position_was_not_read_is_said_stopped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The first stop failed; connected, the stage's stop is sent and confirmed (its check,
    and nothing moves), then its position's read fails. The stage is said stopped, its
    position not read. Unfixed, it was said "not stopped", `safe` ending as NOT SAFE with
    the stage stopped."""
    _first_stop_fails(monkeypatch)

    def unread(self: Any) -> Any:
        raise InstrumentLost("no valid reply to 'POS?'", instrument=self.name)

    monkeypatch.setattr(PIGCSStage, "position", unread)
    _, stage = make_rig_safe(load_profile(PROFILE))
    assert stage.safe, stage.state
    assert stage.state.startswith("stopped, position not read: "), stage.state
    assert "no valid reply to 'POS?'" in stage.state, stage.state
    assert "the first stop said: " in stage.state, stage.state
