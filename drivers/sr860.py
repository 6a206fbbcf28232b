"""Stanford Research SR860 500 kHz DSP lock-in amplifier (GPIB, RS-232, USB, Ethernet).

Sensitivity `SCAL i`, i = 0..27 for 1 V .. 1 nV full scale (1-5-2 steps, DOWNWARDS, unlike the
SR830); time constant `OFLT i`, i = 0..21 for 1 µs .. 30 ks; internal reference `RSRC 0`; input
range `IRNG 0` (1 V); voltage input `IVMD 0`, `ISRC` (0 A, 1 A-B), `ICPL`, `IGND`, `SYNC`,
harmonic `HARM`, phase `PHAS`; X and Y at one instant `SNAP? X,Y`. Overloads: `LIAS?`
latches them until read (bit 0 CH1 output, bit 1 CH2 output, bit 4 input range) and
`CUROVLDSTAT?` reports those present now (same bits).

Capture buffer (for fly scans): X and Y (`CAPTURECFG XY`) at `CAPTURERATE n` = the rate
`CAPTURERATEMAX?` allows at this time constant over 2^n, into `CAPTURELEN` kB (at most 4096),
started by `CAPTURESTART ONE,IMM` or, armed, by TRIG IN (`ONE,TRIG`); `CAPTURESTOP`, then
`CAPTURESTAT?` until its bit 0 (capturing) clears, since the manual says the capture may go on
until its current 2 kB block is full (2.56 s of X and Y at 100 Hz) and refuses `CAPTUREGET?`
meanwhile (an execution error); then `CAPTUREBYTES?` (counting the samples stored after the
stop too) and `CAPTUREGET? offset,size` (kB, at most 64 a time; IEEE 488.2 binary blocks of
little-endian 4-byte floats) read it back. `CAPTURESTART` has no reply:
`CAPTUREBYTES?` read right after it bounds when the capture began (`start_within`).

On RS-232 and telnet the reply terminator is a front-panel setting that no remote command
changes (SRS's own srsinst.sr860 asks for LF to be chosen there too); this driver reads to LF.
A unit set otherwise answers nothing the driver can read: its connect fails on the first query
saying to choose LF (`check_model`). GPIB, USB and VXI-11 frame their replies themselves.
"""

from __future__ import annotations

import math
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
from smm_daq.clock import SystemClock
from smm_daq.errors import InstrumentError, InstrumentLost, ProtocolError
from smm_daq.instruments.interfaces import (
    CLOCK_RATE_SLACK,
    BufferedLockIn,
    BufferLimits,
    BufferTrace,
    Identity,
)
from smm_daq.instruments.lockin_models import AMPLITUDE_RANGES, HARMONIC_LIMITS
from smm_daq.instruments.profile import LockInSettings
from smm_daq.instruments.transport import BlockTransport, Transport, is_own_lan_device

# CH1 output, CH2 output and input-range overload bits, in LIAS? and CUROVLDSTAT? alike.
_OVERLOAD_BITS = (1 << 0) | (1 << 1) | (1 << 4)
MAX_CAPTURE_RATE = 1.25e6  # Hz; the rates offered are this over 2^n, n = 0..20
SAMPLES_PER_TIME_CONSTANT = 390.625  # the most a time constant allows (see capture_rate_max)
# a rate's reply is rounded (6 significant digits: 9765.625 Hz reads 9765.62): one within
# this of an offered rate is that rate
RATE_RTOL = 1e-5
CAPTURE_KB = 4096
GET_KB = 64  # the most one CAPTUREGET? returns
BYTES_PER_SAMPLE = 8  # X and Y, 4-byte floats
BLOCK_BYTES = 2048  # the capture memory fills in blocks of this; a stop ends at one's end
CAPTURING_BIT = 1 << 0  # CAPTURESTAT?: bit 0 capturing, bit 1 started, bit 2 wrapped
# A stop is waited for one block's time at the capture rate (and the lock-in's clock's slack)
# plus this, for the link's round trips; CAPTURESTAT? is asked a sixteenth of the block's time
# apart, within these bounds.
STOP_MARGIN_S = 0.5
STOP_POLL_S = (0.01, 0.25)
TERMINATOR_ADVICE = (
    "On RS-232 or telnet an SR860 ends its replies with the terminator chosen on its front "
    "panel (its interface settings), which no command sets: choose LF there, the one this "
    "driver reads to (a reply ended otherwise never ends for it)")


def block_size(reply: str) -> int | None:
    """The length of the whole block `#<n><length><bytes>` whose start `reply` is, None when
    it starts no block."""
    if len(reply) < 2 or reply[0] != "#" or reply[1] not in "123456789":
        return None
    digits = int(reply[1])
    head = reply[2:2 + digits]
    if len(head) != digits or not (head.isascii() and head.isdigit()):  # latin-1 has '²'
        return None
    return 2 + digits + int(head)


def read_block(transport: Transport, command: str) -> str:
    """The reply to `command`, a binary block read whole: its bytes may hold LF (0x0A), which
    ends a read on a line-terminated link, so reads go on until the length its header gives
    (each adds at least the LF it stopped at; each is bounded by the link's timeout). A
    `BlockTransport` (a serial port, whose line reads drop a CR before the LF) reads it by
    its length itself."""
    if isinstance(transport, BlockTransport):
        return transport.query_block(command)
    reply = transport.query(command)
    size = block_size(reply)
    while size is not None and len(reply) < size:
        reply += "\n" + transport.read()
    return reply


def parse_block(reply: str) -> bytes:
    """The payload of an IEEE 488.2 definite-length block `#<n><length><bytes>`."""
    if block_size(reply) is None:
        raise ProtocolError(f"expected an IEEE 488.2 block, got {shown(reply)}")
    digits = int(reply[1])
    head = reply[2:2 + digits]
    payload = reply[2 + digits:2 + digits + int(head)]
    if len(payload) != int(head):
        raise ProtocolError(f"block of {int(head)} bytes holds {len(payload)}")
    after = reply[2 + digits + int(head):]
    if after not in ("", "\r", "\n", "\r\n"):  # its terminator, where a link leaves it
        raise ProtocolError(f"block of {int(head)} bytes followed by {shown(after)}, not its"
                            f" terminator, in {shown(reply)}")
    return payload.encode("latin-1")


def whole_piece(reply: str, kb: int) -> bytes:
    """The payload of a `CAPTUREGET?` block that asked for `kb` kB: ProtocolError (a reply
    lost in part: asked again) where it holds any other number of bytes."""
    payload = parse_block(reply)
    if len(payload) != kb * 1024:
        raise ProtocolError(f"CAPTUREGET? asked for {kb} kB and got a block of "
                            f"{len(payload)} bytes, not {kb * 1024}")
    return payload


def parse_rate(reply: str, what: str) -> float:
    """A capture rate (Hz) as a reply gives it, taken as the offered rate (1.25 MHz over
    2^n, n = 0..20) it rounds where it is within `RATE_RTOL` of one: a ceiling read as
    rounded down would refuse the very rate it allows, and the lowest would fall outside the
    range offered. ProtocolError for a reply outside that range."""
    value = parse_float(reply, what=what, within=(MAX_CAPTURE_RATE / 2**20 * (1 - RATE_RTOL),
                                                  MAX_CAPTURE_RATE * (1 + RATE_RTOL)))
    offered = MAX_CAPTURE_RATE / 2**min(20, max(0, round(math.log2(MAX_CAPTURE_RATE / value))))
    return offered if math.isclose(value, offered, rel_tol=RATE_RTOL) else value


def capture_rate_max(time_constant: float) -> float:
    """CAPTURERATEMAX? at `time_constant`: the manual says the filter's time constant limits
    the capture rate, shorter ones allowing faster rates up to 1.25 MHz, in steps of 2, and
    gives no formula. Taken as at most 390.625 samples per time constant: the least that gives
    the one real answer found, 39062.5 Hz at 10 ms (firmware 1.47, QCoDeS's SR86x example
    notebook), so any rule of this form that gives it allows as much or more at every time
    constant (only the 10 ms value is confirmed); the emulator answers the same. The
    instrument's own answer is checked when a scan starts (`configure_buffer`), so a firmware
    that allows less is refused there, before the entry is written or the field set, and no
    rate above it is ever sent."""
    wanted = SAMPLES_PER_TIME_CONSTANT / time_constant
    n = max(0, math.ceil(math.log2(MAX_CAPTURE_RATE / wanted) - 1e-12))
    return MAX_CAPTURE_RATE / 2**n


class SR860(SRSLockIn, BufferedLockIn):
    BUFFER_COUNT_QUERY = "CAPTUREBYTES?"  # what counts the buffer's samples (named in errors)
    MODEL = "SR860"
    SENSITIVITIES = (
        1.0, 0.5, 0.2, 0.1, 5e-2, 2e-2, 1e-2, 5e-3, 2e-3, 1e-3, 5e-4, 2e-4, 1e-4, 5e-5,
        2e-5, 1e-5, 5e-6, 2e-6, 1e-6, 5e-7, 2e-7, 1e-7, 5e-8, 2e-8, 1e-8, 5e-9, 2e-9, 1e-9,
    )  # fmt: skip
    TIME_CONSTANTS = (
        1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1,
        0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1e3, 3e3, 1e4, 3e4,
    )  # fmt: skip
    SENS_HEADER = "SCAL"
    REF_SOURCE = ("RSRC", 0)
    FREQ_RANGE = (0.001, 500000.0)
    AMPLITUDE_RANGE = AMPLITUDE_RANGES["sr860"]
    SNAP_XY = "SNAP? X,Y"
    MAX_HARMONIC = HARMONIC_LIMITS["sr860"].max_harmonic
    MAX_DETECTION_FREQUENCY = HARMONIC_LIMITS["sr860"].max_detection_hz
    CHOICES: ClassVar[dict[str, tuple[str, dict[object, int]]]] = {
        "input_mode": ("IVMD", {"voltage": 0, "current": 1}),
        "input": ("ISRC", {"A": 0, "A-B": 1}),
        "coupling": ("ICPL", {"AC": 0, "DC": 1}),
        "grounding": ("IGND", {"float": 0, "ground": 1}),
        "sync_filter": ("SYNC", {False: 0, True: 1}),
    }

    terminated_as_set = False  # the link's replies end with the front panel's terminator
    get_kb = GET_KB  # kB per CAPTUREGET? (fewer over LAN at a short timeout: `piece_size`)

    def prepare_interface(self, address: str, interface: str | None = None,
                          baud_rate: int | None = None) -> None:
        """On a serial line or a socket (RS-232, telnet, or a serial-to-Ethernet server) the
        replies end with the terminator chosen on the front panel. Over LAN a capture is read
        in pieces that each come within half the link's timeout through a LAN-GPIB gateway
        (`piece_size`: 64 kB take 0.65 s there); a serial line's read waits for the largest
        reply's transfer. A LAN address with a `baud_rate` in the profile reaches the RS-232
        port through a serial-to-Ethernet server, whose line passes far less than a LAN
        within a LAN read's timeout (64 kB take 5.7 s at 115200 baud): the pieces are sized
        for the line (the link cannot tell that socket from the SR860's own Ethernet one,
        sized for a LAN); the SR860's own VXI-11 or HiSLIP device has no line behind it, and
        is sized for a LAN whatever the profile's `baud_rate`."""
        text = address.strip().upper()
        serial = text.startswith(("ASRL", SERIAL_PREFIX.upper()))
        self.terminated_as_set = serial or text.endswith("::SOCKET")
        if not serial:
            if is_own_lan_device(address):
                baud_rate = None
            self.get_kb = piece_size(self.link.transport, address, serial=baud_rate is not None,
                                     unit_bytes=1024, most=GET_KB, line_baud_rate=baud_rate)

    def check_model(self) -> Identity:
        """As every lock-in's; where the first query has no reply it can read on a link whose
        terminator is the front panel's, the error says to choose LF there."""
        try:
            return super().check_model()
        except InstrumentLost as exc:
            if not self.terminated_as_set:
                raise
            detail = str(exc).removeprefix(f"{exc.instrument}: ")
            raise InstrumentLost(f"{detail}. {TERMINATOR_ADVICE}",
                                 instrument=exc.instrument) from exc

    def chosen(self, settings: LockInSettings) -> dict[str, object]:
        """The SR860 chooses its reserve itself; its input is a voltage first of all."""
        return {"input_mode": "voltage", **super().chosen(settings)}

    def clear_offsets(self) -> None:
        for channel in (0, 1, 2):  # X, Y, R: offset 0 %, expansion off
            for command in ("COFP", "CEXP"):
                self.link.write(f"{command} {channel},0")
                self._check_zero(f"{command}? {channel}")

    def configure(self, settings: LockInSettings) -> None:
        self._set_index("IRNG", 0)
        super().configure(settings)

    def _status(self, command: str, *, destructive: bool = False) -> int:
        return self.link.query(
            command, lambda r: parse_int(r, what=f"{command} status", within=(0, 0xFFFF)),
            destructive=destructive)

    def overloaded(self) -> bool:
        latched = self._status("LIAS?", destructive=True)
        present = self._status("CUROVLDSTAT?")
        return bool((latched | present) & _OVERLOAD_BITS)

    # -- capture buffer ---------------------------------------------------------------------

    @classmethod
    def buffer_limits(cls) -> BufferLimits:
        rates = tuple(MAX_CAPTURE_RATE / 2**n for n in range(20, -1, -1))
        return BufferLimits(points=CAPTURE_KB * 1024 // BYTES_PER_SAMPLE, rates=rates,
                            time_constants=cls.TIME_CONSTANTS,
                            max_rates=tuple(map(capture_rate_max, cls.TIME_CONSTANTS)),
                            poles=2 * SLOPE_12_DB)

    def configure_buffer(self, rate: float, *,
                         stop: Callable[[], bool] | None = None) -> float:
        """As `BufferedLockIn.configure_buffer`; `stop` (an abort) is asked while a capture
        left running (a scan aborted mid-line) runs on to its block's end, as in
        `start_buffer`: `ReadStopped`."""
        self.capture_span.started(None)  # a new configuration empties the buffer
        self._stop_capture(stop)  # a capture under way refuses its settings
        highest = self.link.query("CAPTURERATEMAX?", lambda r: parse_rate(r, "rate (Hz)"))
        if rate > highest * (1 + 1e-9):
            raise self._range_error("capture rate", rate,
                                    f"at most {highest:g} Hz at this time constant")
        n = min(20, math.floor(math.log2(highest / rate) + 1e-9))
        self._set_index("CAPTURECFG", 1)
        self._set_index("CAPTURELEN", CAPTURE_KB)
        self.link.write(f"CAPTURERATE {n}")
        got = self.link.query("CAPTURERATE?", lambda r: parse_float(r, what="capture rate"))
        if not math.isclose(got, highest / 2**n, rel_tol=RATE_RTOL):
            raise ProtocolError(f"CAPTURERATE {n} reads back {got:g} Hz, not "
                                f"{highest / 2**n:g} Hz", instrument=self.link.name)
        return highest / 2**n  # the offered rate that the reply rounds

    def start_buffer(self, *, on_trigger: bool, pixel_time: float | None = None,
                     stop: Callable[[], bool] | None = None) -> float | None:
        """As `BufferedLockIn.start_buffer`; `stop` (an abort) is asked while the last
        capture runs on to its block's end (up to 215 s at the lowest rate): `ReadStopped`."""
        self.capture_span.started(None)
        self._stop_capture(stop)  # a capture under way refuses CAPTURESTART
        if on_trigger or self.clock is None:
            self.link.write(f"CAPTURESTART ONE,{'TRIG' if on_trigger else 'IMM'}")
            return None
        rate = self._capture_rate()
        before = self.clock.now()
        self.link.write("CAPTURESTART ONE,IMM")  # no reply: CAPTUREBYTES? bounds the start
        stored = self._captured_bytes() // BYTES_PER_SAMPLE
        line_s = line_time(self.link.transport, ("CAPTURESTART ONE,IMM", "CAPTUREBYTES?",
                                                  str(CAPTURE_KB * 1024)))
        after = self.clock.now()
        start = start_within(before, after, stored, rate, query="CAPTUREBYTES?",
                             instrument=self.link.name, pixel_time=pixel_time, line_s=line_s)
        self.capture_span.started(after)  # taken before its count's reply, if taken
        return start

    @classmethod
    def run_on_s(cls, samples: float, rate: float) -> float:
        """The capture runs on to its 2 kB block's end after `CAPTURESTOP`, seen at the
        status polls of `_stop_capture`."""
        per_block = BLOCK_BYTES // BYTES_PER_SAMPLE
        poll = min(max(per_block / rate / 16, STOP_POLL_S[0]), STOP_POLL_S[1])
        left = (-samples) % per_block / rate
        return math.ceil(left / poll - 1e-9) * poll

    def _capturing(self) -> bool:
        # bits above the three the manual names (a later firmware's) are read past, not refused
        return bool(self.link.query("CAPTURESTAT?", lambda r: parse_int(
            r, what="capture status", within=(0, 255))) & CAPTURING_BIT)

    def _stop_capture(self, stop: Callable[[], bool] | None = None) -> None:
        """`CAPTURESTOP`, then `CAPTURESTAT?` until the capture has stopped, on the rig's
        clock: the SR860 may capture on until its current 2 kB block is full, refusing
        `CAPTUREGET?`, `CAPTURESTART` and the capture's settings meanwhile. `stop` (an abort)
        is asked between the queries. InstrumentError where it still captures a block's time
        at the capture rate after the command (`STOP_MARGIN_S` and the clocks' slack more),
        `CAPTURESTOP` sent once more before."""
        self.link.write("CAPTURESTOP")
        if not self._capturing():
            return
        clock = self.clock or SystemClock()
        rate = self._capture_rate()
        block_s = BLOCK_BYTES / BYTES_PER_SAMPLE / rate
        waited_from = clock.now()
        deadline = waited_from + block_s * (1 + CLOCK_RATE_SLACK) + STOP_MARGIN_S
        poll = min(max(block_s / 16, STOP_POLL_S[0]), STOP_POLL_S[1])
        while clock.now() < deadline:
            stop_between_pieces(stop, self.link.name)
            clock.sleep(min(poll, deadline - clock.now()))
            if not self._capturing():
                return
        self.link.write("CAPTURESTOP")
        raise InstrumentError(
            f"CAPTURESTAT? still says capturing {clock.now() - waited_from:.3g} s after "
            f"CAPTURESTOP; a capture stops at the end of its 2 kB block, within {block_s:.3g} s "
            f"at {rate:g} Hz (CAPTURESTOP sent again)", instrument=self.link.name)

    def _capture_rate(self) -> float:
        return self.link.query("CAPTURERATE?", lambda r: parse_rate(r, "capture rate (Hz)"))

    def _captured_bytes(self) -> int:
        return self.link.query("CAPTUREBYTES?", lambda r: parse_int(
            r, what="captured bytes", within=(0, CAPTURE_KB * 1024)))

    def read_buffer(self, *, stop: Callable[[], bool] | None = None) -> BufferTrace:
        """Every sample the capture stored, those after the stop to its block's end among
        them (the caller takes the line's by their times); after a software start
        (`start_buffer` with a clock) `InstrumentError` where `CAPTUREBYTES?` counts fewer
        than the time between that start and this stop stores (a start the lock-in never
        took), never a trace of fewer samples; each `CAPTUREGET?` piece must hold the kB it
        asked for. `stop` is asked while the capture's stop is waited for too."""
        self.capture_span.stopping(self.clock.now() if self.clock is not None else None)
        self._stop_capture(stop)
        rate = self._capture_rate()
        size = self._captured_bytes()
        self.capture_span.check_count(
            size // BYTES_PER_SAMPLE, rate, CAPTURE_KB * 1024 // BYTES_PER_SAMPLE,
            query="CAPTUREBYTES?", start="CAPTURESTART ONE,IMM", instrument=self.link.name)
        data = b""
        for offset in range(0, math.ceil(size / 1024), self.get_kb):
            kb = min(self.get_kb, math.ceil(size / 1024) - offset)
            # the raw reply: a binary block must not lose its last bytes to stripping
            command = f"CAPTUREGET? {offset},{kb}"
            stop_between_pieces(stop, self.link.name)
            with reply_stop.stoppable(stop):  # and within the block, where a line can
                data += self.link._attempt(
                    lambda c=command, k=kb: whole_piece(read_block(self.link.transport, c), k),
                    command)
        values = np.frombuffer(data[: size - size % BYTES_PER_SAMPLE], dtype="<f4")
        return BufferTrace(rate=rate, x=values[0::2].astype(float), y=values[1::2].astype(float))
