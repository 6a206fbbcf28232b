"""How long `read_result_entry` takes on a large saved MMT result: a synthetic result of
4,300 grains (the lab's 12,900 unknowns), as cuboids and as a quadrupole point model, written by
`write_result_entry` and read back several times:

    python benchmarks/mmt_result_read.py [--grains 4300] [--repeat 15]

Prints the minimum and median read time of each. The values are random but are a result's
(SPD covariance blocks, the table from them as the solvers make it), so every check of the
reader runs on them.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from smm_daq.analysis.grains import from_arrays
from smm_daq.analysis.mmt.result_file import write_result_entry
from smm_daq.analysis.mmt.result_read import read_result_entry
from smm_daq.analysis.mmt.solver.inversion import MMTResult
from smm_daq.analysis.mmt.solver.joint import MultipoleResult
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry

UM = 1e-6
HEIGHT = 100 * UM


def _blocks(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """n random k × k covariance matrices (A Aᵀ, A k × 2k)."""
    a = rng.normal(size=(n, k, 2 * k))
    return np.einsum("gik,gjk->gij", a, a)


def _result(n: int, model: str, rng: np.random.Generator) -> MMTResult:
    centres = np.column_stack([rng.uniform(0, 500, n), rng.uniform(0, 500, n),
                               rng.uniform(-75, -2, n)]) * UM
    cuboids = np.column_stack([centres, np.full((n, 3), 2 * UM)])
    grains = from_arrays(cuboids, np.arange(1, n + 1))
    x = y = np.arange(0, 500.1, 2.5) * UM
    bz = rng.normal(0, 1e-6, (y.size, x.size))
    fitted = MapData(bz=bz, x=x, y=y, height=HEIGHT, sensor_size=(0.0, 0.0), name="scan")
    residual = fitted.with_bz(bz * 0.01)
    k = 3 if model == "cuboid" else 8
    coefficients = rng.normal(0, 1e3, (n, k))
    covariance = _blocks(rng, n, k)
    common = {"grains": grains, "magnetization": coefficients[:, :3].copy(),
              "covariance": covariance[:, :3, :3].copy(), "sigma": 1e-9,
              "sigma_from_residual": False, "fitted": fitted, "residual": residual,
              "condition_number": 1e3, "n_sensors": bz.size, "damping": 0.0,
              "height": HEIGHT}
    if model == "cuboid":
        return MMTResult(**common)
    return MultipoleResult(**common, model=model, coefficients=coefficients,
                           coefficient_covariance=covariance, scans=("scan",), sigmas=(1e-9,),
                           fits=[(fitted, residual)], masks=[None], sensors=[(0.0, 0.0)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grains", type=int, default=4300)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.h5"
        for model in ("cuboid", "quadrupole"):
            result = _result(args.grains, model, rng)
            write_map_entry(path, result.fitted.with_bz(result.fitted.bz, name=f"scan_{model}"),
                            kind="scan", overwrite=True)
            write_result_entry(path, model, f"scan_{model}", result, result.table(),
                               {"command": "benchmark"})
            read_result_entry(path, model)  # warm: imports, file cache
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                read_result_entry(path, model)
                times.append(time.perf_counter() - t0)
            print(f"{model}: {args.grains} grains, read in {min(times) * 1e3:.1f} ms "
                  f"(min), {statistics.median(times) * 1e3:.1f} ms (median of {args.repeat})")


if __name__ == "__main__":
    main()
