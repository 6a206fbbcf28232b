"""An abort during a step scan's point (a window's Abort, Ctrl-C or SIGTERM during `smm-daq
run`, a recipe's abort) is acted on within a slice of the wait under way, a stage move
included: the move is stopped where it is, and the rig made safe from there by one bounded
path counted from the abort, as for the field's ramp."""

from __future__ import annotations

import threading

from acq_fakes import fake_rig

from drivers.pi_gcs import BRAKE_MARGIN, BRAKE_SLACK_S
from simulators.pi_emulator import MOTOR_DECELERATION
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.instruments import interfaces, loss_budget
from smm_daq.instruments import rig as rig_module
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import Rig, open_rig
from smm_daq.storage.scan_entry import ScanEntryWriter

UM = 1e-6
WAIT_S = 60.0  # real seconds a held thread waits at most (it is let go long before)
# the scan's grid, far from where the simulator's C-884 is referenced (mid travel, 12.5 mm):
# its first move takes seconds
CENTRE = (5e-3, 5e-3)
# the most the driver's stop waits for the C-884's axes to brake from the profile's 2 mm/s
BRAKING_S = BRAKE_MARGIN * 2e-3 / MOTOR_DECELERATION + BRAKE_SLACK_S


class PointScan:
    """A step scan on the simulated rig, aborted by `abort_at_move` during its first move
    (once the stage has been sent MOV and the sequencer waits); what the stage and the coil
    supplies are sent is logged with the rig-clock time it was sent at."""

    def __init__(self, tmp_path, monkeypatch, *, field=(0.0, 0.0, 0.0)) -> None:
        self.rig: Rig = open_rig(load_profile())
        self.clock = self.rig.clock
        self.stage_sent: list[tuple[float, str]] = []
        self.coil_sent: list[list[tuple[float, str]]] = [[] for _ in self.rig.coils._supplies]
        self._log(monkeypatch, self.rig.stage.link.transport, self.stage_sent)
        for log, supply in zip(self.coil_sent, self.rig.coils._supplies, strict=True):
            self._log(monkeypatch, supply.link.transport, log)
        self.made_safe: list[tuple[float, float]] = []  # (began, ended) on the rig's clock
        make_safe = self.rig.make_safe

        def make_safe_noted() -> list[str]:
            began = self.clock.now()
            try:
                return make_safe()
            finally:
                self.made_safe.append((began, self.clock.now()))

        monkeypatch.setattr(self.rig, "make_safe", make_safe_noted)
        plan = ScanPlan.from_center("point", CENTRE, (40 * UM, 40 * UM), 20 * UM, field=field)
        self.seq = Sequencer(self.rig, tmp_path / "s.h5", plan)
        self.aborted: list[float] = []
        sleep = self.clock.sleep

        def sleeping(seconds: float) -> None:
            if not self.aborted and any(m.startswith("MOV") for _, m in self.stage_sent):
                self.aborted.append(self.clock.now())
                self.abort_at_move()
                self.seq.abort()
            sleep(seconds)

        monkeypatch.setattr(self.clock, "sleep", sleeping)

    def abort_at_move(self) -> None:
        """What else happens as the abort comes (nothing here)."""

    def _log(self, monkeypatch, transport, log: list[tuple[float, str]]) -> None:
        write = transport.write

        def logged(message: str) -> None:
            log.append((self.clock.now(), message.strip() or message))
            write(message)

        monkeypatch.setattr(transport, "write", logged)

    def run(self) -> str:
        try:
            return self.seq.run()
        finally:
            self.rig.close()


def test_an_abort_during_a_points_move_stops_the_stage_within_a_slice(tmp_path, monkeypatch):
    """The first move (7.5 mm in x and y, 4.9 mm down in z: seconds at 2 mm/s) is aborted as
    the sequencer begins to wait for it: the driver stops every axis (#24) within
    `STOP_SLICE_S`, and the rig is made safe once its axes have braked, the stage short of the
    grid. Unfixed, the move was waited for to its end (the abort heard after it), outside the
    make-safe bound of the abort that a supervisor waits between SIGTERM and SIGKILL."""
    scan = PointScan(tmp_path, monkeypatch)
    assert scan.run() == "aborted"
    assert len(scan.aborted) == 1 and len(scan.made_safe) == 1
    at = scan.aborted[0]
    assert scan.made_safe[0][0] - at <= interfaces.STOP_SLICE_S + BRAKING_S + 1e-9
    moved = [m for _, m in scan.stage_sent]
    first_move = next(k for k, m in enumerate(moved) if m.startswith("MOV"))
    # the move's check, then the stop with an ERR? just ahead of it (the error pending before
    # the stop, read after it), and the stop's check
    assert moved[first_move + 1:first_move + 5] == ["ERR?", "ERR?", "\x18", "ERR?"], \
        moved[first_move:]
    stopped_at = next(t for t, m in scan.stage_sent if m == "\x18")
    assert stopped_at - at <= interfaces.STOP_SLICE_S + 1e-9
    model = scan.rig.world.stage
    x, y, _ = model.sample_position()
    assert x > 12.5e-3 - 0.5e-3 and y > 12.5e-3 - 0.5e-3, (x, y)  # short of the grid
    assert not any(model.moving(ax) for ax in ("1", "2", "3"))
    assert "was stopped on its way (#24)" in scan.seq.message, scan.seq.message
    assert not scan.seq.safety_problems, scan.seq.safety_problems


class SlowStopScan(PointScan):
    """As `PointScan`, the stage's link answering its first exchange after the abort late
    (0.3 s on the rig's clock), and the field at 100 µT (2 A on coil y)."""

    def __init__(self, tmp_path, monkeypatch) -> None:
        super().__init__(tmp_path, monkeypatch, field=(0.0, 100e-6, 0.0))
        transport = self.rig.stage.link.transport
        write, self.slow = transport.write, False

        def slow_once(message: str) -> None:
            if self.slow:
                self.slow = False
                self.clock.advance(0.3)
            write(message)

        monkeypatch.setattr(transport, "write", slow_once)

    def abort_at_move(self) -> None:
        self.slow = True


def test_the_make_safe_deadline_of_an_abort_during_a_point_counts_from_the_abort(
        tmp_path, monkeypatch):
    """The make-safe path's deadline 0.5 s (monkeypatched); the abort comes during the first
    move, field at 100 µT, and the stage's stop is answered 0.3 s late: the stop and the
    making safe after it are one path counted from the abort, so from 0.5 s after the abort
    each supply is only switched off where it stands (its switch-off and the check of it),
    never ramped, and the rig is made safe once. Unfixed, the making safe after the point
    began a deadline of its own, ramping down (`CURR`) past the bound of the abort."""
    monkeypatch.setattr(rig_module, "safe_deadline", lambda profile: 0.5)
    scan = SlowStopScan(tmp_path, monkeypatch)
    assert scan.run() == "aborted"
    assert len(scan.aborted) == 1 and len(scan.made_safe) == 1, scan.made_safe
    at = scan.aborted[0]
    late = [[m for t, m in log if at + 0.5 <= t] for log in scan.coil_sent]
    assert all(set(m) <= {"OUTP OFF", "SYST:ERR?"} for m in late), late
    assert all(len(m) <= loss_budget.TAIL_EXCHANGES for m in late), late
    assert any("OUTP OFF" in m for m in late), late  # coil y was still energised then
    assert not any(scan.rig.world.coils.output(k) for k in range(3))
    model = scan.rig.world.stage
    assert not any(model.moving(ax) for ax in ("1", "2", "3"))


def test_an_abort_during_a_points_read_asks_the_lockin_nothing_more(tmp_path, monkeypatch):
    """The abort comes while the fourth point's lock-in reading is under way: once it
    returns, the scan ends and the rig is made safe, the overload latch not asked (one more
    exchange on a lock-in's slow link, outside the abort's slice). Unfixed, the point's
    overload check ran first."""
    rig = fake_rig()
    seq = Sequencer(rig, tmp_path / "s.h5", ScanPlan.from_center(
        "read", (12.5e-3, 12.5e-3), (40 * UM, 30 * UM), 10 * UM))
    asked: list[int] = []
    overloaded = rig.lockin.overloaded

    def asked_overload() -> bool:
        asked.append(rig.lockin.reads)
        return overloaded()

    monkeypatch.setattr(rig.lockin, "overloaded", asked_overload)
    rig.lockin.hooks[4] = seq.abort
    assert seq.run() == "aborted"
    assert asked == [1, 2, 3], asked
    assert rig.safe_calls == 1 and rig.stage.stops == 1


def test_an_abort_during_a_write_that_outlasts_the_deadline_is_reported_safe(
        tmp_path, monkeypatch):
    """The abort comes during the first line's write, which the rig is made safe beside at
    once (a thread of its own), and the write returns only once the rig's clock has passed
    that path's deadline (a stalled disk): the scan ends "aborted", the rig said safe, made
    safe once more at the end by a path of its own, not within the abort's, long past its
    deadline, where the stage's stop would be refused and the rig said NOT safe."""
    rig = open_rig(load_profile())
    plan = ScanPlan.from_center("stalled", (12.5e-3, 12.5e-3), (40 * UM, 40 * UM), 20 * UM)
    seq = Sequencer(rig, tmp_path / "s.h5", plan)
    made_safe: list[float] = []
    safe_once = threading.Event()
    make_safe = rig.make_safe

    def make_safe_noted() -> list[str]:
        try:
            return make_safe()
        finally:
            made_safe.append(rig.clock.now())
            safe_once.set()

    monkeypatch.setattr(rig, "make_safe", make_safe_noted)
    write_line = ScanEntryWriter.write_line

    def stalled(writer, *args, **kwargs):
        if not made_safe:
            seq.abort()
            assert safe_once.wait(WAIT_S)  # made safe beside the write
            rig.clock.advance(rig_module.safe_deadline(rig.profile) + 10.0)
        return write_line(writer, *args, **kwargs)

    monkeypatch.setattr(ScanEntryWriter, "write_line", stalled)
    try:
        assert seq.run() == "aborted"
    finally:
        rig.close()
    assert len(made_safe) == 2, made_safe
    assert not seq.safety_problems, seq.safety_problems
    assert "NOT safe" not in seq.message, seq.message
