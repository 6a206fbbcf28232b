"""Ctrl-C inside `Session.scan_plan`'s start of a scan: once the scan's worker has begun, the
scan is the session's last (a later close looks at it), aborted and made safe before the
Ctrl-C goes on; before the worker began, the earlier scan stays the last."""

from __future__ import annotations

import _thread
import threading
from types import SimpleNamespace

import pytest
from acq_fakes import fake_rig, session_counting_closes

from smm_daq import interrupts
from smm_daq.acquisition import sequencer
from smm_daq.acquisition import session as session_module
from smm_daq.acquisition.session import Session
from smm_daq.storage.h5file import open_read

KW = {"center_um": (12500.0, 12500.0), "size_um": (40.0, 40.0), "step_um": 20.0}
WAIT_S = 30.0  # real seconds a held worker waits at most (it is let go long before)


def test_ctrl_c_once_the_worker_began_aborts_that_scan_and_keeps_it_the_last(tmp_path, monkeypatch):
    """The real start launches the worker, whose first point is held until an abort; Ctrl-C
    comes then, before `start` returns. Unfixed, the earlier (finished) scan was put back
    as the last: the scan kept running, and a close aborted nothing."""
    session, rig, closed = session_counting_closes(tmp_path / "s.h5")
    session.scan("first", **KW)
    session.set_field((0.0, 0.0, 20.0))
    safe_before = rig.safe_calls
    aborted, at_point = threading.Event(), threading.Event()
    started: list[sequencer.Sequencer] = []
    aborts: list[str] = []
    abort, start = sequencer.Sequencer.abort, sequencer.Sequencer.start

    def noted(seq, reason="aborted by the operator") -> None:
        aborts.append(reason)
        abort(seq, reason)
        aborted.set()

    def hold(event) -> None:  # the scan's first point held until it is aborted
        if event.kind == "point":
            at_point.set()
            aborted.wait(WAIT_S)  # the test gives up first

    def interrupted(seq) -> None:
        start(seq)  # the worker runs from here
        started.append(seq)
        assert at_point.wait(WAIT_S)  # the worker between points, writing nothing
        raise KeyboardInterrupt

    monkeypatch.setattr(sequencer.Sequencer, "abort", noted)
    monkeypatch.setattr(sequencer.Sequencer, "start", interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            session.scan("second", on_event=hold, **KW)
        (seq,) = started
        assert seq.started
        assert session.last_sequencer is seq
        assert aborts == ["interrupted (Ctrl-C or a termination signal)"], aborts
        assert seq.state == "aborted"
        assert rig.safe_calls == safe_before + 1  # made safe by its worker
        assert not rig.coils.field_setpoint().any() and rig.stage.stops >= 1
        with open_read(tmp_path / "s.h5") as f:
            assert f["second/status"].asstr()[()] == "aborted"
        assert session.close() == [] and closed == [True]
        assert rig.safe_calls == safe_before + 1  # not made safe again beside the abort
    finally:
        aborted.set()  # unfixed: let the worker go on, so that it ends
        for seq in started:
            seq.wait(WAIT_S)


def test_ctrl_c_before_the_worker_began_keeps_the_earlier_scan_the_last(tmp_path, monkeypatch):
    """Ctrl-C in the start before its worker is launched: no scan of its runs, so the
    earlier scan stays the last, and the close makes the rig safe itself."""
    rig = fake_rig()
    session = Session(tmp_path / "s.h5", rig)
    session.scan("first", **KW)
    earlier = session.last_sequencer
    tried: list[sequencer.Sequencer] = []

    def interrupted(seq) -> None:
        tried.append(seq)
        raise KeyboardInterrupt

    monkeypatch.setattr(sequencer.Sequencer, "start", interrupted)
    with pytest.raises(KeyboardInterrupt):
        session.scan("second", **KW)
    assert not tried[0].started
    assert session.last_sequencer is earlier
    safe_before = rig.safe_calls
    session.close()
    assert rig.safe_calls == safe_before + 1


def test_a_second_ctrl_c_in_a_script_does_not_cut_the_wait_for_the_rig_made_safe(
    tmp_path, monkeypatch
):
    """A script has Python's own SIGINT handler: Ctrl-C at the scan's first point aborts it,
    and a second Ctrl-C as the rig is waited for is only acknowledged, so that `scan` raises
    once the worker has made the rig safe. Unfixed, the second `KeyboardInterrupt` left
    `scan` at once, the worker still to make the rig safe: a script ending there kills it
    (a daemon thread) with the field on."""
    rig = fake_rig()
    session = Session(tmp_path / "s.h5", rig)
    session.set_field((0.0, 0.0, 20.0))
    safe_before = rig.safe_calls
    released = threading.Event()  # lets the worker go on from its first point
    aborted: list[str] = []
    abort = sequencer.Sequencer.abort

    def noted(seq, reason="aborted by the operator") -> None:
        aborted.append(reason)
        abort(seq, reason)

    def hold(event) -> None:
        if event.kind == "point" and not released.is_set():
            _thread.interrupt_main()  # the first Ctrl-C, the worker at its first point
            released.wait(WAIT_S)  # the test gives up first

    waiting = session_module.wait_awake
    again: list[bool] = []

    def ctrl_c_again(event: threading.Event, timeout: float | None = None) -> bool:
        if aborted and not again:  # the wait for the aborted scan's end
            again.append(True)
            _thread.interrupt_main()  # the second Ctrl-C
        return waiting(event, timeout)

    acknowledged = interrupts.acknowledge

    def met(name: str) -> None:
        acknowledged(name)
        released.set()  # the second Ctrl-C was met: the worker may go on

    monkeypatch.setattr(sequencer.Sequencer, "abort", noted)
    monkeypatch.setattr(session_module, "wait_awake", ctrl_c_again)
    monkeypatch.setattr(interrupts, "acknowledge", met)
    at_raise: list[tuple[int, str]] = []
    try:
        with pytest.raises(KeyboardInterrupt):
            session.scan("second", on_event=hold, **KW)
        at_raise.append((rig.safe_calls, session.last_sequencer.state))
    finally:
        released.set()
        if session.last_sequencer is not None:
            session.last_sequencer.wait(WAIT_S)
    assert again == [True]
    assert at_raise == [(safe_before + 1, "aborted")]  # made safe by the worker first
    assert not rig.coils.field_setpoint().any()
    assert session.close() == [] and rig.safe_calls == safe_before + 1


def test_ctrl_c_as_the_worker_is_made_ends_the_prepared_scan_aborted(tmp_path, monkeypatch):
    """Ctrl-C once the start has set the lock-in and created the entry, as the worker's
    thread is being made (before it runs): no worker runs the scan, so it is ended there,
    "aborted", its entry closed, and the earlier scan stays the last. Unfixed, the scan was
    left "running" (its entry too, the file kept open, `wait` never ending)."""
    rig = fake_rig()
    session = Session(tmp_path / "s.h5", rig)
    session.scan("first", **KW)
    earlier = session.last_sequencer
    tried: list[sequencer.Sequencer] = []
    start = sequencer.Sequencer.start
    real = threading.Thread

    def thread(*args, **kw) -> threading.Thread:
        if str(kw.get("name", "")).startswith("scan "):
            raise KeyboardInterrupt  # the worker's
        return real(*args, **kw)

    def kept(seq) -> None:
        tried.append(seq)
        start(seq)

    monkeypatch.setattr(
        sequencer, "threading", SimpleNamespace(**{**vars(threading), "Thread": thread})
    )
    monkeypatch.setattr(sequencer.Sequencer, "start", kept)
    with pytest.raises(KeyboardInterrupt):
        session.scan("second", **KW)
    (seq,) = tried
    assert not seq.started
    assert seq.wait(0) == "aborted", seq.state
    assert session.last_sequencer is earlier
    with open_read(tmp_path / "s.h5") as f:
        assert f["second/status"].asstr()[()] == "aborted"
    assert session.close() == []
