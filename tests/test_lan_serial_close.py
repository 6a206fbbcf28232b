"""A serial-over-LAN port (`serial:socket://`) closed just after a write, with input still
unread (a stage's stop sent once more as its link closes, amid the rest of a reply still
coming), lets the write reach the peer before the connection ends: closed with input
unread, a connection is reset, which drops what was written and not yet sent. On loopback
TCP; the peer reads when the port's close begins (events, no sleeps)."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest
import serial

from drivers.pi_gcs import STOP_ALL
from drivers.transports import SerialTransport, VisaTransport, _serial_port, open_transport
from smm_daq.instruments.profile import LinkSettings

HOST = "127.0.0.1"
GUARD_S = 10.0  # real seconds; the peer ends at once, only a hang reaches it
REST = b"0x00000001=parameter 1 \n" * 40  # a reply's rest, left unread by the port


class NotedSocket:
    """A socket whose shutdown for writing, and whose close, set `closing`: the peer reads
    from then on."""

    def __init__(self, sock: socket.socket, closing: threading.Event) -> None:
        self._sock = sock
        self._closing = closing

    def shutdown(self, how: int) -> None:
        self._sock.shutdown(how)
        if how == socket.SHUT_WR:
            self._closing.set()

    def close(self) -> None:
        self._sock.close()
        self._closing.set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _peer(conn: socket.socket, closing: threading.Event, got: list[object]) -> None:
    """Once the port's close began, read everything until the end (b"" noted) or a reset
    (the error noted), then close."""
    try:
        if not closing.wait(GUARD_S):
            got.append("the port's close never began")
            return
        while True:
            data = conn.recv(65536)
            got.append(data)
            if not data:
                return
    except OSError as exc:
        got.append(exc)
    finally:
        conn.close()


def _port(transport: SerialTransport | VisaTransport) -> serial.SerialBase:
    """The pyserial socket:// port under `transport`."""
    if isinstance(transport, SerialTransport):
        return transport.port
    port = _serial_port(transport.resource)
    assert port is not None
    return port


@pytest.mark.parametrize("kind", ["serial", "visa-asrl"])
def test_a_stop_written_just_before_the_close_reaches_a_peer_not_reading_yet(kind: str) -> None:
    """Through pyserial (serial:socket://) and pyvisa-py's ASRL (ASRLsocket://): the
    adapter has not read for a while (its window full, what was written before held in the
    port's send buffer) and a reply's rest waits unread; the stop is written, then the port
    closed. The stop reaches the adapter once it reads, and the connection ends without a
    reset. Unfixed, the close reset the connection (input unread), dropping the stop
    unsent."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        server.bind((HOST, 0))
        server.listen(1)
        port = server.getsockname()[1]
        address = (f"serial:socket://{HOST}:{port}" if kind == "serial"
                   else f"ASRLsocket://{HOST}:{port}::INSTR")
        transport = open_transport(address, LinkSettings("stage", address, GUARD_S, 0, 115200),
                                   visa_library="@py")
        assert isinstance(transport, SerialTransport | VisaTransport)
        conn, _ = server.accept()
    conn.sendall(REST)
    lan = _port(transport)
    raw = lan._socket  # type: ignore[attr-defined]
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    held = 0
    while True:  # the adapter's window filled, the port's send buffer too
        try:
            held += raw.send(b"F" * 4096)
        except BlockingIOError:
            break
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)  # room for the stop
    closing = threading.Event()
    lan._socket = NotedSocket(raw, closing)  # type: ignore[attr-defined]
    got: list[object] = []
    peer = threading.Thread(target=_peer, args=(conn, closing, got), daemon=True)
    peer.start()
    transport.write(STOP_ALL)
    transport.close()
    peer.join(GUARD_S)
    assert not peer.is_alive()
    data = b"".join(x for x in got if isinstance(x, bytes))
    assert got[-1] == b"", got[-1]  # ended, not reset
    assert data == b"F" * held + (STOP_ALL + "\n").encode(), (len(data), held, data[-8:])
