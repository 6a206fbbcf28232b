"""A serial-over-LAN port (`serial:socket://`) closed just after a write (a stage's stop sent
once more as its link closes) waits for the adapter to end its side (its FIN, after the
port's own) only within what is left of that write's timeout: an adapter that never ends its
side holds the close no longer (`safe_bound.stage_close_stop_s` counts that write and
nothing more). Over loopback TCP to a peer that never closes; the port's clock and its
waits in `select` are virtual (a wait with nothing to read moves the clock on by the whole
wait), so nothing sleeps and no wall time is judged."""

from __future__ import annotations

import select as real_select
import socket
import threading
import types
from typing import Any

import pytest

from drivers import transports
from drivers.pi_gcs import STOP_ALL
from drivers.transports import SerialTransport, open_transport
from smm_daq.instruments.profile import LinkSettings

HOST = "127.0.0.1"
TIMEOUT_S = 5.0  # the link's timeout: its writes' too
GUARD_S = 10.0  # real seconds; only a hang reaches it
REST = b"0x00000001=parameter 1 \n" * 40  # a reply's rest, left unread by the port


class VirtualWaits:
    """`time` and `select` for `drivers.transports`: `monotonic` is `now`; a `select` finds
    what is readable now and, finding nothing, moves `now` on by its whole timeout (what a
    peer that sends nothing more makes it wait). A `select` with no timeout would wait for
    ever: refused."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def select(self, r: list[Any], w: list[Any], x: list[Any],
               timeout: float | None = None) -> tuple[list[Any], list[Any], list[Any]]:
        assert timeout is not None, "a wait without end"
        ready = real_select.select(r, w, x, 0)
        if not any(ready):
            self.waits.append(timeout)
            self.now += timeout
        return ready


def _peer_never_closing(conn: socket.socket, closed: threading.Event,
                        got: list[bytes]) -> None:
    """Sends a reply's rest, then once the port has closed reads what came (to its end),
    never closing its own side first."""
    conn.sendall(REST)
    assert closed.wait(GUARD_S)
    conn.settimeout(GUARD_S)
    while data := conn.recv(65536):
        got.append(data)
    got.append(b"")


def test_a_close_after_a_write_waits_no_longer_than_the_writes_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The stop is written, then the port closed: the adapter never ends its side, so the
    close waits for it until the write's timeout is spent (its deadline), not beyond, then
    ends the connection; the stop reached the adapter, then the port's end."""
    with socket.socket() as server:
        server.bind((HOST, 0))
        server.listen(1)
        port = server.getsockname()[1]
        address = f"serial:socket://{HOST}:{port}"
        transport = open_transport(address, LinkSettings("stage", address, TIMEOUT_S, 0,
                                                         115200))
        assert isinstance(transport, SerialTransport)
        conn, _ = server.accept()
    closed = threading.Event()
    got: list[bytes] = []
    peer = threading.Thread(target=_peer_never_closing, args=(conn, closed, got), daemon=True)
    peer.start()
    waits = VirtualWaits()
    monkeypatch.setattr(transports, "time", types.SimpleNamespace(
        monotonic=waits.monotonic, sleep=lambda _: None))
    monkeypatch.setattr(transports, "select", types.SimpleNamespace(select=waits.select))
    try:
        written_at = waits.now
        transport.write(STOP_ALL)
        closing = threading.Thread(target=transport.close, daemon=True)
        closing.start()
        closing.join(GUARD_S)
        assert not closing.is_alive(), "the close waited for the adapter's end"
        assert waits.now == written_at + TIMEOUT_S, waits.waits  # the write's deadline
    finally:
        closed.set()
        peer.join(GUARD_S)
        conn.close()
    assert b"".join(got) == (STOP_ALL + "\n").encode() and got[-1] == b"", got
