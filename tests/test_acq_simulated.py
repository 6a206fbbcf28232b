"""Scans on the real simulator rig (drivers over emulated protocols, one simulated world).

The known virtual sample's noiseless field (`world.sample.bz_true`) is the independent truth:
a scan must reproduce it within the simulated sensor noise, and every way a scan ends must
leave the simulated coils at zero current.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulators.sample import VirtualSample
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import open_rig
from smm_daq.storage.h5file import open_read
from smm_daq.storage.nexus import read_map

C = 12.5e-3
NOISE = 0.25e-6  # T, the simulator's MTJ noise in one reading (its default)


def _sample() -> VirtualSample:
    """Two buried grains near the centre: tens of µT at 100 µm, well above the noise."""
    cuboids = np.array(
        [
            [C - 40e-6, C + 10e-6, -30e-6, 40e-6, 30e-6, 40e-6],
            [C + 50e-6, C - 30e-6, -25e-6, 30e-6, 30e-6, 30e-6],
        ]
    )
    return VirtualSample(
        cuboids,
        np.array([0, 1]),
        remanence=np.array([[3e4, 1e4, 4e4], [-2e4, 0.0, -5e4]]),
        susceptibility=np.array([2.0, 1.0]),
    )


@pytest.fixture
def rig():
    r = open_rig(load_profile(), world_options={"sample": _sample(), "seed": 7})
    yield r
    r.close()


def _plan(name="scan", **kw) -> ScanPlan:
    kw.setdefault("field", (0.0, 40e-6, 0.0))
    return ScanPlan.from_center(name, (C, C), (300e-6, 300e-6), 15e-6, **kw)


def _truth(rig, m, applied):
    xx, yy = np.meshgrid(m.x, m.y)
    off = rig.world.sample_offset
    sensors = np.c_[xx.ravel() - off[0], yy.ravel() - off[1], np.full(xx.size, m.height)]
    bz = rig.world.sample.bz_true(sensors, rig.profile.sensor.active_area, applied)
    return bz.reshape(xx.shape) + applied[2]  # the sensor also sees the applied field's z part


def _coils_at_zero(rig) -> bool:
    currents = rig.world.coils.currents(rig.clock.now())
    return bool(np.allclose(currents, 0.0, atol=1e-9))


def test_scan_reproduces_the_virtual_sample_within_the_sensor_noise(rig, tmp_path):
    applied = {}
    plan = _plan()
    seq = Sequencer(rig, tmp_path / "s.h5", plan)
    seq.subscribe(
        lambda e: (
            e.kind == "started"
            and applied.setdefault("b", rig.world.coils.field_at_sample(rig.clock.now()))
        )
    )
    assert seq.run() == "finished"
    m = read_map(tmp_path / "s.h5", "scan")
    truth = _truth(rig, m, applied["b"])
    assert np.ptp(truth) > 40 * NOISE  # a map with real structure, not a flat one
    residual = (m.bz - truth).ravel()
    n = residual.size
    assert abs(residual.mean()) < 5 * NOISE / np.sqrt(n)
    # sample SD of n Gaussian draws: relative SD 1/sqrt(2n) ≈ 3 %; allow 6 of those
    assert residual.std() == pytest.approx(NOISE, rel=6 / np.sqrt(2 * n))
    np.testing.assert_allclose(applied["b"], [0.0, 40e-6, 0.0], atol=60e-9)
    assert _coils_at_zero(rig)


def test_stored_raw_readings_and_measured_field(rig, tmp_path):
    plan = _plan(field=(20e-6, 0.0, 0.0))
    Sequencer(rig, tmp_path / "s.h5", plan).run()
    with open_read(tmp_path / "s.h5") as f:
        e = f["scan"]
        x_v = e["data/lockin_x"][()]
        bz = e["data/Bz"][()]
        np.testing.assert_allclose(bz, x_v / rig.profile.sensor.sensitivity_V_per_T)
        assert np.all(np.diff(e["data/time"][()][0]) > 0)  # line 0 runs forwards in time
        np.testing.assert_allclose(e["instrument/field_check/value"][()], [20e-6, 0, 0], atol=60e-9)
        snapshot = e["instrument/snapshot/json"].asstr()[()]
        assert '"lockin"' in snapshot and '"stage"' in snapshot and '"coils"' in snapshot
        assert e["profile"].asstr()[()] == rig.profile.text


def _raise_at(rig, n, exc):
    original = rig.lockin.read_xy
    count = {"n": 0}

    def read_xy():
        count["n"] += 1
        if count["n"] == n:
            raise exc
        return original()

    rig.lockin.read_xy = read_xy


@pytest.mark.parametrize("ending", ["finished", "abort", "exception", "ctrl-c", "lost"])
def test_every_exit_path_leaves_the_field_at_zero(rig, tmp_path, ending):
    plan = ScanPlan.from_center("scan", (C, C), (60e-6, 60e-6), 20e-6, field=(0, 40e-6, 30e-6))
    seq = Sequencer(rig, tmp_path / "s.h5", plan)
    in_field = []
    seq.subscribe(
        lambda e: (
            e.kind == "point"
            and in_field.append(np.linalg.norm(rig.world.coils.field_at_sample(rig.clock.now())))
        )
    )
    expected = {
        "finished": "finished",
        "abort": "aborted",
        "exception": "failed",
        "ctrl-c": "aborted",
        "lost": "failed",
    }[ending]
    if ending == "abort":
        seq.subscribe(lambda e: e.kind == "point" and e.index == (1, 1) and seq.abort())
    elif ending == "exception":
        _raise_at(rig, 6, RuntimeError("a bug"))
    elif ending == "ctrl-c":
        _raise_at(rig, 6, KeyboardInterrupt())
    elif ending == "lost":
        address = rig.profile.lockin.link.address
        seq.subscribe(
            lambda e: (
                e.kind == "point"
                and e.index == (1, 0)
                and setattr(rig.backend.faults[address], "disconnected", True)
            )
        )
    if ending in ("exception", "ctrl-c"):
        with pytest.raises((RuntimeError, KeyboardInterrupt)):
            seq.run()
    else:
        seq.run()
    assert seq.state == expected
    assert in_field and min(in_field) > 45e-6  # the field was on during the points
    assert _coils_at_zero(rig)
    with open_read(tmp_path / "s.h5") as f:
        assert f["scan/status"].asstr()[()] == expected


def test_transient_link_faults_do_not_spoil_the_scan(rig, tmp_path):
    address = rig.profile.lockin.link.address
    plan = _plan(field=(0.0, 0.0, 0.0))

    def inject(e):
        if e.kind == "point" and e.index[1] == 3:
            faults = rig.backend.faults[address]
            faults.timeouts, faults.garbage = 1, 1

    seq = Sequencer(rig, tmp_path / "s.h5", plan)
    seq.subscribe(inject)
    assert seq.run() == "finished"
    m = read_map(tmp_path / "s.h5", "scan")
    residual = m.bz - _truth(rig, m, rig.world.coils.field_at_sample(rig.clock.now()))
    assert np.all(np.isfinite(m.bz))
    assert np.max(np.abs(residual)) < 6 * NOISE  # no garbage stored as data


def test_overrange_on_the_real_lockin_pauses_or_autoranges(rig, tmp_path):
    rig.lockin.set_sensitivity(0.02)  # the grains give up to ~0.1 V here
    reasons = []
    seq = Sequencer(rig, tmp_path / "s.h5", _plan("paused"))
    seq.subscribe(lambda e: e.kind == "paused" and (reasons.append(e.message), seq.abort()))
    assert seq.run() == "aborted"
    assert reasons and ("overload" in reasons[0] or "full scale" in reasons[0])

    seq = Sequencer(rig, tmp_path / "s.h5", _plan("ranged"), auto_range=True)
    applied = rig.world.coils.field_at_sample(rig.clock.now()) + np.array([0.0, 40e-6, 0.0])
    assert seq.run() == "finished"
    assert rig.lockin.sensitivity() > 0.02 and seq.notes
    m = read_map(tmp_path / "s.h5", "ranged")
    residual = m.bz - _truth(rig, m, applied)
    assert np.max(np.abs(residual)) < 6 * NOISE
