"""A Session closed from another thread while `scan_plan` starts a scan: the scan whose
worker has begun is the one aborted, never an earlier one's ended sequencer, with the rig
closed under the new scan."""

from __future__ import annotations

import threading

import pytest
from acq_fakes import fake_rig, session_counting_closes

from smm_daq.acquisition import sequencer
from smm_daq.acquisition.session import ScanNotFinished, Session
from smm_daq.errors import InputError

KW = {"center_um": (12500.0, 12500.0), "size_um": (40.0, 40.0), "step_um": 20.0}


def test_a_close_as_a_scans_start_returns_aborts_that_scan(tmp_path, monkeypatch):
    """The close runs (and ends) in the moment between the worker's start and the return of
    `Sequencer.start`, after an earlier scan on the session has finished."""
    session, _, closed = session_counting_closes(tmp_path / "s.h5")
    session.scan("first", **KW)
    aborts: list[str] = []
    holding = threading.Event()
    abort, start = sequencer.Sequencer.abort, sequencer.Sequencer.start
    results: list[list[str]] = []

    def noted(seq, reason="aborted by the operator") -> None:
        aborts.append(reason)
        abort(seq, reason)
        holding.set()

    def hold(event) -> None:  # the scan's first point held until it is aborted
        if event.kind == "point":
            holding.wait(30)  # the test gives up first

    def closing_at_the_gap(seq) -> None:
        start(seq)  # the worker runs from here
        closer = threading.Thread(target=lambda: results.append(session.close()), daemon=True)
        closer.start()
        try:
            closer.join(30)
        finally:
            holding.set()

    monkeypatch.setattr(sequencer.Sequencer, "abort", noted)
    monkeypatch.setattr(sequencer.Sequencer, "start", closing_at_the_gap)
    with pytest.raises(ScanNotFinished) as caught:
        session.scan("second", on_event=hold, **KW)
    assert aborts == ["the session was closed"]  # unfixed: [] (the rig closed under it)
    assert caught.value.status == "aborted"
    assert results == [[]] and closed == [True]


def test_a_start_that_fails_leaves_the_earlier_scan_the_last(tmp_path):
    """A plan refused at its start does not replace the sequencer a close looks at."""
    session = Session(tmp_path / "s.h5", fake_rig())
    session.scan("first", **KW)
    earlier = session.last_sequencer
    with pytest.raises(InputError):
        session.scan("first", **KW)  # the entry exists
    assert session.last_sequencer is earlier
