"""The rest of a stage reply cut short on a link that does not drain (a VISA raw socket, whose
`clear` opens a new connection; GPIB, whose device clear takes a timeout at most) is dropped
by the exchange that meets it, on its own thread, not aside: a drop aside reconnecting while
a Stop's write reconnects the socket that failed (`VisaTransport._check_open`) would open two
connections (a PI controller accepts few) or send the stop on one being closed. On the
virtual clock; nothing sleeps."""

from __future__ import annotations

import threading

from test_abort_mid_recording import CutReply, hpa_cut_at_the_deadline

from drivers.link import parse_int
from drivers.pi_gcs import MOTION_STATUS, STOP_ALL, _parse_mask
from smm_daq.clock import VirtualClock
from smm_daq.errors import InstrumentTimeout


class CutOnSocket(CutReply):
    """`CutReply` on a raw socket: no baud rate, its `clear` a new connection (noted with the
    thread that made it)."""

    baud_rate = None

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(clock)
        self.cleared_on: list[str] = []

    def clear(self) -> None:
        self.cleared_on.append(threading.current_thread().name)
        super().clear()


def test_a_reply_cut_on_a_socket_is_dropped_by_the_next_exchange_itself() -> None:
    """HPA? cut at the make-safe deadline on a raw socket: the next exchange (outside the
    path: the window's poll) makes the new connection itself, then reads its own reply; no
    drop runs on a thread of its own. Unfixed, the drop went aside (its reconnect beside
    whatever the window sent next) and the exchange was refused (`StillDropping`)."""
    clock = VirtualClock()
    transport = CutOnSocket(clock)
    link = hpa_cut_at_the_deadline(transport, clock)
    assert transport.queue  # lines left unread
    assert link.query("ERR?", lambda r: parse_int(r, what="error code"), destructive=True) == 0
    assert transport.cleared_on == [threading.current_thread().name]
    assert link._dropping is None


class ClearCutShortOnce(CutOnSocket):
    """`CutOnSocket` whose first clear is cut short (`InstrumentTimeout`: a VXI-11 or HiSLIP
    device clear that timed out), its later clears end well; it answers `#5` (nothing
    moves) and notes each write and each clear, in order."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(clock)
        self.noted: list[str] = []

    def write(self, message: str) -> None:
        self.noted.append(message)
        if message == MOTION_STATUS:
            self.queue.append("0")
        super().write(message)

    def clear(self) -> None:
        if "<clear cut short>" not in self.noted:
            self.noted.append("<clear cut short>")
            raise InstrumentTimeout("device clear not done within 3 s", instrument="stage")
        self.noted.append("<clear>")
        super().clear()


def test_a_stop_amid_a_cut_reply_is_sent_again_after_a_clear_cut_short_and_retried() -> None:
    """HPA? cut at the make-safe deadline on a link that does not drain; the stop goes amid
    its rest; the next exchange (a query, retried) meets the rest, and its clear is cut
    short: the attempt after it clears again and sends the stop once more before its query,
    and the exchange after that sends it no more. Unfixed, the rest was taken as dropped
    before the clear ended: the retried attempt neither cleared nor sent the stop again,
    and the stop stayed pending, to be sent at some later drop."""
    clock = VirtualClock()
    transport = ClearCutShortOnce(clock)
    link = hpa_cut_at_the_deadline(transport, clock)
    link.write(STOP_ALL)
    assert link.query(MOTION_STATUS, _parse_mask) == 0
    assert transport.noted.count(STOP_ALL) == 2, transport.noted
    assert transport.noted[-3:] == ["<clear>", STOP_ALL, MOTION_STATUS], transport.noted
    assert link.query(MOTION_STATUS, _parse_mask) == 0
    assert transport.noted.count(STOP_ALL) == 2, transport.noted  # not again
