"""The PI controller emulators on the virtual clock: data recorder, wave generator, triggers,
HLP? listing what is implemented, and the single-byte commands."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.emulator import EmulatorTransport
from simulators.pi_emulator import C884, E727, PIGCSEmulator
from simulators.stage_model import StageModel
from smm_daq.clock import VirtualClock

FINE = np.array([[0.0, 1.8e-3], [0.0, 1.8e-3], [0.0, 0.4e-3]])


def e727(velocity: float = 1e-3):
    clock = VirtualClock()
    model = StageModel(clock, travel=FINE, velocity=velocity, settle_time=0.0)
    emulator = PIGCSEmulator(model, controller=E727)
    t = EmulatorTransport(emulator, clock=clock)
    t.write("SVO 1 1 2 1 3 1")
    return t, emulator, model, clock


def test_help_lists_exactly_the_commands_that_are_answered():
    for controller, travel in ((E727, FINE), (C884, FINE * 10)):
        clock = VirtualClock()
        model = StageModel(clock, travel=travel, velocity=1e-3)
        t = EmulatorTransport(PIGCSEmulator(model, controller=controller), clock=clock)
        lines = t.query("HLP?").split(" \n")
        assert lines[0].startswith("The following commands are valid")
        assert lines[-1] == "end of help"
        listed = {line.split()[0] for line in lines[1:-1]}
        assert ("FRF" in listed) == controller.referencing
        assert ("WAV" in listed) == (controller.wave_generators > 0)
        for name in listed - {"#4", "#5", "#7", "#8", "#9", "#24"}:
            if name.endswith("?"):
                assert t.query(name), name  # every listed query answers
            else:
                t.write(f"{name} 1 1")
            assert t.query("ERR?") != "2", name  # known, whatever its arguments
        t.write("XYZ 1")
        assert t.query("ERR?") == "2"  # unknown command


def test_recorder_samples_the_straight_line_motion_at_the_record_rate():
    t, _, model, clock = e727(velocity=1e-3)  # 1000 µm/s
    t.write("DRC 1 1 2 2 1 1")
    t.write("DRT 0 1 0")
    t.write("RTR 50")  # 50 servo cycles of 20 µs: 1 ms per sample
    t.write("MOV 1 100")  # triggers the recording
    clock.advance(0.2)
    assert t.query("DRL? 1") == "1=201"
    reply = t.query("DRR? 1 201 1 2").split(" \n")
    header = [line for line in reply if line.startswith("#")]
    assert "# SAMPLE_TIME = 0.001" in header and "# NDATA = 201" in header
    assert "# NAME0 = Actual Position of axis 1" in header
    rows = np.array([[float(v) for v in line.split()] for line in reply[len(header):]])
    times = np.arange(201) * 1e-3
    np.testing.assert_allclose(rows[:, 0], np.minimum(1000.0 * times, 100.0), atol=1e-6)
    np.testing.assert_allclose(rows[:, 1], 100.0)  # the commanded position from the trigger on
    assert model.position("1") == pytest.approx(100e-6)


def test_a_drc_sent_with_next_command_armed_starts_the_recording_of_the_table_it_sets():
    """PI's GCS manuals: trigger source 2 (`DRT`) fires on the next command of any kind, and
    `DRC` resets its table's count of recorded points. A `DRC` sent once it is armed is that
    next command: the recording it starts records the table as it set it (unfixed: the count
    stayed 0, the trigger spent, nothing ever recorded)."""
    t, _, _, clock = e727(velocity=1e-3)
    t.write("RTR 50")  # 1 ms per sample
    t.write("DRT 1 2 0")
    t.write("DRC 1 1 2")  # the next command: recording starts, table 1 the actual position
    t.write("MOV 1 100")
    clock.advance(0.2)
    assert t.query("DRL? 1") == "1=201"
    reply = t.query("DRR? 1 201 1").split(" \n")
    assert "# NAME0 = Actual Position of axis 1" in reply
    rows = np.array([float(v) for v in reply[reply.index("# END_HEADER") + 1:]])
    np.testing.assert_allclose(rows, np.minimum(1000.0 * np.arange(201) * 1e-3, 100.0),
                               atol=1e-6)
    assert t.query("DRT? 1") == "1=0 0"  # the trigger reset once it fired


def test_a_recording_is_read_from_a_start_point_with_its_number_of_points_or_whole():
    """PI's GCS manuals give `DRR? [<StartPoint> <NumberOfPoints> [{<RecTableID>}]]`: a
    start point alone is a parameter syntax error (1), answered with nothing."""
    t, emulator, _, _ = e727()
    assert emulator.handle("DRR? 1") is None
    assert t.query("ERR?") == "1"
    assert "# NDATA = 3" in t.query("DRR? 1 3").split(" \n")
    assert t.query("ERR?") == "0"


def test_an_e727_shares_its_recorder_points_equally_among_its_tables():
    """The E-727's manual: Data Recorder Max Points (SPA 0x16000200) is the recorder's total,
    262144, allocated in equal shares to the TNR? tables: 32768 points each of 8. A recording
    left running stops counting there (it went on to 262144 in every table)."""
    t, _, _, clock = e727()
    assert t.query("SPA? 1 0x16000200") == "1 0x16000200=262144"
    assert t.query("TNR?") == "8"
    t.write("DRC 1 1 2")
    t.write("DRT 0 1 0")
    t.write("MOV 1 100")  # triggers the recording, one sample every 20 µs
    clock.advance(10.0)  # 500,000 servo cycles
    assert t.query("DRL? 1") == "1=32768"
    assert t.query("ERR?") == "0"
    t.write("DRR? 32768 2 1")  # beyond the table's last point
    assert t.query("ERR?") == "17"


def test_a_line_wave_drives_the_axis_point_by_point_and_ends_on_its_last_point():
    t, _, model, clock = e727()
    t.write("WAV 1 X LIN 1000 500 100 1000 0 0")  # 100 -> 600 µm over 1000 points
    assert t.query("WAV? 1 1") == "1 1=1000"
    t.write("WSL 1 1")
    t.write("WGC 1 2")
    t.write("WTR 1 50 0")  # 1 ms per point: one cycle takes 1 s
    t.write("WGO 1 1")
    assert t.query("ERR?") == "0"
    assert t.query("\x09") == "1"  # #9: generator 1 runs
    lag = E727.tracking_lag  # the position trails the set point by the closed loop's lag
    clock.advance(0.2505 + lag)  # inside point 250 of the first cycle, as the axis follows
    assert model.position("1") == pytest.approx((100 + 500 * 250 / 999) * 1e-6, abs=1e-12)
    assert model.target_at("1", clock.now()) == pytest.approx(
        (100 + 500 * int((0.2505 + lag) / 1e-3) / 999) * 1e-6, abs=1e-12
    )
    clock.advance(1.0)  # second cycle, same point
    assert model.position("1") == pytest.approx((100 + 500 * 250 / 999) * 1e-6, abs=1e-12)
    assert t.query("ONT? 1") == "1=0"
    clock.advance(1.0)
    assert t.query("\x09") == "0"
    assert t.query("POS? 1") == "1=600.0000000"
    assert t.query("ONT? 1") == "1=1"


def test_speed_up_and_down_make_a_trapezoidal_velocity():
    t, _, model, clock = e727()
    t.write("WAV 1 X LIN 101 100 0 101 0 20")  # 0 -> 100 µm, 20 points to speed up and down
    t.write("WSL 1 1")
    t.write("WTR 1 50 0")
    t.write("WGO 1 1")
    clock.advance(E727.tracking_lag)  # the position trails the set point by the lag
    positions = []
    for _ in range(101):
        positions.append(model.position("1") / 1e-6)
        clock.advance(1e-3)
    v = np.diff(positions)
    assert positions[0] == 0 and positions[-1] == pytest.approx(100.0)
    assert v[0] < v[10] < v[20] == pytest.approx(v[50]) == pytest.approx(v[79])
    assert v[50] == pytest.approx(100.0 / 80.0, rel=1e-9)  # 100 µm over 100 - 20 intervals


def test_recorded_position_trails_the_wave_by_the_closed_loops_lag():
    t, _, _, clock = e727()
    t.write("WAV 1 X LIN 1000 500 0 1000 0 0")  # 500 µm in 1 s: 500 µm/s
    t.write("WSL 1 1")
    t.write("WTR 1 50 0")  # 1 ms per point
    t.write("DRC 1 1 1 2 1 2 3 1 3")  # commanded, actual, error of axis 1
    t.write("DRT 0 0 0")  # triggered by the wave generator's start
    t.write("RTR 50")
    t.write("WGO 1 1")
    clock.advance(0.5)
    rows = np.array([[float(v) for v in line.split()]
                     for line in t.query("DRR? 1 400 1 2 3").split(" \n") if line[0] != "#"])
    commanded, actual, error = rows[100:300].T  # mid line, at constant speed
    np.testing.assert_allclose(error, commanded - actual, atol=1e-6)
    lag_points = round(E727.tracking_lag / 1e-3)
    np.testing.assert_allclose(actual[lag_points:], commanded[:-lag_points], atol=1e-6)
    assert np.mean(error) == pytest.approx(500.0 / 999 * lag_points, rel=1e-3)  # slope × lag


def test_generator_trigger_pulses_at_the_marked_wave_points():
    t, emulator, _, clock = e727()
    t.write("WAV 1 X RAMP 100 50 0 100 0 0 50")
    t.write("WSL 1 1")
    t.write("WTR 1 10 0")  # 0.2 ms per point
    t.write("WGC 1 0")  # until stopped
    t.write("CTO 1 2 1 1 3 4")  # line 1: axis 1, generator trigger
    t.write("TWS 1 1 1 1 51 1")  # pulses at the first point and the ramp's top
    assert t.query("ERR?") == "0"
    start = clock.now()
    t.write("WGO 1 1")
    edges = emulator.wave.trigger_edges(1, start, start + 0.05)  # 2.5 cycles
    expected = [start + k * 0.02 + p * 2e-4 for k in range(3) for p in (0, 50)]
    np.testing.assert_allclose(edges, [e for e in expected if e < start + 0.05], atol=1e-12)


def test_position_distance_trigger_pulses_every_step_of_travel():
    t, emulator, _, clock = e727(velocity=1e-3)
    t.write("CTO 2 2 1 2 3 0 2 1 10")  # line 2: axis 1, position distance, every 10 µm
    start = clock.now()
    t.write("MOV 1 55")
    edges = emulator.wave.trigger_edges(2, start, start + 0.1)
    np.testing.assert_allclose(edges, start + np.arange(1, 6) * 0.01, atol=2.1e-5)


def test_wave_points_outside_the_travel_are_refused_and_nothing_moves():
    t, _, model, _ = e727()
    t.write("WAV 1 X LIN 10 5000 0 10 0 0")  # 5 mm on an 1.8 mm stage
    t.write("WSL 1 1")
    t.write("WGO 1 1")
    assert t.query("ERR?") == "7"
    assert not model.moving("1")


def test_single_bytes_inside_a_line_and_stop_everything():
    t, _, model, clock = e727(velocity=1e-4)
    t.write("MOV 2 500")
    clock.advance(1.0)
    assert t.query("\x05") == "2"  # #5: axis 2 (bit 1) moves
    assert t.query("\x07") == "\xb1"
    assert t.query("\x08") == "0"
    status = int(t.query("\x04"), 16)
    assert status & (1 << 16) and not status & (1 << 17)  # axis 1 on target, axis 2 not
    t.write("\x18")  # #24
    assert t.query("ERR?") == "10"
    stopped = model.position("2")
    clock.advance(10.0)
    assert model.position("2") == stopped == pytest.approx(100e-6)
    assert t.query("\x05") == "0"


@pytest.mark.parametrize("controller", [E727, C884])
def test_malformed_arguments_to_every_command_leave_an_error_code_never_an_exception(controller):
    clock = VirtualClock()
    model = StageModel(clock, travel=FINE, velocity=1e-3)
    emulator = PIGCSEmulator(model, controller=controller)
    names = [line.split()[0] for line in emulator.handle("HLP?").split(" \n")[1:-1]]
    odd = ["", "x", "1 x", "9 9", "1 1 1 1 1 1 1", "1 X LIN 1e12 1 0 1 0 0", "1 nan", "-1 -1 -1",
           "0x7 0x07000601", "1 X PNT 0 2 1", "2 & RAMP 10 1 0 10 0 0 20", "1 257"]
    for name in names:
        if name.startswith("#"):
            emulator.handle_byte(int(name[1:]))
            continue
        for args in odd:
            emulator.handle(f"{name} {args}".strip())  # must not raise
    assert emulator.handle("ERR?") is not None
