"""An abort while a piece of a fly line's lock-in buffer comes in over a slow serial line (an
SR830's `TRCA?`, an SR860's `CAPTUREGET?` block: seconds at 9600 baud) ends that piece
within a slice (`STOP_SLICE_S`), not at its end: the rig is made safe at once, and the rest
of the piece, still coming, is dropped before the lock-in's next exchange, which reads its
own reply. On the rig's virtual clock, which the emulated line's reads advance; nothing
sleeps."""

from __future__ import annotations

import math
import re
import types
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

import numpy as np
import pytest
import serial

from drivers import transports
from drivers.transports import SerialTransport
from simulators.emulator import BinaryReply, Emulator
from smm_daq.acquisition.fly.settings import FlySettings
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.clock import Clock
from smm_daq.errors import ReadStopped, StillDropping
from smm_daq.instruments.interfaces import STOP_SLICE_S
from smm_daq.instruments.profile import DEFAULT_PROFILE, Profile, load_profile, parse_profile
from smm_daq.instruments.rig import Rig, open_rig
from smm_daq.instruments.safe_bound import safe_time_bound
from smm_daq.instruments.transport import BITS_PER_BYTE

BAUD = 9600
BYTE_S = BITS_PER_BYTE / BAUD
TIMEOUT_S = 10.0  # the lock-in's link timeout: an SR830's piece comes within half of it
CENTRE = (12.5e-3, 12.5e-3)
READ_BEFORE_ABORT = 600  # bytes of the piece come when the abort comes
HANG_GUARD_S = 30.0  # real seconds; only a hang reaches it
T = TypeVar("T")


class LineAtBaud(serial.SerialBase):
    """The lock-in's RS-232 port at `BAUD`, never opened (so setting its timeouts
    reconfigures nothing): each command reaches the emulator once its bytes have gone out;
    each reply's bytes then arrive one every `BYTE_S` on `clock`, whatever is read or sent
    meanwhile. A read waits for what it asks as pyserial's does, up to its timeout.
    `watch(prefix, n, then)`: `then()` is called as the n-th byte of the first reply to a
    command starting with `prefix` arrives (within a read's wait, at that time)."""

    def __init__(self, emulator: Emulator, clock: Clock) -> None:
        super().__init__(baudrate=BAUD, timeout=TIMEOUT_S, write_timeout=TIMEOUT_S)
        self.emulator = emulator
        self.clock = clock
        self.incoming = bytearray()
        self.first_at = 0.0  # when incoming[0] arrives
        self.sent: list[str] = []
        self.replies: list[tuple[str, int]] = []  # (command, bytes of its reply)
        self._watch: tuple[str, int, Callable[[], None]] | None = None
        self._watched_at: float | None = None  # when the watched byte arrives

    def watch(self, prefix: str, n: int, then: Callable[[], None]) -> None:
        self._watch = (prefix, n, then)

    def _arrived(self) -> int:
        return max(0, min(len(self.incoming),
                          math.floor((self.clock.now() - self.first_at) / BYTE_S + 1e-9)))

    @property
    def in_waiting(self) -> int:
        return self._arrived()

    def write(self, data: bytes) -> int:
        self.clock.sleep(len(data) * BYTE_S)
        for message in data.decode("latin-1").split("\n")[:-1]:
            self.sent.append(message)
            reply = self.emulator.handle(message)
            if reply is None:
                continue
            raw = (reply if isinstance(reply, BinaryReply) else reply + self.emulator.reply_end)
            if not self.incoming:
                self.first_at = self.clock.now()
            if self._watch is not None and message.startswith(self._watch[0]) \
                    and self._watched_at is None:
                self._watched_at = self.first_at + (len(self.incoming) + self._watch[1]) * BYTE_S
            self.incoming += raw.encode("latin-1")
            self.replies.append((message, len(raw)))
        return len(data)

    def _sleep_until(self, then: float) -> None:
        """The clock on to `then`, the watched byte's arrival told on the way."""
        at = self._watched_at
        if self._watch is not None and at is not None and self.clock.now() < at <= then:
            self.clock.sleep(at - self.clock.now())
            tell = self._watch[2]
            self._watch = None
            tell()
        self.clock.sleep(max(0.0, then - self.clock.now()))

    def read(self, size: int = 1) -> bytes:
        now = self.clock.now()
        wait = (self.first_at + size * BYTE_S - now if size <= len(self.incoming)
                else math.inf)
        self._sleep_until(now + max(0.0, min(wait, self.timeout)))
        n = self._arrived() if wait > self.timeout else size
        taken = bytes(self.incoming[:n])
        del self.incoming[:n]
        self.first_at += n * BYTE_S
        return taken

    def reset_input_buffer(self) -> None:
        n = self._arrived()
        del self.incoming[:n]
        self.first_at += n * BYTE_S

    def reset_output_buffer(self) -> None:
        pass

    def close(self) -> None:
        pass


def once_dropped(call: Callable[[], T]) -> T:
    """`call()`, refused while the rest of a piece cut short is dropped aside
    (`StillDropping`), made again once that drop has ended, as a scan's worker does."""
    try:
        return call()
    except StillDropping as exc:
        assert exc.wait(HANG_GUARD_S), "the drop did not end"
    return call()


def _sr860_profile() -> Profile:
    text = DEFAULT_PROFILE.read_text().replace('implementation = "sr830"',
                                               'implementation = "sr860"')
    return parse_profile(re.sub(r"reserve = .*\n", "", text), DEFAULT_PROFILE)


PIECE = {"sr830": "TRCA?", "sr860": "CAPTUREGET?"}


def _on_a_serial_line(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> LineAtBaud:
    """The rig's lock-in put on a `LineAtBaud` through `SerialTransport`, the transport's
    time the rig's clock; an SR830's pieces as its driver sizes them for the line."""
    monkeypatch.setattr(transports, "time", types.SimpleNamespace(
        monotonic=rig.clock.now, sleep=rig.clock.sleep))
    link = rig.lockin.link  # type: ignore[attr-defined]
    port = LineAtBaud(link.transport.emulator, rig.clock)
    link.transport = SerialTransport(port, name=link.name)
    if hasattr(rig.lockin, "trace_chunk"):  # as `SR830.prepare_interface` sizes them
        per_s = BAUD / BITS_PER_BYTE / 15
        rig.lockin.trace_chunk = min(2048, int(0.5 * TIMEOUT_S * per_s))  # type: ignore[attr-defined]
    return port


@pytest.mark.parametrize("model", ["sr830", "sr860"])
def test_an_abort_amid_a_buffer_piece_on_a_slow_line_ends_it_within_a_slice(
        model: str, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fly scan whose lock-in is on a 9600-baud line is aborted as the first piece of its
    buffer has 600 bytes come (an SR830's piece of 320 points is about 5 s of the line, an
    SR860's block of the line's samples as long): the rig is made safe within a slice of the
    abort, the line is not stored, and the rig is safe within the bound. Then the lock-in's
    next exchange drops the rest of the piece, still coming, and reads its own reply.
    Unfixed, the whole piece was read first (seconds), and only then was the abort seen."""
    profile = load_profile() if model == "sr830" else _sr860_profile()
    plan = ScanPlan.from_center("fly", CENTRE, (0.4e-3, 0.1e-3), 20e-6, field=(0, 0, 20e-6),
                                fly=FlySettings(pixel_time=0.05))
    rig = open_rig(profile)
    seq = Sequencer(rig, tmp_path / "s.h5", plan)
    aborted: list[float] = []

    def abort() -> None:
        aborted.append(rig.clock.now())
        seq.abort("test abort")

    port = _on_a_serial_line(rig, monkeypatch)
    port.watch(PIECE[model], READ_BEFORE_ABORT, abort)
    made_safe: list[float] = []
    make_safe = rig.make_safe

    def noted_safe() -> list[str]:
        made_safe.append(rig.clock.now())
        return make_safe()

    monkeypatch.setattr(rig, "make_safe", noted_safe)
    try:
        assert seq.run() == "aborted"
        safe_at = rig.clock.now()
        assert aborted, "no piece was read"
        pieces = [n for command, n in port.replies if command.startswith(PIECE[model])]
        assert pieces[0] * BYTE_S > 4.0, pieces  # seconds of the line
        print(f"{model}: piece of {pieces[0]} B ({pieces[0] * BYTE_S:.1f} s); made safe "
              f"{made_safe[0] - aborted[0]:.3f} s after the abort")
        assert made_safe[0] - aborted[0] <= STOP_SLICE_S + 2 * BYTE_S
        assert len(pieces) == 1, pieces
        assert not seq.safety_problems, seq.safety_problems
        lockin = replace(profile.lockin, link=replace(
            profile.lockin.link, address="serial:/dev/ttyS0", baud_rate=BAUD,
            timeout_s=TIMEOUT_S))
        assert safe_at - aborted[0] <= safe_time_bound(replace(profile, lockin=lockin))
        # the rest of the piece is still coming: the next exchange has it dropped aside (and
        # is refused meanwhile); the one after the drop reads its own reply
        assert port.incoming and port.first_at + len(port.incoming) * BYTE_S > safe_at
        link = rig.lockin.link  # type: ignore[attr-defined]
        failures = link.failures
        assert once_dropped(rig.lockin.time_constant) == pytest.approx(seq._tau)
        assert port.sent[-1] == "OFLT?" and not port.incoming
        assert link.failures == failures  # no reply taken for another's, none garbled
    finally:
        rig.close()
    np.testing.assert_allclose(rig.coils.field_setpoint(), 0.0, atol=1e-12)


def test_a_stop_amid_a_piece_ends_the_read_and_the_next_exchange_reads_its_own_reply(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An SR830's buffer read with a stop that comes true as its first piece has 600 bytes
    come ends with `ReadStopped` within a slice, on the rig's clock; the lock-in's next
    query has the rest of the piece dropped first (it goes on arriving: aside, the query
    refused meanwhile), and once it has been, reads its own reply.
    Unfixed, the stop was asked only between pieces: the piece was read whole; and a piece
    cut short and not dropped was read as the next query's reply (garbled, retried)."""
    rig = open_rig(load_profile())
    try:
        lockin: Any = rig.lockin
        lockin.configure_buffer(64.0)
        lockin.start_buffer(on_trigger=False)
        rig.clock.sleep(20.0)  # 1280 samples stored
        stop_at: list[float] = []
        port = _on_a_serial_line(rig, monkeypatch)
        port.watch("TRCA?", READ_BEFORE_ABORT, lambda: stop_at.append(rig.clock.now()))
        with pytest.raises(ReadStopped, match="the reply was cut after"):
            lockin.read_buffer(stop=lambda: bool(stop_at))
        assert stop_at, "no piece was read"
        assert rig.clock.now() - stop_at[0] <= STOP_SLICE_S + 2 * BYTE_S
        assert port.incoming  # the rest of the piece still comes
        failures = lockin.link.failures
        assert once_dropped(lockin.sensitivity) == pytest.approx(rig.profile.lockin.sensitivity)
        assert port.sent == [*port.sent[:-1], "SENS?"] and not port.incoming
        assert lockin.link.failures == failures  # the rest never read for SENS?'s reply
    finally:
        rig.close()
