"""An MMT solve that does not fit the GPU's free memory: refused before anything is computed
when the GPU was asked for, solved on the CPU with a warning under "auto"; and the need it
states is a floor that every such solve holds (the NumPy stand-in's allocations, traced)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from smm_daq.analysis.grains import from_arrays
from smm_daq.analysis.mmt import synth_points
from smm_daq.analysis.mmt.models.cuboid import GreenModel
from smm_daq.analysis.mmt.models.multipole import MultipoleModel, PointGrains, Sensor
from smm_daq.analysis.mmt.models.sizes import cuboid_model_bytes, multipole_model_bytes
from smm_daq.analysis.mmt.solver import device as devices
from smm_daq.analysis.mmt.solver.arrays import NumpyArrays, _device_green
from smm_daq.analysis.mmt.solver.device_qr import DeviceSolver, device_bytes
from smm_daq.analysis.mmt.solver.inversion import invert_map
from smm_daq.analysis.mmt.solver.joint import Scan, StackedModel, _model, as_points, invert_scans
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData

UM = 1e-6
NOISE = 5e-9


class SmallGPU(NumpyArrays):
    """The NumPy stand-in for CuPy, with a GPU's free memory."""

    def __init__(self, free: int) -> None:
        super().__init__()
        self.free = free

    def free_bytes(self) -> int:
        return self.free


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(4)
    sample = synth_points.make_point_sample((40 * UM, 40 * UM), 10 * UM, 1e6, rng, "dipole")
    data = synth_points.scan_points(sample, height=2 * UM, step=1 * UM, sensor_size=(0, 0),
                                    noise=NOISE, rng=rng)
    return sample, data


def _need(case) -> int:
    """The dipole solve's stated need: Q/R, the grains on the device, the sensors (x, y, z and
    the scan's index) and the data."""
    sample, data = case
    n = 3 * sample.grains.n_grains
    return device_bytes(n, data.bz.size, multipole_model_bytes(sample.grains.n_grains),
                        sensor_columns=4)


def _with_gpu(monkeypatch, free: int) -> DeviceSolver:
    solver = DeviceSolver(SmallGPU(free=free))
    monkeypatch.setattr(devices, "gpu_problem", lambda: None)
    monkeypatch.setattr(devices, "gpu_solver", lambda: solver)
    return solver


def _invert(case, device: str, on_block=None):
    sample, data = case
    return invert_scans([Scan(data, 2 * UM, (0, 0), sigma=NOISE)], sample.grains,
                        model="dipole", device=device, on_block=on_block)


def test_a_solve_that_does_not_fit_the_gpu_asked_for_is_refused_before_it_starts(
        case, monkeypatch):
    sample, _ = case
    n, need = 3 * sample.grains.n_grains, _need(case)
    _with_gpu(monkeypatch, need - 1)
    folded: list[int] = []
    with pytest.raises(InputError) as err:
        _invert(case, "gpu", on_block=lambda done, total: folded.append(done))
    assert str(err.value) == (
        f"device: {sample.grains.n_grains} grains × 3 (dipole) = {n} unknowns need at least "
        f"{need / 2**30:.1f} GiB of GPU memory, and the GPU has {(need - 1) / 2**30:.1f} GiB "
        "free; expected device 'cpu' or 'auto', or fewer unknowns")
    assert folded == []  # nothing computed


def test_a_cuboid_solve_counts_its_grains_arrays_before_it_starts(monkeypatch):
    """invert_map's need: Q/R, the sensors and the cuboid model's arrays on the device."""
    grains = _cuboid_grains(20, 20, 4)
    side = np.arange(21) * UM
    data = MapData(bz=np.zeros((21, 21)), x=side, y=side)
    need = device_bytes(60, data.bz.size, cuboid_model_bytes(20, 20, area=False, exact=False))
    _with_gpu(monkeypatch, need - 1)
    with pytest.raises(InputError, match=rf"20 grains × 3 = 60 unknowns need at least "
                                         rf"{need / 2**30:.1f} GiB of GPU memory"):
        invert_map(data, grains, height=2 * UM, sensor_size=(0, 0), device="gpu")


def test_auto_solves_on_the_cpu_what_does_not_fit_the_gpu_and_says_so(case, monkeypatch):
    need = _need(case)
    _with_gpu(monkeypatch, need - 1)
    with pytest.warns(devices.GPUMemoryWarning, match="GiB free: solving on the CPU"):
        result = _invert(case, "auto")
    assert result.device == "cpu"
    _with_gpu(monkeypatch, need)
    assert _invert(case, "auto").device == "gpu"  # just fits: the GPU


class CopiesToTheDevice(NumpyArrays):
    """The stand-in with a GPU's transfers: what goes to the device is a copy, and a model's
    arrays are uploaded as for the CUDA kernels and held while its blocks are computed, so
    that traced allocations are what the device would hold. The blocks' values come from the
    dipole model of the grains' centroids (the cuboid kernels' first compilation takes
    minutes; the memory is the same)."""

    def to_device(self, a: np.ndarray) -> np.ndarray:
        return np.array(a)

    def green(self, model):
        uploaded = _device_green(model, self.to_device)
        dipoles = MultipoleModel.build(as_points(model.grains), Sensor.from_size((0, 0)),
                                       "dipole")
        host = super().green(dipoles)
        host.uploaded = uploaded
        return host


def _cuboid_grains(count: int, side_um: float, seed: int):
    """`count` single-cuboid grains 1 µm on a side, 2 to 8 µm deep, under a square."""
    rng = np.random.default_rng(seed)
    centres = np.c_[rng.uniform(0, side_um, (count, 2)), -rng.uniform(2, 8, count)]
    return from_arrays(np.c_[centres, np.ones((count, 3))] * UM, np.arange(1, count + 1))


@pytest.mark.parametrize(("sensor_um", "exact"), [(0, False), (1, False), (1, True)])
def test_a_cuboid_models_arrays_are_what_the_device_is_sent(sensor_um, exact):
    """The counts' bytes, known before the model is built, against the arrays uploaded."""
    grains = _cuboid_grains(7, 20, 1)
    merged = from_arrays(np.r_[grains.cuboids, grains.cuboids[:2] + np.array([0, 0, -UM, 0, 0, 0])],
                         np.r_[grains.labels, grains.labels[:2]])  # two grains of 2 cuboids
    model = GreenModel.build(merged, (sensor_um * UM, sensor_um * UM), np.zeros(2),
                             np.full(2, 20 * UM), 2 * UM, exact=exact)
    sent = sum(a.nbytes for a in _device_green(model, np.array).arrays)
    assert sent == cuboid_model_bytes(7, 9, area=sensor_um > 0, exact=exact)


def test_a_multipole_models_arrays_are_what_the_device_is_sent(case):
    sample, data = case
    scan = Scan(data, 2 * UM, (0, 0), sigma=NOISE)
    model = _model(sample.grains, scan, "octupole", np.zeros((1, 3)), False)
    assert _device_green(model, np.array).pos.nbytes == multipole_model_bytes(
        sample.grains.n_grains)


def test_the_stated_need_is_a_floor_of_what_a_solve_holds_with_its_model():
    """Cuboid grains: their model's arrays (the far-field orders of each grain) are as large
    as Q and R here; the need stated counts them, so that it stays a
    floor within a few % of what the solve holds (traced on the stand-in that copies to the
    device as a GPU does), the blocks at their fewest rows (one block of n + 1 sensors)."""
    grains = _cuboid_grains(85, 15, 2)
    n = 3 * grains.n_grains
    side = np.arange(16) * UM
    X, Y = np.meshgrid(side, side)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, 2 * UM)]
    assert sensors.shape[0] == n + 1
    model = GreenModel.build(grains, (0, 0), np.zeros(2), np.full(2, 15 * UM), 2 * UM)
    phi = np.random.default_rng(3).standard_normal(sensors.shape[0]) * NOISE
    solver = DeviceSolver(CopiesToTheDevice(), rows=n + 1)
    tracemalloc.start()
    try:
        tri, _ = solver.accumulate(model, sensors, phi)
        solver.solve_triangle(tri)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    need = device_bytes(n, sensors.shape[0], cuboid_model_bytes(85, 85, area=False, exact=False))
    assert 1 <= peak / need < 1.15, (peak, need)


def test_the_stated_need_is_a_floor_of_what_a_solve_holds(case):
    """With its blocks at their fewest rows (as many as columns), the device path (the NumPy
    stand-in) holds at least the need it states, so a GPU with less free memory could not
    have run it; and not twice as much, so the floor says what it takes. Many grains under
    few sensors: the n² terms dominate, as at the lab's size."""
    rng = np.random.default_rng(8)
    side = np.arange(25) * UM
    grains = PointGrains(np.c_[rng.uniform(0, 24 * UM, (150, 2)), rng.uniform(-8, -2, 150) * UM],
                         np.full(150, 1e-18), np.arange(1, 151))
    data = MapData(bz=rng.standard_normal((25, 25)) * NOISE, x=side, y=side)
    n = 3 * grains.n_grains
    solver = DeviceSolver(NumpyArrays(), rows=n + 1)
    scan = Scan(data, 2 * UM, (0, 0), sigma=NOISE)
    X, Y = np.meshgrid(side, side)
    pts = np.c_[X.ravel(), Y.ravel(), np.full(X.size, 2 * UM), np.zeros(X.size)]
    stacked = StackedModel([_model(grains, scan, "dipole", pts, False)], np.ones(1), n)
    tracemalloc.start()
    try:
        tri, _ = solver.accumulate(stacked, pts, data.bz.ravel())
        solver.solve_triangle(tri)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    need = device_bytes(n, X.size, multipole_model_bytes(grains.n_grains), sensor_columns=4)
    assert 1 <= (peak + 40 * X.size) / need < 2  # the sensors and grains: not copied
