"""SR830 and SR860 emulators on their own: each setting's physics against closed forms, the
status registers' rules, the data buffers' formats, sizes and rates in simulated time, and our
driver putting right a lock-in its last user left on harmonic 2, 90° and the current input
(reported in the scan file's instrument snapshot)."""

from __future__ import annotations

import cmath
import json
import math
import struct
from dataclasses import replace

import numpy as np
import pytest
from lockin_input import Level

import smm_daq.instruments.rig as rig_module
from drivers.sr830 import SR830
from drivers.sr860 import SR860
from simulators.backend import SimulatedBackend
from simulators.emulator import BinaryReply, EmulatorTransport
from simulators.lockin_emulator import (
    AC_COUPLING_CORNER,
    CURRENT_INPUT_IMPEDANCE,
    SENSOR_SOURCE_RESISTANCE,
)
from simulators.sr830_emulator import BUFFER_POINTS, SR830Emulator
from simulators.sr860_emulator import SR860Emulator
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.clock import VirtualClock
from smm_daq.instruments.profile import LockInSettings, load_profile
from smm_daq.storage.h5file import open_read

V = 0.2  # V in phase at the input


def settled(model: str, commands: str = "", volts: float = V):
    clock = VirtualClock()
    cls = SR830Emulator if model == "sr830" else SR860Emulator
    emulator = cls(clock, Level(volts), rng=np.random.default_rng(0))
    emulator.handle("*CLS;ICPL 1")  # DC coupling unless the commands say otherwise
    if commands:
        emulator.handle(commands)
    clock.sleep(5.0)  # ≥ 16 time constants at the defaults
    return emulator, clock


def xy(emulator) -> tuple[float, float]:
    o = emulator.outputs()
    return o["X"], o["Y"]


# --- physics of each setting ----------------------------------------------------------------


@pytest.mark.parametrize("model", ["sr830", "sr860"])
@pytest.mark.parametrize("phase", [0.0, 30.0, 90.0, -135.0])
def test_phase_rotates_x_and_y(model: str, phase: float) -> None:
    emulator, _ = settled(model, f"PHAS {phase}")
    x, y = xy(emulator)
    z = V * cmath.exp(-1j * math.radians(phase))  # θ_signal − θ_reference
    assert x == pytest.approx(z.real, abs=1e-9) and y == pytest.approx(z.imag, abs=1e-9)


@pytest.mark.parametrize("model", ["sr830", "sr860"])
@pytest.mark.parametrize("phase", ["-360", "-0", "360", "-720"])
def test_a_phase_wrapped_to_zero_reads_0_not_minus_0(model: str, phase: str) -> None:
    """The instrument never answers "-0": PHAS -360 (in both manuals' range) wraps to 0."""
    emulator, _ = settled(model)
    if model == "sr830" and phase == "-720":
        phase = "720"  # the SR830 takes -360 to 729.99
    emulator.handle(f"PHAS {phase}")
    assert emulator.handle("PHAS?") == "0"
    assert emulator.handle("*ESR?") == "0"


@pytest.mark.parametrize("model", ["sr830", "sr860"])
def test_a_harmonic_other_than_the_first_sees_no_signal(model: str) -> None:
    emulator, _ = settled(model, "HARM 3")
    assert emulator.outputs()["R"] == pytest.approx(0.0, abs=1e-12)
    assert emulator.handle("HARM?") == "3"


def test_harmonic_times_frequency_is_bounded() -> None:
    emulator, _ = settled("sr830", "FREQ 60000")
    assert emulator.handle("HARM 2") is None and emulator.handle("HARM?") == "1"
    assert emulator.handle("*ESR? 4") == "1"
    emulator.handle("FREQ 1000;HARM 50;FREQ 10000")  # the harmonic drops with the frequency
    assert emulator.handle("HARM?") == "10"


@pytest.mark.parametrize(("config", "gain"), [(2, 1e6), (3, 1e8)])
def test_sr830_current_input_reads_amperes_on_its_own_scale(config: int, gain: float) -> None:
    emulator, _ = settled("sr830", f"ISRC {config}", volts=1e-5)  # 0.9 nA: on scale for both
    current = 1e-5 / (SENSOR_SOURCE_RESISTANCE + CURRENT_INPUT_IMPEDANCE)
    assert xy(emulator)[0] == pytest.approx(current, rel=1e-6)
    assert emulator.full_scale == pytest.approx(1.0 / gain)  # SENS 26 is 1 V over the gain


@pytest.mark.parametrize(("icur", "gain"), [(0, 1e6), (1, 1e8)])
def test_sr860_current_input_reads_amperes_on_its_own_scale(icur: int, gain: float) -> None:
    emulator, _ = settled("sr860", f"IVMD 1;ICUR {icur}", volts=1e-5)
    current = 1e-5 / (SENSOR_SOURCE_RESISTANCE + CURRENT_INPUT_IMPEDANCE)
    assert xy(emulator)[0] == pytest.approx(current, rel=1e-6)
    assert emulator.full_scale == pytest.approx(1.0 / gain)


@pytest.mark.parametrize(("model", "differential"), [("sr830", "ISRC 1"), ("sr860", "ISRC 1")])
def test_differential_input_rejects_common_mode_pickup(model: str, differential: str) -> None:
    single, _ = settled(model)
    single.interference = 0.05
    double, _ = settled(model, differential)
    double.interference = 0.05
    for e in (single, double):
        e.clock.sleep(5.0)
    assert xy(single)[0] == pytest.approx(V + 0.05, rel=1e-9)
    assert xy(double)[0] == pytest.approx(V + 0.05 * 1e-5, rel=1e-9)


@pytest.mark.parametrize("model", ["sr830", "sr860"])
@pytest.mark.parametrize("frequency", [0.5, 3.0, 1000.0])
def test_ac_coupling_is_a_one_pole_high_pass(model: str, frequency: float) -> None:
    emulator, clock = settled(model, f"ICPL 0;FREQ {frequency};OFLT 12")  # 10 s / 1 s
    clock.sleep(200.0)
    x, y = xy(emulator)
    h = 1j * frequency / (AC_COUPLING_CORNER + 1j * frequency)
    assert x == pytest.approx(V * h.real, rel=1e-6) and y == pytest.approx(V * h.imag, rel=1e-6)


def test_sr830_reserve_sets_the_input_overload() -> None:
    # 1 mV in on the 5 µV scale: low noise allows 10 × full scale, normal 1e3, high 1e5.
    emulator, clock = settled("sr830", "SENS 10;RMOD 2", volts=1e-3)
    assert emulator.handle("LIAS? 0") == "1"
    emulator.handle("RMOD 1;*CLS")
    clock.sleep(1.0)
    assert emulator.handle("LIAS? 0") == "0"
    emulator.handle("ARSV")  # the least reserve that holds the input: normal
    assert emulator.handle("RMOD?") == "1"


def test_offsets_are_subtracted_and_auto_offset_zeroes() -> None:
    emulator, _ = settled("sr830", "SENS 25;OEXP 1,20,0")  # 20 % of 0.5 V
    assert xy(emulator)[0] == pytest.approx(V - 0.1, rel=1e-9)
    assert emulator.handle("OEXP? 1") == "20.00,0"
    emulator.handle("AOFF 1")
    assert xy(emulator)[0] == pytest.approx(0.0, abs=1e-9)
    assert emulator.handle("OEXP 1,106,0") is None and emulator.handle("*ESR? 4") == "1"


def test_auto_phase_brings_y_to_zero() -> None:
    emulator, clock = settled("sr860", "PHAS 50")
    emulator.handle("APHS")
    clock.sleep(5.0)
    x, y = xy(emulator)
    assert x == pytest.approx(V, rel=1e-9) and y == pytest.approx(0.0, abs=1e-9)


def test_sr860_noise_bandwidth_and_signal_level() -> None:
    emulator, _ = settled("sr860", "OFLT 10;OFSL 3")
    assert float(emulator.handle("ENBW?")) == pytest.approx(5 / (64 * 0.1))
    assert emulator.handle("ILVL?") == "2"  # 0.2 V on the 1 V range
    emulator.handle("IRNG 1")  # 300 mV
    assert emulator.handle("ILVL?") == "3"
    emulator.handle("IRNG 3")  # 30 mV: overload
    assert emulator.handle("ILVL?") == "4"
    assert int(emulator.handle("CUROVLDSTAT?")) & (1 << 4)


# --- protocol ------------------------------------------------------------------------------


def test_sr830_snap_takes_every_parameter_and_compound_queries_give_lines() -> None:
    emulator, _ = settled("sr830", "AUXV 1,1.5;DDEF 1,1,0;DDEF 2,1,0")
    emulator.aux_inputs[2] = 0.25
    values = [float(v) for v in emulator.handle("SNAP? 1,2,3,4,7,9").split(",")]
    assert values == pytest.approx([V, 0.0, V, 0.0, 0.25, 1000.0], abs=1e-9)
    ch1, ch2 = (float(v) for v in emulator.handle("SNAP? 10,11").split(","))
    assert ch1 == pytest.approx(V) and ch2 == pytest.approx(0.0, abs=1e-6)  # R and θ
    assert emulator.handle("SNAP? 1") is None and emulator.handle("SNAP? 1,12") is None
    assert emulator.handle("AUXV? 1;DDEF? 1;FPOP? 1") == "1.500\n1,0\n1"


def test_status_registers_follow_ieee_488_2() -> None:
    emulator, _ = settled("sr830")
    emulator.handle("*CLS")
    emulator.handle("FOO;SENS 99")  # command error, then execution error
    assert emulator.handle("*ESR? 5") == "1" and emulator.handle("*ESR? 5") == "0"  # one bit
    assert emulator.handle("*ESR?") == str(1 << 4)  # the rest, then cleared
    assert emulator.handle("*STB?") == "3"  # SCN (no storage) and IFC
    emulator.handle("*ESE 16;*SRE 32;SENS 99")
    stb = int(emulator.handle("*STB?"))
    assert stb & (1 << 5) and stb & (1 << 6)  # ESB enabled, so the summary bit (MSS) too
    emulator.handle("*CLS")
    assert not int(emulator.handle("*STB?")) & (1 << 5)
    emulator.handle("FMOD 0")
    emulator.clock.sleep(1.0)
    emulator.handle("LIAE 8")
    assert int(emulator.handle("*STB? 3")) == 1  # unlocked, enabled
    assert emulator.handle("LIAS? 3") == "1" and emulator.handle("LIAS? 3") == "0"
    assert emulator.handle("ERRS?") == "0" and emulator.handle("ERRE?") == "0"


# --- SR830 data buffer ---------------------------------------------------------------------


def test_sr830_buffer_samples_at_the_rate_in_simulated_time() -> None:
    emulator, clock = settled("sr830", "SRAT 13;SEND 0;REST")  # 512 Hz, one shot
    emulator.handle("STRT")
    clock.sleep(2.0)
    assert emulator.handle("SPTS?") == "1024"
    assert emulator.handle("*STB? 0") == "0"  # storage in progress
    clock.sleep(60.0)  # one shot: full after 16383 points, then stops
    assert emulator.handle("SPTS?") == str(BUFFER_POINTS)
    assert emulator.handle("*STB? 0") == "1"


def test_sr830_loop_buffer_keeps_the_latest_points() -> None:
    emulator, clock = settled("sr830", "SRAT 13;SEND 1;REST;STRT")
    clock.sleep(3600.0)
    emulator.handle("PAUS")
    assert emulator.handle("SPTS?") == str(BUFFER_POINTS)
    emulator.handle("REST")
    assert emulator.handle("SPTS?") == "0"


def test_sr830_trigger_mode_stores_one_point_per_trigger() -> None:
    emulator, clock = settled("sr830", "SRAT 14;REST;STRT")
    for _ in range(5):
        clock.sleep(0.3)
        emulator.handle("TRIG")
    assert emulator.handle("SPTS?") == "5" and emulator.handle("LIAS? 6") == "1"
    emulator.handle("REST;SRAT 4;TSTR 1")  # a trigger starts storage at 1 Hz
    emulator.handle("TRIG")
    clock.sleep(3.0)
    assert emulator.handle("SPTS?") == "3"


def test_sr830_trace_formats_agree_and_hold_no_line_feed() -> None:
    emulator, clock = settled("sr830", "SRAT 10;REST;OFLT 0", volts=0.0)
    emulator.handle("STRT")
    source = emulator.source
    for k in range(200):  # a ramp of values crossing many byte patterns
        clock.sleep(1 / 64)
        emulator.advance_to(clock.now())  # as the world does before its input changes
        source.volts = 1e-3 * (k - 100) / 7.0
    emulator.handle("PAUS")
    n = int(emulator.handle("SPTS?"))
    assert n == 200
    ascii_values = [float(v) for v in emulator.handle(f"TRCA? 1,0,{n}").split(",")[:-1]]
    floats = emulator.handle(f"TRCB? 1,0,{n}")
    words = emulator.handle(f"TRCL? 1,0,{n}")
    assert isinstance(floats, BinaryReply) and isinstance(words, BinaryReply)
    raw_f, raw_l = floats.encode("latin-1"), words.encode("latin-1")
    assert len(raw_f) == 4 * n and len(raw_l) == 4 * n
    assert b"\n" not in raw_f and b"\n" not in raw_l
    from_trcb = struct.unpack(f"<{n}f", raw_f)
    pairs = np.frombuffer(raw_l, dtype="<i2").reshape(-1, 2)
    from_trcl = pairs[:, 0] * 2.0 ** (pairs[:, 1].astype(float) - 124)
    np.testing.assert_array_equal(from_trcb, from_trcl)
    np.testing.assert_allclose(ascii_values, from_trcl, rtol=1e-6)
    assert emulator.handle(f"TRCA? 1,{n - 1},2") is None  # beyond the stored points
    assert emulator.handle("*ESR? 4") == "1"


# --- SR860 capture buffer ------------------------------------------------------------------


def test_sr860_capture_rules() -> None:
    emulator, clock = settled("sr860", "OFLT 8")  # 10 ms
    rate_max = float(emulator.handle("CAPTURERATEMAX?"))
    assert rate_max == 39062.5  # as a real SR860 answers (QCoDeS's SR86x example notebook)
    emulator.handle("CAPTURELEN 3;CAPTURECFG XY;CAPTURERATE 2")
    assert emulator.handle("CAPTURELEN?") == "4"  # whole 2 kB blocks
    assert float(emulator.handle("CAPTURERATE?")) == pytest.approx(rate_max / 4)
    emulator.handle("CAPTURESTART ONE,IMM")
    assert emulator.handle("CAPTURESTAT?") == "3"  # capturing, started
    assert emulator.handle("CAPTUREGET? 0,1") is None  # only while stopped
    assert emulator.handle("*ESR? 4") == "1"
    assert emulator.handle("CAPTURELEN 8") is None  # no reconfiguring while capturing
    clock.sleep(100.5 / (rate_max / 4))
    assert emulator.handle("CAPTUREBYTES?") == str(100 * 2 * 4)
    clock.sleep(10000 / (rate_max / 4))  # one shot: 512 samples fill 4 kB, then it stops
    assert emulator.handle("CAPTURESTAT?") == "6"  # started and wrapped, not capturing
    assert emulator.handle("CAPTUREBYTES?") == "4096" and emulator.handle("CAPTUREPROG?") == "4"
    block = emulator.handle("CAPTUREGET? 0,4")
    assert block.startswith("#44096") and block.endswith("\n")
    values = np.frombuffer(block[6:-1].encode("latin-1"), dtype="<f4").reshape(-1, 2)
    np.testing.assert_allclose(values, [[V, 0.0]] * 512, rtol=1e-6, atol=1e-12)
    assert emulator.handle("CAPTUREVAL? 511") == f"{values[511, 0]:.6e},{values[511, 1]:.6e}"


def test_sr860_continuous_capture_wraps_and_trigger_modes() -> None:
    emulator, clock = settled("sr860", "CAPTURELEN 2;CAPTURECFG 0")
    emulator.handle("CAPTURESTART CONT,IMM")
    clock.sleep(60.0)
    assert int(emulator.handle("CAPTURESTAT?")) == 7  # capturing, started, wrapped
    emulator.handle("CAPTURESTOP")
    assert emulator.handle("CAPTUREPROG?") == "2"
    emulator.handle("CAPTURECFG 0;CAPTURESTART ONE,SAMP")
    assert emulator.handle("CAPTURESTAT?") == "0"  # waiting for the first trigger
    for _ in range(3):
        clock.sleep(1.0)
        emulator.handle("TRIG")
    assert emulator.handle("CAPTUREBYTES?") == "12"


def test_sr860_capture_runs_on_after_its_stop_to_its_2_kb_block_end() -> None:
    """The manual: after CAPTURESTOP, bit 0 of CAPTURESTAT? may stay 1 until the current
    2 kB block is full; CAPTUREGET? meanwhile is an execution error. X and Y at 9.5 Hz (a
    100 ms time constant's ceiling over 2^8) fill a block, 256 samples, in 27 s."""
    emulator, clock = settled("sr860", "CAPTURELEN 8;CAPTURECFG XY;CAPTURERATE 8")
    rate = float(emulator.handle("CAPTURERATE?"))
    emulator.handle("CAPTURESTART ONE,IMM")
    clock.sleep(100.5 / rate)
    emulator.handle("CAPTURESTOP")
    assert emulator.handle("CAPTURESTAT?") == "3"  # still capturing, to the block's end
    assert emulator.handle("CAPTUREGET? 0,2") is None and emulator.handle("*ESR? 4") == "1"
    assert emulator.handle("CAPTURESTART ONE,IMM") is None  # nor starts again meanwhile
    clock.sleep(155 / rate)  # 255 samples in all: one short of the block
    assert emulator.handle("CAPTURESTAT?") == "3" and emulator.handle("CAPTUREBYTES?") == "2040"
    clock.sleep(100.0)
    assert emulator.handle("CAPTURESTAT?") == "2"  # stopped at the block's end, not later
    assert emulator.handle("CAPTUREBYTES?") == "2048" and emulator.handle("CAPTUREPROG?") == "2"
    assert emulator.handle("CAPTUREGET? 0,2").startswith("#42048")
    emulator.handle("CAPTURESTART ONE,IMM")  # a stop on a block's edge (none begun) is at once
    emulator.handle("CAPTURESTOP")
    assert emulator.handle("CAPTURESTAT?") == "2"


# --- our driver at connect, and the file --------------------------------------------------


def settings(model: str) -> LockInSettings:
    lockin = load_profile().lockin
    return replace(lockin, link=replace(lockin.link, implementation=model))


@pytest.mark.parametrize("model", ["sr830", "sr860"])
def test_our_driver_puts_right_a_lockin_left_in_another_state_in_process(model: str) -> None:
    left = "HARM 2;PHAS 90;ISRC 2;RMOD 0;SYNC 1;OEXP 1,20,1" if model == "sr830" else (
        "HARM 2;PHAS 90;IVMD 1;ISRC 1;IGND 1;COFP 0,50;CEXP 1,2"
    )
    emulator, clock = settled(model, left)
    cls = SR830 if model == "sr830" else SR860
    lockin = cls.from_profile(
        settings(model),
        clock=clock,
        open_transport=lambda address, link: EmulatorTransport(emulator, clock=clock),
    )
    assert (emulator.harmonic, emulator.phase, emulator.current_gain) == (1, 0.0, 0.0)
    assert not emulator.differential and not emulator.sync_filter
    assert emulator.offsets == [0.0, 0.0, 0.0] and emulator.expands == [0, 0, 0]
    clock.sleep(1.0)
    x, _ = lockin.read_xy()
    assert x == pytest.approx(V / (1 + (AC_COUPLING_CORNER / 1017.0) ** 2), rel=1e-6)
    snap = lockin.snapshot()
    assert snap["harmonic"] == 1 and snap["reference_phase_deg"] == 0.0
    assert snap["input"] == "A" and snap["grounding"] == "float"


class LeftBehind(SimulatedBackend):
    """The simulated rig whose lock-in was left on harmonic 2, 90° and the current input."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lockin.handle("HARM 2;PHAS 90;ISRC 2")


def test_scan_file_snapshot_reports_the_settings_put_right(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(rig_module, "simulator_class", lambda profile: LeftBehind)
    rig = rig_module.open_rig(load_profile(), world_options={"noise_rms": 0.0})
    try:
        plan = ScanPlan.from_center("scan", (12.5e-3, 12.5e-3), (20e-6, 20e-6), 10e-6)
        assert Sequencer(rig, tmp_path / "s.h5", plan).run() == "finished"
    finally:
        rig.close()
    with open_read(tmp_path / "s.h5") as f:
        group = f["scan/instrument/snapshot/lockin"]
        assert group["harmonic"][()] == 1 and group["reference_phase"][()] == 0.0
        assert group["reference_phase"].attrs["units"] == "degree"
        assert group["input"].asstr()[()] == "A"
        stored = json.loads(f["scan/instrument/snapshot/json"].asstr()[()])["lockin"]
        assert stored["coupling"] == "AC" and stored["reserve"] == "normal"


@pytest.mark.parametrize(("model", "start", "read"), [
    ("sr830", "OFLT 7;OFSL 1;SRAT 13;SEND 0;REST;STRT", "TRCA? 1,9,200"),
    ("sr860", "OFLT 9;OFSL 1;CAPTURELEN 2;CAPTURECFG X;CAPTURESTART ONE,IMM", "CAPTUREGET? 0,2"),
])  # fmt: skip
def test_buffered_step_response_is_that_of_two_rc_poles(model: str, start: str, read: str) -> None:
    emulator, clock = settled(model, volts=0.0)
    emulator.handle(start)
    rate = 512.0 if model == "sr830" else emulator.capture_rate()
    clock.sleep(10 / rate - 1e-9)  # just before the 10th sample
    emulator.advance_to(clock.now())
    emulator.source.volts = V  # a step, held from the 10th sample on
    clock.sleep(1.0)
    emulator.handle("CAPTURESTOP" if model == "sr860" else "PAUS")
    if model == "sr830":
        x = np.array([float(v) for v in emulator.handle(read).split(",")[:-1]])
    else:
        x = np.frombuffer(emulator.handle(read)[6:-1].encode("latin-1"), dtype="<f4")[9:209]
    # sample 10 + m holds m intervals of input V: X = V (1 − e^(−s)(1 + s)), s = m / (rate τ)
    s = np.arange(len(x)) / (rate * 0.03)
    np.testing.assert_allclose(x, V * (1 - np.exp(-s) * (1 + s)), rtol=1e-4, atol=1e-9)


def test_sr830_buffer_points_in_the_line_feed_band_are_nudged_not_zeroed() -> None:
    # 4-byte floats from 0.03369 to 0.03394 V have 0x0A as their second byte; the point
    # stored must stay within 0.4 % of the value (it once fell back to zero)
    from simulators.sr830_emulator import point_value, storable_point

    values = np.linspace(0.0335, 0.0341, 400)
    stored = np.array([point_value(storable_point(v)) for v in values])
    np.testing.assert_allclose(stored, values, rtol=0.004)
    assert all(b"\n" not in struct.pack("<f", v) for v in stored)


@pytest.mark.parametrize("command", ["PSTF2, 1000", "FREQ2000", "FREQ ? ", "OUTP?0",
                                     "SNAP?0,1"])
def test_the_sr860_takes_commands_only_as_its_manual_spells_them(command: str) -> None:
    """The SR860 manual ("Command Syntax"): at least one space between the mnemonic and its
    first argument, none between the mnemonic and '?'. Anything else is a command error: no
    reply, nothing changed."""
    emulator, _ = settled("sr860")
    before = [emulator.handle(q) for q in ("FREQ?", "PSTF? 2")]
    assert emulator.handle(command) is None
    assert emulator.handle("*ESR?") == str(1 << 5)
    assert [emulator.handle(q) for q in ("FREQ?", "PSTF? 2")] == before
    assert emulator.handle("PSTF 2,\t1500") is None and emulator.handle("PSTF? 2") == "1500"
    assert emulator.handle("*ESR?") == "0"



def test_the_sr830_reads_a_command_with_spaces_anywhere_in_it() -> None:
    """The SR830 manual ("Command Syntax"): commands "may contain any number of embedded space
    characters". Unfixed, a space inside the mnemonic or a number was a command error."""
    emulator, _ = settled("sr830")
    assert emulator.handle("p h a s 4 5 . 5") is None
    assert emulator.handle("P H A S ?") == "45.5"
    assert emulator.handle("O U T P ? 1") == emulator.handle("OUTP?1")
    assert emulator.handle("*ESR?") == "0"
