"""The sequencer's logic on instant fakes: order, storage, pause/abort, faults, safe exits."""

from __future__ import annotations

import _thread
import math
import threading
from collections.abc import Callable

import h5py
import numpy as np
import pytest
from acq_fakes import fake_rig, gradient_bz

from smm_daq.acquisition import safe_close, sequencer
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.clock import VirtualClock
from smm_daq.errors import (
    InputError,
    InstrumentLost,
    InstrumentTimeout,
    ProtocolError,
    ReplyUnknown,
    WriteStalled,
)
from smm_daq.instruments import interfaces
from smm_daq.instruments.safe_bound import safe_time_bound
from smm_daq.storage.h5file import open_read
from smm_daq.storage.nexus import list_entries, read_map

C = 12.5e-3


def _plan(name: str = "scan", **kw) -> ScanPlan:
    kw.setdefault("field", (0.0, 40e-6, 0.0))
    return ScanPlan.from_center(name, (C, C), (40e-6, 30e-6), 10e-6, **kw)


def _status(path, entry="scan") -> str:
    with open_read(path) as f:
        return f[entry]["status"].asstr()[()]


def test_scan_stores_every_point_at_its_grid_position(tmp_path):
    rig = fake_rig()
    plan = _plan()
    events = []
    seq = Sequencer(rig, tmp_path / "s.h5", plan)
    seq.subscribe(events.append)
    assert seq.run() == "finished"
    m = read_map(tmp_path / "s.h5", "scan")
    expected = np.array([[gradient_bz(x, y) for x in plan.x] for y in plan.y])
    np.testing.assert_allclose(m.bz, expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(m.x, plan.x)
    np.testing.assert_allclose(m.applied_field, [0.0, 40e-6, 0.0])
    assert m.height == plan.height
    kinds = [e.kind for e in events]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    assert kinds.count("point") == plan.points and kinds.count("line_done") == plan.ny
    assert events[-1].progress == 1.0
    info = list_entries(tmp_path / "s.h5")[0]
    assert (info.kind, info.status, info.lines_done) == ("scan", "finished", plan.ny)
    np.testing.assert_allclose(info.measured_field, [0.0, 40e-6, 0.0])


def test_field_is_set_before_the_first_point_and_zero_after(tmp_path):
    rig = fake_rig()
    fields_at_points = []
    seq = Sequencer(rig, tmp_path / "s.h5", _plan())
    seq.subscribe(lambda e: e.kind == "point" and fields_at_points.append(rig.coils.setpoint))
    seq.run()
    assert all(np.allclose(b, [0.0, 40e-6, 0.0]) for b in fields_at_points)
    np.testing.assert_array_equal(rig.coils.setpoint, 0.0)
    assert rig.safe_calls == 1 and rig.stage.stops == 1


@pytest.mark.parametrize("raster", ["serpentine", "unidirectional"])
def test_raster_order(tmp_path, raster):
    rig = fake_rig()
    plan = _plan(raster=raster)
    Sequencer(rig, tmp_path / "s.h5", plan).run()
    visits = np.array(rig.stage.visits)
    for iy in range(plan.ny):
        xs = visits[iy * plan.nx : (iy + 1) * plan.nx, 0]
        backwards = raster == "serpentine" and iy % 2 == 1
        np.testing.assert_allclose(xs, plan.x[::-1] if backwards else plan.x)
        np.testing.assert_allclose(visits[iy * plan.nx : (iy + 1) * plan.nx, 1], plan.y[iy])


def test_settling_waits_settle_tau_time_constants(tmp_path):
    rig = fake_rig()
    plan = _plan(settle_tau=7.0)
    times = []
    seq = Sequencer(rig, tmp_path / "s.h5", plan)
    seq.subscribe(lambda e: e.kind == "point" and times.append(e.time))
    seq.run()
    np.testing.assert_allclose(np.diff(times), 7.0 * rig.lockin.tau)


def test_an_abort_during_a_points_settling_ends_it_at_the_next_slice(tmp_path, monkeypatch):
    """Settling 1000 time constants (30 s on the rig's clock), the scan is aborted as the
    second point begins to settle: the wait ends within `STOP_SLICE_S` of the abort and the
    rig is made safe then, not once the 30 s have passed (outside the make-safe bound of
    the abort, as a supervisor's wait between SIGTERM and SIGKILL assumes)."""
    rig = fake_rig()
    clock = rig.clock
    seq = Sequencer(rig, tmp_path / "s.h5", _plan(settle_tau=1000.0))
    points, aborted, made_safe = [], [], []
    seq.subscribe(lambda e: e.kind == "point" and points.append(e.time))
    sleep, make_safe = clock.sleep, rig.make_safe

    def sleeping(seconds: float) -> None:
        if len(points) == 1 and not aborted:  # the second point's settling begins
            aborted.append(clock.now())
            seq.abort()
        sleep(seconds)

    def make_safe_noted() -> list[str]:
        made_safe.append(clock.now())
        return make_safe()

    monkeypatch.setattr(clock, "sleep", sleeping)
    monkeypatch.setattr(rig, "make_safe", make_safe_noted)
    assert seq.run() == "aborted"
    assert len(points) == 1 and len(aborted) == 1
    assert made_safe and made_safe[0] - aborted[0] <= interfaces.STOP_SLICE_S + 1e-9


def test_an_abort_during_the_field_checks_pause_ends_it_at_the_next_slice(tmp_path,
                                                                         monkeypatch):
    """The fluxgate reads the field off at the scan's start, so the check pauses 1 s before it
    looks again: aborted at the start of that pause, the scan makes the rig safe within
    `STOP_SLICE_S` of the abort, as during a point's settling. Unfixed, the pause was one
    sleep, and the rig was made safe once the whole second had passed."""
    rig = fake_rig()
    rig.fluxgate.bias = np.array([0.0, 0.0, 1e-6])  # 1 µT off: beyond the tolerance
    clock = rig.clock
    seq = Sequencer(rig, tmp_path / "s.h5", _plan())
    aborted, made_safe = [], []
    sleep, make_safe = clock.sleep, rig.make_safe

    def sleeping(seconds: float) -> None:
        if seconds >= interfaces.STOP_SLICE_S and not aborted:  # the field check's pause
            aborted.append(clock.now())
            seq.abort()
        sleep(seconds)

    def make_safe_noted() -> list[str]:
        made_safe.append(clock.now())
        return make_safe()

    monkeypatch.setattr(clock, "sleep", sleeping)
    monkeypatch.setattr(rig, "make_safe", make_safe_noted)
    assert seq.run() == "aborted"
    assert len(aborted) == 1
    assert made_safe and made_safe[0] - aborted[0] <= interfaces.STOP_SLICE_S + 1e-9


def test_a_step_scan_runs_at_the_profiles_time_constant_whatever_was_left_on_the_lockin(
        tmp_path):
    """A fly scan, or the window's controls, may leave another τ on the lock-in; the plan was
    checked and timed with the profile's, and settles in units of it."""
    rig = fake_rig()
    tau = rig.profile.lockin.time_constant
    rig.lockin.set_time_constant(tau / 10)
    times = []
    seq = Sequencer(rig, tmp_path / "s.h5", _plan(settle_tau=7.0))
    seq.subscribe(lambda e: e.kind == "point" and times.append(e.time))
    seq.run()
    assert rig.lockin.time_constant() == tau
    np.testing.assert_allclose(np.diff(times), 7.0 * tau)
    with open_read(tmp_path / "s.h5") as f:  # the instrument's state as recorded
        assert f["scan/instrument/snapshot/lockin/time_constant"][()] == tau


def test_dwell_averages_readings(tmp_path):
    rig = fake_rig()
    seq = Sequencer(rig, tmp_path / "s.h5", _plan(dwell_tau=3.0))
    seq.run()
    assert rig.lockin.reads == 4 * _plan().points


def test_pause_and_resume_at_a_point_boundary(tmp_path):
    rig = fake_rig()
    plan = _plan()
    path = tmp_path / "s.h5"
    paused = threading.Event()
    seen = []
    seq = Sequencer(rig, path, plan)

    def on_event(e):
        seen.append(e)
        if e.kind == "point" and e.index == (1, 2):
            seq.pause()
        if e.kind == "paused":
            paused.set()

    seq.subscribe(on_event)
    seq.start()
    assert paused.wait(30)
    assert seq.state == "paused"
    # The file says what the scan is if its process stops now; smm-daq shows the live state.
    assert _status(path) == "interrupted"
    assert list_entries(path)[0].status == "paused"
    points_when_paused = sum(e.kind == "point" for e in seen)
    assert seen[-1].kind == "paused" and "operator" in seen[-1].message
    seq.resume()
    assert seq.wait(30) == "finished"
    kinds = [e.kind for e in seen]
    assert kinds.index("resumed") == kinds.index("paused") + 1
    assert points_when_paused == plan.nx + 3  # stopped right after the point it was asked at
    assert kinds.count("point") == plan.points
    assert np.isfinite(read_map(path, "scan").bz).all()


def test_abort_keeps_finished_lines_and_makes_safe(tmp_path):
    rig = fake_rig()
    plan = _plan()
    path = tmp_path / "s.h5"
    seq = Sequencer(rig, path, plan)
    seq.subscribe(lambda e: e.kind == "point" and e.index == (2, 1) and seq.abort())
    seq.start()
    assert seq.wait(30) == "aborted"
    m = read_map(path, "scan")
    assert np.isfinite(m.bz[:2]).all() and np.isnan(m.bz[2:]).all()
    assert _status(path) == "aborted"
    np.testing.assert_array_equal(rig.coils.setpoint, 0.0)
    with h5py.File(path, "r") as f:  # closed cleanly: any HDF5 reader opens it
        assert list(f["scan/data/line_done"][()]) == [True, True, False, False]
        assert f["scan/end_time"].asstr()[()] != ""


def _stall_write(monkeypatch, method: str,
                 holds: Callable[..., bool]) -> tuple[threading.Event, threading.Event]:
    """`ScanEntryWriter.<method>` held (a stalled disk) when `holds(*args)`: `stalled` is set
    when such a call begins, and it returns once `go` is set."""
    from smm_daq.storage.scan_entry import ScanEntryWriter

    stalled, go = threading.Event(), threading.Event()
    write = getattr(ScanEntryWriter, method)

    def stalling(writer, *args, **kw):
        if holds(*args):
            stalled.set()
            assert go.wait(60)
        return write(writer, *args, **kw)

    monkeypatch.setattr(ScanEntryWriter, method, stalling)
    return stalled, go


def _stall_line_1(monkeypatch) -> tuple[threading.Event, threading.Event]:
    """Line 1's write held (a stalled disk): `stalled` is set when it begins, and it returns
    once `go` is set."""
    return _stall_write(monkeypatch, "write_line", lambda iy, *_: iy == 1)


def _noting_safety(rig, monkeypatch) -> threading.Event:
    """An event set once `rig.make_safe` has run."""
    safe, make_safe = threading.Event(), rig.make_safe

    def making_safe():
        problems = make_safe()
        safe.set()
        return problems

    monkeypatch.setattr(rig, "make_safe", making_safe)
    return safe


def _aborted_while_stalled(rig, seq: Sequencer, stalled, go, safe, *,
                           safe_calls: int | None = None) -> None:
    """`seq` started, aborted while a write is `stalled`: the rig made safe (`safe`) with the
    write still held (`go` not yet set), the field at zero (and made safe `safe_calls` times
    by then, where given); then the write let go and the scan "aborted"."""
    seq.start()
    try:
        assert stalled.wait(30)
        seq.abort()
        assert safe.wait(30)  # while the write is still stalled
        np.testing.assert_array_equal(rig.coils.setpoint, 0.0)
        assert safe_calls is None or rig.safe_calls == safe_calls
        assert not go.is_set()
    finally:
        go.set()
    assert seq.wait(30) == "aborted"


def test_abort_during_a_stalled_line_write_makes_the_rig_safe_at_once(tmp_path, monkeypatch):
    """A slow disk holds a line's write: an abort then must not wait for it to ramp the field
    down and stop the stage (the worker touches no instrument until the write returns)."""
    rig = fake_rig()
    path = tmp_path / "s.h5"
    stalled, go = _stall_line_1(monkeypatch)
    safe = _noting_safety(rig, monkeypatch)
    seq = Sequencer(rig, path, _plan())
    _aborted_while_stalled(rig, seq, stalled, go, safe, safe_calls=1)
    with h5py.File(path, "r") as f:  # the stalled line stored, no other after it
        assert list(f["scan/data/line_done"][()]) == [True, True, False, False]
    assert _status(path) == "aborted" and seq.safety_problems == []


def test_abort_during_a_stalled_write_of_the_noise_base_makes_the_rig_safe_at_once(
        tmp_path, monkeypatch):
    """A simulated run's noise base, written as the run begins (a field set before the scan
    still on), is a write as any other: a disk that holds it must not hold an abort."""
    rig = fake_rig()
    monkeypatch.setattr(rig, "begin_measurement", lambda name, run: (5, 1), raising=False)
    rig.coils.set_field(np.array([0.0, 20e-6, 0.0]))  # a recipe's field step, say
    stalled, go = _stall_write(monkeypatch, "set_noise", lambda *_: True)
    safe = _noting_safety(rig, monkeypatch)
    seq = Sequencer(rig, tmp_path / "s.h5", _plan())
    _aborted_while_stalled(rig, seq, stalled, go, safe)


def test_abort_while_paused(tmp_path):
    rig = fake_rig()
    seq = Sequencer(rig, tmp_path / "s.h5", _plan())
    seq.subscribe(lambda e: e.kind == "paused" and seq.abort())
    seq.pause()
    seq.start()
    assert seq.wait(30) == "aborted"
    np.testing.assert_array_equal(rig.coils.setpoint, 0.0)


def test_unexpected_exception_fails_safely_and_is_reraised(tmp_path):
    rig = fake_rig()
    rig.lockin.hooks[5] = lambda: (_ for _ in ()).throw(ZeroDivisionError("boom"))
    seq = Sequencer(rig, tmp_path / "s.h5", _plan())
    with pytest.raises(ZeroDivisionError):
        seq.run()
    assert seq.state == "failed" and "boom" in seq.message
    assert _status(tmp_path / "s.h5") == "failed"
    np.testing.assert_array_equal(rig.coils.setpoint, 0.0)


def test_keyboard_interrupt_aborts_safely_and_propagates(tmp_path):
    rig = fake_rig()

    def interrupt():
        raise KeyboardInterrupt

    rig.lockin.hooks[7] = interrupt
    seq = Sequencer(rig, tmp_path / "s.h5", _plan())
    with pytest.raises(KeyboardInterrupt):
        seq.run()
    assert seq.state == "aborted"
    assert _status(tmp_path / "s.h5") == "aborted"
    np.testing.assert_array_equal(rig.coils.setpoint, 0.0)
    assert rig.stage.stops == 1


def test_lost_instrument_fails_safely(tmp_path):
    rig = fake_rig()

    def lost():
        raise InstrumentLost("connection closed", instrument="lockin")

    rig.lockin.hooks[9] = lost
    events = []
    seq = Sequencer(rig, tmp_path / "s.h5", _plan())
    seq.subscribe(events.append)
    assert seq.run() == "failed"
    assert "lost" in seq.message and events[-1].kind == "failed"
    np.testing.assert_array_equal(rig.coils.setpoint, 0.0)
    assert _status(tmp_path / "s.h5") == "failed"
    assert "instrument lost" in _status_message(tmp_path / "s.h5")


def test_transient_errors_are_retried(tmp_path):
    rig = fake_rig()

    def timeout():
        raise InstrumentTimeout("no reply", instrument="lockin")

    def garbled():
        raise ProtocolError("garbage", instrument="lockin")

    rig.lockin.hooks[3] = timeout
    rig.lockin.hooks[4] = garbled
    plan = _plan()
    assert Sequencer(rig, tmp_path / "s.h5", plan).run() == "finished"
    expected = np.array([[gradient_bz(x, y) for x in plan.x] for y in plan.y])
    np.testing.assert_allclose(read_map(tmp_path / "s.h5", "scan").bz, expected, atol=1e-15)


def test_persistent_transient_error_fails(tmp_path):
    rig = fake_rig()

    def timeout():
        raise InstrumentTimeout("no reply", instrument="lockin")

    for n in range(3, 10):
        rig.lockin.hooks[n] = timeout
    seq = Sequencer(rig, tmp_path / "s.h5", _plan(), retries=2)
    assert seq.run() == "failed"
    assert "InstrumentTimeout" in seq.message


def test_a_single_overload_is_read_again_without_pausing(tmp_path):
    rig = fake_rig()
    rig.lockin.overload_reads.add(6)
    plan = _plan()
    kinds = []
    seq = Sequencer(rig, tmp_path / "s.h5", plan)
    seq.subscribe(lambda e: kinds.append(e.kind))
    assert seq.run() == "finished"
    assert "paused" not in kinds
    assert rig.lockin.reads == plan.points + 1


def _overload_reply_lost(rig, at: set[int]) -> None:
    """The lock-in's overload queries numbered `at` (from 1) lose their reply, as a link
    raises it for a query that clears what it reports."""
    overloaded, asked = rig.lockin.overloaded, [0]

    def query() -> bool:
        asked[0] += 1
        was = overloaded()
        if asked[0] in at:
            raise ReplyUnknown("no valid reply to 'LIAS?' after 1 attempt", instrument="lockin")
        return was

    rig.lockin.overloaded = query


def test_an_overload_reply_lost_once_reads_the_point_again(tmp_path):
    """The latch is cleared by reading it, so its query is never sent twice: a lost reply
    is taken as an overload, and the point settled and read again; the scan goes on."""
    rig = fake_rig()
    _overload_reply_lost(rig, {6})
    plan = _plan()
    kinds = []
    seq = Sequencer(rig, tmp_path / "s.h5", plan)
    seq.subscribe(lambda e: kinds.append(e.kind))
    assert seq.run() == "finished", seq.message
    assert "paused" not in kinds
    assert rig.lockin.reads == plan.points + 1
    assert any("'LIAS?'" in note and "taken as an overload" in note for note in seq.notes)
    expected = np.array([[gradient_bz(x, y) for x in plan.x] for y in plan.y])
    np.testing.assert_allclose(read_map(tmp_path / "s.h5", "scan").bz, expected, atol=1e-15)


def test_a_note_names_its_line_as_the_progress_counts_it(tmp_path):
    """Lines are counted from 1 in what the user reads, as the command line's progress bar
    (`event.line + 1`) counts them: a reply lost at the first point of the second line is
    told "at line 2" (it had been told "at line 1", the bar showing line 2)."""
    rig = fake_rig()
    plan = _plan()
    _overload_reply_lost(rig, {plan.nx + 1})
    lines: list[int] = []
    seq = Sequencer(rig, tmp_path / "s.h5", plan)
    seq.subscribe(lambda e: e.kind == "point" and lines.append(e.line + 1))
    assert seq.run() == "finished", seq.message
    [note] = seq.notes
    assert note.startswith(f"at line {lines[plan.nx]}, ") and lines[plan.nx] == 2, note


def test_the_final_message_tells_a_few_lost_replies_and_counts_the_rest(tmp_path):
    """Every lost reply is a note: the final message (printed whole on the terminal) tells
    the first three and counts the others "like it"; `notes` keeps every one."""
    rig = fake_rig()
    _overload_reply_lost(rig, set(range(1, 40, 3)))  # never twice in a row
    seq = Sequencer(rig, tmp_path / "s.h5", _plan())
    assert seq.run() == "finished", seq.message
    assert len(seq.notes) > 5 and all("taken as an overload" in n for n in seq.notes)
    assert seq.message == "; ".join(seq.notes[:3]) + f"; and {len(seq.notes) - 3} more like it"


def test_an_overload_reply_lost_on_the_reread_reads_again_without_ranging_up(tmp_path):
    """An overload, read again after settling, whose second query's reply is lost: no
    overload is known, so the point is read once more; the sensitivity is not raised."""
    rig = fake_rig()
    rig.lockin.overload_reads.add(6)
    _overload_reply_lost(rig, {7})
    plan = _plan()
    seq = Sequencer(rig, tmp_path / "s.h5", plan, auto_range=True)
    assert seq.run() == "finished", seq.message
    assert rig.lockin.full_scale == 0.5
    assert rig.lockin.reads == plan.points + 2


def test_an_overload_reply_lost_twice_in_a_row_fails_the_scan_safe(tmp_path):
    rig = fake_rig()
    _overload_reply_lost(rig, {6, 7})
    seq = Sequencer(rig, tmp_path / "s.h5", _plan())
    assert seq.run() == "failed"
    assert "'LIAS?'" in seq.message
    assert rig.safe_calls == 1 and np.allclose(rig.coils.field(), 0.0)


def _move_check_lost(rig, at: set[int]) -> None:
    """The stage's moves numbered `at` (from 1) are made, but the reply to their error check
    is lost, as a link raises it for a query that clears what it reports (GCS ERR?)."""
    move_to, moves = rig.stage.move_to, [0]

    def move(*args, **kw) -> None:
        moves[0] += 1
        move_to(*args, **kw)
        if moves[0] in at:
            raise ReplyUnknown("no valid reply to 'ERR?' after 1 attempt", instrument="stage")

    rig.stage.move_to = move


def test_a_move_whose_error_check_reply_is_lost_once_is_sent_again(tmp_path):
    """Whether the move was refused is unknown (its error was cleared by the lost query), so
    the absolute move is sent once more and its own check tells; the scan goes on."""
    rig = fake_rig()
    _move_check_lost(rig, {5})
    plan = _plan()
    seq = Sequencer(rig, tmp_path / "s.h5", plan)
    assert seq.run() == "finished", seq.message
    assert len(rig.stage.visits) == plan.points + 1
    assert any("'ERR?'" in note and "the move sent again" in note for note in seq.notes)
    expected = np.array([[gradient_bz(x, y) for x in plan.x] for y in plan.y])
    np.testing.assert_allclose(read_map(tmp_path / "s.h5", "scan").bz, expected, atol=1e-15)


def test_a_move_whose_error_check_reply_is_lost_twice_fails_the_scan_safe(tmp_path):
    rig = fake_rig()
    _move_check_lost(rig, {5, 6})
    seq = Sequencer(rig, tmp_path / "s.h5", _plan())
    assert seq.run() == "failed"
    assert "'ERR?'" in seq.message
    assert rig.safe_calls == 1 and np.allclose(rig.coils.field(), 0.0)


def test_overload_pauses_with_the_reason_and_rereads(tmp_path):
    rig = fake_rig()
    rig.lockin.overload_reads.update({6, 7})
    plan = _plan()
    seq = Sequencer(rig, tmp_path / "s.h5", plan)
    reasons = []
    seq.subscribe(lambda e: e.kind == "paused" and (reasons.append(e.message), seq.resume()))
    assert seq.run() == "finished"
    assert reasons == ["lock-in overload"]
    assert rig.lockin.reads == plan.points + 2
    expected = np.array([[gradient_bz(x, y) for x in plan.x] for y in plan.y])
    np.testing.assert_allclose(read_map(tmp_path / "s.h5", "scan").bz, expected, atol=1e-15)


def test_overrange_reading_pauses(tmp_path):
    rig = fake_rig(lambda x, y: 300e-6 if x > C else 0.0)  # 0.6 V on a 0.5 V full scale
    seq = Sequencer(rig, tmp_path / "s.h5", _plan())
    reasons = []
    seq.subscribe(lambda e: e.kind == "paused" and (reasons.append(e.message), seq.abort()))
    assert seq.run() == "aborted"
    assert "beyond 95% of the 0.5 V full scale" in reasons[0]
    assert "beyond 95%" in _status_message(tmp_path / "s.h5")


def _status_message(path) -> str:
    with open_read(path) as f:
        return f["scan/message"].asstr()[()]


def test_auto_range_raises_the_sensitivity_instead(tmp_path):
    rig = fake_rig(lambda x, y: 300e-6 if x > C else 0.0)
    plan = _plan()
    seq = Sequencer(rig, tmp_path / "s.h5", plan, auto_range=True)
    kinds = []
    seq.subscribe(lambda e: kinds.append(e.kind))
    assert seq.run() == "finished"
    assert "paused" not in kinds and rig.lockin.full_scale == 1.0
    m = read_map(tmp_path / "s.h5", "scan")
    np.testing.assert_allclose(m.bz[:, plan.x > C], 300e-6)
    with open_read(tmp_path / "s.h5") as f:
        ranges = f["scan/data/lockin_range"][()]
    assert set(np.unique(ranges)) == {0.5, 1.0}
    assert "raised from 0.5 V to 1 V" in seq.message


def test_field_verification_failure_fails_before_any_point(tmp_path):
    rig = fake_rig()
    rig.fluxgate.bias = np.array([0.0, 0.0, 200e-9])  # 200 nT off, tolerance 50 nT
    seq = Sequencer(rig, tmp_path / "s.h5", _plan())
    assert seq.run() == "failed"
    assert "field verification failed" in seq.message
    assert rig.lockin.reads == 0
    np.testing.assert_array_equal(rig.coils.setpoint, 0.0)


def test_unsafe_rig_is_reported(tmp_path):
    rig = fake_rig()
    rig.safe_problems = ["coils: supply 2 did not answer"]
    seq = Sequencer(rig, tmp_path / "s.h5", _plan())
    seq.run()
    assert seq.safety_problems == ["coils: supply 2 did not answer"]
    assert "rig NOT safe" in _status_message(tmp_path / "s.h5")


def test_bad_plan_is_refused_before_anything_happens(tmp_path):
    rig = fake_rig()
    plan = _plan(field=(0.0, 0.0, 500e-6))
    with pytest.raises(InputError, match="max_field"):
        Sequencer(rig, tmp_path / "s.h5", plan).run()
    assert not (tmp_path / "s.h5").exists()
    assert rig.coils.history == [] and rig.stage.visits == []


def test_existing_entry_is_refused_and_kept(tmp_path):
    rig = fake_rig()
    Sequencer(rig, tmp_path / "s.h5", _plan()).run()
    before = read_map(tmp_path / "s.h5", "scan").bz
    with pytest.raises(InputError, match="already exists"):
        Sequencer(fake_rig(), tmp_path / "s.h5", _plan()).run()
    np.testing.assert_array_equal(read_map(tmp_path / "s.h5", "scan").bz, before)


def test_resume_measures_only_unfinished_lines(tmp_path):
    path = tmp_path / "s.h5"
    plan = _plan()
    rig = fake_rig()
    seq = Sequencer(rig, path, plan)
    seq.subscribe(lambda e: e.kind == "line_done" and e.line == 1 and seq.abort())
    assert seq.run() == "aborted"
    rig2 = fake_rig()
    events = []
    seq2 = Sequencer(rig2, path, plan, resume=True)
    seq2.subscribe(events.append)
    assert seq2.run() == "finished"
    assert rig2.lockin.reads == 2 * plan.nx
    assert events[0].progress == pytest.approx(0.5)
    expected = np.array([[gradient_bz(x, y) for x in plan.x] for y in plan.y])
    np.testing.assert_allclose(read_map(path, "scan").bz, expected, atol=1e-15)
    with pytest.raises(InputError, match="finished already"):
        Sequencer(fake_rig(), path, plan, resume=True).run()


def test_resume_refuses_another_plan_or_profile(tmp_path):
    path = tmp_path / "s.h5"
    rig = fake_rig()
    seq = Sequencer(rig, path, _plan())
    seq.subscribe(lambda e: e.kind == "line_done" and seq.abort())
    seq.run()
    with pytest.raises(InputError, match="does not match the stored plan: settle_tau"):
        Sequencer(fake_rig(), path, _plan(settle_tau=9.0), resume=True).run()
    other = fake_rig()
    from dataclasses import replace

    other.profile = replace(
        other.profile, sensor=replace(other.profile.sensor, sensitivity_V_per_T=1000.0)
    )
    with pytest.raises(InputError, match="another instrument profile"):
        Sequencer(other, path, _plan(), resume=True).run()
    assert _status(path) == "aborted"


def test_a_start_that_fails_after_the_lockin_was_set_makes_the_rig_safe_and_says_so(
        tmp_path, monkeypatch):
    """The lock-in's τ is set before the entry is created: a file that cannot be written
    then ends the start with the rig made safe, and what could not be made safe is noted on
    the error (the window shows the notes; it has no other way to learn it)."""
    import smm_daq.acquisition.sequencer as sequencer_module

    rig = fake_rig()
    tau = rig.profile.lockin.time_constant
    rig.lockin.set_time_constant(tau / 10)
    rig.coils.set_field(np.array([0.0, 20e-6, 0.0]))  # applied by hand before
    rig.safe_problems = ["coils: no reply; the field may be ON"]

    def unwritable(*args, **kwargs):
        raise OSError("unable to lock file")

    monkeypatch.setattr(sequencer_module.ScanEntryWriter, "create", unwritable)
    with pytest.raises(OSError, match="unable to lock file") as refused:
        Sequencer(rig, tmp_path / "s.h5", _plan()).start()
    assert rig.lockin.time_constant() == tau  # it was changed, then
    assert rig.safe_calls == 1
    assert any("rig NOT safe: coils: no reply; the field may be ON" in note
               for note in refused.value.__notes__)


@pytest.mark.parametrize("resume", [False, True])
def test_ctrl_c_while_the_entry_is_created_on_a_stalled_disk_makes_the_rig_safe(
        tmp_path, monkeypatch, resume):
    """Creating (or reopening) the entry runs on the caller's thread before the worker, with
    any field set before the scan still on: a disk that stalls there (inside HDF5, where no
    signal gets in) must not hold Ctrl-C: the rig is made safe, and the start ends with
    WriteStalled naming what did not return."""
    rig = fake_rig()
    path = tmp_path / "s.h5"
    if resume:
        assert Sequencer(rig, path, _plan()).run() == "finished"
        with h5py.File(path, "a") as f:
            f["scan/status"][()] = "aborted"
    rig.coils.set_field(np.array([0.0, 20e-6, 0.0]))  # a recipe's field step, say
    stalled, go = _stall_write(monkeypatch, "reopen" if resume else "create", lambda *_: True)
    monkeypatch.setattr(sequencer, "WRITE_STALLED_S", 0.0)

    def interrupt() -> None:
        if stalled.wait(30):
            _thread.interrupt_main()  # Ctrl-C: only the main thread's handler sees it

    threading.Thread(target=interrupt, daemon=True).start()
    try:
        with pytest.raises(BaseException) as ended:  # unfixed: the KeyboardInterrupt, late
            Sequencer(rig, path, _plan(), resume=resume).start()
        assert not go.is_set()  # while it is still held
        np.testing.assert_array_equal(rig.coils.setpoint, 0.0)
    finally:
        go.set()
    assert isinstance(ended.value, WriteStalled)
    assert (f"{'reopening' if resume else 'creating'} the entry in {path} has not returned"
            in str(ended.value))


def test_a_refused_resume_leaves_the_lockin_as_it_was(tmp_path):
    """The stored plan is compared before any setting is changed."""
    rig = fake_rig()
    path = tmp_path / "s.h5"
    assert Sequencer(rig, path, _plan()).run() == "finished"
    with h5py.File(path, "a") as f:
        f["scan/status"][()] = "aborted"
    tau = rig.profile.lockin.time_constant
    rig.lockin.set_time_constant(tau / 10)
    safe_before = rig.safe_calls
    with pytest.raises(InputError, match="does not match the stored plan"):
        Sequencer(rig, path, _plan(field=(0.0, 30e-6, 0.0)), resume=True).start()
    assert rig.lockin.time_constant() == tau / 10
    assert rig.safe_calls == safe_before


@pytest.mark.parametrize("problems", [[], ["coils: supply 2 did not answer"]])
def test_a_write_still_stalled_once_the_rig_is_made_safe_is_told_with_the_rigs_safety(
        tmp_path, monkeypatch, problems):
    """An abort during a line's write that does not return: "made_safe" says, before the
    write returns, whether the rig is safe (a flag, not words in the message); the final
    event carries the same flag."""
    rig = fake_rig()
    rig.safe_problems = problems
    stalled, go = _stall_line_1(monkeypatch)
    told = threading.Event()

    events = []

    def record(event):
        events.append(event)
        if event.kind == "made_safe":
            told.set()

    monkeypatch.setattr(sequencer, "WRITE_STALLED_S", 0.0)  # stalled as soon as the rig is safe
    seq = Sequencer(rig, tmp_path / "s.h5", _plan())
    seq.subscribe(record)
    seq.start()
    try:
        assert stalled.wait(30)
        seq.abort()
        assert told.wait(30)
        assert not go.is_set()  # told while the write has not returned
    finally:
        go.set()
    assert seq.wait(30) == "aborted"
    kinds = [e.kind for e in events]
    assert "made_safe" in kinds and kinds[-1] == "aborted"
    # with no grace at all, the scan's end's own writes may be told too, each before the end
    told, final = [e for e in events if e.kind == "made_safe"], events[-1]
    assert all(e.rig_safe is final.rig_safe is (not problems) for e in told)
    assert "The write of line 2 to s.h5 has not returned" in told[0].message
    assert all(e.rig_safe is None for e in events if e.kind not in ("made_safe", "aborted"))


def test_the_final_event_says_whether_the_rig_is_safe(tmp_path):
    safe, unsafe = fake_rig(), fake_rig()
    unsafe.safe_problems = ["stage: did not stop"]
    for rig, name in ((safe, "safe"), (unsafe, "unsafe")):
        finals = []
        seq = Sequencer(rig, tmp_path / "s.h5", _plan(name))
        seq.subscribe(lambda e, finals=finals: e.kind == "finished" and finals.append(e))
        seq.run()
        assert [e.rig_safe for e in finals] == [rig is safe]


def _abort_in_the_stalled_write(seq: Sequencer, stalled: threading.Event) -> None:
    """Start `seq`, abort it once its write is held (`stalled`) and wait for "made_safe"."""
    told = threading.Event()
    seq.subscribe(lambda e: e.kind == "made_safe" and told.set())
    seq.start()
    assert stalled.wait(30)
    seq.abort()
    assert told.wait(30)


def test_a_rig_handed_back_during_a_stalled_write_is_not_touched_when_it_returns(
        tmp_path, monkeypatch):
    """The window closes without waiting for a stalled write: it makes the rig safe and
    closes it; the scan's end, once the write returns, calls no instrument (a closed one
    would be reported as not safe in the file)."""
    rig = fake_rig()
    stalled, go = _stall_line_1(monkeypatch)
    monkeypatch.setattr(sequencer, "WRITE_STALLED_S", 0.0)
    path = tmp_path / "s.h5"
    seq = Sequencer(rig, path, _plan())
    try:
        _abort_in_the_stalled_write(seq, stalled)
        seq.hand_back_rig()
        rig.safe_problems = ["coils: closed"]  # what a closed rig would answer
    finally:
        go.set()
    assert seq.wait(30) == "aborted"
    assert rig.safe_calls == 1 and seq.safety_problems == []
    assert "NOT safe" not in _status_message(path)


def test_a_write_that_returns_soon_after_the_rig_is_made_safe_is_not_called_stalled(
        tmp_path, monkeypatch):
    """An abort during an ordinary line write (slower than the ramp-down, not stalled): no
    "made_safe" (a window would tell its user the disk stalled), the scan ends as usual."""
    rig = fake_rig()
    stalled, go = _stall_line_1(monkeypatch)
    safe = _noting_safety(rig, monkeypatch)
    monkeypatch.setattr(sequencer, "WRITE_STALLED_S", 600.0)  # the write returns well before
    kinds = []
    seq = Sequencer(rig, tmp_path / "s.h5", _plan())
    seq.subscribe(lambda e: kinds.append(e.kind))
    seq.start()
    try:
        assert stalled.wait(30)
        seq.abort()
        assert safe.wait(30)
    finally:
        go.set()
    assert seq.wait(30) == "aborted"  # not held for WRITE_STALLED_S: the write's return ends it
    assert "made_safe" not in kinds and kinds[-1] == "aborted"


@pytest.mark.parametrize("aborted", [False, True])
@pytest.mark.parametrize(("method", "what"), [("add_duration", "the scan's duration"),
                                              ("set_status", "the scan's final status")])
def test_a_write_at_the_scans_end_that_stalls_is_told_with_the_rig_made_safe(
        tmp_path, monkeypatch, method, what, aborted):
    """The scan's end (finished, or aborted) makes the rig safe, then writes the scan's
    duration and final status: one of those writes that does not return is told ("made_safe",
    naming it, with the rig's safety) while it is held, not only a line's write, so that a
    window can let its user go; once it returns the scan ends as usual."""
    rig = fake_rig()
    # the scan's end's write: the first after the rig is made safe
    stalled, go = _stall_write(monkeypatch, method, lambda *_: rig.safe_calls > 0)
    told = threading.Event()
    events = []

    def record(event):
        events.append(event)
        if event.kind == "made_safe" and f"The write of {what}" in event.message:
            told.set()

    monkeypatch.setattr(sequencer, "WRITE_STALLED_S", 0.0)  # stalled once the rig is safe
    seq = Sequencer(rig, tmp_path / "s.h5", _plan())
    seq.subscribe(record)
    if aborted:
        seq.subscribe(lambda e: e.kind == "point" and e.index == (2, 1) and seq.abort())
    seq.start()
    try:
        assert told.wait(30)
        assert stalled.is_set() and not go.is_set()  # told while the write has not returned
        np.testing.assert_array_equal(rig.coils.setpoint, 0.0)
    finally:
        go.set()
    final = "aborted" if aborted else "finished"
    assert seq.wait(30) == final and events[-1].kind == final
    made_safe = next(e for e in events if e.kind == "made_safe")
    assert made_safe.rig_safe is True and "the rig is safe" in made_safe.message
    assert _status(tmp_path / "s.h5") == final


def test_an_abort_just_before_a_lines_write_that_stalls_makes_the_rig_safe_at_once(
        tmp_path, monkeypatch):
    """An abort during a line's last exchange (the fluxgate's reading at its end): the worker
    writes that line before it sees the abort; a write that then stalls must not hold the
    rig's safing either. (An abort before it, at the line's last point, stores no line: its
    checks are not run.)"""
    rig = fake_rig()
    plan = _plan()
    stalled, go = _stall_line_1(monkeypatch)
    safe = _noting_safety(rig, monkeypatch)
    seq = Sequencer(rig, tmp_path / "s.h5", plan)
    read_field = rig.fluxgate.read_field

    def aborted_meanwhile():
        field = read_field()
        if seq._line == 1:
            seq.abort()
        return field

    monkeypatch.setattr(rig.fluxgate, "read_field", aborted_meanwhile)
    seq.start()
    try:
        assert stalled.wait(30)
        assert safe.wait(30)  # while the write is still stalled
        np.testing.assert_array_equal(rig.coils.setpoint, 0.0)
        assert not go.is_set()
    finally:
        go.set()
    assert seq.wait(30) == "aborted"
    assert _status(tmp_path / "s.h5") == "aborted"


class _SpyLock:
    """A lock that sets `waited` when acquired with a timeout (`hand_back_rig`'s wait)."""

    def __init__(self, waited: threading.Event) -> None:
        self._lock, self.waited = threading.Lock(), waited

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if timeout >= 0:
            self.waited.set()
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def test_handing_the_rig_back_waits_for_the_making_safe_under_way(tmp_path, monkeypatch):
    """The stalled write returns just as the window's user agrees to close: the worker's
    making safe at the scan's end is under way, and `hand_back_rig` returns only once it has
    ended (the window makes the rig safe and closes it next: never beside it, never after)."""
    rig = fake_rig()
    stalled, go = _stall_line_1(monkeypatch)
    monkeypatch.setattr(sequencer, "WRITE_STALLED_S", 0.0)
    in_flight, waited = threading.Event(), threading.Event()
    order: list[str] = []
    make_safe = rig.make_safe

    def slow_make_safe() -> list[str]:
        if rig.safe_calls == 1:  # the worker's at the scan's end (the abort's was first)
            in_flight.set()
            assert waited.wait(30)  # the owner is waiting for it (unfixed: gone already)
        problems = make_safe()
        order.append("made safe")
        return problems

    monkeypatch.setattr(rig, "make_safe", slow_make_safe)
    seq = Sequencer(rig, tmp_path / "s.h5", _plan())
    seq._safing = _SpyLock(waited)
    try:
        _abort_in_the_stalled_write(seq, stalled)
    finally:
        go.set()  # the write returns: the scan's end makes the rig safe again
    assert in_flight.wait(30)
    seq.hand_back_rig()
    order.append("handed back")
    waited.set()  # unfixed: lets the making safe end, after the hand-back
    assert seq.wait(30) == "aborted"
    assert order == ["made safe", "made safe", "handed back"]


class _TimeoutLock:
    """A free lock that notes the timeout each acquire is given."""

    def __init__(self) -> None:
        self.timeouts: list[float] = []

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self.timeouts.append(timeout)
        return True

    def release(self) -> None:
        pass


@pytest.mark.parametrize("time_scale", [0.0, 0.5])
def test_handing_the_rig_back_waits_as_long_as_making_the_rig_safe_may_take(
        tmp_path, time_scale):
    """`hand_back_rig` waits for a making safe under way as long as making the rig safe may
    take: the limit `smm-daq safe` prints (326 s for the simulator), in real seconds (twice
    that for a simulated rig run at half real time), the figure the owner's close waits for
    its own making safe. It waited 60 s: on a slow link the owner gave up on a making safe
    still within its bound, and said the rig may not be safe."""
    rig = fake_rig()
    rig.clock = VirtualClock(time_scale=time_scale)
    seq = Sequencer(rig, tmp_path / "s.h5", _plan())
    seq._safing = _TimeoutLock()
    assert seq.hand_back_rig() is True
    assert seq._safing.timeouts == [pytest.approx(safe_close.safe_wait_s(rig))]
    assert math.ceil(safe_time_bound(rig.profile)) == 326
    assert seq._safing.timeouts[0] >= safe_time_bound(rig.profile)


def test_handing_the_rig_back_says_whether_the_making_safe_under_way_ended(tmp_path,
                                                                            monkeypatch):
    """`hand_back_rig` waits `hand_back_wait_s` for a making safe under way, no longer: past
    that it says so (False), for its owner to tell the user that the worker's thread may still
    be making the rig safe; with none under way, True. Either way the worker touches the rig
    no more."""
    monkeypatch.setattr(sequencer, "hand_back_wait_s", lambda _rig: 0.0)
    seq = Sequencer(fake_rig(), tmp_path / "s.h5", _plan())
    assert seq.hand_back_rig() is True
    held = threading.Lock()  # the worker's making safe, which never ends
    held.acquire()
    late = Sequencer(fake_rig(), tmp_path / "s.h5", _plan())
    late._safing = held
    assert late.hand_back_rig() is False
    assert late._rig_handed_back
