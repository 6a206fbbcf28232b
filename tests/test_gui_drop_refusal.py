"""What the Instruments tab says of a call refused while the stage's link drops the rest of a
reply cut short aside (`StillDropping`: nothing sent): a button's action was not done and is
the operator's to ask again (the window makes it no more by itself); a reading refused so is
no instrument gone silent, and the next poll asks it again. The drain is held by an event;
the rig runs on its virtual clock."""

from __future__ import annotations

import pytest
from test_gui_instruments import WAIT_MS, fresh_readings
from test_scan_after_drop import _cut_and_dropping_aside
from test_stop_amid_drop import HANG_GUARD_S, NeverQuietOnRelease, cut_stage_reply

from smm_daq.errors import StillDropping


def test_a_go_to_refused_amid_a_drop_says_it_was_not_done_and_to_ask_again(window, qtbot):
    """Go to while the rest of a cut stage reply is drained aside: the message says the move
    was not done and to ask again once the rest has been dropped; the poll's reading of the
    position is refused too, and no 'Not answering ... Reconnect' is said for it. Unfixed,
    the message said the move was 'asked again once it has' (it never was), and the poll's
    refusal was said as the stage not answering."""
    panel, rig = window.instruments, window.holder.rig
    line = _cut_and_dropping_aside(rig)
    try:
        panel.message.setText("")
        panel.go_to()
        qtbot.waitUntil(lambda: panel.message.text().startswith("Go to:"), timeout=WAIT_MS)
        said = panel.message.text()
        assert "not done" in said and "Ask again once it has been dropped" in said, said
        assert "asked again once it has" not in said, said
        readings = fresh_readings(qtbot, panel)
        assert isinstance(readings["position"], StillDropping), readings
        assert not panel.message.text().startswith("Not answering"), panel.message.text()
    finally:
        line.release.set()


def test_a_stop_whose_check_meets_a_failed_drop_says_its_stop_was_sent(window, qtbot):
    """Stop while the rest of a cut stage reply is drained aside: its stop goes amid the
    drain, its check waits for it; the drain fails (the line never went quiet) and begins
    again, the check refused. The message says what is true: the stop was sent, not
    confirmed. Unfixed, it said only that the check was not sent, as of a Stop not done."""
    panel, rig = window.instruments, window.holder.rig
    line = cut_stage_reply(rig, NeverQuietOnRelease)
    with pytest.raises(StillDropping):
        rig.stage.position()  # the window's poll: the drop goes aside
    try:
        panel.message.setText("")
        panel.stop_stage()
        assert line.stop_sent.wait(HANG_GUARD_S), "the stop waited for the drop"
    finally:
        line.release.set()
    qtbot.waitUntil(lambda: panel.message.text().startswith("Stop:"), timeout=WAIT_MS)
    said = panel.message.text()
    assert "the stop (#24) was sent, not confirmed" in said, said
