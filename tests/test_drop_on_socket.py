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
from smm_daq.clock import VirtualClock


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
