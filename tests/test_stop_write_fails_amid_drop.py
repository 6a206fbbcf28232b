"""A stop whose write fails amid the drop aside of a stage reply cut short leaves the line to
that drop: the link's clear after a failed attempt is not made on the Stop's thread (a
second drain of the port beside the drop's, or a reopen of it under that drain), so the
Stop is told at once, and the drop sends the stop once more as it ends. The drain is held by
events, not by time: nothing sleeps."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from test_stop_amid_drop import HANG_GUARD_S, LinePerRead, _on_the_rigs_thread, cut_stage_reply

from drivers.pi_gcs import STOP_ALL
from smm_daq.errors import InstrumentLost, InstrumentTimeout, StillDropping
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import open_rig


class StopNotTakenAmidDrain(LinePerRead):
    """`LinePerRead` that takes no stop while its drain is held (the write times out, as on
    a line held by flow control); each clear notes the thread it was made on."""

    def __init__(self, inner: Any, clock: Any) -> None:
        super().__init__(inner, clock)
        self.cleared_on: list[str] = []

    def write(self, message: str) -> None:
        if message == STOP_ALL and self.draining.is_set() and not self.release.is_set():
            self.sent.append((message, True))
            self.stop_sent.set()
            raise InstrumentTimeout("could not send within 5 s", instrument="stage")
        super().write(message)

    def clear(self) -> None:
        self.cleared_on.append(threading.current_thread().name)
        super().clear()


@pytest.mark.parametrize("lost", [True, False])
def test_a_stop_not_taken_amid_a_drop_leaves_the_line_to_that_drop(lost: bool) -> None:
    """The window's poll meets the rest of a cut stage reply (dropped aside, refused); the
    Stop behind it writes its stop amid that drop, and the write times out. The Stop fails at
    once (not taken), the drain still held, and only the drop's thread ever cleared the line;
    once the drain ends, the drop sends the stop once more, taken. With the link not lost
    (answered since the cut), every attempt of the stop's is tried, none with a clear.
    Unfixed, the link cleared the port on the Stop's thread after the failed write: a second
    drain beside the drop's, the Stop held for it."""
    rig = open_rig(load_profile())
    try:
        line = cut_stage_reply(rig, StopNotTakenAmidDrain)
        link = rig.stage.link  # type: ignore[attr-defined]
        with pytest.raises(StillDropping):
            rig.stage.position()  # the window's poll: the drop goes aside
        link.lost = lost  # the stop's attempts: one on a lost link, all on another
        thread, done = _on_the_rigs_thread([rig.stage.stop])
        try:
            assert line.stop_sent.wait(HANG_GUARD_S), "the stop waited for the drop"
            thread.join(HANG_GUARD_S)
            assert not thread.is_alive(), "the Stop waited for a drain"
            drop = link._dropping
            assert drop is not None and drop.is_alive()  # the drain is still held
        finally:
            line.release.set()
            thread.join(HANG_GUARD_S)
        [stop] = done
        assert isinstance(stop, InstrumentLost) and "not taken" in str(stop), done
        drop.join(HANG_GUARD_S)
        assert not drop.is_alive()
        assert line.cleared_on == [drop.name], line.cleared_on
        stops = [amid for message, amid in line.sent if message == STOP_ALL]
        assert stops == [True] * (1 if lost else link.retries + 1) + [False], line.sent
    finally:
        rig.close()
