"""SR830 and SR860 drivers: command/response pairs, SI index tables, range checks, and the
drivers running against their emulators (filter step response, noise bandwidth, overload)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from instrument_fakes import ScriptedTransport, link_settings, opener

from drivers.sr830 import SR830, TRACE_POINT_BYTES
from drivers.sr860 import GET_KB, SR860, parse_block, read_block
from simulators.emulator import EmulatorTransport
from simulators.sr830_emulator import SR830_SENSITIVITIES, SR830_TIME_CONSTANTS, SR830Emulator
from simulators.sr860_emulator import SR860_SENSITIVITIES, SR860_TIME_CONSTANTS, SR860Emulator
from smm_daq.clock import VirtualClock
from smm_daq.errors import (
    InputError,
    InstrumentError,
    InstrumentLost,
    ProtocolError,
    RangeError,
)
from smm_daq.instruments.profile import LockInSettings, parse_profile
from smm_daq.instruments.transport import BITS_PER_BYTE, DEFAULT_BAUD_RATE

IDN_830 = "Stanford_Research_Systems,SR830,s/n86514,ver1.07"
IDN_860 = "Stanford_Research_Systems,SR860,004317,v1.51"


def settings(model: str, address: str = "GPIB0::8::INSTR") -> LockInSettings:
    return LockInSettings(
        link=link_settings(model, address),
        time_constant=0.03,
        sensitivity=0.5,
        reference_frequency=1017.0,
        reference_amplitude=1.0,
        overrange_fraction=0.95,
    )


def set_and_read(command: str, value: str) -> list[tuple[str, str | None]]:
    return [(f"{command} {value}", None), (f"{command}?", value)]


def sr830_opening(address: str = "GPIB0::8::INSTR") -> list[tuple[str, str | None]]:
    outx = "0" if address.startswith("ASRL") else "1"
    return [
        (f"OUTX {outx}", None),
        ("*IDN?", IDN_830),
        *set_and_read("FMOD", "1"),
        *set_and_read("FREQ", "1017"),
        *set_and_read("SLVL", "1"),
        *set_and_read("HARM", "1"),
        ("PHAS 0.00", None),
        ("PHAS?", "0"),
        *set_and_read("ISRC", "0"),  # A
        *set_and_read("ICPL", "0"),  # AC
        *set_and_read("IGND", "0"),  # float
        *set_and_read("SYNC", "0"),
        *set_and_read("RMOD", "1"),  # normal reserve
        *[pair for ch in "123" for pair in ((f"OEXP {ch},0,0", None), (f"OEXP? {ch}", "0.00,0"))],
        *set_and_read("OFSL", "1"),
        *set_and_read("OFLT", "7"),  # 30 ms
        *set_and_read("SENS", "25"),  # 500 mV
        ("*CLS", None),
    ]


def sr860_opening() -> list[tuple[str, str | None]]:
    return [
        ("*IDN?", IDN_860),
        *set_and_read("IRNG", "0"),
        *set_and_read("RSRC", "0"),
        *set_and_read("FREQ", "1017"),
        *set_and_read("SLVL", "1"),
        *set_and_read("HARM", "1"),
        ("PHAS 0.00", None),
        ("PHAS?", "0"),
        *set_and_read("IVMD", "0"),  # voltage
        *set_and_read("ISRC", "0"),  # A
        *set_and_read("ICPL", "0"),  # AC
        *set_and_read("IGND", "0"),  # float
        *set_and_read("SYNC", "0"),
        *[
            pair
            for ch in "012"
            for pair in (
                (f"COFP {ch},0", None),
                (f"COFP? {ch}", "0.00"),
                (f"CEXP {ch},0", None),
                (f"CEXP? {ch}", "0"),
            )
        ],
        *set_and_read("OFSL", "1"),
        *set_and_read("OFLT", "9"),  # 30 ms
        *set_and_read("SCAL", "1"),  # 500 mV
        ("*CLS", None),
    ]


def scripted(
    model: str, more: list[tuple[str, str | None]]
) -> tuple[SR830 | SR860, ScriptedTransport]:
    cls, opening = (SR830, sr830_opening()) if model == "sr830" else (SR860, sr860_opening())
    t = ScriptedTransport(opening + more)
    lockin = cls.from_profile(settings(model), clock=VirtualClock(), open_transport=opener(t))
    return lockin, t


# --- index tables ------------------------------------------------------------------------


def test_sr830_tables_in_si() -> None:
    assert len(SR830.SENSITIVITIES) == 27 and len(SR830.TIME_CONSTANTS) == 20
    assert SR830.SENSITIVITIES[0] == pytest.approx(2e-9)
    assert SR830.SENSITIVITIES[17] == pytest.approx(1e-3)
    assert SR830.SENSITIVITIES[26] == pytest.approx(1.0)
    assert SR830.TIME_CONSTANTS[0] == pytest.approx(10e-6)
    assert SR830.TIME_CONSTANTS[7] == pytest.approx(30e-3)
    assert SR830.TIME_CONSTANTS[19] == pytest.approx(30e3)
    assert all(np.diff(SR830.SENSITIVITIES) > 0) and all(np.diff(SR830.TIME_CONSTANTS) > 0)


def test_sr860_tables_in_si_run_the_other_way() -> None:
    assert len(SR860.SENSITIVITIES) == 28 and len(SR860.TIME_CONSTANTS) == 22
    assert SR860.SENSITIVITIES[0] == pytest.approx(1.0)
    assert SR860.SENSITIVITIES[1] == pytest.approx(0.5)
    assert SR860.SENSITIVITIES[9] == pytest.approx(1e-3)
    assert SR860.SENSITIVITIES[27] == pytest.approx(1e-9)
    assert SR860.TIME_CONSTANTS[0] == pytest.approx(1e-6)
    assert SR860.TIME_CONSTANTS[9] == pytest.approx(30e-3)
    assert SR860.TIME_CONSTANTS[21] == pytest.approx(30e3)
    assert all(np.diff(SR860.SENSITIVITIES) < 0) and all(np.diff(SR860.TIME_CONSTANTS) > 0)


def test_driver_and_emulator_tables_agree() -> None:
    # Written out independently in the driver and generated in the emulator.
    np.testing.assert_allclose(SR830.SENSITIVITIES, SR830_SENSITIVITIES, rtol=1e-12)
    np.testing.assert_allclose(SR830.TIME_CONSTANTS, SR830_TIME_CONSTANTS, rtol=1e-12)
    np.testing.assert_allclose(SR860.SENSITIVITIES, SR860_SENSITIVITIES, rtol=1e-12)
    np.testing.assert_allclose(SR860.TIME_CONSTANTS, SR860_TIME_CONSTANTS, rtol=1e-12)


# --- command/response pairs --------------------------------------------------------------


@pytest.mark.parametrize("model", ["sr830", "sr860"])
def test_opening_configures_as_the_profile_says(model: str) -> None:
    _, t = scripted(model, [])
    assert t.done()


def test_sr830_on_a_serial_port_sends_replies_to_rs232_first() -> None:
    address = "ASRL1::INSTR"
    t = ScriptedTransport(sr830_opening(address))
    SR830.from_profile(settings("sr830", address), clock=VirtualClock(), open_transport=opener(t))
    assert t.sent[0] == "OUTX 0" and t.done()


def test_sr830_behind_a_serial_to_ethernet_server_reads_pieces_its_line_passes_in_time() -> None:
    """An SR830's RS-232 port reached through a serial-to-Ethernet server (a LAN socket, whose
    read ends a timeout after it began): each TRCA? piece comes within half the timeout at
    the line's default 9600 baud, the socket knowing no baud rate. Unfixed, pieces were 2048
    points (30 kB: half a minute of the line), and every buffer read timed out."""
    address = "TCPIP0::10.0.0.5::4001::SOCKET"
    script = sr830_opening(address)
    script[0] = ("OUTX 0", None)  # replies to the RS-232 port the server reaches
    t = ScriptedTransport(script, timeout=1.0)
    lockin = SR830.from_profile(replace(settings("sr830", address), interface="rs232"),
                                clock=VirtualClock(), open_transport=opener(t))
    assert t.done()
    piece_s = lockin.trace_chunk * TRACE_POINT_BYTES * BITS_PER_BYTE / DEFAULT_BAUD_RATE
    assert 0.25 < piece_s <= 0.5 * t.timeout


@pytest.mark.parametrize("baud", [2400, 19200])
def test_sr830_behind_a_serial_to_ethernet_server_sizes_pieces_for_its_baud_rate(
        baud: int) -> None:
    """The profile gives the line's rate behind the server (`baud_rate`, which the socket
    cannot tell): each TRCA? piece comes within half the timeout at that rate, and fills
    most of it. Unfixed, pieces were sized for 9600 baud whatever the setting: at 2400 baud
    each took the whole timeout (every buffer read timed out), at 19200 a quarter of it."""
    address = "TCPIP0::10.0.0.5::4001::SOCKET"
    script = sr830_opening(address)
    script[0] = ("OUTX 0", None)  # replies to the RS-232 port the server reaches
    t = ScriptedTransport(script, timeout=1.0)
    profile = settings("sr830", address)
    profile = replace(profile, interface="rs232", link=replace(profile.link, baud_rate=baud))
    lockin = SR830.from_profile(profile, clock=VirtualClock(), open_transport=opener(t))
    assert t.done()
    piece_s = lockin.trace_chunk * TRACE_POINT_BYTES * BITS_PER_BYTE / baud
    assert 0.25 < piece_s <= 0.5 * t.timeout


@pytest.mark.parametrize(("baud", "address"), [
    (9600, "TCPIP0::10.0.0.5::4001::SOCKET"), (115200, "TCPIP0::10.0.0.5::4001::SOCKET"),
    (115200, "TCPIP0::10.0.0.5::COM1,488::INSTR"),  # a LAN gateway's serial port (VXI-11)
])
def test_sr860_behind_a_serial_to_ethernet_server_sizes_blocks_for_its_baud_rate(
        baud: int, address: str) -> None:
    """An SR860's RS-232 port through a serial-to-Ethernet server, the line's rate given in
    the profile (`baud_rate`): each CAPTUREGET? block comes within half the LAN read's
    timeout at that rate. Unfixed, the address was taken for the SR860's own Ethernet and
    sized for a LAN (64 kB at 3 s, 5.7 s of a 115200-baud line): every capture's read
    timed out."""
    t = ScriptedTransport(sr860_opening(), timeout=3.0)
    profile = settings("sr860", address)
    profile = replace(profile, link=replace(profile.link, baud_rate=baud, timeout_s=3.0))
    lockin = SR860.from_profile(profile, clock=VirtualClock(), open_transport=opener(t))
    assert t.done()
    block_s = lockin.get_kb * 1024 * BITS_PER_BYTE / baud
    assert 0.25 * t.timeout < block_s <= 0.5 * t.timeout


@pytest.mark.parametrize("address", [
    "TCPIP0::10.0.0.5::inst0::INSTR", "TCPIP0::10.0.0.5::hislip0::INSTR"])
def test_sr860_on_its_own_ethernet_sizes_blocks_for_a_lan_whatever_its_baud_rate(
        address: str) -> None:
    """The SR860's own VXI-11 or HiSLIP device has no serial line behind it: a `baud_rate`
    left in its profile (from its RS-232 days) names none, and its CAPTUREGET? blocks are
    sized for a LAN, as without it. Unfixed, they were sized for a 9600-baud line: 1 kB a
    block, 64 times the exchanges for each capture."""
    t = ScriptedTransport(sr860_opening(), timeout=3.0)
    profile = settings("sr860", address)
    profile = replace(profile, link=replace(profile.link, baud_rate=9600, timeout_s=3.0))
    lockin = SR860.from_profile(profile, clock=VirtualClock(), open_transport=opener(t))
    assert t.done()
    assert lockin.get_kb == GET_KB


@pytest.mark.parametrize(
    ("model", "tau", "index"),
    [("sr830", 0.02, "7"), ("sr830", 0.03, "7"), ("sr830", 0.031, "8"), ("sr830", 1e-9, "0"),
     ("sr860", 0.02, "9"), ("sr860", 2e-6, "1"), ("sr860", 3e4, "21")],
)  # fmt: skip
def test_time_constant_is_the_next_at_or_above(model: str, tau: float, index: str) -> None:
    lockin, t = scripted(model, set_and_read("OFLT", index))
    lockin.set_time_constant(tau)
    assert t.done()


@pytest.mark.parametrize(
    ("model", "volts", "index"),
    [("sr830", 0.3, "25"), ("sr830", 1e-9, "0"), ("sr830", 1.0, "26"),
     ("sr860", 0.3, "1"), ("sr860", 1e-9, "27"), ("sr860", 0.0011, "8")],
)  # fmt: skip
def test_sensitivity_is_the_next_full_scale_at_or_above(
    model: str, volts: float, index: str
) -> None:
    lockin, t = scripted(model, set_and_read("SENS" if model == "sr830" else "SCAL", index))
    lockin.set_sensitivity(volts)
    assert t.done()


@pytest.mark.parametrize(
    ("model", "call"),
    [
        ("sr830", lambda li: li.set_time_constant(0.0)),
        ("sr830", lambda li: li.set_time_constant(4e4)),
        ("sr830", lambda li: li.set_sensitivity(-1e-3)),
        ("sr830", lambda li: li.set_sensitivity(1.5)),
        ("sr830", lambda li: li.set_reference(2e5, 1.0)),  # above 102 kHz
        ("sr830", lambda li: li.set_reference(1e3, 0.001)),  # below 4 mV
        ("sr860", lambda li: li.set_reference(6e5, 1.0)),  # above 500 kHz
        ("sr860", lambda li: li.set_reference(1e3, 3.0)),  # above 2 V
        ("sr860", lambda li: li.set_time_constant(1e5)),
    ],
)
def test_out_of_range_settings_send_nothing(model: str, call) -> None:
    lockin, t = scripted(model, [])
    sent = len(t.sent)
    with pytest.raises(RangeError):
        call(lockin)
    assert len(t.sent) == sent


def test_sr860_accepts_a_reference_the_sr830_cannot_reach() -> None:
    lockin, t = scripted("sr860", [*set_and_read("FREQ", "200000"), *set_and_read("SLVL", "0.5")])
    lockin.set_reference(2e5, 0.5)
    assert t.done()


@pytest.mark.parametrize(("model", "query"), [("sr830", "SNAP? 1,2"), ("sr860", "SNAP? X,Y")])
def test_read_xy_takes_both_at_one_instant(model: str, query: str) -> None:
    lockin, t = scripted(model, [(query, "1.250000e-03,-2.000000e-06")])
    assert lockin.read_xy() == (1.25e-3, -2e-6)
    assert t.done()


@pytest.mark.parametrize("garbage", ["1.25e-03", "1.25e-03,x", "1,2,3", ""])
def test_garbled_xy_is_retried_then_lost(garbage: str) -> None:
    lockin, t = scripted("sr830", [("SNAP? 1,2", garbage)] * 3)
    with pytest.raises(InstrumentLost, match="SNAP"):
        lockin.read_xy()
    assert t.clears == 3


@pytest.mark.parametrize(
    ("status", "expected"), [("0", False), ("1", True), ("2", True), ("4", True), ("8", False)]
)
def test_sr830_overload_bits(status: str, expected: bool) -> None:
    lockin, _ = scripted("sr830", [("LIAS?", status)])
    assert lockin.overloaded() is expected


def test_sr830_status_out_of_range_is_retried_then_the_lockin_lost() -> None:
    lockin, _ = scripted("sr830", [("LIAS?", "300")] * 3)
    with pytest.raises(InstrumentLost, match=r"LIA status byte in 0 \.\. 255, got '300'"):
        lockin.overloaded()


@pytest.mark.parametrize(
    ("latched", "present", "expected"),
    [("0", "0", False), ("16", "0", True), ("0", "1", True), ("2", "0", True), ("8", "8", False)],
)
def test_sr860_overload_bits(latched: str, present: str, expected: bool) -> None:
    lockin, _ = scripted("sr860", [("LIAS?", latched), ("CUROVLDSTAT?", present)])
    assert lockin.overloaded() is expected


def test_wrong_model_is_refused() -> None:
    t = ScriptedTransport([("OUTX 1", None), ("*IDN?", IDN_860)])
    with pytest.raises(InstrumentError, match="expected an SR830"):
        SR830.from_profile(settings("sr830"), clock=VirtualClock(), open_transport=opener(t))
    assert t.closed


def test_setting_that_does_not_read_back_is_an_error() -> None:
    lockin, _ = scripted("sr830", [("OFLT 9", None), ("OFLT?", "8")])
    with pytest.raises(InstrumentError, match="not accepted"):
        lockin.set_time_constant(0.3)


def test_settings_read_back_in_si() -> None:
    lockin, _ = scripted(
        "sr860", [("OFLT?", "12"), ("SCAL?", "3"), ("FREQ?", "1017"), ("SLVL?", "0.25")]
    )
    assert lockin.time_constant() == pytest.approx(1.0)
    assert lockin.sensitivity() == pytest.approx(0.1)
    assert lockin.reference() == (1017.0, 0.25)


def test_index_outside_the_table_is_retried_then_the_lockin_lost() -> None:
    lockin, _ = scripted("sr830", [("SENS?", "27")] * 3)
    with pytest.raises(InstrumentLost, match=r"SENS index in 0 \.\. 26, got '27'"):
        lockin.sensitivity()


# --- against the emulators ---------------------------------------------------------------


class Level:
    """A lock-in input held at `volts` from whenever it is set (sensor gain ∝ excitation)."""

    def __init__(self, volts: float = 0.0, density: float = 0.0) -> None:
        self.volts = volts
        self.density = density

    def lockin_signal(self, times: Sequence[float], excitation: float) -> np.ndarray:
        return np.full(len(times), self.volts * excitation)

    def lockin_noise_density(self, excitation: float) -> float:
        return self.density * excitation


EMULATORS = {"sr830": (SR830, SR830Emulator), "sr860": (SR860, SR860Emulator)}


def emulated(model: str, source: Level, seed: int = 1):
    clock = VirtualClock()
    driver_cls, emulator_cls = EMULATORS[model]
    emulator = emulator_cls(clock, source, rng=np.random.default_rng(seed))
    lockin = driver_cls.from_profile(
        settings(model),
        clock=clock,
        open_transport=lambda address, link: EmulatorTransport(emulator, clock=clock),
    )
    return lockin, emulator, clock


@pytest.mark.parametrize("model", ["sr830", "sr860"])
def test_emulator_answers_the_driver(model: str) -> None:
    lockin, _, clock = emulated(model, Level(0.123))
    assert lockin.identify().model == model.upper()
    assert lockin.time_constant() == pytest.approx(0.03)
    assert lockin.sensitivity() == pytest.approx(0.5)
    assert lockin.reference() == pytest.approx((1017.0, 1.0))
    clock.sleep(1.0)  # 33 time constants
    x, y = lockin.read_xy()
    r = 0.16 / 1017.0  # AC coupling: one pole at 0.16 Hz, H = 1 / (1 - i r)
    assert x == pytest.approx(0.123 / (1 + r * r), rel=1e-6)  # SNAP? gives 6 digits
    assert y == pytest.approx(0.123 * r / (1 + r * r), rel=1e-5)
    assert not lockin.overloaded()


@pytest.mark.parametrize(
    ("model", "slope"), [("sr830", 0), ("sr830", 1), ("sr860", 2), ("sr860", 3)]
)
@pytest.mark.parametrize("taus", [0.5, 1.0, 3.0])
def test_step_response_is_that_of_cascaded_rc_poles(model: str, slope: int, taus: float) -> None:
    source = Level(0.0)
    lockin, emulator, clock = emulated(model, source)
    lockin.link.write(f"OFSL {slope}")
    clock.sleep(1.0)
    emulator.advance_to(clock.now())  # the input was 0 until now
    source.volts = 0.2
    clock.sleep(taus * 0.03)
    x, _ = lockin.read_xy()
    n = slope + 1  # poles: the step response of n RC sections is the Erlang CDF
    expected = 0.2 * (1 - math.exp(-taus) * sum(taus**k / math.factorial(k) for k in range(n)))
    assert x == pytest.approx(expected, rel=1e-6)


def test_noise_rms_follows_the_equivalent_noise_bandwidth() -> None:
    density = 1e-3  # V/√Hz
    source = Level(0.0, density)
    lockin, _, clock = emulated("sr830", source, seed=7)

    def spread(tau: float) -> float:
        lockin.set_time_constant(tau)
        xs = []
        for _ in range(400):
            clock.sleep(10 * tau)
            xs.append(lockin.read_xy()[0])
        return float(np.std(xs))

    # 12 dB/oct: ENBW = 1/(8 τ). The SD of a 400-sample SD is 3.5 %; allow 4 of those.
    assert spread(0.03) == pytest.approx(density * math.sqrt(1 / (8 * 0.03)), rel=0.14)
    assert spread(0.3) == pytest.approx(density * math.sqrt(1 / (8 * 0.3)), rel=0.14)


@pytest.mark.parametrize("model", ["sr830", "sr860"])
def test_input_overload_latches_until_read(model: str) -> None:
    source = Level(1.5)  # beyond the SR830's 1 V input and the SR860's 1 V range
    lockin, emulator, clock = emulated(model, source)
    clock.sleep(0.5)
    emulator.advance_to(clock.now())  # the input was 1.5 V until now
    source.volts = 0.1
    clock.sleep(0.5)
    assert lockin.overloaded()
    assert not lockin.overloaded()


@pytest.mark.parametrize("model", ["sr830", "sr860"])
def test_output_beyond_full_scale_overloads_and_saturates(model: str) -> None:
    lockin, _, clock = emulated(model, Level(0.8))  # full scale 0.5 V
    clock.sleep(0.5)
    x, _ = lockin.read_xy()
    assert x == pytest.approx(0.55)  # 1.1 × full scale
    assert lockin.overloaded()


def test_interference_fault_overloads_the_input() -> None:
    lockin, emulator, clock = emulated("sr830", Level(0.01))
    emulator.interference = 2.0
    clock.sleep(0.1)
    assert lockin.overloaded()


@pytest.mark.parametrize("model", ["sr830", "sr860"])
def test_emulator_sets_error_bits_like_the_instrument(model: str) -> None:
    clock = VirtualClock()
    emulator = EMULATORS[model][1](clock, Level())
    sens = "SENS" if model == "sr830" else "SCAL"
    assert emulator.handle("*ESR?") == str(1 << 7)  # power-on
    assert emulator.handle("FOO 1") is None
    assert not int(emulator.handle("*STB? 5"))  # ESB reports only enabled events
    emulator.handle("*ESE 48")
    assert emulator.handle("*STB? 5") == "1"
    assert emulator.handle("*ESR? 5") == "1" and emulator.handle("*ESR? 5") == "0"
    assert emulator.handle("FOO 1") is None
    assert emulator.handle("*ESR?") == str(1 << 5)  # command error, cleared by reading
    before = emulator.handle(f"{sens}?")
    assert emulator.handle(f"{sens} 28") is None
    assert emulator.handle(f"{sens}?") == before  # refused: nothing changed
    assert emulator.handle("*ESR?") == str(1 << 4)  # execution error
    assert emulator.handle("FREQ -5") is None and emulator.handle("*ESR?") == str(1 << 4)
    assert emulator.handle("snap? 17,17") is None and emulator.handle("*ESR?") == str(1 << 4)
    emulator.handle("FOO")
    emulator.handle("*CLS")
    assert emulator.handle("*ESR?") == "0"


def test_reset_restores_power_on_settings() -> None:
    emulator = SR830Emulator(VirtualClock(), Level())
    emulator.handle("OFLT 3;SENS 4")
    assert emulator.handle("OFLT?;SENS?") == "3\n4"  # one line per reply, as the SR830 does
    emulator.handle("*RST")
    assert emulator.handle("OFLT?;SENS?") == "8\n26"


def test_external_reference_without_a_signal_unlocks() -> None:
    lockin, emulator, clock = emulated("sr830", Level(0.2))
    lockin.link.write("FMOD 0")
    clock.sleep(1.0)
    assert lockin.read_xy()[0] == pytest.approx(0.0, abs=1e-12)
    assert emulator.handle("LIAS? 3") == "1"


# --- the [lockin] keys that choose what X and Y mean ------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "key", "expected"),
    [
        ("reference_phase_deg = 0.0", "reference_phase_deg = 270.0", "phase_deg", "[-180, 180]"),
        ("harmonic = 1", "harmonic = 0", "lockin.harmonic", "[1, "),
        ("harmonic = 1", "harmonic = 1.5", "lockin.harmonic", "whole"),
        ('input = "A"', 'input = "I"', "lockin.input", "'A', 'A-B'"),
        ('coupling = "AC"', 'coupling = "ac"', "lockin.coupling", "'AC', 'DC'"),
        ('grounding = "float"', 'grounding = "earth"', "lockin.grounding", "'float', 'ground'"),
        ('reserve = "normal"', 'reserve = "max"', "lockin.reserve", "'low_noise'"),
        ("sync_filter = false", "sync_filter = 1", "lockin.sync_filter", "true or false"),
    ],
)
def test_bad_lockin_choices_are_named(old: str, new: str, key: str, expected: str) -> None:
    text = (Path(__file__).resolve().parents[1] / "configs" / "simulator.toml").read_text()
    assert old in text
    with pytest.raises(InputError) as err:
        parse_profile(text.replace(old, new), Path("/lab/bad.toml"))
    message = str(err.value)
    assert "/lab/bad.toml" in message and key in message and expected in message


def test_lockin_choices_default_to_the_plain_voltage_measurement() -> None:
    text = (Path(__file__).resolve().parents[1] / "configs" / "simulator.toml").read_text()
    start = text.index("reference_phase_deg")
    end = text.index("sync_filter = false") + len("sync_filter = false")
    lockin = parse_profile(text[:start] + text[end:], Path("p.toml")).lockin
    assert (lockin.reference_phase, lockin.harmonic, lockin.input) == (0.0, 1, "A")
    assert (lockin.coupling, lockin.grounding, lockin.reserve) == ("AC", "float", "normal")
    assert lockin.sync_filter is False


def test_a_refused_harmonic_is_named_before_anything_is_sent() -> None:
    opening = sr830_opening()
    t = ScriptedTransport(opening[: opening.index(("HARM 1", None))])  # the reference only
    lockin_settings = replace(settings("sr830"), harmonic=200)  # 200 × 1017 Hz > 102 kHz
    with pytest.raises(RangeError, match="harmonic"):
        SR830.from_profile(lockin_settings, clock=VirtualClock(), open_transport=opener(t))


@pytest.mark.parametrize("reply", ["#\u00b2", "#2\u00b2\u00b3ab", "#1", "#0", ""])
def test_a_block_header_with_latin1_digits_is_a_protocol_error(reply: str) -> None:
    """'²' and '³' (latin-1, as the link decodes) pass str.isdigit but not int()."""
    with pytest.raises(ProtocolError, match="block"):
        parse_block(reply)


class _LineLink:
    """A line-terminated link: each read ends at the next LF, which it drops."""

    def __init__(self, sent: str) -> None:
        self.lines = sent.split("\n")

    def query(self, message: str) -> str:
        return self.read()

    def read(self) -> str:
        return self.lines.pop(0)


@pytest.mark.parametrize("payload", ["ab\ncd\n\nef", "ab\n", "\n", "abc"])
def test_a_binary_block_holding_lf_bytes_is_read_whole(payload: str) -> None:
    """Each LF in the block ends one read of a line-terminated link (VISA over TCP)."""
    link = _LineLink(f"#1{len(payload)}{payload}\n")
    assert parse_block(read_block(link, "CAPTUREGET? 0,1")) == payload.encode()  # type: ignore
    assert link.lines == [""]  # (split's tail after the last LF) nothing left unread
