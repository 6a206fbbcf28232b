"""Connecting the coils (as `smm-daq safe` does, before it ramps them down) raises no current:
a supply a killed program left in current mode with its output on, its current held below the
setpoint by a low voltage limit, keeps the current that flows when the driver sets its
compliance."""

from __future__ import annotations

from pathlib import Path

import pytest
from served_rig import simulators_made

from drivers.kepco_bop import KepcoBOPCoils
from smm_daq.clock import VirtualClock
from smm_daq.errors import InstrumentError
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import make_rig_safe, open_rig, simulator_class

PROFILE = Path(__file__).resolve().parents[1] / "configs" / "simulator.toml"
SLEW_S = 10.0  # virtual s: the emulated supplies' currents follow within it (10 A/s)
HELD_A = 0.5  # 1 V over the simulated coil's 2 Ω


def test_connecting_keeps_a_current_held_down_by_a_low_voltage_limit() -> None:
    profile = load_profile(PROFILE)
    clock = VirtualClock()
    backend = simulator_class(profile)(profile, clock, None)
    for address in profile.coils.addresses:
        supply = backend.endpoint(address)
        for command in ("FUNC:MODE CURR", "CURR 2.0", "VOLT 1", "OUTP ON"):
            supply.handle(command)
    clock.sleep(SLEW_S)
    assert abs(backend.world.coils.current(0)) <= HELD_A + 1e-3
    coils = KepcoBOPCoils.from_profile(profile.coils, clock=clock,
                                       open_transport=backend.open_transport)
    try:
        clock.sleep(SLEW_S)  # a raised setpoint or limit would have been followed by now
        for k in range(3):
            assert abs(backend.world.coils.current(k)) <= HELD_A + 1e-3, k
        assert coils.limits()  # connected: compliance restored for a scan
        assert backend.world.coils.voltage_limit(0) == 20.0
    finally:
        coils.close()


def test_safe_reports_an_error_a_supply_held_from_before(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a supply's error queue held (a refused command, a fault a killed program left) is
    read at connect before it is cleared, and `safe` names it beside the coils' state."""
    profile = load_profile(PROFILE)
    backends = simulators_made(monkeypatch, lambda backend, p: backend.endpoint(
        p.coils.addresses[1]).handle("CURR 1e9"))  # refused: -222, left in the queue
    coils, stage = make_rig_safe(profile)
    assert backends  # the monkeypatched world was the one made safe
    assert coils.safe and stage.safe
    assert coils.state.endswith(
        "; errors the supplies held from before: coil y: -222 Data out of range"), coils.state


@pytest.mark.parametrize("lost", [0, 2])
def test_safe_supply_by_supply_reports_an_error_held_from_before_and_ramps_down(
        monkeypatch: pytest.MonkeyPatch, lost: int) -> None:
    """One supply lost, `safe` ramps the others down one by one (`ramp_down_each`). Coil y's
    queue held an earlier program's error: read by the supply-by-supply ramp-down (coil x
    lost: the three together failed before reaching y), it is named there, not taken by the
    first step's check for its own (which left the coil energised); read by the connect of
    the three together (coil z lost, after y was reached), it is named with that failure
    (it was cleared unseen)."""
    def left_with_an_error(backend, profile) -> None:
        y = profile.coils.addresses[1]
        for command in ("FUNC:MODE CURR", "VOLT 20", "CURR 0.5", "OUTP ON", "CURR 1e9"):
            backend.endpoint(y).handle(command)  # driving 0.5 A; the last refused: -222
        backend.faults[profile.coils.addresses[lost]].disconnected = True
        backend.clock.sleep(SLEW_S)

    made = simulators_made(monkeypatch, left_with_an_error)
    coils, _ = make_rig_safe(load_profile(PROFILE))
    assert made  # the prepared world was the one made safe
    together, _, each = coils.state.partition("; each supply on its own: ")
    assert each, coils.state
    held = "-222 Data out of range"
    if lost == 0:
        assert held not in together
        assert "coil y 0.0000 A, output off; its errors from before: " + held in each, each
    else:
        assert together.endswith(f"; errors the supplies held from before: coil y: {held})")
        assert "coil y 0.0000 A, output off;" in each and held not in each, each
    assert not coils.safe  # the lost coil
    world = made[0].world.coils
    assert abs(world.current(1)) < 1e-6 and not world.output(1)


def test_a_connect_that_fails_names_the_errors_the_supplies_held(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening the rig (a scan, `check`, the window) reads each supply's queue before
    clearing it; the connect failing at coil z after coil y's was read, the error says what y
    held (cleared by then), before saying whether the rig is safe."""
    def left_with_an_error(backend, profile) -> None:
        backend.endpoint(profile.coils.addresses[1]).handle("CURR 1e9")  # refused: -222
        backend.faults[profile.coils.addresses[2]].disconnected = True

    made = simulators_made(monkeypatch, left_with_an_error)
    with pytest.raises(InstrumentError) as err:
        open_rig(load_profile(PROFILE))
    assert made
    notes = getattr(err.value, "__notes__", [])
    assert notes[0] == "errors the supplies held from before: coil y: -222 Data out of range"
    assert len(notes) == 2 and "safe" in notes[1], notes
