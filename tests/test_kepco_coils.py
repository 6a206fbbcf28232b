"""Kepco BOP coil driver: command/response pairs against the emulators, field <-> currents,
ramp limits, range checks, trips and the safety paths."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from drivers.kepco_bop import KepcoBOPCoils, parse_kepco_idn, parse_scpi_error
from simulators.coil_model import CoilModel
from simulators.emulator import Emulator, EmulatorTransport, Faults
from simulators.kepco_emulator import KepcoBOPEmulator
from smm_daq.clock import VirtualClock
from smm_daq.errors import InputError, InstrumentError, ProtocolError, RangeError, ReplyUnknown
from smm_daq.instruments import loss_budget

C = np.array([[5e-5, 1e-6, 0.0], [-2e-6, 4.8e-5, 3e-7], [0.0, 5e-7, 5.1e-5]])
AMBIENT = np.array([14e-6, 0.6e-6, -49e-6])


class Recorder(Emulator):
    """Passes messages to a supply emulator, logging (clock time, message, reply)."""

    def __init__(self, inner: KepcoBOPEmulator, clock: VirtualClock) -> None:
        self.inner = inner
        self.clock = clock
        self.name = inner.name
        self.log: list[tuple[float, str, str | None]] = []

    def handle(self, message: str) -> str | None:
        reply = self.inner.handle(message)
        self.log.append((self.clock.now(), message, reply))
        return reply

    def sent(self, prefix: str) -> list[tuple[float, str]]:
        return [(t, m) for t, m, _ in self.log if m.startswith(prefix)]


class Rig:
    def __init__(self, *, safe_state="zero", faults=None, model_kw=None, **kw) -> None:
        self.clock = VirtualClock()
        self.model = CoilModel(
            self.clock, calibration=C, ambient=AMBIENT, resolution=1e-6, **(model_kw or {})
        )
        self.emulators = [Recorder(KepcoBOPEmulator(self.model, i), self.clock) for i in range(3)]
        self.faults = faults or [Faults() for _ in range(3)]
        self.transports = [
            EmulatorTransport(e, clock=self.clock, faults=f)
            for e, f in zip(self.emulators, self.faults, strict=True)
        ]
        self.coils = KepcoBOPCoils(
            self.transports,
            calibration=C,
            ambient=AMBIENT,
            max_current=3.0,
            max_ramp_rate=1.0,
            max_field=100e-6,
            clock=self.clock,
            safe_state=safe_state,
            **kw,
        )


def test_connect_sets_current_mode_and_compliance_and_keeps_outputs_as_found():
    rig = Rig()
    for e in rig.emulators:
        messages = [m for _, m, _ in e.log]
        assert messages[:7] == ["*IDN?", "SYST:ERR?", "*CLS", "FUNC:MODE?", "OUTP?",
                                "FUNC:MODE CURR", "SYST:ERR?"]  # found in voltage mode, off
        assert "VOLT 20.000" in messages
        assert e.inner.mode == "CURR"
    assert [rig.model.output(i) for i in range(3)] == [False] * 3


class LosesFirstErrorReply(Recorder):
    """A supply whose reply to the first `SYST:ERR?` is lost (the query read, its error
    popped, nothing comes back)."""

    def handle(self, message: str) -> str | None:
        reply = super().handle(message)
        if message == "SYST:ERR?" and sum(m == message for _, m, _ in self.log) == 1:
            return None
        return reply


def connected_after(left: list[list[str]], recorder=Recorder) -> tuple[KepcoBOPCoils, list]:
    """The coils connected to supplies that an earlier program sent `left[k]` (supply k)."""
    clock = VirtualClock()
    model = CoilModel(clock, calibration=C, ambient=AMBIENT, resolution=1e-6)
    emulators = [recorder(KepcoBOPEmulator(model, i), clock) for i in range(3)]
    for emulator, commands in zip(emulators, left, strict=True):
        for command in commands:
            emulator.inner.handle(command)
    coils = KepcoBOPCoils([EmulatorTransport(e, clock=clock) for e in emulators],
                          calibration=C, ambient=AMBIENT, max_current=3.0, max_ramp_rate=1.0,
                          max_field=100e-6, clock=clock)
    return coils, emulators


def test_errors_an_earlier_program_left_are_read_before_they_are_cleared_and_kept():
    """Each supply's queue as found at connect is read (oldest first) before `*CLS` empties
    it: the connect does not fail for errors that are not its own, nor lose them."""
    coils, emulators = connected_after([["VOLT:BOGUS 1", "CURR 1e9"], [], ["FUNC:MODE X"]])
    assert coils.errors_at_connect == [
        'coil x: -113 Undefined header', 'coil x: -222 Data out of range',
        'coil z: -224 Illegal parameter value']
    assert coils.snapshot()["errors_at_connect"] == "; ".join(coils.errors_at_connect)
    messages = [m for _, m, _ in emulators[0].log]
    assert messages[:5] == ["*IDN?", "SYST:ERR?", "SYST:ERR?", "SYST:ERR?", "*CLS"]
    coils.set_field(np.array([30e-6, -20e-6, 10e-6]))  # the errors were the earlier program's
    coils.close()


def test_an_error_reply_lost_at_connect_is_said_unknown_and_the_connect_goes_on():
    """`smm-daq safe` connects this way to ramp the field down: a reply to the connect's
    read of the queue lost fails nothing, and what was left is said unknown."""
    coils, emulators = connected_after([["CURR 1e9"], [], []], recorder=LosesFirstErrorReply)
    assert coils.errors_at_connect == [
        f"coil {axis}: unknown (a reply to SYST:ERR? was lost)" for axis in "xyz"]
    assert [m for _, m, _ in emulators[0].log][:3] == ["*IDN?", "SYST:ERR?", "*CLS"]
    coils.zero()
    coils.close()


def test_field_becomes_currents_through_the_inverse_calibration():
    rig = Rig()
    b = np.array([30e-6, -20e-6, 10e-6])
    rig.coils.set_field(b)
    expected = np.linalg.solve(C, b - AMBIENT)  # I = C⁻¹ (B − ambient)
    for i, e in enumerate(rig.emulators):
        last = e.sent("CURR ")[-1][1]
        assert float(last.split()[1]) == pytest.approx(expected[i], abs=1e-6)
    np.testing.assert_allclose(rig.model.field_at_sample(), b, atol=0.2e-9)
    np.testing.assert_allclose(rig.coils.field(), b, atol=0.2e-9)
    np.testing.assert_allclose(rig.coils.currents(), expected, atol=1e-6)
    np.testing.assert_array_equal(rig.coils.field_setpoint(), b)


def test_ramp_never_exceeds_the_rate_limit():
    rig = Rig()
    rig.coils.set_field(np.array([0.0, 0.0, 60e-6]))
    for e in rig.emulators:
        steps = [(t, float(m.split()[1])) for t, m in e.sent("CURR ")]
        for (t0, i0), (t1, i1) in itertools.pairwise(steps[1:]):
            assert abs(i1 - i0) <= 1.0 * (t1 - t0) + 2e-6  # currents are sent to 1 µA
    # z needs about (60 + 49) µT / 51 µT/A ≈ 2.1 A: at 1 A/s that takes > 2 s on the clock
    assert rig.clock.now() >= 2.1


def test_without_ramp_the_currents_jump_in_one_step():
    rig = Rig()
    rig.coils.set_field(np.array([0.0, 0.0, 0.0]), ramp=False)
    assert all(len(e.sent("CURR ")) == 2 for e in rig.emulators)  # 0 A on switch-on, then target


@pytest.mark.parametrize(
    ("field", "match"),
    [
        ([0.0, 0.0, 101e-6], "beyond the limit 100 µT"),
        ([80e-6, 0.0, 61e-6], "beyond the limit 100 µT"),
        ([0.0, 0.0, float("nan")], "finite"),
    ],
)
def test_fields_beyond_the_limit_are_refused_and_nothing_is_sent(field, match):
    rig = Rig()
    before = [len(e.log) for e in rig.emulators]
    with pytest.raises(RangeError, match=match):
        rig.coils.set_field(np.array(field))
    assert [len(e.log) for e in rig.emulators] == before


def test_currents_beyond_the_limit_are_refused_and_nothing_is_sent():
    rig = Rig()
    rig.coils.max_current = 1.0
    before = [len(e.log) for e in rig.emulators]
    with pytest.raises(RangeError, match="coil z"):
        rig.coils.set_field(np.array([14e-6, 0.6e-6, 30e-6]))  # z needs ~1.55 A
    assert [len(e.log) for e in rig.emulators] == before


def test_zero_nulls_the_ambient_field():
    rig = Rig()
    rig.coils.set_field(np.array([50e-6, 0.0, 0.0]))
    rig.coils.zero()
    np.testing.assert_allclose(rig.model.field_at_sample(), 0.0, atol=0.2e-9)
    np.testing.assert_array_equal(rig.coils.field_setpoint(), 0.0)


def test_safe_state_off_ramps_down_and_switches_outputs_off():
    rig = Rig(safe_state="off")
    rig.coils.set_field(np.array([50e-6, 0.0, 0.0]))
    rig.coils.zero()
    assert [rig.model.output(i) for i in range(3)] == [False] * 3
    for e in rig.emulators:
        assert float(e.sent("CURR ")[-1][1].split()[1]) == 0.0
    np.testing.assert_allclose(rig.model.field_at_sample(), AMBIENT)


def test_a_supply_tripping_during_a_ramp_is_an_error_naming_its_axis():
    rig = Rig()
    inner = rig.emulators[1].inner
    original = inner.handle

    def trip_after_some_steps(message: str) -> str | None:
        if message.startswith("CURR ") and len(rig.emulators[1].sent("CURR ")) == 5:
            rig.model.trip(1, "overtemperature")
        return original(message)

    inner.handle = trip_after_some_steps
    with pytest.raises(InstrumentError, match="coil y") as info:
        rig.coils.set_field(np.array([0.0, 60e-6, 0.0]))
    assert "overtemperature" in str(info.value) or "found off" in str(info.value)
    # A tripped supply stays refused until the outputs are switched off.
    with pytest.raises(InstrumentError, match=r"coil y: .*tripped"):
        rig.coils.set_field(np.zeros(3))


def test_a_trip_whose_error_queue_reply_is_lost_is_still_said_as_a_trip():
    """The output found off is what matters: a lost reply to the error query read with it
    (not asked again: reading clears it) does not replace the trip with a link failure."""
    rig = Rig()
    rig.coils.set_field(np.array([0.0, 20e-6, 0.0]))
    rig.model.trip(1, "overtemperature")
    inner = rig.emulators[1].inner
    original = inner.handle
    inner.handle = lambda message: "garbage" if message == "SYST:ERR?" else original(message)
    with pytest.raises(InstrumentError, match=r"coil y: supply output found off \(tripped\)") \
            as info:
        rig.coils.set_field(np.zeros(3))
    assert "why is unknown: no valid reply to 'SYST:ERR?'" in str(info.value)


def _lose_checks(rig: Rig, axis: int, lost: set[int]) -> list[int]:
    """The replies to supply `axis`'s error queries numbered `lost` (from 1) are garbled."""
    inner = rig.emulators[axis].inner
    original, checks = inner.handle, [0]

    def handle(message: str) -> str | None:
        reply = original(message)
        if message == "SYST:ERR?":
            checks[0] += 1
            if checks[0] in lost:
                return "garbage"
        return reply

    inner.handle = handle
    return checks


@pytest.mark.parametrize("safe_state", ["zero", "off"])
def test_a_ramp_down_goes_on_past_one_error_check_whose_reply_is_lost(safe_state):
    """Each step's setpoint is absolute and the settling measures the current: one lost reply
    to a step's error check (not asked again: reading clears it) does not leave the coil at
    the current of that step."""
    rig = Rig(safe_state=safe_state)
    rig.coils.set_field(np.array([0.0, 60e-6, 0.0]))
    checks = _lose_checks(rig, 1, {5})
    rig.coils.zero()  # raises on what is not made safe
    assert checks[0] > 5
    safe = rig.coils.currents_for(np.zeros(3)) if safe_state == "zero" else np.zeros(3)
    np.testing.assert_allclose(rig.coils.currents(), safe, atol=5e-3)


def test_a_ramp_down_whose_error_checks_lose_two_replies_in_a_row_says_so():
    rig = Rig()
    rig.coils.set_field(np.array([0.0, 60e-6, 0.0]))
    _lose_checks(rig, 1, {5, 6})
    with pytest.raises(InstrumentError, match=r"coil y: checking 'CURR -?\d+\.\d{6}': no "
                                              r"valid reply to 'SYST:ERR\?'"):
        rig.coils.zero()


def test_a_lost_error_check_names_the_command_it_was_checking():
    """Whether the supply took a command is unknown when its check's reply is lost: the
    error says which command that was, as the stage's does."""
    rig = Rig()
    rig.coils.set_field(np.array([0.0, 60e-6, 0.0]))
    _lose_checks(rig, 1, {1, 2})  # the first step's current set, then its resend
    with pytest.raises(ReplyUnknown) as info:
        rig.coils.set_field(np.array([0.0, 20e-6, 0.0]))
    sent = [m for _, m in rig.emulators[1].sent("CURR ")]
    assert sent[-1] == sent[-2]  # sent again once, as its check's reply was lost
    assert str(info.value).startswith(
        f"coil y: checking {sent[-1]!r}: no valid reply to 'SYST:ERR?'"), info.value


def test_zero_after_a_trip_still_brings_the_other_axes_to_the_safe_state():
    rig = Rig()
    rig.coils.set_field(np.array([40e-6, 40e-6, 40e-6]))
    rig.model.trip(0)
    with pytest.raises(InstrumentError, match="coil x") as info:
        rig.coils.zero()
    assert "coil y" not in str(info.value) and "coil z" not in str(info.value)
    null = np.linalg.solve(C, -AMBIENT)
    np.testing.assert_allclose(rig.model.currents()[1:], null[1:], atol=2e-6)
    # Outputs off re-arms the tripped supply; then fields can be set again.
    rig.coils.output_off()
    rig.coils.set_field(np.zeros(3))
    np.testing.assert_allclose(rig.model.field_at_sample(), 0.0, atol=0.2e-9)


def test_output_off_tries_every_axis_when_one_link_is_lost():
    rig = Rig()
    rig.coils.set_field(np.array([20e-6, 20e-6, 20e-6]))
    rig.faults[2].disconnected = True
    with pytest.raises(InstrumentError, match=r"coil z: .*connection lost"):
        rig.coils.output_off()
    assert [rig.model.output(i) for i in range(2)] == [False, False]
    assert rig.model.currents()[:2] == pytest.approx([0.0, 0.0])


def _garble_output_queries(rig: Rig, axis: int, first: int | None = None) -> None:
    """The replies of supply `axis` to 'OUTP?' garbled: the `first` ones, or all (None)."""
    inner = rig.emulators[axis].inner
    original, asked = inner.handle, [0]

    def handle(message: str) -> str | None:
        reply = original(message)
        if message == "OUTP?":
            asked[0] += 1
            if first is None or asked[0] <= first:
                return "garbage"
        return reply

    inner.handle = handle


@pytest.mark.parametrize("lost", ["link", "output_query"])
def test_zero_says_whether_a_supply_whose_enable_failed_was_switched_off(lost):
    """A supply on whose enable fails (its output query unanswered) fails its ramp-down too,
    and is switched off where it stands, or not: its failure, said once, says which (the
    first failure of a coil alone was kept, which did not)."""
    rig = Rig()
    rig.coils.set_field(np.array([0.0, 0.0, 40e-6]))
    if lost == "link":
        rig.faults[2].disconnected = True
    else:
        _garble_output_queries(rig, 2)
    with pytest.raises(InstrumentError) as info:
        rig.coils.zero()
    said = str(info.value)
    assert said.count("coil z:") == 1, said
    if lost == "link":
        assert "; NOT switched off at " in said and "the coil may still be energised" in said
        assert rig.model.output(2)
    else:
        assert "; switched off at " in said and "the switch-off confirmed" in said, said
        assert not rig.model.output(2)
    assert "coil x" not in said and "coil y" not in said


def test_zero_says_a_supply_whose_enable_failed_and_ramped_down_was_not_switched_off():
    """The enable's output query unanswered, the ramp-down's answered: the supply is ramped
    with the others, its output on, as its failure says."""
    rig = Rig()
    rig.coils.set_field(np.array([0.0, 0.0, 40e-6]))
    _garble_output_queries(rig, 2, first=3)  # the enable's query, asked 3 times (2 retries)
    with pytest.raises(InstrumentError) as info:
        rig.coils.zero()
    said = str(info.value)
    assert said.count("coil z:") == 1, said
    assert "; not switched off: its output on, ramped with the others" in said, said
    assert rig.model.output(2)
    null = np.linalg.solve(C, -AMBIENT)
    np.testing.assert_allclose(rig.model.currents(), null, atol=2e-6)


def _lose_checks_of(rig: Rig, axis: int, command: str) -> None:
    """The replies of supply `axis` to the 'SYST:ERR?' that checks each `command` lost (the
    command itself carried out)."""
    inner = rig.emulators[axis].inner
    original, last = inner.handle, [""]

    def handle(message: str) -> str | None:
        reply = original(message)
        checked, last[0] = last[0], message
        return None if message == "SYST:ERR?" and checked == command else reply

    inner.handle = handle


def test_zero_switches_off_a_supply_whose_switch_on_was_not_confirmed():
    """The switch-on of zero's enable arrives, its check's reply is lost (twice): the supply
    may be on, so it is switched off, and its failure says so (it was taken for off, left
    out of the ramp-down, and nothing said what became of it)."""
    rig = Rig()
    assert not rig.model.output(2)
    _lose_checks_of(rig, 2, "OUTP ON")
    with pytest.raises(InstrumentError) as info:
        rig.coils.zero()
    said = str(info.value)
    assert said.count("coil z:") == 1, said
    assert "checking 'OUTP ON'" in said, said
    assert ("; switched off where it was found (at 0.0000 A, its switch-on sent but not "
            "confirmed), the switch-off confirmed") in said, said
    assert not rig.model.output(2)
    assert "coil x" not in said and "coil y" not in said
    null = np.linalg.solve(C, -AMBIENT)
    np.testing.assert_allclose(rig.model.currents()[:2], null[:2], atol=2e-6)


def test_zero_switches_off_a_supply_whose_switch_on_met_the_deadline():
    """The make-safe path's deadline passes while zero's switch-on of coil z is checked
    (its check's reply lost, so the switch-on is not sent again): the supply may be on,
    and nothing after zero switches it off, so zero does, and says so (it was skipped as
    one the ramp-down switches off, which leaves out a supply it does not know is on)."""
    rig = Rig()
    _lose_checks_of(rig, 2, "OUTP ON")
    with loss_budget.making_safe(5, clock=rig.clock, deadline_s=1.0), \
            pytest.raises(InstrumentError) as info:
        rig.coils.zero()
    said = str(info.value)
    assert said.count("coil z:") == 1, said
    assert "deadline reached before 'OUTP ON'" in said, said
    assert ("switched off where it was found (at 0.0000 A, its switch-on sent but not "
            "confirmed; deadline reached), the switch-off confirmed") in said, said
    assert not rig.model.output(2)


def test_supply_error_after_a_command_names_the_axis():
    rig = Rig()
    rig.coils.set_field(np.zeros(3))
    rig.emulators[0].inner.errors.append((-222, "Data out of range"))  # x reports an error
    with pytest.raises(InstrumentError, match=r"coil x: supply reports error -222"):
        rig.coils.set_field(np.array([60e-6, 0.0, 0.0]))


def test_compliance_limit_is_detected_from_the_measured_current():
    rig = Rig(voltage_limit=2.0, model_kw={"resistance": 2.0})  # caps |I| at 1 A
    with pytest.raises(InstrumentError, match=r"coil z measures 1 A, set to 1\.19"):
        rig.coils.set_field(np.array([14e-6, 0.6e-6, 12e-6]))


def test_link_faults_are_retried():
    """A reading that is lost or garbled is asked again (SYST:ERR?, which clears what it
    reads, is not: test_link and test_drivers_over_tcp)."""
    rig = Rig()
    rig.faults[0].garbage = 1
    rig.faults[1].timeouts = 2
    np.testing.assert_allclose(rig.coils.currents(), 0.0, atol=1e-9)  # MEAS:CURR? retried
    rig.coils.set_field(np.array([10e-6, 10e-6, 10e-6]))
    np.testing.assert_allclose(rig.model.field_at_sample(), [10e-6] * 3, atol=0.2e-9)


def test_identity_limits_and_snapshot():
    rig = Rig()
    ident = rig.coils.identify()
    assert ident.vendor == "KEPCO" and ident.serial == "E4711 / E4712 / E4713"
    assert rig.coils.limits() == {
        "max_field_T": 100e-6,
        "max_current_A": 3.0,
        "max_ramp_A_per_s": 1.0,
    }
    snap = rig.coils.snapshot()
    np.testing.assert_allclose(snap["field_T"], AMBIENT)
    assert snap["outputs_on"] == [False, False, False]


def test_replies_parsed_strictly():
    assert parse_scpi_error('-222,"Data out of range"') == (-222, "Data out of range")
    assert parse_kepco_idn("KEPCO,BOP 20-5M,E1,1.66").model == "BOP 20-5M"
    for bad in ("", "No error", 'x,"y"'):
        with pytest.raises(ProtocolError):
            parse_scpi_error(bad)
    with pytest.raises(ProtocolError):
        parse_kepco_idn("KEPCO BOP")


def test_emulator_scpi_long_forms_and_error_queue():
    clock = VirtualClock()
    emu = KepcoBOPEmulator(CoilModel(clock, calibration=C), 2)
    assert emu.handle("SOURce:FUNCtion:MODE CURRent") is None
    assert emu.handle("func:mode?") == "1"  # 0 voltage mode, 1 current mode
    emu.handle("VOLT 10;CURR:LEV:IMM 1.5;:OUTP ON")  # compliance 10 V, 1.5 A
    clock.advance(1.0)
    assert float(emu.handle("MEAS:CURR?")) == pytest.approx(1.5)
    emu.handle("CURR 7")
    emu.handle("NOPE")
    assert emu.handle("SYST:ERR?") == '-222,"Data out of range"'
    assert emu.handle("SYST:ERR?") == '-113,"Undefined header"'
    assert emu.handle("SYST:ERR?") == '0,"No error"'


def test_emulator_takes_every_optional_node_the_bop_manual_lists():
    """[SOURce:]CURRent[:LEVel][:IMMediate][:AMPlitude] and MEASure[:SCALar]:CURRent[:DC]?,
    long or short: a client that spells them out is not refused (it was: -113)."""
    emu = KepcoBOPEmulator(CoilModel(VirtualClock(), calibration=C), 0)
    emu.handle("SOURce:FUNCtion:MODE CURRent;:sour:volt:lev:imm:amp 10")
    emu.handle("SOUR:CURR:LEV:IMM:AMP 0.25")
    assert emu.handle("SOURce:CURRent:LEVel:IMMediate:AMPlitude?") == "2.500000E-01"
    assert emu.handle("MEAS:SCAL:CURR:DC?;:MEASure:SCALar:VOLTage:DC?") == \
        "0.000000E+00;0.000000E+00"  # the output off
    assert emu.handle("VOLT?;SYST:ERR?") == '1.000000E+01;0,"No error"'


@pytest.mark.parametrize("command", ["CURR:DC 1", "SOUR:DC:CURR 1", "AMP:CURR 1",
                                     "CURR:AMP:LEV 1", "SOUR:SOUR:CURR 1", "SOUR:OUTP ON",
                                     "OUTP:STAT:DC ON", "SCAL:MEAS:CURR?", "MEAS:CURR:SCAL?"])
def test_emulator_refuses_an_optional_node_where_the_bop_manual_has_none(command):
    """An optional node counts only where the manual puts it; elsewhere the header is
    undefined (-113) and nothing changes, as on the supply: an emulator that took `CURR:DC 1`
    would pass a driver that the real BOP refuses."""
    emu = KepcoBOPEmulator(CoilModel(VirtualClock(), calibration=C), 0)
    emu.handle("FUNC:MODE CURR;:CURR 0.5")
    assert emu.handle(command) is None
    assert emu.handle("SYST:ERR?") == '-113,"Undefined header"'
    assert emu.handle("CURR?;:OUTP?") == "5.000000E-01;0"


def test_emulator_reads_each_header_after_a_semicolon_from_the_path_before_it():
    """The BOP manual ("Program message syntax summary"): `meas:volt?;curr?` reads the output
    voltage and current, `meas:volt?;:curr?` the voltage and the programmed current; a header
    after a ';' alone is under the last one's path, so `FUNC:MODE CURR;CURR 1` is refused."""
    emu = KepcoBOPEmulator(CoilModel(VirtualClock(), calibration=C), 0)
    emu.handle("FUNC:MODE CURR;:VOLT 10;CURR 0.5")  # the output off: nothing flows
    assert emu.handle("MEAS:VOLT?;CURR?") == "0.000000E+00;0.000000E+00"
    assert emu.handle("MEAS:VOLT?;:CURR?") == "0.000000E+00;5.000000E-01"
    emu.handle("FUNC:MODE CURR;CURR 1")
    assert emu.handle("SYST:ERR?;:CURR?") == '-113,"Undefined header";5.000000E-01'
    assert emu.handle("SYST:ERR?") == '0,"No error"'


@pytest.mark.parametrize("command", ["CURR MIN", "CURR MAX", "VOLT MIN", "VOLT max"])
def test_emulator_refuses_min_and_max_arguments_and_changes_nothing(command):
    """MIN and MAX are not emulated: each is refused with an error queued, never taken
    silently (MIN once left the setting as it was with no error) nor misreported as a value
    out of range (MAX)."""
    clock = VirtualClock()
    emu = KepcoBOPEmulator(CoilModel(clock, calibration=C), 0)
    emu.handle("FUNC:MODE CURR;:VOLT 10;CURR 1.5")
    emu.handle(command)
    assert emu.handle("SYST:ERR?") == '-224,"Illegal parameter value"'
    assert emu.handle("SYST:ERR?") == '0,"No error"'
    assert float(emu.handle("CURR?")) == pytest.approx(1.5)
    assert float(emu.handle("VOLT?")) == pytest.approx(10.0)


def test_emulator_voltage_mode_drives_v_over_r_within_the_current_limit_both_polarities():
    clock = VirtualClock()
    model = CoilModel(clock, calibration=C, resistance=4.0)
    emu = KepcoBOPEmulator(model, 0, model="BOP 20-10M")
    assert emu.handle("FUNC:MODE?") == "0"  # voltage mode after power-up
    emu.handle("VOLT -6;CURR 2;OUTP ON")
    clock.advance(1.0)
    assert float(emu.handle("MEAS:CURR?")) == pytest.approx(-1.5)  # -6 V / 4 Ω
    assert float(emu.handle("MEAS:VOLT?")) == pytest.approx(-6.0)
    emu.handle("VOLT 12")  # 3 A wanted, the current limit holds it at 2 A
    clock.advance(1.0)
    assert float(emu.handle("MEAS:CURR?")) == pytest.approx(2.0)
    emu.handle("VOLT 21")  # beyond the BOP 20-10's ±20 V
    assert emu.handle("SYST:ERR?") == '-222,"Data out of range"'
    emu.handle("FUNC:MODE CURR;:VOLT 2;CURR -1")  # compliance 2 V: at most 0.5 A into 4 Ω
    clock.advance(1.0)
    assert float(emu.handle("MEAS:CURR?")) == pytest.approx(-0.5)


def test_emulator_common_commands_and_status_registers():
    clock = VirtualClock()
    emu = KepcoBOPEmulator(CoilModel(clock, calibration=C), 1)
    assert emu.handle("*OPC?") == "1" and emu.handle("*TST?") == "0"
    assert emu.handle("*OPT?") == "0" and emu.handle("*WAI") is None
    assert emu.handle("*STB?") == "0"
    emu.handle("*ESE 48;*SRE 32")
    assert emu.handle("*ESE?;*SRE?") == "48;32"
    emu.handle("BOGUS")  # -113: a command error, ESR bit 5
    assert emu.handle("*STB?") == str(4 | 32 | 64)  # error queued, ESB, and the summary MSS
    assert emu.handle("*ESR?") == "32"
    assert emu.handle("*ESR?") == "0"  # reading clears it
    emu.handle("*OPC")
    assert emu.handle("*ESR?") == "1"
    for _ in range(20):
        emu.handle("CURR 99")
    codes = [emu.handle("SYST:ERR?") for _ in range(17)]
    assert codes[0] == '-113,"Undefined header"'
    assert codes[15] == '-350,"Queue overflow"' and codes[16] == '0,"No error"'  # 16 deep
    emu.handle("*RST")
    assert emu.handle("FUNC:MODE?") == "0" and emu.handle("OUTP?") == "0"


def test_a_profile_current_beyond_the_supplys_rating_is_refused_at_connect():
    clock = VirtualClock()
    model = CoilModel(clock, calibration=C, ambient=AMBIENT)
    transports = [
        EmulatorTransport(KepcoBOPEmulator(model, i, model="BOP 20-2M" if i == 1 else "BOP 20-5M"),
                          clock=clock)
        for i in range(3)
    ]  # fmt: skip
    with pytest.raises(InputError) as err:
        KepcoBOPCoils(transports, calibration=C, ambient=AMBIENT, max_current=3.0,
                      max_ramp_rate=1.0, max_field=100e-6, clock=clock)  # fmt: skip
    message = str(err.value)
    assert "coils.max_current_A" in message and "3 A" in message
    assert "coil y" in message and "BOP 20-2M" in message and "±2 A" in message
    assert not any(model.output(i) for i in range(3))


def test_compliance_is_never_set_beyond_the_rated_voltage():
    clock = VirtualClock()
    model = CoilModel(clock, calibration=C, ambient=AMBIENT)
    emulators = [KepcoBOPEmulator(model, i, model="BOP 10-5M") for i in range(3)]
    coils = KepcoBOPCoils([EmulatorTransport(e, clock=clock) for e in emulators],
                          calibration=C, ambient=AMBIENT, max_current=3.0, max_ramp_rate=1.0,
                          max_field=100e-6, clock=clock)  # fmt: skip
    assert [e.voltage_setting for e in emulators] == [10.0] * 3  # not the default 20 V
    snapshot = coils.snapshot()
    assert snapshot["rated_voltages_V"] == [10.0] * 3
    assert snapshot["rated_currents_A"] == [5.0] * 3


def test_a_large_supply_left_beyond_the_default_bound_is_ramped_down_each(tmp_path):
    """Made safe one by one (one supply lost), a BOP 6-125 left at 60 A from its front panel
    is read against its own rating from *IDN? (±125 A), not the largest a profile may name
    (50 A, read back to 55 A): it is ramped down and switched off, not left energised."""
    from dataclasses import replace

    from smm_daq.instruments.profile import load_profile

    clock = VirtualClock()
    model = CoilModel(clock, calibration=C, resistance=0.05, rating=125.0)
    emulators = [KepcoBOPEmulator(model, i, model="BOP 6-125M") for i in range(3)]
    for emulator, amps in zip(emulators, (0, 60, 0), strict=True):
        emulator.handle(f"FUNC:MODE CURR;:VOLT 6;CURR {amps};OUTP ON")
    coils = load_profile(None).coils
    coils = replace(coils, addresses=("a", "b", "c"))
    by_address = dict(zip(coils.addresses, emulators, strict=True))
    results = KepcoBOPCoils.ramp_down_each(
        coils, clock=clock,
        open_transport=lambda address, link: EmulatorTransport(by_address[address],
                                                               clock=clock))
    assert [safe for _, safe, _ in results] == [True, True, True], results
    assert float(emulators[1].handle("CURR?")) == 0.0
    assert emulators[1].handle("OUTP?") == "0"


def _left_in_voltage_mode(settings: str) -> tuple[VirtualClock, CoilModel, list[Recorder]]:
    """Three supplies as their last user left them: `settings` sent to each, output on."""
    clock = VirtualClock()
    model = CoilModel(clock, calibration=C, ambient=AMBIENT, resolution=1e-6, resistance=2.0)
    emulators = [Recorder(KepcoBOPEmulator(model, i), clock) for i in range(3)]
    for e in emulators:
        e.inner.handle(settings + ";OUTP ON")
    clock.advance(1.0)
    return clock, model, emulators


def _connect(clock: VirtualClock, emulators: list[Recorder]) -> KepcoBOPCoils:
    return KepcoBOPCoils([EmulatorTransport(e, clock=clock) for e in emulators],
                         calibration=C, ambient=AMBIENT, max_current=3.0, max_ramp_rate=1.0,
                         max_field=100e-6, clock=clock)


def test_connect_never_steps_a_supply_in_voltage_mode_to_its_old_current_setpoint():
    """0 A in voltage mode, 2 A left as the current-mode setpoint: switching the mode with
    the output on would put 2 A (100 µT) on the coils at once."""
    clock, model, emulators = _left_in_voltage_mode(
        "FUNC:MODE CURR;:VOLT 20;CURR 2;FUNC:MODE VOLT;:VOLT 0")
    assert np.all(model.currents(clock.now()) == 0.0)
    coils = _connect(clock, emulators)
    clock.advance(1.0)
    np.testing.assert_allclose(model.currents(clock.now()), 0.0, atol=1e-9)
    assert [model.output(i) for i in range(3)] == [False] * 3
    np.testing.assert_allclose(coils.field_setpoint(), AMBIENT)  # outputs off


def test_connect_ramps_a_supply_in_voltage_mode_down_within_the_rate_before_switching():
    clock, model, emulators = _left_in_voltage_mode("VOLT 1.6")  # 0.8 A into 2 Ω
    np.testing.assert_allclose(model.currents(clock.now()), 0.8, atol=1e-6)
    start = clock.now()
    _connect(clock, emulators)
    for e in emulators:
        messages = [m for _, m, _ in e.log]
        switch = messages.index("FUNC:MODE CURR")
        assert "OUTP OFF" in messages[:switch]  # the mode changes with the output off
        steps = [(t, float(m.split()[1])) for t, m, _ in e.log[:switch]
                 if m.startswith("VOLT ")]
        times, volts = zip(*[(start, 1.6), *steps], strict=True)
        assert volts[-1] == 0.0 and len(volts) > 2
        amps_per_s = -np.diff(volts) / 2.0 / np.diff(times)
        assert np.all(amps_per_s > 0) and np.all(amps_per_s <= 1.0 * (1 + 1e-9))
    np.testing.assert_allclose(model.currents(clock.now()), 0.0, atol=1e-9)
