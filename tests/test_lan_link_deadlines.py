"""A LAN link's reads, device clears and opening end within the link's timeout, over loopback
TCP to the minimal instruments of `lan_instruments` and to a listening socket standing for a
serial-over-LAN adapter (`ASRLsocket://` through pyvisa-py, `serial:socket://` through
pyserial).

pyvisa-py waits past the timeout there: a VXI-11 read or clear of an instrument that does not
answer a second more, the opening of a VXI-11 or HiSLIP instrument that accepts the
connection and does not answer it 5 s and more, pyserial's socket:// connect 5 s (its host
name's lookup as long as the name server takes) and its close 0.3 s. Each call runs in a
helper thread with a hang guard (`bounded`); the deadline a read or clear is cut at is the
one the transport arms (`Cut`), read here, never the wall time the call took.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from lan_instruments import HOLD, SPLIT, HislipInstrument, Vxi11Instrument, bounded
from serial.urlhandler import protocol_socket

from drivers import deadline_cut, transports
from drivers.transports import open_transport
from smm_daq.errors import InstrumentLost, InstrumentTimeout
from smm_daq.instruments.profile import LinkSettings

TIMEOUT_S = 0.3
KINDS = {"VXI-11": Vxi11Instrument, "HiSLIP": HislipInstrument}
LOOKUP_GUARD_S = 10.0  # the longest the stalled name server below is waited for


@pytest.fixture(params=list(KINDS))
def instrument(request: pytest.FixtureRequest) -> Iterator[Vxi11Instrument | HislipInstrument]:
    served = KINDS[request.param]().start()
    yield served
    served.close()


def opened(resource: str, timeout: float = TIMEOUT_S):
    return open_transport(resource, LinkSettings("x", resource, timeout, 2),
                          visa_library="@py")


class ArmedCuts(list):
    """The cuts the transport arms: (when armed, the deadline, the cut), time.monotonic()."""

    def spy(self, monkeypatch: pytest.MonkeyPatch) -> ArmedCuts:
        armed = self

        class Spied(deadline_cut.Cut):
            def __init__(self, resource, deadline: float) -> None:  # type: ignore[no-untyped-def]
                super().__init__(resource, deadline)
                armed.append((time.monotonic(), deadline, self))

        monkeypatch.setattr(transports, "Cut", Spied)
        return self


def test_a_read_from_an_instrument_that_does_not_answer_is_cut_at_its_timeout(
        instrument, monkeypatch: pytest.MonkeyPatch) -> None:
    """The instrument hangs (it read `HOLD` and takes nothing more): the read is cut at the
    link's timeout, said a lost reply, and the next exchange has a new connection. Unfixed,
    pyvisa-py's VXI-11 read waited the timeout and a second more (its RPC's own timeout),
    and no read was bounded by anything but pyvisa-py's timeouts."""
    t = opened(instrument.resource)
    t.write(HOLD)
    armed = ArmedCuts().spy(monkeypatch)
    with pytest.raises(InstrumentTimeout, match=r"no reply within 0\.3 s"):
        bounded(t.read)
    assert len(armed) == 1
    at, deadline, cut = armed[0]
    assert deadline <= at + TIMEOUT_S
    if isinstance(instrument, Vxi11Instrument):  # HiSLIP's socket timeout, shorter, ends it
        assert cut.fired
    instrument.release()
    assert bounded(lambda: t.query("b?")) == "echo b?"
    t.close()


def test_a_reply_cut_short_by_the_timeout_is_never_read_as_the_next_reply(instrument) -> None:
    """Half a reply comes, then nothing within the timeout: a lost reply, and the connection
    is dropped with it. Unfixed, over HiSLIP the rest of it, come late, was read as the start
    of the next reply (pyvisa-py failed the next query: "protocol synchronization error");
    over VXI-11 the read waited a second past the timeout, said a failed link."""
    t = opened(instrument.resource)
    with pytest.raises(InstrumentTimeout, match=r"no reply within 0\.3 s"):
        bounded(lambda: t.query(SPLIT))
    instrument.release()  # the rest of the reply is sent
    assert bounded(lambda: t.query("b?")) == "echo b?"
    t.close()


def test_a_device_clear_an_instrument_does_not_answer_is_cut_at_its_timeout(
        instrument, monkeypatch: pytest.MonkeyPatch) -> None:
    """The instrument hangs: its device clear is cut at the link's timeout, said unanswered
    (a lost reply's, which the link retries on a new connection). Unfixed, pyvisa-py's
    VXI-11 clear waited a second past the timeout, its HiSLIP clear a timeout on each of
    its two channels and 0.1 s between them, and either was said a failed link."""
    t = opened(instrument.resource)
    t.write(HOLD)
    armed = ArmedCuts().spy(monkeypatch)
    with pytest.raises(InstrumentTimeout, match=r"no answer to the device clear within 0\.3 s"):
        bounded(t.clear)
    assert len(armed) == 1
    at, deadline, _ = armed[0]
    assert deadline <= at + TIMEOUT_S
    instrument.release()
    t.close()


def test_the_first_open_of_an_instrument_that_does_not_answer_ends_at_the_timeout(
        instrument) -> None:
    """An instrument that accepts the connection and never answers its opening (VXI-11's
    create_link, HiSLIP's Initialize): the open fails within the link's timeout, saying so.
    Unfixed, it failed after pyvisa-py's own 5 s (a connect to the rig waited that long
    for each such instrument, whatever its profile's timeout)."""
    instrument.stall()
    with pytest.raises(InstrumentLost, match=r"not opened within 0\.3 s") as failed:
        bounded(lambda: opened(instrument.resource))
    assert f"{instrument.port}" in str(failed.value)  # the address, named


@pytest.fixture
def stalled_name_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`adapter.lab` is looked up in a name server that does not answer (until the test's
    end, or the guard); addresses are read as such, and a name asked to be read as an
    address (AI_NUMERICHOST) is refused at once, as the system resolver does."""
    real = socket.getaddrinfo
    answer = threading.Event()

    def getaddrinfo(host, port, family=0, kind=0, proto=0, flags=0):  # type: ignore[no-untyped-def]
        if host == "adapter.lab" and not flags & socket.AI_NUMERICHOST:
            answer.wait(LOOKUP_GUARD_S)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real(host, port, family, kind, proto, flags)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield
    answer.set()


@pytest.mark.parametrize(("address", "said"), [
    ("serial:socket://adapter.lab:5025", r"could not look up 'adapter\.lab' within 0\.3 s"),
    ("ASRLsocket://adapter.lab:5025::INSTR", r"not opened within 0\.3 s"),
])
@pytest.mark.usefixtures("stalled_name_server")
def test_a_serial_over_lan_adapters_name_not_looked_up_in_time_fails_the_open(
        address: str, said: str) -> None:
    """The adapter's host name is looked up within the link's timeout (through pyvisa-py,
    pyserial's lookup is part of an opening given up at the timeout). Unfixed, the open
    waited as long as the system resolver did (here the guard's 10 s)."""
    with pytest.raises(InstrumentLost, match=said):
        bounded(lambda: opened(address))


def test_a_visa_serial_over_lan_port_reopens_within_the_exchange_and_closes_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`ASRLsocket://` through pyvisa-py: a connection the adapter dropped is opened again
    within the exchange's timeout (pyserial's connect waits 5 s), and neither the reopen nor
    the close pauses (pyserial sleeps 0.3 s after closing a socket:// port). Unfixed, the
    reopen was not bounded and each close paused."""
    pauses: list[float] = []
    monkeypatch.setattr(protocol_socket, "time", type("T", (), {"sleep": pauses.append}))
    within: list[float] = []
    real = transports.opened_within

    def spied(open_resource, seconds: float):  # type: ignore[no-untyped-def]
        within.append(seconds)
        return real(open_resource, seconds)

    monkeypatch.setattr(transports, "opened_within", spied)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        t = opened(f"ASRLsocket://127.0.0.1:{port}::INSTR")
        try:
            peer, _ = listener.accept()
            peer.close()  # the adapter dropped the connection
            with pytest.raises(InstrumentLost):
                bounded(t.read)
            bounded(lambda: t.write("OUTP OFF"))  # reopened: a new connection takes it
            again, _ = listener.accept()
            with again:
                assert again.recv(64) == b"OUTP OFF\n"
        finally:
            t.close()
    assert len(within) == 2  # the open, then the reopen
    assert 0 < within[1] <= TIMEOUT_S
    assert pauses == []


def test_a_visa_rfc2217_port_is_refused_saying_what_to_give_instead() -> None:
    """`ASRLrfc2217://` through pyvisa-py is pyserial's RFC 2217 client, which cannot be
    opened with the write timeout pyvisa-py sets (after seconds of negotiation): refused
    before any connect, naming the address that works. Unfixed, it connected, and failed
    only once the opening was given up."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with pytest.raises(InstrumentLost, match=r"rfc2217.*ASRLsocket://HOST:PORT::INSTR"):
            bounded(lambda: opened(f"ASRLrfc2217://127.0.0.1:{port}::INSTR"))
        listener.settimeout(0)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing connected


def test_a_device_clear_answered_just_as_its_connection_is_cut_leaves_the_link_usable(
        instrument, monkeypatch: pytest.MonkeyPatch) -> None:
    """The instrument answers the device clear, and the connection is cut at the deadline
    before the clear's block has ended (the answer came in the last moment): the clear is
    done, the connection opened again before the next use. Unfixed, the clear then asked the
    closed session its interface type, and pyvisa's InvalidSession escaped the transport (no
    instrument error: the link could not take it for a lost reply)."""

    class CutAsItReturns(deadline_cut.Cut):
        def __init__(self, resource, deadline: float) -> None:  # type: ignore[no-untyped-def]
            super().__init__(resource, deadline)
            self.made = threading.Event()

        def cut(self) -> None:
            super().cut()
            self.made.set()

        def __exit__(self, kind, exc, tb) -> None:  # type: ignore[no-untyped-def]
            if kind is None:  # the call came back: the cut lands before its end is seen
                assert self.made.wait(LOOKUP_GUARD_S), "the cut never came"
            super().__exit__(kind, exc, tb)

    t = opened(instrument.resource)
    monkeypatch.setattr(transports, "Cut", CutAsItReturns)
    bounded(t.clear)
    monkeypatch.undo()
    assert bounded(lambda: t.query("b?")) == "echo b?"
    t.close()
