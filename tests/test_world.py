"""The simulated world: the demo sample, fields at the sensor, noise, drift, the lock-in's lag,
and the fluxgate's errors, checked against closed forms and statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad

from simulators.backend import SimulatedBackend
from simulators.sample import LARGE_MAGNETITE, MU0, VirtualSample
from simulators.sensor_model import FluxgateModel, enbw
from smm_daq.clock import VirtualClock
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import open_rig

UT = 1e-6
SIZE = (30e-6, 30e-6)


@pytest.fixture(scope="module")
def builtin() -> VirtualSample:
    return VirtualSample.builtin()


def quiet_world(**options: object) -> SimulatedBackend:
    base = {
        "noise_rms": 0.0,
        "drift_rate": 0.0,
        "ambient_field": np.zeros(3),
        "coil_matrix_error": 0.0,
    }
    backend = SimulatedBackend(load_profile(), VirtualClock(), {**base, **options})
    stage = backend.world.stage  # the simulator's C-884 references its axes before moving
    for axis in stage.axis_names:
        stage.set_servo(axis, True)
    stage.reference(stage.axis_names)
    backend.clock.advance(10.0)
    stage.move({"1": 0.0, "2": 0.0, "3": 100e-6})  # back where the world starts it
    backend.clock.advance(10.0)
    return backend


# --- the demo sample ---------------------------------------------------------------------


def test_builtin_sample_is_the_described_demo(builtin: VirtualSample) -> None:
    again = VirtualSample.builtin()
    np.testing.assert_array_equal(builtin.cuboids, again.cuboids)
    np.testing.assert_array_equal(builtin.remanence, again.remanence)
    assert 24 <= builtin.n_grains <= 48
    c = builtin.cuboids
    small = builtin.grain < builtin.n_grains - len(LARGE_MAGNETITE)
    assert np.all(c[small, 3:] >= 10e-6 * 0.6) and np.all(c[small, 3:] <= 80e-6)
    assert np.all(c[~small, 3:5] >= 200e-6) and np.all(builtin.susceptibility[-3:] == 3.0)
    assert np.all(np.abs(c[:, :2] - 12.5e-3) < 1.0e-3)  # inside the 2 mm square
    assert np.all(c[:, 2] + c[:, 5] / 2 <= -2e-6)  # buried below the top surface
    assert np.all((builtin.susceptibility >= 1) & (builtin.susceptibility <= 3))
    boxes = []  # grains do not overlap in plan view
    for g in range(builtin.n_grains):
        p = c[builtin.grain == g]
        boxes.append(
            (
                (p[:, 0] - p[:, 3] / 2).min(),
                (p[:, 0] + p[:, 3] / 2).max(),
                (p[:, 1] - p[:, 4] / 2).min(),
                (p[:, 1] + p[:, 4] / 2).max(),
            )
        )
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert a[1] <= b[0] or b[1] <= a[0] or a[3] <= b[2] or b[3] <= a[2]


def test_builtin_peak_field_at_100_um_is_tens_of_microtesla(builtin: VirtualSample) -> None:
    x = np.arange(11.4e-3, 13.6e-3, 30e-6)
    gx, gy = np.meshgrid(x, x)
    sensors = np.column_stack([gx.ravel(), gy.ravel(), np.full(gx.size, 100e-6)])
    bz = builtin.bz_true(sensors, SIZE, np.zeros(3))
    assert 10 * UT <= np.abs(bz).max() <= 100 * UT


def test_builtin_induced_map_shows_the_field_at_the_large_grains_edges(
        builtin: VirtualSample) -> None:
    """Seed 000, Figure 4d: in 40 µT along +y the large magnetite's induced magnetization puts
    magnetic charge + on its +y face and − on its −y face, so Bz is positive over the edge
    toward the field and negative over the other, far above the sensor's 0.25 µT noise (the
    plates' own demagnetizing field, N ≈ 0.06-0.1 in plane, leaves them χ_eff ≈ 2.2-2.5 of
    their χ = 3: about 2-3 µT at 100 µm)."""
    field = np.array([0.0, 40e-6, 0.0])
    large = builtin.cuboids[-len(LARGE_MAGNETITE):]
    assert large.shape[0] == 3 and np.all(large[:, 3:5] >= 200e-6)
    for x, y, _, _, dy, _ in large:
        over_edges = np.array([[x, y + dy / 2, 100e-6], [x, y - dy / 2, 100e-6]])
        induced = builtin.bz_true(over_edges, SIZE, field) - builtin.bz_true(over_edges, SIZE,
                                                                             np.zeros(3))
        assert induced[0] > 6 * 0.25 * UT and induced[1] < -6 * 0.25 * UT


def test_one_grain_far_away_is_a_point_dipole_of_remanent_plus_induced_moment() -> None:
    edge = 40e-6
    mr = np.array([300.0, -200.0, 500.0])
    chi = 2.0
    sample = VirtualSample([[0, 0, -50e-6, edge, edge, edge]], [0], [mr], [chi])
    b = np.array([20e-6, 0.0, 80e-6])
    # a cube's demagnetizing factor is 1/3 along every axis (by symmetry, the three sum to 1)
    m = (mr + chi / (1 + chi / 3) * b / MU0) * edge**3
    r = np.array([1.2e-3, -0.7e-3, 2.0e-3])
    sensor = r + np.array([0, 0, -50e-6])  # relative to the grain centre: r
    rn = np.linalg.norm(r)
    dipole = 1e-7 * (3 * r[2] * (m @ r) / rn**5 - m[2] / rn**3)
    assert sample.bz_true(sensor[None], (0, 0), b)[0] == pytest.approx(dipole, rel=2e-3)


def test_induced_field_is_linear_in_the_applied_field(builtin: VirtualSample) -> None:
    sensors = np.array([[12.4e-3, 12.6e-3, 80e-6], [12.0e-3, 12.1e-3, 150e-6]])
    b1, b2 = np.array([0, 0, 60e-6]), np.array([30e-6, -10e-6, 0])
    zero = builtin.bz_true(sensors, SIZE, np.zeros(3))

    def induced(b: np.ndarray) -> np.ndarray:
        return builtin.bz_true(sensors, SIZE, b) - zero

    np.testing.assert_allclose(induced(b1 + b2), induced(b1) + induced(b2), rtol=1e-8, atol=1e-15)
    np.testing.assert_allclose(induced(2.5 * b1), 2.5 * induced(b1), rtol=1e-8, atol=1e-15)
    per_sensor = builtin.bz_true(sensors, SIZE, np.array([b1, b2]))  # the kernel path
    direct = [builtin.bz_true(sensors[i : i + 1], SIZE, b)[0] for i, b in enumerate((b1, b2))]
    np.testing.assert_allclose(per_sensor, direct, rtol=1e-8, atol=1e-15)


def test_a_sample_without_susceptibility_ignores_the_field() -> None:
    sample = VirtualSample([[0, 0, -20e-6, 20e-6, 20e-6, 20e-6]], [0], [[0, 0, 1e3]], [0.0])
    s = np.array([[10e-6, 0, 60e-6]])
    assert (
        sample.bz_true(s, SIZE, np.array([0, 0, 1e-4]))[0]
        == sample.bz_true(s, SIZE, np.zeros(3))[0]
    )


def test_bad_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="inside the sample"):
        VirtualSample([[0, 0, 0, 10e-6, 10e-6, 10e-6]], [0], [[0, 0, 1]], [1.0])
    with pytest.raises(ValueError, match="grain indices"):
        VirtualSample([[0, 0, -1e-5, 1e-6, 1e-6, 1e-6]], [3], [[0, 0, 1]], [1.0])


# --- the world ---------------------------------------------------------------------------


def test_sensor_sees_the_sample_where_the_stage_puts_it_and_moves_with_a_remount() -> None:
    backend = quiet_world()
    world, clock = backend.world, backend.clock
    world.stage.set_servo("1", True)
    world.stage.set_servo("2", True)
    world.stage.move({"1": 12.45e-3, "2": 12.55e-3})
    clock.advance(10.0)
    t = clock.now()
    here = np.array([[12.45e-3, 12.55e-3, 100e-6]])
    expected = world.sample.bz_true(here, SIZE, world.coils.field_at_sample(t))[0]
    assert world.bz_noiseless([t])[0] == pytest.approx(expected, rel=1e-12)
    world.sample_offset = np.array([30e-6, -20e-6])  # the sample sits 30 µm further along x
    shifted = world.sample.bz_true(here - [[30e-6, -20e-6, 0]], SIZE, np.zeros(3))[0]
    assert world.bz_noiseless([t])[0] == pytest.approx(shifted, rel=1e-12)


def test_replacing_the_sample_takes_effect_at_once() -> None:
    backend = quiet_world()
    world = backend.world
    world.stage.set_servo("1", True)
    world.stage.set_servo("2", True)
    world.stage.move({"1": 12.36e-3, "2": 11.66e-3})  # above the demo sample's peak
    backend.clock.advance(10.0)
    t = backend.clock.now()
    assert abs(world.bz_noiseless([t])[0]) > 10 * UT
    world.sample = VirtualSample.empty()
    assert world.bz_noiseless([t])[0] == 0.0


def test_a_batch_of_more_new_positions_than_the_cache_holds_is_answered_whole(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A fast capture's samples along a move, more new positions than the response cache
    keeps: the first were pushed out before the batch was answered (a KeyError)."""
    backend = quiet_world()
    world = backend.world
    t0 = backend.clock.now()
    world.stage.move({"1": 12.36e-3, "2": 11.66e-3})
    backend.clock.advance(10.0)
    times = t0 + np.linspace(0.0, 1.0, 8)  # eight positions along the move
    whole = world.bz_noiseless(times)
    world._cache.clear()
    monkeypatch.setattr("simulators.world._CACHE_SIZE", 3)
    np.testing.assert_array_equal(world.bz_noiseless(times), whole)


def test_the_applied_field_adds_its_z_part_to_what_the_sensor_sees() -> None:
    backend = quiet_world(sample=VirtualSample.empty(), ambient_field=np.array([0, 0, 7e-6]))
    world = backend.world
    world.coils.set_output(2, True)
    world.coils.set_current(2, 0.5)  # 25 µT along z through the nominal matrix
    backend.clock.advance(1.0)
    assert world.bz_noiseless([backend.clock.now()])[0] == pytest.approx(32e-6, rel=1e-9)


def test_sensor_noise_and_drift_statistics() -> None:
    backend = quiet_world(noise_rms=0.25 * UT, drift_rate=1e-9, seed=3)
    world, clock = backend.world, backend.clock
    drift = 1e-9 * (clock.now() - world.start_time)
    truth = world.bz_noiseless([clock.now()])[0] + drift
    draws = np.array([world.bz_at_sensor(clock.now()) for _ in range(4000)])
    assert draws.mean() == pytest.approx(truth, abs=4 * 0.25 * UT / math.sqrt(4000))
    assert draws.std() == pytest.approx(0.25 * UT, rel=0.05)  # SD of the SD: 1.1 %
    v0 = world.lockin_signal([100.0], 1.0)[0]
    v1 = world.lockin_signal([3700.0], 1.0)[0]  # the stage has not moved since
    assert v1 - v0 == pytest.approx(2000.0 * 1e-9 * 3600.0, rel=1e-9)


@pytest.mark.parametrize("poles", [1, 2, 3, 4])
def test_equivalent_noise_bandwidth_matches_quadrature(poles: int) -> None:
    tau = 0.03
    value, _ = quad(lambda f: 1 / (1 + (2 * math.pi * f * tau) ** 2) ** poles, 0, np.inf)
    assert enbw(tau, poles) == pytest.approx(value, rel=1e-8)


def test_lockin_readings_scatter_by_the_sensor_noise_at_the_profile_settings() -> None:
    rig = open_rig(load_profile(), world_options={"drift_rate": 0.0, "seed": 11})
    s = rig.profile.sensor.sensitivity_V_per_T
    xs = []
    for _ in range(300):  # far from the sample: only the ambient field and noise
        rig.clock.sleep(0.3)
        xs.append(rig.lockin.read_xy()[0] / s)
    assert np.std(xs) == pytest.approx(0.25 * UT, rel=0.17)  # SD of the SD: 4 %
    ambient_z = 0.031 * UT
    assert np.mean(xs) == pytest.approx(ambient_z, abs=4 * 0.25 * UT / math.sqrt(300) * 3)
    rig.close()


def test_the_lockin_lags_a_move_by_its_time_constant() -> None:
    rig = open_rig(load_profile(), world_options={"noise_rms": 0.0, "drift_rate": 0.0})
    world, s, tau = rig.world, rig.profile.sensor.sensitivity_V_per_T, 0.03
    rig.stage.set_velocity(0.01)  # 10 mm/s: the 20 µm step takes 2 ms
    a, b = (12.36e-3, 11.66e-3), (12.38e-3, 11.66e-3)  # the steepest part of the demo sample
    rig.stage.move_to(*a, 100e-6)
    rig.clock.sleep(1.0)
    bz_a = world.bz_noiseless([rig.clock.now()])[0]
    assert rig.lockin.read_xy()[0] / s == pytest.approx(bz_a, rel=1e-6)
    rig.stage.move_to(*b)  # waits until on target: a few ms
    moved = rig.clock.now()
    lagging = rig.lockin.read_xy()[0] / s
    bz_b = world.bz_noiseless([moved])[0]
    assert abs(bz_b - bz_a) > 1 * UT
    assert abs(lagging - bz_a) < 0.5 * abs(bz_b - bz_a)  # still mostly at a
    rig.clock.sleep(10 * tau)
    assert rig.lockin.read_xy()[0] / s == pytest.approx(bz_b, rel=1e-3)
    rig.close()


def test_same_noise_seed_same_noise_other_noise_seed_other_noise() -> None:
    def readings(noise_seed: int, seed: int = 5) -> list[float]:
        rig = open_rig(load_profile(), world_options={"noise_seed": noise_seed, "seed": seed})
        out = []
        for _ in range(5):
            rig.clock.sleep(0.3)
            out.append(rig.lockin.read_xy()[0])
        rig.close()
        return out

    assert readings(5) == readings(5)
    assert readings(5) != readings(6)
    assert readings(5) == readings(5, seed=6)  # the rig's make-up is no part of its noise


def test_the_rig_is_made_as_its_seed_says_whatever_the_noise(monkeypatch) -> None:
    monkeypatch.delenv("SMM_DAQ_SIM_NOISE_SEED")  # fresh noise at each connection

    def made(seed: int) -> tuple[np.ndarray, np.ndarray]:
        backend = SimulatedBackend(load_profile(), VirtualClock(),
                                   {"seed": seed, "coil_matrix_error": 0.01})
        assert backend.world.fluxgate is not None
        return backend.world.coils.calibration, backend.world.fluxgate.gain

    for a, b in zip(made(5), made(5), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(made(5)[0], made(6)[0])


def test_the_simulator_profiles_rig_is_made_as_before_the_noise_had_a_seed() -> None:
    """The coils' true matrix and the fluxgate's gain of configs/simulator.toml's rig, as the
    version before noise had a seed of its own made them from `[simulation] seed`: a coil
    calibration stored then fits this rig still."""
    backend = SimulatedBackend(load_profile(), VirtualClock())
    assert backend.world.fluxgate is not None
    np.testing.assert_allclose(backend.world.coils.calibration, [
        [4.9996912373228129e-05, -1.0678802779648241e-08, -9.0455679657087690e-10],
        [-1.0893943027287701e-08, 4.9996773564593377e-05, -7.5771190200732536e-09],
        [-2.8085599436893047e-09, -1.3436929409235418e-09, 4.9999129913861095e-05]],
        rtol=1e-12, atol=0)
    np.testing.assert_allclose(backend.world.fluxgate.gain, [
        [9.9980495742795363e+04, 1.9149930480810080e+00, -1.7434806882132463e+01],
        [1.7328325027368120e+01, 9.9983164721515655e+04, 1.1047354816820572e+00],
        [-4.3144513130159625e+00, 2.6540449365316043e-01, 1.0000183669243024e+05]],
        rtol=1e-12, atol=0)


# --- the fluxgate ------------------------------------------------------------------------


def test_fluxgate_without_errors_inverts_its_nominal_calibration() -> None:
    scale = np.array([[1e-5, 2e-8, 0], [0, 1.1e-5, 0], [-1e-8, 0, 0.9e-5]])
    offset = np.array([0.01, -0.02, 0.005])
    f = FluxgateModel.with_errors(
        scale, offset, scale_error=0, orthogonality_error=0, offset_error=np.zeros(3),
        noise_rms=0, rng=np.random.default_rng(0),
    )  # fmt: skip
    b = np.array([12e-6, -3e-6, 45e-6])
    v = f.volts(b, np.random.default_rng(1))
    np.testing.assert_allclose(scale @ (v - offset), b, rtol=1e-12)


def test_fluxgate_errors_are_as_large_as_asked() -> None:
    scale = np.eye(3) * 1e-5
    b = np.array([0.0, 0.0, 100e-6])
    rng = np.random.default_rng(2)
    tilted, offsets = [], []
    for _ in range(300):
        f = FluxgateModel.with_errors(
            scale, np.zeros(3), scale_error=0, orthogonality_error=1e-3,
            offset_error=np.array([5e-9, 0, 0]), noise_rms=0, rng=rng,
        )  # fmt: skip
        reading = scale @ f.volts(b, rng)
        tilted.append(reading[0] - 5e-9)  # x sees z through its tilt
        offsets.append(scale @ f.volts(np.zeros(3), rng))
    assert np.std(tilted) == pytest.approx(100e-6 * 1e-3, rel=0.15)
    np.testing.assert_allclose(offsets[0], [5e-9, 0, 0], atol=1e-15)
