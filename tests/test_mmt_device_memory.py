"""An MMT solve that does not fit the GPU's free memory: refused before anything is computed
when the GPU was asked for, solved on the CPU with a warning under "auto"; and the need it
states is a floor that every such solve holds (the NumPy stand-in's allocations, traced)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from smm_daq.analysis.mmt import synth_points
from smm_daq.analysis.mmt.models.multipole import PointGrains
from smm_daq.analysis.mmt.solver import device as devices
from smm_daq.analysis.mmt.solver.arrays import NumpyArrays
from smm_daq.analysis.mmt.solver.device_qr import DeviceSolver, device_bytes
from smm_daq.analysis.mmt.solver.joint import Scan, StackedModel, _model, invert_scans
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
    sample, data = case
    n, sensors = 3 * sample.grains.n_grains, data.bz.size
    need = device_bytes(n, sensors)
    _with_gpu(monkeypatch, need - 1)
    folded: list[int] = []
    with pytest.raises(InputError) as err:
        _invert(case, "gpu", on_block=lambda done, total: folded.append(done))
    assert str(err.value) == (
        f"device: {sample.grains.n_grains} grains × 3 (dipole) = {n} unknowns need at least "
        f"{need / 2**30:.1f} GiB of GPU memory, and the GPU has {(need - 1) / 2**30:.1f} GiB "
        "free; expected device 'cpu' or 'auto', or fewer unknowns")
    assert folded == []  # nothing computed


def test_auto_solves_on_the_cpu_what_does_not_fit_the_gpu_and_says_so(case, monkeypatch):
    sample, data = case
    need = device_bytes(3 * sample.grains.n_grains, data.bz.size)
    _with_gpu(monkeypatch, need - 1)
    with pytest.warns(devices.GPUMemoryWarning, match="GiB free: solving on the CPU"):
        result = _invert(case, "auto")
    assert result.device == "cpu"
    _with_gpu(monkeypatch, need)
    assert _invert(case, "auto").device == "gpu"  # just fits: the GPU


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
    assert 1 <= (peak + 32 * X.size) / device_bytes(n, X.size) < 2  # the sensors: not copied
