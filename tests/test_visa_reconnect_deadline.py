"""A raw socket's reconnect before an exchange (the one before ended in a failed link) is
made within the exchange's one timeout, as `safe_bound` counts it: the command and its
reply are left what the reconnect did not take. On a fake clock that the fake resource's
calls advance; nothing sleeps."""

from __future__ import annotations

import contextlib
import socket
import threading
import types

import pytest
import pyvisa
from lan_instruments import HANG_GUARD_S, bounded
from pyvisa import constants

from drivers import transports
from drivers.transports import VisaTransport
from smm_daq.errors import InstrumentLost, InstrumentTimeout

TIMEOUT_S = 1.0
RECONNECT_S = 0.6 * TIMEOUT_S  # a connect answered late, within its open_timeout


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


class SilentSocket:
    """A raw-socket resource (as VisaTransport sees one without pyvisa-py's socket under it)
    that takes commands and never answers: a read waits out its timeout; `failing`, a read
    fails as a link gone does."""

    interface_type = constants.InterfaceType.tcpip
    visalib = None
    session = 0
    read_termination = "\n"
    write_termination = "\n"
    encoding = "latin-1"

    def __init__(self, clock: FakeClock, *, failing: bool = False) -> None:
        self.clock = clock
        self.failing = failing
        self.timeout: float = TIMEOUT_S * 1000.0

    def write(self, message: str) -> None:
        pass

    def read(self) -> str:
        if self.failing:
            raise pyvisa.VisaIOError(constants.StatusCode.error_connection_lost)
        self.clock.now += self.timeout / 1000.0
        raise pyvisa.VisaIOError(constants.StatusCode.error_timeout)

    def flush(self, mask: object) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.mark.parametrize("call", ["query", "write"])
def test_a_reconnect_before_an_exchange_is_made_within_its_timeout(
        monkeypatch: pytest.MonkeyPatch, call: str) -> None:
    clock = FakeClock()
    monkeypatch.setattr(transports, "time", types.SimpleNamespace(monotonic=clock.monotonic))

    def reconnect() -> SilentSocket:
        clock.now += RECONNECT_S
        return SilentSocket(clock)

    sent_by: list[float] = []

    def send_within(sock: object, data: bytes, deadline: float) -> None:
        sent_by.append(deadline)  # the instrument takes no more: the send waits it out
        clock.now = max(clock.now, deadline)
        raise TimeoutError("the peer takes no more")

    transport = VisaTransport(SilentSocket(clock, failing=True), name="supply",
                              reopen=reconnect)
    with pytest.raises(InstrumentLost):
        transport.query("CURR?")
    start = clock.now
    if call == "query":
        with pytest.raises(InstrumentTimeout, match="no reply"):
            transport.query("CURR?")
    else:
        monkeypatch.setattr(transports, "_raw_socket", lambda resource: object())
        monkeypatch.setattr(transports, "_send_within", send_within)
        with pytest.raises(InstrumentTimeout, match="could not send"):
            transport.write("OUTP OFF")
        assert sent_by == [pytest.approx(start + TIMEOUT_S)]
    assert clock.now - start <= TIMEOUT_S + 1e-9


class Instr(SilentSocket):
    """A VXI-11 or HiSLIP resource (`TCPIP::host::INSTR`: no raw socket, reopened only
    after a failure), its link failed: a write fails as a link gone does."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock, failing=True)
        self.closed = threading.Event()

    def write(self, message: str) -> None:
        raise pyvisa.VisaIOError(constants.StatusCode.error_connection_lost)

    def close(self) -> None:
        self.closed.set()


def test_a_lan_instruments_reopen_that_is_not_answered_ends_at_the_exchanges_deadline() -> None:
    """pyvisa-py's VXI-11 and HiSLIP opening waits 5 s and more for an instrument that does
    not answer (create_link, Initialize), whatever the link's timeout: the reopen before an
    exchange is given up at the exchange's deadline, `InstrumentLost`, and what it opens
    later is closed. Unfixed, the exchange waited for the opening however long it took
    (here until the hang guard)."""
    answer = threading.Event()
    late = Instr(FakeClock())

    def reopen() -> Instr:
        answer.wait(HANG_GUARD_S)
        return late

    transport = VisaTransport(Instr(FakeClock()), name="supply", reopen_failed=reopen)
    transport.timeout = 0.05
    with pytest.raises(InstrumentLost, match="link failed"):
        transport.write("CURR 1")
    with pytest.raises(InstrumentLost, match=r"could not be reopened within 0\.05 s"):
        bounded(lambda: transport.write("OUTP OFF"))
    answer.set()
    assert late.closed.wait(HANG_GUARD_S)  # the opening that came late is not left open
    assert transport.resource is not late


class HungVxi11(Instr):
    """A pyvisa-py VXI-11 session whose instrument hung: its close asks the instrument to
    destroy the link and waits for the answer on the connection (`sock`), which never
    comes while that connection stays up."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.sock, self.peer = socket.socketpair()
        self.session = 1
        interface = types.SimpleNamespace(sock=self.sock)
        self.visalib = types.SimpleNamespace(sessions={1: types.SimpleNamespace(
            interface=interface)})

    def close(self) -> None:
        with contextlib.suppress(OSError):  # the connection shut down: no answer to wait for
            self.sock.settimeout(2 * HANG_GUARD_S)
            self.sock.recv(1)
        self.closed.set()


def test_a_reconnect_drops_a_hung_vxi11_link_without_waiting_for_it() -> None:
    """The link the reconnect drops is shut down before it is closed: pyvisa-py's VXI-11
    close asks a hung instrument to destroy it and waits 5 s for an answer, whatever the
    link's timeout. Unfixed, the exchange waited for that close (here until the hang
    guard)."""
    clock = FakeClock()
    hung = HungVxi11(clock)
    transport = VisaTransport(hung, name="supply", reopen_failed=lambda: SilentSocket(clock))
    with pytest.raises(InstrumentLost, match="link failed"):
        transport.write("CURR 1")
    bounded(lambda: transport.write("OUTP OFF"))  # on the new connection
    assert hung.closed.is_set()
    assert hung.peer.recv(1) == b""  # the old connection was shut down
    hung.peer.close()


def test_closing_a_failed_vxi11_link_does_not_wait_for_the_hung_instrument() -> None:
    """A link that failed is shut down before it is closed, as a reconnect drops it: closing
    the program after the rig was made safe waits no 5 s for each hung VXI-11 instrument's
    answer to destroy_link. Unfixed, the close waited (here until the hang guard)."""
    hung = HungVxi11(FakeClock())
    transport = VisaTransport(hung, name="supply")
    with pytest.raises(InstrumentLost, match="link failed"):
        transport.write("CURR 1")
    bounded(transport.close)
    assert hung.peer.recv(1) == b""
    hung.peer.close()
