"""A link closed while a port or connection that failed is being opened again (by the drain
of a reply cut short, on a thread of its own that holds no link lock: `Link._drop_rest`, so
the close does not wait for it) leaves nothing open: what that reopen opened after the close
is closed, and the drain ends in `InstrumentLost` ("link closed"). A serial-over-LAN adapter
(a PI controller's) takes few connections, and a local port left open stays held (on
Windows no Reconnect can open it again). The reopen is held by events; nothing sleeps."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import serial
from pyvisa import constants

from drivers.transports import SerialTransport, VisaTransport
from smm_daq.errors import InstrumentLost

HANG_GUARD_S = 10.0  # real seconds; only a hang reaches it
TIMEOUT_S = 1.0  # the link's: no read here waits for it


def _drain_during(transport: Any, opening: threading.Event, go: threading.Event
                  ) -> list[BaseException]:
    """The transport's `clear` (a drain aside) on a thread of its own, held in its reopen
    until `go`, the transport closed meanwhile; what the drain raised."""
    failed: list[BaseException] = []

    def drain() -> None:
        try:
            transport.clear()
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=drain, name="drain", daemon=True)
    thread.start()
    assert opening.wait(HANG_GUARD_S)
    transport.close()  # the window's close: it waits for no drain
    go.set()
    thread.join(HANG_GUARD_S)
    assert not thread.is_alive()
    return failed


def test_a_serial_port_reopened_by_a_drain_as_the_link_closes_is_closed() -> None:
    """The port failed; the drain reopens it and the link is closed meanwhile: the port it
    opened is closed, and the drain says the link is closed. Unfixed, the new port stayed
    open after the close, and the drain went on reading it."""
    ports: list[serial.SerialBase] = []
    opening, go = threading.Event(), threading.Event()

    def reopen(within: float) -> serial.SerialBase:
        opening.set()
        assert go.wait(HANG_GUARD_S)
        ports.append(serial.serial_for_url("loop://", timeout=TIMEOUT_S,
                                           write_timeout=TIMEOUT_S))
        return ports[-1]

    first = serial.serial_for_url("loop://", timeout=TIMEOUT_S, write_timeout=TIMEOUT_S)
    transport = SerialTransport(first, name="stage", reopen=reopen)
    first.close()  # the adapter gone: the next write fails, and the port is reopened after
    with pytest.raises(InstrumentLost):
        transport.write("POS?")
    failed = _drain_during(transport, opening, go)
    assert len(ports) == 1
    assert not ports[0].is_open, "the port opened after the close was left open"
    assert len(failed) == 1 and isinstance(failed[0], InstrumentLost), failed
    assert "link closed" in str(failed[0])


class FakeResource:
    """A VISA serial session (ASRL) that notes whether it is closed."""

    interface_type = constants.InterfaceType.asrl
    baud_rate = 9600

    def __init__(self) -> None:
        self.timeout = TIMEOUT_S * 1000.0
        self.read_termination = "\n"
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_a_visa_session_reopened_by_a_drain_as_the_link_closes_is_closed() -> None:
    """The same on a serial line through VISA: the session the drain opened after the close
    is closed. Unfixed, it stayed open."""
    sessions: list[FakeResource] = []
    opening, go = threading.Event(), threading.Event()

    def connect() -> FakeResource:
        opening.set()
        assert go.wait(HANG_GUARD_S)
        sessions.append(FakeResource())
        return sessions[-1]

    transport = VisaTransport(FakeResource(), name="ASRL1::INSTR",  # type: ignore[arg-type]
                              reopen_failed=connect)  # type: ignore[arg-type]
    transport._broken = True  # the port failed: opened again before its next use
    failed = _drain_during(transport, opening, go)
    assert len(sessions) == 1
    assert sessions[0].closed, "the session opened after the close was left open"
    assert len(failed) == 1 and isinstance(failed[0], InstrumentLost), failed
    assert "link closed" in str(failed[0])
