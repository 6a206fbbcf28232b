"""Serve emulators on loopback TCP ports, so any VISA client can talk to the simulated rig.

Each emulator gets its own port on 127.0.0.1: a raw socket carrying LF-terminated messages,
what VISA calls a `TCPIP0::127.0.0.1::<port>::SOCKET` resource. Every connection has its
own thread; a reply goes back LF-terminated (a multi-line GCS reply keeps its inner LFs; an
SR830 told to answer on RS-232 ends its replies with CR, as the real one does).
The stream is read byte by byte: an emulator's `immediate_bytes` (PI's single-byte commands,
sent without a line feed) are answered the moment they arrive, even inside a line, and ahead
of a query line that arrived with them (`ERR?` and `#24` in one segment: the stop comes first;
a `MOV` before a `#24` is acted on first, as the in-process transport does).
Text goes both ways in the instruments' 8-bit code page (latin-1), not UTF-8.
`close()` shuts every listener and connection and joins their threads. Fault injection
(`simulators.emulator.Faults`) belongs to the in-process transports; a TCP client sees the
emulators as they are.

A served world has no caller that sleeps on its clock, so it runs on `RealTimeClock`:
simulated time = time scale × real time elapsed.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time
from collections.abc import Callable

from simulators.emulator import BinaryReply, Emulator, held_back
from smm_daq.clock import Clock

HOST = "127.0.0.1"
ENCODING = "latin-1"  # the instruments' 8-bit code page: "µ" is 0xB5, PI's "ready" 0xB1
_MAX_LINE = 65536


class RealTimeClock(Clock):
    """Simulated seconds = `time_scale` × real seconds since creation (+ `start`)."""

    def __init__(self, time_scale: float = 1.0, start: float = 0.0) -> None:
        if not time_scale > 0:
            raise ValueError(f"time scale must be > 0 for a served world, got {time_scale}")
        self.time_scale = float(time_scale)
        self._origin = time.monotonic()
        self._start = float(start)

    def now(self) -> float:
        return self._start + self.time_scale * (time.monotonic() - self._origin)

    def set_time_scale(self, time_scale: float) -> None:
        """Go on at `time_scale` × real time; `now()` goes on from where it is (a world made
        ready fast, then served in real time). Call it while nothing else reads the clock."""
        if not time_scale > 0:
            raise ValueError(f"time scale must be > 0 for a served world, got {time_scale}")
        real = time.monotonic()
        self._start += self.time_scale * (real - self._origin)
        self._origin = real
        self.time_scale = float(time_scale)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.time_scale)


def _ack_at_once(connection: socket.socket) -> None:
    """Acknowledge what was read at once (Linux: TCP_QUICKACK, which lasts until the next read),
    as an instrument's network interface does. Delayed, the ACK of a command that has no reply
    holds a client's next command back 40 ms (Nagle's algorithm), where the client has not
    turned that off: QCoDeS, PyMeasure and PIPython have not."""
    if hasattr(socket, "TCP_QUICKACK"):
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)


class _Handler(socketserver.BaseRequestHandler):
    server: _EmulatorServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.request, add=True)

    def finish(self) -> None:
        self.server.track(self.request, add=False)
        with contextlib.suppress(OSError):
            super().finish()

    def handle(self) -> None:
        """Read bytes as they come: an immediate byte is answered at once, wherever it falls,
        ahead of a query line that came with it and is not yet parsed (PI: single-character
        commands are processed on arrival; `held_back`); every other byte gathers into a line,
        handled at its end (LF, or one of the emulator's `command_ends`: an SR830's RS-232
        port takes CR too), a set command at once, in order. Once a reply could not be
        sent (the client gone), what still came is acted on as a real instrument does (an
        `OUTP OFF` after a query whose reply was lost), answered no more."""
        emulator = self.server.emulator
        line = bytearray()
        sending = True  # until a reply could not be sent
        while True:
            try:
                chunk = self.request.recv(4096)
                _ack_at_once(self.request)
            except OSError:
                return
            if not chunk:
                return
            held: str | None = None  # a query not yet parsed: a byte with it goes first
            ends = emulator.command_ends
            for byte in chunk:
                if byte in emulator.immediate_bytes:
                    reply = emulator.handle_byte(byte)
                    if reply is not None and sending:
                        sending = self._send(reply)
                elif byte in ends:
                    if held is not None:
                        sending = self._answer(held, sending)
                        held = None
                    message = line.decode(ENCODING).rstrip("\r")
                    line.clear()
                    if held_back(emulator, message):
                        held = message
                    else:
                        sending = self._answer(message, sending)
                elif len(line) < _MAX_LINE:
                    line.append(byte)
            if held is not None:
                sending = self._answer(held, sending)

    def _answer(self, message: str, sending: bool) -> bool:
        """`message` handled; its reply sent while replies can be (returns whether they
        still can)."""
        reply = self.server.emulator.handle(message) if message.strip() else None
        if reply is not None and sending:
            return self._send(reply)
        return sending

    def _send(self, reply: str) -> bool:
        """A reply with its terminator (the emulator's `reply_end`); a binary block
        (`BinaryReply`) as it is."""
        data = reply.encode(ENCODING, errors="replace")
        end = self.server.emulator.reply_end.encode(ENCODING)
        try:
            self.request.sendall(data if isinstance(reply, BinaryReply) else data + end)
        except OSError:
            return False
        return True


class _EmulatorServer(socketserver.ThreadingTCPServer):
    daemon_threads = False
    block_on_close = True  # server_close joins the connection threads
    allow_reuse_address = True

    def __init__(self, emulator: Emulator, clients: Callable[[int], None]) -> None:
        super().__init__((HOST, 0), _Handler)
        self.emulator = emulator
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._clients = clients  # told +1 / -1 as a connection opens / closes

    def track(self, connection: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(connection)
            elif connection in self._connections:
                self._connections.discard(connection)
            else:
                return
        self._clients(1 if add else -1)

    def drop_connections(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for c in connections:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)


# Real seconds between two `keep_up` calls of a served world
KEEP_UP_S = 0.05


class EmulatorServer:
    """One loopback TCP listener per emulator; `start()` then `resources()`; `close()`.

    `keep_up`, where given, is called every KEEP_UP_S on a thread of its own while a client
    is connected: a served world brings itself up to the present there (`World.sync`), so
    that a command after a quiet while waits for no more than KEEP_UP_S of simulated work (a
    lock-in's capture running meanwhile) before it is answered, whichever instrument it is
    for. With no client connected the thread waits for one, costing nothing (a capture left
    running kept it busy, a tenth to nearly half a core, for no one): a client's first
    command catches the world up once, as every command did before."""

    def __init__(self, endpoints: dict[str, Emulator],
                 keep_up: Callable[[], None] | None = None) -> None:
        self._servers = {address: _EmulatorServer(e, self._count_client)
                         for address, e in endpoints.items()}
        self._threads: list[threading.Thread] = []
        self._keep_up = keep_up
        self._stop = threading.Event()
        self._clients = 0  # connections open, to every emulator
        self._clients_changed = threading.Condition()

    def _count_client(self, change: int) -> None:
        with self._clients_changed:
            self._clients += change
            self._clients_changed.notify_all()

    def clients(self) -> int:
        """How many connections are open, to every emulator together."""
        with self._clients_changed:
            return self._clients

    def _keep_up_loop(self) -> None:
        assert self._keep_up is not None
        while True:
            with self._clients_changed:
                self._clients_changed.wait_for(lambda: self._clients > 0 or self._stop.is_set())
            if self._stop.wait(KEEP_UP_S):
                return
            if self.clients():
                self._keep_up()

    def start(self) -> EmulatorServer:
        if self._keep_up is not None:
            thread = threading.Thread(target=self._keep_up_loop, name="serve keep-up",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)
        for address, server in self._servers.items():
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"serve {address}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        return self

    def ports(self) -> dict[str, int]:
        """Instrument address (as in the profile) -> TCP port."""
        return {a: s.server_address[1] for a, s in self._servers.items()}

    def resources(self) -> dict[str, str]:
        """Instrument address -> the VISA resource string that reaches its emulator."""
        return {a: f"TCPIP0::{HOST}::{port}::SOCKET" for a, port in self.ports().items()}

    def close(self) -> None:
        with self._clients_changed:
            self._stop.set()
            self._clients_changed.notify_all()
        for server in self._servers.values():
            if self._threads:
                server.shutdown()
            server.drop_connections()
            server.server_close()
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
