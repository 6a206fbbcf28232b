"""An instrument that closed its connection (power-cycled, crashed, its server killed) is
told at once over a VISA raw socket, over loopback TCP: pyvisa-py's own read waits out the
whole timeout on such a socket (its `recv` keeps returning b""). The link tries the exchange
again on a new connection, as it does a lost reply, so one close does not give the instrument
up. The tries are counted (the link's failures, the budget's lost replies), not
timed; each call runs with a hang guard (`bounded`).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest
from test_stalled_link import bounded

from drivers.link import Link
from drivers.transports import open_transport
from simulators.tcp_server import HOST
from smm_daq.clock import VirtualClock
from smm_daq.errors import InstrumentLost, ReplyUnknown
from smm_daq.instruments import loss_budget
from smm_daq.instruments.profile import LinkSettings

TIMEOUT_S = 0.3
CLOSED = "the instrument closed the connection"


class Closing:
    """A loopback TCP server whose connections each answer `replies` queries ("echo <query>")
    and then close; `stop` closes the listener too."""

    def __init__(self, replies: int) -> None:
        self.replies = replies
        self.accepted = 0
        self._listener = socket.create_server((HOST, 0))
        self.resource = f"TCPIP0::{HOST}::{self._listener.getsockname()[1]}::SOCKET"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # the listener closed by `stop`
                return
            self.accepted += 1
            with connection:
                stream = connection.makefile("rb")
                for _ in range(self.replies):
                    line = stream.readline()
                    if not line:
                        break
                    connection.sendall(b"echo " + line)
                stream.close()

    def stop(self) -> None:
        with contextlib.suppress(OSError):  # wakes the accept (a close alone does not)
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(5.0)


@pytest.fixture
def closing(request: pytest.FixtureRequest) -> Iterator[Closing]:
    server = Closing(getattr(request, "param", 0))
    yield server
    server.stop()


def opened(resource: str):
    return open_transport(resource, LinkSettings("x", resource, TIMEOUT_S, 2), visa_library="@py")


def test_a_read_on_a_connection_the_instrument_closed_is_lost_at_once(closing) -> None:
    """Each try told at once and tried again on a new connection, as a lost reply is (counted
    and charged: a reconnect costs time too); every connection closed, it is lost."""
    link = Link(opened(closing.resource), name="supply 1", retries=2, budget=loss_budget.SUPPLY)
    with loss_budget.making_safe(10, clock=VirtualClock(), deadline_s=100.0) as budget:
        with pytest.raises(InstrumentLost, match=CLOSED):
            bounded(lambda: link.query("MEAS:CURR?", float))
        assert link.failures == 3
        assert budget.lost == {"supply 1": 3}
    link.close()


@pytest.mark.parametrize("closing", [1], indirect=True)
def test_a_query_whose_connection_the_instrument_closed_once_is_answered_on_a_new_one(
    closing,
) -> None:
    """A supply whose server restarted (a LAN-serial adapter that dropped the link) mid-ramp:
    the exchange is tried again on a new connection, so the ramp-down goes on."""
    link = Link(opened(closing.resource), name="supply 1", retries=2, budget=loss_budget.SUPPLY)
    assert bounded(lambda: link.query("a?", str)) == "echo a?"
    assert bounded(lambda: link.query("b?", str)) == "echo b?"  # closed, then answered anew
    assert closing.accepted == 2
    assert not link.lost
    link.close()


@pytest.mark.parametrize("closing", [1], indirect=True)
def test_a_destructive_query_whose_connection_closed_is_a_reply_unknown(closing) -> None:
    """Reading it clears what it reports: not asked again, its reply unknown (which a
    ramp-down goes on past), not the instrument given up."""
    link = Link(opened(closing.resource), name="supply 1", retries=2)
    assert bounded(lambda: link.query("a?", str)) == "echo a?"
    with pytest.raises(ReplyUnknown, match=CLOSED):
        bounded(lambda: link.query("SYST:ERR?", str, destructive=True))
    assert link.failures == 1
    link.close()


@pytest.mark.parametrize("closing", [1], indirect=True)
def test_a_reply_before_the_close_is_read_and_the_next_use_reconnects(closing) -> None:
    t = opened(closing.resource)
    assert bounded(lambda: t.query("a?")) == "echo a?"
    with pytest.raises(InstrumentLost, match=CLOSED):
        bounded(lambda: t.query("b?"))
    assert bounded(lambda: t.query("c?")) == "echo c?"  # a new connection
    assert closing.accepted == 2
    t.close()


def test_an_instrument_gone_for_good_is_lost_on_reopening_too(closing) -> None:
    t = opened(closing.resource)
    with pytest.raises(InstrumentLost, match=CLOSED):
        bounded(lambda: t.query("a?"))
    closing.stop()
    with pytest.raises(InstrumentLost, match=r"refused|could not be reopened"):
        bounded(lambda: t.query("a?"))
    t.close()


def test_writes_to_a_connection_the_instrument_closed_say_so(closing) -> None:
    """Commands with no reply: the first goes into the closed connection unnoticed, and the
    peer's reset to it makes a later one fail, saying the instrument closed the connection
    (not only "Broken pipe"); the next use reconnects."""
    t = opened(closing.resource)

    def write_until_refused() -> None:
        for _ in range(100_000):  # the reset comes within the first few on loopback
            t.write("OUTP OFF")

    with pytest.raises(InstrumentLost, match=CLOSED):
        bounded(write_until_refused)
    t.write("OUTP OFF")  # on a new connection
    t.close()
