"""Transports onto real hardware: pyvisa message resources and pyserial ports.

`open_transport(address, link)` picks by address:
- a VISA resource string (GPIB0::8::INSTR, TCPIP0::host::port::SOCKET, TCPIP::host::INSTR,
  USB0::...::INSTR, ASRL/dev/ttyUSB0::INSTR with the profile's baud rate) opens through pyvisa,
  with the VISA library pyvisa finds (PYVISA_LIBRARY, ~/.pyvisarc, else an installed one; '@py'
  is the pure-Python pyvisa-py);
- "serial:<port or pyserial URL>" (serial:/dev/ttyUSB0, serial:COM3, serial:loop://) opens
  through pyserial.
Messages are LF terminated both ways. A reply that does not come within the timeout raises
`InstrumentTimeout`; a link that is gone (unplugged, socket closed, no such resource) raises
`InstrumentLost`.

Every call returns within a bounded time. A write too: one that cannot go out (the instrument
stopped reading and the link's buffers are full) raises `InstrumentTimeout` once the link's
timeout is spent, as a lost reply does, and a query's command and reply share that one timeout
(`VisaTransport.query`), so an exchange costs a timeout at most however slowly the command is
taken; on a serial line the write has a timeout of its own before the reply's
(`safe_bound.command_s`). pyvisa-py's write on a raw socket waits for room without end, so the
transport sends on the socket itself there (`_send_within`); over VXI-11 (TCPIP::host::INSTR)
and HiSLIP (TCPIP::host::hislip0::INSTR) its write can outlast the timeout too (VXI-11 waits
for the instrument's confirmation a second longer, and a message larger than the buffers'
room without end; HiSLIP gives each packet of a long message the whole timeout), so there the
connection is cut at the deadline (`deadline_cut`) and opened again before its next use; so
are its reads and device clears (VXI-11 waits for an instrument that does not answer a second
past the timeout). Opening such an instrument, or a serial-over-LAN adapter through pyvisa-py
(ASRLsocket://host:port::INSTR), is given up at the link's timeout (pyvisa-py waits 5 s and
more for one that accepts the connection and does not answer it), the first open as a reopen;
a GPIB, USB or local serial port's open is the VISA library's.
A raw TCP socket (`...::SOCKET`) has no device clear: pyvisa-py's `clear()` on one only
drains what the socket holds, and loops forever once the peer has closed it (`select` keeps
reporting the socket readable, `recv` keeps returning b"", and the loop only ends when
`select` times out). So on a socket `clear()` closes the connection and opens a new one:
what the old one still held (a late reply) goes with it, and
a peer that is gone answers the new connection with a refusal, raised as `InstrumentLost` at
once. A socket that failed is reopened the same way before its next use, so the safety path
(ramping the coils down) gets a fresh connection after a link was dropped. So is a serial port
that failed (a USB-serial adapter unplugged and plugged in again leaves the open one dead),
VISA's ASRL and pyserial's alike (see `SerialTransport`).

pyvisa-py's read on a raw socket whose peer closed it (an instrument power-cycled or crashed,
its server killed) loops the same way until the timeout: a gone instrument was taken for a lost
reply, retried, and said lost only after timeout × attempts. So the transport reads on the
socket itself too (`_line_within`): the end of the stream, or a reset, raises
`ConnectionClosed` (an `InstrumentLost`) at once ("the instrument closed the connection"), and
the socket is reopened before its next use. The link takes it as a lost reply (retried on the
new connection unless reading clears what it reports), so a supply whose server restarted once
mid-ramp-down is still ramped down; an instrument gone for good refuses the reconnect, lost at
once.

A serial line (pyserial, or a VISA ASRL resource) has no device clear either, and a flush drops
only what has arrived: the rest of a reply that came late or cut short would be read as the
answer to the next query. So `clear` there also drops what goes on arriving until the line has
been quiet for the timeout (bounded; see `SerialTransport`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pyvisa
import serial
from pyvisa import constants, rname
from pyvisa.resources import MessageBasedResource
from serial.urlhandler import protocol_socket

from drivers import reply_stop
from drivers.deadline_cut import Cut, close_at_once, lan_instrument_sockets, opened_within
from drivers.host_lookup import stream_addresses
from drivers.link import ConnectionClosed, shown
from smm_daq.errors import InstrumentLost, InstrumentTimeout, ProtocolError, ReadStopped
from smm_daq.instruments.interfaces import STOP_SLICE_S
from smm_daq.instruments.profile import LinkSettings
from smm_daq.instruments.transport import (
    BITS_PER_BYTE,
    DEFAULT_BAUD_RATE,
    DRAIN_TIMEOUTS,
    LARGEST_REPLY,
    SERIAL_PREFIX,
    Transport,
)

TERMINATION = "\n"
ENCODING = "latin-1"  # instruments' 8-bit code page (PI answers "µm" as 0xB5 0x6D); ASCII-safe
_LF = TERMINATION.encode("ascii")
DRAIN_CHUNK = 4096
# a query's command that went out quicker leaves its reply the whole timeout (what setting
# the timeout for the read and back would cost, tens of µs a query, is the exchange's own
# code's time, which no bound counts)
_WRITE_UNCOUNTED_S = 0.001
# a serial read's shortest wait for a byte near its deadline: closer, it waits for none
_LEAST_WAIT_S = 0.001
# the most a VXI-11 instrument is asked to give up a read before its cut
_CUT_MARGIN_S = 0.05


def open_transport(
    address: str, link: LinkSettings, *, visa_library: str | None = None
) -> Transport:
    """Open the connection `address` names, with the link's timeout and baud rate."""
    if address.startswith(SERIAL_PREFIX):
        return SerialTransport.open(
            address[len(SERIAL_PREFIX) :],
            baud_rate=link.baud_rate or DEFAULT_BAUD_RATE,
            timeout=link.timeout_s,
        )
    return VisaTransport.open(
        address, timeout=link.timeout_s, baud_rate=link.baud_rate, visa_library=visa_library
    )


def is_raw_socket(address: str) -> bool:
    """A VISA raw-socket resource (TCPIP[n]::host::port::SOCKET)."""
    return address.strip().upper().endswith("::SOCKET")


@contextlib.contextmanager
def _waited_for_reopen(reopening: threading.Lock) -> Iterator[float]:
    """`reopening` held (one reopen at a time: a drain aside's and a Stop's, `Link`), and
    the seconds waited for it: another thread's reopen, bounded by its own deadline, which
    the waiting call adds to its own deadline, lest that reopen take its time."""
    asked = time.monotonic()
    with reopening:
        yield time.monotonic() - asked


class VisaTransport:
    """A pyvisa message-based resource as a `Transport`.

    `reopen` (a raw socket's): opens the same resource again, for `clear` and after a failure;
    `reopen_failed` (a serial port's, ASRL: a USB-serial adapter plugged in again leaves the
    open one dead) only after a failure, before the next use (`reopen`'s when not given).
    """

    def __init__(
        self,
        resource: MessageBasedResource,
        *,
        name: str,
        reopen: Callable[[], MessageBasedResource] | None = None,
        reopen_failed: Callable[[], MessageBasedResource] | None = None,
    ) -> None:
        self.resource = resource
        self.name = name
        self._reopen = reopen
        self._reopen_failed = reopen_failed or reopen
        self._timeout_ms = resource.timeout  # kept here: a closed resource cannot say it
        self._reply_end = TERMINATION
        # a raw socket's bytes received past the last reply read (read on the socket itself)
        self._pending = bytearray()
        self._closed = False
        self._broken = False
        # held while a connection that failed is opened again (`_check_open`): a serial
        # line's drain on a thread of its own (`Link._drop_rest`) and a Stop sent meanwhile
        # open one new connection between them, not one each
        self._reopening = threading.Lock()
        lan = getattr(resource, "interface_type", None) == constants.InterfaceType.tcpip
        # a LAN session (TCPIP::…), or a serial port behind a pyserial URL (ASRLsocket://…):
        # its opening waits seconds whatever the timeout (`_opened_in_time`), so a reopen is
        # bounded by its exchange's deadline (`_reconnect`)
        self._open_within = lan or _is_serial_url(name)
        # a VXI-11 or HiSLIP session (TCPIP::…::INSTR): its reads and device clears are cut
        # at their deadline
        self._lan_instrument = lan and reopen is None
        # a HiSLIP session through pyvisa-py, whose read that timed out may leave part of a
        # packet in its client (read as the start of the next reply): opened again after
        # one. A vendor library's (NI, Keysight) keeps its session: a lost reply is retried
        # on it, never made to wait on a reopen that may be slow
        self._hislip = _is_hislip(name) and bool(lan_instrument_sockets(resource))
        # the deadline of the last write, where no reply was read since (`close`)
        self._sent_by: float | None = None

    @classmethod
    def open(
        cls,
        address: str,
        *,
        timeout: float,
        baud_rate: int | None = None,
        visa_library: str | None = None,
    ) -> VisaTransport:
        parsed = _parsed(address)
        if isinstance(parsed, rname.ASRLInstr) and parsed.board.lower().startswith("rfc2217://"):
            # pyvisa-py opens it with pyserial's RFC 2217 client (`_open_port`)
            raise InstrumentLost(f"cannot open: {_RFC2217_REFUSED} ASRLsocket://HOST:PORT::INSTR",
                                 instrument=address)
        manager = _resource_manager(address, visa_library)  # loaded outside any bound

        def connect() -> MessageBasedResource:
            return _open_resource(manager, address, timeout, baud_rate)

        resource = _opened_in_time(address, connect, timeout)
        # a serial port, a VXI-11 or HiSLIP connection that failed (or was cut at a write's
        # deadline) is opened again before its next use
        again = resource.interface_type in (constants.InterfaceType.asrl,
                                            constants.InterfaceType.tcpip)
        return cls(resource, name=address, reopen=connect if is_raw_socket(address) else None,
                   reopen_failed=connect if again else None)

    @property
    def timeout(self) -> float:
        ms = self._timeout_ms
        return float("inf") if ms is None else float(ms) / 1000.0

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        self.resource.timeout = seconds * 1000.0
        self._timeout_ms = self.resource.timeout

    def _failed(self, exc: Exception) -> Exception:
        if _is_visa_timeout(exc):
            return InstrumentTimeout(f"no reply within {self.timeout:g} s", instrument=self.name)
        self._broken = True
        return InstrumentLost(f"link failed: {exc}", instrument=self.name)

    def _not_ascii(self, exc: UnicodeDecodeError) -> ProtocolError:
        return ProtocolError(f"reply is not ASCII: {exc.object!r}", instrument=self.name)

    def _closed_by_peer(self) -> ConnectionClosed:
        """A raw socket the instrument closed or reset: opened again before its next use."""
        self._broken = True
        return ConnectionClosed("the instrument closed the connection (switched off, "
                                "restarted or its server stopped); it is opened again before "
                                "its next use", instrument=self.name)

    def _not_sent(self) -> InstrumentTimeout:
        return InstrumentTimeout(
            f"could not send within {self.timeout:g} s (the instrument takes no more input)",
            instrument=self.name,
        )

    def _check_open(self, deadline: float | None = None) -> float:
        """Raise if closed; a connection that failed is opened again, by `deadline`
        (time.monotonic(); a timeout from now if not given). Returns `deadline` moved on by
        the time waited for another thread's reopen (`_waited_for_reopen`), not the call's."""
        if self._closed:
            raise InstrumentLost("link closed", instrument=self.name)
        if deadline is None:
            deadline = time.monotonic() + self.timeout
        if self._broken and self._reopen_failed is not None:
            with _waited_for_reopen(self._reopening) as waited:
                deadline += waited
                if self._broken and not self._closed:
                    self._reconnect(deadline)
            if self._closed:  # closed meanwhile (a drain aside holds no link lock): the
                # connection opened after the close is closed too, not left open for good
                with contextlib.suppress(Exception):
                    _close_serial_url_port(self.resource)
                    self.resource.close()
                raise InstrumentLost("link closed", instrument=self.name)
        return deadline

    def _reconnect(self, deadline: float | None = None) -> None:
        """Drop the connection and open a new one (raw sockets; serial ports, VXI-11 and
        HiSLIP connections that failed): InstrumentLost if none. Over LAN the opening is given
        up at `deadline` (time.monotonic(); a timeout from now if not given): VXI-11's and
        HiSLIP's wait seconds for an instrument that does not answer whatever the timeout,
        pyserial's socket:// connect 5 s, and a host name's lookup (a raw socket's too) as
        long as the name server takes."""
        assert self._reopen_failed is not None
        self._broken = True
        with contextlib.suppress(Exception):  # the old socket may be gone already
            _close_serial_url_port(self.resource)  # pyserial's socket:// close pauses
            close_at_once(self.resource)  # a VXI-11 link's: no wait for a hung instrument
        if deadline is None:
            deadline = time.monotonic() + self.timeout
        left = deadline - time.monotonic()
        try:
            if self._open_within:  # no time left: no opening is started
                self.resource = opened_within(self._reopen_failed, left)
            else:
                self.resource = self._reopen_failed()
        except InstrumentLost as exc:
            raise InstrumentLost(f"the link failed and could not be reopened: {exc}",
                                 instrument=self.name) from exc
        except TimeoutError as exc:
            why = "the instrument does not answer" if left > 0 else "no time was left for it"
            raise InstrumentLost(f"the link failed and could not be reopened within "
                                 f"{self.timeout:g} s ({why})", instrument=self.name) from exc
        self.resource.timeout = self._timeout_ms
        self.resource.read_termination = self._reply_end
        self._pending.clear()
        self._broken = False

    def expect_reply_end(self, end: str) -> None:
        """End replies at `end` from now on (an SR830 ends them with CR on its RS-232 port)."""
        self._reply_end = end
        self.resource.read_termination = end

    @property
    def baud_rate(self) -> int | None:
        """The serial line's bits per second (ASRL), or None on a bus that has none."""
        if self.resource.interface_type != constants.InterfaceType.asrl:
            return None
        return int(self.resource.baud_rate)  # type: ignore[attr-defined]

    def write(self, message: str) -> None:
        """Send `message` within the timeout, a reconnect first (a raw socket's that failed)
        within it too (`query`), a wait for another thread's reconnect not (`_check_open`)."""
        deadline = self._check_open(time.monotonic() + self.timeout)
        self._write(message, deadline)
        self._sent_by = deadline

    def _write(self, message: str, deadline: float) -> None:
        """Send `message` by `deadline` (time.monotonic()), else `InstrumentTimeout`: on a
        raw socket through the socket itself (pyvisa-py's write waits for room without end);
        over VXI-11 or HiSLIP through VISA, the connection cut at the deadline (pyvisa-py's
        write there can outlast its timeout, `deadline_cut`) and opened again before its next
        use; elsewhere through VISA, whose timeout bounds a write as it does a read."""
        sock = _raw_socket(self.resource) if self._reopen is not None else None
        try:
            if sock is None:
                with Cut(self.resource, deadline) as cut:
                    self.resource.write(message)
                if cut.fired:  # it went just as the connection was cut
                    self._broken = True
                return
            data = (message + self.resource.write_termination).encode(self.resource.encoding)
            _send_within(sock, data, deadline)
        except TimeoutError as exc:
            # what went of the command is unknown: the next use opens a new connection
            self._broken = True
            raise self._not_sent() from exc
        except _CLOSED_BY_PEER as exc:
            if sock is None:
                raise self._failed(exc) from exc
            raise self._closed_by_peer() from exc
        except (pyvisa.Error, OSError) as exc:
            if _is_visa_timeout(exc):  # a VISA write's own timeout: a command, not a reply, lost
                raise self._not_sent() from exc
            raise self._failed(exc) from exc

    def read(self) -> str:
        """The next reply, within the timeout (`_read_by`); on a serial line (ASRL) through
        pyvisa-py, by the timeout and the time the largest reply takes at the baud rate,
        however it trickles in (`_serial_read`)."""
        self._check_open()
        if _serial_port(self.resource) is not None:
            return self._serial_read()
        return self._read_by(time.monotonic() + self.timeout)

    def query(self, message: str) -> str:
        """Send `message` and read its reply within one timeout: the time the command took to
        go out (an instrument slow to take it) is the reply's less. On a serial line (ASRL)
        the reply keeps its own timeout, as its read waits for the largest reply's transfer
        too (`SerialTransport.query`). A raw socket that failed is opened again first, within
        that timeout too (its connect's `open_timeout`; a VXI-11 or HiSLIP connection's
        opening, which waits seconds for an instrument that does not answer, is given up at
        the deadline: `_reconnect`): the exchange is left what the reconnect did not take,
        so that a reconnect adds nothing to the time `safe_bound` counts for it (a timeout,
        and the device clear's, which reconnects too)."""
        deadline = time.monotonic() + self.timeout
        self._drop_unasked()
        self._check_open(deadline)
        self._write(message, deadline)
        if self._broken:  # the command went as its connection was cut at the deadline
            raise InstrumentTimeout(f"no reply within {self.timeout:g} s", instrument=self.name)
        if self.resource.interface_type == constants.InterfaceType.asrl:
            return self.read()
        return self._read_by(deadline)

    def _read_by(self, deadline: float) -> str:
        """The next reply by `deadline` (time.monotonic(); none left: only what has come). On a
        raw socket read on the socket itself, so that a peer that closed the connection is
        `InstrumentLost` at once. Over VXI-11 or HiSLIP the connection is cut at the deadline
        (`deadline_cut`: pyvisa-py's VXI-11 read waits for an instrument that does not answer
        a second past its timeout, its HiSLIP read the whole timeout for each piece of a reply
        that trickles in, and both read a long reply in pieces of 20 kB, each given the whole
        timeout), a VXI-11 instrument asked to wait a little less (`_cut_margin`), so that
        one that answers its own timeout keeps the connection. A HiSLIP read through
        pyvisa-py that timed out is opened again all the same (its socket's timeout is the
        deadline too): what came of the reply (part of a packet) would be read as the start
        of the next one; a vendor library's session is kept (nothing is cut there). A
        deadline less than `_WRITE_UNCOUNTED_S` short of a timeout from now (a query's
        command that went out at once) gives the whole timeout."""
        now = time.monotonic()
        if deadline - now >= self.timeout - _WRITE_UNCOUNTED_S:
            deadline = now + self.timeout
        sock = _raw_socket(self.resource) if self._reopen is not None else None
        try:
            if sock is not None:
                line = _line_within(sock, self._pending, self._reply_end.encode(ENCODING),
                                    deadline)
                return line.decode(self.resource.encoding)
            if not self._lan_instrument:
                with self._timeout_until(deadline):
                    return self.resource.read()
            cut = Cut(self.resource, deadline)
            margin = 0.0 if self._hislip else _cut_margin(deadline)
            try:
                with cut, self._timeout_until(deadline - margin):
                    return self.resource.read()
            except pyvisa.VisaIOError as exc:
                if self._hislip and _is_visa_timeout(exc):
                    self._broken = True
                raise
            finally:
                if cut.fired:  # the connection is gone: the next use opens a new one
                    self._broken = True
        except TimeoutError as exc:
            self._pending.clear()  # a reply cut short is dropped, as pyvisa's read drops it
            raise InstrumentTimeout(f"no reply within {self.timeout:g} s",
                                    instrument=self.name) from exc
        except EOFError as exc:
            raise self._closed_by_peer() from exc
        except (pyvisa.Error, OSError) as exc:
            raise self._failed(exc) from exc
        except UnicodeDecodeError as exc:
            raise self._not_ascii(exc) from exc

    @contextlib.contextmanager
    def _timeout_until(self, deadline: float) -> Iterator[None]:
        """The resource's timeout what is left until `deadline` (1 ms at least: none would
        make a HiSLIP socket non-blocking) while in the block, where that is less than the
        link's timeout by more than the call's own code takes."""
        left_s = deadline - time.monotonic()
        if not math.isfinite(left_s) or left_s >= self.timeout - _WRITE_UNCOUNTED_S:
            yield
            return
        self.resource.timeout = max(1, int(left_s * 1000.0))
        try:
            yield
        finally:
            with contextlib.suppress(pyvisa.Error, OSError):  # a failed link: set on reopening
                self.resource.timeout = self._timeout_ms

    def _serial_read(self) -> str:
        """The next reply on a serial line through pyvisa-py, read on its pyserial port as
        `SerialTransport` reads one (`_line_by`): pyvisa-py's read gives each 20 kB piece of a
        reply the timeout, and each byte within it a timeout more, so a reply that trickles
        in ran to about two timeouts a piece. A stop asked for the read (`reply_stop`) is
        asked every `STOP_SLICE_S` of it, as on a pyserial line."""
        port = _serial_port(self.resource)
        assert port is not None
        transfer = LARGEST_REPLY * BITS_PER_BYTE / float(port.baudrate)
        deadline = time.monotonic() + self.timeout + transfer
        end = self._reply_end.encode(ENCODING)
        stop = reply_stop.current()
        ask = None if stop is None else functools.partial(_ask_stop, stop, self.name)
        try:
            line = _line_by(port, b"", end, deadline, self.timeout, self.name, ask)
            self._sent_by = None  # a reply: what was written before it arrived
            return line.decode(self.resource.encoding)
        except (serial.SerialException, OSError) as exc:
            raise self._failed(exc) from exc
        except UnicodeDecodeError as exc:
            raise self._not_ascii(exc) from exc

    def _drop_unasked(self) -> None:
        """Drop what a raw socket or a serial line (ASRL) received after the last reply read
        and before this query, waiting for nothing: an instrument that sent a line more (a
        second reply, an extra terminator) had it read as the reply to the next query, and
        every later one as the reply to the query before it. On a socket what came with the
        last reply (`_pending`) and what has arrived since (`_drop_received`: read on the
        socket itself, as replies are, not through the VISA library's buffer); on a serial
        line what has arrived. A line that comes later than the next query still reaches it.
        Over GPIB and USB nothing is dropped here: an IEEE 488.2 instrument discards an unread
        reply itself when the next query comes."""
        if self._broken:
            return
        self._pending.clear()
        sock = None
        with contextlib.suppress(pyvisa.Error, NotImplementedError, OSError):
            if self._reopen is not None:
                self.resource.flush(constants.BufferOperation.discard_receive_buffer)
                sock = _raw_socket(self.resource)
            elif (self.resource.interface_type == constants.InterfaceType.asrl
                  and self.resource.bytes_in_buffer):  # type: ignore[attr-defined]
                self._discard_arrived()
        if sock is None:
            return
        try:  # the socket's own error (a connection refused, reset) is said as a write says it:
            _drop_received(sock)  # its recv takes the error, which the write would not see
        except _CLOSED_BY_PEER as exc:
            raise self._closed_by_peer() from exc
        except OSError as exc:
            raise self._failed(exc) from exc

    def clear(self) -> None:
        """Device clear (viClear); where the interface has none (serial), flush the buffers;
        a raw socket is closed and opened again (see the module's docstring)."""
        if self._closed:
            raise InstrumentLost("link closed", instrument=self.name)
        if self._reopen is not None:
            self._reconnect()
            return
        deadline = time.monotonic() + self.timeout
        self._check_open(deadline)  # a serial port that failed: opened again first
        try:
            self._device_clear(deadline)
        except (pyvisa.Error, NotImplementedError):
            try:  # the input side only: a command written but not yet sent (a stop) still goes
                self._discard_arrived()
            except (pyvisa.Error, NotImplementedError, OSError) as exc:
                raise self._failed(exc) from exc
        except OSError as exc:
            raise self._failed(exc) from exc
        if self._broken:  # cut as its answer came: closed, opened again before its next use
            return
        if self.resource.interface_type == constants.InterfaceType.asrl:
            self._drain()

    def _device_clear(self, deadline: float) -> None:
        """The resource's device clear; over VXI-11 or HiSLIP cut at `deadline`
        (time.monotonic(): a timeout from the clear's start, a reopen before it within it),
        as pyvisa-py's VXI-11 clear waits for an instrument that does not answer a second
        past the timeout, its HiSLIP clear a timeout on each of its two channels and 0.1 s
        between them: `InstrumentTimeout`, the connection opened again before its next
        use."""
        if not self._lan_instrument:
            self.resource.clear()
            return
        cut = Cut(self.resource, deadline)
        try:
            with cut:
                self.resource.clear()
        except TimeoutError as exc:
            if not cut.fired:
                raise
            raise InstrumentTimeout(f"no answer to the device clear within {self.timeout:g} s",
                                    instrument=self.name) from exc
        finally:
            if cut.fired:
                self._broken = True

    def discard_input(self) -> None:
        """Drop a reply left unread by an earlier program, waiting for nothing: on a serial
        line (ASRL) what has arrived; over GPIB or USB the instrument's output queue (device
        clear). A raw socket's connection is new, and holds nothing from before."""
        if self._reopen is not None:
            self._check_open()
            return
        if self.resource.interface_type != constants.InterfaceType.asrl:
            self.clear()
            return
        self._check_open()
        try:
            self._discard_arrived()
        except (pyvisa.Error, NotImplementedError, OSError) as exc:
            raise self._failed(exc) from exc

    def _discard_arrived(self) -> None:
        """Drop what has arrived (VISA's discard of the read buffer); a serial-over-LAN
        port's under pyvisa-py (ASRLsocket://) within a bound (`_drop_arrived`): its flush is
        pyserial's drop for as long as more comes."""
        port = _serial_port(self.resource)
        if isinstance(port, protocol_socket.Serial) and port.is_open:
            _drop_arrived(port)
            return
        self.resource.flush(constants.BufferOperation.discard_read_buffer)

    def _drain(self) -> None:
        """A serial line (ASRL) has no device clear and a flush drops only what has arrived:
        what goes on arriving is dropped too, until the line has been quiet for the timeout,
        as `SerialTransport.clear` does (bounded alike). Over GPIB and USB the device clear
        empties the instrument's own output queue, and nothing comes unasked."""
        baud = float(getattr(self.resource, "baud_rate", DEFAULT_BAUD_RATE))
        bound = DRAIN_TIMEOUTS * self.timeout + LARGEST_REPLY * BITS_PER_BYTE / baud
        end = time.monotonic() + bound
        try:
            while True:
                try:
                    self.resource.read_bytes(1)  # a byte within the timeout, or quiet
                except pyvisa.VisaIOError as exc:
                    if exc.error_code == constants.StatusCode.error_timeout:
                        return
                    raise
                waiting = self.resource.bytes_in_buffer  # type: ignore[attr-defined]
                if waiting:
                    self.resource.read_bytes(waiting)
                if time.monotonic() > end:
                    raise _not_quiet(bound, self.name)
        except (pyvisa.Error, OSError) as exc:
            raise self._failed(exc) from exc

    def close(self) -> None:
        """Close the session; a serial port behind a pyserial URL (ASRLsocket://) written to
        since its last reply only once that write reached the peer, within what is left of
        the write's timeout, as `SerialTransport.close` does."""
        if not self._closed:
            self._closed = True
            sent_by, self._sent_by = self._sent_by, None
            with contextlib.suppress(pyvisa.Error, OSError):  # a session gone: nothing to wait
                port = _serial_port(self.resource) if sent_by is not None else None
                if sent_by is not None and not self._broken \
                        and isinstance(port, protocol_socket.Serial) and port.is_open \
                        and port._socket is not None:
                    _ended_with_peer(port._socket, sent_by)
            with contextlib.suppress(pyvisa.Error, OSError):  # already gone: best effort
                _close_serial_url_port(self.resource)  # pyserial's socket:// close pauses
                if self._broken:  # a VXI-11 link's close would wait for a hung instrument
                    close_at_once(self.resource)
                else:
                    self.resource.close()


def _resource_manager(address: str, visa_library: str | None) -> pyvisa.ResourceManager:
    """The VISA library's resource manager (the first one loads the library: a quarter of a
    second for pyvisa-py, more for a vendor's)."""
    try:
        return pyvisa.ResourceManager(visa_library or "")
    except Exception as exc:  # no such library, or one that fails to load
        raise InstrumentLost(f"cannot open: {exc}", instrument=address) from exc


def _open_resource(manager: pyvisa.ResourceManager, address: str, timeout: float,
                   baud_rate: int | None) -> MessageBasedResource:
    try:
        resource = manager.open_resource(
            address,
            read_termination=TERMINATION,
            write_termination=TERMINATION,
            timeout=timeout * 1000.0,
            open_timeout=max(1, round(timeout * 1000.0)),
            encoding=ENCODING,
        )
    # pyvisa-py raises a bare Exception when a TCP connection cannot be made in time
    except Exception as exc:
        raise InstrumentLost(f"cannot open: {exc}", instrument=address) from exc
    if not isinstance(resource, MessageBasedResource):
        resource.close()
        raise InstrumentLost(f"{address} is not a message-based resource", instrument=address)
    if baud_rate is not None and resource.interface_type == constants.InterfaceType.asrl:
        resource.baud_rate = baud_rate  # type: ignore[attr-defined]
    if is_raw_socket(address):
        _no_delay(resource)
    return resource


def _is_serial_url(address: str) -> bool:
    """A VISA serial resource behind a pyserial URL (ASRLsocket://host:port::INSTR: a
    serial-over-LAN adapter through pyvisa-py)."""
    parsed = _parsed(address)
    return isinstance(parsed, rname.ASRLInstr) and "://" in parsed.board


def _is_hislip(address: str) -> bool:
    """A HiSLIP instrument (TCPIP::host::hislip0::INSTR)."""
    parsed = _parsed(address)
    return (isinstance(parsed, rname.TCPIPInstr)
            and parsed.lan_device_name.lower().startswith("hislip"))


def _parsed(address: str) -> rname.ResourceName | None:
    try:
        return rname.parse_resource_name(address)
    except (rname.InvalidResourceName, ValueError):
        return None


def _opened_in_time(address: str, connect: Callable[[], MessageBasedResource],
                    seconds: float) -> MessageBasedResource:
    """The resource `connect` opens at `address`; over LAN (TCPIP::…, or a serial-over-LAN
    adapter: `_is_serial_url`) within `seconds`, else `InstrumentLost` saying so.
    pyvisa-py's opening waits seconds there whatever the timeout (VXI-11's portmapper and
    create_link calls, HiSLIP's connect and Initialize; pyserial's socket:// connect; a host
    name's lookup as long as the name server takes), for an instrument that accepts the
    connection and does not answer it as for one that is switched off. A GPIB, USB or local
    serial port's opening is the VISA library's, and may take longer by rights."""
    parsed = _parsed(address)
    if not (isinstance(parsed, rname.TCPIPInstr | rname.TCPIPSocket)
            or _is_serial_url(address)):
        return connect()
    try:
        return opened_within(connect, seconds)
    except TimeoutError as exc:
        advice = _SLOW_OPEN_ADVICE if isinstance(parsed, rname.TCPIPInstr) else ""
        raise InstrumentLost(
            f"not opened within {seconds:g} s (the link's timeout): no answer to the "
            f"connection or to its opening{advice}", instrument=address) from exc


# a VXI-11 or HiSLIP opening is a few calls the instrument (or a LAN-GPIB gateway, which
# asks its GPIB instrument first) answers: one that is on may answer them slower than a short
# timeout allows
_SLOW_OPEN_ADVICE = ("; if the instrument is on (a LAN-GPIB gateway, or a name server, may "
                     "answer slower than that), raise `timeout_s` in its section of the "
                     "profile")


def _is_visa_timeout(exc: Exception) -> bool:
    """Whether `exc` is a VISA call's timeout (VI_ERROR_TMO)."""
    timeout = constants.StatusCode.error_timeout
    return isinstance(exc, pyvisa.VisaIOError) and exc.error_code == timeout


def _not_quiet(seconds: float, name: str) -> InstrumentTimeout:
    return InstrumentTimeout(
        f"the line is not quiet after {seconds:g} s of dropping what arrives", instrument=name)


# what a socket's send or recv raises once the peer has closed the connection (a refusal is
# no such close: the connection was never made)
_CLOSED_BY_PEER = (BrokenPipeError, ConnectionAbortedError, ConnectionResetError)
# a send that waits for nothing, on a blocking socket (not on Windows)
_NO_WAIT: int | None = getattr(socket, "MSG_DONTWAIT", None)


def _raw_socket(resource: MessageBasedResource) -> socket.socket | None:
    """The TCP socket under a pyvisa-py raw-socket session; None with another VISA library."""
    session = getattr(resource.visalib, "sessions", {}).get(resource.session)
    sock = getattr(session, "interface", None)
    return sock if isinstance(sock, socket.socket) else None


def _send_within(sock: socket.socket, data: bytes, deadline: float) -> None:
    """Send all of `data` on `sock` by `deadline` (time.monotonic()), else `TimeoutError`
    (some of it may have gone). The socket is left blocking, as pyvisa-py keeps it; where
    the system can, what has room goes at once without changing that (`_NO_WAIT`)."""
    view = memoryview(data)
    if _NO_WAIT is not None:
        with contextlib.suppress(BlockingIOError):
            view = view[sock.send(view, _NO_WAIT) :]
        if not view:
            return
    try:
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the peer takes no more")
            sock.settimeout(left if math.isfinite(left) else None)
            view = view[sock.send(view) :]
    finally:
        with contextlib.suppress(OSError):  # a socket closed meanwhile
            sock.settimeout(None)


def _line_within(sock: socket.socket, pending: bytearray, end: bytes, deadline: float) -> bytes:
    """The line `pending` and what `sock` receives begin, up to `end` (not included), by
    `deadline` (time.monotonic()), else `TimeoutError` (none left: only what has come); what
    came past it stays in `pending`. `EOFError` where the peer closed the connection (or
    reset it): its `recv` returns b"" at once, where pyvisa-py's read goes on waiting for the
    timeout."""
    while (at := pending.find(end)) < 0:
        left = deadline - time.monotonic()
        wait = None if math.isinf(left) else max(0.0, left)
        ready, _, _ = select.select([sock], [], [], wait)
        if not ready:  # the wait ran out (one cut short by a signal is resumed by select)
            raise TimeoutError("no reply")
        try:
            chunk = sock.recv(DRAIN_CHUNK)
        except _CLOSED_BY_PEER as exc:  # closed with a reset (unread data, or a crash)
            raise EOFError("the peer closed the connection") from exc
        if not chunk:
            raise EOFError("the peer closed the connection")
        pending += chunk
    line = bytes(pending[:at])
    del pending[: at + len(end)]
    return line


def _line_by(port: serial.SerialBase, start: bytes, end: bytes, deadline: float,
             timeout: float, name: str, ask: Callable[[int], None] | None = None) -> bytes:
    """The line `start` begins on `port`, up to `end` (not included), by `deadline`
    (time.monotonic(); `SerialTransport._reply_deadline`), `timeout` the link's, the port's
    read timeout. A reply fails when no byte of it comes for a timeout, or when it has not
    ended by its deadline: a long one (an SR830's TRCA? of 2048 points, 30 kB, half a minute
    at 9600 baud) is read as long as it keeps coming, for at most the timeout and the time
    LARGEST_REPLY takes at the baud rate, however it trickles in: no byte is waited for past
    the deadline (one that has come is still read, as `_line_within` does on a socket); a
    line longer than that is refused. Read byte by byte, as pyserial's `read_until` does, so
    that nothing past the terminator is taken; the port's timeout is changed only within a
    timeout of the deadline (changing it reconfigures the port), to what is left, then to 0
    (only what has come), and set back to `timeout` after. `ask`, when given, is called every
    `STOP_SLICE_S` of the read with the bytes read so far (it raises to stop the read)."""
    line = bytearray(start)
    wait = timeout
    ask_at = time.monotonic() + STOP_SLICE_S
    try:
        while not line.endswith(end):
            if len(line) > LARGEST_REPLY:
                raise ProtocolError(f"a reply longer than {LARGEST_REPLY} bytes, starting "
                                    f"{shown(line[:40].decode(ENCODING))}", instrument=name)
            now = time.monotonic()
            if ask is not None and now >= ask_at:
                ask(len(line))
                ask_at = now + STOP_SLICE_S
            left = deadline - now
            if wait and left < wait:  # a whole wait would end past the deadline
                wait = left if left > _LEAST_WAIT_S else 0.0
                port.timeout = wait
            byte = port.read(1)
            if not byte:
                raise InstrumentTimeout(f"no reply within {timeout:g} s", instrument=name)
            line += byte
    finally:
        if wait != timeout:
            with contextlib.suppress(serial.SerialException, OSError, ValueError):
                port.timeout = timeout  # a port that failed: set on reopening
    return bytes(line[: -len(end)])


def _ask_stop(stop: Callable[[], bool], name: str, read: int) -> None:
    """`ReadStopped` once `stop()` is true, `read` bytes of the reply read: the rest, still
    coming, is the link's to drop before its next exchange."""
    if stop():
        raise ReadStopped(f"the reply was cut after {read} bytes: the read was stopped; "
                          "the rest of it is dropped before the next exchange",
                          instrument=name)


def _serial_port(resource: MessageBasedResource) -> serial.SerialBase | None:
    """The pyserial port under a pyvisa-py serial (ASRL) session; None with another VISA
    library or another interface."""
    sessions = getattr(getattr(resource, "visalib", None), "sessions", {})
    port = getattr(sessions.get(getattr(resource, "session", None)), "interface", None)
    return port if isinstance(port, serial.SerialBase) else None


def _close_serial_url_port(resource: MessageBasedResource) -> None:
    """Close the socket:// port under a pyvisa-py serial session without pyserial's 0.3 s
    pause (`_close_lan_port`): the session's own close then finds it closed."""
    port = _serial_port(resource)
    if isinstance(port, protocol_socket.Serial):
        _close_lan_port(port)


def _cut_margin(deadline: float) -> float:
    """How much sooner than a read's cut at `deadline` a VXI-11 instrument is asked to give
    up (and answer so): a tenth of what is left, 50 ms at most (a LAN's round trip is far
    less)."""
    return min(_CUT_MARGIN_S, max(0.0, deadline - time.monotonic()) / 10.0)


def _no_delay(resource: MessageBasedResource) -> None:
    """TCP_NODELAY on a raw socket: without it a command that has no reply followed at once by
    a query (CURR, then SYST:ERR?) waits for the delayed ACK of the first, 40 ms a command."""
    try:
        resource.set_visa_attribute(constants.ResourceAttribute.tcpip_nodelay, constants.VI_TRUE)
        return
    except Exception:  # pyvisa-py 0.8 registers no setter for it on SOCKET sessions
        pass
    sock = _raw_socket(resource)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class SerialTransport:
    """A pyserial port (or a pyserial URL: socket:// for serial-over-LAN adapters; not
    rfc2217://, see `_open_port`) as a `Transport`, LF-terminated (replies too, unless
    `expect_reply_end` says otherwise); a `BlockTransport`: binary blocks are read by their
    length.

    A serial line has no device clear, and a reply the instrument is still sending when an
    exchange failed (one that came late, or was cut by a timeout or garbled) would be read as
    the answer to the next query, and every later answer one query behind. So `clear` drops
    what is buffered both ways and then whatever goes on arriving, until the line has been
    quiet for the link's timeout; what was written is let go out first (a stop written just
    before a garbled reply is never dropped), and only what a blocked line still holds after
    the time it takes at the baud rate and a timeout is dropped. It is bounded: a line that
    never goes quiet (an instrument that keeps sending) raises `InstrumentTimeout` after
    DRAIN_TIMEOUTS timeouts and the time the largest reply takes at the baud rate.

    A port that failed (a USB-serial adapter unplugged and plugged in again leaves the open
    one dead for good; a serial-over-LAN connection dropped) is closed and opened again by
    its next use or device clear (`reopen`, given by `open`): one try each time, within the
    time of the call that makes it (a command's write timeout; a connect over LAN is given
    what is left of it), so no call waits on more than one open, nor longer for it; where it
    fails, `InstrumentLost` says the port could not be reopened. The exchange that found it
    failed ends in `InstrumentLost`, never sent once more on the port opened again: what the
    dead port took without complaint (a write into a dropped connection succeeds; a `MOV` or
    `CURR` before the query) may never have arrived, and the query sent again (`ERR?`,
    `SYST:ERR?`) would answer "no error" for it; a query that did arrive may have cleared what
    it reads (an error queue, `LIAS?`'s latch).
    """

    def __init__(self, port: serial.SerialBase, *, name: str,
                 reopen: Callable[[float], serial.SerialBase] | None = None) -> None:
        self.port = port
        self.name = name
        self._timeout_s = float(port.timeout)  # the link's; a read near its deadline waits less
        self._reply_end = _LF  # what ends a reply
        self._reopen = reopen  # opens the port again, its connect within the seconds given
        self._broken = False  # the port failed: reopened before its next use
        self._closed = False  # closed by `close`: never reopened
        # held while the port is opened again (`_check_open`): a drain on a thread of its own
        # (`Link._drop_rest`) and a Stop sent meanwhile open one new port between them
        self._reopening = threading.Lock()
        # the deadline of the last write, where no reply was read since: a close before it
        # lets that write reach the peer first (`close`)
        self._sent_by: float | None = None

    def expect_reply_end(self, end: str) -> None:
        """End replies at `end` from now on (an SR830 ends them with CR on its RS-232 port)."""
        self._reply_end = end.encode(ENCODING)

    @property
    def baud_rate(self) -> int:
        """The line's bits per second."""
        return int(self.port.baudrate)

    @classmethod
    def open(cls, url: str, *, baud_rate: int, timeout: float) -> SerialTransport:
        def connect(within: float) -> serial.SerialBase:
            return _open_port(url, baud_rate=baud_rate, timeout=timeout, connect_within=within)

        try:
            port = connect(timeout)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise InstrumentLost(f"cannot open: {exc}", instrument=url) from exc
        return cls(port, name=url, reopen=connect)

    @property
    def timeout(self) -> float:
        return self._timeout_s

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        self.port.timeout = seconds
        self.port.write_timeout = seconds
        self._timeout_s = float(seconds)

    def _lost(self, exc: Exception) -> InstrumentLost:
        self._broken = True
        again = "; it is opened again before its next use" if self._reopen is not None else ""
        return InstrumentLost(f"link failed: {exc}{again}", instrument=self.name)

    def _check_open(self, deadline: float) -> float:
        """Close a port that failed and open it again (one try), keeping its settings, by
        `deadline` (time.monotonic()): the time of the call that uses it (a command's, or a
        device clear's share that letting out what was written takes, none on a new port),
        so that a reopen adds nothing to what `safe_bound` counts for the call. Returns
        `deadline` moved on by the time waited for another thread's reopen (a drain aside's:
        `_waited_for_reopen`), which is not the call's."""
        if self._closed:
            raise InstrumentLost("link closed", instrument=self.name)
        if not self._broken or self._reopen is None:
            return deadline
        with _waited_for_reopen(self._reopening) as waited:
            deadline += waited
            if self._broken and not self._closed:
                self._reopen_by(deadline)
        if self._closed:  # closed meanwhile (a drain aside holds no link lock): the port
            # opened after the close is closed too, not left open for good
            with contextlib.suppress(Exception):
                self.port.close()
            raise InstrumentLost("link closed", instrument=self.name)
        return deadline

    def _reopen_by(self, deadline: float) -> None:
        """The port closed and opened again, by `deadline` (`_check_open`)."""
        assert self._reopen is not None
        with contextlib.suppress(Exception):  # the old port may be gone already
            self.port.close()
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                raise serial.SerialException(f"no time left within {self.timeout:g} s")
            port = self._reopen(left)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise InstrumentLost(f"the port failed and could not be reopened: {exc}",
                                 instrument=self.name) from exc
        self.port = port
        self.timeout = self._timeout_s
        self._broken = False

    def _timed_out(self) -> InstrumentTimeout:
        return InstrumentTimeout(f"no reply within {self.timeout:g} s", instrument=self.name)

    def _transfer_time(self, size: int) -> float:
        """Seconds `size` bytes take on the line at its baud rate."""
        return size * BITS_PER_BYTE / float(self.port.baudrate)

    def _reply_deadline(self) -> float:
        """When a reply starting now must have ended (time.monotonic()): the timeout and the
        time the largest reply takes at the baud rate (`safe_bound.exchange_s`)."""
        return time.monotonic() + self.timeout + self._transfer_time(LARGEST_REPLY)

    def write(self, message: str) -> None:
        """Send `message` within the write timeout, a reopen first within it too; a wait for
        another thread's reopen is not counted in it (`_check_open`), so that a Stop sent
        while a drain aside reopens the port is not refused for want of time."""
        deadline = self._check_open(time.monotonic() + self.timeout)
        self._send(message, deadline)

    def _send(self, message: str, deadline: float) -> None:
        """Write `message` by `deadline` (time.monotonic()): the port's write timeout, or
        what is left of it after a reopen."""
        data = (message + TERMINATION).encode(ENCODING)
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                raise serial.SerialTimeoutException("no time left")
            with self._waiting("write_timeout", left):
                self.port.write(data)
            self._sent_by = deadline
        except serial.SerialTimeoutException as exc:
            raise InstrumentTimeout(
                f"could not send within {self.timeout:g} s", instrument=self.name
            ) from exc
        except (serial.SerialException, OSError) as exc:
            raise self._lost(exc) from exc

    @contextlib.contextmanager
    def _waiting(self, setting: str, seconds: float) -> Iterator[None]:
        """The port's `setting` ("timeout" or "write_timeout") `seconds` while in the block,
        where that is less than the link's timeout by more than the call's own code takes
        (`_WRITE_UNCOUNTED_S`: a command on a sound port, not reopened, is µs short of it).
        Changing it reconfigures the port (on Windows the line's whole state is set again),
        so it is left alone otherwise."""
        if seconds >= self.timeout - _WRITE_UNCOUNTED_S:
            yield
            return
        setattr(self.port, setting, seconds)
        try:
            yield
        finally:
            self._restore_timeout()

    def _restore_timeout(self) -> None:
        with contextlib.suppress(serial.SerialException, OSError, ValueError):
            self.timeout = self.timeout  # a port that failed: set on reopening

    def _read_by(self, size: int, deadline: float) -> bytes:
        """Up to `size` bytes, waiting for them the timeout at most and never past
        `deadline` (time.monotonic()): past it, only what has come."""
        with self._waiting("timeout", max(0.0, deadline - time.monotonic())):
            return bytes(self.port.read(size))

    def read(self) -> str:
        """The next reply, by its deadline (`_line`), a reopen's time (a timeout at most)
        within it."""
        deadline = self._reply_deadline()
        self._check_open(time.monotonic() + self.timeout)
        return self._receive(deadline)

    def _receive(self, deadline: float) -> str:
        try:
            line = self._line(b"", deadline)
        except (serial.SerialException, OSError) as exc:
            raise self._lost(exc) from exc
        self._sent_by = None  # a reply: what was written before it arrived
        return line.decode(ENCODING).rstrip("\r")

    def _line(self, start: bytes, deadline: float) -> bytes:
        """The line `start` begins, by `deadline` (`_line_by`); a stop asked for the read
        (`reply_stop`) is asked every `STOP_SLICE_S` of it (`_ask_stop`)."""
        stop = reply_stop.current()
        ask = None if stop is None else functools.partial(self._ask_stop, stop)
        return _line_by(self.port, start, self._reply_end, deadline, self.timeout, self.name,
                        ask)

    def _exactly(self, size: int) -> bytes:
        """`size` bytes: each read waits the timeout for more, all of them at most the timeout
        and the time they take at the baud rate (past that, only what has come is read). A
        stop asked for the read (`reply_stop`) is asked after each read, each then of no more
        bytes than `STOP_SLICE_S` brings at the baud rate."""
        data = bytearray()
        end = time.monotonic() + self.timeout + self._transfer_time(size)
        stop = reply_stop.current()
        most = size if stop is None else max(1, math.floor(STOP_SLICE_S / self._transfer_time(1)))
        while len(data) < size:
            chunk = self._read_by(min(most, size - len(data)), end)
            if not chunk:
                raise self._timed_out()
            data += chunk
            if stop is not None and len(data) < size:
                self._ask_stop(stop, len(data))
        return bytes(data)

    def _ask_stop(self, stop: Callable[[], bool], read: int) -> None:
        _ask_stop(stop, self.name, read)

    def read_block(self) -> str:
        """The reply, a definite-length block read by its length, byte for byte (then its
        terminator, LF or CR LF); a reply that starts no block is read as a line."""
        deadline = self._reply_deadline()
        self._check_open(time.monotonic() + self.timeout)
        try:
            head = self._exactly(1)
            if head == b"#":
                head += self._exactly(1)
                digits = int(head[1:]) if head[1:].isdigit() else 0
                while digits > 0 and len(head) < 2 + digits and head[-1:].isdigit():
                    head += self._exactly(1)  # one at a time: a line may end among them
                if digits and head[2:].isdigit() and len(head) == 2 + digits:
                    payload = self._exactly(int(head[2:]))
                    tail = self._line(b"", self._reply_deadline())
                    block = head + payload + tail.removesuffix(b"\r")
                    self._sent_by = None
                    return block.decode(ENCODING)
            line = self._line(head, deadline)
            self._sent_by = None
            return line.decode(ENCODING).rstrip("\r")
        except (serial.SerialException, OSError) as exc:
            raise self._lost(exc) from exc

    def query(self, message: str) -> str:
        """Send `message` and read its reply, what arrived unread before it dropped first
        (waiting for nothing): a line the instrument sent more (a second reply, an extra
        terminator) had been read as the reply to this query, and every later reply as the
        one to the query before it. A reply that comes later than that still reaches the
        next query, as on a raw socket (`VisaTransport.query`). A port reopened first is
        reopened within the command's time (its write timeout: `safe_bound.command_s`)."""
        deadline = time.monotonic() + self.timeout
        self._drop_unasked(deadline)
        self._send(message, deadline)
        return self._receive(self._reply_deadline())

    def query_block(self, message: str) -> str:
        """Send `message` and read its reply by `read_block`, what arrived unread before it
        dropped first, as `query` does (a line sent unasked had been read as the block)."""
        deadline = time.monotonic() + self.timeout
        self._drop_unasked(deadline)
        self._send(message, deadline)
        return self.read_block()

    def _drop_unasked(self, deadline: float) -> None:
        """Drop what arrived unread, waiting for nothing (a port that failed is reopened, by
        `deadline`)."""
        self._check_open(deadline)
        try:
            if self.port.in_waiting:
                self.port.reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
            raise self._lost(exc) from exc

    def discard_input(self) -> None:
        """Drop what has arrived unread (a reply an earlier program left), waiting for
        nothing (a port that failed is reopened first, within a timeout)."""
        self._check_open(time.monotonic() + self.timeout)
        try:
            self.port.reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
            raise self._lost(exc) from exc

    def clear(self) -> None:
        """Let what was written go out (for at most the time it takes at the baud rate and a
        timeout: a command sent just before, a stop, is never dropped), drop what is still
        held (a line blocked by flow control) and what has arrived, then what arrives until
        the line is quiet (a port that failed is reopened first, within the timeout that
        letting out what was written may take: a new port holds nothing unsent)."""
        self._check_open(time.monotonic() + self.timeout)
        try:
            self._let_out()
            self.port.reset_output_buffer()
            self.port.reset_input_buffer()
            bound = DRAIN_TIMEOUTS * self.timeout + self._transfer_time(LARGEST_REPLY)
            end = time.monotonic() + bound
            while self.port.read(DRAIN_CHUNK):  # what came within a timeout: dropped
                if time.monotonic() > end:
                    raise _not_quiet(bound, self.name)
        except (serial.SerialException, OSError) as exc:
            raise self._lost(exc) from exc

    def _let_out(self) -> None:
        """Wait until the port has sent what was written, for at most the time it takes at
        the baud rate and a timeout."""
        end = time.monotonic() + self.timeout + self._transfer_time(self._unsent())
        while self._unsent() and time.monotonic() < end:
            time.sleep(self._transfer_time(1))

    def _unsent(self) -> int:
        """Bytes written but not yet sent; 0 where the port keeps none (a socket:// URL's
        sends at once)."""
        return int(getattr(self.port, "out_waiting", 0))

    def close(self) -> None:
        """Close the port; a serial-over-LAN one (socket://) written to since its last reply
        (a stop sent once more as a stage's link closes, amid the rest of a reply still
        coming) is closed only once that write reached the peer, within what is left of the
        write's timeout (`_ended_with_peer`): closed with input unread, its connection is
        reset, which drops what was written and not yet sent (a peer not reading, a window
        full), and may drop it unread at the peer."""
        self._closed = True
        sent_by, self._sent_by = self._sent_by, None
        if sent_by is not None and not self._broken \
                and isinstance(self.port, protocol_socket.Serial) and self.port.is_open \
                and self.port._socket is not None:
            _ended_with_peer(self.port._socket, sent_by)
        self.port.close()


def _ended_with_peer(sock: socket.socket, deadline: float) -> None:
    """The connection `sock` shut for writing (its end goes after what was written), and
    what arrives read and dropped until the peer ends its side (it read all that was
    written, the end too), or `deadline` (time.monotonic()) passes: so that the close after
    it finds no input unread and ends the connection without a reset. A failure ends the
    wait: the close follows as ever."""
    try:
        sock.shutdown(socket.SHUT_WR)
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([sock], [], [], left)[0]:
                return
            try:
                if not sock.recv(DRAIN_CHUNK):
                    return
            except BlockingIOError:  # read by another thread (a drain aside) meanwhile
                continue
    except OSError:
        return


_RFC2217_REFUSED = ("RFC 2217 (rfc2217://) is not supported (pyserial's client has no write "
                    "timeout and waits seconds to connect or close whatever the link's "
                    "timeout); set the adapter to raw TCP and give")


def _open_port(url: str, *, baud_rate: int, timeout: float,
               connect_within: float) -> serial.SerialBase:
    """The pyserial port `url` names, with the link's timeout both ways; a serial-over-LAN
    port (socket://) connected within `connect_within` seconds (`_LanPort`). An RFC 2217 one
    (rfc2217://) is refused, `ValueError`: pyserial's client takes no write timeout (its open
    fails once one is set), and its connect, its negotiation and its close each wait seconds
    whatever the link's timeout, so no bound would hold for it."""
    if url.lower().startswith("rfc2217://"):
        raise ValueError(f"{_RFC2217_REFUSED} serial:socket://HOST:PORT")
    if url.lower().startswith("socket://"):
        port = _LanPort(None, baudrate=baud_rate, timeout=timeout, write_timeout=timeout)
        port.connect_timeout = connect_within
        port.port = url
        port.open()
        return port
    return serial.serial_for_url(url, baudrate=baud_rate, timeout=timeout,
                                 write_timeout=timeout)


class _LanPort(protocol_socket.Serial):
    """pyserial's socket:// port, its connect bounded by `connect_timeout` (pyserial's waits
    5 s whatever the port's timeout: a reopen after the adapter vanished, its SYNs
    unanswered, outlasted the exchange it was made for), its close not paused (pyserial
    sleeps 0.3 s after it, for a reconnect's sake, which the reopen's time would spend), and
    its input's reset bounded (`reset_input_buffer`)."""

    connect_timeout: float = protocol_socket.POLL_TIMEOUT

    def open(self) -> None:
        self.logger = None  # pyserial's, set where the URL asks for logging (`from_url`)
        if self._port is None:
            raise serial.SerialException("Port must be configured before it can be used.")
        if self.is_open:
            raise serial.SerialException("Port is already open.")
        try:
            address = self.from_url(self.portstr)
        except Exception as exc:  # pyserial's parse: a TypeError with no port, a KeyError
            # formatting its own message for a port out of range or an unknown option
            raise serial.SerialException(
                f"{self.portstr!r} is not a serial-over-LAN URL: expected "
                "socket://HOST:PORT (PORT 0 to 65535, no option but ?logging=LEVEL)") from exc
        try:
            sock = _connect_within(address, self.connect_timeout)
        except OSError as exc:
            raise serial.SerialException(
                f"could not connect to {self.portstr} within {self.connect_timeout:g} s: "
                f"{exc}") from exc
        sock.setblocking(False)  # pyserial's reads and writes wait in select
        self._socket = sock
        self.is_open = True
        self.reset_input_buffer()

    def reset_input_buffer(self) -> None:
        if not self.is_open:
            raise serial.PortNotOpenError()
        _drop_arrived(self)

    def close(self) -> None:
        _close_lan_port(self)


def _drop_arrived(port: protocol_socket.Serial) -> None:
    """Drop what an open socket:// port (`_LanPort`, or pyserial's under pyvisa-py) has
    received, as much as its socket's receive buffer holds at most (its size as the drop
    begins). pyserial's `reset_input_buffer` drops for as long as more is there, so a peer
    that sends faster than it is read (a babbling line; a stream that is no serial line)
    held an open, a query's drop of what came unasked, or a clear, for as long as it sent.
    What comes past that bound is left to be read."""
    try:
        _drop_received(port._socket)
    except OSError as exc:
        raise serial.SerialException(f"read failed: {exc}") from exc


def _drop_received(sock: socket.socket) -> None:
    """Drop what `sock` has received and not read, waiting for nothing: as much as its receive
    buffer holds at most (its size as the drop begins); what comes past that bound is left to
    be read, as is a close by the peer (the next read says so)."""
    most = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    dropped = 0
    while dropped < most and select.select([sock], [], [], 0)[0]:
        try:
            chunk = sock.recv(min(DRAIN_CHUNK, most - dropped))
        except BlockingIOError:  # nothing after all
            return
        if not chunk:
            return
        dropped += len(chunk)


def _close_lan_port(port: protocol_socket.Serial) -> None:
    """Close a socket:// port (pyserial's, or `_LanPort`) without pyserial's pause."""
    if not port.is_open:
        return
    if port._socket is not None:
        with contextlib.suppress(OSError):
            port._socket.shutdown(socket.SHUT_RDWR)
        port._socket.close()
        port._socket = None
    port.is_open = False


def _connect_within(address: tuple[str | None, int], seconds: float) -> socket.socket:
    """A TCP connection to `address` made within `seconds` in all: its name looked up within
    them (`host_lookup`: the system resolver waits seconds for a name server that does not
    answer), then its addresses tried in turn (`socket.create_connection` gives each the
    whole timeout: a name with an IPv6 and an IPv4 address, the first unanswered, waited
    twice that). An adapter given by its IP address is looked up in no name server."""
    deadline = time.monotonic() + seconds
    failed: OSError = TimeoutError("timed out")
    for family, kind, proto, _, where in stream_addresses(*address, seconds):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock: socket.socket | None = None
        try:
            sock = socket.socket(family, kind, proto)  # (a family the system lacks: the next)
            sock.settimeout(left)
            sock.connect(where)
        except OSError as exc:
            if sock is not None:
                sock.close()
            failed = exc
            continue
        return sock
    raise failed
