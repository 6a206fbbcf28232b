"""Fly scans on the simulator: the real drivers fly lines against the emulated SR830 and PI
C-884 in one simulated world on the virtual clock (no test sleeps).

The references are independent of the fly path: a step scan of the same region (a different
noise seed), the noise a flown pixel must have from the filter's autocorrelation (numerical,
`flown_pixel_sd`, against the sensor's stated noise density), and the plan's limits.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from simulators.sensor_model import enbw
from smm_daq.acquisition.fly.noise import flown_pixel_sd
from smm_daq.acquisition.fly.reconstruct import LineStreams, bin_line, sample_positions
from smm_daq.acquisition.fly.settings import FlySettings
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.cli.main import main
from smm_daq.errors import InputError, ReplyUnknown
from smm_daq.instruments.profile import load_profile, parse_profile
from smm_daq.instruments.rig import open_rig
from smm_daq.storage.nexus import list_entries, read_map

PROFILE = "configs/simulator.toml"
CENTRE = (12.5e-3, 12.5e-3)  # the builtin sample
BLANK = (3.0e-3, 3.0e-3)  # far from it
NOISE = 0.25e-6  # the profile's simulated noise: T RMS per reading at 30 ms, 2 poles


@pytest.fixture(scope="module")
def profile():
    return load_profile(PROFILE)


def _density() -> float:
    return NOISE / np.sqrt(enbw(0.03, 2))


def _fly(pixel_time: float, **kw) -> FlySettings:
    return FlySettings(pixel_time=pixel_time, **kw)


def test_flown_and_stepped_maps_agree_within_noise(profile, tmp_path):
    path = tmp_path / "s.h5"
    size, step = (0.6e-3, 0.3e-3), 20e-6
    with open_rig(profile) as rig:
        assert Sequencer(rig, path, ScanPlan.from_center("step", CENTRE, size, step)).run() \
            == "finished"
    with open_rig(profile, world_options={"seed": 5}) as rig:
        seq = Sequencer(rig, path, ScanPlan.from_center("fly", CENTRE, size, step,
                                                        fly=_fly(0.05)))
        assert seq.run() == "finished"
        line = seq._fly
    stepped, flown = read_map(path, "step").bz, read_map(path, "fly").bz
    assert np.ptp(stepped) > 40 * NOISE  # a map with structure, not a blank
    sd = np.hypot(NOISE, flown_pixel_sd(_density(), 0.05, line.time_constant, line.poles,
                                        line.rate))
    z = (flown - stepped) / sd
    assert abs(z.mean()) < 4 / np.sqrt(z.size)
    assert z.std() == pytest.approx(1.0, abs=3.3 / np.sqrt(z.size))  # 0.1 at 1071 pixels
    slope = np.gradient(stepped, axis=1).ravel()
    assert abs(np.corrcoef(z.ravel(), slope)[0, 1]) < 4 / np.sqrt(z.size)


@pytest.mark.parametrize(("pixel_time", "tau_fraction"), [(0.05, 5), (0.1, 10)])
def test_blank_noise_matches_the_model_whatever_the_time_constant(profile, tmp_path,
                                                                   pixel_time, tau_fraction):
    path = tmp_path / "b.h5"
    with open_rig(profile, world_options={"seed": tau_fraction}) as rig:
        seq = Sequencer(rig, path, ScanPlan.from_center("blank", BLANK, (0.6e-3, 0.4e-3), 20e-6,
                                                        fly=_fly(pixel_time)))
        assert seq.run() == "finished"
        line = seq._fly
    assert line.time_constant == pytest.approx(pixel_time / tau_fraction)
    bz = read_map(path, "blank").bz
    residual = bz - bz.mean(axis=1, keepdims=True)  # less each line's mean (drift, offset)
    measured = residual.std() * np.sqrt(bz.shape[1] / (bz.shape[1] - 1))
    model = flown_pixel_sd(_density(), pixel_time, line.time_constant, line.poles, line.rate)
    assert measured == pytest.approx(model, rel=0.1)


def test_raw_streams_are_stored_and_rebin_to_the_map(profile, tmp_path):
    path = tmp_path / "r.h5"
    plan = ScanPlan.from_center("fly", CENTRE, (0.3e-3, 0.06e-3), 20e-6, fly=_fly(0.05))
    with open_rig(profile) as rig:
        seq = Sequencer(rig, path, plan)
        assert seq.run() == "finished"
        line = seq._fly
    with h5py.File(path, "r") as f:
        g = f["fly"]
        streams = {k: g["fly_streams"][k][()] for k in
                   ("time", "lockin_x", "position_time", "position_x", "lag")}
        settings = json.loads(g["fly_streams/settings"][()])
        bz = g["data/Bz"][()]
        duration = float(g["rig_clock_duration"][()])
        assert g["rig_clock_duration"].attrs["units"] == "s"
    assert settings["time_constant_s"] == line.time_constant
    assert duration > plan.ny * line.duration  # rig-clock seconds, lines and moves
    sensitivity = profile.sensor.sensitivity_V_per_T
    for iy in range(plan.ny):
        keep = np.isfinite(streams["time"][iy])
        kept = np.isfinite(streams["position_time"][iy])
        raw = LineStreams(t=streams["time"][iy][keep],
                          bz=streams["lockin_x"][iy][keep] / sensitivity,
                          t_pos=streams["position_time"][iy][kept],
                          x_pos=streams["position_x"][iy][kept], forward=iy % 2 == 0)
        rebinned, counts = bin_line(sample_positions(raw, streams["lag"][iy]), raw.bz, plan.x)
        assert counts.min() >= 1
        np.testing.assert_allclose(rebinned, bz[iy], rtol=1e-12, atol=1e-15)
        # the recorded motion is the constant-velocity line over the pixels and run-up
        v = np.diff(raw.x_pos) / np.diff(raw.t_pos)
        moving = np.abs(v) > 0
        assert np.allclose(np.abs(v[moving][1:-1]), line.velocity, rtol=1e-3)
        assert raw.x_pos.min() < plan.x[0] - line.lag * line.velocity
        assert raw.x_pos.max() > plan.x[-1] + line.lag * line.velocity


def test_a_line_longer_than_the_buffer_is_refused_before_anything_moves(profile, tmp_path):
    path = tmp_path / "n.h5"
    # 400 pixels of 0.2 s with 32 samples each: 256 Hz × 80 s, beyond 16383 points
    plan = ScanPlan.from_center("long", CENTRE, (7.98e-3, 0.0), 20e-6,
                                fly=_fly(0.2, oversample=32))
    with open_rig(profile) as rig:
        before = rig.stage.position()
        with pytest.raises(InputError, match="lock-in buffer's 16383 points"):
            Sequencer(rig, path, plan).run()
        np.testing.assert_array_equal(rig.stage.position(), before)
    assert not path.exists()


def test_a_line_faster_than_the_stage_is_refused(profile, tmp_path):
    path = tmp_path / "v.h5"
    with open_rig(profile) as rig:
        limit = rig.stage.velocity_limit()
        plan = ScanPlan.from_center("fast", CENTRE, (4.0e-3, 0.0), 1e-3,  # twice the limit
                                    fly=_fly(0.5 * 1e-3 / limit))
        with pytest.raises(InputError, match="exceeds the stage's maximum velocity"):
            Sequencer(rig, path, plan).run()
    assert not path.exists()


def test_a_rig_without_buffers_refuses_a_fly_plan(tmp_path):
    from acq_fakes import fake_rig

    plan = ScanPlan.from_center("fly", CENTRE, (40e-6, 30e-6), 10e-6, fly=_fly(0.05))
    with pytest.raises(InputError, match="data buffer"):
        Sequencer(fake_rig(), tmp_path / "f.h5", plan).run()


def test_abort_mid_line_leaves_the_rig_safe_and_resume_completes(profile, tmp_path):
    path = tmp_path / "a.h5"
    plan = ScanPlan.from_center("fly", CENTRE, (0.4e-3, 0.1e-3), 20e-6, field=(0, 0, 20e-6),
                                fly=_fly(0.05))
    with open_rig(profile) as rig:
        seq = Sequencer(rig, path, plan)
        fly_x = rig.stage.fly_x
        flown = []

        def fly_then_abort(*args, **kw):  # the third line is aborted while it moves
            start = fly_x(*args, **kw)
            flown.append(start)
            if len(flown) == 3:
                seq.abort("test abort")
            return start

        rig.stage.fly_x = fly_then_abort
        assert seq.run() == "aborted"
        assert not any(rig.world.stage.moving(a) for a in rig.world.stage.axis_names)
        np.testing.assert_allclose(rig.coils.field_setpoint(), 0.0, atol=1e-12)
    first = read_map(path, "fly")
    done = np.flatnonzero(np.isfinite(first.bz).all(axis=1))
    assert done.size >= 2 and done.size < plan.ny
    with open_rig(profile, world_options={"seed": 9}) as rig:
        assert Sequencer(rig, path, plan, resume=True).run() == "finished"
    final = read_map(path, "fly")
    np.testing.assert_array_equal(final.bz[done], first.bz[done])
    assert np.isfinite(final.bz).all()


def _start_fly_scan(path):
    return subprocess.Popen(
        [sys.executable, "-m", "smm_daq.cli.main", "scan", "--center-um", "12500,12500",
         "--size-um", "200,140", "--step-um", "20", "--field-uT", "0,30,0", "--name", "k",
         "--out", str(path), "--time-scale", "10", "--fly", "--pixel-time-s", "0.05"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _lines_done(path):
    try:
        with h5py.File(path, "r") as f:
            return int(np.count_nonzero(f["k/data/line_done"][()])) if "k" in f else 0
    except (OSError, KeyError):
        return 0  # being set up, or a line being written at that moment


@pytest.mark.slow
def test_kill_9_mid_fly_then_resume_keeps_every_finished_line(tmp_path):
    path = tmp_path / "k.h5"
    proc = _start_fly_scan(path)
    try:
        for _ in proc.stderr:  # block on progress output, never on time
            if _lines_done(path) >= 2:
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    before = read_map(path, "k")
    with h5py.File(path, "r") as f:
        done = f["k/data/line_done"][()].astype(bool)
        streams = f["k/fly_streams/time"][()]
    assert 2 <= done.sum() < before.bz.shape[0]
    assert np.isfinite(streams[done, 0]).all() and np.isnan(streams[~done]).all()
    assert main(["resume", str(path), "--entry", "k"]) == 0
    after = read_map(path, "k")
    np.testing.assert_array_equal(after.bz[done], before.bz[done])
    assert np.isfinite(after.bz).all()
    with h5py.File(path, "r") as f:
        assert f["k/status"].asstr()[()] == "finished"
        assert json.loads(f["k/plan"][()])["fly"]["pixel_time_s"] == 0.05
        assert float(f["k/rig_clock_duration"][()]) > 0


def test_cli_refuses_a_bad_pixel_time_naming_the_option(tmp_path, capsys):
    code = main(["scan", "--center-um", "12500,12500", "--size-um", "200,140", "--step-um",
                 "20", "--name", "k", "--out", str(tmp_path / "c.h5"), "--fly",
                 "--pixel-time-s", "-1"])
    assert code == 2
    assert "--pixel-time-s" in capsys.readouterr().err
    assert not (tmp_path / "c.h5").exists()


def _centre(row: np.ndarray) -> float:
    """Position (pixels) of a line's main anomaly: the centroid of Bz over it, less its
    level around it. (A centroid, not the peak: the filter's blur is skewed, forwards on one
    line and backwards on the next, and moves the peak by up to τ·v while the centroid moves
    by exactly the mean delay that the lag removes.)"""
    i = int(np.argmax(np.abs(row)))
    window = np.arange(max(i - 8, 0), min(i + 9, row.size))
    w = np.abs(row[window]) - np.abs(row[window]).min()
    return float(window @ w / w.sum())


@pytest.mark.parametrize("pixel_time", [0.02, 0.1, 0.6])  # a 30× range of speeds
def test_an_unknown_delay_is_found_from_the_line_pairs(profile, tmp_path, pixel_time):
    # The buffer really starts half a pixel later than the driver says (as an unknown
    # trigger delay would make it): the lag that places the samples is the model's plus it.
    path = tmp_path / "l.h5"
    step = 20e-6
    delay = 0.5 * pixel_time
    plan = ScanPlan.from_center("lag", (12.3e-3, 11.65e-3), (0.4e-3, 0.03e-6), (step, 0.01e-6),
                                fly=_fly(pixel_time))  # four lines 10 nm apart: one grain
    with open_rig(profile) as rig:
        start_buffer = rig.lockin.start_buffer
        rig.lockin.start_buffer = lambda **kw: start_buffer(**kw) + delay
        seq = Sequencer(rig, path, plan)
        assert seq.run() == "finished"
        line = seq._fly
    with h5py.File(path, "r") as f:
        g = f["lag/fly_streams"]
        lag = g["lag"][()]
        raw = []
        for iy in range(4):
            keep, kept = np.isfinite(g["time"][iy]), np.isfinite(g["position_time"][iy])
            raw.append(LineStreams(t=g["time"][iy][keep], bz=g["lockin_x"][iy][keep],
                                   t_pos=g["position_time"][iy][kept],
                                   x_pos=g["position_x"][iy][kept], forward=iy % 2 == 0))
    assert lag[0] == pytest.approx(line.lag)  # one line alone: the model
    error_px = abs(lag[-1] - (line.lag + delay)) * line.velocity / step
    assert error_px < 0.1
    # rebinned with it, a dipole's peak is at the same place in forward and backward lines
    # (each direction's two lines averaged: the peak of one noisy line moves by ~0.05 px)
    peaks = [_centre(bin_line(sample_positions(r, lag[-1]), r.bz, plan.x)[0]) for r in raw]
    assert abs(np.mean(peaks[0::2]) - np.mean(peaks[1::2])) < 0.1


def test_the_sr860_capture_flies_the_same_map_as_the_sr830_buffer(profile, tmp_path):
    text = Path(PROFILE).read_text().replace('implementation = "sr830"',
                                             'implementation = "sr860"')
    sr860 = parse_profile(re.sub(r"reserve = .*\n", "", text), Path(PROFILE))
    path = tmp_path / "m.h5"
    sd = []
    for name, p in (("sr830", profile), ("sr860", sr860)):
        with open_rig(p, world_options={"seed": len(sd)}) as rig:
            seq = Sequencer(rig, path, ScanPlan.from_center(name, CENTRE, (0.6e-3, 0.2e-3),
                                                            20e-6, fly=_fly(0.05)))
            assert seq.run() == "finished"
            line = seq._fly
        sd.append(flown_pixel_sd(_density(), 0.05, line.time_constant, line.poles, line.rate))
    assert line.rate == pytest.approx(1.25e6 / 2**12)  # the SR860's own rate grid
    a, b = read_map(path, "sr830").bz, read_map(path, "sr860").bz
    z = (a - b) / np.hypot(*sd)
    assert np.ptp(a) > 20 * sd[0]
    assert z.std() == pytest.approx(1.0, abs=3.3 / np.sqrt(z.size))  # 0.18 at 341 pixels
    assert abs(z.mean()) < 4 / np.sqrt(z.size)


def test_a_wired_e727_starts_the_buffer_on_its_trigger_and_flies_the_same_map(tmp_path):
    e727 = Path("configs/simulator-e727.toml")
    wired = parse_profile(e727.read_text() + "\n[fly]\ntrigger_wired = true\n", e727)
    path = tmp_path / "t.h5"
    for name, trigger in (("software", False), ("trigger", True)):
        with open_rig(wired, world_options={"seed": int(trigger)}) as rig:
            assert rig.stage.trigger_output()
            seq = Sequencer(rig, path, ScanPlan.from_center(
                name, (900e-6, 900e-6), (0.6e-3, 0.2e-3), 20e-6, fly=_fly(0.05, trigger=trigger)))
            assert seq.run() == "finished"
            line = seq._fly
    sd = flown_pixel_sd(_density(), 0.05, line.time_constant, line.poles, line.rate)
    a, b = read_map(path, "software").bz, read_map(path, "trigger").bz
    z = (a - b) / (np.sqrt(2) * sd)
    assert np.ptp(a) > 20 * sd
    assert z.std() == pytest.approx(1.0, abs=3.3 / np.sqrt(z.size))  # 0.18 at 341 pixels
    assert abs(z.mean()) < 4 / np.sqrt(z.size)


def test_a_trigger_start_needs_the_cable_in_the_profile(profile, tmp_path):
    plan = ScanPlan.from_center("t", CENTRE, (0.2e-3, 0.0), 20e-6, fly=_fly(0.05, trigger=True))
    with open_rig(profile) as rig, pytest.raises(InputError, match="trigger_wired"):
        Sequencer(rig, tmp_path / "t.h5", plan).run()
    assert not (tmp_path / "t.h5").exists()


def test_a_controller_without_a_trigger_output_is_found_when_the_scan_starts(profile, tmp_path):
    # The profile says the cable is wired, but the C-884 puts out no trigger: the plan passes
    # every check made before connecting, and the connected controller refuses it.
    wired = parse_profile(profile.text + "\n[fly]\ntrigger_wired = true\n", profile.path)
    plan = ScanPlan.from_center("t", CENTRE, (0.2e-3, 0.0), 20e-6, fly=_fly(0.05, trigger=True))
    plan.validate(wired)
    with open_rig(wired) as rig:
        before = rig.stage.position()
        with pytest.raises(InputError, match="puts out no trigger"):
            Sequencer(rig, tmp_path / "t.h5", plan).run()
        np.testing.assert_array_equal(rig.stage.position(), before)
    assert not (tmp_path / "t.h5").exists()


def test_a_recipe_is_refused_before_its_first_step_by_a_controller_without_a_trigger(
        profile, tmp_path, capsys):
    """What only the connected controller can tell is asked of every fly step once the rig
    is connected, before the first step takes lab time."""
    wired = tmp_path / "wired.toml"
    wired.write_text(profile.text + "\n[fly]\ntrigger_wired = true\n")
    recipe = tmp_path / "r.toml"
    recipe.write_text('[scan_defaults]\ncenter_um = [12500, 12500]\nsize_um = [100, 20]\n'
                      'step_um = 20\n\n[[step]]\nkind = "scan"\nname = "plain"\n\n'
                      '[[step]]\nkind = "scan"\nname = "f"\nfly = true\npixel_time_s = 0.1\n'
                      'fly_trigger = true\n')
    out = tmp_path / "r.h5"
    assert main(["run", str(recipe), "--out", str(out), "--profile", str(wired), "--yes"]) == 2
    err = capsys.readouterr().err
    assert "step 2 (scan 'f'): fly trigger: this stage controller puts out no trigger" in err
    assert "step 1/" not in err and "the rig is safe" in err
    assert not out.exists() or list_entries(out) == []


def test_a_recipe_flies_a_scan_with_its_fly_keys(tmp_path):
    from smm_daq.acquisition.recipe import load_recipe

    recipe = tmp_path / "r.toml"
    recipe.write_text('[[step]]\nkind = "scan"\nname = "f"\ncenter_um = [12500, 12500]\n'
                      'size_um = [100, 20]\nstep_um = 20\nfly = true\npixel_time_s = 0.1\n'
                      'oversample = 4\n')
    assert main(["run", str(recipe), "--out", str(tmp_path / "r.h5"), "--yes"]) == 0
    with h5py.File(tmp_path / "r.h5", "r") as f:
        assert json.loads(f["f/plan"][()])["fly"] == {
            "pixel_time_s": 0.1, "oversample": 4, "trigger": False, "baselines": False}
        assert np.isfinite(f["f/data/Bz"][()]).all()
    bad = tmp_path / "b.toml"
    bad.write_text(recipe.read_text().replace("oversample = 4", "oversample = 0"))
    with pytest.raises(InputError, match="oversample"):
        load_recipe(bad)


def test_a_step_scan_records_its_rig_clock_duration(tmp_path):
    from acq_fakes import fake_rig

    rig = fake_rig()
    t0 = rig.clock.now()
    plan = ScanPlan.from_center("s", CENTRE, (40e-6, 30e-6), 10e-6, field=(0, 20e-6, 0))
    assert Sequencer(rig, tmp_path / "s.h5", plan).run() == "finished"
    with h5py.File(tmp_path / "s.h5", "r") as f:
        duration = float(f["s/rig_clock_duration"][()])
    assert duration == pytest.approx(rig.clock.now() - t0, rel=1e-9)
    assert duration > plan.points * plan.settle_tau * rig.lockin.time_constant()


def test_a_pause_waits_for_the_line_boundary(profile, tmp_path):
    plan = ScanPlan.from_center("p", CENTRE, (0.2e-3, 0.06e-3), 20e-6, fly=_fly(0.05))
    with open_rig(profile) as rig:
        seq = Sequencer(rig, tmp_path / "p.h5", plan)
        fly_x = rig.stage.fly_x
        kinds = []

        def pause_mid_line(*args, **kw):  # asked while the second line moves
            start = fly_x(*args, **kw)
            if len(kinds) and kinds.count("line_done") == 1 and "paused" not in kinds:
                seq.pause()
            return start

        def on_event(event):
            kinds.append(event.kind)
            if event.kind == "paused":
                seq.resume()  # from the subscriber: the scan goes on at once

        rig.stage.fly_x = pause_mid_line
        seq.subscribe(on_event)
        assert seq.run() == "finished"
    done = [i for i, k in enumerate(kinds) if k == "line_done"]
    assert kinds.index("paused") > done[1]  # the line under way was finished first
    assert np.isfinite(read_map(tmp_path / "p.h5", "p").bz).all()


def test_the_bus_latency_costs_rig_time_per_message(profile):
    with open_rig(profile, world_options={"bus_latency": 0.004}) as rig:
        t0 = rig.clock.now()
        rig.lockin.time_constant()  # one query: one message out
        assert rig.clock.now() - t0 == pytest.approx(0.004)


@pytest.mark.parametrize("baselines", [False, True])
def test_line_baselines_take_out_the_drift_between_lines(profile, tmp_path, baselines):
    drift = 1e-6  # T/s: about a µT from one line to the next
    plan = ScanPlan.from_center("d", BLANK, (0.2e-3, 0.2e-3), 20e-6,
                                fly=_fly(0.05, baselines=baselines))
    with open_rig(profile, world_options={"drift_rate": drift}) as rig:
        assert Sequencer(rig, tmp_path / "d.h5", plan).run() == "finished"
    medians = np.median(read_map(tmp_path / "d.h5", "d").bz, axis=1)
    if baselines:
        np.testing.assert_allclose(medians, 0.0, atol=1e-12)
    else:  # the drift is there, about a µT a line
        assert np.polyfit(np.arange(medians.size), medians, 1)[0] > 0.5e-6


def _sr860_profile():
    text = Path(PROFILE).read_text().replace('implementation = "sr830"',
                                             'implementation = "sr860"')
    return parse_profile(re.sub(r"reserve = .*\n", "", text), Path(PROFILE))


def test_the_sr860_driver_states_the_capture_ceiling_its_emulator_answers():
    """The plan is checked, before anything connects, against the ceiling the driver states
    for each time constant: the one CAPTURERATEMAX? answers there."""
    from drivers.sr860 import SR860
    from simulators.sr860_emulator import SR860Emulator
    from smm_daq.clock import VirtualClock

    limits = SR860.buffer_limits()
    emulator = SR860Emulator(VirtualClock(), None, rng=np.random.default_rng(0))
    for i, (tau, ceiling) in enumerate(zip(limits.time_constants, limits.max_rates,
                                           strict=True)):
        emulator.handle(f"OFLT {i}")
        assert ceiling == pytest.approx(float(emulator.handle("CAPTURERATEMAX?")), rel=1e-5), tau


def test_a_fly_plan_takes_a_time_constant_whose_capture_ceiling_allows_its_rate(tmp_path):
    """100 samples per 50 ms pixel, 2441 Hz on the SR860's grid: the 10 ms τ the pixel time
    allows captures at up to 39062.5 Hz, as a real SR860 answers (QCoDeS's SR86x example
    notebook), so the plan takes it, not the 3 ms an estimate of 610 Hz there made it take;
    a plan whose rate the connected lock-in refuses fails when the scan starts (below)."""
    path = tmp_path / "f.h5"
    plan = ScanPlan.from_center("f", CENTRE, (0.2e-3, 0.06e-3), 20e-6,
                                fly=_fly(0.05, oversample=100))
    with open_rig(_sr860_profile()) as rig:
        seq = Sequencer(rig, path, plan)
        assert seq.run() == "finished"
        line = seq._fly
        assert line.rate >= 100 / 0.05
        assert line.time_constant == pytest.approx(10e-3)
        assert line.rate <= float(rig.lockin.link.query("CAPTURERATEMAX?", float))


def test_a_capture_rate_the_connected_lockin_refuses_is_found_before_the_entry(
        tmp_path, monkeypatch):
    """A lock-in whose ceiling is lower than its driver states (another firmware) refuses
    the plan when the scan starts: nothing written, the field never set."""
    from simulators.sr860_emulator import SR860Emulator

    monkeypatch.setattr(SR860Emulator, "capture_rate_max", lambda self: 100.0)
    path = tmp_path / "f.h5"
    plan = ScanPlan.from_center("f", CENTRE, (0.2e-3, 0.06e-3), 20e-6, fly=_fly(0.05))
    with open_rig(_sr860_profile()) as rig:
        rig.coils.set_field(np.array([0.0, 20e-6, 0.0]))  # a field set by hand before
        with pytest.raises(InputError,
                           match=r"capture rate .* at most 100 Hz at this time constant"):
            Sequencer(rig, path, plan).run()
        # the lock-in was changed before it refused: the rig is made safe, as after any
        # failure once an instrument setting has changed
        np.testing.assert_array_equal(rig.coils.field_setpoint(), np.zeros(3))
    assert not path.exists() or "f" not in [e.name for e in list_entries(path)]


def _field_on_and_a_capture_left_running(rig):
    """A field set by hand, and the SR860 capturing at 1.19 Hz within its first block (as a
    scan aborted mid-line leaves it): a stop then runs on to the block's end."""
    rig.coils.set_field(np.array([0.0, 20e-6, 0.0]))
    lockin = rig.lockin
    rate = lockin.configure_buffer(1.0)
    lockin.start_buffer(on_trigger=False)
    lockin.identify()  # a reply: the start was taken
    rig.clock.sleep(10 / rate)  # within its first block: it runs on after a stop
    return lockin


def test_an_abort_while_the_buffer_is_configured_ramps_the_field_down_at_once(
        tmp_path, monkeypatch):
    """A fly scan starts while the SR860 still captures at 1.19 Hz (a scan aborted mid-line
    left it running), a field set by hand before: configuring the buffer stops that capture,
    which runs on to its block's end (up to 215 s). An abort meanwhile ends the wait between its
    CAPTURESTAT? queries, as a line's start does: the scan ends "aborted" and the field is
    ramped down at once, no entry written. Unfixed, the field stayed on until the block's end
    (52 s of the rig's clock after the abort here)."""
    path = tmp_path / "f.h5"
    plan = ScanPlan.from_center("f", CENTRE, (0.2e-3, 0.06e-3), 20e-6, fly=_fly(0.05))
    with open_rig(_sr860_profile()) as rig:
        lockin = _field_on_and_a_capture_left_running(rig)
        seq = Sequencer(rig, path, plan)
        aborted: list[float] = []
        made_safe: list[float] = []
        transport = lockin.link.transport

        class AbortOnStatus:  # the operator aborts as the capture's stop is waited for
            def __getattr__(self, name):
                return getattr(transport, name)

            def query(self, message):
                if message.startswith("CAPTURESTAT?") and not aborted:
                    aborted.append(rig.clock.now())
                    seq.abort("test abort")
                return transport.query(message)

        lockin.link.transport = AbortOnStatus()
        make_safe = rig.make_safe

        def noted_safe():
            made_safe.append(rig.clock.now())
            return make_safe()

        monkeypatch.setattr(rig, "make_safe", noted_safe)
        assert seq.run() == "aborted", seq.message
        assert aborted and made_safe
        assert made_safe[0] - aborted[0] < 1.0, made_safe[0] - aborted[0]
        np.testing.assert_array_equal(rig.coils.field_setpoint(), np.zeros(3))
    assert not path.exists() or "f" not in [e.name for e in list_entries(path)]


def test_ctrl_c_while_the_buffer_is_configured_ramps_the_field_down(tmp_path):
    """As above, but the stop is Ctrl-C (or a routed SIGTERM) in the main thread, where a
    script's scan configures the buffer: the KeyboardInterrupt ends the start with the field
    set by hand ramped down, as an abort does, no entry written. Unfixed, only `Exception`
    made the rig safe there: the field stayed on after the interrupt (a notebook's kernel
    goes on with it on until `close()`)."""
    path = tmp_path / "f.h5"
    plan = ScanPlan.from_center("f", CENTRE, (0.2e-3, 0.06e-3), 20e-6, fly=_fly(0.05))
    with open_rig(_sr860_profile()) as rig:
        lockin = _field_on_and_a_capture_left_running(rig)
        seq = Sequencer(rig, path, plan)
        transport = lockin.link.transport
        interrupted: list[float] = []

        class InterruptOnStatus:  # Ctrl-C as the capture's stop is waited for
            def __getattr__(self, name):
                return getattr(transport, name)

            def query(self, message):
                if message.startswith("CAPTURESTAT?") and not interrupted:
                    interrupted.append(rig.clock.now())
                    raise KeyboardInterrupt("SIGINT")
                return transport.query(message)

        lockin.link.transport = InterruptOnStatus()
        with pytest.raises(KeyboardInterrupt):
            seq.run()
        lockin.link.transport = transport
        assert interrupted
        np.testing.assert_array_equal(rig.coils.field_setpoint(), np.zeros(3))
    assert not path.exists() or "f" not in [e.name for e in list_entries(path)]


def test_a_recording_cut_short_of_the_line_fails_it_safe(profile, tmp_path):
    """The stage recorded only the first 60 % of a line (a controller that stopped recording
    early): the samples after it would all take its last position and pile into wrong
    pixels. The scan fails naming the stage and how short the recording is, the field
    ramped down, and finishes on resume."""
    from dataclasses import replace as replaced

    path = tmp_path / "cut.h5"
    plan = ScanPlan.from_center("fly", CENTRE, (0.4e-3, 0.1e-3), 20e-6, field=(0, 0, 20e-6),
                                fly=_fly(0.05))
    with open_rig(profile) as rig:
        read = rig.stage.read_recorded

        def cut(*args, **kw):
            motion = read(*args, **kw)
            keep = int(0.6 * motion.x.size)
            return replaced(motion, t=motion.t[:keep], x=motion.x[:keep])

        rig.stage.read_recorded = cut
        seq = Sequencer(rig, path, plan)
        assert seq.run() == "failed"
        assert re.search(r"the recording of the line \(\d+ points\) ends at x = [\d.]+ µm, "
                         r"[\d.]+ µm short of its last pixel's edge", seq.message), seq.message
        np.testing.assert_allclose(rig.coils.field_setpoint(), 0.0, atol=1e-12)
    with open_rig(profile) as rig:
        assert Sequencer(rig, path, plan, resume=True).run() == "finished"
    assert np.isfinite(read_map(path, "fly").bz).all()


def test_a_line_whose_samples_miss_its_pixels_fails_it_safe_unstored(profile, tmp_path):
    """The stage's recording of the second line timed 100 s after the lock-in's samples (a
    command acted on long after the driver timed it): no sample falls in its pixels. That line
    is not stored as done with NaN pixels (a resume would never fly it again): the scan fails
    naming it, the field ramped down, the first line kept, and it finishes on resume."""
    from dataclasses import replace as replaced

    path = tmp_path / "apart.h5"
    plan = ScanPlan.from_center("fly", CENTRE, (0.4e-3, 0.1e-3), 20e-6, field=(0, 0, 20e-6),
                                fly=_fly(0.05))
    with open_rig(profile) as rig:
        read = rig.stage.read_recorded
        lines = []

        def late(*args, **kw):
            motion = read(*args, **kw)
            lines.append(motion)
            return motion if len(lines) == 1 else replaced(motion, t=motion.t + 100.0)

        rig.stage.read_recorded = late
        seq = Sequencer(rig, path, plan)
        assert seq.run() == "failed"
        assert re.search(r"no sample of the line fell in \d+ of its 21 pixels", seq.message), \
            seq.message
        np.testing.assert_allclose(rig.coils.field_setpoint(), 0.0, atol=1e-12)
    with h5py.File(path, "r") as f:
        done = f["fly/data/line_done"][()]
        bz = f["fly/data/Bz"][()]
    assert done.tolist() == [True] + [False] * (plan.ny - 1)
    assert np.isfinite(bz[0]).all() and np.isnan(bz[1:]).all()
    with open_rig(profile) as rig:
        assert Sequencer(rig, path, plan, resume=True).run() == "finished"
    np.testing.assert_array_equal(read_map(path, "fly").bz[0], bz[0])
    assert np.isfinite(read_map(path, "fly").bz).all()


@pytest.mark.parametrize("auto_range", [False, True])
def test_an_overload_reply_lost_once_flies_the_line_again_as_it_was(profile, tmp_path,
                                                                    auto_range):
    """A lost reply to the overload query (its latch cleared by reading it, so not asked
    again) says nothing of an overload: the line is flown again, neither paused for the
    operator nor flown on at a coarser sensitivity for the rest of the scan."""
    plan = ScanPlan.from_center("o", CENTRE, (0.2e-3, 0.06e-3), 20e-6, fly=_fly(0.05))
    with open_rig(profile) as rig:
        seq = Sequencer(rig, tmp_path / "o.h5", plan, auto_range=auto_range)
        overloaded, asked = rig.lockin.overloaded, [0]

        def lost_once() -> bool:
            asked[0] += 1
            was = overloaded()
            if asked[0] == 2:
                raise ReplyUnknown("no valid reply to 'LIAS?' after 1 attempt",
                                   instrument="lockin")
            return was

        kinds = []

        def on_event(event):
            kinds.append(event.kind)
            if event.kind == "paused":
                seq.resume()

        rig.lockin.overloaded = lost_once
        sensitivity = rig.lockin.sensitivity()
        seq.subscribe(on_event)
        assert seq.run() == "finished", seq.message
        assert "paused" not in kinds
        assert rig.lockin.sensitivity() == sensitivity
    assert asked[0] == plan.ny + 1  # the second line flown twice
    assert any("'LIAS?'" in note and "flown again" in note for note in seq.notes)
    assert np.isfinite(read_map(tmp_path / "o.h5", "o").bz).all()


@pytest.mark.parametrize("tau", [0.03, 300.0])
def test_the_sr860_captures_at_the_ceiling_its_reply_rounds(tau):
    """At 30 ms the ceiling is 9765.625 Hz, answered as 9765.62 (six digits): the very rate
    it allows was refused as above it. At 300 s it is 1.25 MHz / 2^20, answered as 1.19209,
    below the lowest rate offered: the reply was refused as corrupt and the lock-in lost."""
    from drivers.sr860 import capture_rate_max

    with open_rig(_sr860_profile()) as rig:
        rig.lockin.set_time_constant(tau)
        assert rig.lockin.configure_buffer(capture_rate_max(tau)) == capture_rate_max(tau)
