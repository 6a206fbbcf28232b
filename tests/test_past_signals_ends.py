"""How a script's Ctrl-C (Python's own handler) during a ramp-down run past signals ends where
test_interrupt_sweep does not look: a ramp-down that fails or hangs. The Ctrl-C still reaches
the script (not lost behind the ramp-down's error), and a close whose making safe hangs says
that the rig may not be safe."""

from __future__ import annotations

import _thread
import threading
from collections.abc import Callable

import pytest
from acq_fakes import fake_rig, session_counting_closes

from smm_daq.acquisition import safe_close, sequencer
from smm_daq.errors import InstrumentLost, SafetyError

WAIT_S = 30  # bounded waits for the held ramp-downs: the test fails rather than hangs


def test_a_ctrl_c_as_zero_field_s_ramp_down_fails_reaches_the_script(tmp_path, met):
    """Unfixed, the ramp-down's error was raised and the Ctrl-C dropped: a script that goes
    on past that error (or a step made again) was not stopped."""
    session, rig, _ = session_counting_closes(tmp_path / "s.h5")

    def failing() -> None:
        _thread.interrupt_main()
        assert met.wait(WAIT_S)
        raise InstrumentLost("coils: no reply to zero (injected)")

    rig.zero_coils = failing
    with pytest.raises(KeyboardInterrupt) as raised:
        session.zero_field()
    assert isinstance(raised.value.__cause__, InstrumentLost)


def test_a_ctrl_c_as_zero_field_s_ramp_down_hangs_reaches_the_script(tmp_path, met,
                                                                     monkeypatch):
    """The ramp-down not ended within its limit: its SafetyError goes with the Ctrl-C."""
    session, rig, _ = session_counting_closes(tmp_path / "s.h5")
    go = threading.Event()

    def held() -> None:
        _thread.interrupt_main()
        assert go.wait(WAIT_S)

    rig.zero_coils = held
    monkeypatch.setattr(sequencer, "hand_back_wait_s", lambda _rig: 0.01)
    monkeypatch.setattr(sequencer, "wait_awake", _until_met(met))
    try:
        with pytest.raises(KeyboardInterrupt) as raised:
            session.zero_field()
    finally:
        go.set()
    assert isinstance(raised.value.__cause__, SafetyError)
    assert "did not end within" in str(raised.value.__cause__)


def test_a_ctrl_c_in_a_close_whose_making_safe_hangs_says_the_rig_may_not_be_safe(
        met, monkeypatch):
    """Unfixed, the Ctrl-C reached the script with no word that the making safe had not
    ended (the rig maybe still energised, its daemon thread killed as the script ends)."""
    rig = fake_rig()
    go = threading.Event()
    rig.close = lambda: None

    def held() -> list[str]:
        _thread.interrupt_main()
        assert go.wait(WAIT_S)
        return []

    rig.make_safe = held
    monkeypatch.setattr(safe_close, "safe_wait_s", lambda _rig: 0.01)
    monkeypatch.setattr(safe_close, "wait_awake", _until_met(met))
    try:
        with pytest.raises(KeyboardInterrupt) as raised:
            safe_close.make_safe_and_close(rig)
    finally:
        go.set()
    notes = getattr(raised.value, "__notes__", [])
    assert any("making it safe at the close did not end within" in n for n in notes), notes
    assert any("smm-daq safe" in n for n in notes), notes


def _until_met(met: threading.Event) -> Callable[[threading.Event, float | None], bool]:
    """A wait that, until the Ctrl-C has been met (raised in it, or before it), lasts
    whatever its limit: the hang then outlasts only the wait past signals after it."""
    awake = sequencer.wait_awake

    def wait(event: threading.Event, timeout: float | None = None) -> bool:
        if not met.is_set():
            for _ in range(WAIT_S * 100):  # the Ctrl-C, which the work's thread holds
                event.wait(0.01)  # on until met, ends it
            raise AssertionError("the Ctrl-C never came")
        return awake(event, timeout)

    return wait


def test_a_second_ctrl_c_in_a_close_made_as_the_first_is_handled_is_only_acknowledged(met):
    """A close as a first Ctrl-C is handled (`with Session.open(...)`'s exit, an `except
    KeyboardInterrupt:`): a second Ctrl-C as it makes the rig safe is only acknowledged, as
    where a scan's start or `zero_field` makes it safe (`sequencer.past_signals`). Unfixed,
    the close raised it, the first chained under it, and what the making safe could not do
    was lost with the close's return."""
    rig = fake_rig()
    rig.close = lambda: None

    def interrupting() -> list[str]:
        _thread.interrupt_main()
        assert met.wait(WAIT_S)
        return ["supply 2 did not answer"]

    rig.make_safe = interrupting
    with pytest.raises(KeyboardInterrupt, match="first") as raised:
        try:
            raise KeyboardInterrupt("first")
        except KeyboardInterrupt:
            ended, problems = safe_close.make_safe_and_close(rig)
            raise
    assert (ended, problems) == (True, ["supply 2 did not answer"])
    assert raised.value.__context__ is None
