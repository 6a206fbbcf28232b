"""A scan started after an abort whose stage stop went unchecked (its check, `ERR?`, given up
by the make-safe path while the rest of a reply cut short was dropped aside) runs: the
controller's error 10 ("stopped by command"), which the stop set and nobody read, is read
and cleared before the next checked command, not taken for that command's own. Another
error found pending then is told as found before the command. On the PI emulator, its
drain held by events: nothing sleeps."""

from __future__ import annotations

import numpy as np
import pytest
from test_scan_after_drop import _plan
from test_stop_amid_drop import HANG_GUARD_S, cut_stage_reply, make_safe_past_the_stages_share

from drivers.pi_gcs import STOP_ALL
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.errors import InstrumentError, StillDropping
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import Rig, open_rig

CENTRE = (12.5e-3, 12.5e-3)


def _aborted_with_the_stop_unchecked(rig: Rig) -> None:
    """The stage moving; a reply of it cut short, its rest dropped aside (the window's poll
    met it); `Rig.make_safe` sends the stop amid the drop and gives its check up at the end
    of the stage's share; then the drain ends (the stop sent once more) and the next
    exchange finds the drop over."""
    rig.stage.move_to(CENTRE[0] + 1e-3, CENTRE[1], wait=False)
    line = cut_stage_reply(rig)
    with pytest.raises(StillDropping) as polled:
        rig.stage.position()  # the window's poll: the drop goes aside
    with make_safe_past_the_stages_share(rig, line) as done:
        [problems] = done
    assert len(problems) == 1 and "stop not confirmed" in problems[0], problems
    assert polled.value.wait(HANG_GUARD_S)
    assert [m for m, _ in line.sent].count(STOP_ALL) == 2, line.sent  # amid, then as it ended
    rig.stage.link.transport = line.inner  # type: ignore[attr-defined]


def test_a_scan_after_an_abort_whose_stop_check_was_given_up_runs(tmp_path) -> None:
    """Aborted amid a move with the stop's check given up, then a new scan: its first moves
    succeed and it runs to its end. Unfixed, the stop's error 10 was left unread, and the
    scan's first checked command failed on it ("PI error 10 (controller was stopped by
    command) after 'MOV ...'")."""
    rig = open_rig(load_profile())
    try:
        _aborted_with_the_stop_unchecked(rig)
        seq = Sequencer(rig, tmp_path / "s.h5", _plan())
        assert seq.run() == "finished", seq.message
    finally:
        rig.close()


def test_an_error_other_than_the_stops_found_pending_is_told_as_found_before_the_move(
        ) -> None:
    """As above, but the controller holds another error when the move comes (a servo
    switched off on a position error, after the stop): the move is refused unsent, the
    error told as found pending after the unchecked stop, not as the move's; the move
    after it goes. Unfixed, the move was sent and the error said to be its own."""
    rig = open_rig(load_profile())
    try:
        _aborted_with_the_stop_unchecked(rig)
        rig.backend.emulators[rig.profile.stage.link.address].error = 1024
        with pytest.raises(InstrumentError) as found:
            rig.stage.move_to(*CENTRE)
        said = str(found.value)
        assert "PI error 1024" in said and "pending" in said and "'MOV" in said, said
        assert "not sent" in said, said
        rig.stage.move_to(*CENTRE)
        assert np.allclose(rig.stage.position()[:2], CENTRE, atol=1e-7)
    finally:
        rig.close()
