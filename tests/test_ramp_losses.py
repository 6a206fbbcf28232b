"""A coil ramp-down past lost replies: it goes on past a few (a ramp-down stopped at one would
leave the coil energised), on the three supplies together and on each on its own, and ends in
bounded time when a supply keeps losing them (each costs a link timeout)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_kepco_coils import AMBIENT, C, Rig

from drivers.kepco_bop import KepcoBOPCoils
from simulators.coil_model import CoilModel
from simulators.emulator import Emulator, EmulatorTransport
from simulators.kepco_emulator import KepcoBOPEmulator
from smm_daq.clock import VirtualClock
from smm_daq.errors import InstrumentError
from smm_daq.instruments import loss_budget
from smm_daq.instruments.profile import RAMP_LOST_REPLIES, load_profile
from smm_daq.instruments.rig import open_rig

TIMEOUT_S = 3.0  # EmulatorTransport's: what each lost reply costs on the virtual clock


class LosesChecks(Emulator):
    """A supply whose replies to the `SYST:ERR?` queries numbered `lost` (from 1, counted from
    `start()`) are lost: the query read and its entry popped, nothing comes back."""

    def __init__(self, inner: KepcoBOPEmulator, lost: set[int] | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.lost = lost or set()
        self.checks: int | None = None  # counting once started

    def start(self, lost: set[int]) -> None:
        self.lost, self.checks = lost, 0

    def handle(self, message: str) -> str | None:
        reply = self.inner.handle(message)
        if message == "SYST:ERR?" and self.checks is not None:
            self.checks += 1
            if self.checks in self.lost:
                return None
        return reply


def _every_other(first: int) -> set[int]:
    return set(range(first, first + 200, 2))


def _rig_at(field: np.ndarray) -> tuple[Rig, list[LosesChecks]]:
    rig = Rig()
    rig.coils.set_field(field)
    lossy = []
    for recorder in rig.emulators:  # between each recorder and its supply
        recorder.inner = LosesChecks(recorder.inner)
        lossy.append(recorder.inner)
    return rig, lossy


def test_a_supply_losing_every_other_check_is_given_up_in_bounded_time():
    """Each lost reply is one timeout: a ramp-down that went on past every other one lost
    would take as many timeouts as it has steps. It is given up after `RAMP_LOST_REPLIES`,
    saying so; the other coils reach their safe state."""
    rig, lossy = _rig_at(np.array([0.0, 60e-6, 0.0]))
    lossy[1].start(_every_other(2))
    start = rig.clock.now()
    with pytest.raises(InstrumentError) as info:
        rig.coils.zero()
    spent = rig.clock.now() - start
    message = str(info.value)
    assert "coil y:" in message and f"{RAMP_LOST_REPLIES + 1} replies lost during its ramp" \
        in message, message
    assert "its ramp-down stopped at" in message and "coil x" not in message
    assert "switched off at" in message and "the switch-off confirmed" in message, message
    assert not rig.model.output(1)  # not left energised where its ramp stopped
    ramp = float(np.max(np.abs(rig.coils.currents_for(np.array([0.0, 60e-6, 0.0]))
                               - rig.coils.currents_for(np.zeros(3))))) / 1.0
    assert spent <= 1.5 * ramp + (RAMP_LOST_REPLIES + 1) * TIMEOUT_S + 2.0
    rig.clock.advance(1.0)  # the currents follow their setpoints
    safe = rig.coils.currents_for(np.zeros(3))
    np.testing.assert_allclose(rig.model.currents(rig.clock.now())[[0, 2]], safe[[0, 2]],
                               atol=1e-5)


def test_the_last_step_of_a_ramp_down_whose_check_is_lost_is_sent_again():
    field = np.array([0.0, 60e-6, 0.0])
    rig, lossy = _rig_at(field)
    steps = math.ceil(np.max(np.abs(rig.coils.currents_for(field))) / 1.0 / 0.1)  # 1 A/s
    lossy[1].start({steps})  # the check of its last step
    rig.coils.output_off()
    steps = [m for _, m in rig.emulators[1].sent("CURR ")]
    assert steps[-2:] == ["CURR 0.000000"] * 2  # its check lost: sent once more, checked
    assert rig.model.currents()[1] == 0.0 and not rig.model.output(1)


def _left_energised(amps: float, lost: set[int]) -> tuple[VirtualClock, list[LosesChecks],
                                                          list[tuple[str, bool, str]]]:
    """Three supplies left at `amps` in current mode, ramped down each on its own, supply y
    losing the replies to its checks numbered `lost` (its queue read at connect is 1)."""
    clock = VirtualClock()
    model = CoilModel(clock, calibration=C, ambient=AMBIENT, resolution=1e-6)
    supplies = [LosesChecks(KepcoBOPEmulator(model, i)) for i in range(3)]
    for supply in supplies:
        supply.inner.handle(f"FUNC:MODE CURR;:VOLT 20;CURR {amps};OUTP ON")
    supplies[1].start(lost)
    settings = replace(load_profile(None).coils, addresses=("a", "b", "c"), max_ramp_rate=1.0)
    by_address = dict(zip(settings.addresses, supplies, strict=True))
    results = KepcoBOPCoils.ramp_down_each(
        settings, clock=clock,
        open_transport=lambda address, link: EmulatorTransport(by_address[address],
                                                               clock=clock))
    return clock, supplies, results


@pytest.mark.parametrize("lost", [{3}, {3, 6}, {11}], ids=["one", "two apart", "the last"])
def test_each_supply_on_its_own_is_ramped_down_past_a_lost_reply_and_says_so(lost):
    """One supply lost (`smm-daq safe`), the others ramp down each on its own: as tolerant as
    the ramp of the three, and the lost replies are said with the supply's state."""
    _, supplies, results = _left_energised(1.0, lost)  # 10 steps: checks 2 .. 11
    assert [safe for _, safe, _ in results] == [True] * 3, results
    coil, _, state = results[1]
    assert coil == "coil y" and state.startswith("0.0000 A, output off"), state
    assert f"; {len(lost)} repl{'y' if len(lost) == 1 else 'ies'} lost on the way" in state
    assert "among them the checks of 'CURR " in state
    assert float(supplies[1].inner.handle("CURR?")) == 0.0
    assert supplies[1].inner.handle("OUTP?") == "0"


def test_each_supply_on_its_own_losing_every_other_reply_is_given_up_in_bounded_time():
    """Given up mid-ramp, the supply is switched off where it stands, as the ramp-down of
    the three does (`output_off`), and says so: a coil is not left energised, unwatched."""
    clock, supplies, results = _left_energised(1.0, _every_other(3))
    assert [safe for _, safe, _ in results] == [True, False, True], results
    state = results[1][2]
    assert f"{RAMP_LOST_REPLIES + 1} replies lost during its ramp" in state, state
    assert "; switched off at 0." in state and "the switch-off confirmed" in state, state
    # the switch-off, sent once more where its check is lost: two more at most
    assert clock.now() <= 3 * 1.0 + (RAMP_LOST_REPLIES + 1 + 2) * TIMEOUT_S
    assert supplies[1].inner.handle("OUTP?") == "0"  # off, where its ramp stopped


class LosesTheFirstStepCheck(Emulator):
    """A supply that loses the reply to the error check of the first current it is set to."""

    def __init__(self, inner: Emulator) -> None:
        self.inner = inner
        self.name = inner.name
        self.stepped = False
        self.lost = False

    def handle(self, message: str) -> str | None:
        reply = self.inner.handle(message)
        self.stepped = self.stepped or message.startswith("CURR ")
        if message == "SYST:ERR?" and self.stepped and not self.lost:
            self.lost = True
            return None
        return reply


def test_smm_daq_safe_says_the_replies_its_ramp_down_went_on_past(
        monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from served_rig import simulators_made

    from smm_daq.cli.main import main

    wrapped: list[LosesTheFirstStepCheck] = []

    def energised(backend: Any, profile: Any) -> None:
        y = profile.coils.addresses[1]
        backend.endpoint(y).handle("FUNC:MODE CURR;:VOLT 20;CURR 1;OUTP ON")
        backend.clock.sleep(1.0)
        wrapped.append(LosesTheFirstStepCheck(backend.endpoint(y)))
        endpoint = backend.endpoint
        backend.endpoint = lambda address: wrapped[0] if address == y else endpoint(address)

    made = simulators_made(monkeypatch, energised)
    profile = Path(__file__).resolve().parents[1] / "configs" / "simulator.toml"
    assert main(["safe", "--profile", str(profile)]) == 0
    said = capsys.readouterr().out
    assert wrapped[0].lost
    assert "ramped down past lost replies: coil y: 1 reply lost on the way, among them the " \
        "checks of 'CURR " in said, said
    assert abs(made[0].world.coils.current(1)) < 1e-3


def test_a_supply_past_the_make_safe_budget_is_given_up_switched_off_and_costs_no_more():
    """Within a make-safe path (`loss_budget`), a supply that keeps losing replies is given
    up once it has lost its budget: nothing more is waited for from it (its ramp-down, its
    settling), it is sent its switch-off once, unchecked, and says so."""
    rig, lossy = _rig_at(np.array([0.0, 60e-6, 0.0]))
    lossy[1].start(set(range(1, 1000)))  # every check from now on: two in a row give up
    budget = 1  # its first lost check spends it
    start = rig.clock.now()
    with loss_budget.making_safe(budget), pytest.raises(InstrumentError) as info:
        rig.coils.zero()
    spent = rig.clock.now() - start
    message = str(info.value)
    assert "coil y: given up before " in message and "1 reply lost while making the " \
        "rig safe" in message, message
    assert "switch-off sent at" in message and "not confirmed" in message, message
    ramp = float(np.max(np.abs(rig.coils.currents_for(np.array([0.0, 60e-6, 0.0]))))) / 1.0
    assert spent <= 1.5 * ramp + budget * TIMEOUT_S + 2.0
    assert not rig.model.output(1)  # its last word arrived
    sent = [m for _, m in rig.emulators[1].sent("OUTP OFF")]
    assert sent == ["OUTP OFF"]


class LosesStepChecks(Emulator):
    """A supply that loses the reply to the error check of every current step it is sent
    (`CURR <A>`), and answers everything else."""

    def __init__(self, inner: Emulator) -> None:
        self.inner = inner
        self.name = inner.name
        self.last = ""

    def handle(self, message: str) -> str | None:
        after, self.last = self.last, message
        reply = self.inner.handle(message)
        return None if message == "SYST:ERR?" and after.startswith("CURR ") else reply


def test_smm_daq_safe_switches_off_a_coil_whose_ramp_down_is_given_up_and_says_so(
        monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """The three supplies ramped together (safe state "zero"): coil y, at 1 A, loses the
    check of every step, so its ramp-down is given up after two; it is switched off where it
    stands, as each supply on its own and the "off" state do, not left energised, and `safe`
    says at what current and that the switch-off was confirmed."""
    from served_rig import simulators_made

    from smm_daq.cli.main import main

    def energised(backend: Any, profile: Any) -> None:
        y = profile.coils.addresses[1]
        backend.endpoint(y).handle("FUNC:MODE CURR;:VOLT 20;CURR 1;OUTP ON")
        backend.clock.sleep(1.0)
        lossy = LosesStepChecks(backend.endpoint(y))
        endpoint = backend.endpoint
        backend.endpoint = lambda address: lossy if address == y else endpoint(address)

    made = simulators_made(monkeypatch, energised)
    profile = Path(__file__).resolve().parents[1] / "configs" / "simulator.toml"
    assert main(["safe", "--profile", str(profile)]) == 1
    said = capsys.readouterr().out
    assert "coils: NOT SAFE: not ramped to the safe state: coils: coil y: " in said, said
    assert "two step checks in a row lost; its ramp-down stopped at 0.8000 A (as last sent); " \
        "switched off at 0.8000 A (its last step sent), the switch-off confirmed" in said, said
    assert "currents (0.0000, 0.0000, 0.0000) A" in said, said
    world = made[0].world.coils
    assert not world.output(1) and abs(world.current(1)) < 1e-3


def test_a_supply_switched_off_as_it_was_given_up_is_not_said_tripped_later():
    """Coil x stops answering while the rig is made safe: given up, it is sent its
    switch-off once more, unchecked. It answers again, and its output is found off: that is
    the switch-off it was sent, not a trip. Making the rig safe again ramps it to its safe
    state, and a field is set, as on any supply switched off (it used to say 'supply output
    found off (tripped)', then refuse every field until the outputs were switched off)."""
    profile = load_profile()
    with open_rig(profile) as rig:
        rig.coils.set_field(np.array([100e-6, 0.0, 0.0]))
        x = profile.coils.addresses[0]
        rig.backend.faults[x].timeouts = 1000
        first = rig.make_safe()
        assert len(first) == 1 and "coil x" in first[0], first
        assert not rig.world.coils.output(0)  # the unchecked switch-off arrived
        rig.backend.faults[x].timeouts = 0
        assert rig.make_safe() == []
        rig.coils.set_field(np.array([10e-6, 0.0, 0.0]))
        assert rig.world.coils.output(0)
        assert rig.world.coils.current(0) == pytest.approx(0.2, abs=1e-3)
