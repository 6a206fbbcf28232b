"""Fault injection on the simulated rig: timeouts, garbage, disconnects, lock-in overload and a
supply tripping off. Each ends in a clear error, and Rig.make_safe ramps the field down."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from smm_daq.errors import InstrumentError, InstrumentLost
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import Rig, open_rig

FIELD = np.array([0.0, 0.0, 50e-6])
LOCKIN = "GPIB0::8::INSTR"


@pytest.fixture
def rig() -> Rig:
    rig = open_rig(load_profile())
    rig.stage.move_to(12.5e-3, 12.5e-3, 100e-6)
    rig.coils.set_field(FIELD)
    yield rig
    rig.close()


def assert_field_down(rig: Rig) -> None:
    rig.clock.sleep(1.0)
    np.testing.assert_allclose(rig.world.coils.currents(), 0.0, atol=2e-4)  # nominal ambient 0


def test_persistent_timeouts_lose_the_lockin_after_its_retries(rig: Rig) -> None:
    rig.backend.faults[LOCKIN].timeouts = 100
    start = rig.clock.now()
    with pytest.raises(InstrumentLost) as err:
        rig.lockin.read_xy()
    assert "lock-in SR830 at GPIB0::8::INSTR" in str(err.value)
    assert "after 3 attempts" in str(err.value) and "no reply within 3 s" in str(err.value)
    assert rig.clock.now() - start == pytest.approx(3 * 3.0)  # each attempt waited its timeout
    assert rig.make_safe() == []
    assert_field_down(rig)


def test_transient_faults_are_ridden_out(rig: Rig) -> None:
    faults = rig.backend.faults[LOCKIN]
    faults.timeouts, faults.garbage = 1, 1
    x, _ = rig.lockin.read_xy()
    assert abs(x) < 0.5 and faults.timeouts == 0 and faults.garbage == 0


def test_garbage_replies_are_never_read_as_numbers(rig: Rig) -> None:
    rig.backend.faults[LOCKIN].garbage = 100
    with pytest.raises(InstrumentLost, match="expected two comma-separated numbers"):
        rig.lockin.read_xy()
    assert rig.make_safe() == []
    assert_field_down(rig)


def test_a_disconnected_lockin_is_lost_at_once(rig: Rig) -> None:
    rig.backend.faults[LOCKIN].disconnected = True
    with pytest.raises(InstrumentLost, match="SR830 at GPIB0::8::INSTR: connection lost"):
        rig.lockin.overloaded()
    assert rig.make_safe() == []
    assert_field_down(rig)


def test_lockin_overload_is_reported(rig: Rig) -> None:
    rig.lockin.overloaded()  # clear what moving and ramping may have latched
    rig.backend.lockin.interference = 2.0  # a 2 V pick-up at the input
    rig.clock.sleep(0.3)
    assert rig.lockin.overloaded()
    rig.backend.lockin.interference = 0.0
    rig.clock.sleep(0.3)
    rig.lockin.overloaded()
    assert not rig.lockin.overloaded()
    assert rig.make_safe() == []
    assert_field_down(rig)


def test_a_tripped_supply_is_an_error_and_the_others_ramp_down(rig: Rig) -> None:
    rig.world.coils.trip(2)
    with pytest.raises(InstrumentError, match="tripped"):
        rig.coils.set_field(np.array([0.0, 10e-6, 40e-6]))
    problems = rig.make_safe()
    assert len(problems) == 1 and "field not ramped down" in problems[0]
    assert "tripped" in problems[0]
    assert_field_down(rig)
    assert not rig.world.coils.output(2)


def test_a_lost_stage_leaves_the_field_ramped_down(rig: Rig) -> None:
    rig.backend.faults["ASRL1::INSTR"].disconnected = True
    with pytest.raises(InstrumentLost):
        rig.stage.move_to(12.6e-3, 12.5e-3)
    problems = rig.make_safe()
    assert [p.split(":")[0] for p in problems] == ["stage not stopped"]
    assert_field_down(rig)


# --- through the scan sequencer ------------------------------------------------------------

sequencer = pytest.importorskip("smm_daq.acquisition.sequencer")
plan_module = pytest.importorskip("smm_daq.acquisition.plan")


def scan(rig: Rig, path: Path, name: str):
    plan = plan_module.ScanPlan.from_center(
        name, (12.5e-3, 12.5e-3), (60e-6, 60e-6), 20e-6, field=tuple(FIELD)
    )
    return sequencer.Sequencer(rig, path, plan)


def inject_after(seq, points: int, fault) -> None:
    seen = []

    def on_event(event) -> None:
        if event.kind == "point":
            seen.append(event)
            if len(seen) == points:
                fault()

    seq.subscribe(on_event)


def test_scan_losing_the_lockin_fails_with_the_field_ramped_down(rig: Rig, tmp_path: Path) -> None:
    seq = scan(rig, tmp_path / "s.h5", "lost")
    inject_after(seq, 5, lambda: setattr(rig.backend.faults[LOCKIN], "disconnected", True))
    assert seq.run() == "failed"
    assert "SR830 at GPIB0::8::INSTR" in seq.message and "lost" in seq.message
    assert seq.safety_problems == []
    assert_field_down(rig)


def test_scan_with_persistent_garbage_fails_with_the_field_ramped_down(
    rig: Rig, tmp_path: Path
) -> None:
    seq = scan(rig, tmp_path / "s.h5", "garbled")
    inject_after(seq, 3, lambda: setattr(rig.backend.faults[LOCKIN], "garbage", 10_000))
    assert seq.run() == "failed"
    assert "no valid reply" in seq.message
    assert_field_down(rig)


def test_scan_pauses_on_overload_and_abort_ramps_the_field_down(rig: Rig, tmp_path: Path) -> None:
    seq = scan(rig, tmp_path / "s.h5", "overload")
    paused = threading.Event()
    seq.subscribe(lambda e: paused.set() if e.kind == "paused" else None)
    inject_after(seq, 4, lambda: setattr(rig.backend.lockin, "interference", 2.0))
    seq.start()
    assert paused.wait(timeout=60)
    assert "overload" in seq.message
    seq.abort()
    assert seq.wait(timeout=60) == "aborted"
    assert "overload" in seq.message
    assert_field_down(rig)


def test_scan_with_a_tripped_supply_fails_with_the_rest_ramped_down(
    rig: Rig, tmp_path: Path
) -> None:
    rig.world.coils.trip(0)
    seq = scan(rig, tmp_path / "s.h5", "trip")
    assert seq.run() == "failed"
    assert "tripped" in seq.message
    assert any("tripped" in p for p in seq.safety_problems)
    assert_field_down(rig)
