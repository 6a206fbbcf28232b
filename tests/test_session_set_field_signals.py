"""`Session.set_field` in a script: Ctrl-C during the ramp stops it and the ramp's thread makes
the rig safe from where it got to. A script has Python's own SIGINT handler (no
`interrupts.installed`), which raises `KeyboardInterrupt` for a second Ctrl-C too: that one must
not cut the wait for the ramp's thread short, or the close would make the rig safe (and close
its links) beside a ramp step still under way in that thread."""

from __future__ import annotations

import _thread
import threading

import numpy as np
import pytest
from acq_fakes import fake_rig

from smm_daq.acquisition import field_aside, sequencer
from smm_daq.acquisition.session import Session

WAIT_S = 60.0  # real seconds a held thread waits at most (it is let go long before)


def test_a_second_ctrl_c_in_a_script_does_not_leave_the_ramps_thread_making_safe_alone(
        tmp_path, monkeypatch) -> None:
    """Ctrl-C as the ramp's step is under way (a slow link holds it), Ctrl-C again as the
    stopped ramp is waited for: `set_field` still raises only once the ramp's thread has made
    the rig safe, and the close does not make it safe a second time. Unfixed, the second
    `KeyboardInterrupt` left `set_field` at once: the close made the rig safe, and closed it,
    while the ramp's thread was still in its step, then made it safe again from there."""
    rig = fake_rig()
    session = Session(tmp_path / "s.h5", rig)
    released = threading.Event()  # lets the ramp's step go on
    made_safe_at_raise: list[int] = []
    ramping = rig.coils.set_field

    def slow_step(b: np.ndarray, *, ramp: bool = True, stop=None) -> None:
        if stop is not None:  # the ramp's, not the making safe's ramp-down
            _thread.interrupt_main()  # the first Ctrl-C, as the step's exchange is under way
            released.wait(WAIT_S)
        ramping(b, ramp=ramp, stop=stop)

    waiting = sequencer.wait_awake  # the wait past signals for the stopped ramp's end
    again: list[bool] = []

    def ctrl_c_again(event: threading.Event, timeout: float | None = None) -> bool:
        if timeout is not None and not again:  # the wait for the stopped ramp's end
            again.append(True)
            _thread.interrupt_main()  # the second Ctrl-C
        return waiting(event, timeout)

    acknowledged = field_aside.interrupts.acknowledge

    acks: list[str] = []

    def noted(name: str) -> None:
        acknowledged(name)
        acks.append(name)
        released.set()  # the second Ctrl-C was met: the step may end now

    monkeypatch.setattr(rig.coils, "set_field", slow_step)
    monkeypatch.setattr(sequencer, "wait_awake", ctrl_c_again)
    monkeypatch.setattr(field_aside.interrupts, "acknowledge", noted)
    try:
        with pytest.raises(KeyboardInterrupt):
            session.set_field((0, 40, 0))
        made_safe_at_raise.append(rig.safe_calls)
    finally:
        released.set()
    # the second Ctrl-C was made and met in the wait for the stopped ramp (not the step let
    # go at WAIT_S by the finally, which proves nothing)
    assert again == [True] and acks, (again, acks)
    assert made_safe_at_raise == [1]  # by the ramp's thread, before set_field raised
    assert session.close() == [] and rig.safe_calls == 1
    np.testing.assert_array_equal(rig.coils.setpoint, 0.0)
