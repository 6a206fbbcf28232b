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
"""

from __future__ import annotations

import contextlib

import pyvisa
import serial
from pyvisa import constants
from pyvisa.resources import MessageBasedResource

from smm_daq.errors import InstrumentLost, InstrumentTimeout, ProtocolError
from smm_daq.instruments.profile import LinkSettings
from smm_daq.instruments.transport import Transport

TERMINATION = "\n"
ENCODING = "latin-1"  # instruments' 8-bit code page (PI answers "µm" as 0xB5 0x6D); ASCII-safe
SERIAL_PREFIX = "serial:"
DEFAULT_BAUD_RATE = 9600


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


class VisaTransport:
    """A pyvisa message-based resource as a `Transport`."""

    def __init__(self, resource: MessageBasedResource, *, name: str) -> None:
        self.resource = resource
        self.name = name
        self._closed = False

    @classmethod
    def open(
        cls,
        address: str,
        *,
        timeout: float,
        baud_rate: int | None = None,
        visa_library: str | None = None,
    ) -> VisaTransport:
        try:
            manager = pyvisa.ResourceManager(visa_library or "")
            resource = manager.open_resource(
                address,
                read_termination=TERMINATION,
                write_termination=TERMINATION,
                timeout=timeout * 1000.0,
                encoding=ENCODING,
            )
        except (pyvisa.Error, OSError, ValueError) as exc:
            raise InstrumentLost(f"cannot open: {exc}", instrument=address) from exc
        if not isinstance(resource, MessageBasedResource):
            resource.close()
            raise InstrumentLost(f"{address} is not a message-based resource", instrument=address)
        if baud_rate is not None and resource.interface_type == constants.InterfaceType.asrl:
            resource.baud_rate = baud_rate  # type: ignore[attr-defined]
        return cls(resource, name=address)

    @property
    def timeout(self) -> float:
        ms = self.resource.timeout
        return float("inf") if ms is None else float(ms) / 1000.0

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        self.resource.timeout = seconds * 1000.0

    def _failed(self, exc: Exception) -> Exception:
        if (
            isinstance(exc, pyvisa.VisaIOError)
            and exc.error_code == constants.StatusCode.error_timeout
        ):
            return InstrumentTimeout(f"no reply within {self.timeout:g} s", instrument=self.name)
        return InstrumentLost(f"link failed: {exc}", instrument=self.name)

    def _check_open(self) -> None:
        if self._closed:
            raise InstrumentLost("link closed", instrument=self.name)

    def write(self, message: str) -> None:
        self._check_open()
        try:
            self.resource.write(message)
        except (pyvisa.Error, OSError) as exc:
            raise self._failed(exc) from exc

    def read(self) -> str:
        self._check_open()
        try:
            return self.resource.read()
        except (pyvisa.Error, OSError) as exc:
            raise self._failed(exc) from exc
        except UnicodeDecodeError as exc:
            raise ProtocolError(
                f"reply is not ASCII: {exc.object!r}", instrument=self.name
            ) from exc

    def query(self, message: str) -> str:
        self.write(message)
        return self.read()

    def clear(self) -> None:
        """Device clear (viClear); where the interface has none (serial), flush the buffers."""
        self._check_open()
        try:
            self.resource.clear()
        except (pyvisa.Error, NotImplementedError):
            try:
                self.resource.flush(
                    constants.BufferOperation.discard_read_buffer
                    | constants.BufferOperation.discard_write_buffer
                )
            except (pyvisa.Error, NotImplementedError, OSError) as exc:
                raise self._failed(exc) from exc
        except OSError as exc:
            raise self._failed(exc) from exc

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(pyvisa.Error, OSError):  # already gone: best effort
                self.resource.close()


class SerialTransport:
    """A pyserial port as a `Transport`, LF-terminated."""

    def __init__(self, port: serial.SerialBase, *, name: str) -> None:
        self.port = port
        self.name = name

    @classmethod
    def open(cls, url: str, *, baud_rate: int, timeout: float) -> SerialTransport:
        try:
            port = serial.serial_for_url(
                url, baudrate=baud_rate, timeout=timeout, write_timeout=timeout
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise InstrumentLost(f"cannot open: {exc}", instrument=url) from exc
        return cls(port, name=url)

    @property
    def timeout(self) -> float:
        return float(self.port.timeout)

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        self.port.timeout = seconds
        self.port.write_timeout = seconds

    def write(self, message: str) -> None:
        try:
            self.port.write((message + TERMINATION).encode(ENCODING))
        except serial.SerialTimeoutException as exc:
            raise InstrumentTimeout(
                f"could not send within {self.timeout:g} s", instrument=self.name
            ) from exc
        except (serial.SerialException, OSError) as exc:
            raise InstrumentLost(f"link failed: {exc}", instrument=self.name) from exc

    def read(self) -> str:
        try:
            line = self.port.read_until(TERMINATION.encode("ascii"))
        except (serial.SerialException, OSError) as exc:
            raise InstrumentLost(f"link failed: {exc}", instrument=self.name) from exc
        if not line.endswith(TERMINATION.encode("ascii")):
            raise InstrumentTimeout(f"no reply within {self.timeout:g} s", instrument=self.name)
        return line[: -len(TERMINATION)].decode(ENCODING).rstrip("\r")

    def query(self, message: str) -> str:
        self.write(message)
        return self.read()

    def clear(self) -> None:
        """Serial ports have no device clear: drop whatever is buffered both ways."""
        try:
            self.port.reset_input_buffer()
            self.port.reset_output_buffer()
        except (serial.SerialException, OSError) as exc:
            raise InstrumentLost(f"link failed: {exc}", instrument=self.name) from exc

    def close(self) -> None:
        self.port.close()
