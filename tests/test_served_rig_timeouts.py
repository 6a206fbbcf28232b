"""The test links' timeouts (`served_rig.TimeoutOnlyWhereFaked`): a read's own timeout, short
where the proxy made up the reply, is not left for the reopen that follows it; a reply the
proxy sent on a connection from a port used again is not waited for as if still to come."""

from __future__ import annotations

import socket
from types import SimpleNamespace

from fault_proxy import FaultProxy, Tally
from served_rig import FAKED_TIMEOUT_S, TimeoutOnlyWhereFaked

from smm_daq.clock import VirtualClock


class _Transport:
    timeout = 5.0

    def read(self) -> str:
        return "1=5"


class _Proxy:
    pass


def test_a_reopen_after_a_made_up_reply_waits_the_links_own_timeout() -> None:
    """After a reply the proxy made up (read within FAKED_TIMEOUT_S), the driver's retry
    reconnects on the transport's timeout: it was left at 0.1 s, and on a loaded machine the
    reconnect failed ("could not be reopened within 0.1 s"), not the reply."""
    inner = _Transport()
    link = TimeoutOnlyWhereFaked(inner, _Proxy(), VirtualClock())  # type: ignore[arg-type]
    assert link.read() == "1=5"  # no connection known: read within FAKED_TIMEOUT_S
    assert FAKED_TIMEOUT_S < 5.0
    assert inner.timeout == 5.0


class _Socket:
    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", 40000)


class _Lan(_Transport):
    """A raw socket's transport, connected from port 40000 (as `client_port` finds it)."""

    def __init__(self) -> None:
        self.resource = SimpleNamespace(session=1, visalib=SimpleNamespace(
            sessions={1: SimpleNamespace(interface=_Socket())}))

    def write(self, message: str) -> None:
        pass


class _PortUsedAgain:
    """A proxy whose client's port 40000 was an earlier connection's, which it answered
    three times and closed; this connection is accepted only once the command went, and
    the proxy answers it then."""

    def __init__(self) -> None:
        self.now = Tally(0, 0, 3, 1, connection=1)  # the earlier connection's

    def tally(self, port: int) -> Tally:
        return self.now

    def await_change(self, port: int, since: Tally, seconds: float) -> Tally:
        raise AssertionError(f"waited, though the proxy answered on this connection: {self.now}")


def test_a_reply_on_a_port_used_again_is_not_waited_for_as_if_still_to_come() -> None:
    """The mark taken as the command went, before the proxy accepted the connection, was the
    earlier connection's tally on the same port (answered 3 times): the proxy's one answer on
    this one was not news against it, and every line of a long reply waited the hang guard
    (REPLY_GUARD_S, 120 s each: a CI run's 300 s timeout on an overlong DRR? reply)."""
    proxy = _PortUsedAgain()
    link = TimeoutOnlyWhereFaked(_Lan(), proxy, VirtualClock())  # type: ignore[arg-type]
    link.write("DRR? 1")  # marked on the earlier connection's tally
    proxy.now = Tally(0, 0, 1, 0, connection=2)  # accepted, and answered once
    assert link.read() == "1=5"
    assert link.read() == "1=5"  # the reply's next line


def test_a_close_seen_after_its_port_was_used_again_is_not_the_new_connections() -> None:
    """The proxy sees an earlier connection's close (the client's, before it connected again
    from the same port) only after it accepted the new one: counted on the port's tally, it
    made the new connection look closed, and its reads time out though its replies come."""
    proxy = FaultProxy(("127.0.0.1", 9))  # never started: nothing connects upstream
    earlier, later = socket.socketpair()  # stand-ins for the two connections' client ends
    try:
        proxy._ports[earlier] = (40000, 1)
        proxy._ports[later] = (40000, 2)
        proxy._tallies[40000] = Tally(0, 0, 0, 0, connection=2)  # the later one, accepted
        proxy._count(earlier, closed=1)
        proxy._count(later, delivered=1)
        assert proxy.tally(40000) == Tally(1, 0, 0, 0, connection=2)
    finally:
        for end in (earlier, later, proxy._listener, proxy._wake_r, proxy._wake_w):
            end.close()
