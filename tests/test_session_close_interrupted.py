"""Ctrl-C while `Session.close` waits for a scan it aborted, whose start is held by a stalled
disk: the close re-raises it once the stall is told, and the rig it closes is handed back
first, so the scan's thread, once the disk answers, sends nothing to the closed rig."""

from __future__ import annotations

import threading

import pytest
from acq_fakes import fake_rig

from smm_daq.acquisition import sequencer
from smm_daq.acquisition.session import ScanNotFinished, Session

KW = {"center_um": (12500.0, 12500.0), "size_um": (40.0, 40.0), "step_um": 20.0}


def test_ctrl_c_in_a_close_past_a_stalled_start_leaves_the_closed_rig_alone(tmp_path, monkeypatch):
    rig = fake_rig()
    session = Session(tmp_path / "s.h5", rig)
    session.set_field((0.0, 0.0, 20.0))
    done: list[str] = []  # what the rig was told, in order
    make_safe = rig.make_safe
    rig.make_safe = lambda: (done.append("made safe"), make_safe())[1]
    rig.close = lambda: done.append("closed")
    monkeypatch.setattr(sequencer, "WRITE_STALLED_S", 0.0)
    reading, answers = threading.Event(), threading.Event()

    def stalled_read(path, entry) -> None:  # returns once the test lets the disk answer
        reading.set()
        answers.wait(30)

    monkeypatch.setattr(sequencer, "check_new_scan", stalled_read)
    ended: list[BaseException] = []

    def scan() -> None:
        try:
            session.scan("only", **KW)
        except BaseException as exc:
            ended.append(exc)

    scanning = threading.Thread(target=scan, daemon=True)
    scanning.start()
    assert reading.wait(30)
    awake, pressed = sequencer.wait_awake, []

    def ctrl_c_once(event: threading.Event, timeout: float | None = None) -> bool:
        """Ctrl-C reaches the closing (main) thread as it begins to wait."""
        if threading.current_thread() is threading.main_thread() and not pressed:
            pressed.append(True)
            raise KeyboardInterrupt
        return awake(event, timeout)

    monkeypatch.setattr(sequencer, "wait_awake", ctrl_c_once)
    try:
        with pytest.raises(KeyboardInterrupt):
            session.close()
        assert pressed and done == ["made safe", "closed"]
    finally:
        answers.set()
    scanning.join(30)
    assert not scanning.is_alive()
    assert len(ended) == 1 and isinstance(ended[0], ScanNotFinished)
    assert ended[0].status == "aborted"
    # unfixed: the start's end made the closed rig safe again ("made safe" after "closed")
    assert done == ["made safe", "closed"]
