"""Run by test_mmt_device in a fresh interpreter with NUMBA_ENABLE_CUDASIM=1 (numba reads it
at import): the CUDA Green's kernels, executed by numba's simulator, against the CPU kernel,
and a whole inversion with them against the CPU path. Exits non-zero on a mismatch."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np

from smm_daq.analysis.mmt import synth
from smm_daq.analysis.mmt.models.cuboid import GRAIN_ORDERS, GreenModel
from smm_daq.analysis.mmt.models.cuboid_gpu import SIMULATED, DeviceGreen
from smm_daq.analysis.mmt.solver import device as devices
from smm_daq.analysis.mmt.solver.arrays import NumpyArrays
from smm_daq.analysis.mmt.solver.device_qr import DeviceSolver
from smm_daq.analysis.mmt.solver.inversion import invert_map

UM = 1e-6


def _tiers(model: GreenModel, sensors: np.ndarray) -> dict[str, int]:
    """How many (sensor, grain) pairs take each tier: the sums over cuboids, or the grain's
    far field to each of GRAIN_ORDERS."""
    d2 = np.sum((sensors[:, None, :] - model.centroid[None]) ** 2, axis=-1)
    switches = np.c_[model.coarse2, model.fine2, model.far2]  # each order's, nearer each
    tiers = {"cuboid sums": int(np.sum(d2 < model.far2)),
             f"order {GRAIN_ORDERS[0]}": int(np.sum(d2 >= model.coarse2))}
    for j, top in enumerate(GRAIN_ORDERS[1:], start=1):
        tiers[f"order {top}"] = int(np.sum((d2 >= switches[:, j]) & (d2 < switches[:, j - 1])))
    return tiers


def _covering(models: list[GreenModel], sensors: np.ndarray, least: int) -> np.ndarray:
    """A subset of `sensors` in which each model has more than `least` (sensor, grain) pairs
    in each tier: sensors taken one at a time, each time one adding most to the tier furthest
    short. Numba's simulator runs one Python call per thread, so the kernels' check costs
    what its pairs do; the pairs beyond those add no tier the subset lacks."""
    per_sensor = [np.array([list(_tiers(m, s[None]).values()) for s in sensors])
                  for m in models]
    counts = np.concatenate(per_sensor, axis=1)  # (sensors, tiers of every model)
    held = np.zeros(counts.shape[1], dtype=int)
    chosen: list[int] = []
    while np.any(held <= least):
        short = int(np.argmin(held))
        best = int(np.argmax(np.where(np.isin(np.arange(len(sensors)), chosen), -1,
                                      counts[:, short])))
        chosen.append(best)
        held += counts[best]
    return sensors[np.sort(chosen)]


def main() -> int:
    assert SIMULATED, "run with NUMBA_ENABLE_CUDASIM=1"
    rng = np.random.default_rng(3)
    sample = synth.make_sample((80 * UM, 80 * UM), 30 * UM, 1e5, rng)
    x = np.arange(0.0, 80.1 * UM, 4 * UM)
    X, Y = np.meshgrid(x, x)
    height = 1 * UM
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, height)]
    lo, hi = np.zeros(2), np.array([x[-1], x[-1]])
    sizes = ((0.0, 0.0), (2 * UM, 1.5 * UM))
    models = [GreenModel.build(sample.grains, size, lo, hi, height) for size in sizes]
    sensors = _covering(models, sensors, 10)
    for size, model in zip(sizes, models, strict=True):
        tiers = _tiers(model, sensors)
        assert min(tiers.values()) > 10, f"the case must exercise every tier: {tiers}"
        # the GPU sums a point sensor's closed form cuboid by cuboid, as the CPU's per-cuboid
        # form does; the CPU's default (logarithms per grain, `grain_products`) is that to
        # its rounding
        ref = dataclasses.replace(model, per_grain_logs=False).block(sensors)
        grain_err = (np.max(np.abs(model.block(sensors) - ref), axis=0)
                     / np.max(np.abs(ref), axis=0))
        assert np.all(grain_err <= 1e-12), f"sensor {size}: per-grain form {grain_err.max():.3g}"
        out = np.full((sensors.shape[0], model.n_columns), np.nan, order="F")
        green = DeviceGreen.upload(model, np.asarray)
        green.block(sensors, out)
        err = np.max(np.abs(out - ref), axis=0) / np.max(np.abs(ref), axis=0)
        assert np.all(err <= 1e-14), f"sensor {size}: block differs by {err.max():.3g}"
        field = np.empty(sensors.shape[0])
        green.field(sensors, sample.magnetization, field)
        expect = ref @ sample.magnetization.ravel()
        ferr = np.max(np.abs(field - expect)) / np.max(np.abs(expect))
        assert ferr <= 1e-13, f"sensor {size}: field differs by {ferr:.3g}"
        print(f"sensor {size}: tiers {tiers}; block {err.max():.2g}, field {ferr:.2g}")

    # 81 sensors (a 10 µm step) for 58 unknowns: one full block of 60 rows and a part-filled
    # one, each a simulated launch of the kernels; more sensors only add launches of the same
    # code
    data = synth.scan(sample, height=height, step=10 * UM, sensor_size=(0, 0), noise=5e-9,
                      rng=rng)
    kwargs = {"height": height, "sensor_size": (0.0, 0.0), "sigma": 5e-9}
    cpu = invert_map(data, sample.grains, device="cpu", **kwargs)
    solver = DeviceSolver(NumpyArrays(kernels="cuda"), rows=60)
    devices.gpu_problem = lambda: None  # the simulator stands in for the GPU
    devices.gpu_solver = lambda: solver
    sim = invert_map(data, sample.grains, device="gpu", **kwargs)
    assert 60 < data.bz.size < 120, f"{data.bz.size} sensors: expected one full block and a part"
    dm = np.max(np.abs(sim.magnetization - cpu.magnetization) / cpu.sd)
    dc = np.max(np.abs(sim.covariance - cpu.covariance) / np.abs(cpu.covariance))
    assert dm <= 1e-9 and dc <= 1e-6, f"inversion differs: M {dm:.3g} SD, covariance {dc:.3g}"
    print(f"inversion on the simulated kernels: M within {dm:.2g} SD, covariance {dc:.2g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
