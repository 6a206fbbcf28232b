"""The serial transport's calls end by the deadlines `safe_bound` counts for them: a reply
that trickles in ends at its deadline (the timeout and the largest reply's transfer), and a
port reopened before a command is reopened within the command's time (its write timeout),
a serial-over-LAN port's connect included; a VISA serial line's reply (ASRL through pyvisa-py)
ends by the same deadline.

The ports here are fakes on a fake clock that their reads and writes advance, as a line
whose bytes come just within each wait would: nothing sleeps, no wall time is measured.
"""

from __future__ import annotations

import socket
import types
from collections.abc import Callable

import pytest
import serial
import serial.serialutil
from serial.urlhandler import protocol_socket

from drivers import reply_stop, transports
from drivers.transports import SerialTransport, VisaTransport
from smm_daq.errors import InstrumentLost, InstrumentTimeout, ReadStopped
from smm_daq.instruments.interfaces import STOP_SLICE_S
from smm_daq.instruments.transport import BITS_PER_BYTE, LARGEST_REPLY

TIMEOUT_S = 1.0
BAUD_RATE = 4_000_000
LARGEST_TRANSFER_S = LARGEST_REPLY * BITS_PER_BYTE / BAUD_RATE
TICK = 1e-9  # float rounding of the fake clock's sums


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The transport's clock and pyserial's own (its `read_until` times its calls) fake."""
    fake = FakeClock()
    monkeypatch.setattr(transports, "time", types.SimpleNamespace(
        monotonic=fake.monotonic, sleep=fake.sleep))
    monkeypatch.setattr(serial.serialutil.Timeout, "TIME", staticmethod(fake.monotonic))
    return fake


class FakePort(serial.SerialBase):
    """A port that is never opened (so setting its timeouts reconfigures nothing): a byte
    arrives every `interval` s (never a terminator), a read waits for it up to its timeout;
    a write finds the line held (flow control) and waits out its write timeout; `dead`, it
    fails as an unplugged adapter does."""

    def __init__(self, clock: FakeClock, *, interval: float = 0.0, dead: bool = False,
                 arrived: bytes = b"", read_s: float = 0.0) -> None:
        super().__init__(baudrate=BAUD_RATE, timeout=TIMEOUT_S, write_timeout=TIMEOUT_S)
        self.clock = clock
        self.interval = interval
        self.dead = dead
        self.next_byte = clock.now + interval
        self.arrived = bytearray(arrived)  # come already: each byte read at once, in read_s
        self.read_s = read_s

    @property
    def in_waiting(self) -> int:
        return 0

    def reset_input_buffer(self) -> None:
        pass

    def read(self, size: int = 1) -> bytes:
        if self.dead:
            raise serial.SerialException("device reports readiness to read but returned no data")
        if self.arrived:
            taken = bytes(self.arrived[:size])
            del self.arrived[:size]
            self.clock.now += self.read_s * len(taken)
            return taken
        wait = self.next_byte - self.clock.now
        if self.interval <= 0 or wait > self.timeout:
            self.clock.now += self.timeout
            return b""
        self.clock.now = self.next_byte
        self.next_byte += self.interval
        return b"x"

    def write(self, data: bytes) -> int:
        self.clock.now += self.write_timeout
        raise serial.SerialTimeoutException("Write timeout")

    def close(self) -> None:
        pass


@pytest.mark.parametrize("interval", [0.99, 0.5, 0.9])
def test_a_reply_that_trickles_in_ends_at_its_deadline(clock: FakeClock, interval: float) -> None:
    """A byte just within each timeout, never the terminator: the reply fails once its
    deadline (the timeout and the largest reply's transfer) has passed, not up to two
    timeouts later (pyserial's `read_until` ends a call only after the byte read once its
    own timeout has passed, each byte waiting a whole timeout)."""
    transport = SerialTransport(FakePort(clock, interval=interval * TIMEOUT_S), name="bop")
    deadline = TIMEOUT_S + LARGEST_TRANSFER_S
    with pytest.raises(InstrumentTimeout):
        transport.read()
    assert clock.now <= deadline + TICK
    assert clock.now >= deadline - interval * TIMEOUT_S  # read while the bytes kept coming
    assert transport.port.timeout == TIMEOUT_S  # the last wait's shortening undone


class FewBytes(FakePort):
    """A `FakePort` whose bytes stop after `count` (then each read waits out its timeout)."""

    def __init__(self, clock: FakeClock, *, interval: float, count: int) -> None:
        super().__init__(clock, interval=interval)
        self.left = count

    def read(self, size: int = 1) -> bytes:
        if self.left <= 0:
            self.interval = 0.0
        taken = super().read(size)
        self.left -= len(taken)
        return taken


def test_a_reply_that_trickles_in_over_a_visa_serial_line_ends_at_its_deadline(
        clock: FakeClock) -> None:
    """A VISA serial resource through pyvisa-py (ASRL…::INSTR; here a loop:// one, its
    pyserial port the fake): read as `SerialTransport` reads, by the timeout and the largest
    reply's transfer however the reply trickles in. Unfixed, pyvisa-py's read gave each
    20 kB piece of a reply its own timeout, and each byte within it a timeout more (here,
    bytes that kept coming for three pieces, it read every one of them)."""
    transport = VisaTransport.open("ASRLloop://::INSTR", timeout=TIMEOUT_S,
                                   baud_rate=BAUD_RATE, visa_library="@py")
    session = transport.resource.visalib.sessions[transport.resource.session]
    loop, session.interface = session.interface, FewBytes(
        clock, interval=0.9 * TIMEOUT_S, count=3 * 20 * 1024)
    try:
        start = clock.now
        with pytest.raises(InstrumentTimeout):
            transport.read()
        assert clock.now - start <= TIMEOUT_S + LARGEST_TRANSFER_S + TICK
        assert session.interface.timeout == TIMEOUT_S  # the last wait's shortening undone
    finally:
        transport.close()
        loop.close()


def test_a_reply_over_a_visa_serial_line_ends_once_its_read_is_stopped(
        clock: FakeClock) -> None:
    """An abort amid a long reply on a VISA serial line through pyvisa-py (a lock-in's buffer
    piece, `reply_stop`): the read ends with `ReadStopped` within `STOP_SLICE_S` of the stop,
    as on a pyserial line. Unfixed, the VISA serial read, though read byte by byte as a
    pyserial line's is, never asked the stop: it went on to the reply's deadline (an SR860's
    64 kB block, over a minute at 9600 baud)."""
    transport = VisaTransport.open("ASRLloop://::INSTR", timeout=TIMEOUT_S,
                                   baud_rate=BAUD_RATE, visa_library="@py")
    session = transport.resource.visalib.sessions[transport.resource.session]
    interval = 0.01
    loop, session.interface = session.interface, FakePort(clock, interval=interval)
    stop_at = clock.now + 0.5
    try:
        with reply_stop.stoppable(lambda: clock.now >= stop_at), pytest.raises(ReadStopped):
            transport.read()
        assert clock.now <= stop_at + STOP_SLICE_S + interval + TICK
        assert session.interface.timeout == TIMEOUT_S
    finally:
        transport.close()
        loop.close()


def test_a_reply_that_has_come_is_read_whole_though_reading_it_ends_past_its_deadline(
        clock: FakeClock) -> None:
    """No byte is waited for past the deadline, but one that has come is still read (as on a
    raw socket): a long reply read slower than the line brought it (a fast line, a busy
    computer) is not failed for that."""
    reply = b"1.5e-3," * 5000
    cpu_s = 2 * (TIMEOUT_S + LARGEST_TRANSFER_S) / len(reply)
    transport = SerialTransport(FakePort(clock, arrived=reply + b"\n", read_s=cpu_s),
                                name="lockin")
    assert transport.read() == reply.decode()
    assert clock.now > TIMEOUT_S + LARGEST_TRANSFER_S
    assert transport.port.timeout == TIMEOUT_S


def test_a_block_that_trickles_in_ends_at_its_deadline(clock: FakeClock) -> None:
    """A definite-length block's bytes read by their length end by the time they take at
    the baud rate and a timeout too, not a timeout past it."""
    transport = SerialTransport(FakePort(clock, interval=0.99 * TIMEOUT_S), name="lockin")
    with pytest.raises(InstrumentTimeout):
        transport._exactly(8)
    assert clock.now <= TIMEOUT_S + 8 * BITS_PER_BYTE / BAUD_RATE + TICK


def test_a_port_reopened_before_a_command_is_reopened_within_the_commands_time(
        clock: FakeClock) -> None:
    """A USB-serial adapter unplugged and plugged in again: the next command reopens the
    port, and the reopen and the command's write (held by flow control) share the write's
    timeout, as `safe_bound.command_s` counts it; the reopen is given no more than that."""
    given: list[float] = []

    def reopen(within: float = 5.0) -> serial.SerialBase:  # pyserial's socket:// default
        given.append(within)
        clock.now += 0.6 * TIMEOUT_S  # the adapter slow to come back
        return FakePort(clock)

    transport = SerialTransport(FakePort(clock, dead=True), name="bop", reopen=reopen)
    with pytest.raises(InstrumentLost):
        transport.read()
    start = clock.now
    with pytest.raises(InstrumentTimeout, match="could not send"):
        transport.query("CURR?")
    assert given == [pytest.approx(TIMEOUT_S)]
    assert clock.now - start <= TIMEOUT_S + TICK
    assert transport.port.write_timeout == TIMEOUT_S  # the write's shortening undone


def test_a_reopen_with_no_time_left_says_so_and_opens_nothing(clock: FakeClock) -> None:
    """A reopen that would start past the call's deadline is not tried."""
    opened: list[float] = []

    def reopen(within: float = 5.0) -> serial.SerialBase:
        opened.append(within)
        return FakePort(clock)

    def slow_close() -> None:
        clock.now += 2 * TIMEOUT_S  # an adapter's driver slow to let go

    transport = SerialTransport(FakePort(clock, dead=True), name="bop", reopen=reopen)
    with pytest.raises(InstrumentLost):
        transport.read()
    transport.port.close = slow_close  # type: ignore[method-assign]
    with pytest.raises(InstrumentLost, match="could not be reopened: no time left"):
        transport.write("OUTP OFF")
    assert opened == []


def _spy_connects(monkeypatch: pytest.MonkeyPatch) -> list[float | None]:
    """The timeouts TCP connects are made with, from now on."""
    timeouts: list[float | None] = []
    real: Callable[..., socket.socket] = transports._connect_within

    def connect_within(address: tuple[str, int], seconds: float) -> socket.socket:
        timeouts.append(seconds)
        return real(address, seconds)

    monkeypatch.setattr(transports, "_connect_within", connect_within)
    return timeouts


def test_a_serial_over_lan_port_connects_within_the_links_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """pyserial's socket:// connect waits 5 s whatever the port's timeout (a reopen after
    the adapter vanished, its SYNs unanswered, outlasted the exchange it was made for): it
    is given the link's timeout on opening, and on reopening what is left of the command's
    time; closing the old port does not pause (pyserial's sleeps 0.3 s)."""
    timeouts = _spy_connects(monkeypatch)
    pauses: list[float] = []
    monkeypatch.setattr(protocol_socket, "time", types.SimpleNamespace(sleep=pauses.append))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        transport = SerialTransport.open(f"socket://127.0.0.1:{port}", baud_rate=9600,
                                         timeout=0.25)
        try:
            peer, _ = listener.accept()
            peer.close()  # the adapter dropped the connection
            with pytest.raises(InstrumentLost):
                transport.read()
            transport.write("OUTP OFF")  # reopened: a new connection takes it
            again, _ = listener.accept()
            with again:
                assert again.recv(64) == b"OUTP OFF\n"
        finally:
            transport.close()
    assert len(timeouts) == 2
    assert timeouts[0] == 0.25
    assert timeouts[1] is not None and 0 < timeouts[1] <= 0.25
    assert pauses == []


def test_an_rfc2217_port_is_refused_saying_what_to_give_instead() -> None:
    """pyserial's RFC 2217 client cannot be opened with a write timeout (its open raised
    NotImplementedError past the connect and the negotiation, seconds each), and would wait
    seconds to connect or close whatever the link's timeout: refused before any connect,
    naming the raw TCP URL that works."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with pytest.raises(InstrumentLost, match=r"rfc2217.*serial:socket://HOST:PORT"):
            SerialTransport.open(f"rfc2217://127.0.0.1:{port}", baud_rate=9600, timeout=0.25)
        listener.settimeout(0)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing connected


@pytest.mark.parametrize("url", ["socket://127.0.0.1", "socket://127.0.0.1:99999",
                                 "socket://127.0.0.1:5025?timeout=1"])
def test_a_malformed_serial_over_lan_url_is_refused_saying_what_is_expected(url: str) -> None:
    """A socket:// URL without its port, with one out of range or with an option pyserial
    does not know is an address the profile got wrong: said as such (`InstrumentLost`, as
    any port that cannot be opened), never pyserial's parse's own TypeError or KeyError
    (the latter raised formatting its message) escaping the connect."""
    with pytest.raises(InstrumentLost, match=r"expected socket://HOST:PORT"):
        SerialTransport.open(url, baud_rate=9600, timeout=0.25)


def test_a_serial_over_lan_connect_is_bounded_across_a_names_addresses(
        clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """An adapter named by a host name with two addresses (IPv6 and IPv4), the first
    unanswered: the connect to the second is given what the first left of the link's
    timeout, not the whole timeout again (`socket.create_connection` gives each its own)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        unanswered = ("127.0.0.2", port)
        given: list[float | None] = []

        class Socket(socket.socket):
            def connect(self, address: object) -> None:
                given.append(self.gettimeout())
                if address == unanswered:  # its SYNs dropped: the wait runs out
                    clock.now += self.gettimeout() or 0.0
                    raise TimeoutError("timed out")
                super().connect(address)  # type: ignore[arg-type]

        def getaddrinfo(host: str, *args: object) -> list[tuple[object, ...]]:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", unanswered),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

        monkeypatch.setattr(socket, "socket", Socket)
        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        with pytest.raises(InstrumentLost, match="cannot open"):
            SerialTransport.open(f"socket://adapter.lab:{port}", baud_rate=9600,
                                 timeout=0.25)
    assert given == [pytest.approx(0.25)]  # no time left for the second address


class AnsweringPort(serial.SerialBase):
    """An open port (each change of a timeout reconfigures it: counted) that takes every
    command at once and answers each query at once."""

    def __init__(self) -> None:
        super().__init__(baudrate=BAUD_RATE, timeout=TIMEOUT_S, write_timeout=TIMEOUT_S)
        self.is_open = True
        self.reconfigured = 0
        self.reply = bytearray()

    def _reconfigure_port(self, force_update: bool = False) -> None:
        self.reconfigured += 1

    @property
    def in_waiting(self) -> int:
        return 0

    def write(self, data: bytes) -> int:
        if data.endswith(b"?\n"):
            self.reply += b"1.5\n"
        return len(data)

    def read(self, size: int = 1) -> bytes:
        taken = bytes(self.reply[:size])
        del self.reply[:size]
        return taken


def test_a_command_on_a_sound_port_leaves_its_settings_alone() -> None:
    """The write's timeout is shortened only where a reopen before it took some of it: a
    command on a sound port (the µs the call's own code took before it are no reason)
    does not reconfigure the port, which a change of a timeout does (on Windows the whole
    line's state is set again, three times a command)."""
    port = AnsweringPort()
    transport = SerialTransport(port, name="bop")
    transport.write("CURR 0.5")
    assert transport.query("CURR?") == "1.5"
    assert port.reconfigured == 0


def test_a_serial_over_lan_connect_goes_past_an_address_family_the_system_lacks(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A name with an IPv6 address on a system without IPv6: its IPv4 address is connected
    to, as `socket.create_connection` does."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        class Socket(socket.socket):
            def __init__(self, family: int = -1, *args: object, **kwargs: object) -> None:
                if family == socket.AF_INET6:
                    raise OSError(97, "Address family not supported by protocol")
                super().__init__(family, *args, **kwargs)  # type: ignore[arg-type]

        def getaddrinfo(host: str, *args: object) -> list[tuple[object, ...]]:
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

        monkeypatch.setattr(socket, "socket", Socket)
        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        transport = SerialTransport.open(f"socket://adapter.lab:{port}", baud_rate=9600,
                                         timeout=0.25)
        transport.close()
