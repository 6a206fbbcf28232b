"""Where a link's `baud_rate` takes effect, and what to say of one given where it cannot.

A `baud_rate` sets a serial port (an ASRL or `serial:` address) and times what comes over it.
Behind a serial-to-Ethernet server (a LAN socket, `TCPIP::host::port::SOCKET`) it is the rate
of the RS-232 line the socket cannot tell, which only a lock-in's buffer reads are sized by
(an SR830 with `interface = "rs232"`, an SR860 on anything but its own VXI-11 or HiSLIP
device). Anywhere else (GPIB, USB, an instrument's own Ethernet, or a socket in front of a
stage, the supplies or the multimeter) no serial line is set or timed by it: a key left there
from a profile written for a serial setup is ignored, and said to be. A VISA alias may name a
serial port, whose rate is set: nothing is said of one.
"""

from __future__ import annotations

from collections.abc import Sequence

from smm_daq.instruments.transport import is_own_lan_device, is_serial

# `_kind` of an address in no VISA resource form: a VISA alias ('COM3', a name the VISA
# configuration gives), which may open a serial port, its rate then set (`VisaTransport`):
# nothing is said of a `baud_rate` there
_UNKNOWN = "an address of no form known here"


def _kind(address: str) -> str:
    """What `address` reaches, in words, for a message."""
    text = address.strip().upper()
    if text.startswith("GPIB"):
        return "a GPIB address"
    if text.startswith("USB"):
        return "a USB address"
    if is_own_lan_device(address):
        return "an instrument's own Ethernet (VXI-11 or HiSLIP) address"
    if text.startswith("TCPIP") and text.endswith("::SOCKET"):
        return "a LAN socket address"
    return "an address that is no serial port" if "::" in text else _UNKNOWN


def lockin_line(address: str, implementation: str, interface: str | None) -> bool:
    """Whether a lock-in's link at `address` reaches a serial line its `baud_rate` is the
    rate of: a serial port, or the RS-232 line behind a LAN address that its driver reads
    the buffer over (an SR830's with interface 'rs232', an SR860's but on its own device)."""
    if is_serial(address):
        return True
    if not address.strip().upper().startswith("TCPIP"):
        return False
    if implementation == "sr830":
        return interface == "rs232"
    return implementation == "sr860" and not is_own_lan_device(address)


def unused_baud_rate(section: str, baud_rate: int, addresses: Sequence[str], *,
                     line: bool) -> str | None:
    """The warning for `section.baud_rate` on a link whose `addresses` it sets or times no
    serial line of (`line`: whether one of them reaches one, as its section reads it); None
    where it does."""
    if line or any(is_serial(a) or _kind(a) == _UNKNOWN for a in addresses):
        return None
    address = addresses[0]
    socket_note = (" (the serial line behind a serial-to-Ethernet server is taken into "
                   "account for a lock-in's buffer only)"
                   if _kind(address) == "a LAN socket address" else "")
    return (f"key '{section}.baud_rate' is {baud_rate}, ignored: {address!r} is "
            f"{_kind(address)}, with no serial line this program sets or times{socket_note}; "
            "expected no key, or a serial address (ASRL or serial:) with it")
