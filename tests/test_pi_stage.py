"""PI GCS 2.0 stage driver: command/response pairs on a scripted link, then against the emulator."""

from __future__ import annotations

import numpy as np
import pytest
from instrument_fakes import ScriptedTransport

from drivers.pi_gcs import PIGCSStage, parse_gcs_idn
from simulators.emulator import EmulatorTransport, Faults
from simulators.pi_emulator import PIGCSEmulator
from simulators.stage_model import StageModel
from smm_daq.clock import VirtualClock
from smm_daq.errors import (
    InstrumentError,
    InstrumentLost,
    InstrumentTimeout,
    ProtocolError,
    RangeError,
)

TRAVEL = np.array([[0.0, 25e-3], [0.0, 25e-3], [0.0, 10e-3]])


class LineTransport(ScriptedTransport):
    """A scripted link that answers one line per read, as a line-terminated serial or VISA link
    does: a multi-line GCS reply arrives over several reads."""

    def write(self, message: str) -> None:
        pending = len(self._pending)
        super().write(message)
        if len(self._pending) > pending:
            self._pending.extend(self._pending.pop().split("\n"))


CONNECT = [
    ("SAI?", "1 \n2 \n3 \n4"),
    ("SVO 1 1 2 1 3 1", None),
    ("ERR?", "0"),
    ("TMN? 1 2 3", "1=-1.0000000 \n2=0.0000000 \n3=0.0000000"),
    ("TMX? 1 2 3", "1=30.0000000 \n2=20.0000000 \n3=10.0000000"),
    ("VEL 1 2.0000000 2 2.0000000 3 2.0000000", None),
    ("ERR?", "0"),
]


def scripted(script, *, axes=("1", "2", "3"), signs=(1, 1, 1), clock=None):
    t = LineTransport(script)
    stage = PIGCSStage(
        t, axes=axes, axis_sign=signs, travel=TRAVEL, velocity=2e-3, clock=clock or VirtualClock()
    )
    return stage, t


def test_connect_queries_axes_servos_on_and_intersects_limits_with_the_profile():
    stage, t = scripted(CONNECT)
    assert not t.script
    # controller x: [-1, 30] mm ∩ profile [0, 25]; y: [0, 20] ∩ [0, 25]
    np.testing.assert_allclose(stage.limits(), [[0, 25e-3], [0, 20e-3], [0, 10e-3]])


def test_profile_axis_the_controller_does_not_have_is_an_error():
    with pytest.raises(InstrumentError, match=r"\['A', 'B'\].*\['3'\]"):
        scripted([("SAI?", "A \nB")], axes=("A", "B", "3"))


def test_axes_and_signs_map_the_sample_frame_onto_controller_axes():
    script = [
        ("SAI?", "A \nB \nC"),
        ("SVO B 1 A 1 C 1", None),
        ("ERR?", "0"),
        ("TMN? B A C", "B=0.0000000 \nA=-25.0000000 \nC=0.0000000"),
        ("TMX? B A C", "B=25.0000000 \nA=0.0000000 \nC=10.0000000"),
        ("VEL B 2.0000000 A 2.0000000 C 2.0000000", None),
        ("ERR?", "0"),
        ("POS? B A C", "B=0.0000000 \nA=0.0000000 \nC=0.0000000"),
        ("MOV B 1.5000000 A -2.2500000", None),
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
    with pytest.raises(RangeError, match=r"y = 21000\.000 µm"):
        stage.move_to(1e-3, 21e-3)
    with pytest.raises(RangeError):
        stage.move_to(float("nan"), 0.0)
    assert len(t.sent) == len(CONNECT)


def test_controller_error_after_a_command_names_the_code_and_its_meaning():
    stage, _ = scripted(
        [
            *CONNECT,
            ("POS? 1 2 3", "1=0.0 \n2=0.0 \n3=0.0"),
            ("MOV 1 1.0000000 2 1.0000000", None),
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
            ("MOV 1 4.0000000 2 1.0000000", None),
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


# -- against the emulator ---------------------------------------------------------------------


def emulated(*, signs=(1, 1, 1), faults=None, **model_kw):
    clock = VirtualClock()
    model = StageModel(
        clock, axis_sign=signs, travel=TRAVEL, velocity=2e-3, settle_time=0.01, **model_kw
    )
    transport = EmulatorTransport(PIGCSEmulator(model), clock=clock, faults=faults)
    stage = PIGCSStage(
        transport,
        axes=("1", "2", "3"),
        axis_sign=signs,
        travel=TRAVEL,
        velocity=2e-3,
        clock=clock,
        settle_time=0.01,
    )
    return stage, model, transport, clock


@pytest.mark.parametrize("signs", [(1, 1, 1), (1, -1, -1)])
def test_emulated_move_arrives_on_target_in_the_sample_frame(signs):
    stage, model, _, _ = emulated(signs=signs)
    np.testing.assert_allclose(stage.limits(), TRAVEL, atol=1e-12)
    stage.move_to(12.3456789e-3, 7.5e-3, 2.0e-3)
    assert stage.on_target()
    np.testing.assert_allclose(stage.position(), [12.3456789e-3, 7.5e-3, 2e-3], atol=5e-9)
    np.testing.assert_allclose(model.sample_position(), stage.position(), atol=1e-10)


def test_emulated_velocity_round_trip_and_identity():
    stage, model, _, clock = emulated()
    clock.advance(0.1)  # the servo loops settle after switching on
    stage.set_velocity(1.25e-3)
    assert stage.velocity() == pytest.approx(1.25e-3)
    assert model.velocity("2") == pytest.approx(1.25e-3)
    assert stage.identify().model == "E-727"
    snap = stage.snapshot()
    assert snap["on_target"] is True and len(snap["position_m"]) == 3


def test_emulated_stop_halts_a_move_midway():
    stage, _, _, clock = emulated()
    stage.move_to(20e-3, 0.0, wait=False)
    clock.advance(1.0)
    stage.stop()
    clock.advance(5.0)
    assert stage.position()[0] == pytest.approx(2e-3, abs=1e-9)


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
    transport.write("MOV 1 26.0")
    assert transport.query("ERR?") == "7"
    assert transport.query("ERR?") == "0"
    assert transport.query("POS? 1") == "1=0.0000000"


def test_emulator_multiline_replies_end_lines_with_space_but_the_last():
    _, _, transport, _ = emulated()
    assert transport.query("SAI?") == "1 \n2 \n3"
    assert transport.query("TMX? 3 1") == "3=10.0000000 \n1=25.0000000"
    transport.write("POS? 9")
    assert transport.query("ERR?") == "15"
