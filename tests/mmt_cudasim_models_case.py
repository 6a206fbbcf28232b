"""Run by test_mmt_device_models in a fresh interpreter with NUMBA_ENABLE_CUDASIM=1 (numba
reads it at import): the multipole CUDA kernels (every sensor kind and number of
coefficients), executed by numba's simulator, against the CPU kernels, and inversions with
them (one scan of a volume sensor under the octupole model; two scans of point and area
sensors jointly under the dipole model) against the CPU path. Exits non-zero on a mismatch."""

from __future__ import annotations

import sys

import numpy as np

from smm_daq.analysis.mmt.models import multipole_gpu
from smm_daq.analysis.mmt.models.cuboid_gpu import SIMULATED
from smm_daq.analysis.mmt.models.multipole import MODELS, MultipoleModel, Sensor, point_grains
from smm_daq.analysis.mmt.models.multipole_gpu import DeviceMultipole
from smm_daq.analysis.mmt.solver import device as devices
from smm_daq.analysis.mmt.solver.arrays import NumpyArrays
from smm_daq.analysis.mmt.solver.device_qr import DeviceSolver
from smm_daq.analysis.mmt.solver.inversion import forward
from smm_daq.analysis.mmt.solver.joint import Scan, invert_scans
from smm_daq.storage.mapdata import MapData

UM = 1e-6
NT = 1e-9
SENSORS = {"point": (0.0, 0.0), "area": (2 * UM, 1.5 * UM), "volume": (2 * UM, 1.5 * UM, 1 * UM)}


def main() -> int:
    assert SIMULATED, "run with NUMBA_ENABLE_CUDASIM=1"
    # The simulator runs every thread of a launched block, one Python call each, padding
    # included: 32 threads a block, not the GPU's 256, cost what the pairs do. The kernels
    # index by cuda.grid, so the width changes only how many blocks a launch takes.
    multipole_gpu.THREADS = 32
    rng = np.random.default_rng(3)
    grains = point_grains(np.c_[rng.uniform(0, 20 * UM, (4, 2)), rng.uniform(-8, -1, 4) * UM],
                          rng.uniform(1, 5, 4) * UM**3)
    axis = np.arange(0.0, 20.1 * UM, 2 * UM)
    X, Y = np.meshgrid(axis, axis)
    height = 2 * UM
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, height)]
    # the kernels against the CPU's on a 5 × 5 lattice over the grains: 100 pairs and 25
    # sensors, each launch several blocks with the last part-filled (its threads past the
    # last pair or sensor return at once)
    ax = np.arange(0.0, 20.1 * UM, 5 * UM)
    XK, YK = np.meshgrid(ax, ax)
    lattice = np.c_[XK.ravel(), YK.ravel(), np.full(XK.size, height)]
    pairs = lattice.shape[0] * grains.n_grains
    assert pairs > multipole_gpu.THREADS and pairs % multipole_gpu.THREADS
    assert lattice.shape[0] % multipole_gpu.THREADS
    for kind, size in SENSORS.items():
        for model in MODELS:
            m = MultipoleModel.build(grains, Sensor.from_size(size), model)
            ref = m.block(lattice, np.empty((lattice.shape[0], m.n_columns)))
            green = DeviceMultipole.upload(m, np.asarray)
            out = np.full((lattice.shape[0], m.n_columns), np.nan, order="F")
            green.block(lattice, out)
            err = np.max(np.abs(out - ref), axis=0) / np.max(np.abs(ref), axis=0)
            assert np.all(err <= 1e-14), f"{kind} {model}: block differs by {err.max():.3g}"
            coef = rng.normal(size=(grains.n_grains, m.n_per_grain))
            field = np.empty(lattice.shape[0])
            green.field(lattice, coef, field)
            expect = ref @ coef.ravel()
            ferr = np.max(np.abs(field - expect)) / np.max(np.abs(expect))
            assert ferr <= 1e-13, f"{kind} {model}: field differs by {ferr:.3g}"
            print(f"{kind} sensor, {model}: block {err.max():.2g}, field {ferr:.2g}")

    def scan(model, size, name, h=height):
        k = MODELS[model]
        coef = rng.normal(0, 1e4, (grains.n_grains, k))  # A/m; then a grain of a few µm's
        coef[:, 3:] *= 3 * UM**3 * np.where(np.arange(3, k) < 8, 1, UM) * UM  # A m³, A m⁴
        pts = sensors.copy()
        pts[:, 2] = h
        bz = forward(MultipoleModel.build(grains, Sensor.from_size(size), model), pts, coef)
        bz = bz + 5 * NT * rng.standard_normal(bz.size)
        return Scan(MapData(bz=bz.reshape(X.shape), x=axis, y=axis, name=name), h, size,
                    sigma=5 * NT)

    cases = {"octupole, volume sensor": ([scan("octupole", SENSORS["volume"], "v")], "octupole"),
             "dipole, point + area jointly": ([scan("dipole", SENSORS["point"], "p"),
                                               scan("dipole", SENSORS["area"], "a", 4 * UM)],
                                              "dipole")}
    solver = DeviceSolver(NumpyArrays(kernels="cuda"), rows=70)  # blocks across the scans
    devices.gpu_problem = lambda: None  # the simulator stands in for the GPU
    devices.gpu_solver = lambda: solver
    for what, (scans, model) in cases.items():
        cpu = invert_scans(scans, grains, model=model, device="cpu")
        other = invert_scans(scans, grains, model=model, device="cpu", block=50)
        sim = invert_scans(scans, grains, model=model, device="gpu")
        sd = np.sqrt(np.einsum("gii->gi", cpu.coefficient_covariance))
        floor = np.max(np.abs(other.coefficients - cpu.coefficients) / sd)  # CPU's rounding
        dm = np.max(np.abs(sim.coefficients - cpu.coefficients) / sd)
        dc = np.max(np.abs(sim.coefficient_covariance - cpu.coefficient_covariance)
                    / np.abs(cpu.coefficient_covariance).max(axis=(1, 2), keepdims=True))
        df = max(np.nanmax(np.abs(s[0].bz - c[0].bz)) / np.nanmax(np.abs(c[0].bz))
                 for s, c in zip(sim.fits, cpu.fits, strict=True))
        assert dm <= max(1e-9, 3 * floor) and dc <= 1e-6 and df <= 1e-12, \
            f"{what}: coefficients {dm:.3g} SD (CPU's own spread {floor:.3g}), covariance " \
            f"{dc:.3g}, fitted map {df:.3g}"
        print(f"{what} on the simulated kernels: coefficients within {dm:.2g} SD (CPU's own "
              f"spread {floor:.2g}), covariance {dc:.2g}, fitted map {df:.2g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
