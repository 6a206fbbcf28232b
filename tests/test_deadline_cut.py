"""The deadline cut's watchdog (`drivers.deadline_cut`) in a process forked from one that had
started it: the child's cuts fire too. Over a socket pair standing for a pyvisa-py LAN
session's connection: its peer sees the connection's end once it is cut."""

from __future__ import annotations

import os
import socket
import time
import types

from pyvisa import constants

from drivers.deadline_cut import Cut

GUARD_S = 10.0  # the longest a cut is waited for


class LanSession:
    """What `lan_instrument_sockets` reads of a pyvisa-py VXI-11 session: its socket."""

    interface_type = constants.InterfaceType.tcpip
    session = 1

    def __init__(self, sock: socket.socket) -> None:
        interface = types.SimpleNamespace(sock=sock)
        self.visalib = types.SimpleNamespace(sessions={1: types.SimpleNamespace(
            interface=interface)})

    def close(self) -> None:
        pass


def cut_seen(deadline: float) -> bool:
    """Whether a connection armed to be cut at `deadline` is cut (its peer sees its end)."""
    sock, peer = socket.socketpair()
    peer.settimeout(GUARD_S)
    try:
        with Cut(LanSession(sock), deadline):  # type: ignore[arg-type]
            return peer.recv(1) == b""
    except TimeoutError:  # the guard ran out
        return False
    finally:
        peer.close()


def test_a_process_forked_after_the_watchdog_started_cuts_at_its_deadlines() -> None:
    """Unfixed, the child took the parent's watchdog for started (a thread fork does not
    copy): its cuts never fired, and a write to a LAN instrument that stopped taking input
    waited without end."""
    now = time.monotonic()
    assert cut_seen(now)  # the watchdog's thread runs in this process
    child = os.fork()
    if child == 0:
        code = 1
        try:
            now = time.monotonic()
            code = 0 if cut_seen(now) else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
