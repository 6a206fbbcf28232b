"""A three-axis fluxgate read by a scanning multimeter (Agilent/Keysight 34970A style, SCPI).

The fluxgate's x, y, z analogue outputs go to three multimeter channels (the profile's
`fluxgate.channels`, numbered slot and channel: 101-140, 201-240, ...). The driver configures
them as one scan on the 10 V DC range, `CONF:VOLT:DC 10,DEF,(@c1,c2,c3)`, integrating over
one power-line cycle (`VOLT:DC:NPLC 1`, which rejects mains hum), makes each reading carry
nothing but its value (`FORM:READ:CHAN|TIME|UNIT|ALAR OFF`: a unit left by its last user may
have turned them on), and reads all three with `READ?`. The field is
B = scale @ (V - offset) with the profile's calibration (sample frame, T/V and V).
A reading of +9.9E+37 is the multimeter's overload mark: an error, never a field.

At connect the error queue is read (`SYST:ERR?`) before anything is sent: what an earlier
program left there is neither taken for one of our commands nor cleared unseen, but kept in
the snapshot (`errors_at_connect`: `smm-daq check`, the scan's metadata). As for the coil
supplies (`drivers.scpi_errors`), a reply to it lost fails no connect: the rest is said
unknown.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Self

import numpy as np

from drivers import transports
from drivers.link import Link, parse_float, shown
from drivers.scpi_errors import ERROR_QUEUE_READS, errors_found, parse_scpi_error
from drivers.srs_lockin import parse_identity
from smm_daq.clock import Clock
from smm_daq.errors import InstrumentError, ProtocolError
from smm_daq.instruments.interfaces import Identity, Magnetometer
from smm_daq.instruments.profile import FluxgateSettings, LinkSettings
from smm_daq.instruments.transport import Transport

OpenTransport = Callable[[str, LinkSettings], Transport]

RANGE_V = 10.0  # fluxgate outputs swing ±10 V
OVERLOAD_MARK = 9.9e37
OVERRANGE = 1.2  # a range reads up to 120 % of itself, beyond it the overload mark
NPLC = 1  # integration time in power-line cycles
FORMAT_FLAGS = ("CHAN", "TIME", "UNIT", "ALAR")

def parse_three(reply: str) -> np.ndarray:
    """Three comma-separated readings (V)."""
    parts = reply.split(",")
    if len(parts) != 3:
        raise ProtocolError(f"expected three comma-separated readings, got {shown(reply)}")
    try:
        volts = np.array([parse_float(p, what="voltage") for p in parts])
    except ProtocolError as exc:
        raise ProtocolError(f"{exc} in {shown(reply)}") from None
    readable = OVERRANGE * RANGE_V
    if np.any((np.abs(volts) > readable) & (np.abs(volts) < OVERLOAD_MARK)):
        raise ProtocolError(f"expected readings within ±{readable:g} V or the overload mark "
                            f"{OVERLOAD_MARK:g}, got {shown(reply)}")
    return volts


class DMMFluxgate(Magnetometer):
    """The fluxgate as a `Magnetometer`, through the multimeter."""

    def __init__(self, link: Link, settings: FluxgateSettings) -> None:
        self.link = link
        self.settings = settings
        self.scan_list = "(@" + ",".join(str(c) for c in settings.channels) + ")"
        self.errors_at_connect: list[str] = []  # the queue as found at connect, then cleared

    @classmethod
    def from_profile(
        cls,
        settings: FluxgateSettings,
        *,
        clock: Clock,
        open_transport: OpenTransport | None = None,
    ) -> Self:
        """Connect and configure the scan; `clock` is unused (a reading does not wait)."""
        address = settings.link.address
        transport = (open_transport or transports.open_transport)(address, settings.link)
        link = Link(
            transport, name=f"fluxgate multimeter at {address}", retries=settings.link.retries
        )
        fluxgate = cls(link, settings)
        try:
            fluxgate.identify()
            fluxgate.errors_at_connect = errors_found(
                lambda: link.query("SYST:ERR?", parse_scpi_error, destructive=True))
            fluxgate.configure()
        except BaseException:
            fluxgate.close()
            raise
        return fluxgate

    def configure(self) -> None:
        """Clear the error queue, set the channels to DC volts on the 10 V range as one scan,
        one power-line cycle each, readings without channel, time, unit or alarm."""
        self.link.write("*CLS")
        self.link.write(f"CONF:VOLT:DC {RANGE_V:g},DEF,{self.scan_list}")
        self.link.write(f"VOLT:DC:NPLC {NPLC:g},{self.scan_list}")
        # each from the root (';:'): after a ';' alone a SCPI instrument reads the next header
        # from the last one's path (FORM:READ:FORM:READ:TIME, an undefined header)
        self.link.write(";:".join(f"FORM:READ:{flag} OFF" for flag in FORMAT_FLAGS))
        self.check_errors()

    def read_errors(self) -> list[str]:
        """The queued errors ('<code> <message>'), oldest first; reading empties the queue.
        A reply lost raises `ReplyUnknown` (what our commands did is then unknown); at connect
        the queue as found is read by `scpi_errors.errors_found` instead, which says it
        unknown and goes on."""
        errors = []
        for _ in range(ERROR_QUEUE_READS):
            code, text = self.link.query("SYST:ERR?", parse_scpi_error, destructive=True)
            if code == 0:
                break
            errors.append(f"{code} {text}")
        return errors

    def check_errors(self) -> None:
        """Raise InstrumentError with the queued errors, if any (the queue is emptied)."""
        errors = self.read_errors()
        if errors:
            raise InstrumentError("; ".join(errors), instrument=self.link.name)

    def identify(self) -> Identity:
        return self.link.query("*IDN?", parse_identity)

    def read_volts(self) -> np.ndarray:
        """The three fluxgate outputs (V), x, y, z."""
        volts = self.link.query("READ?", parse_three)
        if np.any(np.abs(volts) >= OVERLOAD_MARK):
            raise InstrumentError(
                f"output beyond the {RANGE_V:g} V range (reads {volts.tolist()})",
                instrument=self.link.name,
            )
        return volts

    def read_field(self) -> np.ndarray:
        return self.settings.scale @ (self.read_volts() - self.settings.offset)

    def snapshot(self) -> dict[str, object]:
        volts = self.read_volts()
        field = self.settings.scale @ (volts - self.settings.offset)
        return {
            "channels": list(self.settings.channels),
            "volts_V": volts.tolist(),
            "field_T": field.tolist(),
            "errors_at_connect": "; ".join(self.errors_at_connect) or "none",
        }

    def close(self) -> None:
        self.link.close()
