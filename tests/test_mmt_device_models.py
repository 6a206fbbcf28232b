"""The device path (`solver.device_qr` on an array backend) for point-source grains under the
dipole, quadrupole and octupole models, and for joint inversions of several scans, against
the CPU path of `joint.invert_scans`: the logic that runs on CuPy runs here on NumPy, the
multipole CUDA kernels in numba's simulator, and on a machine with a CUDA GPU the GPU itself
is compared."""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest

from smm_daq.analysis.mmt import synth
from smm_daq.analysis.mmt.models.multipole import MODELS, MultipoleModel, Sensor, point_grains
from smm_daq.analysis.mmt.solver import device as devices
from smm_daq.analysis.mmt.solver.arrays import NumpyArrays
from smm_daq.analysis.mmt.solver.device_qr import DeviceSolver
from smm_daq.analysis.mmt.solver.inversion import SingularWarning, forward
from smm_daq.analysis.mmt.solver.joint import Scan, invert_scans
from smm_daq.cli.main import main
from smm_daq.storage.mapdata import MapData

UM = 1e-6
NT = 1e-9
GPU = devices.gpu_problem() is None
M_TOL = 1e-9  # |Δ coefficient| relative to its SD
COV_TOL = 1e-6  # covariance, relative to the grain's largest entry
FLOOR_FACTOR = 3.0  # or this times the CPU's own spread between two blockings of the sensors

AXIS = np.arange(0.0, 30.1, 1.5) * UM  # 21 × 21 sensors
POS = np.array([[6, 7, -3], [20, 5, -5], [9, 22, -7], [24, 23, -4], [15, 14, -9],
                [4, 15, -6]], float) * UM
VOL = np.array([3.0, 5.0, 8.0, 4.0, 9.0, 2.5]) * UM**3
GRAINS = point_grains(POS, VOL)


def _map(height, model, sensor, seed, name):
    """A noisy scan of GRAINS with random coefficients (dipole ~1e4 A/m, higher orders of the
    size a grain of a few µm gives)."""
    rng = np.random.default_rng(seed)
    k = MODELS[model]
    coef = rng.normal(0, 1e4, (GRAINS.n_grains, k))
    coef[:, 3:] *= (VOL[:, None] * 2 * UM) * np.where(np.arange(3, k) < 8, 1, 2 * UM)
    X, Y = np.meshgrid(AXIS, AXIS)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, height)]
    clean = forward(MultipoleModel.build(GRAINS, Sensor.from_size(sensor), model), sensors, coef)
    bz = (clean + 5 * NT * rng.standard_normal(clean.size)).reshape(X.shape)
    return MapData(bz=bz, x=AXIS, y=AXIS, height=height, sensor_size=sensor[:2], name=name)


def _cpu(scans, grains, **kwargs):
    """The CPU result and its rounding floor: max |Δ|/SD against another sensor blocking."""
    ref = invert_scans(scans, grains, device="cpu", **kwargs)
    other = invert_scans(scans, grains, device="cpu", block=100, **kwargs)
    sd = np.sqrt(np.einsum("gii->gi", ref.coefficient_covariance))
    return ref, float(np.max(np.abs(other.coefficients - ref.coefficients) / sd))


def _assert_agree(res, ref, floor=0.0):
    sd = np.sqrt(np.einsum("gii->gi", ref.coefficient_covariance))
    assert np.max(np.abs(res.coefficients - ref.coefficients) / sd) <= max(
        M_TOL, FLOOR_FACTOR * floor)
    cov, rcov = res.coefficient_covariance, ref.coefficient_covariance
    assert np.max(np.abs(cov - rcov) / np.abs(rcov).max(axis=(1, 2), keepdims=True)) <= COV_TOL
    for (fit, resid), (rfit, rresid) in zip(res.fits, ref.fits, strict=True):
        scale = np.nanmax(np.abs(rfit.bz))
        assert np.nanmax(np.abs(fit.bz - rfit.bz)) <= 1e-12 * scale
        np.testing.assert_array_equal(np.isnan(resid.bz), np.isnan(rresid.bz))
    assert res.sigmas == pytest.approx(ref.sigmas, rel=1e-12)
    assert res.condition_number == pytest.approx(ref.condition_number, rel=1e-6)


# One scan of each model and sensor kind, and joint scans (several heights and sensors, a σ
# known and one from the residual, a mask) whose rows fill blocks across the scans' boundary.
LOW = Scan(_map(2 * UM, "dipole", (0.0, 0.0), 1, "low"), 2 * UM, sigma=5 * NT)
CASES = {
    "dipole point": ([LOW], "dipole"),
    "quadrupole area, σ from residual": (
        [Scan(_map(2 * UM, "quadrupole", (2 * UM, 1.5 * UM), 2, "a"), 2 * UM,
              (2 * UM, 1.5 * UM))], "quadrupole"),
    "octupole volume": (
        [Scan(_map(2.5 * UM, "octupole", (2 * UM, 2 * UM, 1 * UM), 3, "v"), 2.5 * UM,
              (2 * UM, 2 * UM, 1 * UM), sigma=5 * NT)], "octupole"),
    "joint dipole: point + area, masked, one σ unknown": (
        [LOW, Scan(_map(5 * UM, "dipole", (2 * UM, 2 * UM), 4, "high"), 5 * UM,
                   (2 * UM, 2 * UM), mask=np.eye(AXIS.size, dtype=bool))], "dipole"),
}


@pytest.mark.parametrize("rows", [None, 150])  # automatic (4 per column); blocks across scans
@pytest.mark.parametrize("case", CASES)
def test_device_solver_on_numpy_matches_cpu_path(case, rows, as_gpu):
    scans, model = CASES[case]
    ref, floor = _cpu(scans, GRAINS, model=model)
    solver = DeviceSolver(NumpyArrays(), rows=rows)
    as_gpu(solver)
    res = invert_scans(scans, GRAINS, model=model, device="gpu")
    _assert_agree(res, ref, floor)
    assert "solve_device_s" in solver.timings  # solved by the device code, not the host's
    assert res.timings["green_and_qr_s"] > 0 and res.timings["forward_s"] > 0


def test_device_solver_joint_cuboid_grains_and_damping(as_gpu):
    rng = np.random.default_rng(6)
    sample = synth.make_sample((30 * UM, 30 * UM), 12 * UM, 2e5, rng)
    scans = [Scan(synth.scan(sample, height=h, step=1.5 * UM, sensor_size=size, noise=5 * NT,
                             rng=rng, name=f"h{h / UM:g}"), h, size, sigma=5 * NT)
             for h, size in ((1 * UM, (0.0, 0.0)), (3 * UM, (2 * UM, 2 * UM)))]
    for damping in (0.0, 1e-6):  # damped: the host's solve from the device's triangle
        ref, floor = _cpu(scans, sample.grains, model="cuboid", damping=damping)
        as_gpu(DeviceSolver(NumpyArrays(), rows=400))
        res = invert_scans(scans, sample.grains, model="cuboid", damping=damping, device="gpu")
        _assert_agree(res, ref, floor)


def test_singular_joint_system_reports_the_same_unresolved_grains(as_gpu):
    twins = point_grains(np.r_[POS[:2], POS[:1]], np.r_[VOL[:2], VOL[:1]])  # 1 and 3 coincide
    scans = [Scan(_map(2 * UM, "dipole", (0.0, 0.0), 7, "s"), 2 * UM, sigma=5 * NT)]
    with pytest.warns(SingularWarning):
        ref = invert_scans(scans, twins, device="cpu")
    as_gpu(DeviceSolver(NumpyArrays()))
    with pytest.warns(SingularWarning):
        res = invert_scans(scans, twins, device="gpu")
    np.testing.assert_array_equal(np.isinf(res.sd), np.isinf(ref.sd))
    assert np.isinf(res.sd[[0, 2]]).all() and np.isfinite(res.sd[1]).all()
    np.testing.assert_allclose(res.magnetization[1], ref.magnetization[1],
                               atol=M_TOL * ref.sd[1].max())


def test_gpu_asked_for_without_one_is_refused_before_any_work(monkeypatch):
    monkeypatch.setattr(devices, "gpu_problem", lambda: "CuPy is not installed")
    monkeypatch.setattr(devices, "gpu_solver", lambda: pytest.fail("no solver expected"))
    with pytest.raises(Exception, match="device 'gpu' asked for, but CuPy is not installed"):
        invert_scans([LOW], GRAINS, device="gpu")


def test_cli_device_gpu_runs_the_device_solver(tmp_path, as_gpu):
    h5 = tmp_path / "s.h5"
    from smm_daq.storage.nexus import write_map_entry

    write_map_entry(h5, LOW.data, kind="synthetic")
    grains = tmp_path / "g.txt"
    grains.write_text("".join(f"{x:.9g} {y:.9g} {z:.9g} {v:.9g} {i + 1}\n"
                              for i, ((x, y, z), v) in enumerate(zip(POS, VOL, strict=True))))
    args = ["mmt", "invert", str(h5), "--entry", "low", "--grain-format", "points", "--grains",
            str(grains), "--model", "quadrupole", "--sigma-nT", "5"]
    assert main([*args, "--device", "cpu", "--out", str(tmp_path / "cpu.csv")]) == 0
    solver = DeviceSolver(NumpyArrays())
    as_gpu(solver)
    assert main([*args, "--device", "gpu", "--out", str(tmp_path / "gpu.csv"),
                 "--result-entry", "on_gpu"]) == 0
    assert "solve_device_s" in solver.timings
    cpu = np.genfromtxt(tmp_path / "cpu.csv", delimiter=",", names=True)
    gpu = np.genfromtxt(tmp_path / "gpu.csv", delimiter=",", names=True)
    assert cpu.dtype.names == gpu.dtype.names and "q22s_Am3" in cpu.dtype.names
    sd = cpu["sd_mx_A_per_m"]
    assert np.max(np.abs(gpu["mx_A_per_m"] - cpu["mx_A_per_m"]) / sd) <= 1e-6
    with h5py.File(h5) as f:
        assert f["on_gpu/results/device"][()].decode() == "gpu"
        assert f["low_mmt/results/device"][()].decode() == "cpu"


def test_multipole_cuda_kernels_in_the_simulator_match_the_cpu_kernels(in_cuda_simulator):
    in_cuda_simulator("mmt_cudasim_models_case.py")


# On a machine with a CUDA GPU (benchmarks/gpu_check.sh runs these): the GPU itself.

@pytest.mark.skipif(not GPU, reason="no usable CUDA GPU")
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("sensor", [(0.0, 0.0), (2 * UM, 1.5 * UM), (2 * UM, 1.5 * UM, 1 * UM)])
def test_gpu_multipole_block_matches_cpu(model, sensor):
    import cupy

    from smm_daq.analysis.mmt.models.multipole_gpu import DeviceMultipole

    X, Y = np.meshgrid(AXIS, AXIS)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, 2 * UM)]
    m = MultipoleModel.build(GRAINS, Sensor.from_size(sensor), model)
    ref = m.block(sensors, np.empty((sensors.shape[0], m.n_columns)))
    buf = cupy.full((sensors.shape[0] + 7, m.n_columns + 1), cupy.nan, order="F")
    green = DeviceMultipole.upload(m, cupy.asarray)
    green.block(cupy.asarray(sensors), buf[7:, :-1])  # a strided view, as the solver uses
    out = cupy.asnumpy(buf[7:, :-1])
    err = np.max(np.abs(out - ref), axis=0) / np.max(np.abs(ref), axis=0)
    coef = np.random.default_rng(0).normal(size=(GRAINS.n_grains, m.n_per_grain))
    field = cupy.empty(sensors.shape[0])
    green.field(cupy.asarray(sensors), cupy.asarray(coef), field)
    expect = ref @ coef.ravel()
    ferr = np.max(np.abs(cupy.asnumpy(field) - expect)) / np.max(np.abs(expect))
    print(f"\n{model}, sensor {sensor}: GPU block within {err.max():.3g} of each column's "
          f"largest, field within {ferr:.3g}")
    # corner sums cancel: their rounding, which the GPU's libdevice does differently, is
    # amplified by up to (distance / sensor)² (about 1e3 here)
    assert err.max() <= 1e-11 and ferr <= 1e-11


@pytest.mark.skipif(not GPU, reason="no usable CUDA GPU")
@pytest.mark.parametrize("case", CASES)
def test_gpu_inversion_matches_cpu(case):
    scans, model = CASES[case]
    ref, floor = _cpu(scans, GRAINS, model=model)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SingularWarning)  # solved on the device, no fallback
        res = invert_scans(scans, GRAINS, model=model, device="gpu")
    sd = np.sqrt(np.einsum("gii->gi", ref.coefficient_covariance))
    dm = np.max(np.abs(res.coefficients - ref.coefficients) / sd)
    dc = np.max(np.abs(res.coefficient_covariance - ref.coefficient_covariance)
                / np.abs(ref.coefficient_covariance).max(axis=(1, 2), keepdims=True))
    print(f"\n{case}: GPU against CPU: coefficients within {dm:.3g} SD (CPU against itself, "
          f"other blocks: {floor:.3g} SD), covariance within {dc:.3g}; CPU "
          f"{ref.timings['total_s']:.2f} s, GPU {res.timings['total_s']:.2f} s")
    _assert_agree(res, ref, floor)


@pytest.mark.skipif(not GPU, reason="no usable CUDA GPU")
def test_gpu_joint_cuboid_grains_match_cpu():
    rng = np.random.default_rng(6)
    sample = synth.make_sample((60 * UM, 60 * UM), 20 * UM, 1e5, rng)
    grains = sample.grains
    scans = [Scan(synth.scan(sample, height=h, step=1 * UM, sensor_size=size, noise=5 * NT,
                             rng=rng, name=f"h{h / UM:g}"), h, size, sigma=5 * NT)
             for h, size in ((1 * UM, (0.0, 0.0)), (3 * UM, (2 * UM, 2 * UM)))]
    ref, floor = _cpu(scans, grains, model="cuboid")
    res = invert_scans(scans, grains, model="cuboid", device="gpu")
    print(f"\njoint cuboid: {grains.n_grains} grains, 2 scans; CPU {ref.timings['total_s']:.2f}"
          f" s, GPU {res.timings['total_s']:.2f} s")
    _assert_agree(res, ref, floor)
