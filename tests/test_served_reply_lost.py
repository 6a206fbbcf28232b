"""A served emulator whose reply cannot be sent (the client reset the connection) still acts
on the commands that came with the query, as a real instrument does: an `OUTP OFF` sent right
behind a query whose reply was lost still switches the output off. No reply is tried on the
dead connection after the first that failed. Over loopback TCP, with a raw socket client."""

from __future__ import annotations

import socket
import struct
import threading

from simulators import tcp_server
from simulators.emulator import Emulator
from simulators.tcp_server import HOST, EmulatorServer

GUARD_S = 30.0  # only a hang reaches it


class Supply(Emulator):
    """Records every command acted on; the reply to `Q?` waits until the client is gone."""

    name = "supply"

    def __init__(self) -> None:
        self.acted: list[str] = []
        self.asked = threading.Event()  # the first Q? came
        self.gone = threading.Event()  # the client reset the connection
        self.last = threading.Event()  # the last command was acted on

    def handle(self, message: str) -> str | None:
        self.acted.append(message)
        if message == "Q?":
            self.asked.set()
            self.gone.wait(GUARD_S)
            return "1"
        if message == "OUTP OFF 2":
            self.last.set()
        return None


def test_commands_behind_a_reply_that_could_not_be_sent_are_acted_on(monkeypatch) -> None:
    sends: list[bool] = []
    send = tcp_server._Handler._send

    def recorded(handler: tcp_server._Handler, reply: str) -> bool:
        sent = send(handler, reply)
        sends.append(sent)
        return sent

    monkeypatch.setattr(tcp_server._Handler, "_send", recorded)
    emulator = Supply()
    with EmulatorServer({"supply": emulator}) as server:
        client = socket.create_connection((HOST, server.ports()["supply"]))
        client.sendall(b"Q?\nOUTP OFF\nQ?\nOUTP OFF 2\n")  # one chunk, read at once
        assert emulator.asked.wait(GUARD_S)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # a reset: the reply to Q? cannot be sent
        emulator.gone.set()
        emulator.last.wait(GUARD_S)
    assert sends == [False]  # the first reply failed; none tried after it
    assert emulator.acted == ["Q?", "OUTP OFF", "Q?", "OUTP OFF 2"]


def test_a_connection_that_answers_acts_on_every_command() -> None:
    """The usual case is unchanged: each query is answered in turn."""
    emulator = Supply()
    emulator.gone.set()
    with (
        EmulatorServer({"supply": emulator}) as server,
        socket.create_connection((HOST, server.ports()["supply"])) as client,
    ):
        client.sendall(b"Q?\nOUTP OFF\nQ?\nOUTP OFF 2\n")
        client.settimeout(GUARD_S)
        received = b""
        while received.count(b"\n") < 2:
            received += client.recv(64)
        assert emulator.last.wait(GUARD_S)
    assert received == b"1\n1\n"
