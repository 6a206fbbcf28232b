"""Other people's lock-in drivers as referees: PyMeasure's SR830 and SR860 and QCoDeS's SR830
and SR86x, unmodified, drive the served emulators over loopback TCP (pyvisa-py SOCKET
resources), as their users do. The simulated world runs on a virtual clock that only the test
advances, so buffers fill in simulated time and nothing sleeps. A failure here means the
emulator differs from the instrument.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import pytest
import pyvisa

# The third-party classes keep their own names, prefixed with their package.
# ruff: noqa: N811
pytest.importorskip("pymeasure")
pytest.importorskip("qcodes")

from pymeasure.instruments.srs import SR830 as PyMeasureSR830
from pymeasure.instruments.srs import SR860 as PyMeasureSR860
from qcodes import Station
from qcodes.instrument import Instrument
from qcodes.instrument_drivers.stanford_research import SR830 as QcodesSR830
from qcodes.instrument_drivers.stanford_research import SR860 as QcodesSR860

from drivers.sr830 import SR830
from drivers.sr860 import SR860
from simulators.backend import SimulatedBackend, WorldSynced
from simulators.sample import VirtualSample
from simulators.sensor_model import enbw
from simulators.sr830_emulator import SR830Emulator
from simulators.sr860_emulator import SR860Emulator
from simulators.tcp_server import EmulatorServer
from smm_daq.clock import VirtualClock
from smm_daq.errors import InstrumentError, ReadStopped
from smm_daq.instruments import driver_calls
from smm_daq.instruments.profile import LockInSettings, load_profile

TIMEOUT_S = 1.0
# QCoDeS warns that its own SR830 buffer parameters do not forward kwargs: nothing of ours.
pytestmark = pytest.mark.filterwarnings("ignore:Parameter ch[12]_databuffer")


@dataclass
class Served:
    clock: VirtualClock
    backend: SimulatedBackend
    sr830: SR830Emulator
    sr860: SR860Emulator
    resources: dict[str, str]


def grain_under_travel_middle(profile) -> VirtualSample:
    """One grain 30 µm deep under the middle of the x travel, at the lower y limit."""
    x = float(np.mean(profile.stage.travel[0]))
    y = float(profile.stage.travel[1, 0])
    return VirtualSample(
        np.array([[x, y, -30e-6, 40e-6, 40e-6, 40e-6]]),
        np.array([0]),
        remanence=np.array([[0.0, 0.0, 1e4]]),
        susceptibility=np.array([0.0]),
    )


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """The simulator profile's world (SR830 at its address) plus an SR860 on the same MTJ."""
    clock = VirtualClock()
    profile = load_profile()
    options = {"noise_rms": 0.0, "drift_rate": 0.0, "sample": grain_under_travel_middle(profile)}
    backend = SimulatedBackend(profile, clock, options)
    backend.world.lockin_signal([0.0], 1.0)  # compile the field code before any client waits
    sr860 = SR860Emulator(clock, backend.world, rng=np.random.default_rng(5))
    backend.world.add_listener(sr860.advance_to)
    sr830 = backend.lockin
    assert isinstance(sr830, SR830Emulator)
    server = EmulatorServer(
        {
            "sr830": backend.endpoint(profile.lockin.link.address),
            "sr860": WorldSynced(sr860, backend.world, "sr860"),
            "stage": backend.endpoint(profile.stage.link.address),
        }
    ).start()
    try:
        yield Served(clock, backend, sr830, sr860, server.resources())
    finally:
        server.close()


@pytest.fixture
def fresh(served: Served) -> Iterator[Served]:
    """Both lock-ins at their power-on settings; every QCoDeS instrument closed afterwards."""
    for emulator in (served.sr830, served.sr860):
        emulator.handle("*RST;*CLS")
    yield served
    Instrument.close_all()


def qcodes_sr830(s: Served) -> QcodesSR830:
    return QcodesSR830("lia830", s.resources["sr830"], visalib="@py", terminator="\n",
                       timeout=TIMEOUT_S)


def qcodes_sr860(s: Served) -> QcodesSR860:
    return QcodesSR860("lia860", s.resources["sr860"], visalib="@py", terminator="\n",
                       timeout=TIMEOUT_S)


def pymeasure(cls, resource: str):
    return cls(resource, visa_library="@py", read_termination="\n", write_termination="\n",
               timeout=int(TIMEOUT_S * 1000))


def settle(lia, s: Served, seconds: float) -> None:
    """Let simulated time pass once the lock-in has taken every command written so far.

    A write has no reply, so the served emulator may still be working through it when the
    test advances the virtual clock; a query returns only after everything before it.
    """
    lia.ask("*STB?")
    s.clock.sleep(seconds)


def signal_volts(s: Served, lockin: SR830Emulator | SR860Emulator | None = None) -> float:
    """The MTJ's in-phase input now for this lock-in's excitation (noise is off here)."""
    amplitude = (lockin or s.sr830).amplitude
    return float(s.backend.world.lockin_signal([s.clock.now()], amplitude)[0])


# --- QCoDeS --------------------------------------------------------------------------------


QCODES_SR830_SETTINGS = {
    "phase": 45.0,
    "reference_source": "internal",
    "frequency": 1017.0,
    "ext_trigger": "TTL rising",
    "harmonic": 1,
    "amplitude": 0.5,
    "input_config": "a-b",
    "input_shield": "ground",
    "input_coupling": "DC",
    "notch_filter": "both",
    "sensitivity": 0.2,
    "reserve": "low noise",
    "time_constant": 0.03,
    "filter_slope": 24,
    "sync_filter": "on",
    "aux_out1": 1.25,
    "aux_out4": -2.5,
    "ch1_display": "R",
    "ch2_display": "Phase",
    "ch1_ratio": "none",
    "buffer_SR": 64,
    "buffer_acq_mode": "single shot",
    "buffer_trig_mode": "OFF",
}


def test_qcodes_sr830_sets_and_reads_back_every_setting(fresh: Served) -> None:
    lia = qcodes_sr830(fresh)
    assert lia.IDN()["model"] == "SR830"
    for name, value in QCODES_SR830_SETTINGS.items():
        lia.parameters[name].set(value)
        got = lia.parameters[name].get()
        assert got == pytest.approx(value) if isinstance(value, float) else got == value, name
    assert fresh.sr830.differential and fresh.sr830.dc_coupled and fresh.sr830.phase == 45.0
    assert lia.X_offset() == (0.0, 0)
    lia.input_config("I 1M")  # the current input: outputs and sensitivity in amperes
    assert lia.sensitivity.unit == "A" and lia.sensitivity() == pytest.approx(0.2e-6)
    assert lia.ask("*ESR?") == "0" and lia.ask("ERRS?") == "0"


def test_qcodes_sr830_readings_follow_phase_harmonic_and_input(fresh: Served) -> None:
    lia = qcodes_sr830(fresh)
    lia.sensitivity(0.5)
    lia.input_coupling("DC")
    lia.time_constant(0.03)
    settle(lia, fresh, 1.0)
    v = signal_volts(fresh)
    x, y, r = lia.X(), lia.Y(), lia.R()
    assert x == pytest.approx(v, rel=1e-4) and abs(y) < 1e-6 * abs(v)
    lia.phase(90.0)  # X = R cos(θ − φ), Y = R sin(θ − φ) with the signal's θ = 0
    settle(lia, fresh, 1.0)
    assert lia.Y() == pytest.approx(-r, rel=1e-4) and abs(lia.X()) < 1e-4 * r
    snap = lia.snap("x", "y", "r", "p", "freq", "aux1")
    assert snap[2] == pytest.approx(r, rel=1e-4) and snap[3] == pytest.approx(-90.0, abs=0.01)
    assert snap[4] == pytest.approx(1000.0) and snap[5] == 0.0
    assert lia.complex_voltage() == pytest.approx(complex(snap[0], snap[1]), rel=1e-3, abs=1e-9)
    lia.phase(0.0)
    lia.harmonic(2)  # the MTJ responds linearly: nothing at 2f
    settle(lia, fresh, 1.0)
    assert abs(lia.R()) < 1e-9
    lia.harmonic(1)
    lia.input_config("I 1M")  # 1 MΩ gain; the MTJ's 10 kΩ in series with the 1 kΩ input
    lia.sensitivity(0.5e-6)
    settle(lia, fresh, 1.0)
    assert lia.X() == pytest.approx(signal_volts(fresh) / 11e3, rel=1e-4)


def test_qcodes_sr830_buffer_fills_at_the_sample_rate_in_simulated_time(fresh: Served) -> None:
    lia = qcodes_sr830(fresh)
    lia.sensitivity(0.5)
    lia.input_coupling("DC")
    lia.buffer_SR(64)
    lia.buffer_acq_mode("single shot")
    lia.buffer_reset()
    lia.buffer_start()
    settle(lia, fresh, 2.0)
    lia.buffer_pause()
    assert lia.buffer_npts() == 128  # 64 Hz for 2 s of simulated time
    # QCoDeS reads TRCL? with read_raw, which needs GPIB's EOI to end: a raw socket has none
    # (PyMeasure's TRCB? reader below stops at its timeout instead); TRCA? is ASCII.
    x = [float(v) for v in lia.ask("TRCA? 1,0,128").rstrip(",").split(",")]
    assert len(x) == 128
    assert x[-1] == pytest.approx(signal_volts(fresh), rel=1e-3)
    with pytest.raises(pyvisa.errors.VisaIOError):  # beyond the stored points: refused
        lia.ask("TRCA? 1,100,100")
    assert lia.ask("*ESR? 4") == "1"


def test_qcodes_sr86x_sets_reads_and_captures(fresh: Served) -> None:
    lia = qcodes_sr860(fresh)
    assert lia.IDN()["model"] == "SR860"
    settings = {
        "frequency": 1017.0, "sine_outdc": 0.25, "amplitude": 0.5, "harmonic": 1,
        "phase": 30.0, "sensitivity": 0.2, "filter_slope": 18, "sync_filter": "ON",
        "input_range": 0.3, "input_config": "a-b", "input_shield": "ground",
        "input_gain": 100e6, "adv_filter": "OFF", "input_coupling": "dc",
        "time_constant": 0.01, "external_reference_trigger": "POS", "reference_source": "INT",
    }  # fmt: skip
    for name, value in settings.items():
        lia.parameters[name].set(value)
        got = lia.parameters[name].get()
        if name == "external_reference_trigger":  # QCoDeS maps both POS and POSTTL to 1
            assert lia.ask("RTRG?") == "1"
            continue
        assert got == pytest.approx(value) if isinstance(value, float) else got == value, name
    assert lia.noise_bandwidth() == pytest.approx(3 / (32 * 0.01))  # 18 dB/oct: 3/(32 τ)
    assert lia.signal_strength() in range(5)
    lia.signal_input("current")
    assert lia.sensitivity.unit == "A"
    lia.signal_input("voltage")
    lia.data_channels[0].assigned_parameter("R")
    assert lia.data_channels[0].assigned_parameter() == "R"
    lia.phase(0.0)
    lia.input_config("a")
    lia.sensitivity(0.5)
    settle(lia, fresh, 1.0)
    r = lia.get_data_channels_values()[0]  # DAT1 now shows R
    assert r == pytest.approx(signal_volts(fresh, fresh.sr860), rel=1e-3)
    x, _ = lia.get_values("X", "Y")
    assert x == pytest.approx(lia.X(), rel=1e-3)

    buffer = lia.buffer
    # QCoDeS's SR86x example notebook, on a real SR860 (firmware 1.47) at a 10 ms time
    # constant: "Capture rate is set to its maximum: 39062.5"
    buffer.set_capture_rate_to_maximum()
    assert buffer.capture_rate() == 39062.5
    rate = buffer.capture_rate_max()
    lia.phase(30.0)  # QCoDeS drops zeros as unfilled memory: keep Y off zero
    buffer.capture_config("X,Y")
    buffer.set_capture_length_to_fit_samples(1000)
    buffer.capture_rate(rate / 4)
    buffer.start_capture("ONE", "IMM")
    assert int(buffer.capture_status()) & 1
    with pytest.raises(pyvisa.errors.VisaIOError):  # CAPTUREGET? answers only once stopped
        lia.visa_handle.query_binary_values("CAPTUREGET? 0,1", datatype="f",
                                            expect_termination=False)
    assert lia.ask("*ESR? 4") == "1"  # the refusal is an execution error
    settle(lia, fresh, 1000.5 / (rate / 4))
    buffer.stop_capture()
    # 8000 bytes stored: the capture goes on to its 2 kB block's end (8192), 24 samples, which
    # take 2.5 ms at this rate, less than a real link's round trips before QCoDeS reads
    assert int(buffer.capture_status()) & 1
    settle(lia, fresh, 24.5 / (rate / 4))
    assert not int(buffer.capture_status()) & 1
    assert buffer.count_capture_bytes() == 8192
    data = buffer.get_capture_data(1000)
    assert data["X"].shape == (1000,) and data["Y"].shape == (1000,)
    cos30 = math.cos(math.radians(30.0))
    assert data["X"][-1] == pytest.approx(signal_volts(fresh, fresh.sr860) * cos30, rel=1e-3)


def test_qcodes_sr86x_one_sample_per_trigger(fresh: Served) -> None:
    lia = qcodes_sr860(fresh)
    lia.buffer.capture_config("X")
    lia.buffer.capture_length_in_kb(2)

    def send_triggers() -> None:
        for _ in range(7):
            settle(lia, fresh, 0.01)
            lia.write("TRIG")

    data = lia.buffer.capture_one_sample_per_trigger(7, send_triggers)
    assert data["X"].shape == (7,)


def test_qcodes_station_holds_both_lockins(fresh: Served) -> None:
    station = Station(qcodes_sr830(fresh), qcodes_sr860(fresh))
    snapshot = station.snapshot(update=True)["instruments"]
    assert set(snapshot) == {"lia830", "lia860"}
    assert snapshot["lia830"]["parameters"]["harmonic"]["value"] == 1
    assert snapshot["lia860"]["parameters"]["signal_input"]["value"] == "voltage"


# --- PyMeasure -----------------------------------------------------------------------------


def test_pymeasure_sr830_settings_readings_status_and_buffer(fresh: Served) -> None:
    lia = pymeasure(PyMeasureSR830, fresh.resources["sr830"])
    assert lia.id.split(",")[1] == "SR830"
    settings = {
        "sine_voltage": 0.5, "frequency": 1017.0, "phase": -45.0, "sensitivity": 0.2,
        "time_constant": 0.03, "filter_slope": 18, "filter_synchronous": True, "harmonic": 1,
        "input_config": "A - B", "input_grounding": "Ground", "input_coupling": "DC",
        "input_notch_config": "Line", "reference_source": "Internal",
        "reference_source_trigger": "POS EDGE", "aux_out_1": 2.0, "aux_out_2": -1.0,
    }  # fmt: skip
    for name, value in settings.items():
        setattr(lia, name, value)
        got = getattr(lia, name)
        assert got == pytest.approx(value) if isinstance(value, float) else got == value, name
    lia.reserve = "Low Noise"
    assert lia.reserve == "Low Noise"
    # set_scaling passes its expansion through discreteTruncate, which returns the factor, not
    # its index: a factor of 10 becomes "OEXP 1,10.00,10", which the SR830 refuses (index
    # 0..2); a factor of 1 becomes index 1, i.e. ×10. The emulator does what the SR830 does.
    lia.set_scaling("X", 10.0, 10)
    assert int(lia.ask("*ESR?")) & (1 << 4)
    lia.set_scaling("X", 10.0, 1)
    assert lia.get_scaling("X") == (10.0, 10)
    assert fresh.sr830.offsets[0] == 10.0 and fresh.sr830.expands[0] == 1
    lia.write("OEXP 1,0,0")
    lia.phase = 0.0
    lia.sensitivity = 0.5
    settle(lia, fresh, 1.0)
    assert lia.x == pytest.approx(signal_volts(fresh), rel=1e-4)
    assert lia.snap("X", "Y", "R", "Theta", "Frequency")[4] == pytest.approx(1017.0)
    assert lia.magnitude == pytest.approx(abs(lia.x), rel=1e-4)
    assert lia.aux_in_1 == 0.0
    assert lia.lia_status == 0 and lia.err_status == 0
    lia.save_setup(3)
    lia.harmonic = 2
    lia.load_setup(3)
    assert lia.harmonic == 1

    lia.sample_frequency = 16
    assert lia.sample_frequency == 16
    lia.reset_buffer()
    lia.start_scan()
    settle(lia, fresh, 1.0)
    lia.pause_scan()
    assert lia.buffer_count == 16
    x = lia.get_buffer(1)  # TRCB?: IEEE floats, no terminator (read until the timeout)
    assert x.shape == (16,) and x[-1] == pytest.approx(signal_volts(fresh), rel=1e-3)
    lia.write("FOO")
    assert int(lia.ask("*ESR?")) & (1 << 5)  # an unknown command is a command error


def test_pymeasure_sr830_displays_auto_functions_and_fast_start(fresh: Served) -> None:
    lia = pymeasure(PyMeasureSR830, fresh.resources["sr830"])
    lia.channel1 = "R"
    lia.channel2 = "Theta"
    settle(lia, fresh, 0.0)
    assert fresh.sr830.displays == [[1, 0], [1, 0]]
    # PyMeasure's getter parses DDEF?'s "display,ratio" pair as a list of numbers, so it
    # cannot map it back to a name: the SR830 answers that pair too.
    assert lia.channel1 == [1.0, 0.0]
    assert int(lia.status) & 0b11 == 0b11  # SCN and IFC: no storage, no command running
    lia.phase = 37.0
    settle(lia, fresh, 3.0)  # 30 time constants
    lia.auto_phase()
    settle(lia, fresh, 3.0)
    assert abs(lia.theta) < 0.01
    lia.auto_gain()
    lia.auto_reserve()
    assert lia.sensitivity >= abs(lia.x)
    lia.auto_offset("X")
    assert lia.get_scaling("X")[0] != 0.0 and abs(lia.x) < 1e-3 * lia.sensitivity
    assert lia.is_out_of_range() is False
    lia.sample_frequency = 8
    lia.reset_buffer()
    lia.start_buffer()  # FAST2;STRD: storage starts half a second later
    settle(lia, fresh, 1.5)
    assert lia.buffer_count == 8
    lia.pause_buffer()
    lia.sample_frequency = None  # one point per trigger
    lia.reset_buffer()
    lia.aquireOnTrigger(True)  # TSTR 1: the first trigger starts storage
    lia.trigger()
    lia.trigger()
    assert lia.buffer_count == 1  # the first trigger started it, the second stored a point
    assert lia.lia_status & 64  # TRIG bit


def test_pymeasure_sr860_settings_and_readings(fresh: Served) -> None:
    lia = pymeasure(PyMeasureSR860, fresh.resources["sr860"])
    settings = {
        "phase": 12.5, "frequency": 2000.0, "harmonic": 1, "sine_voltage": 0.25,
        "reference_source": "INT", "reference_triggermode": "POS", "input_signal": "VOLT",
        "input_voltage_mode": "A-B", "input_coupling": "DC", "input_shields": "Ground",
        "input_range": "300M", "input_current_gain": "100MEG", "sensitivity": 0.2,
        "time_constant": 0.1, "filter_slope": 1, "aux_out_1": 1.5,
    }  # fmt: skip
    for name, value in settings.items():
        setattr(lia, name, value)
        got = getattr(lia, name)
        assert got == pytest.approx(value) if isinstance(value, float) else got == value, name
    lia.phase = 0.0
    lia.input_voltage_mode = "A"
    lia.sensitivity = 0.5
    settle(lia, fresh, 2.0)
    assert lia.x == pytest.approx(signal_volts(fresh, fresh.sr860), rel=1e-3)
    assert lia.magnitude == pytest.approx(abs(lia.x), rel=1e-3)
    assert lia.theta == pytest.approx(0.0, abs=0.1)
    x, y, r = lia.snap("X", "Y", "R")
    assert r == pytest.approx(math.hypot(x, y), rel=1e-6)
    assert len(lia.snap_all()) == 4
    assert lia.get_noise_bandwidth == pytest.approx(1 / (8 * 0.1))  # 12 dB/oct: 1/(8 τ)
    assert lia.get_signal_strength_indicator in range(5)
    assert lia.detectedfrequency == pytest.approx(2000.0) and lia.extfreqency == 0
    assert lia.gettimebase == 1 and lia.aux_in_1 == 0.0
    lia.harmonicdual = 3
    assert lia.harmonicdual == 3
    lia.internalfrequency = 1017.0
    assert lia.frequency == pytest.approx(1017.0)
    lia.front_panel = "1"
    lia.screen_layout = "2"
    assert (lia.front_panel, lia.screen_layout) == ("1", "2")


def test_pymeasure_sr860_sine_dc_mode_chart_and_presets(fresh: Served) -> None:
    """REFM (where the sine output's DC level appears), the strip chart (GSPD, CGRF) and the
    F/A/L preset buttons (PSTF, PSTA, PSTL i, x): PyMeasure reads each and writes the ones it
    spells as the manual does (a space after the mnemonic); the others are refused as the
    instrument refuses them. Its `horizontal_time_div` setter
    sends "GSDP", which no SR860 knows: a command error, the setting kept."""
    lia = pymeasure(PyMeasureSR860, fresh.resources["sr860"])
    assert lia.dcmode == "COM"
    lia.dcmode = "DIF"
    assert lia.dcmode == "DIF"
    for k in range(1, 5):
        assert getattr(lia, f"strip_chart_dat{k}") == "1"
        setattr(lia, f"strip_chart_dat{k}", "0")
        assert getattr(lia, f"strip_chart_dat{k}") == "0"
    lia.frequencypreset1 = 2500.0
    lia.frequencypreset2 = 123456.0
    lia.sine_amplitudepreset4 = 0.125
    lia.sine_dclevelpreset2 = -1.5
    lia.sine_dclevelpreset3 = 4.25
    assert (lia.frequencypreset1, lia.frequencypreset2) == (2500.0, 123456.0)
    assert lia.sine_amplitudepreset4 == 0.125
    assert (lia.sine_dclevelpreset2, lia.sine_dclevelpreset3) == (-1.5, 4.25)
    for k in range(1, 5):  # every preset reads back a number
        for name in ("frequencypreset", "sine_amplitudepreset", "sine_dclevelpreset"):
            assert isinstance(getattr(lia, f"{name}{k}"), float)
    assert int(lia.ask("*ESR?")) == 0  # nothing refused so far
    assert lia.horizontal_time_div == 0
    lia.horizontal_time_div = 3  # sent as "GSDP 3"
    assert int(lia.ask("*ESR?")) & (1 << 5)  # command error
    assert lia.horizontal_time_div == 0
    lia.write("PSTF 0, 600000")  # beyond 500 kHz
    assert int(lia.ask("*ESR?")) & (1 << 4)  # execution error, the preset kept
    assert lia.frequencypreset1 == 2500.0
    # the others it spells without that space ("PSTF2, ...", "PSTA0, ..."), which the
    # manual's command syntax requires: a command error each, the preset kept
    for name, value in (("frequencypreset3", 3000.0), ("sine_amplitudepreset1", 0.5),
                        ("sine_dclevelpreset4", 1.0)):
        before = getattr(lia, name)
        setattr(lia, name, value)
        assert int(lia.ask("*ESR?")) == 1 << 5, name
        assert getattr(lia, name) == before


# --- physics through a third-party client, and our own drivers over TCP ---------------------


def test_a_stage_move_changes_the_reading_as_the_sample_field_says(fresh: Served) -> None:
    lia = qcodes_sr830(fresh)
    lia.input_coupling("DC")
    lia.sensitivity(0.5)
    world, profile = fresh.backend.world, fresh.backend.profile
    stage = pyvisa.ResourceManager("@py").open_resource(
        fresh.resources["stage"], read_termination="\n", write_termination="\n", timeout=2000
    )
    axis = profile.stage.axes[0]
    lo, hi = (float(stage.query(f"{q}? {axis}").split("=")[1]) for q in ("TMN", "TMX"))
    stage.write(f"SVO {axis} 1")
    stage.write(f"FRF {axis}")  # a C-884 moves only once referenced
    assert stage.query("ERR?").strip() == "0"  # a reply: the stage server has taken the FRF
    settle(lia, fresh, 60.0)
    assert stage.query(f"FRF? {axis}").strip().endswith("=1")
    readings, bz = [], []
    for fraction in (0.5 - 0.004, 0.5):  # 100 µm apart, in the controller's own unit
        stage.write(f"MOV {axis} {lo + fraction * (hi - lo)}")
        assert stage.query("ERR?").strip() == "0"
        settle(lia, fresh, 60.0)  # long enough to cross half the travel and settle
        readings.append(lia.X())
        sensor = world.sensor_positions([fresh.clock.now()])
        bz.append(float(world.sample.bz_true(sensor, profile.sensor.active_area, np.zeros(3))[0]))
    stage.write(f"MOV {axis} {lo}")  # back where the other tests expect it
    # a reply: the server has taken the move before the clock runs on (else, on a loaded
    # machine, the move could start after the settling and run into the next test)
    assert stage.query("ERR?").strip() == "0"
    settle(lia, fresh, 60.0)
    stage.close()
    volts_per_tesla = world.sensor.gain(fresh.sr830.amplitude)
    assert abs(bz[1] - bz[0]) > 1e-6  # microtesla: the move crosses the grain's field
    assert readings[1] - readings[0] == pytest.approx(volts_per_tesla * (bz[1] - bz[0]), rel=1e-3)


def lockin_settings(model: str, address: str) -> LockInSettings:
    profile = load_profile()
    link = replace(profile.lockin.link, implementation=model, address=address, timeout_s=2.0)
    return replace(profile.lockin, link=link)


@pytest.mark.parametrize("model", ["sr830", "sr860"])
def test_our_driver_puts_right_a_lockin_left_on_harmonic_2_phase_90_current_input_over_tcp(
    fresh: Served, model: str
) -> None:
    emulator = fresh.sr830 if model == "sr830" else fresh.sr860
    left = "HARM 2;PHAS 90;ISRC 2" if model == "sr830" else "HARM 2;PHAS 90;IVMD 1;ICUR 1"
    emulator.handle(left)
    assert emulator.current_gain and emulator.harmonic == 2
    cls = SR830 if model == "sr830" else SR860
    lockin = cls.from_profile(lockin_settings(model, fresh.resources[model]),
                              clock=fresh.clock)
    try:
        assert emulator.harmonic == 1 and emulator.phase == 0.0
        assert emulator.current_gain == 0.0 and not emulator.differential
        fresh.clock.sleep(1.0)
        x, _ = lockin.read_xy()
        assert x == pytest.approx(signal_volts(fresh), rel=1e-4)
        snap = lockin.snapshot()
        assert snap["harmonic"] == 1 and snap["reference_phase_deg"] == 0.0
        assert snap["input"] == "A" and snap["coupling"] == "AC"
    finally:
        lockin.close()
    assert math.isfinite(x)


def test_our_sr830_buffer_read_in_ascii_is_what_pymeasure_and_qcodes_read(
        fresh: Served) -> None:
    """Our driver reads the SR830's buffer as TRCA? (ASCII, each point followed by a comma);
    PyMeasure reads the same points as TRCB? (IEEE floats) and counts them with SPTS?, as
    QCoDeS does: the same count, and the same values to TRCA?'s seven digits."""
    ours = SR830.from_profile(lockin_settings("sr830", fresh.resources["sr830"]),
                              clock=fresh.clock)
    try:
        ours.configure_buffer(16.0)
        ours.start_buffer(on_trigger=False)
        ours.identify()  # a reply: the lock-in has taken the start (a write has none)
        fresh.clock.sleep(2.0)
        trace = ours.read_buffer()
    finally:
        ours.close()
    lia = pymeasure(PyMeasureSR830, fresh.resources["sr830"])
    count = lia.buffer_count
    assert count == trace.x.size == trace.y.size == 32  # 16 Hz for 2 s of simulated time
    assert qcodes_sr830(fresh).buffer_npts() == count
    np.testing.assert_allclose(trace.x, lia.get_buffer(1), rtol=1e-6)
    np.testing.assert_allclose(trace.y, lia.get_buffer(2), rtol=1e-6, atol=1e-15)
    assert np.all(trace.x != 0)


def test_enbw_closed_forms(fresh: Served) -> None:
    lia = qcodes_sr860(fresh)
    for slope, factor in ((6, 1 / 4), (12, 1 / 8), (18, 3 / 32), (24, 5 / 64)):
        lia.filter_slope(slope)
        lia.time_constant(0.1)
        assert lia.noise_bandwidth() == pytest.approx(factor / 0.1, rel=1e-5)
        assert enbw(0.1, slope // 6) == pytest.approx(factor / 0.1, rel=1e-9)


def _our_sr860_a_second_into_a_capture(fresh: Served) -> tuple[SR860, float]:
    """Our SR860 driver capturing at 100 Hz (152 Hz offered) for a second of the rig's clock,
    its start taken (a reply after it: a write has none), and the rate it captures at."""
    ours = SR860.from_profile(lockin_settings("sr860", fresh.resources["sr860"]),
                              clock=fresh.clock)
    try:
        rate = ours.configure_buffer(100.0)
        ours.start_buffer(on_trigger=False)
        ours.identify()
    except BaseException:
        ours.close()
        raise
    fresh.clock.sleep(1.0)
    return ours, rate


def test_our_sr860_waits_for_its_capture_to_reach_its_block_end_before_reading_it(
        fresh: Served) -> None:
    """After CAPTURESTOP the SR860 captures on to the end of its 2 kB block (256 samples of X
    and Y, 1.7 s at 152 Hz here) and refuses CAPTUREGET? meanwhile: our driver asks
    CAPTURESTAT? on the rig's clock until it says stopped, then reads every sample, the block's
    last ones too. Unfixed, CAPTUREGET? went right after the stop, and the read failed."""
    ours, rate = _our_sr860_a_second_into_a_capture(fresh)
    try:
        assert rate * 1.0 < 250  # stopped within the first block
        trace = ours.read_buffer()
    finally:
        ours.close()
    assert trace.x.size == 256 and fresh.sr860.handle("CAPTURESTAT?") == "2"


def test_an_sr860_status_bit_the_manual_does_not_name_is_read_past(
        fresh: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """CAPTURESTAT? with a bit above the three the manual names (bit 4, as a later firmware
    might set) is read for its bit 0 alone: the capture is read whole once stopped. Refused
    as out of range, every stop would end the scan."""
    emulator = fresh.sr860
    status = emulator._commands["CAPTURESTAT"]

    def with_bit_4(query: bool, args: list[str]) -> str | None:
        return str(int(status(query, args)) | 16)

    monkeypatch.setitem(emulator._commands, "CAPTURESTAT", with_bit_4)
    ours, _ = _our_sr860_a_second_into_a_capture(fresh)
    try:
        trace = ours.read_buffer()
    finally:
        ours.close()
    assert trace.x.size == 256


def test_an_sr860_capture_that_does_not_stop_is_named_and_stopped_again(
        fresh: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """An SR860 that missed a CAPTURESTOP still captures a block's time after it: the read
    ends in an InstrumentError naming CAPTURESTAT?, CAPTURESTOP sent once more, so the
    capture is left stopping (stopped at its block's end), not running on."""
    emulator = fresh.sr860
    taken = emulator._commands["CAPTURESTOP"]
    missed: list[bool] = []

    def stop(query: bool, args: list[str]) -> str | None:
        if emulator._capture_state == "running" and not missed:
            missed.append(True)  # the first stop of a running capture is lost
            return None
        return taken(query, args)

    monkeypatch.setitem(emulator._commands, "CAPTURESTOP", stop)
    ours, _ = _our_sr860_a_second_into_a_capture(fresh)
    try:
        with pytest.raises(InstrumentError, match=r"CAPTURESTAT\? still says capturing"):
            ours.read_buffer()
        assert missed
        ours.identify()  # the second stop taken before the clock moves on
        fresh.clock.sleep(2.0)  # the rest of its block
        assert ours._capturing() is False
    finally:
        ours.close()


def test_our_sr860_starts_a_capture_again_once_the_last_has_run_to_its_block_end(
        fresh: Served) -> None:
    """A line cut short and flown again: the capture's new start comes while the last one
    runs on to its block's end, when the SR860 refuses CAPTURESTART. Our driver waits for
    CAPTURESTAT? to say stopped first. Unfixed, the start was refused and the count read after
    it (the last capture's) was taken for a start that stalled."""
    ours = SR860.from_profile(lockin_settings("sr860", fresh.resources["sr860"]),
                              clock=fresh.clock)
    try:
        ours.configure_buffer(100.0)
        ours.start_buffer(on_trigger=False)
        ours.identify()
        fresh.clock.sleep(1.0)  # 152 samples: within the first block
        assert ours.start_buffer(on_trigger=False) is not None
        ours.identify()
        fresh.clock.sleep(0.5)
        assert ours.read_buffer().x.size == 256  # the new capture's first block
    finally:
        ours.close()


def test_our_sr860_start_honours_an_abort_while_the_last_capture_runs_on(
        fresh: Served) -> None:
    """A line flown again (its start unknown) starts the capture while the last one runs on to
    its block's end: at 1.19 Hz that is 215 s, the field held meanwhile. The start's wait asks
    the scan's `stop` between its CAPTURESTAT? queries, as the read's does: an abort ends it
    with ReadStopped at once. Unfixed, the start took no `stop` and waited out the block."""
    ours = SR860.from_profile(lockin_settings("sr860", fresh.resources["sr860"]),
                              clock=fresh.clock)
    try:
        rate = ours.configure_buffer(1.0)
        ours.start_buffer(on_trigger=False)
        ours.identify()
        fresh.clock.sleep(10 / rate)  # within the first block: it runs on after a stop
        began = fresh.clock.now()
        with pytest.raises(ReadStopped):
            driver_calls.start_buffer(ours, on_trigger=False, stop=lambda: True)
        assert fresh.clock.now() - began < 1.0
    finally:
        ours.close()
