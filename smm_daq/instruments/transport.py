"""The byte-level link every driver talks through.

A pyvisa message-based resource already has this shape; a pyserial port, a TCP socket and the
in-process simulator emulators are wrapped to it. Drivers never see which one they have.
"""

from __future__ import annotations

import re
from typing import Protocol, runtime_checkable

SERIAL_PREFIX = "serial:"  # an address opened with pyserial ('serial:/dev/ttyUSB0')
DEFAULT_BAUD_RATE = 9600  # a serial link's where its profile names none
BITS_PER_BYTE = 10  # on a serial line: a start bit, eight data bits, a stop bit
LARGEST_REPLY = 65536 + 16  # bytes: the longest reply (an SR860 CAPTUREGET? block of 64 kB)
# a serial line's `clear` (it has no device clear) drains what goes on arriving for at most
# this many timeouts, and the time the largest reply takes at the baud rate
DRAIN_TIMEOUTS = 4
# the most a serial line's `clear` waits, in timeouts: one to let out what was written, the
# drain's, and one for the read under way as the drain's time is up (with the largest
# reply's transfer); a VISA device clear (GPIB, USB, LAN) waits one timeout at most
SERIAL_CLEAR_TIMEOUTS = 1 + DRAIN_TIMEOUTS + 1


def is_serial(address: str) -> bool:
    """Whether `address` is a serial line (a VISA ASRL resource, or pyserial's)."""
    text = address.strip()
    return text.upper().startswith("ASRL") or text.startswith(SERIAL_PREFIX)


# an instrument's own LAN device: VXI-11's inst[n] or HiSLIP's hislip[n] (a LAN gateway's
# serial port is another device name, COM1,488 say; a serial-to-Ethernet server a SOCKET)
_OWN_LAN_DEVICE = re.compile(r"TCPIP\d*::.+::(inst|hislip)\d*(,\d+)?(::INSTR)?", re.IGNORECASE)


def is_own_lan_device(address: str) -> bool:
    """Whether `address` is an instrument's own VXI-11 or HiSLIP device (its own Ethernet),
    which no serial line lies behind: a `baud_rate` given for it names no line."""
    return _OWN_LAN_DEVICE.fullmatch(address.strip()) is not None


@runtime_checkable
class Transport(Protocol):
    """A message link: one command per `write`, one reply per `read`, both without terminator.

    `read` raises `smm_daq.errors.InstrumentTimeout` when no reply arrives within `timeout`
    seconds and `InstrumentLost` when the link is gone; `clear` is the device clear (IEEE 488.2
    SDC, or flushing buffers where the link has none).
    """

    timeout: float

    def write(self, message: str) -> None: ...

    def read(self) -> str: ...

    def query(self, message: str) -> str: ...

    def clear(self) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class BlockTransport(Transport, Protocol):
    """A transport that reads an IEEE 488.2 definite-length block (`#<n><length><bytes>`) by
    the length its header gives: one whose line reads would alter the block's bytes (a serial
    port's strips a line's trailing CR, which a block's data may end a line with).

    `query_block` sends a query and returns its whole reply, a block byte for byte (one
    character per byte, latin-1) or, when the reply starts no block, the line it is; without
    the terminator. What arrived unread before the query is dropped first, as `query` does.
    """

    def query_block(self, message: str) -> str: ...
