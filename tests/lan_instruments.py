"""Minimal VXI-11 and HiSLIP instruments on loopback, for pyvisa-py's `TCPIP::…::INSTR`
sessions: each echoes a query (a message ending '?') as "echo <query>", and the message
`HOLD` holds its connection's thread, which then reads nothing more, until `release` (an
instrument that stopped taking input); once `stall`ed, a new connection is accepted but its
opening (VXI-11's create_link, HiSLIP's Initialize) is not answered until `release` (an
instrument that hung); the reply to `SPLIT?` is sent half, the rest once released (a reply
cut short). Given a `responder` (an emulator's `handle`), each message is answered as it
says instead (`HOLD` and `SPLIT?` aside). Given `most_reply`, a reply longer than that many
bytes is never sent (a LAN-GPIB gateway slower than the link's timeout allows for it). Only
what pyvisa-py's client sends on open, write, read, device clear and close is served.

As a gateway's one GPIB bus does, the instrument takes messages in the order they came: one
that a connection has received (a command a client sent before cutting that connection at a
lost reply) is answered before any message of a newer connection (`_Served.in_turn`), and a
VXI-11 write is acknowledged once its message has been answered, as a gateway acknowledges
it once the bytes are on the bus (`HOLD` aside, acknowledged at once). Each connection has a
thread of its own, which a loaded machine may not run for longer than a link's timeout: a
command of a connection given up would otherwise reach the instrument after the commands
sent on the next one (a capture started after the count that was to time it).
"""

from __future__ import annotations

import contextvars
import itertools
import select
import socket
import socketserver
import struct
import threading
from collections.abc import Callable

Responder = Callable[[str], "str | None"]

HOLD = "HOLD"
SPLIT = "SPLIT?"
HANG_GUARD_S = 30.0  # the longest a held connection stays held
HOST = "127.0.0.1"


def bounded(call: Callable[[], object]) -> object:
    """Run `call` in a thread, in this context (the make-safe path's budget), and return its
    result or raise its exception; fail if it does not return within the hang guard."""
    out: dict[str, object] = {}
    context = contextvars.copy_context()

    def run() -> None:
        try:
            out["value"] = context.run(call)
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_GUARD_S)
    assert not thread.is_alive(), "the call did not return"
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out.get("value")


class _Served(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, handler: type[socketserver.BaseRequestHandler],
                 responder: Responder | None, most_reply: int | None) -> None:
        super().__init__((HOST, 0), handler)
        self.released = threading.Event()
        self.stalled = threading.Event()
        self.responder = responder
        self.most_reply = most_reply
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.turns = threading.Condition()
        # each open connection, by the order it was accepted: whether a message of it is
        # being read or answered now
        self.busy: dict[socket.socket, bool] = {}
        self.order: dict[socket.socket, int] = {}
        self._accepted = itertools.count()

    def opened(self, sock: socket.socket) -> None:
        with self.turns:
            self.order[sock] = next(self._accepted)
            self.busy[sock] = False

    def closed(self, sock: socket.socket) -> None:
        with self.turns:
            self.order.pop(sock, None)
            self.busy.pop(sock, None)
            self.turns.notify_all()

    def next_message(self, sock: socket.socket) -> None:
        """Wait for `sock`'s next message to begin (or its end), marked busy from then."""
        with self.turns:
            self.busy[sock] = False
            self.turns.notify_all()
        select.select([sock], [], [])
        with self.turns:
            self.busy[sock] = True

    def in_turn(self, sock: socket.socket) -> None:
        """Wait until no connection older than `sock` holds a message not yet answered (the
        hang guard at most): its messages came before."""
        with self.turns:
            self.turns.wait_for(lambda: not any(
                self.order[other] < self.order[sock] and (busy or _unread(other))
                for other, busy in self.busy.items()), HANG_GUARD_S)


class _Instrument:
    """A served instrument: `resource` is its VISA address once started."""

    handler: type[socketserver.BaseRequestHandler]

    def __init__(self, responder: Responder | None = None,
                 most_reply: int | None = None) -> None:
        self._server = _Served(self.handler, responder, most_reply)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> _Instrument:
        self._server.thread.start()
        return self

    def stall(self) -> None:
        """New connections are accepted, their opening answered only once released."""
        self._server.stalled.set()

    def release(self) -> None:
        """Held connections read again (and see their peer gone, if it is)."""
        self._server.released.set()

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()


def _unread(sock: socket.socket) -> bool:
    """Whether bytes have come on `sock` that nothing has read (not its end, nor a reset)."""
    try:
        if not select.select([sock], [], [], 0)[0]:
            return False
        return bool(sock.recv(1, socket.MSG_PEEK))
    except OSError:
        return False


def _exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(min(size - len(data), 1 << 20))
        if not chunk:
            raise EOFError
        data += chunk
    return bytes(data)


def _send_split(sock: socket.socket, data: bytes, server: _Served) -> None:
    """`data` (a record or a packet), sent half where it holds the reply to `SPLIT`, the
    rest once released."""
    if f"echo {SPLIT}".encode("latin-1") not in data:  # any other message: whole
        sock.sendall(data)
        return
    sock.sendall(data[: len(data) // 2])
    server.released.wait(HANG_GUARD_S)
    sock.sendall(data[len(data) // 2 :])


def _wait_if_stalled(server: _Served) -> None:
    if server.stalled.is_set():
        server.released.wait(HANG_GUARD_S)


def _answer(message: bytes, server: _Served, sock: socket.socket) -> bytes | None:
    """The reply to `message`, come on `sock` (a command has none; the responder's, where
    there is one), once older connections' messages are answered (`in_turn`); `HOLD` holds
    until released; a reply longer than `most_reply` is never sent."""
    server.in_turn(sock)
    text = message.decode("latin-1").rstrip("\n")
    if text == HOLD:
        server.released.wait(HANG_GUARD_S)
    if server.responder is not None and text not in (HOLD, SPLIT):
        reply = server.responder(text)
    else:
        reply = f"echo {text}" if text.endswith("?") else None
    if reply is None:
        return None
    data = f"{reply}\n".encode("latin-1")
    return None if server.most_reply is not None and len(data) > server.most_reply else data


# ---- VXI-11: ONC RPC over TCP, records of fragments (RFC 5531), the core channel's calls

_CREATE_LINK, _DEVICE_WRITE, _DEVICE_READ = 10, 11, 12
_RX_END = 4
_IO_TIMEOUT = 15
# what the instrument says it takes in one write: a long message goes in one call
MAX_RECV_SIZE = 1 << 28


def _opaque(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data + b"\0" * (-len(data) % 4)


class _Vxi11Handler(socketserver.BaseRequestHandler):
    server: _Served

    def handle(self) -> None:
        self.server.opened(self.request)
        try:
            self._serve()
        finally:
            self.server.closed(self.request)

    def _serve(self) -> None:
        pending: bytes | None = None
        try:
            while True:
                self.server.next_message(self.request)
                call = self._record()
                xid, _kind, _rpc, _prog, _vers, proc = struct.unpack(">6I", call[:24])
                at = 24
                for _ in range(2):  # the credential and the verifier: flavour, opaque body
                    (size,) = struct.unpack(">I", call[at + 4 : at + 8])
                    at += 8 + size + (-size % 4)
                args = call[at:]
                if proc == _CREATE_LINK:
                    _wait_if_stalled(self.server)
                    result = struct.pack(">iiII", 0, 1, 0, MAX_RECV_SIZE)
                elif proc == _DEVICE_WRITE:
                    (size,) = struct.unpack(">I", args[16:20])
                    result = struct.pack(">iI", 0, size)
                    message = args[20 : 20 + size]
                    if message.rstrip(b"\n") == HOLD.encode():  # taken, then held
                        self._reply(xid, result)
                        pending = _answer(message, self.server, self.request)
                        continue
                    pending = _answer(message, self.server, self.request)
                elif proc == _DEVICE_READ:
                    if pending is None:
                        result = struct.pack(">ii", _IO_TIMEOUT, 0) + _opaque(b"")
                    else:
                        result = struct.pack(">ii", 0, _RX_END) + _opaque(pending)
                    pending = None
                else:  # destroy_link, device_clear and the like: done
                    result = struct.pack(">i", 0)
                self._reply(xid, result)
        except (EOFError, OSError):
            return

    def _record(self) -> bytes:
        record = bytearray()
        while True:
            (mark,) = struct.unpack(">I", _exactly(self.request, 4))
            record += _exactly(self.request, mark & 0x7FFFFFFF)
            if mark & 0x80000000:
                return bytes(record)

    def _reply(self, xid: int, result: bytes) -> None:
        # a reply, accepted, a null verifier, success
        body = struct.pack(">6I", xid, 1, 0, 0, 0, 0) + result
        _send_split(self.request, struct.pack(">I", 0x80000000 | len(body)) + body,
                    self.server)


class Vxi11Instrument(_Instrument):
    """A VXI-11 instrument on its own port (no portmapper): `TCPIP::127.0.0.1,<port>::INSTR`."""

    handler = _Vxi11Handler

    @property
    def resource(self) -> str:
        return f"TCPIP::{HOST},{self.port}::INSTR"


# ---- HiSLIP: a synchronous and an asynchronous connection, 16-byte headers

_HEADER = struct.Struct("!2sBBIQ")
_INITIALIZE, _INITIALIZE_RESPONSE = 0, 1
_DATA, _DATA_END = 6, 7
_DEVICE_CLEAR_COMPLETE, _DEVICE_CLEAR_ACKNOWLEDGE = 8, 9
_ASYNC_MAX_MSG_SIZE, _ASYNC_MAX_MSG_SIZE_RESPONSE = 15, 16
_ASYNC_INITIALIZE, _ASYNC_INITIALIZE_RESPONSE = 17, 18
_ASYNC_DEVICE_CLEAR, _ASYNC_DEVICE_CLEAR_ACKNOWLEDGE = 19, 23
_SESSION_ID = 1


class _HislipHandler(socketserver.BaseRequestHandler):
    server: _Served

    def handle(self) -> None:
        self.server.opened(self.request)
        try:
            self._serve()
        finally:
            self.server.closed(self.request)

    def _serve(self) -> None:
        try:
            kind = self._message()[0]
            _wait_if_stalled(self.server)
            if kind == _INITIALIZE:  # the synchronous channel: version 1.0, this session
                self._send(_INITIALIZE_RESPONSE, 0, (0x0100 << 16) | _SESSION_ID)
                self._synchronous()
            elif kind == _ASYNC_INITIALIZE:
                self._send(_ASYNC_INITIALIZE_RESPONSE, 0, 0)
                self._asynchronous()
        except (EOFError, OSError):
            return

    def _message(self) -> tuple[int, int, int, bytes]:
        self.server.next_message(self.request)
        _prologue, kind, control, parameter, size = _HEADER.unpack(
            _exactly(self.request, _HEADER.size))
        return kind, control, parameter, _exactly(self.request, size)

    def _send(self, kind: int, control: int, parameter: int, payload: bytes = b"") -> None:
        header = _HEADER.pack(b"HS", kind, control, parameter, len(payload))
        _send_split(self.request, header + payload, self.server)

    def _synchronous(self) -> None:
        message = bytearray()
        while True:
            kind, _control, message_id, payload = self._message()
            if kind == _DEVICE_CLEAR_COMPLETE:  # a device clear: what came before is dropped
                message.clear()
                self._send(_DEVICE_CLEAR_ACKNOWLEDGE, 0, 0)
            if kind not in (_DATA, _DATA_END):
                continue
            message += payload
            if kind == _DATA_END:
                reply = _answer(bytes(message), self.server, self.request)
                message.clear()
                if reply is not None:
                    self._send(_DATA_END, 0, message_id, reply)

    def _asynchronous(self) -> None:
        while True:
            kind, _control, _parameter, payload = self._message()
            if kind == _ASYNC_MAX_MSG_SIZE:
                self._send(_ASYNC_MAX_MSG_SIZE_RESPONSE, 0, 0, payload)
            elif kind == _ASYNC_DEVICE_CLEAR:
                self._send(_ASYNC_DEVICE_CLEAR_ACKNOWLEDGE, 0, 0)


class HislipInstrument(_Instrument):
    """A HiSLIP instrument on its own port: `TCPIP::127.0.0.1::hislip0,<port>::INSTR`."""

    handler = _HislipHandler

    @property
    def resource(self) -> str:
        return f"TCPIP::{HOST}::hislip0,{self.port}::INSTR"
