"""What the Stanford Research SR830 and SR860 drivers share.

Both speak short ASCII commands (`OFLT 7`, `OFLT?`). Their index tables for sensitivity and
time constant differ, as do the sensitivity command, the reference-source command, the input
commands, the SNAP? parameters and the overload status; the subclasses hold those. At connect
the driver sets everything that changes X and Y (reference, harmonic, phase, input, coupling,
grounding, reserve, sync filter, offsets, slope, time constant, sensitivity), so a lock-in left on
another harmonic, phase or input by its last user reads what the profile means. Every setting
is range-checked before it is sent and read back after, so a refused command is an error, not a
silent mismatch; the snapshot reads them all back from the instrument.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable
from typing import ClassVar, Self

from drivers import transports
from drivers.link import Link, parse_float, parse_int, shown
from smm_daq.clock import Clock
from smm_daq.errors import InstrumentError, ProtocolError, RangeError, ReadStopped
from smm_daq.instruments.interfaces import Identity, LockIn, least_stored
from smm_daq.instruments.lockin_models import PIECE_TIMEOUT_SHARE
from smm_daq.instruments.profile import LinkSettings, LockInSettings
from smm_daq.instruments.transport import Transport

OpenTransport = Callable[[str, LinkSettings], Transport]

# Filter slope set at configuration: index 1 = 12 dB/oct on both models.
SLOPE_12_DB = 1
# A value read back must agree with the value sent within this relative tolerance.
_READBACK_TOLERANCE = 1e-4
# Degrees: the phase is sent with 0.01° resolution, which the SR830 keeps.
_PHASE_TOLERANCE = 0.006


def parse_identity(reply: str) -> Identity:
    """An IEEE 488.2 *IDN? reply: vendor, model, serial, firmware."""
    parts = [p.strip() for p in reply.split(",")]
    if len(parts) != 4 or not all(parts[:2]):
        raise ProtocolError(f"expected 'vendor,model,serial,firmware', got {shown(reply)}")
    return Identity(*parts)


def parse_pair(reply: str) -> tuple[float, float]:
    """Two comma-separated finite numbers (a SNAP? reply)."""
    parts = reply.split(",")
    if len(parts) != 2:
        raise ProtocolError(f"expected two comma-separated numbers, got {shown(reply)}")
    try:
        return parse_float(parts[0], what="X value"), parse_float(parts[1], what="Y value")
    except ProtocolError as exc:
        raise ProtocolError(f"{exc} in {shown(reply)}") from None


# The span a software start is known within (`start_within`) is bounded by `start_bound`:
# START_PIXELS of the fly line's pixel time, never less than what a healthy link takes. A
# healthy link's round trip of a start and a count query is a few ms on GPIB, and on a serial
# line the time its bytes take at the baud rate (`line_time`) and a USB adapter's latency
# timer each way (LINK_LATENCY_S), or a GPIB-Ethernet bridge's as much; the floor allows half
# as much again (START_MARGIN), and never less than START_FLOOR_S: an SR830's 17 bytes at 9600
# baud (18 ms) and the latency make about 50 ms, so 75 ms. At slower rates the bytes alone take
# longer (at 1200 baud 142 ms, at 300 baud 0.57 s): the floor grows with them, so a slow
# healthy line never fails its fly lines. A wider span (a stalled link) is refused, so the
# start is retried.
START_PIXELS = 0.5
START_FLOOR_S = 0.075
START_MARGIN = 1.5
LINK_LATENCY_S = 0.032  # a USB-serial adapter's 16 ms latency timer, each way


# A buffer's read comes in pieces, each one exchange, so each must come within the link's
# timeout (a serial line's read waits for the largest reply's transfer too, but a VXI-11,
# HiSLIP or raw-socket read ends a timeout after it began, however the reply is coming):
# pieces are sized to come within PIECE_TIMEOUT_SHARE of it at the link's slowest rate. On a
# serial line that is its baud rate; over LAN a LAN-GPIB gateway's, hundreds of kB/s
# (LAN_BYTES_PER_S, the low end); GPIB and USB themselves run at MB/s. The make-safe bound
# counts a piece as one exchange, so it holds at any size. (A profile whose LAN link's timeout
# the least piece cannot come within is refused: `LEAST_PIECE_BYTES`.)
LAN_BYTES_PER_S = 100_000.0


def piece_size(transport: Transport, address: str, *, serial: bool, unit_bytes: int,
               most: int, line_baud_rate: int | None = None) -> int:
    """How many units of `unit_bytes` (a buffer point, a kB) one piece of a buffer's read
    holds on `transport` at `address`: `most`, or as many as come within
    `PIECE_TIMEOUT_SHARE` of its timeout at the link's slowest rate (a serial line's baud
    rate, where `serial` and the transport has one; a LAN address's `LAN_BYTES_PER_S`), one at
    least. A serial line reached through a serial-to-Ethernet server (a LAN socket) is read
    as a LAN socket is, a timeout from the read's start, at the line's baud rate, which the
    socket does not know: `line_baud_rate` (the profile's `baud_rate`), else the default's
    (`DEFAULT_BAUD_RATE`)."""
    lan = address.strip().upper().startswith("TCPIP")
    if serial:
        baud = getattr(transport, "baud_rate", None) or (
            (line_baud_rate or transports.DEFAULT_BAUD_RATE) if lan else None)
        rate = baud / transports.BITS_PER_BYTE if baud else None
    else:
        rate = LAN_BYTES_PER_S if lan else None
    if rate is None:
        return most
    return max(1, min(most, int(PIECE_TIMEOUT_SHARE * transport.timeout * rate / unit_bytes)))


def line_time(transport: object, messages: tuple[str, ...]) -> float:
    """Seconds `messages`, each with its one-byte terminator, take on `transport`'s serial line
    at its baud rate (`baud_rate`); 0 where it has none (GPIB, USB, Ethernet)."""
    baud = getattr(transport, "baud_rate", None)
    if not baud:
        return 0.0
    return sum(len(m) + 1 for m in messages) * transports.BITS_PER_BYTE / float(baud)


def start_bound(pixel_time: float | None, line_s: float = 0.0) -> float:
    """The widest span (s) a buffer's software start may be known within, for fly lines of
    `pixel_time` s per pixel (None: not known, the floor) on a link whose start command, count
    query and count reply take `line_s` s at its baud rate (`line_time`). The start is placed
    at the span's middle, so it is at most half the bound off: a quarter of a pixel where
    pixels are longer than twice the floor (0.15 s on GPIB, or an SR830 at 9600 baud), and
    half the floor (0.75 pixel at 0.05 s per pixel) below, where the floor a slow healthy link
    needs rules; shorter pixels than that are placed within a pixel only by the trigger
    start."""
    floor = max(START_FLOOR_S, START_MARGIN * (LINK_LATENCY_S + line_s))
    if pixel_time is None:
        return floor
    return max(floor, START_PIXELS * pixel_time)


def start_within(before: float, after: float, stored: int, rate: float, *, query: str,
                 instrument: str, pixel_time: float | None = None,
                 line_s: float = 0.0) -> float:
    """When a buffer started without a trigger, from the rig's clock `before` its start
    command was sent and `after` the reply to `query` came, that reply counting `stored`
    samples at `rate` (Hz): the start was not before the command, nor later than `stored` - 1
    sample periods before the reply. The middle of that span, where it is no wider than
    `start_bound(pixel_time, line_s)`; ProtocolError (so the start is retried) where it is
    wider."""
    latest = after - max(stored - 1, 0) / rate
    if latest < before:
        raise ProtocolError(
            f"{query} held {stored} samples {after - before:.3g} s after the buffer's start; "
            f"at {rate:g} Hz it holds at most {math.floor((after - before) * rate) + 1}",
            instrument=instrument)
    bound = start_bound(pixel_time, line_s)
    if latest - before > bound:
        floor = start_bound(None, line_s)
        if pixel_time is not None and bound > floor:
            rule = f", {START_PIXELS:g} of the {pixel_time:g} s pixel"
        elif bound > START_FLOOR_S:
            rule = f", what a healthy link takes with {line_s:.3g} s of bytes at its baud rate"
        else:
            rule = ""
        raise ProtocolError(
            f"the buffer's start is known only within {latest - before:.3g} s ({query} held "
            f"{stored} samples {after - before:.3g} s after the start command); expected "
            f"within {bound:g} s{rule} (a link that stalled)", instrument=instrument)
    return (before + latest) / 2


def stop_between_pieces(stop: Callable[[], bool] | None, instrument: str) -> None:
    """Before the next piece of a buffer read (`read_buffer`): `ReadStopped` once `stop` is
    true, so that an abort waits not for the rest of the buffer; within the piece under way
    a serial line asks it too (`reply_stop`), as one piece may take seconds there."""
    if stop is not None and stop():
        raise ReadStopped("the buffer's read was stopped between its pieces",
                          instrument=instrument)


class CaptureSpan:
    """When a buffer's software start was taken by and its first stop after that was sent, on
    the rig's clock, so that its read knows the least count it holds (`least`). A start
    command has no reply: one the lock-in never took, or took only after the count read
    right after it (a LAN-GPIB gateway that passed it on late), times the start as just begun
    and leaves the buffer empty or short at its read, which is refused (`check_count`)
    rather than read as a line of nothing."""

    def __init__(self) -> None:
        self.started_by: float | None = None  # None: armed, no clock, or not started
        self.stopped_after: float | None = None

    def started(self, by: float | None) -> None:
        """A new start, taken by `by` (None: when is not known: armed, or no clock)."""
        self.started_by, self.stopped_after = by, None

    def stopping(self, now: float | None) -> None:
        """A stop about to be sent at `now`: the first after the start bounds how long the
        buffer stored (a read asked again stops it again, later)."""
        if self.stopped_after is None:
            self.stopped_after = now

    def least(self, rate: float, capacity: int) -> int | None:
        """The fewest samples the buffer holds at `rate` (Hz), one shot into `capacity`
        samples (`least_stored`: the lock-in's clock is not the rig's); None where the
        start is not known."""
        if self.started_by is None or self.stopped_after is None:
            return None
        return min(capacity, least_stored(self.stopped_after - self.started_by, rate))

    def check_count(self, count: int, rate: float, capacity: int, *, query: str,
                    start: str, instrument: str) -> None:
        """InstrumentError where `count` (what `query` said) is less than `least`: samples
        are missing, and a trace of fewer is never returned."""
        least = self.least(rate, capacity)
        if least is None or count >= least:
            return
        assert self.started_by is not None and self.stopped_after is not None
        raise InstrumentError(
            f"{query} counts {count} samples after the stop, fewer than the {least} at least "
            f"that {self.stopped_after - self.started_by:.4g} s at {rate:g} Hz store: the "
            f"lock-in did not take `{start}` when it was sent (a link or LAN-GPIB gateway "
            f"passed it on late or not at all), so the samples of that time are missing, or "
            f"the reply to {query} was corrupted",
            instrument=instrument)


def index_at_or_above(values: tuple[float, ...], wanted: float) -> int | None:
    """Index of the smallest of `values` >= wanted (within rounding), None if none is."""
    fits = [i for i, v in enumerate(values) if v >= wanted * (1 - 1e-9)]
    return min(fits, key=lambda i: values[i]) if fits else None


class SRSLockIn(LockIn):
    """An SRS lock-in on one `Link`; subclasses give the model's tables and status commands."""

    MODEL: ClassVar[str]
    SENSITIVITIES: ClassVar[tuple[float, ...]]  # V full scale, by instrument index
    TIME_CONSTANTS: ClassVar[tuple[float, ...]]  # s, by instrument index
    SENS_HEADER: ClassVar[str]
    REF_SOURCE: ClassVar[tuple[str, int]]  # command and value selecting the internal reference
    FREQ_RANGE: ClassVar[tuple[float, float]]  # Hz
    AMPLITUDE_RANGE: ClassVar[tuple[float, float]]  # V
    AMPLITUDE_STEP: ClassVar[float] = 0.0  # V: the amplitude resolution (read-back tolerance)
    SNAP_XY: ClassVar[str]
    MAX_HARMONIC: ClassVar[int]
    MAX_DETECTION_FREQUENCY: ClassVar[float]  # Hz: harmonic × reference frequency
    # Settings chosen by name: key -> (command, {name: index}); the keys are the snapshot's.
    CHOICES: ClassVar[dict[str, tuple[str, dict[object, int]]]]

    def __init__(self, link: Link, clock: Clock | None = None) -> None:
        self.link = link
        self.clock = clock  # stamps a software start of the data buffer
        self.capture_span = CaptureSpan()  # that start, checked against the count read

    @classmethod
    def from_profile(
        cls,
        settings: LockInSettings,
        *,
        clock: Clock,
        open_transport: OpenTransport | None = None,
    ) -> Self:
        """Connect, check the model, and configure as the profile says.

        `clock` is part of the driver contract; a lock-in never waits on its own (the caller
        waits the settling time constants before reading) but for a buffer to stop (an
        SR860's capture ends at its block's end); it stamps when the buffer starts.
        """
        address = settings.link.address
        transport = (open_transport or transports.open_transport)(address, settings.link)
        link = Link(
            transport, name=f"lock-in {cls.MODEL} at {address}", retries=settings.link.retries
        )
        lockin = cls(link, clock)
        try:
            lockin.prepare_interface(address, settings.interface, settings.link.baud_rate)
            lockin.check_model()
            lockin.configure(settings)
        except BaseException:
            lockin.close()
            raise
        return lockin

    def check_model(self) -> Identity:
        identity = self.identify()
        if identity.model.upper() != self.MODEL:
            raise InstrumentError(
                f"expected an {self.MODEL}, the instrument says it is {identity}",
                instrument=self.link.name,
            )
        return identity

    def configure(self, settings: LockInSettings) -> None:
        """Everything that changes X and Y, each set and read back; status cleared.

        Internal reference at the profile's frequency and amplitude, the profile's harmonic and
        phase, input, coupling, grounding, reserve and sync filter, 12 dB/oct, time constant and
        sensitivity, with no output offsets: whatever state the last user left, the readings
        mean what the profile says.
        """
        command, value = self.REF_SOURCE
        self._set_index(command, value)
        self.set_reference(settings.reference_frequency, settings.reference_amplitude)
        self.set_harmonic(settings.harmonic, settings.reference_frequency)
        self.set_phase(settings.reference_phase)
        for key, name in self.chosen(settings).items():
            self._set_choice(key, name)
        self.clear_offsets()
        self._set_index("OFSL", SLOPE_12_DB)
        self.set_time_constant(settings.time_constant)
        self.set_sensitivity(settings.sensitivity)
        self.link.write("*CLS")

    @abstractmethod
    def clear_offsets(self) -> None:
        """No offset or expansion on X, Y and R (an offset shifts what they read)."""

    def _check_zero(self, query: str) -> None:
        """Every number in the reply to `query` is zero (an offset or expansion cleared)."""
        values = self.link.query(
            query, lambda r: [parse_float(v, what=query) for v in r.split(",")]
        )
        if any(values):
            raise InstrumentError(
                f"offsets not cleared: {query} reads {values}", instrument=self.link.name
            )

    def chosen(self, settings: LockInSettings) -> dict[str, object]:
        """The named settings the profile asks of this model (keys of CHOICES)."""
        return {
            "input": settings.input,
            "coupling": settings.coupling,
            "grounding": settings.grounding,
            "sync_filter": settings.sync_filter,
        }

    def _set_choice(self, key: str, name: object) -> None:
        command, table = self.CHOICES[key]
        if name not in table:
            raise self._range_error(key, name, ", ".join(map(str, table)))  # type: ignore[arg-type]
        self._set_index(command, table[name])

    def choice(self, key: str) -> object:
        """A named setting as the instrument has it now."""
        command, table = self.CHOICES[key]
        value = self.link.query(f"{command}?", lambda r: parse_int(r, what=f"{command} index"))
        for name, i in table.items():
            if i == value:
                return name
        raise ProtocolError(
            f"{command}? gave {value}, expected one of {sorted(table.values())}",
            instrument=self.link.name,
        )

    def harmonic(self) -> int:
        return self.link.query(
            "HARM?", lambda r: parse_int(r, what="harmonic", within=(1, self.MAX_HARMONIC)))

    def set_harmonic(self, harmonic: int, frequency: float) -> None:
        if not 1 <= harmonic <= self.MAX_HARMONIC or (
            harmonic * frequency > self.MAX_DETECTION_FREQUENCY
        ):
            raise self._range_error(
                "harmonic",
                harmonic,
                f"1 .. {self.MAX_HARMONIC} with harmonic × reference frequency"
                f" <= {self.MAX_DETECTION_FREQUENCY:g} Hz",
            )
        self._set_index("HARM", harmonic)

    def phase(self) -> float:
        return self.link.query("PHAS?", lambda r: parse_float(r, what="phase"))

    def set_phase(self, degrees: float) -> None:
        if not -180.0 <= degrees <= 180.0:
            raise self._range_error("reference phase (deg)", degrees, "-180 .. 180 degrees")
        self.link.write(f"PHAS {degrees:.2f}")
        echoed = self.phase()
        if abs(math.remainder(echoed - degrees, 360.0)) > _PHASE_TOLERANCE:
            raise InstrumentError(
                f"'PHAS {degrees:.2f}' not accepted (reads back {echoed:g})",
                instrument=self.link.name,
            )

    def prepare_interface(self, address: str, interface: str | None = None,
                          baud_rate: int | None = None) -> None:
        """Model-specific set-up of the connection, before the first query; `interface` the
        port the profile says the link reaches ("rs232", "gpib"; None: unsaid), `baud_rate`
        the profile's for the link (on a LAN socket: the serial line's behind a
        serial-to-Ethernet server; None: unsaid)."""

    # --- helpers -------------------------------------------------------------------------

    def _range_error(self, what: str, value: float, allowed: str) -> RangeError:
        return RangeError(f"{what} {value!r} outside {allowed}", instrument=self.link.name)

    def _set_index(self, command: str, index: int) -> None:
        self.link.write(f"{command} {index}")
        echoed = self.link.query(f"{command}?", lambda r: parse_int(r, what=f"{command} index"))
        if echoed != index:
            raise InstrumentError(
                f"'{command} {index}' not accepted (reads back {echoed})", instrument=self.link.name
            )

    def _set_value(self, command: str, value: float, *, tolerance: float) -> None:
        self.link.write(f"{command} {value:.6g}")
        echoed = self.link.query(f"{command}?", lambda r: parse_float(r, what=command))
        if not math.isclose(echoed, value, rel_tol=_READBACK_TOLERANCE, abs_tol=tolerance):
            raise InstrumentError(
                f"'{command} {value:.6g}' not accepted (reads back {echoed:g})",
                instrument=self.link.name,
            )

    def _index_of(self, command: str, table: tuple[float, ...]) -> int:
        return self.link.query(f"{command}?", lambda r: parse_int(
            r, what=f"{command} index", within=(0, len(table) - 1)))

    # --- LockIn --------------------------------------------------------------------------

    def identify(self) -> Identity:
        return self.link.query("*IDN?", parse_identity)

    def time_constant(self) -> float:
        return self.TIME_CONSTANTS[self._index_of("OFLT", self.TIME_CONSTANTS)]

    def set_time_constant(self, tau: float) -> None:
        index = index_at_or_above(self.TIME_CONSTANTS, tau) if tau > 0 else None
        if index is None:
            raise self._range_error(
                "time constant (s)",
                tau,
                f"{min(self.TIME_CONSTANTS):g} .. {max(self.TIME_CONSTANTS):g} s",
            )
        self._set_index("OFLT", index)

    def sensitivity(self) -> float:
        return self.SENSITIVITIES[self._index_of(self.SENS_HEADER, self.SENSITIVITIES)]

    def set_sensitivity(self, volts: float) -> None:
        index = index_at_or_above(self.SENSITIVITIES, volts) if volts > 0 else None
        if index is None:
            raise self._range_error(
                "sensitivity (V)",
                volts,
                f"{min(self.SENSITIVITIES):g} .. {max(self.SENSITIVITIES):g} V",
            )
        self._set_index(self.SENS_HEADER, index)

    def reference(self, *, stop: Callable[[], bool] | None = None) -> tuple[float, float]:
        frequency = self.link.query(
            "FREQ?", lambda r: parse_float(r, what="frequency (Hz)", within=self.FREQ_RANGE))
        if stop is not None and stop():
            raise ReadStopped("the reference's read was stopped after its frequency "
                              f"({frequency:g} Hz), its amplitude not asked",
                              instrument=self.link.name)
        amplitude = self.link.query(
            "SLVL?", lambda r: parse_float(r, what="amplitude (V)", within=self.AMPLITUDE_RANGE))
        return frequency, amplitude

    def set_reference(self, frequency: float, amplitude: float) -> None:
        lo, hi = self.FREQ_RANGE
        if not lo <= frequency <= hi:
            raise self._range_error("reference frequency (Hz)", frequency, f"{lo:g} .. {hi:g} Hz")
        lo, hi = self.AMPLITUDE_RANGE
        if not lo <= amplitude <= hi:
            raise self._range_error("sine-out amplitude (V)", amplitude, f"{lo:g} .. {hi:g} V")
        self._set_value("FREQ", frequency, tolerance=1e-4)
        self._set_value("SLVL", amplitude, tolerance=self.AMPLITUDE_STEP)

    def read_xy(self) -> tuple[float, float]:
        return self.link.query(self.SNAP_XY, parse_pair)

    @abstractmethod
    def overloaded(self) -> bool:
        """True when the input or an output has overloaded since the last check."""

    def snapshot(self) -> dict[str, object]:
        frequency, amplitude = self.reference()
        x, y = self.read_xy()
        return {
            "model": self.MODEL,
            "time_constant_s": self.time_constant(),
            "sensitivity_V": self.sensitivity(),
            "reference_frequency_Hz": frequency,
            "reference_amplitude_V": amplitude,
            "harmonic": self.harmonic(),
            "reference_phase_deg": self.phase(),
            **{key: self.choice(key) for key in self.CHOICES},
            "x_V": x,
            "y_V": y,
        }

    def close(self) -> None:
        self.link.close()
