"""Throughput of the point-source Green's matrix blocks (`models.multipole`): (sensor, grain)
pairs per second for each sensor kind (point, area, volume) and model (dipole, quadrupole,
octupole), one block of 6144 sensors in the column-major layout the QR uses.

    python benchmarks/mmt_multipole_green.py [--grains 500] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from smm_daq.analysis.mmt.models.multipole import MultipoleModel, Sensor, point_grains
from smm_daq.analysis.mmt.solver.inversion import DEFAULT_BLOCK

UM = 1e-6
SENSORS = {"point": (0.0, 0.0), "area": (1 * UM, 1 * UM), "volume": (1 * UM, 1 * UM, 0.5 * UM)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grains", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    g = args.grains
    grains = point_grains(np.c_[rng.uniform(0, 100 * UM, (g, 2)), -rng.uniform(2, 30, g) * UM],
                          np.full(g, 1e-18))
    X, Y = np.meshgrid(np.arange(0, 100 * UM, 1.2 * UM), np.arange(0, 80 * UM, 1.2 * UM))
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, 2 * UM)]
    sensors = np.resize(sensors, (DEFAULT_BLOCK, 3))
    print(f"{DEFAULT_BLOCK} sensors × {g} grains, {os.cpu_count()} CPUs")
    for kind, size in SENSORS.items():
        for model in ("dipole", "quadrupole", "octupole"):
            m = MultipoleModel.build(grains, Sensor.from_size(size), model)
            out = np.empty((DEFAULT_BLOCK, m.n_columns), order="F")
            m.block(sensors, out)  # compile or load from numba's cache
            best = min(_timed(m, sensors, out) for _ in range(args.repeat))
            print(f"{kind:6s} {model:10s} {DEFAULT_BLOCK * g / best / 1e6:8.1f} M pairs/s"
                  f"  ({best:.3f} s a block)")


def _timed(m: MultipoleModel, sensors: np.ndarray, out: np.ndarray) -> float:
    t = time.perf_counter()
    m.block(sensors, out)
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
