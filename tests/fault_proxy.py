"""A loopback TCP proxy that breaks a link on demand, for fault tests over the real byte path.

    proxy = FaultProxy(("127.0.0.1", upstream_port)).start()
    proxy.resource                   # the VISA resource string that reaches the upstream
    proxy.after(40, proxy.drop)      # on the 40th command through it, drop the link
    proxy.close()

Faults (each callable any time, from any thread, or from a trigger):
- `drop()`: close every connection now (the client sees the peer close); new ones are accepted.
- `refuse()`: drop, and close every later connection at once (the instrument is gone).
- `hold()`: replies are kept back (the client times out); `release()` sends what was kept.
- `garble(n)`: the next `n` replies are replaced by garbage bytes.
- `split(at, insert=b"")`: the first `at` bytes of the next reply (then `insert`, a noise byte
  say) go at once; the rest of it, and every later reply, is held as by `hold()` until
  `release()` (a reply cut short that comes in two pieces, the second late).
- `answer(command, reply)`: every command that starts with `command` is answered with the
  bytes `reply` by the proxy itself, never forwarded (a corrupted reply to that one query, on
  each retry too); `restore()` ends it. With `after=prefix`, only once a command starting with
  `prefix` went through, until another command does (the `ERR?`, and its retries, that check
  one set command, say `WAV`). With `times=n`, only the first n such commands (a reply lost
  once: `times=1`). Where the proxy is told what its upstream acted on (`upstream`: a served
  emulator's ledger), the reply goes only once the upstream acted on every command passed on
  before it, as an instrument answers a query only after acting on the commands ahead of it:
  a stop sent on another connection once that reply is read comes after them, as on a real
  controller. Without `upstream`, it goes at once.
- `restore()`: forward everything again; `disarm()`: forget triggers not yet fired.

`after(n, action)` runs `action()` (in the proxy's thread) when the n-th LF-terminated command
from the client has been seen, before it is forwarded; `commands` counts them, `answered` the
commands the proxy answered itself (counted once the reply is sent).

What became of the replies, for a client that must tell a reply still to come (an emulator
slowed by a loaded machine) from one that never will, without a real-time guess:
`tally(port)` counts what the proxy did on its way back to the client connected from `port`
(`Tally`: pieces of replies passed on, replies kept back or cut short, its own answers,
whether that connection was closed or refused, and which connection from that port it is),
and `await_change(port, since, seconds)` waits until that differs from `since` (woken by the
proxy itself, never polled).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from collections.abc import Callable
from typing import NamedTuple, Protocol

HOST = "127.0.0.1"
GARBAGE = b"#\x15?!\xff\n"


class Tally(NamedTuple):
    """What a proxy did on its way back to its clients, counted since it started."""

    delivered: int  # pieces of replies passed on to a client (garbled ones too)
    withheld: int  # replies (or their rest) kept back, cut short or left out
    answered: int  # replies the proxy made itself, once sent
    closed: int  # 1 once the connection is closed (a fault, either end's close) or refused
    # which connection from that port (the proxy's count of those it accepted; 0: none yet):
    # a port is used again by a later connection, and until the proxy accepts that one its
    # port still tells the earlier one's tally
    connection: int = 0


NONE_YET = Tally(0, 0, 0, 0)


class Upstream(Protocol):
    """What a proxy's upstream acted on, where it can tell (a served emulator's ledger), per
    connection to it (the proxy's local port)."""

    def opened(self, connection: int) -> None:
        """The proxy connected upstream from port `connection`."""

    def forwarded(self, connection: int, data: bytes) -> None:
        """`data` was passed on upstream on the connection from port `connection`."""

    def await_acted(self, connection: int) -> None:
        """Return once the upstream acted on all that was passed on on that connection (or a
        hang guard passed)."""


def client_port(transport: object) -> int | None:
    """The local port of the connection a pyvisa-py raw socket transport (or a wrapper of one,
    through its `transport`) holds, if open: the proxy's client, as `tally` names it."""
    while not hasattr(transport, "resource") and hasattr(transport, "transport"):
        transport = transport.transport
    resource = getattr(transport, "resource", None)
    sessions = getattr(getattr(resource, "visalib", None), "sessions", {})
    sock = getattr(sessions.get(getattr(resource, "session", None)), "interface", None)
    try:
        return int(sock.getsockname()[1])  # type: ignore[union-attr]
    except (AttributeError, OSError):
        return None


class FaultProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server((HOST, 0))
        self._listener.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._pairs: dict[socket.socket, socket.socket] = {}  # either end -> the other end
        self._clients: set[socket.socket] = set()
        self._held: dict[socket.socket, bytearray] = {}  # client -> replies kept back
        self._holding = False
        self._refusing = False
        self._garble = 0
        self._split: tuple[int, bytes] | None = None
        self._answers: dict[bytes, bytes] = {}  # command prefix -> the reply the proxy sends
        self._after: dict[bytes, bytes] = {}  # command prefix -> the command it answers after
        self._armed: set[bytes] = set()  # the prefixes in `_after` whose command went through
        self._left: dict[bytes, int] = {}  # command prefix -> answers left, where limited
        self._triggers: list[tuple[int, Callable[[], None]]] = []
        self._stop = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._run, name="fault proxy", daemon=True)
        self.commands = 0
        self._answered = 0
        self._tallies: dict[int, Tally] = {}  # client's port -> what was done on its way back
        self._accepted = 0  # connections accepted (`Tally.connection`)
        # client end -> its port and `Tally.connection`
        self._ports: dict[socket.socket, tuple[int, int]] = {}
        self._news = threading.Condition()  # notified on each change of a tally
        # what the upstream acted on, where it tells: a reply the proxy makes waits for it
        self.upstream_acts: Upstream | None = None

    @property
    def answered(self) -> int:
        """Commands the proxy answered itself (counted once the reply is sent)."""
        return self._answered

    def tally(self, port: int) -> Tally:
        """What was done on the way back to the client connected from `port` (its local port):
        all zero until the proxy accepted it."""
        with self._news:
            return self._tallies.get(port, NONE_YET)

    def await_change(self, port: int, since: Tally, seconds: float) -> Tally:
        """`tally(port)` once it differs from `since`, or after `seconds` (real)."""
        with self._news:
            self._news.wait_for(lambda: self._tallies.get(port, NONE_YET) != since,
                                timeout=seconds)
            return self._tallies.get(port, NONE_YET)

    def _count(self, client: socket.socket | tuple[int, int], **more: int) -> None:
        """Count `more` for `client` (its end, or its port and connection): on its port's
        tally only while that is still its connection's, not a later one's from the same
        port (accepted before this one's close was seen)."""
        where = client if isinstance(client, tuple) else self._ports.get(client)
        if where is None:
            return
        port, connection = where
        with self._news:
            old = self._tallies.get(port, NONE_YET)
            if old.connection == connection:
                self._tallies[port] = old._replace(
                    **{k: getattr(old, k) + n for k, n in more.items()})
            self._answered += more.get("answered", 0)
            self._news.notify_all()

    @property
    def port(self) -> int:
        return self._listener.getsockname()[1]

    @property
    def resource(self) -> str:
        return f"TCPIP0::{HOST}::{self.port}::SOCKET"

    def start(self) -> FaultProxy:
        self._selector.register(self._listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread.start()
        return self

    # -- faults ---------------------------------------------------------------------------

    def after(self, n: int, action: Callable[[], None]) -> None:
        with self._lock:
            self._triggers.append((n, action))

    def drop(self) -> None:
        self._call_in_loop(self._drop_all)

    def refuse(self) -> None:
        with self._lock:
            self._refusing = True
        self.drop()

    def hold(self) -> None:
        with self._lock:
            self._holding = True

    def release(self) -> None:
        with self._lock:
            self._holding = False
        self._call_in_loop(self._flush_held)

    def garble(self, n: int) -> None:
        with self._lock:
            self._garble += n

    def split(self, at: int, insert: bytes = b"") -> None:
        with self._lock:
            self._split = (at, insert)

    def answer(self, command: str, reply: bytes, *, after: str | None = None,
               times: int | None = None) -> None:
        with self._lock:
            self._answers[command.encode("latin-1")] = reply
            if after is not None:
                self._after[command.encode("latin-1")] = after.encode("latin-1")
            if times is not None:
                self._left[command.encode("latin-1")] = times

    def disarm(self) -> None:
        """Forget the `after` triggers that have not fired."""
        with self._lock:
            self._triggers.clear()

    def restore(self) -> None:
        with self._lock:
            self._refusing = False
            self._garble = 0
            self._split = None
            self._answers.clear()
            self._after.clear()
            self._armed.clear()
            self._left.clear()
        self.release()

    def close(self) -> None:
        self._stop = True
        self._wake_w.send(b"x")
        self._thread.join(timeout=30)
        for s in list(self._pairs):
            with contextlib.suppress(OSError):
                s.close()
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- the loop -------------------------------------------------------------------------

    def _call_in_loop(self, fn: Callable[[], None]) -> None:
        if threading.current_thread() is self._thread:
            fn()
            return
        done = threading.Event()
        with self._lock:
            self._triggers.append((0, lambda: (fn(), done.set())))
        self._wake_w.send(b"x")
        done.wait(timeout=30)

    def _run(self) -> None:
        while not self._stop:
            for key, _ in self._selector.select(timeout=None):
                if key.data == "wake":
                    self._wake_r.recv(4096)
                    self._fire(0)
                elif key.data == "accept":
                    self._accept()
                else:
                    self._forward(key.fileobj, key.data)  # type: ignore[arg-type]
        self._drop_all()

    def _accept(self) -> None:
        try:
            client, (_, port) = self._listener.accept()
        except BlockingIOError:
            return
        with self._news:  # a port used again is a new connection
            self._accepted += 1
            me = (port, self._accepted)
            self._tallies[port] = NONE_YET._replace(connection=self._accepted)
            self._news.notify_all()
        with self._lock:
            refusing = self._refusing
        if refusing:
            client.close()
            self._count(me, closed=1)
            return
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            client.close()
            self._count(me, closed=1)
            return
        for s in (client, server):
            s.setblocking(True)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._pairs[client], self._pairs[server] = server, client
        if self.upstream_acts is not None:
            self.upstream_acts.opened(server.getsockname()[1])
        self._clients.add(client)
        self._ports[client] = me
        self._selector.register(client, selectors.EVENT_READ, "up")
        self._selector.register(server, selectors.EVENT_READ, "down")

    def _close_pair(self, s: socket.socket) -> None:
        client = s if s in self._clients else self._pairs.get(s)
        if client is not None:
            self._count(client, closed=1)
            self._ports.pop(client, None)
        other = self._pairs.pop(s, None)
        for end in (s, other):
            if end is None:
                continue
            self._pairs.pop(end, None)
            self._clients.discard(end)
            self._held.pop(end, None)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(end)
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def _drop_all(self) -> None:
        for client in list(self._clients):
            self._close_pair(client)

    def _forward(self, source: socket.socket, direction: str) -> None:
        try:
            data = source.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._close_pair(source)
            return
        target = self._pairs[source]
        if direction == "up":
            for _ in range(data.count(b"\n")):
                self.commands += 1
                self._fire(self.commands)
                if source not in self._pairs:  # a trigger dropped the link
                    return
            self._send_up(source, target, data)
            return
        cut = False
        with self._lock:
            holding = self._holding
            if self._split is not None and not holding:
                at, insert = self._split
                self._split = None
                self._holding = holding = True
                self._deliver(target, data[:at] + insert)
                data = data[at:]
            if self._garble and not holding:
                lines = data.count(b"\n") or 1
                used = min(lines, self._garble)
                self._garble -= used
                cut = used < lines  # the lines past the garbage are left out
                data = GARBAGE * used
        if holding:
            self._held.setdefault(target, bytearray()).extend(data)
            self._count(target, withheld=1)
        else:
            self._deliver(target, data)
            if cut:
                self._count(target, withheld=1)

    def _send_up(self, client: socket.socket, server: socket.socket, data: bytes) -> None:
        """Forward the client's commands, answering those `answer` names in the proxy."""
        with self._lock:
            answers, after = dict(self._answers), dict(self._after)
        if not answers:
            self._pass_on(client, server, data)
            return
        for line in data.splitlines(keepends=True):
            with self._lock:
                hit = next((c for c in answers if line.startswith(c) and c in self._answers
                            and (c not in after or c in self._armed)), None)
                for c, a in after.items():  # arm on the command, disarm on any other
                    if line.startswith(a):
                        self._armed.add(c)
                    elif not line.startswith(c):
                        self._armed.discard(c)
                if hit is not None and hit in self._left:
                    self._left[hit] -= 1
                    if self._left[hit] <= 0:  # its last answer: forwarded from now on
                        for table in (self._answers, self._after, self._left):
                            table.pop(hit, None)
            if hit is None:
                self._pass_on(client, server, line)
                continue
            if self.upstream_acts is not None:  # after the commands ahead of it, as answered
                self.upstream_acts.await_acted(server.getsockname()[1])
            self._send(client, answers[hit])
            self._count(client, answered=1)

    def _pass_on(self, client: socket.socket, server: socket.socket, data: bytes) -> None:
        """Forward the client's `data` upstream, told to `upstream_acts` once sent."""
        if self._send(server, data) and self.upstream_acts is not None:
            self.upstream_acts.forwarded(server.getsockname()[1], data)

    def _send(self, target: socket.socket, data: bytes) -> bool:
        """Whether `data` was sent (else the pair is closed)."""
        try:
            target.sendall(data)
        except OSError:
            self._close_pair(target)
            return False
        return True

    def _deliver(self, client: socket.socket, data: bytes) -> None:
        """Pass (a piece of) a reply on to `client`, counted once sent."""
        self._send(client, data)
        self._count(client, delivered=1)

    def _flush_held(self) -> None:
        for client, data in list(self._held.items()):
            self._held.pop(client)
            if client in self._pairs:
                self._deliver(client, bytes(data))

    def _fire(self, count: int) -> None:
        with self._lock:
            due = [t for t in self._triggers if t[0] <= count and (t[0] == 0) == (count == 0)]
            self._triggers = [t for t in self._triggers if t not in due]
        for _, action in due:
            action()
