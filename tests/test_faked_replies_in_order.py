"""A reply the fault proxy makes itself goes out only once the served emulator acted on every
command passed on before it, as a real instrument answers a query only after acting on the
commands ahead of it. Sent at once, the faked reply to the `ERR?` after a `WGO` brought on a
stop, on a connection of its own, that an emulator slowed by a loaded machine acted on before
that `WGO`: the stage was left moving after a scan that failed safe."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from caught_up_clock import CaughtUpClock, HandledCounted, Ledger, counted_per_connection
from fault_proxy import HOST, FaultProxy

from simulators.emulator import Emulator
from simulators.tcp_server import EmulatorServer

GUARD_S = 60.0  # real seconds: a hang guard only
STOP_BYTE = 24


class Slowed(Emulator):
    """Acts on `MOV` only once `go` is set (an emulator thread a loaded machine delays); every
    act is logged in `log`, shared with the client."""

    immediate_bytes = frozenset({STOP_BYTE})

    def __init__(self, go: threading.Event, log: list[str]) -> None:
        self.go = go
        self.log = log

    def handle(self, message: str) -> str | None:
        if message.startswith("MOV"):
            assert self.go.wait(GUARD_S)
        self.log.append(message)
        return None

    def handle_byte(self, code: int) -> str | None:
        self.log.append(f"#{code}")
        return None


class Watched:
    """`ledger` as the proxy's upstream, setting `go` as the proxy starts waiting on it."""

    def __init__(self, ledger: Ledger, go: threading.Event) -> None:
        self.ledger = ledger
        self.go = go

    def opened(self, connection: int) -> None:
        self.ledger.opened(connection)

    def forwarded(self, connection: int, data: bytes) -> None:
        self.ledger.forwarded(connection, data)

    def await_acted(self, connection: int) -> None:
        self.go.set()
        self.ledger.await_acted(connection)


@pytest.fixture
def served() -> Iterator[tuple[FaultProxy, Ledger, threading.Event, list[str]]]:
    go, log = threading.Event(), []
    ledger = CaughtUpClock().ledger()
    emulator = Slowed(go, log)
    server = EmulatorServer({"slowed": HandledCounted(emulator, ledger)})  # type: ignore[dict-item]
    counted_per_connection(server._servers["slowed"])
    server.start()
    proxy = FaultProxy((HOST, server.ports()["slowed"])).start()
    ledger.proxy, ledger.immediate_bytes = proxy, emulator.immediate_bytes
    proxy.upstream_acts = Watched(ledger, go)
    try:
        yield proxy, ledger, go, log
    finally:
        go.set()
        proxy.close()
        server.close()


def test_a_faked_reply_goes_after_the_commands_ahead_of_it_took_effect(
        served: tuple[FaultProxy, Ledger, threading.Event, list[str]]) -> None:
    proxy, ledger, go, log = served
    proxy.answer("ERR?", b"#\x15?!\xff\n")
    with socket.create_connection((HOST, proxy.port), timeout=GUARD_S) as client:
        # a move, a blank line, the stop byte on a line of its own, then the check
        client.sendall(b"MOV 1 2\n \r\n\x18\nERR?\n")
        reply = b""
        while not reply.endswith(b"\n"):
            reply += client.recv(64)
        log.append("reply")
        go.set()
    assert reply == b"#\x15?!\xff\n"
    assert log == ["MOV 1 2", f"#{STOP_BYTE}", "reply"]
    # the commands the emulator acted on, counted as its server splits what was passed on
    assert list(ledger.passed_on.values()) == list(ledger.handled_on.values()) == [2]
