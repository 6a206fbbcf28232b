"""The MMT inversion's device path (`solver.device_qr` on an array backend) against the CPU
path: the same logic that runs on CuPy runs here on NumPy, the CUDA kernels run in numba's
simulator, and on a machine with a CUDA GPU the GPU itself is compared."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from smm_daq.analysis.grains import from_arrays
from smm_daq.analysis.mmt import synth
from smm_daq.analysis.mmt.models.cuboid import GreenModel
from smm_daq.analysis.mmt.solver import device as devices
from smm_daq.analysis.mmt.solver.arrays import NumpyArrays
from smm_daq.analysis.mmt.solver.device_qr import MIN_ROWS_PER_COLUMN, DeviceSolver
from smm_daq.analysis.mmt.solver.inversion import SingularWarning, invert_map
from smm_daq.errors import InputError

UM = 1e-6
HERE = Path(__file__).parent
GPU = devices.gpu_problem() is None
M_TOL = 1e-9  # |ΔM| relative to its SD
COV_TOL = 1e-6  # covariance, relative
# Grains of |M|/SD ~ 1e6 (shallow, 5 nT noise) move by ~5e-10 SD between two CPU runs that
# block the sensors differently: rounding, amplified by cond(Q). The device may differ from
# the CPU by M_TOL or by FLOOR_FACTOR times that CPU-to-CPU spread, whichever is larger.
FLOOR_FACTOR = 3.0


def _case(side_um: float, thickness_um: float, seed: int, sensor_size=(0.0, 0.0)):
    rng = np.random.default_rng(seed)
    sample = synth.make_sample((side_um * UM, side_um * UM), thickness_um * UM, 1e5, rng)
    data = synth.scan(sample, height=1 * UM, step=1 * UM, sensor_size=sensor_size,
                      noise=5e-9, rng=rng)
    return sample, data


@pytest.fixture(scope="module")
def small():
    return _case(60, 30, 5)


KNOWN_NOISE = {"height": 1 * UM, "sensor_size": (0.0, 0.0), "sigma": 5e-9}


@pytest.fixture(scope="module")
def small_cpu(small):
    """The CPU path's result for `small` with the noise known, and its rounding floor."""
    sample, data = small
    return _cpu(data, sample.grains, **KNOWN_NOISE)


def _cpu(data, grains, **kwargs):
    """The CPU result and its rounding floor: max |ΔM|/SD against two other sensor
    blockings (one pair of runs alone gives a floor that varies by a factor of about 2)."""
    ref = invert_map(data, grains, device="cpu", **kwargs)
    spread = 0.0
    for block in (1000, 2500):
        other = invert_map(data, grains, device="cpu", block=block, **kwargs)
        spread = max(spread, float(np.max(np.abs(other.magnetization - ref.magnetization)
                                          / ref.sd)))
    return ref, spread


def _assert_agree(res, ref, floor=0.0):
    dm = np.abs(res.magnetization - ref.magnetization) / ref.sd
    assert dm.max() <= max(M_TOL, FLOOR_FACTOR * floor)
    dc = np.abs(res.covariance - ref.covariance) / np.abs(ref.covariance).max(axis=(1, 2),
                                                                              keepdims=True)
    assert dc.max() <= COV_TOL
    fitted = np.abs(res.fitted.bz - ref.fitted.bz) / np.nanmax(np.abs(ref.fitted.bz))
    assert np.nanmax(fitted) <= 1e-12
    assert res.condition_number == pytest.approx(ref.condition_number, rel=1e-6)
    assert res.sigma == pytest.approx(ref.sigma, rel=1e-12)


@pytest.mark.parametrize("rows", [None, 700, 5000])  # automatic (4 per column); 6; 1 block
def test_device_solver_on_numpy_matches_cpu_path(small, small_cpu, as_gpu, rows):
    sample, data = small
    ref, floor = small_cpu
    solver = DeviceSolver(NumpyArrays(), rows=rows)
    as_gpu(solver)
    res = invert_map(data, sample.grains, device="gpu", **KNOWN_NOISE)
    _assert_agree(res, ref, floor)
    automatic = MIN_ROWS_PER_COLUMN * (3 * sample.grains.n_grains + 1)
    assert solver.timings["block_rows"] == min(rows or automatic, data.bz.size)
    assert "solve_device_s" in solver.timings  # solved by the device code, not the host's


@pytest.mark.filterwarnings("ignore::smm_daq.analysis.mmt.solver.inversion.DampedSigmaWarning")
def test_device_solver_damped_and_noise_from_residual(small, as_gpu):
    """The device path agrees with the CPU's on a damped fit whose σ comes from the residual
    (warned of as biased, by both alike: `test_mmt_damped_sigma`)."""
    sample, data = small
    kwargs = {"height": 1 * UM, "sensor_size": (0.0, 0.0), "damping": 1e-6}
    ref, floor = _cpu(data, sample.grains, **kwargs)
    as_gpu(DeviceSolver(NumpyArrays(), rows=1000))
    res = invert_map(data, sample.grains, device="gpu", **kwargs)
    assert res.sigma_from_residual
    _assert_agree(res, ref, floor)


def test_device_solver_singular_reports_the_same_unresolved_grains(as_gpu):
    shape = synth.random_grain(np.random.default_rng(2), 3 * UM)
    # grains 1 and 2 are the same body: only their sum is determined
    at = np.array([[10, 10, -4], [10, 10, -4], [20, 15, -6]]) * UM
    cub = np.concatenate([shape + np.r_[a, 0, 0, 0] for a in at])
    labels = np.repeat([1, 2, 3], shape.shape[0])
    sample = synth.SyntheticSample(from_arrays(cub, labels), np.array(
        [[1e4, 0, 0], [0, 1e4, 0], [0, 0, 2e4]]), (30 * UM, 30 * UM), 10 * UM)
    data = synth.scan(sample, height=1 * UM, step=1 * UM, sensor_size=(0, 0), noise=5e-9,
                      rng=np.random.default_rng(1))
    with pytest.warns(SingularWarning):
        ref = invert_map(data, sample.grains, device="cpu", **KNOWN_NOISE)
    as_gpu(DeviceSolver(NumpyArrays()))
    with pytest.warns(SingularWarning):
        res = invert_map(data, sample.grains, device="gpu", **KNOWN_NOISE)
    np.testing.assert_array_equal(np.isinf(res.sd), np.isinf(ref.sd))
    assert np.isinf(res.sd[:2]).all() and np.isfinite(res.sd[2]).all()
    np.testing.assert_allclose(res.magnetization[2], ref.magnetization[2],
                               atol=M_TOL * ref.sd[2].max())


def test_device_names(monkeypatch):
    assert devices.resolve("cpu") == "cpu"
    with pytest.raises(InputError, match=r"device 'tpu': expected one of auto, cpu, gpu"):
        devices.resolve("tpu")
    monkeypatch.setattr(devices, "gpu_problem", lambda: "CuPy finds no CUDA device")
    assert devices.resolve("auto") == "cpu"
    with pytest.raises(InputError, match="device 'gpu' asked for, but CuPy finds no CUDA"):
        devices.resolve("gpu")
    monkeypatch.setattr(devices, "gpu_problem", lambda: None)
    assert devices.resolve("auto") == "gpu"


def test_gpu_asked_for_without_one_is_refused_before_any_work(small, monkeypatch):
    sample, data = small
    monkeypatch.setattr(devices, "gpu_problem", lambda: "CuPy is not installed")
    monkeypatch.setattr(devices, "gpu_solver", lambda: pytest.fail("no solver expected"))
    with pytest.raises(InputError, match="CuPy is not installed"):
        invert_map(data, sample.grains, height=1 * UM, sensor_size=(0, 0), device="gpu")


def test_cuda_kernels_in_the_simulator_match_the_cpu_kernel(in_cuda_simulator):
    in_cuda_simulator("mmt_cudasim_case.py")


def test_gpu_modules_import_without_dask_pyvisa_or_qt():
    """The GPU machine's Python has none of them: what the GPU check imports must not."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('dask', 'distributed', 'pyvisa', 'PyQt6',"
        " 'pyqtgraph'):\n"
        "            raise ImportError(f'{name} is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import smm_daq.analysis.mmt.solver.inversion, smm_daq.analysis.mmt.solver.device_qr\n"
        "import smm_daq.analysis.mmt.models.cuboid_gpu, smm_daq.analysis.mmt.synth\n"
        "import smm_daq.analysis.mmt.models.multipole_gpu, smm_daq.analysis.mmt.solver.joint\n"
        "sys.path.insert(0, 'benchmarks')\n"
        "import mmt_scale\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=HERE.parent, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr


# On a machine with a CUDA GPU (benchmarks/gpu_check.sh runs these): the GPU itself.

@pytest.mark.skipif(not GPU, reason="no usable CUDA GPU")
# Point sensors: closed forms accurate to a few ulps. Area sensors: the 32-term closed form
# is used while its rounding (which the GPU's libdevice rounds differently) stays below the
# forward model's tolerance of the column's scale (CUBOID_TOLERANCE, 1e-5), so the two agree
# less closely: 1.4e-8 was measured on an H200; 1e-6 still holds them 10 times inside it.
@pytest.mark.parametrize(("sensor_size", "tol"), [((0.0, 0.0), 1e-12),
                                                  ((2 * UM, 1.5 * UM), 1e-6)])
def test_gpu_green_block_matches_cpu(small, sensor_size, tol):
    import cupy

    from smm_daq.analysis.mmt.models.cuboid_gpu import DeviceGreen

    sample, data = small
    sensors = np.c_[np.meshgrid(data.x, data.y)[0].ravel(), np.meshgrid(data.x, data.y)[1].ravel(),
                    np.full(data.bz.size, 1 * UM)]
    model = GreenModel.build(sample.grains, sensor_size, sensors[0, :2], sensors[-1, :2], 1 * UM)
    ref = model.block(sensors)
    buf = cupy.full((sensors.shape[0] + 7, model.n_columns + 1), cupy.nan, order="F")
    green = DeviceGreen.upload(model, cupy.asarray)
    green.block(cupy.asarray(sensors), buf[7:, :-1])  # a strided view, as the solver uses
    out = cupy.asnumpy(buf[7:, :-1])
    err = np.max(np.abs(out - ref), axis=0) / np.max(np.abs(ref), axis=0)
    print(f"\nsensor {sensor_size}: GPU block within {err.max():.3g} of each column's largest")
    assert err.max() <= tol


@pytest.mark.skipif(not GPU, reason="no usable CUDA GPU")
@pytest.mark.parametrize("case", ["small", "medium"])
def test_gpu_inversion_matches_cpu(small, case):
    sample, data = small if case == "small" else _case(200, 50, 7)
    ref, floor = _cpu(data, sample.grains, **KNOWN_NOISE)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SingularWarning)  # solved on the device, no fallback
        res = invert_map(data, sample.grains, device="gpu", **KNOWN_NOISE)
    dm = np.max(np.abs(res.magnetization - ref.magnetization) / ref.sd)
    dc = np.max(np.abs(res.covariance - ref.covariance) / np.abs(ref.covariance))
    print(f"\n{case}: {sample.grains.n_grains} grains, {data.bz.size} sensors; GPU against CPU:"
          f" M within {dm:.3g} SD (CPU against itself, other blocks: {floor:.3g} SD), "
          f"covariance within {dc:.3g}; CPU {ref.timings['total_s']:.2f} s, "
          f"GPU {res.timings['total_s']:.2f} s")
    _assert_agree(res, ref, floor)
