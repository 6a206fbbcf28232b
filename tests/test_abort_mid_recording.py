"""An abort while a fly line's recording is read from the stage (`DRR?`, a reply of a line
per sample: seconds to minutes on a serial line) reads no further line of it: the stage's
stop (`#24`) goes at once, the rest of the reply is dropped before the stage's next
exchange, and the rig is made safe (the stage stopped, the field ramped down) within the
bound `smm-daq safe` prints. A reply cut short, by the abort or the make-safe deadline, leaves
no stale line for the next exchange. On the virtual clock, which the emulated serial line's
reads advance; nothing sleeps."""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable

import numpy as np
import pytest

from drivers.link import parse_int
from drivers.pi_gcs import STOP_ALL, GCSLink
from simulators.emulator import Emulator
from smm_daq.acquisition.fly.settings import FlySettings
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.clock import Clock, VirtualClock
from smm_daq.errors import InstrumentTimeout, StillDropping
from smm_daq.instruments import loss_budget
from smm_daq.instruments.loss_budget import DeadlineReached
from smm_daq.instruments.profile import Profile, load_profile
from smm_daq.instruments.rig import open_rig
from smm_daq.instruments.safe_bound import safe_time_bound
from smm_daq.instruments.transport import BITS_PER_BYTE, DRAIN_TIMEOUTS

BAUD = 9600
CENTRE = (12.5e-3, 12.5e-3)
ROWS_BEFORE_ABORT = 20  # rows of the recording read when the abort comes


class SerialLine:
    """The stage's controller on a serial line of `BAUD` baud, a reply line per read: each
    command's bytes and each reply line's take their transfer on `clock`. A reply's lines not
    yet read go on coming (the controller sends its reply whole, whatever it is sent
    meanwhile), so `clear` drains them at the baud rate, then waits a timeout for the line to
    be quiet, as `SerialTransport.clear` does (at most its bound). A single-byte command (#24)
    is acted on at once, as on the real controller. `on_line(command, k)` is called as the
    k-th line (from 1) of the reply to `command` is read."""

    def __init__(self, emulator: Emulator, clock: Clock, timeout: float,
                 on_line: Callable[[str, int], None] = lambda command, k: None) -> None:
        self.emulator = emulator
        self.clock = clock
        self.timeout = timeout
        self.on_line = on_line
        self.pending: deque[str] = deque()  # lines the controller has still to send
        self.replying = ""  # the command whose reply is being sent
        self.read_of_reply = 0
        self.sent: list[tuple[float, str]] = []  # (clock time, command) as each arrived

    def _transfer(self, text: str) -> float:
        return len(text.encode("latin-1")) * BITS_PER_BYTE / BAUD

    def write(self, message: str) -> None:
        single = len(message) == 1 and ord(message) in self.emulator.immediate_bytes
        self.clock.advance(self._transfer(message if single else message + "\n"))
        self.sent.append((self.clock.now(), message))
        reply = (self.emulator.handle_byte(ord(message)) if single
                 else self.emulator.handle(message))
        if reply is not None:
            if not self.pending:
                self.replying, self.read_of_reply = message, 0
            self.pending.extend(line + "\n" for line in reply.split("\n"))

    def read(self) -> str:
        if not self.pending:
            self.clock.advance(self.timeout)
            raise InstrumentTimeout(f"no reply within {self.timeout:g} s", instrument="stage")
        line = self.pending.popleft()
        self.clock.advance(self._transfer(line))
        self.read_of_reply += 1
        self.on_line(self.replying, self.read_of_reply)
        return line.removesuffix("\n")

    def query(self, message: str) -> str:
        self.write(message)
        return self.read()

    def clear(self) -> None:
        bound = DRAIN_TIMEOUTS * self.timeout + self._transfer("x" * 65552)
        rest = sum(self._transfer(line) for line in self.pending)
        self.clock.advance(min(rest, bound))
        self.pending.clear()  # (a reply longer than the bound: dropped all the same)
        self.clock.advance(self.timeout)  # quiet for a timeout

    def close(self) -> None:
        pass


def _fly_scan_at_9600_baud(tmp_path, abort_at: Callable[[str, int], bool]
                          ) -> tuple[Profile, Sequencer, SerialLine, list[float]]:
    """The simulator's profile with its stage's serial line at BAUD (the bound counts that
    rate), its rig open with the stage on a `SerialLine`, and a fly scan of it ready to run,
    aborted the first time `abort_at(command, k)` holds for row k of a reply: the profile, the
    sequencer, the line and the rig-clock time of the abort (once it came)."""
    profile = load_profile()
    profile = dataclasses.replace(profile, stage=dataclasses.replace(
        profile.stage, link=dataclasses.replace(profile.stage.link, baud_rate=BAUD)))
    plan = ScanPlan.from_center("fly", CENTRE, (0.4e-3, 0.1e-3), 20e-6, field=(0, 0, 20e-6),
                                fly=FlySettings(pixel_time=0.05))
    rig = open_rig(profile)
    seq = Sequencer(rig, tmp_path / "s.h5", plan)
    aborted: list[float] = []

    def abort(command: str, k: int) -> None:
        if abort_at(command, k) and not aborted:
            aborted.append(rig.clock.now())
            seq.abort("test abort")

    line = SerialLine(rig.backend.endpoint(profile.stage.link.address), rig.clock,
                      profile.stage.link.timeout_s, abort)
    rig.stage.link.transport = line  # type: ignore[attr-defined]
    return profile, seq, line, aborted


def test_an_abort_while_a_fly_lines_recording_is_read_stops_the_stage_at_once(
        tmp_path) -> None:
    """A fly scan on the emulated C-884 on a 9600-baud line is aborted as the first line's
    recording (`DRR?`, over a thousand rows: about 12 s) has 20 rows read. No further row is
    read; the stop (#24) reaches the controller within a row's time of the abort, the field
    is ramped down (the supplies' outputs left on at 0 A, not switched off where they
    stand), the stage is stopped, and the rig is safe within the bound `smm-daq safe` prints.
    Unfixed, every row was read first: the stop went the rest of the recording (some 12 s)
    after the abort, a time no bound counts (at 9600 baud a 4096-point recording takes 85 s)."""
    profile, seq, line, aborted = _fly_scan_at_9600_baud(
        tmp_path, lambda command, k: command.startswith("DRR?") and k == ROWS_BEFORE_ABORT)
    rig = seq.rig
    try:
        assert seq.run() == "aborted"
    finally:
        safe_at = rig.clock.now()
        rig.close()
    assert aborted, "the recording was never read"
    recording = next(c for _, c in line.sent if c.startswith("DRR?"))
    rows = int(recording.split()[2])
    assert rows > 1000, recording
    stops = [t for t, c in line.sent if c == STOP_ALL and t >= aborted[0]]
    assert stops, line.sent
    print(f"{rows} rows; stop {stops[0] - aborted[0]:.3f} s and safe {safe_at - aborted[0]:.1f} "
          f"s after the abort (bound {safe_time_bound(profile):.0f} s)")
    row_s = 12 * BITS_PER_BYTE / BAUD
    assert stops[0] - aborted[0] <= 2 * row_s, (stops[0] - aborted[0], rows)
    assert not seq.safety_problems, seq.safety_problems
    assert safe_at - aborted[0] <= safe_time_bound(profile)
    world = rig.world
    assert not any(world.stage.moving(a) for a in world.stage.axis_names), "the stage moves"
    assert all(world.coils.output(k) for k in range(3)), "a supply was switched off"
    np.testing.assert_allclose(world.coils.currents(), 0.0, atol=1e-3)


class CutReply:
    """A stage link whose HPA? answers `LINES` lines, each `LINE_S` apart, and whose ERR?
    answers 0: what a read after the HPA? cut short reads is what was left unread."""

    timeout = 3.0
    baud_rate = BAUD  # a serial line: its clear drains, aside (`Link._drop_rest`)
    LINES = 40
    LINE_S = 2.9

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.queue: deque[str] = deque()
        self.clears = 0

    def write(self, message: str) -> None:
        if message == "HPA?":
            self.queue.extend(f"0x{k:08X}=parameter {k}" + (" " if k < self.LINES else "")
                              for k in range(1, self.LINES + 1))
        elif message == "ERR?":
            self.queue.append("0")

    def read(self) -> str:
        self.clock.advance(self.LINE_S)
        return self.queue.popleft()

    def query(self, message: str) -> str:
        self.write(message)
        return self.read()

    def clear(self) -> None:
        self.clears += 1
        self.queue.clear()

    def close(self) -> None:
        pass


def hpa_cut_at_the_deadline(transport: CutReply, clock: VirtualClock) -> GCSLink:
    """A stage link on `transport` whose HPA? was cut at a making safe's deadline: the rest
    of its reply left unread."""
    link = GCSLink(transport, name="stage", budget=loss_budget.STAGE)
    with loss_budget.making_safe(5, stage=3, clock=clock, deadline_s=10.0):
        try:
            link.query_lines("HPA?", lambda lines: lines)
        except DeadlineReached:
            pass
        else:
            raise AssertionError("HPA? was not cut at the deadline")
    return link


def test_a_reply_cut_at_the_deadline_leaves_no_stale_line_for_the_next_exchange() -> None:
    """HPA? is cut at the make-safe deadline with most of its lines unread; the next exchange
    (after the path: a scan started again) has them dropped first (aside, itself refused),
    and the one after reads its own reply.
    Unfixed, the destructive ERR? read a line of the parameter list for its error code, and
    what the controller held was lost (`ReplyUnknown`)."""
    clock = VirtualClock()
    transport = CutReply(clock)
    link = hpa_cut_at_the_deadline(transport, clock)
    assert transport.queue  # lines left unread
    # outside the path they are dropped aside, the exchange that meets them refused at once
    # (a Stop queued behind it must not wait for the drop: test_stop_amid_drop)
    with pytest.raises(StillDropping):
        link.query("ERR?", lambda r: parse_int(r, what="error code"), destructive=True)
    dropping = link._dropping
    assert dropping is not None
    dropping.join()
    assert link.query("ERR?", lambda r: parse_int(r, what="error code"), destructive=True) == 0
    assert transport.clears == 1


def test_an_abort_as_the_recordings_length_is_read_asks_no_recording(tmp_path) -> None:
    """The abort comes as the reply to `DRL?` (the recording's length, asked just before the
    recording itself) is read: the recording (`DRR?`) is not asked at all, and the stop (#24)
    goes within a row's time of the abort. Unfixed, `DRR?` went after the abort, as a reply
    begun within the make-safe path (which only its deadline cuts), and was read whole: the
    stop went the recording's time (some 12 s) after the abort."""
    _profile, seq, line, aborted = _fly_scan_at_9600_baud(
        tmp_path, lambda command, _k: command.startswith("DRL?"))
    rig = seq.rig
    try:
        assert seq.run() == "aborted"
    finally:
        rig.close()
    assert aborted, "the recording's length was never read"
    assert not [c for t, c in line.sent if c.startswith("DRR?")], line.sent
    stops = [t for t, c in line.sent if c == STOP_ALL and t >= aborted[0]]
    assert stops and stops[0] - aborted[0] <= 2 * 12 * BITS_PER_BYTE / BAUD, line.sent[-5:]
    assert not seq.safety_problems, seq.safety_problems


def test_an_abort_amid_a_moves_on_target_poll_reads_the_poll_on(tmp_path) -> None:
    """A step scan on the 9600-baud line, its stage link's timeout 5 s, is aborted as the
    first line of a move's `ONT?` poll (a line per axis) is read: the poll's other lines,
    ms away, are read, nothing is drained, and the scan ends aborted with no call said to
    have failed, the rig made safe well within a timeout of the abort. Unfixed, the poll
    was cut (`ReplyCut`, a note that the call under way failed) and its rest drained
    before the stop's check, the line waited quiet a whole timeout (5 s)."""
    profile = load_profile()
    link = dataclasses.replace(profile.stage.link, baud_rate=BAUD, timeout_s=5.0)
    profile = dataclasses.replace(profile, stage=dataclasses.replace(profile.stage, link=link))
    plan = ScanPlan.from_center("step", CENTRE, (0.1e-3, 0.1e-3), 20e-6, field=(0, 0, 20e-6))
    rig = open_rig(profile)
    seq = Sequencer(rig, tmp_path / "s.h5", plan)
    aborted: list[float] = []
    polls: list[int] = []

    def abort_amid_poll(command: str, k: int) -> None:
        if command.startswith("ONT?") and k == 1:
            polls.append(k)
            if len(polls) == 5 and not aborted:
                aborted.append(rig.clock.now())
                seq.abort("test abort")

    line = SerialLine(rig.backend.endpoint(profile.stage.link.address), rig.clock,
                      link.timeout_s, abort_amid_poll)
    clears: list[float] = []
    drain = line.clear

    def counted_clear() -> None:
        clears.append(rig.clock.now())
        drain()

    line.clear = counted_clear  # type: ignore[method-assign]
    rig.stage.link.transport = line  # type: ignore[attr-defined]
    try:
        assert seq.run() == "aborted"
    finally:
        safe_at = rig.clock.now()
        rig.close()
    assert aborted, "no ONT? poll was read"
    assert not clears, clears
    assert not [n for n in seq.notes if "failed" in n], seq.notes
    assert not seq.safety_problems, seq.safety_problems
    assert safe_at - aborted[0] < link.timeout_s
