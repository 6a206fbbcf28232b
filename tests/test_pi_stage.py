"""PI GCS 2.0 stage driver: command/response pairs on a scripted link, then against the emulator."""

from __future__ import annotations

import numpy as np
import pytest
from instrument_fakes import ScriptedTransport

from drivers.pi_gcs import PIGCSStage, parse_gcs_idn
from simulators.emulator import EmulatorTransport, Faults
from simulators.pi_emulator import C884, E727, PIGCSEmulator
from simulators.stage_model import StageModel
from smm_daq.clock import VirtualClock
from smm_daq.errors import (
    ConnectStopped,
    InputError,
    InstrumentError,
    InstrumentLost,
    InstrumentTimeout,
    ProtocolError,
    RangeError,
)
from smm_daq.instruments import connect_stop
from smm_daq.instruments.connect_stop import ConnectStop

TRAVEL = np.array([[0.0, 25e-3], [0.0, 25e-3], [0.0, 10e-3]])


class LineTransport(ScriptedTransport):
    """A scripted link that answers one line per read, as a line-terminated serial or VISA link
    does: a multi-line GCS reply arrives over several reads."""

    def write(self, message: str) -> None:
        pending = len(self._pending)
        super().write(message)
        if len(self._pending) > pending:
            self._pending.extend(self._pending.pop().split("\n"))


def help_reply(*commands: str) -> str:
    """An HLP? reply listing `commands` (title line, one line each, end line)."""
    lines = ["The following commands are valid:", *(f"{c} some text" for c in commands)]
    return " \n".join([*lines, "end of help"])


BASIC = ("*IDN?", "SAI?", "SVO", "MOV", "POS?", "ONT?", "TMN?", "TMX?", "VEL", "VEL?", "STP",
         "ERR?")  # fmt: skip
HELP = help_reply(*BASIC, "PUN?")
CONNECT = [
    ("ERR?", "0"), ("HLP?", HELP),
    ("SAI?", "1 \n2 \n3 \n4"),
    ("PUN? 1 2 3", "1=mm \n2=mm \n3=mm"),
    ("TMN? 1 2 3", "1=-1.0000000 \n2=0.0000000 \n3=0.0000000"),
    ("TMX? 1 2 3", "1=30.0000000 \n2=25.0000000 \n3=10.0000000"),
    ("SVO 1 1 2 1 3 1", None),
    ("ERR?", "0"),
    ("VEL 1 2 2 2 3 2", None),
    ("ERR?", "0"),
]


def scripted(script, *, axes=("1", "2", "3"), signs=(1, 1, 1), clock=None, travel=TRAVEL, **kw):
    t = LineTransport(script)
    stage = PIGCSStage(
        t, axes=axes, axis_sign=signs, travel=travel, velocity=2e-3,
        clock=clock or VirtualClock(), **kw,
    )  # fmt: skip
    return stage, t


def test_connect_asks_commands_axes_units_then_servos_on_and_checks_the_travel():
    stage, t = scripted(CONNECT)
    assert not t.script
    np.testing.assert_allclose(stage.limits(), TRAVEL)  # within the controller's travel
    assert stage.units == ["mm", "mm", "mm"]


def test_a_profile_travel_beyond_the_controllers_is_refused_naming_key_value_and_limit():
    script = [*CONNECT[:5], ("TMX? 1 2 3", "1=30.0000000 \n2=20.0000000 \n3=10.0000000")]
    with pytest.raises(InputError) as err:
        scripted(script)  # refused before the servos go on: nothing can move
    message = str(err.value)
    assert "stage.travel_um" in message
    assert "y [0.0, 25000.0] µm" in message and "[0.0, 20000.0] µm (TMN?/TMX?)" in message


def test_an_E727_in_micrometres_gets_every_position_and_velocity_scaled_by_1000():
    script = [
        ("ERR?", "0"), ("HLP?", HELP),
        ("SAI?", "1 \n2 \n3"),
        ("PUN? 1 2 3", "1=\u00b5m \n2=\u00b5m \n3=\u00b5m"),
        ("TMN? 1 2 3", "1=0.0000000 \n2=0.0000000 \n3=0.0000000"),
        ("TMX? 1 2 3", "1=1800.0000000 \n2=1800.0000000 \n3=400.0000000"),
        ("SVO 1 1 2 1 3 1", None),
        ("ERR?", "0"),
        ("VEL 1 2000 2 2000 3 2000", None),
        ("ERR?", "0"),
        ("POS? 1 2 3", "1=0.0 \n2=0.0 \n3=100.0"),
        ("MOV 1 1234.5678 2 10", None),
        ("ERR?", "0"),
        ("POS? 1 2 3", "1=1234.5678 \n2=10.0 \n3=100.0"),
    ]
    travel = np.array([[0.0, 1.8e-3], [0.0, 1.8e-3], [0.0, 0.4e-3]])
    stage, t = scripted(script, travel=travel)
    stage.move_to(1.2345678e-3, 10e-6, wait=False)
    np.testing.assert_allclose(stage.position(), [1.2345678e-3, 10e-6, 100e-6], atol=1e-12)
    assert not t.script


def test_without_PUN_the_unit_parameter_is_read_with_SPA():
    script = [
        ("ERR?", "0"), ("HLP?", help_reply(*BASIC, "SPA?")),
        ("SAI?", "1 \n2 \n3"),
        ("SPA? 1 0x07000601 2 0x07000601 3 0x07000601",
         "1 0x07000601=um \n2 0x07000601=um \n3 0x07000601=um"),
        ("TMN? 1 2 3", "1=0 \n2=0 \n3=0"),
        ("TMX? 1 2 3", "1=30000 \n2=30000 \n3=10000"),
        *CONNECT[6:8],
        ("VEL 1 2000 2 2000 3 2000", None),
        ("ERR?", "0"),
    ]  # fmt: skip
    stage, t = scripted(script)
    assert stage.units == ["um", "um", "um"] and not t.script


@pytest.mark.parametrize(
    ("help_text", "reply", "match"),
    [
        (HELP, "1=mm \n2=deg \n3=mm", r"axis 2 in 'deg': not a length unit"),
        (help_reply(*BASIC), None, r"neither PUN\? nor SPA\?"),
    ],
)
def test_an_axis_in_an_unknown_unit_or_no_unit_at_all_is_refused(help_text, reply, match):
    script = [("ERR?", "0"), ("HLP?", help_text), ("SAI?", "1 \n2 \n3")]
    if reply is not None:
        script.append(("PUN? 1 2 3", reply))
    with pytest.raises(InstrumentError, match=match):
        scripted(script)


REFERENCED_HELP = help_reply(*BASIC, "PUN?", "FRF", "FRF?", "RON")


def test_unreferenced_axes_are_refused_unless_the_profile_lets_the_driver_reference_them():
    head = [("ERR?", "0"), ("HLP?", REFERENCED_HELP), *CONNECT[2:],
            ("FRF? 1 2 3", "1=1 \n2=0 \n3=0")]
    with pytest.raises(InstrumentError, match=r"\['2', '3'\] are not referenced.*"
                                              r"reference_on_connect"):
        scripted(head)
    clock = VirtualClock()
    script = [
        *head,
        ("RON 2 1 3 1", None),
        ("ERR?", "0"),
        ("FRF 2 3", None),
        ("ERR?", "0"),
        ("FRF? 1 2 3", "1=1 \n2=0 \n3=0"),
        ("FRF? 1 2 3", "1=1 \n2=1 \n3=1"),
    ]
    _, t = scripted(script, clock=clock, reference_on_connect=True)
    assert not t.script and clock.now() > 0  # waited on the clock between polls


def test_axes_and_signs_map_the_sample_frame_onto_controller_axes():
    script = [
        ("ERR?", "0"), ("HLP?", HELP),
        ("SAI?", "A \nB \nC"),
        ("PUN? B A C", "B=mm \nA=mm \nC=mm"),
        ("TMN? B A C", "B=0.0000000 \nA=-25.0000000 \nC=0.0000000"),
        ("TMX? B A C", "B=25.0000000 \nA=0.0000000 \nC=10.0000000"),
        ("SVO B 1 A 1 C 1", None),
        ("ERR?", "0"),
        ("VEL B 2 A 2 C 2", None),
        ("ERR?", "0"),
        ("POS? B A C", "B=0.0000000 \nA=0.0000000 \nC=0.0000000"),
        ("MOV B 1.5 A -2.25", None),
        ("ERR?", "0"),
        ("POS? B A C", "B=1.5000000 \nA=-2.2500000 \nC=0.0000000"),
    ]
    stage, t = scripted(script, axes=("B", "A", "C"), signs=(1, -1, 1))
    np.testing.assert_allclose(stage.limits(), TRAVEL)
    stage.move_to(1.5e-3, 2.25e-3, wait=False)
    np.testing.assert_allclose(stage.position(), [1.5e-3, 2.25e-3, 0.0])
    assert not t.script


def test_move_outside_travel_is_refused_before_anything_is_sent():
    stage, t = scripted(CONNECT)
    with pytest.raises(RangeError, match=r"y = 26000\.000 µm"):
        stage.move_to(1e-3, 26e-3)
    with pytest.raises(RangeError):
        stage.move_to(float("nan"), 0.0)
    assert len(t.sent) == len(CONNECT)


def test_controller_error_after_a_command_names_the_code_and_its_meaning():
    stage, _ = scripted(
        [
            *CONNECT,
            ("POS? 1 2 3", "1=0.0 \n2=0.0 \n3=0.0"),
            ("MOV 1 1 2 1", None),
            ("ERR?", "5"),
        ]
    )
    with pytest.raises(InstrumentError, match=r"PI error 5 \(.*servo off\)"):
        stage.move_to(1e-3, 1e-3)


def test_move_waits_polling_on_target_through_the_clock():
    clock = VirtualClock()
    stage, t = scripted(
        [
            *CONNECT,
            ("POS? 1 2 3", "1=0.0 \n2=0.0 \n3=0.0"),
            ("MOV 1 4 2 1", None),
            ("ERR?", "0"),
            ("ONT? 1 2 3", "1=0 \n2=1 \n3=1"),
            ("ONT? 1 2 3", "1=1 \n2=1 \n3=1"),
        ],
        clock=clock,
    )
    stage.move_to(4e-3, 1e-3)
    assert not t.script
    assert clock.now() >= 2.0  # 4 mm at 2 mm/s, waited on the injected clock


def test_garbled_multiline_reply_is_retried_after_a_device_clear():
    stage, t = scripted(
        [
            *CONNECT,
            ("POS? 1 2 3", "1=1.0 \n2=zz \n3=0.0"),
            ("POS? 1 2 3", "1=1.0 \n2=2.0"),  # an axis missing
            ("POS? 1 2 3", "1=1.0 \n2=2.0 \n3=3.0"),
        ]
    )
    np.testing.assert_allclose(stage.position(), [1e-3, 2e-3, 3e-3])
    assert t.clears == 2


def test_stop_accepts_the_stopped_by_command_error():
    stage, t = scripted([*CONNECT, ("STP", None), ("ERR?", "10")])
    stage.stop()
    assert t.sent[-2:] == ["STP", "ERR?"]


def test_a_stop_whose_check_lost_its_reply_is_sent_again_and_checked():
    """ERR? is not asked again (reading clears it): the stop, harmless twice, is; a stop
    the safety path made is not reported as failed for one lost reply."""
    stage, t = scripted([*CONNECT, ("STP", None), ("ERR?", "garbage"), ("STP", None),
                         ("ERR?", "10")])
    stage.stop()
    assert not t.script
    assert t.sent[-4:] == ["STP", "ERR?", "STP", "ERR?"]


def test_stop_is_the_single_byte_24_where_the_controller_has_it():
    script = [("ERR?", "0"), ("HLP?", help_reply(*BASIC, "PUN?", "#24")), *CONNECT[2:],
              ("\x18", None),
              ("ERR?", "10")]  # fmt: skip
    stage, t = scripted(script)
    stage.stop()
    assert not t.script


def test_emulated_stop_by_24_halts_a_move_midway():
    stage, model, _, clock = emulated("E-727")
    stage.move_to(1.5e-3, 0.0, wait=False)
    clock.advance(0.25)
    stage.stop()
    x = model.position("1")
    clock.advance(5.0)
    assert model.position("1") == x == pytest.approx(0.5e-3, abs=1e-9)


def test_velocity_setting_is_range_checked_before_sending():
    stage, t = scripted(CONNECT)
    for bad in (0.0, -1e-3, 1.0, float("inf")):
        with pytest.raises(RangeError):
            stage.set_velocity(bad)
    assert len(t.sent) == len(CONNECT)


def test_identity_parsed_strictly():
    ident = parse_gcs_idn("(c)2015 Physik Instrumente (PI) GmbH & Co. KG, E-727, 0116044408, 13.21")
    assert (ident.vendor, ident.model, ident.serial) == (
        "Physik Instrumente (PI) GmbH & Co. KG",
        "E-727",
        "0116044408",
    )
    with pytest.raises(ProtocolError):
        parse_gcs_idn("E-727")


class LeapingClock(VirtualClock):
    """Each wait leaps 1000 s: a poll loop reaches its deadline in a few polls."""

    def sleep(self, seconds: float) -> None:
        super().sleep(1000.0)


def test_the_reference_velocity_is_asked_for_only_where_the_controller_lists_it():
    """`SPA?` for a parameter the controller lacks gets no reply at all: where `HPA?` does not
    list 0x50 the timeout is reckoned from VEL (2 × 31 mm / 2 mm/s + 10 s); where it does,
    from 0x50, the slowest of the axes referenced (2 × 31 mm / 0.05 mm/s + 10 s)."""
    listed = help_reply(*BASIC, "PUN?", "FRF", "FRF?", "RON", "SPA?", "HPA?")
    head = [("ERR?", "0"), ("HLP?", listed), *CONNECT[2:], ("FRF? 1 2 3", "1=1 \n2=0 \n3=0")]
    without = ("The following parameters are valid: \n0x00000030=\t0\t3\tFLOAT\taxis\tRange "
               "Limit min \nend of help")
    start = [("RON 2 1 3 1", None), ("ERR?", "0"), ("FRF 2 3", None), ("ERR?", "0")]
    poll = ("FRF? 1 2 3", "1=1 \n2=0 \n3=0")
    stop = [("STP", None), ("ERR?", "10")]
    with pytest.raises(InstrumentTimeout, match=r"within 41 s \(reference velocity 2 mm/s\)"):
        scripted([*head, ("HPA?", without), *start, poll, poll, *stop], clock=LeapingClock(),
                 reference_on_connect=True)
    with_ref = without.replace(" \nend", " \n0x00000050=\t0\t3\tFLOAT\taxis\tVelocity For "
                                         "Reference Moves \nend")
    slow = ("SPA? 2 0x00000050 3 0x00000050", "2 0x00000050=0.05 \n3 0x00000050=0.5")
    with pytest.raises(InstrumentTimeout,
                       match=r"within 1\.25e\+03 s \(reference velocity 0\.05 mm/s\)"):
        scripted([*head, ("HPA?", with_ref), slow, *start, poll, poll, poll, *stop],
                 clock=LeapingClock(), reference_on_connect=True)


def test_a_reference_move_that_times_out_is_stopped_by_24_as_the_operators_stop_is():
    """A reference move that outlasts its timeout may have left the controller's line parser
    busy: the stop is the single byte #24 where the controller lists it (acted on at once,
    like the operator's stop during a connect), sent once, never the line command STP."""
    listed = help_reply(*BASIC, "PUN?", "FRF", "FRF?", "RON", "#24")
    poll = ("FRF? 1 2 3", "1=1 \n2=0 \n3=0")
    script = [("ERR?", "0"), ("HLP?", listed), *CONNECT[2:], poll,
              ("RON 2 1 3 1", None), ("ERR?", "0"), ("FRF 2 3", None), ("ERR?", "0"),
              poll, poll, ("\x18", None), ("ERR?", "10")]
    t = LineTransport(script)
    with pytest.raises(InstrumentTimeout, match=r"within 41 s .*; stopped \(#24\)"):
        PIGCSStage(t, axes=("1", "2", "3"), axis_sign=(1, 1, 1), travel=TRAVEL, velocity=2e-3,
                   clock=LeapingClock(), reference_on_connect=True)
    assert not t.script and t.closed
    assert "STP" not in t.sent and t.sent.count("\x18") == 1


# -- against the emulators: an E-727 in µm (flexure travel) and a C-884 in mm (referenced) ----

FINE = np.array([[0.0, 1.8e-3], [0.0, 1.8e-3], [0.0, 0.4e-3]])
CONTROLLERS = {"E-727": (E727, FINE), "C-884": (C884, TRAVEL)}


def emulated(controller="E-727", *, signs=(1, 1, 1), faults=None, **model_kw):
    spec, travel = CONTROLLERS[controller]
    clock = VirtualClock()
    model = StageModel(
        clock, axis_sign=signs, travel=travel, velocity=2e-3, settle_time=0.01,
        needs_reference=spec.referencing, **model_kw,
    )  # fmt: skip
    transport = EmulatorTransport(PIGCSEmulator(model, controller=spec), clock=clock, faults=faults)
    stage = PIGCSStage(
        transport,
        axes=("1", "2", "3"),
        axis_sign=signs,
        travel=travel,
        velocity=2e-3,
        clock=clock,
        settle_time=0.01,
        reference_on_connect=True,
    )
    return stage, model, transport, clock


@pytest.mark.parametrize("controller", list(CONTROLLERS))
@pytest.mark.parametrize("signs", [(1, 1, 1), (1, -1, -1)])
def test_emulated_move_arrives_on_target_in_the_sample_frame(controller, signs):
    stage, model, _, _ = emulated(controller, signs=signs)
    travel = CONTROLLERS[controller][1]
    np.testing.assert_allclose(stage.limits(), travel, atol=1e-12)
    target = travel[:, 0] + np.array([0.6172839, 0.3, 0.2]) * (travel[:, 1] - travel[:, 0])
    stage.move_to(*target)
    assert stage.on_target()
    np.testing.assert_allclose(stage.position(), target, atol=5e-9)
    np.testing.assert_allclose(model.sample_position(), stage.position(), atol=1e-10)


def test_the_E727_works_in_micrometres_and_the_C884_in_millimetres_on_the_wire():
    _, model, fine, clock = emulated("E-727")
    assert fine.query("PUN? 1") == "1=\u00b5m"
    fine.write("MOV 1 250")
    clock.advance(1.0)
    assert model.position("1") == pytest.approx(250e-6)  # 250 µm, not 250 mm
    stage, _, coarse, _ = emulated("C-884")
    assert coarse.query("PUN? 1") == "1=mm"
    assert stage.units == ["mm"] * 3
    stage.move_to(5e-3, 6e-3, 1e-3)
    assert coarse.query("POS? 1") == "1=5.0000000"


def test_C884_axes_refuse_to_move_until_referenced_and_reference_at_mid_travel():
    clock = VirtualClock()
    model = StageModel(clock, travel=TRAVEL, velocity=2e-3, needs_reference=True,
                       start=(1e-3, 1e-3, 1e-3))  # fmt: skip
    t = EmulatorTransport(PIGCSEmulator(model, controller=C884), clock=clock)
    t.write("SVO 1 1")
    t.write("MOV 1 3")
    assert t.query("ERR?") == "5"  # unreferenced
    assert t.query("POS? 1") == "1=0.0000000"  # the counter reads 0 at power-up
    assert t.query("FRF? 1") == "1=0"
    t.write("FRF 1")
    assert t.query("\x07") == "\xb0"  # busy while referencing
    clock.advance(10.0)
    assert t.query("\x07") == "\xb1"
    assert t.query("FRF? 1") == "1=1"
    assert t.query("POS? 1") == "1=12.5000000"  # the reference switch at mid travel
    t.write("MOV 1 3")
    assert t.query("ERR?") == "0"


def test_the_C884_references_at_its_reference_velocity_parameter_not_at_VEL():
    clock = VirtualClock()
    model = StageModel(clock, travel=TRAVEL, velocity=2e-3, needs_reference=True,
                       start=(1e-3, 1e-3, 1e-3))  # fmt: skip
    t = EmulatorTransport(PIGCSEmulator(model, controller=C884), clock=clock)
    t.write("SPA 1 0x50 0.1")  # mm/s, in volatile memory
    assert t.query("ERR?") == "0"
    assert t.query("SPA? 1 0x50") == "1 0x00000050=0.1000000"
    t.write("SVO 1 1")
    t.write("FRF 1")
    clock.advance(60.0)  # 11.5 mm to the switch: 6 s at VEL's 2 mm/s, 115 s at 0.1 mm/s
    assert t.query("FRF? 1") == "1=0"
    assert t.query("VEL? 1") == "1=2.0000000"  # the setting, not the reference move's
    clock.advance(60.0)
    assert t.query("FRF? 1") == "1=1"
    t.write("MOV 1 14.5")  # after the reference move, moves run at VEL again
    clock.advance(1.1)
    assert t.query("POS? 1") == "1=14.5000000"
    t.write("SPA 1 0x50 0")
    assert t.query("ERR?") == "17"  # parameter out of range
    t.write("SPA 1 0x30 -5")
    assert t.query("ERR?") == "60"  # the soft limits stay protected


def test_the_reference_timeout_follows_the_reference_velocity_not_VEL():
    """A slow reference velocity (0.05 mm/s: 230 s to mid travel, where 2 × travel / VEL + 10 s
    allows 35 s) references: the timeout is reckoned from it."""
    clock = VirtualClock()
    model = StageModel(clock, travel=TRAVEL, velocity=2e-3, needs_reference=True,
                       start=(1e-3, 1e-3, 1e-3))  # fmt: skip
    for ax in "123":
        model.set_reference_velocity(ax, 5e-5)
    t = EmulatorTransport(PIGCSEmulator(model, controller=C884), clock=clock)
    PIGCSStage(t, axes=("1", "2", "3"), axis_sign=(1, 1, 1), travel=TRAVEL, velocity=2e-3,
               clock=clock, reference_on_connect=True)  # fmt: skip
    assert all(model.referenced(ax) for ax in "123")


def test_without_reference_on_connect_an_unreferenced_C884_is_refused():
    clock = VirtualClock()
    model = StageModel(clock, travel=TRAVEL, velocity=2e-3, needs_reference=True)
    t = EmulatorTransport(PIGCSEmulator(model, controller=C884), clock=clock)
    with pytest.raises(InstrumentError, match="not referenced"):
        PIGCSStage(t, axes=("1", "2", "3"), axis_sign=(1, 1, 1), travel=TRAVEL, velocity=2e-3,
                   clock=clock)  # fmt: skip
    assert not any(model.moving(ax) for ax in "123")


def test_ctrl_c_during_the_reference_move_at_connect_stops_every_axis():
    """The reference move runs inside the driver's connect, before any caller holds a stage
    to stop: the driver itself must stop it when Ctrl-C or a signal ends the connect."""

    class InterruptedClock(VirtualClock):
        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            if any(model.moving(ax) for ax in "123"):
                raise KeyboardInterrupt

    clock = InterruptedClock()
    model = StageModel(clock, travel=TRAVEL, velocity=2e-3, needs_reference=True,
                       start=(1e-3, 1e-3, 1e-3))  # fmt: skip
    t = EmulatorTransport(PIGCSEmulator(model, controller=C884), clock=clock)
    with pytest.raises(KeyboardInterrupt):
        PIGCSStage(t, axes=("1", "2", "3"), axis_sign=(1, 1, 1), travel=TRAVEL, velocity=2e-3,
                   clock=clock, reference_on_connect=True)  # fmt: skip
    assert not any(model.moving(ax) for ax in "123")


def test_emulated_velocity_round_trip_and_identity():
    stage, model, _, clock = emulated()
    clock.advance(0.1)  # the servo loops settle after switching on
    stage.set_velocity(1.25e-3)
    assert stage.velocity() == pytest.approx(1.25e-3)
    assert model.velocity("2") == pytest.approx(1.25e-3)
    assert stage.identify().model == "E-727"
    snap = stage.snapshot()
    assert snap["on_target"] is True and len(snap["position_m"]) == 3
    assert snap["units"] == ["\u00b5m"] * 3


def test_emulated_stop_halts_a_move_midway():
    stage, _, _, clock = emulated("C-884")
    stage.move_to(20e-3, 0.0, wait=False)
    clock.advance(1.0)
    stage.stop()
    clock.advance(5.0)
    x = stage.position()[0]
    clock.advance(5.0)
    assert stage.position()[0] == x and 12.5e-3 < x < 20e-3


def test_stalled_axis_times_out_naming_the_axis():
    stage, model, _, _ = emulated()
    model.stall("2")
    with pytest.raises(InstrumentTimeout, match=r"axis y \(controller axis 2\)"):
        stage.move_to(1e-3, 1e-3)


def test_link_faults_are_retried_or_end_in_a_clear_error():
    faults = Faults()
    stage, _, _, _ = emulated(faults=faults)
    faults.garbage = 1
    faults.timeouts = 1
    stage.move_to(1e-3, 1e-3)
    np.testing.assert_allclose(stage.position()[:2], [1e-3, 1e-3], atol=5e-9)
    faults.disconnected = True
    with pytest.raises(InstrumentLost):
        stage.position()


def test_emulator_refuses_out_of_limit_move_with_error_7():
    _, model, transport, _ = emulated()
    for ax in "123":
        model.set_servo(ax, True)
    transport.write("MOV 1 1800.1")
    assert transport.query("ERR?") == "7"
    assert transport.query("ERR?") == "0"
    assert transport.query("POS? 1") == "1=0.0000000"


def test_emulator_multiline_replies_end_lines_with_space_but_the_last():
    _, _, transport, _ = emulated()
    assert transport.query("SAI?") == "1 \n2 \n3"
    assert transport.query("TMX? 3 1") == "3=400.0000000 \n1=1800.0000000"
    transport.write("POS? 9")
    assert transport.query("ERR?") == "15"


def test_recording_header_comment_lines_are_read_past():
    """A GCS array header may hold lines without '=' (a bare '#', a '# REM <text>' comment):
    PI's own parser (PIPython getgcsheader) skips them, and so did this driver before the
    reply fuzzing; a fly line must not fail on them. A line before '# END_HEADER' that does
    not start with '#' is still refused."""
    from drivers.pi_gcs import _parse_recording
    from smm_daq.errors import ProtocolError

    header = ["# REM E-727", "#", "# VERSION = 1", "# TYPE = 1", "# SEPARATOR = 32",
              "# DIM = 1", "# SAMPLE_TIME = 0.000050", "# NDATA = 3", "#",
              "# NAME0 = Actual Position of 1", "#", "# END_HEADER"]
    dt, values = _parse_recording([*header, "1.0", "1.5", "2.0"], 3, 5e-5, (-10.0, 10.0), "mm")
    assert dt == pytest.approx(5e-5)
    assert values.tolist() == [1.0, 1.5, 2.0]
    with pytest.raises(ProtocolError, match="header lines"):
        _parse_recording(["# TYPE = 1", "garbage", *header[2:], "1.0", "1.5", "2.0"], 3, 5e-5,
                         (-10.0, 10.0), "mm")


def test_an_error_pending_before_connect_is_cleared_but_kept_for_the_snapshot():
    """Connect clears an error left from before (so the first command is not blamed for it),
    but the code is not lost: the snapshot (`smm-daq check`, a scan's metadata) says it."""
    spec, travel = CONTROLLERS["E-727"]
    clock = VirtualClock()
    model = StageModel(clock, axis_sign=(1, 1, 1), travel=travel, velocity=2e-3,
                       settle_time=0.01, needs_reference=spec.referencing)
    transport = EmulatorTransport(PIGCSEmulator(model, controller=spec), clock=clock)
    transport.write("MOV 9 0")  # no axis 9: error 15, never read
    stage = PIGCSStage(transport, axes=("1", "2", "3"), axis_sign=(1, 1, 1), travel=travel,
                       velocity=2e-3, clock=clock, settle_time=0.01, reference_on_connect=True)
    assert stage.error_at_connect == 15
    assert stage.snapshot()["error_at_connect"] == "15 (invalid axis identifier)"
    fresh, *_ = emulated()
    assert fresh.snapshot()["error_at_connect"] == "none"


class _StopWhenSleeping(VirtualClock):
    """Requests `stop` the first time the driver waits (between its polls of the reference
    move), as the operator's Stop during a connect does from another thread."""

    def __init__(self, stop: ConnectStop) -> None:
        super().__init__()
        self.stop = stop

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        self.stop.request()


@pytest.mark.parametrize("when", ["before", "during"])
def test_a_connect_stop_stops_the_reference_move_short_and_fails_the_connect(when):
    stop = ConnectStop()
    clock = _StopWhenSleeping(stop) if when == "during" else VirtualClock()
    start = (1e-3, 1e-3, 1e-3)
    model = StageModel(clock, travel=TRAVEL, velocity=2e-3, needs_reference=True, start=start)
    transport = EmulatorTransport(PIGCSEmulator(model, controller=C884), clock=clock)
    if when == "before":
        stop.request()
    with connect_stop.bound(stop), pytest.raises(ConnectStopped,
                                                 match="stopped by the operator") as info:
        PIGCSStage(transport, axes=("1", "2", "3"), axis_sign=(1, 1, 1), travel=TRAVEL,
                   velocity=2e-3, clock=clock, reference_on_connect=True)
    assert f"before it {'started' if when == 'before' else 'ended'}" in str(info.value)
    for k, ax in enumerate(("1", "2", "3")):
        assert not model.moving(ax) and not model.referenced(ax), ax
        switch = float(np.mean(model.limits(ax)))
        if when == "before":
            assert model.position(ax) == pytest.approx(start[k], abs=1e-12), ax
        else:
            assert start[k] < model.position(ax) < switch - 1e-6, ax  # on its way, short


def test_a_stop_before_the_reference_move_also_stops_one_an_earlier_program_left_running():
    """Stop pressed before the connect's reference move starts: an axis still driving to its
    switch after a killed program's reference move (FRF? says not referenced) is stopped
    too, as the connect's failure then says the stage is."""
    clock = VirtualClock()
    model = StageModel(clock, travel=TRAVEL, velocity=2e-3, needs_reference=True,
                       start=(1e-3, 1e-3, 1e-3))  # fmt: skip
    for axis in "123":
        model.set_servo(axis, True)
    model.reference(["1", "2", "3"])  # the killed program's, still on its way
    t = EmulatorTransport(PIGCSEmulator(model, controller=C884), clock=clock)
    stop = ConnectStop()
    stop.request()
    with connect_stop.bound(stop), pytest.raises(ConnectStopped, match="before it started"):
        PIGCSStage(t, axes=("1", "2", "3"), axis_sign=(1, 1, 1), travel=TRAVEL, velocity=2e-3,
                   clock=clock, reference_on_connect=True)  # fmt: skip
    assert not any(model.moving(ax) for ax in "123")
