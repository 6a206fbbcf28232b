"""The serial transport over a real byte path: pyserial's `socket://` URL reaches the emulators
served on loopback TCP (`serial:socket://127.0.0.1:<port>`, as a serial-over-LAN adapter is
reached), so the real drivers talk to them through the serial transport's own framing.

The served world runs on a virtual clock that only the test advances: buffers fill in
simulated time and nothing sleeps.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import serial
from fault_proxy import FaultProxy
from test_socket_transport import HANG_GUARD_S, bounded

from drivers.link import Link
from drivers.sr830 import SR830
from drivers.sr860 import SR860
from drivers.transports import SerialTransport, VisaTransport, open_transport
from simulators.backend import SimulatedBackend
from simulators.emulator import Emulator
from simulators.sr860_emulator import SR860Emulator
from simulators.tcp_server import HOST, EmulatorServer
from smm_daq.clock import VirtualClock
from smm_daq.errors import InstrumentError, InstrumentLost, InstrumentTimeout, ProtocolError
from smm_daq.instruments.profile import LinkSettings, Profile, load_profile
from smm_daq.instruments.transport import Transport

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 1.0


def serial_url(port: int) -> str:
    return f"serial:socket://{HOST}:{port}"


@dataclass
class Served:
    clock: VirtualClock
    profile: Profile
    backend: SimulatedBackend
    server: EmulatorServer

    def lockin_address(self) -> str:
        return serial_url(self.server.ports()[self.profile.lockin.link.address])


def _served(folder: Path, model: str, *, interface: str | None = None) -> Iterator[Served]:
    text = (REPO / "configs" / "simulator.toml").read_text()
    if interface is not None:
        text = text.replace('reserve = "normal"', f'reserve = "normal"\ninterface = "{interface}"')
    if model == "sr860":
        text = text.replace('implementation = "sr830"', 'implementation = "sr860"').replace(
            'reserve = "normal"', "# no reserve on an SR860")
    path = folder / f"simulator-{model}.toml"
    path.write_text(text)
    profile = load_profile(path)
    clock = VirtualClock()
    backend = SimulatedBackend(profile, clock, {"noise_rms": 0.0, "drift_rate": 0.0})
    lockin = backend.endpoint(profile.lockin.link.address)
    clock.sleep(1.0)  # the field at the sensor over a while: its code compiles now, not in
    lockin.handle("OUTP? 1")  # a test's first exchange, timed out by a fresh numba cache
    server = backend.serve_tcp()
    try:
        yield Served(clock, profile, backend, server)
    finally:
        server.close()


@pytest.fixture(scope="module")
def served_sr860(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _served(tmp_path_factory.mktemp("sr860"), "sr860")


def _with_crlf(count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` float32 values about a volt whose little-endian bytes hold CR LF (0x0D 0x0A)
    within a value, at every byte offset, and across two values."""
    values = rng.uniform(-0.9, 0.9, count).astype("<f4")
    raw = bytearray(values.tobytes())
    for at in range(0, len(raw) - 16, 40):
        raw[at:at + 4] = b"\r\n\x80\x3f"  # 1.0003, CR LF in its low bytes
        raw[at + 5:at + 7] = b"\r\n"  # in the middle bytes
        raw[at + 10:at + 12] = b"\r\n"  # in the exponent byte: a tiny value
        raw[at + 15:at + 17] = b"\r\n"  # the last byte of one value, the first of the next
    return np.frombuffer(bytes(raw), dtype="<f4").copy()


def test_an_sr860_capture_holding_cr_lf_is_read_over_serial_value_for_value(
        served_sr860: Served) -> None:
    """The block's bytes hold CR LF (and the payload ends in CR): a serial read that strips
    a line's trailing CR lost one byte per CR LF and failed the read on every retry."""
    s = served_sr860
    settings = replace(s.profile.lockin, link=replace(
        s.profile.lockin.link, address=s.lockin_address(), timeout_s=TIMEOUT_S))
    lockin = SR860.from_profile(settings, clock=s.clock)
    emulator = s.backend.lockin
    assert isinstance(emulator, SR860Emulator)
    try:
        lockin.configure_buffer(100.0)
        lockin.start_buffer(on_trigger=False)
        lockin.identify()  # a reply: the served emulator took the start (a write has none)
        s.clock.sleep(3.0)  # virtual: the capture runs in simulated time
        lockin.capture_span.stopping(s.clock.now())  # as read_buffer's own stop notes it
        lockin.link.write("CAPTURESTOP")
        lockin.identify()
        s.clock.sleep(3.0)  # the capture runs on to its 2 kB block's end (1.7 s at 152 Hz)
        lockin.identify()
        floats = emulator._captured
        assert floats > 100 and emulator._capture_state == "stopped"
        # What the instrument captured, as a real SR860 holds it (its data are any floats;
        # the emulator's own keep LF out of the payload for clients that stop at an LF).
        crafted = _with_crlf(floats, np.random.default_rng(7))
        # the payload ends in CR: the capture ended at its block's end, on a kB
        assert floats % 256 == 0
        crafted[-1] = struct.unpack("<f", b"\x00\x00\x80\x0d")[0]
        emulator._capture[:floats] = crafted
        assert crafted.tobytes().count(b"\r\n") > 10
        trace = lockin.read_buffer()
    finally:
        lockin.close()
    np.testing.assert_array_equal(trace.x, crafted[0::2].astype(float))
    np.testing.assert_array_equal(trace.y, crafted[1::2].astype(float))


@pytest.mark.parametrize("kind", ["serial", "visa-asrl"])
def test_an_sr860_set_to_end_replies_with_cr_fails_its_connect_saying_to_choose_lf(
        served_sr860: Served, kind: str) -> None:
    """On RS-232 (and telnet) the SR860 ends its replies with the terminator chosen on its
    front panel, which no command sets; the driver reads to LF. Set to CR, every reply timed
    out and the connect said only that the lock-in did not answer: it now says what to set."""
    s = served_sr860
    emulator = s.backend.lockin
    assert isinstance(emulator, SR860Emulator)
    port = s.server.ports()[s.profile.lockin.link.address]
    settings = replace(s.profile.lockin, link=replace(
        s.profile.lockin.link, address=counter_address(port, kind), timeout_s=0.3))

    def connect() -> SR860:
        return bounded(lambda: SR860.from_profile(
            settings, clock=s.clock,
            open_transport=lambda a, link: open_transport(a, link, visa_library="@py")))

    emulator.terminator = "\r"
    try:
        with pytest.raises(InstrumentLost) as err:
            connect()
    finally:
        emulator.terminator = "\n"
    assert "'*IDN?'" in str(err.value)
    assert ("an SR860 ends its replies with the terminator chosen on its front panel (its "
            "interface settings), which no command sets: choose LF there") in str(err.value)
    lockin = connect()  # set to LF, as the error says
    try:
        assert lockin.identify().model == "SR860"
    finally:
        lockin.close()


# -- recovery after a late, cut or garbled reply ---------------------------------------------


class Counter(Emulator):
    """Answers each message with its count and the message: which reply answers what shows."""

    name = "counter"

    def __init__(self) -> None:
        self.count = 0

    def handle(self, message: str) -> str | None:
        self.count += 1
        return f"{self.count} {message}"


class Watched:
    """A pyserial port that runs `action` at the start of the first read from it after its
    input buffer is next reset (`after_reset(action)`): the late part of a reply is released
    at the worst moment for a clear that only flushes what has arrived, with no sleep; or at
    the start of every read (`on_each_read`)."""

    def __init__(self, port: serial.SerialBase) -> None:
        self.__dict__.update(_port=port, _action=None, _armed=False, _each=False)

    def __getattr__(self, name: str) -> object:
        return getattr(self._port, name)

    def __setattr__(self, name: str, value: object) -> None:
        setattr(self._port, name, value)

    def after_reset(self, action: Callable[[], None]) -> None:
        self.__dict__["_action"] = action

    def on_each_read(self, action: Callable[[], None]) -> None:
        """Run `action` at the start of every read from now on."""
        self.__dict__.update(_action=action, _armed=True, _each=True)

    def reset_input_buffer(self) -> None:
        self._port.reset_input_buffer()
        self.__dict__["_armed"] = self._action is not None

    def _fire(self) -> None:
        if self._armed:
            action = self._action
            if not self._each:
                self.__dict__.update(_action=None, _armed=False)
            action()

    def read(self, size: int = 1) -> bytes:
        self._fire()
        return self._port.read(size)

    def read_until(self, expected: bytes = b"\n", size: int | None = None) -> bytes:
        self._fire()
        return self._port.read_until(expected, size)


def watched(transport: Transport) -> Watched:
    """The transport's serial port, watched: pyserial's own, or the one pyvisa-py holds."""
    if isinstance(transport, SerialTransport):
        port = transport.port = Watched(transport.port)  # type: ignore[assignment]
        return port
    assert isinstance(transport, VisaTransport)
    session = transport.resource.visalib.sessions[transport.resource.session]  # type: ignore
    port = session.interface = Watched(session.interface)
    return port


def counter_address(port: int, kind: str) -> str:
    """The counter through `kind`: pyserial, or pyvisa-py's ASRL (which opens pyserial URLs)."""
    return serial_url(port) if kind == "serial" else f"ASRLsocket://{HOST}:{port}::INSTR"


@pytest.fixture(params=["serial", "visa-asrl"])
def counter(request: pytest.FixtureRequest) -> Iterator[tuple[FaultProxy, Transport, Watched]]:
    server = EmulatorServer({"counter": Counter()}).start()
    proxy = FaultProxy((HOST, server.ports()["counter"])).start()
    address = counter_address(proxy.port, request.param)
    transport = open_transport(address, LinkSettings("x", address, 0.3, 2, 9600),
                               visa_library="@py")
    yield proxy, transport, watched(transport)
    transport.close()
    proxy.close()
    server.close()


def test_a_late_reply_is_dropped_by_the_clear_not_read_as_the_next_answer(counter) -> None:
    proxy, transport, port = counter
    link = Link(transport, name="counter", retries=2)
    assert link.query("a", str) == "1 a"
    proxy.hold()  # "2 b" comes late: after the timeout, and after the clear's flush
    port.after_reset(proxy.release)
    assert link.query("b", str) == "3 b"  # the retry's own reply
    assert link.query("c", str) == "4 c"  # not "3 b", one query behind


def test_a_reply_cut_by_the_timeout_is_dropped_with_its_late_rest(counter) -> None:
    proxy, transport, port = counter
    proxy.split(2)  # "1 " at once; "a" and its LF late
    with pytest.raises(InstrumentTimeout):
        transport.query("a")
    port.after_reset(proxy.release)
    transport.clear()
    assert transport.query("b") == "2 b"


@pytest.mark.parametrize("kind", ["serial", "visa-asrl"])
def test_a_serial_port_that_failed_is_opened_again_or_said_to_be_gone(kind: str) -> None:
    """A USB-serial adapter unplugged and plugged in again leaves the open port dead for good
    (here its serial-over-LAN connection dropped): the exchange that finds it so fails, and
    the next one closes it and opens it again, with its settings (pyserial and VISA's ASRL
    alike); where it cannot be opened again, the error says so, after one try, and
    so does a device clear."""
    server = EmulatorServer({"counter": Counter()}).start()
    proxy = FaultProxy((HOST, server.ports()["counter"])).start()
    address = counter_address(proxy.port, kind)
    transport = open_transport(address, LinkSettings("x", address, 0.3, 2, 9600),
                               visa_library="@py")
    link = Link(transport, name="counter", retries=2)
    try:
        assert link.query("a", str) == "1 a"
        proxy.drop()  # unplugged and plugged in again: the open port is dead
        with pytest.raises(InstrumentLost):  # never sent once more (see the test below)
            link.query("b", str)
        assert link.query("c", str).endswith(" c")
        assert transport.timeout == pytest.approx(0.3)
    finally:
        proxy.close()  # unplugged for good: nothing to open
    try:
        with pytest.raises(InstrumentLost):
            bounded(lambda: link.query("d", str))
        with pytest.raises(InstrumentLost, match="could not be reopened"):
            bounded(lambda: link.query("e", str))
        with pytest.raises(InstrumentLost, match="could not be reopened"):
            bounded(transport.clear)  # the device-clear path opens it again too
    finally:
        transport.close()
        server.close()

class Controller(Emulator):
    """Takes set commands without a reply, as a GCS controller or a SCPI supply does, and
    answers `ERR?` with 0: no command here is ever refused."""

    name = "controller"

    def __init__(self) -> None:
        self.received: list[str] = []

    def handle(self, message: str) -> str | None:
        self.received.append(message)
        return "0" if message == "ERR?" else None


@pytest.mark.parametrize("kind", ["serial", "visa-asrl"])
def test_an_error_query_on_a_port_found_dead_fails_never_answering_for_a_lost_command(
        kind: str) -> None:
    """A command written into a dead port (a dropped connection takes a write without
    complaint) never reached the instrument; the error query after it finds the port dead.
    Sent once more on the port opened again, it answered "no error" (0), and the driver took
    the lost MOV as done: the exchange fails instead, and the next one opens the port again."""
    controller = Controller()
    server = EmulatorServer({"controller": controller}).start()
    proxy = FaultProxy((HOST, server.ports()["controller"])).start()
    address = counter_address(proxy.port, kind)
    transport = open_transport(address, LinkSettings("x", address, 0.3, 2, 9600),
                               visa_library="@py")
    link = Link(transport, name="controller", retries=2)
    try:
        assert link.query("ERR?", str) == "0"
        proxy.drop()  # unplugged and plugged in again: the open port is dead
        try:
            link.write("MOV 1 5")
        except InstrumentLost:
            pass  # a port that says so at once: the caller knows the command failed
        else:
            with pytest.raises(InstrumentLost):
                link.query("ERR?", str)
        assert "MOV 1 5" not in controller.received  # what a "0" would have vouched for
        assert link.query("ERR?", str) == "0"  # the next exchange: on the port opened again
    finally:
        transport.close()
        proxy.close()
        server.close()


@pytest.mark.parametrize("kind", ["serial", "visa-asrl"])
def test_a_line_that_never_goes_quiet_fails_the_clear_in_bounded_time(kind: str) -> None:
    """An instrument that keeps sending (a babbling line, a continuous output mode): the
    clear drops what arrives for its bound, then says so; never a hang. It starts once the
    port is open: pyserial's own socket:// open, which pyvisa-py's ASRLsocket:// uses, drops
    what has arrived until nothing is ready, which loopback's babble, faster than any serial
    line, can keep from ever coming (that open is given up at the link's timeout; a
    serial:socket:// open drops at most a receive buffer's worth)."""
    stop = threading.Event()
    opened = threading.Event()
    with socket.create_server((HOST, 0)) as listener:
        def babble() -> None:
            connection, _ = listener.accept()
            opened.wait(HANG_GUARD_S)
            with connection:
                while not stop.is_set():
                    with contextlib.suppress(OSError):
                        connection.sendall(b"1.0,2.0\n" * 512)

        thread = threading.Thread(target=babble, daemon=True)
        thread.start()
        address = counter_address(listener.getsockname()[1], kind)
        transport = open_transport(address, LinkSettings("x", address, 0.5, 0, 4_000_000),
                                   visa_library="@py")
        opened.set()
        try:
            with pytest.raises(InstrumentTimeout, match="not quiet after"):
                bounded(transport.clear)
        finally:
            stop.set()
            transport.close()
            thread.join(HANG_GUARD_S)


class _FasterThanRead:
    """A serial-over-LAN port's socket whose peer sends as much again as each read takes (a
    line faster than its reader), `most` bytes in all; `taken` counts what was read."""

    def __init__(self, sock: socket.socket, peer: socket.socket, most: int) -> None:
        self._sock, self._peer, self._most = sock, peer, most
        self.taken = self.sent = 0

    def fileno(self) -> int:
        return self._sock.fileno()

    def recv(self, size: int) -> bytes:
        data = self._sock.recv(size)
        self.taken += len(data)
        more = min(len(data), self._most - self.sent)
        if more > 0:
            self._peer.sendall(b"1" * more)
            self.sent += more
        return data

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


@pytest.mark.parametrize("kind", ["serial", "visa-asrl"])
def test_dropping_what_arrived_from_a_line_faster_than_its_reader_ends(kind: str) -> None:
    """A serial-over-LAN peer that sends faster than it is read (a babbling line, or an
    address that reaches some stream): dropping what has arrived (an open's, a query's drop
    of a line sent unasked, `discard_input`'s) takes what the socket's receive buffer held at
    most, and ends while the peer goes on sending. Unfixed, pyserial's drop read for as long
    as anything was there: here all 32 MB, and for ever from a peer that never stops."""
    most = 32 << 20
    with socket.create_server((HOST, 0)) as listener:
        address = counter_address(listener.getsockname()[1], kind)
        transport = open_transport(address, LinkSettings("x", address, 0.5, 0, 9600),
                                   visa_library="@py")
        peer, _ = listener.accept()
        try:
            port = (transport.port if isinstance(transport, SerialTransport)
                    else transport.resource.visalib.sessions[  # type: ignore[attr-defined]
                        transport.resource.session].interface)  # type: ignore[attr-defined]
            sock = port._socket
            peer.sendall(b"1" * 65536)
            assert select.select([sock], [], [], HANG_GUARD_S)[0], "nothing arrived"
            faster = port._socket = _FasterThanRead(sock, peer, most)
            bounded(transport.discard_input)
            assert faster.sent < most, "the drop went on until the peer stopped"
            assert faster.taken <= sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        finally:
            transport.close()
            peer.close()


@pytest.fixture(scope="module")
def served_sr830(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _served(tmp_path_factory.mktemp("sr830"), "sr830")


def test_the_late_rest_of_a_garbled_reading_is_never_read_as_a_reading(
        served_sr830: Served) -> None:
    """Noise puts a CR (what ends its replies on RS-232) into an SR830's SNAP? reply, its rest
    comes late: the first piece is refused (garbled), and the rest ('3456e-05,...') parsed as
    the retry's reading was a reading thousands of times too large, with every later reply one
    query behind."""
    s = served_sr830
    proxy = FaultProxy((HOST, s.server.ports()[s.profile.lockin.link.address])).start()
    settings = replace(s.profile.lockin, link=replace(
        s.profile.lockin.link, address=serial_url(proxy.port), timeout_s=0.3))
    lockin = SR830.from_profile(settings, clock=s.clock)
    try:
        port = watched(lockin.link.transport)
        s.clock.sleep(1.0)  # virtual: the filter settles; then time stands still
        truth = lockin.read_xy()  # every reading is this one
        assert abs(truth[0]) > 0
        proxy.split(4, b"\r")
        port.after_reset(proxy.release)  # the piece before the LF was read and refused
        assert lockin.read_xy() == truth
        assert lockin.harmonic() == 1
        assert lockin.read_xy() == truth
    finally:
        lockin.close()
        proxy.close()


@pytest.fixture(scope="module")
def served_sr830_rs232(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """An SR830 whose RS-232 port a serial-to-Ethernet server puts on a TCP socket."""
    yield from _served(tmp_path_factory.mktemp("sr830-rs232"), "sr830", interface="rs232")


def test_an_sr830_on_rs232_behind_a_socket_answers_once_the_profile_names_the_port(
        served_sr830_rs232: Served) -> None:
    """A `TCPIP::…::SOCKET` address says GPIB to the driver (OUTX 1), and the replies then go
    to the GPIB port, never to the RS-232 port the socket reaches: every query times out.
    With `lockin.interface = "rs232"` the driver sends OUTX 0 and reads the CR-ended replies."""
    s = served_sr830_rs232
    port = s.server.ports()[s.profile.lockin.link.address]
    with socket.create_connection((HOST, port), timeout=HANG_GUARD_S) as raw:
        raw.sendall(b"OUTX 0\nHARM?\n")
        assert raw.recv(64) == b"1\r"
        raw.sendall(b"OUTX 1\nHARM?\n")  # to the GPIB port: nothing comes back here
        raw.settimeout(0.3)
        with pytest.raises(TimeoutError):
            raw.recv(64)

    def connect(interface: str | None) -> SR830:
        address = f"TCPIP0::{HOST}::{port}::SOCKET"
        settings = replace(s.profile.lockin, interface=interface, link=replace(
            s.profile.lockin.link, address=address, timeout_s=0.3, retries=0))
        return bounded(lambda: SR830.from_profile(
            settings, clock=s.clock,
            open_transport=lambda a, link: open_transport(a, link, visa_library="@py")))

    assert s.profile.lockin.interface == "rs232"
    with pytest.raises(InstrumentError, match="no reply"):
        connect(None)  # inferred from the address: GPIB
    lockin = connect(s.profile.lockin.interface)
    try:
        s.clock.sleep(1.0)  # virtual: the filter settles
        assert lockin.identify().model == "SR830"
        x, y = bounded(lockin.read_xy)
        assert abs(x) > 0 and np.isfinite(y)
    finally:
        lockin.close()


def test_an_sr830_on_rs232_takes_a_carriage_return_as_the_end_of_a_command(
        served_sr830_rs232: Served) -> None:
    """The SR830 manual: "The terminator must be a linefeed <lf> or carriage return <cr> on
    RS232": a client ending its commands with CR (or CR LF) is answered, once a command.
    Unfixed, the served port split commands at LF alone: CR-ended ones were never answered."""
    s = served_sr830_rs232
    port = s.server.ports()[s.profile.lockin.link.address]
    with socket.create_connection((HOST, port), timeout=HANG_GUARD_S) as raw:
        raw.sendall(b"OUTX 0\rHARM?\r")
        assert raw.recv(64) == b"1\r"
        raw.sendall(b"HARM?\r\nHARM?\n")  # CR LF: one command, one reply
        received = b""
        while received.count(b"\r") < 2:
            received += raw.recv(64)
        assert received == b"1\r1\r"


def _sr830_on_serial(s: Served, kind: str, *, baud_rate: int) -> SR830:
    """The served SR830 driven through `kind` (pyserial or VISA's ASRL), 0.5 s timeout."""
    address = counter_address(s.server.ports()[s.profile.lockin.link.address], kind)
    settings = replace(s.profile.lockin, link=replace(
        s.profile.lockin.link, address=address, timeout_s=0.5, baud_rate=baud_rate))
    return bounded(lambda: SR830.from_profile(
        settings, clock=s.clock,
        open_transport=lambda a, link: open_transport(a, link, visa_library="@py")))


@pytest.mark.parametrize("kind", ["serial", "visa-asrl"])
def test_an_sr830_on_rs232_ends_its_replies_with_cr_and_the_driver_reads_them(
        served_sr830: Served, kind: str) -> None:
    """Told to answer on RS-232 (OUTX 0), an SR830 ends each reply with a carriage return,
    where GPIB ends it with a line feed: read to LF, as every other instrument's, each of its
    replies timed out on a serial line (through pyserial or VISA's ASRL alike)."""
    s = served_sr830
    port = s.server.ports()[s.profile.lockin.link.address]
    with socket.create_connection((HOST, port), timeout=HANG_GUARD_S) as raw:
        raw.sendall(b"OUTX 0\nHARM?\n")
        reply = raw.recv(64)
        raw.sendall(b"OUTX 1\nHARM?\n")
        assert (reply, raw.recv(64)) == (b"1\r", b"1\n")
    lockin = _sr830_on_serial(s, kind, baud_rate=19200)
    try:
        transport = lockin.link.transport
        assert (transport.port.baudrate if isinstance(transport, SerialTransport)  # type: ignore[attr-defined]
                else transport.resource.baud_rate) == 19200  # type: ignore[attr-defined]
        s.clock.sleep(1.0)  # virtual: the filter settles
        assert lockin.identify().model == "SR830"
        x, y = bounded(lockin.read_xy)
        assert abs(x) > 0 and np.isfinite(y)
    finally:
        lockin.close()


@pytest.mark.parametrize("kind", ["serial", "visa-asrl"])
def test_an_sr830_buffer_on_a_slow_serial_line_is_read_in_pieces_within_the_timeout(
        served_sr830: Served, kind: str) -> None:
    """2048 TRCA? points are 30 kB, half a minute at 9600 baud: a VISA serial read, timed as a
    whole, gave up on it at any ordinary timeout. On a serial line each TRCA? now asks for what
    comes within half the timeout at the line's rate (0.5 s at 9600 baud: 16 points), and the
    pieces make the whole buffer, point for point as one read over the bus gives it."""
    s = served_sr830
    lockin = _sr830_on_serial(s, kind, baud_rate=9600)
    asked: list[str] = []
    query = lockin.link.query
    lockin.link.query = lambda command, parse: (asked.append(command),  # type: ignore[method-assign]
                                                query(command, parse))[1]
    try:
        lockin.configure_buffer(64.0)
        lockin.start_buffer(on_trigger=False)
        assert lockin.harmonic() == 1  # answered: STRT has reached the lock-in
        s.clock.sleep(1.0)  # virtual: 64 points
        trace = bounded(lockin.read_buffer)
        counts = [int(c.split(",")[2]) for c in asked if c.startswith("TRCA?")]
        assert trace.x.size == 64 and max(counts) == 16 and sum(counts) == 2 * 64
        whole = s.backend.endpoint(s.profile.lockin.link.address).handle("TRCA? 1,0,64")
        assert whole is not None
        np.testing.assert_array_equal(trace.x, [float(v) for v in whole.rstrip(",").split(",")])
    finally:
        lockin.close()


def test_a_reply_longer_in_coming_than_the_timeout_is_read_whole_while_it_keeps_coming(
        ) -> None:
    """A long reply on a slow line (an SR830's TRCA? of 2048 points is 30 kB, half a minute at
    9600 baud) takes longer than the timeout: it is read as long as its bytes keep coming. Here
    each piece comes only once the transport reads again after the one before, so the whole
    reply takes several reads of up to a timeout each."""
    pieces = [b"+1.000000e-003," * 40] * 5 + [b"+2.000000e-003,\n"]
    asked = threading.Event()
    with socket.create_server((HOST, 0)) as listener:
        def serve() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.recv(64)
                for piece in pieces:
                    if not asked.wait(HANG_GUARD_S):
                        return
                    asked.clear()
                    connection.sendall(piece)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        address = serial_url(listener.getsockname()[1])
        transport = open_transport(address, LinkSettings("x", address, 0.3, 0, 9600))
        try:
            port = watched(transport)
            port.on_each_read(asked.set)
            assert bounded(lambda: transport.query("TRCA? 1,0,201")) == (
                b"".join(pieces).decode().removesuffix("\n"))
        finally:
            transport.close()
            thread.join(HANG_GUARD_S)


def test_a_reply_longer_than_any_instrument_sends_is_refused_not_read_on() -> None:
    with socket.create_server((HOST, 0)) as listener:
        def serve() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.recv(64)
                with contextlib.suppress(OSError):
                    connection.sendall(b"7" * 70_000 + b"\n")
                connection.recv(64)  # until the client closes

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        address = serial_url(listener.getsockname()[1])
        transport = open_transport(address, LinkSettings("x", address, 0.3, 0, 9600))
        try:
            with pytest.raises(ProtocolError, match="a reply longer than 65552 bytes"):
                bounded(lambda: transport.query("READ?"))
        finally:
            transport.close()
            thread.join(HANG_GUARD_S)


@pytest.mark.parametrize("kind", ["serial", "visa-asrl"])
@pytest.mark.parametrize("extra", [b"3e-06,4e-06\r", b"\r", b"7777\r"],
                         ids=["a second reading", "an extra terminator", "a number"])
def test_a_line_sent_unasked_over_serial_is_never_read_as_the_next_reply(
        served_sr830: Served, extra: bytes, kind: str) -> None:
    """An SR830 on RS-232 answering SNAP? with one line more: the line had been read as the
    reply to the next query, and every later reply as the one before it (readings shifted by
    one, silently), as on a raw socket; through pyserial and VISA's ASRL alike."""
    s = served_sr830
    proxy = FaultProxy((HOST, s.server.ports()[s.profile.lockin.link.address])).start()
    settings = replace(s.profile.lockin, link=replace(
        s.profile.lockin.link, address=counter_address(proxy.port, kind), timeout_s=TIMEOUT_S))
    lockin = bounded(lambda: SR830.from_profile(
        settings, clock=s.clock,
        open_transport=lambda a, link: open_transport(a, link, visa_library="@py")))
    try:
        s.clock.sleep(1.0)  # virtual: the filter settles; then time stands still
        truth = bounded(lockin.read_xy)
        proxy.answer("SNAP?", b"1e-06,2e-06\r" + extra, times=1)
        assert bounded(lockin.read_xy) == (1e-06, 2e-06)
        failures = lockin.link.failures
        assert bounded(lockin.read_xy) == truth
        assert bounded(lockin.harmonic) == 1
        assert lockin.link.failures == failures  # each read its own reply at once: no retry
    finally:
        lockin.close()
        proxy.close()


def test_a_line_sent_unasked_over_serial_is_never_read_as_an_sr860_capture(
        served_sr860: Served) -> None:
    """An SR860 on RS-232 answering CAPTUREBYTES? with one line more: the capture's block read
    (by its length, over pyserial) had taken that line for its reply, failed, and sent the
    query once more; it is dropped before the query, as a line query drops it."""
    s = served_sr860
    proxy = FaultProxy((HOST, s.server.ports()[s.profile.lockin.link.address])).start()
    settings = replace(s.profile.lockin, link=replace(
        s.profile.lockin.link, address=serial_url(proxy.port), timeout_s=TIMEOUT_S))
    lockin = bounded(lambda: SR860.from_profile(settings, clock=s.clock))
    try:
        lockin.configure_buffer(100.0)
        lockin.start_buffer(on_trigger=False)
        lockin.identify()  # a reply: the served emulator took the start (a write has none)
        s.clock.sleep(3.0)  # virtual: the capture runs in simulated time
        lockin.capture_span.stopping(s.clock.now())  # as read_buffer's own stop notes it
        lockin.link.write("CAPTURESTOP")
        lockin.identify()
        s.clock.sleep(3.0)  # the capture runs on to its 2 kB block's end (1.7 s at 152 Hz)
        size = lockin._captured_bytes()
        assert size > 400
        proxy.answer("CAPTUREBYTES?", f"{size}\n7777\n".encode(), times=1)
        failures = lockin.link.failures
        trace = bounded(lockin.read_buffer)
        assert lockin.link.failures == failures  # each read its own reply at once: no retry
        assert len(trace.x) == size // 8
        assert bounded(lockin.identify).model == "SR860"
    finally:
        lockin.close()
        proxy.close()
