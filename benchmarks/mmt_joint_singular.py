"""Time a joint inversion of two scans whose σ are both estimated (several passes) where Q is
singular: point grains (fitted as dipoles, or quadrupoles), every tenth grain twinned at
another's position, so their columns are equal and the solves take the pseudo-inverse (an
SVD of the n × n factor).

Prints the best of `--repeat` times of the whole inversion (wall and CPU time: on a shared
machine the CPU time is the steadier), the last run's solve time and the σ found; with
`--save FILE.npz` writes the result's coefficients, covariance blocks and σ, which
`--compare FILE.npz` checks against (largest difference over the largest value printed).

    python benchmarks/mmt_joint_singular.py --grains 120 --repeat 3
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from smm_daq.analysis.mmt.models.multipole import MultipoleModel, Sensor, point_grains
from smm_daq.analysis.mmt.solver.inversion import forward
from smm_daq.analysis.mmt.solver.joint import Scan, invert_scans
from smm_daq.storage.mapdata import MapData

UM = 1e-6
NT = 1e-9


def scans_and_grains(n_grains: int, model: str, seed: int = 0) -> tuple[list[Scan], object]:
    rng = np.random.default_rng(seed)
    side = 100.0
    pos = np.c_[rng.uniform(0, side, (n_grains, 2)), rng.uniform(-20, -2, n_grains)] * UM
    pos[::10][1:] = pos[1::10][:len(pos[::10]) - 1]  # twins: equal columns, Q singular
    vol = rng.uniform(1, 20, n_grains) * UM**3
    grains = point_grains(pos, vol, np.arange(1, n_grains + 1))
    axis = np.arange(0.0, side + 0.1, 2.0) * UM
    X, Y = np.meshgrid(axis, axis)
    coef = rng.normal(0, 1, (n_grains, 8)) * np.r_[[3e3] * 3, [1e-9] * 5]
    coef = coef[:, :3] if model == "dipole" else coef
    scans = []
    for name, height, noise in (("low", 3 * UM, 20 * NT), ("high", 8 * UM, 5 * NT)):
        green = MultipoleModel.build(grains, Sensor.from_size((0.0, 0.0)), model)
        bz = forward(green, np.c_[X.ravel(), Y.ravel(), np.full(X.size, height)],
                     coef).reshape(X.shape)
        bz += noise * rng.standard_normal(bz.shape)
        scans.append(Scan(MapData(bz=bz, x=axis, y=axis, height=height, name=name), height))
    return scans, grains


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grains", type=int, default=120)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--model", choices=("dipole", "quadrupole"), default="dipole",
                   help="the model fitted (and the grains' true moments)")
    p.add_argument("--save")
    p.add_argument("--compare")
    a = p.parse_args()
    scans, grains = scans_and_grains(a.grains, a.model)
    best, best_cpu, result = np.inf, np.inf, None
    for _ in range(a.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = invert_scans(scans, grains, model=a.model)
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    assert result is not None
    print(f"{a.grains} grains ({a.model}), {result.n_sensors} sensors: best {best:.3f} s "
          f"({best_cpu:.3f} s of CPU time) "
          f"(solve {result.timings['solve_s']:.3f} s); sigma "
          + ", ".join(f"{s / NT:.6g} nT" for s in result.sigmas))
    arrays = {"x": result.coefficients, "cov": result.coefficient_covariance,
              "sigmas": np.array(result.sigmas)}
    if a.save:
        np.savez(a.save, **arrays)
    if a.compare:
        ref = np.load(a.compare)
        for key, value in arrays.items():
            finite = np.isfinite(ref[key])
            assert np.array_equal(finite, np.isfinite(value)), key
            scale = np.max(np.abs(ref[key][finite]))
            diff = np.max(np.abs(value[finite] - ref[key][finite])) / scale
            print(f"{key}: largest difference {diff:.3g} of its largest value")


if __name__ == "__main__":
    main()
