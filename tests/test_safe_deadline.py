"""Making the rig safe is bounded by a deadline: the supplies ramp gracefully until it, then
each one still energised is switched off where it stands (its switch-off, and the check of
it, the only exchanges still sent), and `smm-daq safe` prints the deadline and the bound."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from served_rig import simulators_made
from test_kepco_coils import Rig

from smm_daq.cli.main import main
from smm_daq.errors import InstrumentError
from smm_daq.instruments import loss_budget
from smm_daq.instruments import rig as rig_module
from smm_daq.instruments.loss_budget import TAIL_EXCHANGES, DeadlineReached
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.safe_bound import (
    close_wait_s,
    safe_deadline,
    safe_time_bound,
    switch_off_tail_s,
)

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 3.0  # EmulatorTransport's: what each lost reply costs on the virtual clock
PLENTY = 1000  # lost replies allowed: only the deadline cuts the path short here


def _past(rig: Rig, deadline: float, before: list[int]) -> list[list[str]]:
    """What each supply was sent at or after `deadline` (clock time), past its first
    `before` messages."""
    return [[m for t, m, _ in e.log[n:] if t >= deadline]
            for e, n in zip(rig.emulators, before, strict=True)]


def test_a_ramp_down_cut_short_by_the_deadline_switches_each_supply_off_where_it_stands():
    """Coil y ramps down from 1.24 A at 1 A/s; the path's deadline comes 0.6 s in: each
    supply still energised is switched off where it stands, said with its current and
    "(deadline reached)", and nothing but the switch-offs and their checks is sent past it."""
    rig = Rig()
    rig.coils.set_field(np.array([0.0, 60e-6, 0.0]))
    start_a = rig.model.current(1)
    start, before = rig.clock.now(), [len(e.log) for e in rig.emulators]
    with loss_budget.making_safe(PLENTY, clock=rig.clock, deadline_s=0.6), \
            pytest.raises(InstrumentError) as info:
        rig.coils.zero()
    message = str(info.value)
    at = re.search(r"coil y: deadline reached before '[^']+': .*?switched off at "
                   r"(-?\d+\.\d{4}) A \(deadline reached\), the switch-off confirmed", message)
    assert at is not None, message
    assert 0.1 < float(at.group(1)) < start_a - 0.1, message  # part of the way down
    assert not any(rig.model.output(k) for k in range(3))
    past = _past(rig, start + 0.6, before)
    assert all(set(sent) <= {"OUTP OFF", "SYST:ERR?"} for sent in past), past
    assert all(len(sent) <= TAIL_EXCHANGES for sent in past), past
    assert rig.clock.now() - start <= 0.6 + 0.1  # every exchange answered at once


def test_past_the_deadline_supplies_that_stop_answering_cost_their_switch_offs_only():
    """The deadline reached, every supply loses every reply from then on: each is sent its
    switch-off and its check, both once more, and its switch-off unchecked
    (`TAIL_EXCHANGES`, one attempt each), and the path ends within the bound's tail, the
    coils switched off all the same."""
    rig = Rig()
    rig.coils.set_field(np.array([0.0, 60e-6, 0.0]))
    for faults in rig.faults:
        faults.timeouts = PLENTY
    start, before = rig.clock.now(), [len(e.log) for e in rig.emulators]
    with loss_budget.making_safe(PLENTY, clock=rig.clock, deadline_s=0.0), \
            pytest.raises(InstrumentError) as info:
        rig.coils.zero()
    message = str(info.value)
    assert message.count("(deadline reached), not confirmed") == 3, message
    past = _past(rig, start, before)
    assert past == [["OUTP OFF", "SYST:ERR?"] * 2 + ["OUTP OFF"]] * 3, past
    # two lost checks a supply, each a timeout; never more than the tail allows
    assert rig.clock.now() - start <= 3 * TAIL_EXCHANGES * 2 * TIMEOUT_S + 0.1
    assert rig.clock.now() - start == pytest.approx(3 * 2 * TIMEOUT_S, abs=0.2)
    assert not any(rig.model.output(k) for k in range(3))


def test_a_scans_make_safe_has_the_deadline_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """The make-safe path of an open rig (a scan's end or failure, Ctrl-C, the window's
    close) is bounded alike: with a deadline of 0.5 s (monkeypatched, for a ramp of 1.2 A at
    1 A/s), the stage is stopped, each supply still energised switched off where it stands
    and said, within the deadline and the switch-offs after it, on the rig's clock."""
    monkeypatch.setattr(rig_module, "safe_deadline", lambda profile: 0.5)
    rig = rig_module.open_rig(load_profile())
    rig.coils.set_field(np.array([0.0, 0.0, 60e-6]))
    start = rig.clock.now()
    problems = rig.make_safe()
    assert len(problems) == 1 and problems[0].startswith("field not ramped down: "), problems
    assert re.search(r"coil z: deadline reached before '[^']+': .*switched off at "
                     r"\d\.\d{4} A \(deadline reached\), the switch-off confirmed",
                     problems[0]), problems
    assert rig.clock.now() - start <= 0.5 + switch_off_tail_s(rig.profile)
    assert not any(rig.world.coils.output(k) for k in range(3))
    assert rig.stage.on_target()


@pytest.mark.parametrize(("config", "deadline", "bound"), [
    ("simulator.toml", 144, 326), ("simulator-e727.toml", 144, 326),
    ("example-lab.toml", 180, 384)])
def test_the_printed_bound_is_a_few_minutes_for_the_shipped_profiles(
        config: str, deadline: int, bound: int) -> None:
    """The deadline (the ramps, settling, room for lost replies), the switch-offs after it
    and the close's wait for the lock-in and the fluxgate: minutes, not the half hour and
    more that counting every exchange at its timeout gave (2208 s for the simulator, 2396 s
    for the example lab)."""
    profile = load_profile(REPO / "configs" / config)
    assert round(safe_deadline(profile)) == deadline
    assert math.ceil(safe_time_bound(profile)) == bound
    assert safe_time_bound(profile) == pytest.approx(
        safe_deadline(profile) + switch_off_tail_s(profile) + close_wait_s(profile))


def test_past_the_deadline_each_supply_gets_its_tail_of_switch_off_exchanges_and_no_more():
    """However often a caller tries a supply's switch-off past the deadline, that supply is
    sent `TAIL_EXCHANGES` of them, then refused (`DeadlineReached`) without a message sent:
    the tail `switch_off_tail_s` counts is a limit, not a count of what the driver happens to
    send today. Each supply has its own tail."""
    rig = Rig()
    rig.coils.set_field(np.array([0.0, 60e-6, 0.0]))
    x, y = rig.coils._supplies[:2]
    before = [len(e.log) for e in rig.emulators]
    with loss_budget.making_safe(PLENTY, clock=rig.clock, deadline_s=0.0), \
            loss_budget.switching_off():
        for _ in range(TAIL_EXCHANGES):
            x.link.write("OUTP OFF")
        with pytest.raises(DeadlineReached):
            x.link.write("OUTP OFF")
        with pytest.raises(DeadlineReached):
            x.link.query("OUTP?", str)
        y.link.write("OUTP OFF")  # coil y's tail is its own
    sent = [[m for _, m, _ in e.log[n:]] for e, n in zip(rig.emulators, before, strict=True)]
    assert sent == [["OUTP OFF"] * TAIL_EXCHANGES, ["OUTP OFF"], []], sent


def test_a_supply_cut_short_while_the_three_connect_is_said_where_the_connect_left_it(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Every supply found in voltage mode driving 5 A; the deadline (2 s, monkeypatched)
    comes while connecting the three ramps coil x's voltage down (5 s at 1 A/s). Each is then
    switched off where it stands, one by one: coil x said where the connect left it (its
    voltage ramp's last step sent), not "its current unknown", which is said of coils y and
    z only, which the connect never reached."""
    monkeypatch.setattr(rig_module, "safe_deadline", lambda profile: 2.0)

    def left_in_voltage_mode(backend: Any, profile: Any) -> None:
        for address in profile.coils.addresses:
            for found in ("FUNC:MODE VOLT", "CURR 5", "VOLT 20", "OUTP ON"):
                backend.endpoint(address).handle(found)
        backend.clock.sleep(1.0)  # the currents reach 5 A

    made = simulators_made(monkeypatch, left_in_voltage_mode)
    code = main(["safe", "--profile", str(REPO / "configs" / "simulator.toml")])
    said = capsys.readouterr().out
    assert code == 1, said
    x = re.search(r"coil x not made safe: .*?switched off where it was found \(in voltage "
                  r"mode, ramped from 20\.0000 V \(5\.0000 A\) to (\d+\.\d{4}) V as connecting "
                  r"the three left it, its last step sent; deadline reached\), the switch-off "
                  r"confirmed", said)
    assert x is not None, said
    assert 0.0 < float(x.group(1)) < 20.0, said  # part of the way down
    assert said.count("(its current unknown; deadline reached)") == 2, said
    assert not any(made[0].world.coils.output(k) for k in range(3)), said


def test_a_path_begun_by_a_stop_limits_nothing_before_it_and_counts_from_the_stop():
    """Around a field's ramp that a stop ends (`making_safe_from`): a reply lost before the
    stop is neither charged nor refused (the field set retries it as ever, though the
    allowance is one), and once the stop has come the path's deadline counts from the stop's
    time, not from when the path is first asked (the exchange under way as it came); a
    make-safe path inside shares it. Without a stop, a path inside begins it then."""
    rig = Rig()
    stops: list[float] = []
    with loss_budget.making_safe_from(lambda: stops[0] if stops else None, 1, stage=None,
                                      clock=rig.clock, deadline_s=2.0) as budget:
        rig.faults[1].timeouts = 1
        rig.coils.set_field(np.array([0.0, 60e-6, 0.0]))
        assert rig.transports[1].faults.timeouts == 0  # the reply was lost, and retried
        assert budget.lost == {} and not budget.past_deadline()
        stops.append(rig.clock.now())
        rig.clock.advance(1.5)
        with loss_budget.making_safe(PLENTY, clock=rig.clock, deadline_s=100.0) as inner:
            assert inner is budget and budget.deadline == stops[0] + 2.0
        rig.clock.advance(0.5)
        with pytest.raises(DeadlineReached):
            rig.coils._supplies[0].link.query("OUTP?", str)
    with loss_budget.making_safe_from(lambda: None, 1, stage=None, clock=rig.clock,
                                      deadline_s=2.0) as waiting, \
            loss_budget.making_safe(PLENTY):
        assert waiting.deadline == rig.clock.now() + 2.0
