"""The multimeter-read fluxgate: SCPI command/response pairs, volts to tesla, overloads and
errors, the multimeter emulator, and the driver reading the simulated world's field."""

from __future__ import annotations

import numpy as np
import pytest
from instrument_fakes import ScriptedTransport, link_settings, opener

from drivers.fluxgate_dmm import DMMFluxgate
from simulators.dmm_emulator import DMMEmulator, parse_channel_list
from simulators.emulator import EmulatorTransport
from smm_daq.clock import VirtualClock
from smm_daq.errors import InstrumentError, InstrumentLost
from smm_daq.instruments.profile import FluxgateSettings, load_profile
from smm_daq.instruments.rig import open_rig

IDN = "Agilent Technologies,34970A,MY44021523,13-2-2"
SCALE = np.array([[1.0e-5, 1e-8, 0.0], [0.0, 1.02e-5, 0.0], [-2e-8, 0.0, 0.98e-5]])
OFFSET = np.array([0.01, -0.02, 0.0])


def settings() -> FluxgateSettings:
    return FluxgateSettings(
        link=link_settings("dmm_fluxgate", "GPIB0::22::INSTR"),
        channels=(101, 102, 103),
        scale=SCALE,
        offset=OFFSET,
    )


OPENING = [
    ("*IDN?", IDN),
    ("SYST:ERR?", '+0,"No error"'),  # nothing left by an earlier program
    ("*CLS", None),
    ("CONF:VOLT:DC 10,DEF,(@101,102,103)", None),
    ("VOLT:DC:NPLC 1,(@101,102,103)", None),
    ("FORM:READ:CHAN OFF;:FORM:READ:TIME OFF;:FORM:READ:UNIT OFF;:FORM:READ:ALAR OFF", None),
    ("SYST:ERR?", '+0,"No error"'),
]


def scripted(more: list[tuple[str, str | None]]) -> tuple[DMMFluxgate, ScriptedTransport]:
    t = ScriptedTransport(OPENING + more)
    return DMMFluxgate.from_profile(settings(), clock=VirtualClock(), open_transport=opener(t)), t


def test_opening_configures_one_scan_of_the_three_channels() -> None:
    fluxgate, t = scripted([])
    assert t.done()
    assert fluxgate.scan_list == "(@101,102,103)"


def test_field_is_the_calibration_applied_to_the_volts() -> None:
    fluxgate, t = scripted([("READ?", "+1.00000000E+00,-5.00000000E-01,+2.00000000E+00")])
    volts = np.array([1.0, -0.5, 2.0])
    np.testing.assert_allclose(fluxgate.read_field(), SCALE @ (volts - OFFSET), rtol=1e-12)
    assert t.done()


@pytest.mark.parametrize("reply", ["+1.0E+00,+2.0E+00", "+1.0E+00,x,+2.0E+00", "", "1,2,3,4"])
def test_garbled_readings_are_retried_then_lost(reply: str) -> None:
    fluxgate, t = scripted([("READ?", reply)] * 3)
    with pytest.raises(InstrumentLost, match="READ"):
        fluxgate.read_field()
    assert t.clears == 3


def test_errors_an_earlier_program_left_are_read_before_anything_is_sent_and_kept() -> None:
    """The queue as found at connect is read first (oldest first), then cleared: a connect
    does not fail for an error that is not ours, nor lose it; the snapshot reports it."""
    left = [("SYST:ERR?", '-113,"Undefined header"'), ("SYST:ERR?", '-222,"Data out of range"'),
            ("SYST:ERR?", '+0,"No error"')]
    t = ScriptedTransport([OPENING[0], *left, *OPENING[2:],
                           ("READ?", "+1.0E+00,+2.0E+00,+3.0E+00")])
    fluxgate = DMMFluxgate.from_profile(settings(), clock=VirtualClock(), open_transport=opener(t))
    assert fluxgate.errors_at_connect == ["-113 Undefined header", "-222 Data out of range"]
    assert fluxgate.snapshot()["errors_at_connect"] == (
        "-113 Undefined header; -222 Data out of range")
    assert t.done()


def test_an_error_reply_lost_at_connect_is_said_unknown_and_the_connect_goes_on() -> None:
    """As for the coil supplies: the queue's read at connect is a diagnostic, so a reply to it
    lost (never asked again: reading clears the entry) fails nothing; what was left is said
    unknown after what was read, and the connect clears the queue and configures as ever."""
    left = [("SYST:ERR?", '-113,"Undefined header"'), ("SYST:ERR?", None)]  # its reply lost
    t = ScriptedTransport([OPENING[0], *left, *OPENING[2:],
                           ("READ?", "+1.0E+00,+2.0E+00,+3.0E+00")])
    fluxgate = DMMFluxgate.from_profile(settings(), clock=VirtualClock(), open_transport=opener(t))
    assert fluxgate.errors_at_connect == [
        "-113 Undefined header", "unknown (a reply to SYST:ERR? was lost)"]
    assert fluxgate.snapshot()["errors_at_connect"] == (
        "-113 Undefined header; unknown (a reply to SYST:ERR? was lost)")
    assert t.done() and not t.closed


def test_overload_mark_is_an_error_not_a_field() -> None:
    fluxgate, _ = scripted([("READ?", "+1.0E+00,+9.90000000E+37,+2.0E+00")])
    with pytest.raises(InstrumentError, match="beyond the 10 V range"):
        fluxgate.read_field()


def test_a_queued_scpi_error_after_configuring_is_reported() -> None:
    t = ScriptedTransport(
        [*OPENING[:6], ("SYST:ERR?", '-222,"Data out of range"'), ("SYST:ERR?", '+0,"No error"')]
    )
    with pytest.raises(InstrumentError, match="-222 Data out of range"):
        DMMFluxgate.from_profile(settings(), clock=VirtualClock(), open_transport=opener(t))
    assert t.closed


# --- the multimeter emulator -------------------------------------------------------------


def emulator(outputs=(1.5, -2.0, 0.25)) -> DMMEmulator:
    return DMMEmulator(lambda now: np.array(outputs), lambda: 0.0, (101, 102, 103))


def test_channel_lists() -> None:
    assert parse_channel_list("(@101,102,105:107)") == [101, 102, 105, 106, 107]
    assert parse_channel_list("(@ 201 )") == [201]


def test_emulator_reads_the_wired_channels_in_scan_order() -> None:
    dmm = emulator()
    assert dmm.handle("*IDN?") == IDN
    dmm.handle("CONFigure:VOLTage:DC 10,DEF,(@103,101)")
    assert dmm.handle("READ?") == "+2.50000000E-01,+1.50000000E+00"
    assert dmm.handle("MEAS:VOLT:DC? (@102)") == "-2.00000000E+00"
    assert dmm.handle("SYST:ERR?") == '+0,"No error"'


def test_emulator_overload_and_error_queue() -> None:
    dmm = emulator((5.0, 0.0, 0.0))
    dmm.handle("CONF:VOLT:DC MIN,(@101)")  # 100 mV range
    assert dmm.handle("READ?") == "+9.90000000E+37"
    dmm.handle("*RST")
    assert dmm.handle("READ?") is None  # nothing to scan
    dmm.handle("FROB 3")
    dmm.handle("CONF:VOLT:DC 1000,(@101)")
    errors = [dmm.handle("SYST:ERR?") for _ in range(4)]
    assert errors == [
        '-221,"Settings conflict"',
        '-113,"Undefined header"',
        '-222,"Data out of range"',
        '+0,"No error"',
    ]


def test_emulator_refuses_channels_not_numbered_by_slot_with_the_real_error() -> None:
    dmm = emulator()
    for bad in ("(@1,2,3)", "(@100)", "(@141)", "(@401)"):
        dmm.handle(f"CONF:VOLT:DC 10,DEF,{bad}")
        assert dmm.handle("SYST:ERR?") == '-222,"Data out of range"', bad
    assert dmm.handle("ROUT:SCAN?") == "#13(@)"  # nothing configured: an empty list


def test_emulator_scan_list_init_fetch_and_configuration_queries() -> None:
    dmm = emulator()
    assert dmm.handle("FETC?") is None  # nothing measured yet
    assert dmm.handle("SYST:ERR?") == '-230,"Data stale"'
    dmm.handle("CONF:VOLT:DC 10,DEF,(@101:103)")
    dmm.handle("ROUT:SCAN (@102,101)")
    assert dmm.handle("ROUT:SCAN?") == "#210(@102,101)"  # IEEE 488.2 definite-length block
    dmm.handle("INIT")
    assert dmm.handle("FETC?") == "-2.00000000E+00,+1.50000000E+00"
    assert dmm.handle("FETC?") == "-2.00000000E+00,+1.50000000E+00"  # memory kept
    assert dmm.handle("CONF? (@101)") == '"VOLT +1.000000E+01,+3.000000E-05"'
    dmm.handle("VOLT:DC:NPLC 5,(@101,102)")  # 5 is not a step: the next one up, 10
    assert dmm.handle("VOLT:DC:NPLC? (@101,103)") == "+1.00000000E+01,+1.00000000E+00"
    dmm.handle("FORM:READ:CHAN ON;UNIT ON")  # UNIT: on the path FORM:READ
    assert dmm.handle("READ?") == "-2.00000000E+00 VDC,102,+1.50000000E+00 VDC,101"
    assert dmm.handle("FORM:READ:CHAN?") == "1"
    assert dmm.handle("SYST:ERR?") == '+0,"No error"'


def test_emulator_reads_each_header_after_a_semicolon_from_the_path_before_it() -> None:
    """The 34970A User's Guide ("Command Separators"): a ';' alone keeps the subsystem, so
    `FORM:READ:CHAN ON;FORM:READ:TIME ON` names FORM:READ:FORM:READ:TIME, an undefined
    header; `;:` goes back to the root; a common command keeps the path it found."""
    dmm = emulator()
    dmm.handle("FORM:READ:CHAN ON;FORM:READ:TIME ON")
    assert dmm.handle("SYST:ERR?") == '-113,"Undefined header"'
    assert dmm.handle("FORM:READ:CHAN?;TIME?") == "1;0"
    dmm.handle("FORM:READ:CHAN OFF;:FORM:READ:TIME ON;*CLS;UNIT ON")
    assert dmm.handle("FORM:READ:CHAN?;:FORM:READ:TIME?;UNIT?") == "0;1;1"
    assert dmm.handle("SYST:ERR?") == '+0,"No error"'


def test_emulator_common_commands_and_status_byte() -> None:
    dmm = emulator()
    assert dmm.handle("*OPC?") == "1" and dmm.handle("*STB?") == "0"
    dmm.handle("*ESE 32")
    dmm.handle("BOGUS")
    assert dmm.handle("*STB?") == str(4 | 32)  # error queued, command error enabled
    assert dmm.handle("*ESR?") == "32"
    assert dmm.handle("SYST:ERR?") == '-113,"Undefined header"'
    assert dmm.handle("*STB?") == "0"


def test_open_channel_noise_falls_with_the_integration_time() -> None:
    dmm = DMMEmulator(lambda now: np.zeros(3), lambda: 0.0, (101, 102, 103),
                      rng=np.random.default_rng(1))  # fmt: skip
    dmm.handle("CONF:VOLT:DC 1,(@120)")
    short = [float(dmm.handle("READ?")) for _ in range(2000)]
    dmm.handle("VOLT:DC:NPLC 100,(@120)")
    long = [float(dmm.handle("READ?")) for _ in range(2000)]
    assert np.std(short) / np.std(long) == pytest.approx(10.0, rel=0.1)  # √(100 / 1)


def test_a_driver_left_with_channel_numbers_in_the_readings_turns_them_off() -> None:
    dmm = emulator()
    dmm.handle("FORM:READ:CHAN ON;:FORM:READ:TIME ON")  # the last user's settings
    fluxgate = DMMFluxgate.from_profile(
        settings(), clock=VirtualClock(),
        open_transport=lambda address, link: EmulatorTransport(dmm),
    )  # fmt: skip
    np.testing.assert_allclose(fluxgate.read_volts(), [1.5, -2.0, 0.25])


# --- in the simulated world --------------------------------------------------------------


def test_driver_reads_the_true_field_at_the_sample() -> None:
    rig = open_rig(
        load_profile(),
        world_options={
            "fluxgate_noise_rms": 0.0,
            "fluxgate_scale_error": 0.0,
            "fluxgate_orthogonality_error": 0.0,
            "fluxgate_offset_error": np.array([5e-9, 0.0, 0.0]),
        },
    )
    rig.coils.set_field(np.array([10e-6, -5e-6, 40e-6]))
    true = rig.world.coils.field_at_sample()
    offset = np.array([5e-9, 0.0, 0.0])
    np.testing.assert_allclose(rig.fluxgate.read_field(), true + offset, rtol=0, atol=1e-12)
    rig.close()


def test_fluxgate_noise_shows_in_repeated_readings() -> None:
    rig = open_rig(load_profile(), world_options={"fluxgate_noise_rms": 2e-9})
    readings = np.array([rig.fluxgate.read_field() for _ in range(200)])
    assert readings.std(axis=0) == pytest.approx([2e-9] * 3, rel=0.25)
    rig.close()
