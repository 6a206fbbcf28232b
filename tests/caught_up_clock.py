"""A served world's clock whose time moves only when the rig under test sleeps, and only once
every emulator has acted on each command the rig sent it.

Why: on scaled real time (`RealTimeClock`, 50 × real time say), an emulator acts on a command
when its server thread gets to it, and the world's time has run on meanwhile: a command that
has no reply (the lock-in's `STRT` that starts its buffer, the stage's `MOV` before its `ERR?`)
takes effect as many simulated seconds after the driver timed it as the machine delayed that
thread, times the scale. On a loaded machine that is longer than a whole fly line (0.54 s
simulated is 11 ms real), so a line's samples are placed where the stage was not, or outside
the line. A real instrument acts within the link's latency, at one second a second.

`CaughtUpClock`: a `VirtualClock` (time moves only in `sleep`) whose `sleep` first waits until
every `Ledger` is caught up: each command sent on its link (`sending`, called by the rig's
transport before each write: `SentCounted`) handled by the emulator (`HandledCounted`, in
front of each served emulator) or answered by the link's fault proxy itself. A command lost
with its connection (a link the proxy dropped, a server killed) is forgotten when the link
clears or finds itself lost (`Ledger.forget_unacted`); a wait longer than CATCH_UP_S, a hang
guard far above any emulator's delay, goes on regardless. A rig whose transports do not count
(one opened bare) is not waited for.

A ledger also tells its fault proxy (`FaultProxy.upstream_acts`) when the emulator acted on all
the proxy passed on to it on one connection (`forwarded`, `await_acted`; the emulator's server
counted per connection by `counted_per_connection`), so that a reply the proxy makes itself
(`answer`) goes out only after the commands ahead of it took effect, as a real instrument
answers: else a slowed emulator could act on a `WGO` after the stop that the faked reply to its
`ERR?` brought on, sent on a connection of its own, and leave the stage moving.
"""

from __future__ import annotations

import socketserver
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fault_proxy import FaultProxy, client_port

from smm_daq.clock import VirtualClock
from smm_daq.errors import InstrumentLost
from smm_daq.instruments.transport import Transport

CATCH_UP_S = 60.0  # real seconds; a hang guard only: emulators act within milliseconds
_SERVED = threading.local()  # in an emulator server's connection thread: `port`, its client's
POLL_S = 0.001  # real seconds between looks at a proxy's own answers (they notify nobody)


class Ledger:
    """Commands sent on one instrument's link, and those acted on."""

    def __init__(self, changed: threading.Condition) -> None:
        self.proxy: FaultProxy | None = None  # set once the proxy in front of it exists
        self.sent = 0
        self.handled = 0
        self._changed = changed
        self._port: int | None = None  # the connection (its client port) of the last command
        # the emulator's last command acted on, and whether it had no reply
        self._last: tuple[str, bool] = ("", False)
        self.immediate_bytes: frozenset[int] = frozenset()  # the emulator's single-byte commands
        # per connection to the emulator (the proxy's local port): commands the proxy passed on
        # (`forwarded`), those the emulator acted on, and whether the line passed on so far
        # holds a command (not yet ended)
        self.passed_on: Counter[int] = Counter()
        self.handled_on: Counter[int] = Counter()
        self._line_open: set[int] = set()

    def _acted(self) -> int:
        return self.handled + (self.proxy.answered if self.proxy is not None else 0)

    def _closed(self) -> bool:
        """Whether the proxy closed (or refused) the connection of the last command."""
        return (self.proxy is not None and self._port is not None
                and bool(self.proxy.tally(self._port).closed))

    def sending(self, port: int | None = None) -> None:
        """One more command on the link, on the connection from `port` where known (counted
        from what was acted on so far: a rig whose link does not count, one a test opens bare,
        is never waited for; and those sent on a connection since closed are forgotten)."""
        with self._changed:
            if port != self._port and self._closed():
                self.sent = min(self.sent, self._acted())
            self._port = port
            self.sent = max(self.sent, self._acted()) + 1

    def forget_unacted(self) -> None:
        """The commands sent and not acted on yet went with the connection: not waited for."""
        with self._changed:
            self.sent = min(self.sent, self._acted())
            self._changed.notify_all()

    def handled_one(self, command: str = "", *, replied: bool = True,
                    connection: int | None = None) -> None:
        with self._changed:
            self.handled += 1
            if connection is not None:
                self.handled_on[connection] += 1
            self._last = (command, not replied)
            self._changed.notify_all()

    def no_reply_coming(self, command: str) -> bool:
        """Whether every command sent was acted on, the emulator's last being `command`, with
        no reply (an instrument that does not answer: a reply the proxy did not make never
        comes). The command is compared too: another connection's (a stop on a link of its
        own) may have been acted on last."""
        with self._changed:
            return self._last == (command, True) and self._acted() >= self.sent

    def opened(self, connection: int) -> None:
        """The proxy connected to the emulator from port `connection`: counted from nothing."""
        with self._changed:
            self.passed_on.pop(connection, None)
            self.handled_on.pop(connection, None)
            self._line_open.discard(connection)

    def forwarded(self, connection: int, data: bytes) -> None:
        """The proxy passed `data` on to the emulator on its connection from port `connection`:
        counts the commands in it as the emulator's server splits them (`simulators.tcp_server`):
        each immediate byte, and each line holding more than blanks."""
        commands = 0
        line_open = connection in self._line_open
        for byte in data:
            if byte in self.immediate_bytes:
                commands += 1
            elif byte == 0x0A:
                commands += line_open
                line_open = False
            elif chr(byte).strip():
                line_open = True
        with self._changed:
            (self._line_open.add if line_open else self._line_open.discard)(connection)
            self.passed_on[connection] += commands

    def await_acted(self, connection: int) -> None:
        """Return once the emulator acted on every command passed on to it on the connection
        from port `connection` (`forwarded`), or after CATCH_UP_S, a hang guard (woken by each
        command acted on, never polled). Only that connection's: what another one left unacted
        (its emulator thread ended by a failed send, say) is never waited for."""
        with self._changed:
            self._changed.wait_for(
                lambda: self.handled_on[connection] >= self.passed_on[connection],
                timeout=CATCH_UP_S)

    def caught_up(self) -> bool:
        """Every command acted on, or its connection closed (what it held is lost)."""
        return self._acted() >= self.sent or self._closed()


def counted_per_connection(server: socketserver.BaseServer) -> None:
    """Each connection `server` serves (before it starts) known to its `HandledCounted`
    emulator, by its client's port: the commands acted on are counted per connection too."""
    handler = server.RequestHandlerClass

    class Named(handler):  # type: ignore[valid-type,misc]
        def setup(self) -> None:
            _SERVED.port = self.client_address[1]
            super().setup()

    server.RequestHandlerClass = Named


class HandledCounted:
    """A served emulator that counts each command it acts on in `ledger`, once acted on (before
    its reply goes out), whether it had a reply, and on which connection (its client's port,
    where its server is `counted_per_connection`)."""

    def __init__(self, inner: Any, ledger: Ledger) -> None:
        self._inner = inner
        self._ledger = ledger

    def handle(self, message: str) -> str | None:
        reply = None
        try:
            reply = self._inner.handle(message)
            return reply  # type: ignore[no-any-return]
        finally:
            self._ledger.handled_one(message, replied=reply is not None,
                                     connection=getattr(_SERVED, "port", None))

    def handle_byte(self, code: int) -> str | None:
        reply = None
        try:
            reply = self._inner.handle_byte(code)
            return reply  # type: ignore[no-any-return]
        finally:
            self._ledger.handled_one(chr(code), replied=reply is not None,
                                     connection=getattr(_SERVED, "port", None))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class SentCounted:
    """A rig's transport that counts each command it sends in `ledger`, before sending it, and
    forgets those not acted on when the link clears (a raw socket's connects again) or is
    lost."""

    def __init__(self, transport: Transport, ledger: Ledger) -> None:
        self.transport = transport
        self.ledger = ledger

    @property
    def timeout(self) -> float:
        return self.transport.timeout

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        self.transport.timeout = seconds

    def write(self, message: str) -> None:
        self.ledger.sending(client_port(self.transport))
        with self._lost_forgotten():
            self.transport.write(message)

    def read(self) -> str:
        with self._lost_forgotten():
            return self.transport.read()

    def query(self, message: str) -> str:
        self.ledger.sending(client_port(self.transport))
        with self._lost_forgotten():
            return self.transport.query(message)

    def clear(self) -> None:
        self.ledger.forget_unacted()
        with self._lost_forgotten():
            self.transport.clear()

    @contextmanager
    def _lost_forgotten(self) -> Iterator[None]:
        try:
            yield
        except InstrumentLost:
            self.ledger.forget_unacted()
            raise

    def close(self) -> None:
        self.transport.close()


class CaughtUpClock(VirtualClock):
    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()
        self.ledgers: list[Ledger] = []

    def ledger(self) -> Ledger:
        ledger = Ledger(self.changed)
        self.ledgers.append(ledger)
        return ledger

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + CATCH_UP_S
        with self.changed:
            while not all(ledger.caught_up() for ledger in self.ledgers):
                if time.monotonic() >= deadline:
                    break
                self.changed.wait(POLL_S)
        super().sleep(seconds)
