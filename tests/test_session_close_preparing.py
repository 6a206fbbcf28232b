"""A Session closed from another thread while `scan_plan` still prepares its scan (the
lock-in being set, before the entry is created and the worker starts): the close aborts
the start at its next step, the rig is made safe, no entry is left, and the rig is closed
once."""

from __future__ import annotations

import threading

import h5py
import pytest
from acq_fakes import session_counting_closes

from smm_daq.acquisition import sequencer
from smm_daq.acquisition.session import ScanNotFinished, Session
from smm_daq.errors import InstrumentError

KW = {"center_um": (12500.0, 12500.0), "size_um": (40.0, 40.0), "step_um": 20.0}


def closing_while_preparing(
    session: Session, monkeypatch, results: list[list[str]], then=None
) -> list[threading.Thread]:
    """Close `session` from another thread while the start sets the lock-in's time
    constant; the setting returns (or calls `then()`) once the close has aborted the scan
    or, unfixed, ended without it. What the close returns goes to `results`; returns the
    closing thread, once started."""
    acted = threading.Event()
    abort, set_tau = sequencer.Sequencer.abort, sequencer.Sequencer._use_profile_time_constant
    closers: list[threading.Thread] = []

    def noted(seq, reason="aborted by the operator") -> None:
        abort(seq, reason)
        acted.set()

    def closing(seq) -> None:
        set_tau(seq)

        def close() -> None:
            try:
                results.append(session.close())
            finally:
                acted.set()

        closers.append(threading.Thread(target=close, daemon=True))
        closers[0].start()
        acted.wait(30)  # the test gives up first
        if then is not None:
            then()

    monkeypatch.setattr(sequencer.Sequencer, "abort", noted)
    monkeypatch.setattr(sequencer.Sequencer, "_use_profile_time_constant", closing)
    return closers


def test_a_close_while_a_scan_prepares_aborts_it_before_its_entry(tmp_path, monkeypatch):
    session, rig, closed = session_counting_closes(tmp_path / "s.h5")
    session.scan("first", **KW)
    session.set_field((0.0, 0.0, 20.0))
    safe_before = rig.safe_calls
    results: list[list[str]] = []
    closers = closing_while_preparing(session, monkeypatch, results)
    with pytest.raises(ScanNotFinished) as caught:  # unfixed: the scan ran to its end
        session.scan("second", **KW)
    assert caught.value.status == "aborted"
    assert "the session was closed" in str(caught.value)
    closers[0].join(30)  # it returns once the aborted scan has ended
    assert results == [[]] and closed == [True]
    assert rig.safe_calls == safe_before + 1  # made safe by the abort, not again beside it
    assert not rig.coils.field_setpoint().any()
    with h5py.File(tmp_path / "s.h5", "r") as f:
        assert "second" not in f  # nothing half-made for a later scan or resume to meet


def test_a_start_failing_after_the_close_does_not_hold_the_close(tmp_path, monkeypatch):
    """The lock-in refuses its setting once the close has asked for the abort: the start
    raises its own error, and the close, waiting for the scan, ends too: the rig made safe
    and closed once."""
    session, rig, closed = session_counting_closes(tmp_path / "s.h5")

    def refused() -> None:
        raise InstrumentError("the lock-in refused the time constant")

    results: list[list[str]] = []
    closers = closing_while_preparing(session, monkeypatch, results, then=refused)
    with pytest.raises(InstrumentError):
        session.scan("only", **KW)
    closers[0].join(30)  # the test gives up first
    assert results == [[]] and closed == [True]  # unfixed: the close waits for good
    assert rig.safe_calls >= 1


def test_a_close_while_the_starts_file_work_stalls_is_not_held_by_it(tmp_path, monkeypatch):
    """The file read before the entry is created does not return (a stalled disk): the close
    aborts the start, whose rig is made safe at once, and closes the rig once without
    waiting for the disk; once the read returns, the start ends "aborted", touching the rig
    no more."""
    session, rig, closed = session_counting_closes(tmp_path / "s.h5")
    session.set_field((0.0, 0.0, 20.0))
    results: list[list[str]] = []
    closers: list[threading.Thread] = []
    monkeypatch.setattr(sequencer, "WRITE_STALLED_S", 0.0)

    def stalled_read(path, entry) -> None:  # returns once the close has ended, or given up
        closers.append(threading.Thread(target=lambda: results.append(session.close())))
        closers[0].daemon = True
        closers[0].start()
        closers[0].join(30)  # the test gives up first

    monkeypatch.setattr(sequencer, "check_new_scan", stalled_read)
    with pytest.raises(ScanNotFinished) as caught:
        session.scan("only", **KW)
    assert results == [[]] and closed == [True]  # unfixed: [] (the close waits for the disk)
    assert caught.value.status == "aborted"
    assert rig.safe_calls == 1 and not rig.coils.field_setpoint().any()
    with h5py.File(tmp_path / "s.h5", "a") as f:
        assert "only" not in f
