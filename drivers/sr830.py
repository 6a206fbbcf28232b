"""Stanford Research SR830 DSP lock-in amplifier (GPIB or RS-232).

Input `ISRC` (0 A, 1 A-B, 2 and 3 current), coupling `ICPL`, shield `IGND`, dynamic reserve
`RMOD` (0 high, 1 normal, 2 low noise), `SYNC`, harmonic `HARM`, phase `PHAS` (0.01°).
Sensitivity `SENS i`, i = 0..26 for 2 nV .. 1 V full scale (1-2-5 steps); time constant
`OFLT i`, i = 0..19 for 10 µs .. 30 ks (1-3 steps); internal reference `FMOD 1`; X and Y at one
instant `SNAP? 1,2`. Overloads latch in the LIA status byte (`LIAS?`, cleared by reading): bit 0
input or reserve, bit 1 filter, bit 2 output. Replies go to the interface `OUTX` names, so the
driver sets it first (0 RS-232, 1 GPIB): the port the profile's `lockin.interface` names, else
the one the address implies (ASRL or serial: RS-232; GPIB, and any other, GPIB). A socket
(`TCPIP…::SOCKET`) may reach either, through a serial-to-Ethernet server in front of the
RS-232 port or a GPIB-Ethernet gateway, so there the profile must say which.

Data buffer (for fly scans): CH1 and CH2 display X and Y (`DDEF 1,0,0`, `DDEF 2,0,0`), stored
at `SRAT i` = 62.5 mHz · 2^i (i = 0..13, up to 512 Hz) into 16383 points, one shot (`SEND 0`),
cleared by `REST`, started by `STRT` or, with `TSTR 1`, by a rising edge at TRIG IN; `PAUS`
stops it, `SPTS?` counts the points, `TRCA? ch,first,count` reads them as ASCII (a text
transport carries it unchanged, which TRCB?'s binary bytes would not survive everywhere).
`STRT` has no reply: `SPTS?` read right after it bounds when storage began (`start_within`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np

from drivers import reply_stop
from drivers.link import parse_float, parse_int, shown
from drivers.srs_lockin import (
    SLOPE_12_DB,
    SRSLockIn,
    line_time,
    piece_size,
    start_within,
    stop_between_pieces,
)
from drivers.transports import SERIAL_PREFIX
from smm_daq.errors import ProtocolError
from smm_daq.instruments.interfaces import BufferedLockIn, BufferLimits, BufferTrace
from smm_daq.instruments.lockin_models import AMPLITUDE_RANGES, HARMONIC_LIMITS
from smm_daq.instruments.profile import LockInSettings

# Bits of the LIA status byte that mean an overload: input/reserve, filter, output.
_OVERLOAD_BITS = 0b111
BUFFER_POINTS = 16383
SAMPLE_RATES = tuple(0.0625 * 2**i for i in range(14))  # SRAT 0..13, Hz
TRACE_CHUNK = 2048  # points per TRCA? reply
TRACE_POINT_BYTES = 15  # one TRCA? point on the wire: '+1.234567e-009,'
# V (A on the current input): ten times the largest full scale (1 V), so past any X or Y an
# SR830 displays, overloaded or not; a corrupted exponent or another query's number is beyond.
MAX_POINT = 10.0


def _parse_trace(reply: str, count: int) -> np.ndarray:
    """A TRCA? reply: `count` numbers, each followed by a comma (the manual's example of two
    points: '-1.234567e-009,+7.654321e-009,'). A reply without its final comma was cut short
    (its last number may have lost digits and still parse); an empty field is a lost number;
    a value no X or Y display can show is another query's reply or a corrupted one. Each is
    refused, quoting the reply."""
    text = reply.strip()
    if not text.endswith(","):
        raise ProtocolError(
            f"expected {count} buffer points each followed by a comma, got {shown(reply)}"
            " (no final comma: cut short)")
    parts = text[:-1].split(",")
    if len(parts) != count:
        raise ProtocolError(f"expected {count} buffer points, got {len(parts)} in {shown(reply)}")
    try:
        return np.array([parse_float(p, what="buffer point", within=(-MAX_POINT, MAX_POINT))
                         for p in parts])
    except ProtocolError as exc:
        raise ProtocolError(f"{exc} in {shown(reply)}") from None


class SR830(SRSLockIn, BufferedLockIn):
    BUFFER_COUNT_QUERY = "SPTS?"  # what counts the buffer's samples (named in errors)
    trace_chunk = TRACE_CHUNK  # points per TRCA? (fewer on a slow link: `piece_size`)
    MODEL = "SR830"
    SENSITIVITIES = (
        2e-9, 5e-9, 1e-8, 2e-8, 5e-8, 1e-7, 2e-7, 5e-7, 1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5,
        1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1.0,
    )  # fmt: skip
    TIME_CONSTANTS = (
        1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3,
        1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1e3, 3e3, 1e4, 3e4,
    )  # fmt: skip
    SENS_HEADER = "SENS"
    REF_SOURCE = ("FMOD", 1)
    FREQ_RANGE = (0.001, 102000.0)
    AMPLITUDE_RANGE = AMPLITUDE_RANGES["sr830"]
    AMPLITUDE_STEP = 0.002
    SNAP_XY = "SNAP? 1,2"
    MAX_HARMONIC = HARMONIC_LIMITS["sr830"].max_harmonic
    MAX_DETECTION_FREQUENCY = HARMONIC_LIMITS["sr830"].max_detection_hz
    CHOICES: ClassVar[dict[str, tuple[str, dict[object, int]]]] = {
        "input": ("ISRC", {"A": 0, "A-B": 1, "I (1 MOhm)": 2, "I (100 MOhm)": 3}),
        "coupling": ("ICPL", {"AC": 0, "DC": 1}),
        "grounding": ("IGND", {"float": 0, "ground": 1}),
        "reserve": ("RMOD", {"high": 0, "normal": 1, "low_noise": 2}),
        "sync_filter": ("SYNC", {False: 0, True: 1}),
    }

    def chosen(self, settings: LockInSettings) -> dict[str, object]:
        return {**super().chosen(settings), "reserve": settings.reserve}

    def clear_offsets(self) -> None:
        for channel in (1, 2, 3):  # X, Y, R: offset 0 %, expand ×1
            self.link.write(f"OEXP {channel},0,0")
            self._check_zero(f"OEXP? {channel}")

    def prepare_interface(self, address: str, interface: str | None = None,
                          baud_rate: int | None = None) -> None:
        """Replies to the port we talk on (OUTX): on RS-232 the SR830 ends each with a carriage
        return, where GPIB ends it with a line feed, so a serial link is told to read to CR.
        A buffer is read in pieces that each come within half the link's timeout at its
        slowest rate (`piece_size`: 2048 points are 30 kB, half a minute at 9600 baud, and
        0.3 s through a LAN-GPIB gateway, which a read timed as a whole would not wait);
        behind a serial-to-Ethernet server at the profile's `baud_rate` for the line."""
        if interface is None:
            serial = address.upper().startswith("ASRL") or address.startswith(SERIAL_PREFIX)
        else:
            serial = interface == "rs232"
        self.link.write(f"OUTX {0 if serial else 1}")
        transport = self.link.transport
        expect = getattr(transport, "expect_reply_end", None)
        if serial and expect is not None:
            expect("\r")
        self.trace_chunk = piece_size(transport, address, serial=serial,
                                      unit_bytes=TRACE_POINT_BYTES, most=TRACE_CHUNK,
                                      line_baud_rate=baud_rate)

    def overloaded(self) -> bool:
        status = self.link.query(
            "LIAS?", lambda r: parse_int(r, what="LIA status byte", within=(0, 255)),
            destructive=True)
        return bool(status & _OVERLOAD_BITS)

    # -- data buffer ------------------------------------------------------------------------

    @classmethod
    def buffer_limits(cls) -> BufferLimits:
        return BufferLimits(points=BUFFER_POINTS, rates=SAMPLE_RATES,
                            time_constants=cls.TIME_CONSTANTS,
                            max_rates=(SAMPLE_RATES[-1],) * len(cls.TIME_CONSTANTS),
                            poles=2 * SLOPE_12_DB)

    @classmethod
    def run_on_s(cls, samples: float, rate: float) -> float:
        """`PAUS` stops storing at once: nothing is stored on after a line."""
        return 0.0

    def configure_buffer(self, rate: float, *,
                         stop: Callable[[], bool] | None = None) -> float:
        """As `BufferedLockIn.configure_buffer`; `PAUS` stops storing at once, so `stop` has
        no wait to cut short."""
        fits = [i for i, r in enumerate(SAMPLE_RATES) if r >= rate * (1 - 1e-9)]
        if not fits:
            raise self._range_error("buffer sample rate", rate, f"at most {SAMPLE_RATES[-1]} Hz")
        self.capture_span.started(None)  # a new configuration: no start to check against
        self.link.write("PAUS")
        for channel in (1, 2):  # CH1 shows X, CH2 shows Y, no ratio: the buffer stores them
            self.link.write(f"DDEF {channel},0,0")
            if self.link.query(f"DDEF? {channel}", str.strip).replace(" ", "") != "0,0":
                raise ProtocolError(f"DDEF {channel},0,0 was not kept", instrument=self.link.name)
        self._set_index("SRAT", fits[0])
        self._set_index("SEND", 0)
        return SAMPLE_RATES[fits[0]]

    def start_buffer(self, *, on_trigger: bool,
                     pixel_time: float | None = None) -> float | None:
        self.capture_span.started(None)
        self._set_index("TSTR", int(on_trigger))
        self.link.write("REST")
        if on_trigger:
            return None
        if self.clock is None:
            self.link.write("STRT")
            return None
        rate = SAMPLE_RATES[self._index_of("SRAT", SAMPLE_RATES)]
        before = self.clock.now()
        self.link.write("STRT")  # no reply: SPTS? right after bounds when storage began
        stored = self._stored()
        after = self.clock.now()
        start = start_within(before, after, stored, rate, query="SPTS?",
                             instrument=self.link.name, pixel_time=pixel_time,
                             line_s=line_time(self.link.transport,
                                              ("STRT", "SPTS?", str(BUFFER_POINTS))))
        self.capture_span.started(after)  # taken before its count's reply, if taken
        return start

    def _stored(self) -> int:
        n = self.link.query("SPTS?", lambda r: parse_int(r, what="buffer point count"))
        if not 0 <= n <= BUFFER_POINTS:
            raise ProtocolError(f"SPTS? gave {n} points", instrument=self.link.name)
        return n

    def read_buffer(self, *, stop: Callable[[], bool] | None = None) -> BufferTrace:
        """Every point stored; after a software start (`start_buffer` with a clock)
        `InstrumentError` where `SPTS?` counts fewer than the time between that start and
        this pause stores (a start the lock-in never took), never a trace of fewer."""
        self.capture_span.stopping(self.clock.now() if self.clock is not None else None)
        self.link.write("PAUS")
        n = self._stored()
        rate = SAMPLE_RATES[self._index_of("SRAT", SAMPLE_RATES)]
        self.capture_span.check_count(n, rate, BUFFER_POINTS, query="SPTS?", start="STRT",
                                      instrument=self.link.name)
        channels = []
        for channel in (1, 2):
            chunks = [np.zeros(0)]
            for first in range(0, n, self.trace_chunk):
                k = min(self.trace_chunk, n - first)
                stop_between_pieces(stop, self.link.name)
                with reply_stop.stoppable(stop):  # and within the piece, where a line can
                    chunks.append(self.link.query(f"TRCA? {channel},{first},{k}",
                                                  lambda r, k=k: _parse_trace(r, k)))
            channels.append(np.concatenate(chunks))
        return BufferTrace(rate=rate, x=channels[0], y=channels[1])
